"""What the instructor sees of a course roster: rows, filters, counts per role, the last sync.

Roles are stored as the full URIs the platform sent (LTI 1.3 core §A.2) and shown in words
(``tool/lti/roles.py``). Role filters match the stored JSON text, so they page in SQL.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Text, and_, cast, func, or_, select
from sqlalchemy.orm import Session

from ..lti import roles as role_vocab
from ..models import ContextSyncState, Membership, RosterSync, User
from ..models.states import SyncStatus

ROLE_FILTERS = role_vocab.FILTERS
STATUSES = ("active", "inactive")
PAGE_SIZE = 100

# How a platform account was tied to a person in the tool (``roster/matching.py``), in words.
MATCHED_WORDS = {"created": "new", "sub": "same person", "lti11_legacy_user_id": "matched by LTI 1.1 id",
                 "lis_person_sourcedid": "matched by SIS id", "email": "matched by email"}
# The rule, not the exception: pages note only the other ways of matching.
ROUTINE_MATCHES = ("created", "sub")
# Why a membership is inactive: NRPS status (LTI NRPS 2.0 §2.3) or missing from a complete sync.
REASON_WORDS = {"absent": "left the course", "Inactive": "inactive in the course",
                "Deleted": "removed from the course"}


@dataclass
class RosterRow:
    name: str
    email: str
    roles: list[str]
    status: str
    status_reason: str | None
    first_seen: datetime | None
    last_synced: datetime | None
    matched_by: str
    sub: str | None
    inactive_at: datetime | None

    @property
    def matched_words(self) -> str:
        return MATCHED_WORDS.get(self.matched_by, self.matched_by)

    @property
    def matched_note(self) -> str | None:
        """Shown beside the name only when the match was not the usual one."""
        return None if self.matched_by in ROUTINE_MATCHES else self.matched_words

    @property
    def status_words(self) -> str | None:
        if not self.status_reason:
            return None
        return REASON_WORDS.get(self.status_reason, self.status_reason)


def _filtered(context_id: int, role: str | None, status: str | None):
    stmt = (select(Membership, User).join(User, User.id == Membership.user_id)
            .where(Membership.context_id == context_id))
    if status in STATUSES:
        stmt = stmt.where(Membership.is_active.is_(status == "active"))
    if role in ROLE_FILTERS:
        text = cast(Membership.roles, Text)
        # Each value as a whole JSON string, so "#Instructor" never matches "#TeachingAssistant";
        # a value ending in "*" is a prefix (every sub-role of a principal role).
        stmt = stmt.where(or_(*(text.like(f'%"{value[:-1]}%' if value.endswith("*") else f'%"{value}"%')
                                for value in ROLE_FILTERS[role])))
    return stmt


def _row(membership: Membership, user: User, last_success: datetime | None) -> RosterRow:
    synced = membership.last_synced_at
    # A complete sync that did not drop an active member saw them, without rewriting the row.
    if synced is not None and membership.is_active and last_success and last_success > synced:
        synced = last_success
    return RosterRow(name=user.display_name, email=user.email or "",
                     roles=role_vocab.in_words(membership.roles),
                     status="active" if membership.is_active else "inactive",
                     status_reason=membership.status_reason, first_seen=membership.first_seen_at,
                     last_synced=synced, matched_by=user.matched_by, sub=user.sub,
                     inactive_at=membership.inactive_at)


def members(session: Session, context_id: int, *, role: str | None = None, status: str | None = None,
            page: int = 1, page_size: int | None = PAGE_SIZE):
    """(rows of this page, total matching). ``page_size=None`` streams every row (CSV)."""
    state = session.get(ContextSyncState, context_id)
    last_success = state.last_success_at if state else None
    stmt = _filtered(context_id, role, status).order_by(
        func.lower(func.coalesce(User.name, User.email, "")), User.id)
    if page_size is None:
        return (_row(m, u, last_success)
                for m, u in session.execute(stmt.execution_options(yield_per=1000)))
    total = session.scalar(select(func.count()).select_from(
        _filtered(context_id, role, status).with_only_columns(Membership.id).subquery()))
    stmt = stmt.limit(page_size).offset((max(page, 1) - 1) * page_size)
    return [_row(m, u, last_success) for m, u in session.execute(stmt)], total


def counts(session: Session, context_id: int) -> dict:
    """Active members per role word, and how many are inactive."""
    per_role: dict[str, int] = {}
    active = inactive = 0
    rows = session.execute(select(cast(Membership.roles, Text), Membership.is_active, func.count())
                           .where(Membership.context_id == context_id)
                           .group_by(cast(Membership.roles, Text), Membership.is_active))
    for roles_text, is_active, n in rows:
        if not is_active:
            inactive += n
            continue
        active += n
        words = role_vocab.in_words(json.loads(roles_text) if roles_text else []) or ["No role"]
        for word in words:
            per_role[word] = per_role.get(word, 0) + n
    return {"active": active, "inactive": inactive, "per_role": per_role}


def last_run(session: Session, context_id: int) -> RosterSync | None:
    return session.scalars(select(RosterSync).where(RosterSync.context_id == context_id,
                                                    RosterSync.status != SyncStatus.SKIPPED)
                           .order_by(RosterSync.id.desc())).first()


def expected_members(session: Session, context_id: int) -> int:
    """How many members the last good unfiltered sync saw: the progress bar's full length."""
    return session.scalar(select(RosterSync.members_seen).where(
        RosterSync.context_id == context_id, RosterSync.status == SyncStatus.SUCCEEDED,
        and_(RosterSync.role_filter.is_(None), RosterSync.rlid.is_(None)),
        RosterSync.used_differences.is_(False)).order_by(RosterSync.id.desc()).limit(1)) or 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary(run: RosterSync, expected: int = 0) -> str:
    """A run in an instructor's words: "30 members, 2 left the course"."""
    seen = run.members_seen or 0
    if run.status == SyncStatus.QUEUED:
        return "Waiting to start."
    if run.status == SyncStatus.RUNNING:
        # The last sync's count is only a guess at the total: once passed, just count.
        return (f"{seen} of about {_plural(expected, 'member')} so far." if expected > seen
                else f"{_plural(seen, 'member')} so far.")
    parts = [_plural(seen, "member")]
    if run.members_dropped:
        parts.append(f"{run.members_dropped} no longer active")
    skipped = getattr(run, "members_skipped", 0) or 0
    if skipped:
        parts.append(f"{skipped} could not be stored")
    if run.status == SyncStatus.FAILED:
        return f"Stopped after {parts[0]}." if seen else "Stopped before any member was read."
    return ", ".join(parts) + "."


def run_dict(run: RosterSync | None, expected: int = 0) -> dict | None:
    if run is None:
        return None
    iso = lambda d: d.isoformat() + "Z" if d else None  # noqa: E731 (naive UTC)
    return {"id": run.id, "status": str(run.status), "trigger": run.trigger,
            "running": run.status in (SyncStatus.QUEUED, SyncStatus.RUNNING),
            "pages_fetched": run.pages_fetched,
            "members_seen": run.members_seen, "expected_members": max(expected, run.members_seen),
            "rows_written": run.rows_written, "members_dropped": run.members_dropped,
            "retries": run.retries, "used_differences": run.used_differences,
            "members_skipped": run.members_skipped or 0, "skipped_detail": run.skipped_detail,
            "role_filter": run.role_filter, "rlid": run.rlid, "error": run.error,
            "summary": summary(run, expected),
            "created_at": iso(run.created_at), "started_at": iso(run.started_at),
            "finished_at": iso(run.finished_at)}
