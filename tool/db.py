"""The database handle: one engine per process, one scoped session per request or job.

Plain SQLAlchemy 2.0 (no Flask extension) so that background workers and the CLI use the very
same session factory as web requests.

A SQLite database holds personal data and the platforms' access tokens: its file, ``-wal`` and
``-shm`` are made readable by the tool's own user only (0600) and a folder made for them 0700,
whatever the process umask.
"""
from __future__ import annotations

import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from .driver import Driver, driver


class Database:
    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.session = scoped_session(sessionmaker(expire_on_commit=False))
        self._readers = threading.local()

    def reader(self):
        """A driver for a web request's reads that need no transaction (a page's session and
        lists): the session's own while it has a transaction open, else one on a pooled
        connection of its own, without an ORM session, handed back when the request ends.

        A page view that only reads then never builds an ORM session: 10 us for a connection
        against 33 us for a session's, and nothing to close. Its reads run outside any
        transaction, as ``Driver.read`` runs them (each statement sees what was committed when
        it ran); a write later in the request goes through the session and its transaction.
        """
        if self.session.registry.has() and self.session().in_transaction():
            return driver(self.session)
        held = getattr(self._readers, "driver", None)
        if (held is None or held.connection.closed or held.connection.invalidated
                or held.connection.engine is not self.engine):
            self.release_reader()
            held = self._readers.driver = Driver(self.engine.connect())
        return held

    def release_reader(self) -> None:
        held = getattr(self._readers, "driver", None)
        if held is not None:
            self._readers.driver = None
            held.connection.close()  # back to the pool (rolled back if a read left anything open)

    def configure(self, url: str, prepared: bool = True) -> Engine:
        if (self.engine is not None and str(self.engine.url) == url
                and prepares_statements(self.engine) == prepared):
            return self.engine
        if self.engine is not None:
            self.release_reader()
            self.session.remove()
            self.engine.dispose()
        self.engine = make_engine(url, prepared=prepared)
        self.session.configure(bind=self.engine)
        return self.engine

    def init_app(self, app) -> None:
        self.configure(app.config["DATABASE_URL"],
                       prepared=app.config.get("DATABASE_PREPARED_STATEMENTS", True))

        @app.teardown_appcontext
        def _remove_session(exc: BaseException | None) -> None:
            self.release_reader()
            self.session.remove()

    @property
    def dialect(self) -> str:
        assert self.engine is not None, "database not configured"
        return self.engine.dialect.name


PRIVATE_FILE = 0o600
PRIVATE_FOLDER = 0o700


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def create_private_file(path: Path) -> None:
    """Create the SQLite file 0600 (and a missing folder 0700) before SQLite opens it.

    SQLite would create it with the umask's mode (0644 by default). A file that exists is left
    as it is; a failure here is left for SQLite to report when it opens the file.
    """
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=PRIVATE_FOLDER, parents=True, exist_ok=True)
            os.chmod(path.parent, PRIVATE_FOLDER)  # mkdir's mode is narrowed by the umask
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE)
    except OSError:  # FileExistsError included
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


def _private_wal_files(path: Path) -> None:
    """SQLite gives ``-wal`` and ``-shm`` the database file's mode; this makes sure of it."""
    for suffix in ("-wal", "-shm"):
        try:
            os.chmod(f"{path}{suffix}", PRIVATE_FILE)
        except OSError:  # not there yet, or not ours to change: SQLite's own mode stands
            pass


# Every engine this process made, so a forked child can drop the pools it inherited.
_engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def _fresh_pools_after_fork() -> None:
    """In a forked child (gunicorn ``--preload``, multiprocessing), forget the parent's connections.

    A pooled connection is a socket (or a SQLite handle) the parent still uses: two processes
    talking on one PostgreSQL connection interleave their statements and both fail. ``close=False``
    leaves the parent's connections open for the parent and gives the child an empty pool.
    """
    for engine in list(_engines):
        engine.dispose(close=False)
    db.session.registry.clear()  # a session of the forking thread would hold an old connection
    db._readers = threading.local()  # and so would its page reader


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fresh_pools_after_fork)


def make_engine(url: str, prepared: bool = True) -> Engine:
    """The engine for ``url``; ``prepared=False`` keeps PostgreSQL from preparing any statement."""
    engine = _make_engine(url, prepared)
    _engines.add(engine)
    return engine


