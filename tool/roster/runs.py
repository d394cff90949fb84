"""The life of a roster sync run: queued -> running -> succeeded | failed (or skipped).

A run is a ``roster_syncs`` row written before its task is queued, so a course always shows
what is waiting; the queue (``tool/jobs``) carries only the run's id. This module decides when a
course needs a run (after an instructor launch, on the schedule, on request), notices runs
whose task or worker was lost, and hands a run to ``sync.run_sync`` inside a worker.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from .. import jobs
from ..db import db
from ..models import Context, ContextSyncState, RosterSync, utcnow
from ..models.states import SyncStatus
from . import lock

log = logging.getLogger(__name__)

# A queued run not started within this many seconds is taken as lost (queue flushed or wiped).
LOST_AFTER = 1800
PENDING = (SyncStatus.QUEUED, SyncStatus.RUNNING)


def create_run(session: Session, context: Context, trigger: str, *, role: str | None = None,
               rlid: str | None = None) -> RosterSync:
    """Record a queued run (committed): what the course page shows until a worker takes it."""
    run = RosterSync(context_id=context.id, status=SyncStatus.QUEUED, trigger=trigger,
                     role_filter=role, rlid=rlid, created_at=utcnow())
    session.add(run)
    session.commit()
    return run


def enqueue_sync(session: Session, context: Context, trigger: str, *, role: str | None = None,
                 rlid: str | None = None, full: bool = False) -> RosterSync:
    """Record a queued run and hand it to the queue."""
    run = create_run(session, context, trigger, role=role, rlid=rlid)
    jobs.sync_course(run.id, full)
    return run


def run_queued(sync_id: int, full: bool = False) -> str:
    """What a worker does with a queued run: sync it in its own session; the outcome's name."""
    from .sync import run_sync
    # Its own session, never the scoped one: in immediate mode this runs inside a request.
    with jobs.app().app_context(), Session(db.engine, expire_on_commit=False) as session:
        run = run_sync(session, sync_id, jobs.client_settings(), lambda: Session(db.engine),
                       full=full)
        return str(run.status) if run is not None else "missing"


def pending_run(session: Session, context_id: int) -> RosterSync | None:
    """A run of this course that is queued or running, if any.

    A run queued long ago that never started (its task was lost with a queue) or a "running"
    run that no longer holds the course lock (its worker died) is closed as failed instead.
    """
    now = utcnow()
    for run in session.scalars(select(RosterSync).where(
            RosterSync.context_id == context_id, RosterSync.status.in_(PENDING))
            .order_by(RosterSync.id.desc())):
        if run.status == SyncStatus.QUEUED and run.created_at > now - timedelta(seconds=LOST_AFTER):
            return run
        if run.status == SyncStatus.RUNNING and lock.holder(session, context_id) == run.id:
            return run
        run.error = ("This sync never started: its queued task was lost."
                     if run.status == SyncStatus.QUEUED
                     else "The worker running this sync stopped before it finished.")
        run.status, run.finished_at = SyncStatus.FAILED, now
    session.commit()
    return None


def sync_if_stale(session: Session, context: Context, trigger: str) -> RosterSync | None:
    """Enqueue a sync unless one succeeded within ``roster_freshness`` or one is pending."""
    if pending_run(session, context.id) is not None:
        return None
    state = session.get(ContextSyncState, context.id)
    fresh = utcnow() - timedelta(seconds=jobs.settings().roster_freshness)
    if state is not None and state.last_success_at is not None and state.last_success_at > fresh:
        return None
    return enqueue_sync(session, context, trigger)


def after_launch(launch, result) -> None:
    """An instructor launch that carries the NRPS claim starts a background roster sync."""
    if not launch.is_staff or not launch.memberships_url or result.context_id is None:
        return
    try:
        sync_if_stale(db.session, db.session.get(Context, result.context_id), "launch")
    except Exception:  # the launch itself must never fail because the queue did
        db.session.rollback()
        log.exception("could not queue a roster sync after a launch")


def due_for_schedule(session: Session, interval: int, now: datetime | None = None) -> list[int]:
    """Courses with a memberships URL whose last good sync is older than ``interval`` seconds.

    A course with a run queued or running, or any attempt within the last hour (or interval,
    if shorter), is left alone, so a failing platform is retried hourly, not every minute.
    """
    now = now or utcnow()
    stale = now - timedelta(seconds=interval)
    recent = now - timedelta(seconds=min(interval, 3600))
    busy = (select(RosterSync.context_id).where(
        or_(RosterSync.created_at > recent,
            RosterSync.status.in_(PENDING) & (RosterSync.created_at > now - timedelta(hours=6)))))
    stmt = (select(Context.id).outerjoin(ContextSyncState, ContextSyncState.context_id == Context.id)
            .where(Context.memberships_url.is_not(None),
                   or_(ContextSyncState.last_success_at.is_(None),
                       ContextSyncState.last_success_at < stale),
                   Context.id.not_in(busy))
            .order_by(Context.id))
    return list(session.scalars(stmt))


def schedule_due_syncs() -> list[int]:
    """Queue a sync for every known course whose roster is older than the sync interval."""
    queued = []
    try:
        with jobs.app().app_context():
            for context_id in due_for_schedule(db.session, jobs.settings().roster_sync_interval):
                context = db.session.get(Context, context_id)
                queued.append(enqueue_sync(db.session, context, "scheduled").id)
    finally:
        db.session.remove()
    if queued:
        log.info("scheduled roster syncs queued: %s", queued)
    return queued
