"""Roster sync of one course through Names and Role Provisioning Services 2.0.

A run: take the course lock (``lock.py``) -> get a token by client credentials and walk every
page of ``context_memberships_url`` (``tool/lti/nrps.py``), or the ``differences`` link a
platform offered last time (NRPS 2.0 §2.4), one page ahead of the writing (``feed.py``) ->
write each page in a few statements (``pagewrite.py``) and commit every few pages with the
run's progress, never leaving a write transaction open for more than ``WRITE_HOLD`` while the
next page is still on its way (SQLite's write lock would hold up launches meanwhile) -> after
the last page, in one transaction, apply status changes: ``Inactive``/``Deleted`` as reported,
back to active for returning members, and, after a complete unfiltered walk, inactive (reason
``absent``) for members the platform no longer lists (Canvas drops them from the roster, facts
section 7).
A run that fails at any page applies none of that and is recorded as failed with the reason.
A member the database refuses is skipped and named on the run (``members_skipped``,
``skipped_detail``); the rest of the course syncs. Once a run succeeded, the hooks in
``hooks.after_sync`` are told which course is fresh. A run's state travels as one ``RunState``.

The reason stored on a failed run is shown to instructors: it is the tool's own words plus the
platform's message (``ToolError.reason``), never the text of a database or other unexpected
exception, which can carry SQL and other people's data; that goes to the log.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable

from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, scoped_session

from ..errors import ToolError
from ..lti import nrps
from ..lti.errors import PlatformError
from ..lti.service_client import ClientSettings, PlatformClient
from ..models import Context, ContextSyncState, Membership, Registration, RosterSync, utcnow
from ..models.states import SyncStatus
from . import hooks, lock
from .feed import PageFeed, Pause
from .pagesql import PageSql
from .pagewrite import write_page

log = logging.getLogger(__name__)
CHUNK = 500
PROGRESS_EVERY = 0.5  # seconds between progress commits, whatever the pages write
COMMIT_PAGES = 10  # pages written in one transaction at most, however fast they arrive
# How long written pages wait, uncommitted, for the next page before they are committed. A
# page that arrives within it joins their transaction: committing after every page or two cost
# a write of every touched database page each time (a fifth of a big sync's CPU on SQLite),
# while a launch waiting for SQLite's write lock waits this much longer at most per page.
WRITE_HOLD = 0.005
# Rows a run writes before the tables' statistics are refreshed (PostgreSQL plans from them);
# again after 4x, 16x ... as many.
ANALYZE_FIRST_AT = 2000
SKIPPED_NAMED = 20  # skipped members named on a run; the count covers them all
DATABASE_FAILURE = ("The tool could not save the roster (database error); the administrator can "
                    "find the details in the tool's log.")
UNEXPECTED_FAILURE = ("The sync stopped on an unexpected error in the tool; the administrator can "
                      "find the details in the tool's log.")


class SeenSet:
    """Membership ids seen by a run: one bit per id, so memory stays flat in the course size."""

    def __init__(self) -> None:
        self.bits = bytearray()

    def add(self, value: int) -> None:
        index = value >> 3
        if index >= len(self.bits):
            self.bits.extend(bytes(index - len(self.bits) + 1 + 4096))
        self.bits[index] |= 1 << (value & 7)

    def __contains__(self, value: int) -> bool:
        index = value >> 3
        return index < len(self.bits) and bool(self.bits[index] & (1 << (value & 7)))


@dataclass
class Tally:
    """Pages walked by this run, and the progress not yet committed to its row."""
    pages: int = 0
    pending_pages: int = 0
    pending_members: int = 0
    pending_rows: int = 0
    pending_skipped: int = 0
    skipped_names: list = field(default_factory=list)
    committed_at: float = 0.0
    rows_written: int = 0  # committed by this run
    analyze_at: int = ANALYZE_FIRST_AT

    @property
    def uncommitted_writes(self) -> bool:
        """Whether the session's transaction may hold writes not committed yet."""
        return bool(self.pending_rows or self.pending_skipped)

    def skip(self, labels: list[str]) -> None:
        self.pending_skipped += len(labels)
        room = SKIPPED_NAMED - len(self.skipped_names)
        self.skipped_names += labels[:max(room, 0)]


@dataclass
class Changes:
    """Status changes the pages asked for, applied together only once the walk is complete."""
    reactivate: list = field(default_factory=list)  # membership ids
    deactivate: list = field(default_factory=list)  # (membership id, NRPS status)


@dataclass
class RunState:
    """Everything one run carries from page to page."""
    session: Session
    run: RosterSync
    registration: Registration
    client: PlatformClient
    lease: float  # seconds the course lock is held after each renewal
    tally: Tally
    session_factory: Callable[[], Session]
    pause: Pause  # the client's waits between retries, ended when the run stops
    join_timeout: float  # how long a closing feed may wait for a fetch under way
    seen: SeenSet = field(default_factory=SeenSet)
    changes: Changes = field(default_factory=Changes)