def _make_engine(url: str, prepared: bool) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            create_private_file(path)
        # Last in, first out: the same few connections serve, their page caches warm.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_use_lifo=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            # WAL lets readers proceed during a write; foreign keys are off by default in SQLite.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            if path is not None:
                _private_wal_files(path)

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    # Server-side prepared statements only for the launch's hot statements, which the driver
    # asks for by name (tool/driver.py); psycopg prepares nothing on its own (it would after 5
    # runs, and PostgreSQL may then keep a generic plan chosen while a table was still small:
    # seq scans on users and memberships during a first big roster sync, 2x slower at 20,000
    # members). ``None`` here would refuse even the driver's requests, hence a count never reached.
    # Connections are replaced after PREPARED_PLAN_AGE so a hot statement's plan made on a small
    # table is made again on the grown one, even where autovacuum never analyzes it.
    # Last in, first out: the connections in use stay few and warm, and the rest go idle long
    # enough to be pinged before use.
    # Behind a transaction-mode pooler (DATABASE_PREPARED_STATEMENTS=0) psycopg prepares
    # nothing at all, even what the driver asks for.
    engine = create_engine(url, pool_size=10, max_overflow=10, pool_use_lifo=True,
                           pool_recycle=PREPARED_PLAN_AGE,
                           execution_options={PREPARE_OPTION: prepared},
                           connect_args={"prepare_threshold":
                                         PREPARE_NEVER_BY_COUNT if prepared else None})
    _ping_when_idle(engine)
    _keep_prepared_on_rollback(engine)
    return engine


PREPARE_NEVER_BY_COUNT = 2 ** 31 - 1
PREPARED_PLAN_AGE = 300  # seconds
# Records on the engine how it was made; psycopg's prepare_threshold of None is what refuses.
PREPARE_OPTION = "tool_prepared_statements"


def prepares_statements(engine: Engine) -> bool:
    """Whether this engine's connections prepare the driver's hot statements (PostgreSQL)."""
    return bool(engine.get_execution_options().get(PREPARE_OPTION, True))


def _keep_prepared_on_rollback(engine: Engine) -> None:
    """A clean rollback keeps the connection's prepared statements.

    psycopg forgets them on every rollback and sends ``DEALLOCATE ALL`` (the transaction might
    have created what they use). Every read-only request ends with a rollback, so the hot
    statements would be planned again on each request, plus one round trip. The only statements
    prepared here are the driver's, on tables that exist before any request runs, so a rollback
    of a transaction in good standing keeps them; after a failed statement (a dropped table, a
    changed column, anything) psycopg's own rollback forgets them all, as it always does.
    """
    from psycopg.pq import TransactionStatus

    dialect = engine.dialect
    plain_rollback = dialect.do_rollback

    def do_rollback(dbapi_connection) -> None:
        prepared = getattr(dbapi_connection, "_prepared", None)
        names = getattr(prepared, "_names", None)
        if (not names or dbapi_connection.pgconn.transaction_status != TransactionStatus.INTRANS):
            plain_rollback(dbapi_connection)
            return
        prepared._names = type(names)()  # psycopg then has nothing to forget
        try:
            plain_rollback(dbapi_connection)
        finally:
            prepared._names = names

    dialect.do_rollback = do_rollback


# A pooled connection unused this long is checked with a ping before it is handed out.
IDLE_PING_AFTER = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection only when it sat idle (SQLAlchemy's pre-ping pings every checkout).

    A connection back in the pool a moment ago is as good as the statement it just ran, and a
    ping is one more round trip on every request; one idle for a while may have been closed by
    the server, a proxy or a restart. A ping that finds it dead empties the pool, as pre-ping
    does; a server that dies under steady traffic costs the requests in flight at that moment,
    after which SQLAlchemy invalidates the pool on the first disconnect error.
    """
    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_conn, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _handed_out(dbapi_conn, record, _proxy) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < IDLE_PING_AFTER:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as err:
            if engine.dialect.is_disconnect(err, dbapi_conn, None):
                raise exc.InvalidatePoolError() from err
            raise


def insert_for(session: Session, model: Any):
    """A dialect INSERT that supports ON CONFLICT (SQLite and PostgreSQL both do)."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(model)
    if name == "sqlite":
        return sqlite.insert(model)
    raise RuntimeError(f"unsupported database dialect {name!r}")


_LENGTHS: "weakref.WeakKeyDictionary[Any, dict[str, int]]" = weakref.WeakKeyDictionary()


def _lengths(table: Any) -> dict[str, int]:
    """Each length-limited column's length, worked out once per table."""
    found = _LENGTHS.get(table)
    if found is None:
        found = {column.key: column.type.length for column in table.c
                 if getattr(column.type, "length", None)}
        _LENGTHS[table] = found
    return found


def fit(table: Any, values: dict) -> dict:
    """Cut text to its column's length, so an over-long name or title cannot fail a write."""
    lengths = _lengths(table)
    out = {}
    for key, value in values.items():
        length = lengths.get(key)
        out[key] = value[:length] if length and isinstance(value, str) and len(value) > length else value
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
