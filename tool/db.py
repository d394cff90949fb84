"""The database handle: one engine per process, one scoped session per request or job.

Plain SQLAlchemy 2.0 (no Flask extension) so that background workers and the CLI use the very
same session factory as web requests.
"""
from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker


class Database:
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session = scoped_session(sessionmaker(expire_on_commit=False))

    def configure(self, url: str) -> Engine:
        if self.engine is not None and str(self.engine.url) == url:
            return self.engine
        if self.engine is not None:
            self.session.remove()
            self.engine.dispose()
        self.engine = make_engine(url)
        self.session.configure(bind=self.engine)
        return self.engine

    def init_app(self, app) -> None:
        self.configure(app.config["DATABASE_URL"])

        @app.teardown_appcontext
        def _remove_session(exc: BaseException | None) -> None:
            self.session.remove()

    @property
    def dialect(self) -> str:
        assert self.engine is not None, "database not configured"
        return self.engine.dialect.name


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            # WAL lets readers proceed during a write; foreign keys are off by default in SQLite.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    # No server-side prepared statements: psycopg prepares a query after 5 runs and PostgreSQL
    # may then keep a generic plan chosen while a table was still small (seq scans on users
    # and memberships during a first big roster sync: 2x slower at 20,000 members).
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10,
                         connect_args={"prepare_threshold": None})


def insert_for(session: Session, model: Any):
    """A dialect INSERT that supports ON CONFLICT (SQLite and PostgreSQL both do)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model)
    if name == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"unsupported database dialect {name!r}")


def fit(table: Any, values: dict) -> dict:
    """Cut text to its column's length, so an over-long name or title cannot fail a write."""
    out = {}
    for key, value in values.items():
        column = table.c.get(key)
        length = getattr(getattr(column, "type", None), "length", None)
        out[key] = value[:length] if isinstance(value, str) and length and len(value) > length else value
    return out


def upsert(session: Session, model: Any, rows: list[dict], keys: Iterable[str],
           update: Iterable[str] = ()) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE/NOTHING for many rows in one statement."""
    if not rows:
        return
    stmt = insert_for(session, model).values(rows)
    keys = list(keys)
    update = list(update)
    if update:
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={col: getattr(stmt.excluded, col) for col in update})
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=keys)
    session.execute(stmt)


db = Database()
