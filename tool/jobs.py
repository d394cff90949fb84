"""Background work on huey: roster syncs, and the schedule that keeps every course current.

Storage: SQLite (``settings.jobs_path``) by default, so ``python app.py`` runs the web server
and a consumer thread with nothing else installed; Redis when ``REDIS_URL`` is set, with
workers on as many machines as needed (``flask --app app jobs worker``). ``JOBS_IMMEDIATE=1``
runs tasks inline (debugging). Whatever runs a task, the course lock in
``tool/roster/lock.py`` keeps it to one sync per course.
"""
from __future__ import annotations

import logging
import os
from datetime import timedelta

from huey import MemoryHuey, crontab
from huey.consumer import Consumer
from huey.storage import RedisStorage, SqliteStorage
from sqlalchemy import select
from sqlalchemy.orm import Session

from .db import db
from .models import Context, ContextSyncState, RosterSync, utcnow

log = logging.getLogger(__name__)

huey = MemoryHuey("roster-grades", results=False)
# A queued run not started within this many seconds is taken as lost (queue flushed or wiped).
LOST_AFTER = 1800
_app = None


def init_app(app) -> None:
    """Bind the queue to this app's settings (storage, immediate mode) and database."""
    global _app
    settings = app.config["SETTINGS"]
    _app = app
    huey.immediate = bool(settings.jobs_immediate)
    if huey.immediate:
        return
    if settings.redis_url:
        huey.storage = RedisStorage(huey.name, url=settings.redis_url)
    else:
        settings.jobs_path.parent.mkdir(parents=True, exist_ok=True)
        # Private like the tool's database: the queue is only ids, but nothing else reads it.
        os.close(os.open(settings.jobs_path, os.O_RDWR | os.O_CREAT, 0o600))
        huey.storage = SqliteStorage(huey.name, filename=str(settings.jobs_path))
    app.extensions["jobs"] = huey


def _settings():
    if _app is None:
        raise RuntimeError("tool.jobs is not bound to an app: call create_app() first")
    return _app.config["SETTINGS"]


def client_settings():
    from .lti.service_client import ClientSettings
    return ClientSettings.from_settings(_settings())


@huey.task(name="roster.sync_course")
def sync_course(sync_id: int, full: bool = False) -> str:
    """Run one queued roster sync (NRPS 2.0); the run row records its outcome."""
    from .roster.sync import run_sync
    # Its own session, never the scoped one: in immediate mode this runs inside a request.
    with _app.app_context(), Session(db.engine, expire_on_commit=False) as session:
        run = run_sync(session, sync_id, client_settings(), lambda: Session(db.engine), full=full)
        return run.status if run is not None else "missing"


def enqueue_sync(session: Session, context: Context, trigger: str, *, role: str | None = None,
                 rlid: str | None = None, full: bool = False) -> RosterSync:
    """Record a queued run and hand it to the queue."""
    from .roster.sync import create_run
    run = create_run(session, context, trigger, role=role, rlid=rlid)
    sync_course(run.id, full)
    return run


def pending_run(session: Session, context_id: int) -> RosterSync | None:
    """A run of this course that is queued or running, if any.

    A run queued long ago that never started (its task was lost with a queue) or a "running"
    run that no longer holds the course lock (its worker died) is closed as failed instead.
    """
    from .roster import lock
    now = utcnow()
    for run in session.scalars(select(RosterSync).where(
            RosterSync.context_id == context_id, RosterSync.status.in_(("queued", "running")))
            .order_by(RosterSync.id.desc())):
        if run.status == "queued" and run.created_at > now - timedelta(seconds=LOST_AFTER):
            return run
        if run.status == "running" and lock.holder(session, context_id) == run.id:
            return run
        run.error = ("This sync never started: its queued task was lost." if run.status == "queued"
                     else "The worker running this sync stopped before it finished.")
        run.status, run.finished_at = "failed", now
    session.commit()
    return None


def sync_if_stale(session: Session, context: Context, trigger: str) -> RosterSync | None:
    """Enqueue a sync unless one succeeded within ``roster_freshness`` or one is pending."""
    if pending_run(session, context.id) is not None:
        return None
    state = session.get(ContextSyncState, context.id)
    fresh = utcnow() - timedelta(seconds=_settings().roster_freshness)
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


def schedule_due_syncs() -> list[int]:
    """Queue a sync for every known course whose roster is older than the sync interval."""
    from .roster.sync import due_for_schedule
    queued = []
    try:
        with _app.app_context():
            for context_id in due_for_schedule(db.session, _settings().roster_sync_interval):
                context = db.session.get(Context, context_id)
                queued.append(enqueue_sync(db.session, context, "scheduled").id)
    finally:
        db.session.remove()
    if queued:
        log.info("scheduled roster syncs queued: %s", queued)
    return queued


@huey.periodic_task(crontab(minute="*"), name="roster.schedule")
def scheduled_roster_syncs() -> None:
    """Every minute: queue the courses that are due (the interval itself is a setting)."""
    schedule_due_syncs()


class InProcessConsumer(Consumer):
    """A consumer run beside the web server in one process: threads, no signal handlers."""

    def _set_signal_handlers(self) -> None:
        pass


def start_consumer(workers: int | None = None, *, periodic: bool = True,
                   max_delay: float = 2.0) -> Consumer:
    consumer = InProcessConsumer(huey, workers=workers or _settings().jobs_workers,
                                 periodic=periodic, max_delay=max_delay, worker_type="thread")
    consumer.start()
    return consumer
