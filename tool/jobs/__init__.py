"""The job queue (huey) and the registry of background tasks; the work itself lives elsewhere.

Each task here is a thin wrapper: it opens what a worker needs (the app, a session) and calls
the feature's own code (the roster's run lifecycle in ``tool/roster/runs.py``). Task names are
stable, since a queue may hold tasks enqueued by an older version of the tool.

Storage: SQLite (``settings.jobs_path``) by default, so ``python app.py`` runs the web server
and a consumer thread with nothing else installed; Redis when ``REDIS_URL`` is set, with
workers on as many machines as needed (``flask --app app jobs worker``, ``cli.py`` here).
``JOBS_IMMEDIATE=1`` runs tasks inline (debugging). Whatever runs a task, the course lock in
``tool/roster/lock.py`` keeps it to one sync per course.
"""
from __future__ import annotations

import errno
import os

from huey import MemoryHuey, crontab
from huey.consumer import Consumer
from huey.storage import RedisStorage, SqliteStorage

huey = MemoryHuey("roster-grades", results=False)
_app = None


def init_app(app) -> None:
    """Bind the queue to this app's settings (storage, immediate mode) and database.

    Binding again to the same SQLite file (a second app in one process) keeps the store and its
    open connection, as ``tool.db`` keeps an engine whose URL did not change.
    """
    global _app
    settings = app.config["SETTINGS"]
    _app = app
    huey.immediate = bool(settings.jobs_immediate)
    if huey.immediate:
        return
    if settings.redis_url:
        _replace_storage(RedisStorage(huey.name, url=settings.redis_url))
    else:
        filename = str(settings.jobs_path)
        if not (isinstance(huey.storage, SqliteStorage) and huey.storage.filename == filename):
            settings.jobs_path.parent.mkdir(parents=True, exist_ok=True)
            _create_private_file(settings.jobs_path)
            _replace_storage(SqliteStorage(huey.name, filename=filename))
    app.extensions["jobs"] = huey


def _replace_storage(storage) -> None:
    old, huey.storage = huey.storage, storage
    if isinstance(old, SqliteStorage):
        old.close()  # through SQLite, which knows what this process still holds on the file


def _create_private_file(path) -> None:
    """Create the queue's file 0600 (private like the tool's database: only ids, but nothing
    else reads it); a file that exists is left alone, without opening it.

    Opening and closing a file descriptor of the SQLite file outside SQLite would release every
    POSIX lock this process holds on it (they are per process, and any close drops them all).
    SQLite's connections here would still believe they hold their shared locks; the next process
    to open and close the queue (a worker starting) then finds the file unlocked, checkpoints it
    and deletes its ``-wal``, and everything this process queues afterwards goes into the
    deleted WAL, where no worker ever sees it.
    """
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if not os.access(path, os.R_OK | os.W_OK):  # said as plainly as the open would
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path)) from None


def app():
    """The Flask app the queue is bound to: tasks run inside its app context."""
    if _app is None:
        raise RuntimeError("tool.jobs is not bound to an app: call create_app() first")
    return _app


def settings():
    return app().config["SETTINGS"]


def client_settings():
    """Service client settings (timeouts, retry budget, pacing) from the app's settings."""
    from ..lti.service_client import ClientSettings
    return ClientSettings.from_settings(settings())


# -- roster (tool/roster/runs.py) -------------------------------------------------------------

@huey.task(name="roster.sync_course")
def sync_course(sync_id: int, full: bool = False) -> str:
    """Run one queued roster sync (NRPS 2.0); the run row records its outcome."""
    from ..roster import runs
    return runs.run_queued(sync_id, full)


@huey.periodic_task(crontab(minute="*"), name="roster.schedule")
def scheduled_roster_syncs() -> None:
    """Every minute: queue the courses that are due (the interval itself is a setting)."""
    from ..roster import runs
    runs.schedule_due_syncs()


# -- consumers --------------------------------------------------------------------------------

class InProcessConsumer(Consumer):
    """A consumer run beside the web server in one process: threads, no signal handlers."""

    def _set_signal_handlers(self) -> None:
        pass


def start_consumer(workers: int | None = None, *, periodic: bool = True,
                   max_delay: float = 2.0) -> Consumer:
    consumer = InProcessConsumer(huey, workers=workers or settings().jobs_workers,
                                 periodic=periodic, max_delay=max_delay, worker_type="thread")
    consumer.start()
    from . import heartbeat
    heartbeat.start(consumer, periodic=periodic)  # the instructor page warns when none beats
    return consumer


# -- the registry of every feature's tasks -----------------------------------------------------
# A worker process knows a task only once the module defining it is imported: import them here,
# last, so `flask --app app jobs worker` and `huey_consumer app.huey` run grading jobs too.
from ..grading import tasks as _grading_tasks  # noqa: E402,F401
