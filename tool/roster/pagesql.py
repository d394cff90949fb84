"""The SQL of one roster page, written out once per database and run on the driver's cursor.

A 50,000-member sync runs these statements a few thousand times. Built and compiled by
SQLAlchemy for every page they cost several times what the database itself spends on them;
written out here once, each one is a single call into the driver (``sqlite3`` or ``psycopg``)
inside the session's own transaction, so commits, rollbacks and SAVEPOINTs stay the session's.

Lists travel as one parameter whatever the page size: a JSON array read by ``json_each`` on
SQLite, an array (``= ANY``, ``unnest``) on PostgreSQL; only SQLite's multi-row ``VALUES`` is
written once per row count (a page holds at most a few distinct counts). Upserts are idempotent
and change nothing that is already as the platform says (``ON CONFLICT ... DO UPDATE ... WHERE``
the values differ), so a run repeated, or racing a launch, writes no row twice.

A driver error is raised as SQLAlchemy's wrapped exception (``IntegrityError``, ``DataError``,
``OperationalError`` ...) without its parameters, as the session would raise it, so callers
tell refused data from a broken database the same way on both paths.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime
from typing import Sequence

from sqlalchemy.orm import Session

from ..driver import as_sqlalchemy_error, sqlite_time

USER_FIELDS = ("name", "given_name", "family_name", "email", "picture", "lis_person_sourcedid",
               "lti11_legacy_user_id")
MEMBERSHIP_COLUMNS = ("context_id", "user_id", "roles", "is_active", "status_reason",
                      "inactive_at", "first_seen_at", "last_synced_at")
# Rows per SQLite multi-row VALUES: far below its limit of 32,766 parameters, and few
# distinct statements to keep (one per row count up to this).
SQLITE_ROWS = 100
# Claim columns that may be matched against, and how each is compared (matching.py's order).
CLAIM_COLUMNS = {"lti11_legacy_user_id": "lti11_legacy_user_id",
                 "lis_person_sourcedid": "lis_person_sourcedid", "email": "lower(email)"}
# Claim order for a person the tool knew before their first LTI 1.3 sighting (launch and sync).
CLAIM_RULES = tuple(CLAIM_COLUMNS)

_USER_SELECT = ("SELECT u.id, u.sub, " + ", ".join(f"u.{f}" for f in USER_FIELDS) +
                ", m.id, m.roles, m.is_active, m.status_reason, m.last_synced_at FROM users u "
                "LEFT JOIN memberships m ON m.user_id = u.id AND m.context_id = {p} "
                "WHERE u.registration_id = {p} AND u.sub {in_list}")
_USER_INSERT_COLUMNS = "registration_id, sub, matched_by, created_at, " + ", ".join(USER_FIELDS)
_USER_CONFLICT = ("ON CONFLICT (registration_id, sub) DO UPDATE SET " +
                  ", ".join(f"{f} = coalesce(excluded.{f}, users.{f})" for f in USER_FIELDS) +
                  " WHERE " + " OR ".join(f"(excluded.{f} IS NOT NULL AND excluded.{f} {{differs}} users.{f})"
                                          for f in USER_FIELDS) +
                  " RETURNING id, sub")
_MEMBERSHIP_CONFLICT = ("ON CONFLICT (context_id, user_id) DO UPDATE SET roles = excluded.roles, "
                        "last_synced_at = excluded.last_synced_at WHERE memberships.last_synced_at "
                        "IS NULL OR {roles_differ} RETURNING id, user_id")
_CLAIM_UPDATE = "UPDATE users SET sub = {p}, matched_by = {p} WHERE id = {p} AND sub IS NULL"
_UNCLAIMED = "SELECT 1 FROM users WHERE registration_id = {p} AND sub IS NULL LIMIT 1"
_CLAIM_SELECT = ("SELECT id, {column} FROM users{indexed} WHERE registration_id = {p} AND sub IS NULL "
                 "AND {column} {in_list} ORDER BY id")
_MEMBERSHIP_IDS = "SELECT id, user_id FROM memberships WHERE context_id = {p} AND user_id {in_list}"
_SQLITE_IN = "IN (SELECT value FROM json_each(?))"
_POSTGRES_IN = "= ANY(%s)"

# SQLite plans without statistics and takes the (registration_id, sub) key for "sub IS NULL",
# reading every person without a sub for each page: 2.6 ms a page with 20,000 people imported
# from an LTI 1.1 install, against 0.05 ms through the partial index (tool/models/people.py),
# which the claim lookups therefore name. PostgreSQL plans from statistics (refresh_statistics).
SQLITE_CLAIM_INDEX = {"lti11_legacy_user_id": "ix_users_unclaimed_legacy",
                      "lis_person_sourcedid": "ix_users_unclaimed_sourcedid"}


def sqlite_indexed_by(rule: str) -> str:
    index = SQLITE_CLAIM_INDEX.get(rule)
    return f" INDEXED BY {index}" if index else ""


class PageSql:
    """One database's page statements; ``for_session`` picks the right one."""

    dialect = ""

    def __init__(self, session: Session) -> None:
        self.connection = session.connection()  # begins the session's transaction if needed
        self.cursor = self.connection.connection.driver_connection.cursor()
        self.error_base = self.connection.dialect.loaded_dbapi.Error

    @staticmethod
    def for_session(session: Session) -> "PageSql":
        name = session.get_bind().dialect.name
        if name == "sqlite":
            return SqlitePageSql(session)
        if name == "postgresql":
            return PostgresPageSql(session)
        raise RuntimeError(f"unsupported database dialect {name!r}")

    # -- the statements -------------------------------------------------------------------
    def known(self, registration_id: int, context_id: int, subs: list[str]) -> list[tuple]:
        """(user id, sub, *USER_FIELDS, membership id, roles, is_active, status_reason,
        last_synced_at) of the page's people this registration already knows."""
        return self._all(self.KNOWN, (context_id, registration_id, self.list_param(subs)))

    def has_unclaimed(self, registration_id: int) -> bool:
        """Whether anyone of this registration waits to be tied to a ``sub`` (matching.py)."""
        return bool(self._all(self.UNCLAIMED, (registration_id,)))

    def claim_candidates(self, registration_id: int, rule: str, values: list[str]) -> list[tuple]:
        """(user id, value) of people without a ``sub`` whose ``rule`` column is among values."""
        return self._all(self.CLAIM_SELECT[rule], (registration_id, self.list_param(values)))

    def claim(self, claims: list[tuple[str, str, int]]) -> None:
        """Give each (new sub, rule, user id) its sub, only where the row still has none."""
        self._run(lambda: self.cursor.executemany(self.CLAIM_UPDATE, claims), self.CLAIM_UPDATE)

    def membership_ids(self, context_id: int, user_ids: list[int]) -> list[tuple]:
        return self._all(self.MEMBERSHIP_IDS, (context_id, self.list_param(user_ids)))

    def refresh_statistics(self) -> None:
        """Only PostgreSQL plans from statistics that a big first sync leaves behind."""

    def keeps_earlier_writes(self, after_writes: bool) -> bool:
        """Whether a page must be written inside a SAVEPOINT so undoing it keeps the writes
        before it: ``after_writes`` as the caller counted them."""
        return after_writes

    @contextmanager
    def savepoint(self):
        """The block's writes undone alone if it raises (the transaction's others are kept)."""
        self._run(lambda: self.cursor.execute("SAVEPOINT roster_page"), "SAVEPOINT")
        try:
            yield
        except BaseException:
            try:
                self.cursor.execute("ROLLBACK TO SAVEPOINT roster_page")
                self.cursor.execute("RELEASE SAVEPOINT roster_page")
            except self.error_base:  # a connection that broke: the block's own error says why
                pass
            raise
        self._run(lambda: self.cursor.execute("RELEASE SAVEPOINT roster_page"), "RELEASE")

    # -- running them ---------------------------------------------------------------------
    def _all(self, sql: str, params: Sequence) -> list[tuple]:
        listeners = self.connection.dispatch.before_cursor_execute
        if listeners:  # whoever watches the engine's statements sees these reads too
            listeners(self.connection, self.cursor, sql, params, None, False)

        def run():
            self.cursor.execute(sql, params)
            return self.cursor.fetchall()
        return self._run(run, sql)

    def _run(self, call, sql: str):
        try:
            return call()
        except self.error_base as exc:
            raise as_sqlalchemy_error(self.connection, self.cursor, sql, exc, self.error_base) from exc


