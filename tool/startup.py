"""What ``create_app()`` does before it serves: open the database, migrate it, make the signing key.

Each failure a person can cause with a setting (``DATABASE_URL`` unparseable, naming an unknown
driver, a database that is down or refuses the login, ``TOOL_KEY_DIR`` unusable, ``JOBS_DB``
unwritable) becomes a :class:`config.StartupError`: one line that names the setting and the fix.
``app.py`` prints that line and exits non-zero, so nobody reads a traceback to learn that
PostgreSQL is not running.
"""
from __future__ import annotations

import os
import sqlite3
import sys
import threading
from pathlib import Path

from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from config import Settings, StartupError, key_dir_error

from .db import db

DATABASE_EXAMPLE = ("Set DATABASE_URL to postgresql://USER:PASSWORD@HOST:5432/DBNAME or "
                    "sqlite:////absolute/path/tool.db")
# The drivers the tool is built and tested for (tool/db.py sets each one up).
KNOWN_DRIVERS = {"sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg"}


def os_reason(exc: OSError) -> str:
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        return "a file stands where a folder should be"
    return (exc.strerror or exc.__class__.__name__).lower()


def shown_url(url: str) -> str:
    """The database URL with its password hidden, fit to print."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(unparseable)"


def check_database_url(url: str) -> None:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StartupError("DATABASE_URL", "is not a database URL", DATABASE_EXAMPLE) from None
    if parsed.drivername not in KNOWN_DRIVERS:
        raise StartupError("DATABASE_URL", f"uses {parsed.drivername!r}, which the tool does not support "
                           "(it runs on SQLite and on PostgreSQL with psycopg)", DATABASE_EXAMPLE)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StartupError("DATABASE_URL", f"cannot create the folder {str(folder)!r} for the SQLite "
                               f"file ({os_reason(exc)})",
                               "Point DATABASE_URL at a folder the tool's user can write") from None


def database_error(url: str, exc: SQLAlchemyError) -> StartupError:
    """A database that does not answer, or refuses: the driver's first line, never the SQL."""
    detail = type(exc).__name__
    if isinstance(exc, DBAPIError) and exc.orig is not None and str(exc.orig).strip():
        detail = " ".join(str(exc.orig).strip().splitlines()[0].split())
    if url.startswith("sqlite"):
        fix = "Point DATABASE_URL at a file the tool's user can create and write"
    else:
        fix = ("Start the database server, or fix the host, port, user, password and database name "
               "in DATABASE_URL")
    return StartupError("DATABASE_URL", f"cannot use the database at {shown_url(url)} ({detail})", fix)


def open_database(app, settings: Settings) -> None:
    """Bind the shared engine; a URL SQLAlchemy cannot load is a setting error, not a traceback."""
    check_database_url(settings.database_url)
    try:
        db.init_app(app)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise StartupError("DATABASE_URL", f"cannot be opened ({exc.__class__.__name__}: "
                           f"{str(exc).splitlines()[0]})", DATABASE_EXAMPLE) from None


def migrate_and_key(settings: Settings) -> None:
    """Bring the schema to head and make sure a signing key exists (first start makes one).

    Both happen under the database's start-up lock (an advisory lock on PostgreSQL, a lock file
    beside a SQLite database): processes started together do the work once, the rest wait for it.
    """
    from .locks import LockTimeout
    from .migrate import startup_lock
    try:
        with startup_lock(db.engine):
            _migrate(settings)
            _ensure_key(settings)
    except LockTimeout as exc:
        raise StartupError("DATABASE_URL", f"{exc} (a migration still running?)",
                           "Let that process finish, or stop it if it is stuck, then start again") from None
    except SQLAlchemyError as exc:
        raise database_error(settings.database_url, exc) from None
    except OSError as exc:  # the lock file beside a SQLite database
        raise StartupError("DATABASE_URL", f"cannot create the start-up lock file beside the SQLite "
                           f"database ({os_reason(exc)})",
                           "Point DATABASE_URL at a folder the tool's user can write") from None


def _migrate(settings: Settings) -> None:
    from .migrate import upgrade
    try:
        upgrade(db.engine)
    except SQLAlchemyError as exc:
        raise database_error(settings.database_url, exc) from None
    except CommandError as exc:
        # Alembic cannot find the database's revision: a newer tool wrote it.
        raise StartupError("DATABASE_URL", f"the database's schema is not one this version of the tool "
                           f"knows ({str(exc).splitlines()[0]})",
                           "Run the tool version that last upgraded it, or use a new database") from None


def _ensure_key(settings: Settings) -> None:
    from .lti import keys
    from .locks import LockTimeout
    try:
        keys.ensure_signing_key(db.session, settings.key_dir)
        # Read the private key now: an unreadable file should stop the start, not the first launch.
        keys.signing_key(db.session, settings.key_dir)
    except OSError as exc:
        raise key_dir_error(Path(settings.key_dir), exc) from None
    except LockTimeout as exc:
        raise StartupError("TOOL_KEY_DIR", str(exc),
                           "Let that process finish, or stop it if it is stuck, then start again") from None
    except SQLAlchemyError as exc:
        raise database_error(settings.database_url, exc) from None
    finally:
        db.session.remove()


def open_job_queue(app, settings: Settings) -> None:
    from . import jobs
    try:
        jobs.init_app(app)
    except (OSError, sqlite3.Error) as exc:
        reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
        raise StartupError("JOBS_DB", f"cannot use {str(settings.jobs_path)!r} for the job queue "
                           f"({reason})",
                           "Point JOBS_DB at a file in a folder the tool's user can write") from None
    from .jobs import heartbeat
    heartbeat.register(app)


def _fresh_queue_after_fork() -> None:
    """A forked child opens its own handle on the SQLite job queue (huey keeps one per process
    and would otherwise share the parent's); a Redis pool notices the new pid by itself."""
    jobs = sys.modules.get("tool.jobs")  # no import inside a fork hook
    storage = getattr(getattr(jobs, "huey", None), "storage", None)
    if hasattr(storage, "_conn") and hasattr(storage, "lock"):
        storage._conn = None
        storage.lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_queue_after_fork)