def failure_reason(exc: BaseException) -> str:
    """What an instructor is told about a failed run: never an unexpected exception's text."""
    if isinstance(exc, ToolError):
        return exc.reason
    if isinstance(exc, SQLAlchemyError):
        return DATABASE_FAILURE
    return UNEXPECTED_FAILURE


def _report_skipped(run: RosterSync, tally: Tally) -> None:
    """Move the skipped count onto the run and name the first few skipped members."""
    if not tally.pending_skipped:
        return
    run.members_skipped = (run.members_skipped or 0) + tally.pending_skipped
    tally.pending_skipped = 0
    named = ", ".join(tally.skipped_names)
    more = run.members_skipped - len(tally.skipped_names)
    run.skipped_detail = named + (f" and {more} more" if more > 0 else "")


def lease_seconds(settings: ClientSettings) -> float:
    """Long enough to cover one page's worst case of retries and timeouts."""
    return settings.retry_budget + 2 * (settings.connect_timeout + settings.read_timeout) + 60


def run_sync(session: Session, sync_id: int, settings: ClientSettings,
             session_factory: Callable[[], Session], *, full: bool = False) -> RosterSync:
    """Run a queued sync to its end; returns the run (succeeded, failed or skipped)."""
    run = session.get(RosterSync, sync_id)
    if run is None or run.status != SyncStatus.QUEUED:
        return run
    lease = lease_seconds(settings)
    if lock.acquire(session, run.context_id, run.id, lease) is None:
        other = lock.holder(session, run.context_id)
        run.status, run.finished_at = SyncStatus.SKIPPED, utcnow()
        run.error = f"Another sync of this course is already running (run #{other})."
        session.commit()
        return run
    tally = Tally(committed_at=time.monotonic())
    # The run commits every few pages; the objects it holds (the run, its course, the
    # registration) are written by this run alone meanwhile, so they are not read back after
    # each commit: that was a SELECT per object per commit, hundreds in a big course.
    plain = session() if isinstance(session, scoped_session) else session
    expire_on_commit, plain.expire_on_commit = plain.expire_on_commit, False
    try:
        run.status, run.started_at, run.heartbeat_at = SyncStatus.RUNNING, utcnow(), utcnow()
        session.commit()
        _walk_and_apply(session, run, settings, session_factory, lease, full, tally)
    except Exception as exc:  # every failure is recorded on the run, then re-raised if unexpected
        session.rollback()
        run = session.get(RosterSync, sync_id, populate_existing=True)
        run.pages_fetched += tally.pending_pages  # read, but not yet reported
        run.members_seen += tally.pending_members
        _report_skipped(run, tally)
        run.status, run.finished_at = SyncStatus.FAILED, utcnow()
        run.error = failure_reason(exc)
        session.commit()
        if not isinstance(exc, ToolError):
            log.exception("roster sync %r failed unexpectedly", sync_id)
        else:
            log.warning("roster sync %r failed: %r", sync_id, run.error)
    finally:
        plain.expire_on_commit = expire_on_commit
        lock.release(session, run.context_id, run.id)
    if run.status == SyncStatus.SUCCEEDED:
        # A session of their own: whatever a hook leaves behind cannot touch the finished run.
        with session_factory() as hook_session:
            hooks.run_after_sync(hook_session, run.context_id)
    return run


def _walk_and_apply(session: Session, run: RosterSync, settings: ClientSettings,
                    session_factory: Callable[[], Session], lease: float, full: bool,
                    tally: Tally) -> None:
    context = session.get(Context, run.context_id)
    registration = session.get(Registration, context.registration_id)
    if not context.memberships_url:
        raise ToolError("This course has no Names and Role Provisioning Services URL yet.",
                        hint="Launch the tool once from the course as an instructor.",
                        code="no_memberships_url")
    sync_state = lock.state_for(session, context.id)
    session.commit()  # no write transaction may stay open while the client stores a token
    filtered = bool(run.role_filter or run.rlid)
    pause = Pause()
    state = RunState(session=session, run=run, registration=registration,
                     client=PlatformClient(session_factory, registration, settings, sleep=pause),
                     lease=lease, tally=tally, session_factory=session_factory, pause=pause,
                     join_timeout=settings.connect_timeout + settings.read_timeout + 5)
    if sync_state.differences_url and not filtered and not full:
        run.used_differences = True
        session.commit()
        try:
            last = _walk(state, sync_state.differences_url, role=None, rlid=None)
        except PlatformError as exc:
            if tally.pages or exc.http_status not in (400, 404, 410):
                raise
            log.info("differences link refused (%r); reading the whole roster", exc.reason)
            run.used_differences = False
            session.commit()
            last = None
        if last is not None:
            _finish(state, sync_state, last, complete=True, absent=False)
            return
    last = _walk(state, context.memberships_url, role=run.role_filter, rlid=run.rlid)
    _finish(state, sync_state, last, complete=not filtered, absent=not filtered)