class SqlitePageSql(PageSql):
    """SQLite: ``?`` parameters, lists as JSON arrays, datetimes as SQLAlchemy stores them."""

    dialect = "sqlite"
    KNOWN = _USER_SELECT.format(p="?", in_list=_SQLITE_IN)
    UNCLAIMED = _UNCLAIMED.format(p="?")
    CLAIM_SELECT = {rule: _CLAIM_SELECT.format(column=column, p="?", in_list=_SQLITE_IN,
                                               indexed=sqlite_indexed_by(rule))
                    for rule, column in CLAIM_COLUMNS.items()}
    CLAIM_UPDATE = _CLAIM_UPDATE.format(p="?")
    MEMBERSHIP_IDS = _MEMBERSHIP_IDS.format(p="?", in_list=_SQLITE_IN)
    _user_sql: dict[int, str] = {}
    _membership_sql: dict[int, str] = {}

    @staticmethod
    def list_param(values: list) -> str:
        return json.dumps(values)

    def keeps_earlier_writes(self, after_writes: bool) -> bool:
        """The driver opens a transaction only before a write: one open holds writes. A
        SAVEPOINT outside one would begin a deferred transaction (``pagewrite`` says why not)."""
        return self.connection.connection.driver_connection.in_transaction

    @staticmethod
    def timestamp(value: datetime) -> str:
        """The text SQLAlchemy's SQLite ``DateTime`` writes and reads back."""
        return sqlite_time(value)

    @classmethod
    def _values_sql(cls, cache: dict, n: int, head: str, width: int, tail: str) -> str:
        sql = cache.get(n)
        if sql is None:
            row = "(" + ", ".join("?" * width) + ")"
            sql = cache[n] = f"{head} VALUES {', '.join([row] * n)} {tail}"
        return sql

    def upsert_users(self, registration_id: int, now: datetime,
                     rows: list[tuple]) -> list[tuple]:
        """Insert new people and fill in changed fields; (id, sub) of every row written.

        ``rows`` are (sub, *USER_FIELDS); a field left None keeps what is stored.
        """
        stamp = self.timestamp(now)
        out = []
        for i in range(0, len(rows), SQLITE_ROWS):
            part = rows[i:i + SQLITE_ROWS]
            sql = self._values_sql(self._user_sql, len(part),
                                   f"INSERT INTO users ({_USER_INSERT_COLUMNS})",
                                   4 + len(USER_FIELDS), _USER_CONFLICT.format(differs="IS NOT"))
            out += self._all(sql, [v for row in part
                                   for v in (registration_id, row[0], "created", stamp, *row[1:])])
        return out

    def upsert_memberships(self, context_id: int, now: datetime,
                           rows: list[tuple]) -> list[tuple]:
        """Insert new memberships, update the roles of changed ones; (id, user_id) written.

        ``rows`` are (user_id, roles as JSON text, is_active, status_reason, inactive_at);
        ``now`` is when the row was first seen (for a new one) and last synced.
        """
        stamp = self.timestamp(now)
        out = []
        for i in range(0, len(rows), SQLITE_ROWS):
            part = rows[i:i + SQLITE_ROWS]
            sql = self._values_sql(self._membership_sql, len(part),
                                   f"INSERT INTO memberships ({', '.join(MEMBERSHIP_COLUMNS)})",
                                   len(MEMBERSHIP_COLUMNS), _MEMBERSHIP_CONFLICT.format(
                                       roles_differ="memberships.roles IS NOT excluded.roles"))
            out += self._all(sql, [v for user_id, roles, active, reason, inactive_at in part
                                   for v in (context_id, user_id, roles, active, reason,
                                             self.timestamp(inactive_at) if inactive_at else None,
                                             stamp, stamp)])
        return out


