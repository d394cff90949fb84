"""Schema migrations (Alembic), applied on start and by ``flask --app app db upgrade``.

Every upgrade runs under :func:`startup_lock`, so processes that start together on an empty
database migrate it once: the first takes the lock and migrates, the others wait and find the
schema at head (Alembic then has nothing to do).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Engine

from .locks import POLL_SECONDS, WAIT_SECONDS, LockTimeout, file_lock, reentrant

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# PostgreSQL advisory lock (two-int form): this fixed class id, and the schema's name hashed, so
# two tools that share a database in different schemas never wait for each other.
ADVISORY_LOCK_CLASS = 0x52475354  # "RGST"


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def _advisory_lock(engine: Engine, wait: float) -> Iterator[None]:
    # Its own connection, in autocommit: the lock belongs to the session, not to a transaction,
    # and the work done under it uses other connections.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        args = {"c": ADVISORY_LOCK_CLASS}
        deadline = time.monotonic() + wait
        while not conn.scalar(text("SELECT pg_try_advisory_lock(:c, hashtext(current_schema()))"), args):
            if time.monotonic() > deadline:
                raise LockTimeout("the database's start-up lock", wait)
            time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:c, hashtext(current_schema()))"), args)


def lock_file_for(engine: Engine) -> Path | None:
    """The lock file beside a SQLite database file; None for an in-memory database."""
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).with_name(Path(database).name + ".startup-lock")


@contextmanager
def startup_lock(engine: Engine, wait: float = WAIT_SECONDS) -> Iterator[None]:
    """Hold the database's start-up lock: one process at a time migrates and makes the first key."""
    def take():
        if engine.dialect.name == "postgresql":
            return _advisory_lock(engine, wait)
        path = lock_file_for(engine)
        if path is None:  # in-memory: one process only, the thread lock is enough
            return _nothing()
        return file_lock(path, wait)
    with reentrant(take):
        yield


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def upgrade(engine: Engine, revision: str = "head") -> None:
    cfg = alembic_config()
    with startup_lock(engine), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
