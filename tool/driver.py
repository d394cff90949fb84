"""The launch's hot statements, written out once and run on the database driver.

A launch and its landing page run a handful of small statements. Through SQLAlchemy each one
costs 40 to 300 us of Python (statement cache keys, parameter processing, result and ORM
object construction) against 2 to 20 us of database work on SQLite; here each is one call
into ``sqlite3`` or ``psycopg`` on the cursor of the session's own connection, so the
statement joins the session's transaction and its commit, rollback and SAVEPOINTs. On
PostgreSQL each is prepared on its connection the first time it runs there: planning the joined
reads took 0.3 ms of their 0.45 ms, each time.

Statements are written with ``:name`` parameters (sqlite3's named style) and turned into
psycopg's ``%(name)s`` once. Values cross as each database stores them for SQLAlchemy:
datetimes are naive UTC (SQLite: the text SQLAlchemy's ``DateTime`` writes), JSON columns are
text on SQLite and ``json`` on PostgreSQL. A driver error is raised as SQLAlchemy's wrapped
exception, without its parameters, so error pages and retries treat it as any other; and each
statement is reported to the engine's ``before_cursor_execute`` listeners like any other.
"""
from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, scoped_session

_PG_IDLE = 0  # libpq's PQTRANS_IDLE: no transaction open on the connection
_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


class Statement:
    """One statement's text for each database, from a text with ``:name`` parameters."""

    __slots__ = ("sqlite", "postgresql")

    def __init__(self, sql: str) -> None:
        self.sqlite = sql
        self.postgresql = _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


class Driver:
    """A connection (the session's current one, or a page's reader) seen through its driver's cursor."""

    __slots__ = ("connection", "dialect", "cursor", "_error", "sqlite")

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self.sqlite = self.dialect == "sqlite"
        self.cursor = connection.connection.driver_connection.cursor()
        self._error = connection.dialect.loaded_dbapi.Error

    def execute(self, statement: Statement, params: dict | None = None):
        sql = statement.sqlite if self.sqlite else statement.postgresql
        listeners = self.connection.dispatch.before_cursor_execute
        if listeners:  # whoever watches the engine's statements (tests, benchmarks) sees these too
            listeners(self.connection, self.cursor, sql, params, None, False)
        try:
            if self.sqlite:
                self.cursor.execute(sql, params or {})
            else:  # planned once per connection, unless the engine prepares nothing (tool/db.py)
                self.cursor.execute(sql, params or {}, prepare=True)
        except self._error as exc:
            raise as_sqlalchemy_error(self.connection, self.cursor, sql, exc, self._error) from exc
        return self.cursor

    def read(self, statement: Statement, params: dict | None = None):
        """``execute`` for a read that needs no transaction of its own.

        On PostgreSQL, when the connection has no transaction open yet, the read runs without
        one: no BEGIN before it and no ROLLBACK at the end of the request (two round trips of a
        page view's three). Under READ COMMITTED each statement has its own snapshot either way,
        and a write later in the request begins its transaction as usual. SQLite begins one only
        before a write anyway.
        """
        if self.sqlite:
            return self.execute(statement, params)
        raw = self.connection.connection.driver_connection
        if raw.info.transaction_status != _PG_IDLE:
            return self.execute(statement, params)
        raw.autocommit = True
        try:
            return self.execute(statement, params)
        finally:
            if not raw.closed:
                raw.autocommit = False

    def first(self, statement: Statement, params: dict | None = None) -> tuple | None:
        return self.execute(statement, params).fetchone()

    def scalar(self, statement: Statement, params: dict | None = None) -> Any:
        row = self.execute(statement, params).fetchone()
        return row[0] if row is not None else None

    # -- values as each database keeps them ------------------------------------------------
    def time(self, value: datetime | None):
        if value is None or not self.sqlite:
            return value
        return sqlite_time(value)

    def json(self, value):
        if self.sqlite:
            return json.dumps(value)
        from psycopg.types.json import Json
        return Json(value)


def sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy's SQLite ``DateTime`` writes and reads back."""
    return value.isoformat(" ", "microseconds")


def as_sqlalchemy_error(connection, cursor, sql: str, exc: Exception, error_base) -> DBAPIError:
    """A driver error as SQLAlchemy's wrapped exception (``IntegrityError``, ``OperationalError``
    ...) without its parameters; a lost connection is invalidated, as SQLAlchemy itself does."""
    dialect = connection.dialect
    invalidated = dialect.is_disconnect(exc, connection.connection.dbapi_connection, cursor)
    if invalidated:
        connection.invalidate(exc)
    return DBAPIError.instance(sql, None, exc, error_base, hide_parameters=True,
                               connection_invalidated=invalidated, dialect=dialect)


def driver(session: Session) -> Driver:
    """The driver view of ``session``'s connection, made once per transaction."""
    if isinstance(session, scoped_session):
        session = session()
    transaction = session.get_transaction()
    held = session.info.get("driver")
    if transaction is not None and held is not None and held[0] is transaction:
        return held[1]
    found = Driver(session.connection())  # begins a transaction when none is open
    session.info["driver"] = (session.get_transaction(), found)
    return found


def read_time(value) -> datetime | None:
    """A DateTime column's value as read from either driver."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def read_json(value):
    """A JSON column's value as read from either driver (SQLite hands back the text)."""
    if isinstance(value, (str, bytes)):
        return json.loads(value)
    return value