class PostgresPageSql(PageSql):
    """PostgreSQL: ``%s`` parameters, lists as arrays, whole pages inserted through ``unnest``."""

    dialect = "postgresql"
    KNOWN = _USER_SELECT.format(p="%s", in_list=_POSTGRES_IN)
    UNCLAIMED = _UNCLAIMED.format(p="%s")
    CLAIM_SELECT = {rule: _CLAIM_SELECT.format(column=column, p="%s", in_list=_POSTGRES_IN, indexed="")
                    for rule, column in CLAIM_COLUMNS.items()}
    CLAIM_UPDATE = ("UPDATE users SET sub = c.sub, matched_by = c.rule "
                    "FROM unnest(%s::text[], %s::text[], %s::int[]) AS c(sub, rule, id) "
                    "WHERE users.id = c.id AND users.sub IS NULL")
    MEMBERSHIP_IDS = _MEMBERSHIP_IDS.format(p="%s", in_list=_POSTGRES_IN)
    USER_UPSERT = (f"INSERT INTO users ({_USER_INSERT_COLUMNS}) SELECT %s, t.sub, 'created', %s, " +
                   ", ".join(f"t.{f}" for f in USER_FIELDS) + " FROM unnest(" +
                   ", ".join(["%s::text[]"] * (1 + len(USER_FIELDS))) + ") AS t(sub, " +
                   ", ".join(USER_FIELDS) + ") " + _USER_CONFLICT.format(differs="IS DISTINCT FROM"))
    # json has no equality operator: the stored text is compared, as written (json.dumps).
    MEMBERSHIP_UPSERT = (
        f"INSERT INTO memberships ({', '.join(MEMBERSHIP_COLUMNS)}) SELECT %s, t.user_id, "
        "t.roles::json, t.is_active, t.status_reason, t.inactive_at, %s, %s FROM "
        "unnest(%s::int[], %s::text[], %s::bool[], %s::text[], %s::timestamp[]) "
        "AS t(user_id, roles, is_active, status_reason, inactive_at) " +
        _MEMBERSHIP_CONFLICT.format(
            roles_differ="memberships.roles::text IS DISTINCT FROM excluded.roles::text"))

    @staticmethod
    def list_param(values: list) -> list:
        return values

    def refresh_statistics(self) -> None:
        """ANALYZE the tables a big sync grows. Planned with a table's statistics from when it
        was small (or never analyzed: a new install, autovacuum not yet round), the page's
        SELECT scans every person of the registration instead of looking each one up: 40 ms
        a page at 50,000 members instead of 1."""
        self._run(lambda: self.cursor.execute("ANALYZE users, memberships"), "ANALYZE")

    def claim(self, claims: list[tuple[str, str, int]]) -> None:
        """One statement for the page's claims: a page of people imported from LTI 1.1 took
        4 ms as 50 single-row updates."""
        subs, rules, ids = ([claim[i] for claim in claims] for i in range(3))
        self._run(lambda: self.cursor.execute(self.CLAIM_UPDATE, (subs, rules, ids)), self.CLAIM_UPDATE)

    def upsert_users(self, registration_id: int, now: datetime,
                     rows: list[tuple]) -> list[tuple]:
        """See ``SqlitePageSql.upsert_users``: one statement whatever the page size."""
        columns = [list(column) for column in zip(*rows)]
        return self._all(self.USER_UPSERT, [registration_id, now, *columns])

    def upsert_memberships(self, context_id: int, now: datetime,
                           rows: list[tuple]) -> list[tuple]:
        """See ``SqlitePageSql.upsert_memberships``: one statement whatever the page size."""
        user_ids, roles, active, reasons, inactive_at = ([] for _ in range(5))
        for user_id, member_roles, is_active, reason, inactive in rows:
            user_ids.append(user_id)
            roles.append(member_roles)
            active.append(is_active)
            reasons.append(reason)
            inactive_at.append(inactive)
        return self._all(self.MEMBERSHIP_UPSERT, [context_id, now, now, user_ids, roles, active,
                                                  reasons, inactive_at])
