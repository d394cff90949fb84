"""Job workers say they are alive; the instructor page warns when none is.

Under gunicorn the web processes never run jobs: roster syncs and grades wait in the queue
until a ``flask --app app jobs worker`` takes them. Nothing would show that no worker runs,
so each consumer writes a row every few seconds while its loop is alive (and removes it when it
stops cleanly); a page asks whether any row is fresh.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..db import db, upsert
from ..models import JobWorker, utcnow

log = logging.getLogger(__name__)

BEAT_SECONDS = 5.0
# A worker is taken for gone after missing several beats (a busy database may delay one).
FRESH_SECONDS = 30.0
# Rows of workers killed without a clean stop are removed after this long.
FORGET_SECONDS = 24 * 3600
# A page asks the database at most this often per process.
CACHE_SECONDS = 5.0


class Heartbeat(threading.Thread):
    """Beats while the consumer's stop flag is clear; its row goes when the flag is set."""

    def __init__(self, stop_flag: threading.Event, *, periodic: bool,
                 interval: float = BEAT_SECONDS) -> None:
        super().__init__(name="job-worker-heartbeat", daemon=True)
        self.stop_flag, self.periodic, self.interval = stop_flag, periodic, interval
        host = socket.gethostname()[:150]
        self.worker_id = f"{host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.host, self.started_at = host, utcnow()

    def beat(self) -> None:
        now = utcnow()
        with Session(db.engine) as session:
            upsert(session, JobWorker, [{
                "worker_id": self.worker_id, "host": self.host, "pid": os.getpid(),
                "is_periodic": self.periodic, "started_at": self.started_at, "seen_at": now}],
                keys=["worker_id"], update=["seen_at"])
            session.execute(delete(JobWorker).where(
                JobWorker.seen_at < now - timedelta(seconds=FORGET_SECONDS)))
            session.commit()

    def forget(self) -> None:
        with Session(db.engine) as session:
            session.execute(delete(JobWorker).where(JobWorker.worker_id == self.worker_id))
            session.commit()

    def run(self) -> None:
        while True:
            try:
                self.beat()
            except SQLAlchemyError as exc:  # the database is away: try again next beat
                log.warning("job worker heartbeat not written: %s", exc.__class__.__name__)
            if self.stop_flag.wait(self.interval):
                break
        try:
            self.forget()
        except SQLAlchemyError:
            pass  # the row ages out by itself


def start(consumer, *, periodic: bool) -> Heartbeat:
    """Beat for ``consumer`` (a huey Consumer) until it stops."""
    beat = Heartbeat(consumer.stop_flag, periodic=periodic)
    beat.start()
    return beat


_cache = {"at": 0.0, "missing": False}
_cache_lock = threading.Lock()


def worker_missing(app) -> bool:
    """True when jobs go through a queue and no worker has beaten recently."""
    if app.config["SETTINGS"].jobs_immediate:
        return False
    with _cache_lock:
        if time.monotonic() - _cache["at"] < CACHE_SECONDS:
            return _cache["missing"]
    since = utcnow() - timedelta(seconds=FRESH_SECONDS)
    try:
        with Session(db.engine) as session:
            alive = session.scalar(select(exists().where(JobWorker.seen_at >= since)))
    except SQLAlchemyError:
        return False  # a page that cannot tell says nothing rather than fail
    with _cache_lock:
        _cache.update(at=time.monotonic(), missing=not alive)
    return not alive


def register(app) -> None:
    """``job_worker_missing()`` for templates (the instructor page's warning)."""
    app.jinja_env.globals["job_worker_missing"] = lambda: worker_missing(app)