def _walk(state: RunState, url: str, *, role: str | None,
          rlid: str | None) -> nrps.MembershipPage | None:
    """Write every page of one roster listing (NRPS 2.0 §2.3); the last page, for its links."""
    last = None
    tally = state.tally
    with PageFeed(state.client, url, role=role, rlid=rlid, pause=state.pause,
                  join_timeout=state.join_timeout) as feed:
        while True:
            if tally.uncommitted_writes and not feed.ready(WRITE_HOLD):
                _commit_progress(state)  # no write transaction waits long for the network
            try:
                page = feed.next()
            except Exception:
                if tally.pending_pages:
                    _commit_progress(state)  # the pages read so far are kept, as they were
                raise
            if page is None:
                return last
            result = write_page(state.session, state.registration, state.run.context_id,
                                page.members, utcnow(), after_writes=tally.uncommitted_writes)
            for mid in result.membership_ids:
                state.seen.add(mid)
            state.changes.reactivate += result.reactivate
            state.changes.deactivate += result.deactivate
            tally.pages += 1
            tally.pending_pages += 1
            tally.pending_members += result.members
            tally.pending_rows += result.rows_written
            tally.skip(result.skipped)
            last = page
            if page.next_url is None or tally.pending_pages >= COMMIT_PAGES or \
                    time.monotonic() - tally.committed_at >= PROGRESS_EVERY:
                _commit_progress(state)


def _commit_progress(state: RunState) -> None:
    """The pages' rows and the progress the instructor page polls, in one commit."""
    run, tally, session = state.run, state.tally, state.session
    run.pages_fetched += tally.pending_pages
    run.members_seen += tally.pending_members
    run.rows_written += tally.pending_rows
    _report_skipped(run, tally)
    run.retries = state.client.retries
    run.heartbeat_at = utcnow()
    if not lock.renew(session, run.context_id, run.id, state.lease):
        raise ToolError("This sync lost its hold on the course to another run.", code="lock_lost")
    session.commit()
    tally.rows_written += tally.pending_rows
    tally.pending_pages = tally.pending_members = tally.pending_rows = 0
    if tally.rows_written >= tally.analyze_at:
        PageSql.for_session(session).refresh_statistics()
        session.commit()
        tally.analyze_at *= 4
    tally.committed_at = time.monotonic()


def _finish(state: RunState, sync_state: ContextSyncState, last: nrps.MembershipPage | None, *,
            complete: bool, absent: bool) -> None:
    """Apply every status change in one transaction, then mark the run succeeded."""
    session, run, changes = state.session, state.run, state.changes
    now = utcnow()
    written = 0
    for ids in _chunks(changes.reactivate):
        written += session.execute(
            update(Membership).where(Membership.id.in_(ids), Membership.is_active.is_(False))
            .values(is_active=True, status_reason=None, inactive_at=None, last_synced_at=now)
            .execution_options(synchronize_session=False)).rowcount
    dropped = 0
    for reason in ("Inactive", "Deleted"):
        ids_for = [mid for mid, status in changes.deactivate if status == reason]
        for ids in _chunks(ids_for):
            count = session.execute(
                update(Membership).where(Membership.id.in_(ids),
                                         or_(Membership.is_active.is_(True),
                                             Membership.status_reason != reason))
                .values(is_active=False, status_reason=reason, inactive_at=now, last_synced_at=now)
                .execution_options(synchronize_session=False)).rowcount
            dropped += count
    if absent:
        gone = [mid for mid in _active_ids(session, run.context_id, run.started_at)
                if mid not in state.seen]
        for ids in _chunks(gone):
            dropped += session.execute(
                update(Membership).where(Membership.id.in_(ids), Membership.is_active.is_(True))
                .values(is_active=False, status_reason="absent", inactive_at=now, last_synced_at=now)
                .execution_options(synchronize_session=False)).rowcount
    if complete:
        sync_state.last_success_at = now
        sync_state.differences_url = last.differences_url if last is not None else None
    run.rows_written += written + dropped
    run.members_dropped = dropped
    run.retries = state.client.retries
    run.status, run.finished_at = SyncStatus.SUCCEEDED, now
    session.commit()


def _active_ids(session: Session, context_id: int, started: datetime) -> Iterable[int]:
    """Active members, except those who launched while the run read the roster."""
    stmt = (select(Membership.id).where(
        Membership.context_id == context_id, Membership.is_active.is_(True),
        or_(Membership.last_launch_at.is_(None), Membership.last_launch_at < started))
        .execution_options(yield_per=2000))
    yield from session.scalars(stmt)


def _chunks(values: list, size: int = CHUNK):
    for i in range(0, len(values), size):
        yield values[i:i + size]
