"""Statements run on the driver (tool/driver.py) behave as the session's own would.

What the rest of the tool relies on: values written there read back through the ORM unchanged
(datetimes to the microsecond, JSON), a refused write raises SQLAlchemy's own exception type and
leaves the session usable after a rollback, the statements join the session's transaction, and
whoever watches the engine's statements sees them.
"""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import event, exc, select

from tool.driver import Statement, driver, read_json, read_time
from tool.models import UsedNonce

_INSERT = Statement("INSERT INTO used_nonces (nonce, registration_id, expires_at) "
                    "VALUES (:nonce, :registration_id, :expires_at)")
_READ = Statement("SELECT expires_at FROM used_nonces WHERE nonce = :nonce")


def test_parameters_are_written_for_each_driver():
    stmt = Statement("SELECT a FROM t WHERE b = :b AND c::text = :c AND d LIKE '5%'")
    assert stmt.sqlite == "SELECT a FROM t WHERE b = :b AND c::text = :c AND d LIKE '5%'"
    assert stmt.postgresql == "SELECT a FROM t WHERE b = %(b)s AND c::text = %(c)s AND d LIKE '5%%'"


@pytest.mark.parametrize("when", [datetime(2026, 11, 30, 23, 5, 1, 123456),
                                  datetime(2026, 11, 30, 23, 5, 1)])  # no microseconds at all
def test_a_time_written_on_the_driver_reads_back_the_same_through_the_orm(db_session, when):
    run = driver(db_session)
    run.execute(_INSERT, {"nonce": f"driver-time-{when.microsecond}", "registration_id": 1,
                          "expires_at": run.time(when)})
    db_session.flush()
    row = db_session.scalars(select(UsedNonce).where(UsedNonce.nonce == f"driver-time-{when.microsecond}")).one()
    assert row.expires_at == when
    # And the driver reads the ORM's own writes the same way.
    assert read_time(run.scalar(_READ, {"nonce": f"driver-time-{when.microsecond}"})) == when
    # Comparisons in SQL see the same order as in Python (SQLite compares the text).
    later = Statement("SELECT count(*) FROM used_nonces WHERE nonce = :nonce AND expires_at < :t")
    assert run.scalar(later, {"nonce": f"driver-time-{when.microsecond}",
                              "t": run.time(when.replace(microsecond=when.microsecond + 1))}) == 1
    db_session.rollback()


def test_json_written_on_the_driver_reads_back_through_the_orm(db_session, lms):
    from tool.models import PageSession
    assert lms.launch(lms.student).status_code == 200
    session_row = db_session.scalars(select(PageSession).order_by(PageSession.id.desc())).first()
    assert isinstance(session_row.roles, list) and session_row.roles
    assert all(isinstance(origin, str) for origin in session_row.frame_origins)
    run = driver(db_session)
    stored = run.scalar(Statement("SELECT roles FROM page_sessions WHERE id = :id"), {"id": session_row.id})
    assert read_json(stored) == session_row.roles


def test_a_refused_write_raises_sqlalchemys_error_and_the_session_goes_on(db_session):
    run = driver(db_session)
    values = {"nonce": "driver-twice", "registration_id": 1, "expires_at": run.time(datetime(2030, 1, 1))}
    run.execute(_INSERT, values)
    with pytest.raises(exc.IntegrityError) as raised:
        driver(db_session).execute(_INSERT, values)
    assert "[parameters:" not in str(raised.value)  # the statement's parameters are never listed
    db_session.rollback()
    # The rollback undid both: the first insert joined the session's transaction.
    assert db_session.get(UsedNonce, "driver-twice") is None
    driver(db_session).execute(_INSERT, values)
    db_session.rollback()


def test_the_engines_statement_listeners_see_driver_statements(db_session):
    from tool.db import db
    seen = []

    def record(_conn, _cursor, statement, _params, _context, _many):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        driver(db_session).scalar(_READ, {"nonce": "nobody"})
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
        db_session.rollback()
    assert any("FROM used_nonces" in s for s in seen), seen


# -- PostgreSQL: the driver's statements are prepared, and only they ---------------------------
_READ_AS_PREPARED = "SELECT expires_at FROM used_nonces WHERE nonce = $1"  # as the server keeps it


def _prepared_on(raw) -> list[str]:
    return [r[0] for r in raw.execute("SELECT statement FROM pg_prepared_statements").fetchall()]


@pytest.fixture
def pg_connection(tool):
    from tool.db import db
    if db.dialect != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's (SQLite has no planning to save)")
    with db.engine.connect() as conn:
        yield conn


def _read_prepared(conn):
    """The driver's way: a prepared statement inside the connection's transaction."""
    if not conn.in_transaction():
        conn.begin()
    return conn.connection.driver_connection.cursor().execute(
        _READ.postgresql, {"nonce": "nobody"}, prepare=True).fetchall()


def test_a_driver_statement_stays_prepared_after_a_clean_rollback(pg_connection):
    _read_prepared(pg_connection)
    pg_connection.rollback()  # as every read-only request ends
    raw = pg_connection.connection.driver_connection
    from psycopg.pq import TransactionStatus
    assert raw.info.transaction_status == TransactionStatus.IDLE  # it did roll back
    assert _READ_AS_PREPARED in _prepared_on(raw)
    assert _read_prepared(pg_connection) == []
    pg_connection.rollback()


def test_nothing_else_is_prepared_however_often_it_runs(pg_connection):
    from sqlalchemy import text
    for _ in range(12):  # psycopg's own default would prepare it after 5 runs
        pg_connection.execute(text("SELECT count(*) FROM users WHERE id > :n"), {"n": 0})
    assert not any("FROM users WHERE id >" in s for s in _prepared_on(pg_connection.connection.driver_connection))
    pg_connection.rollback()


def test_a_prepared_statement_the_schema_outdated_fails_once_then_runs_again(tool, pg_connection):
    """A migration that changes a column a prepared statement returns: the statement fails on
    its next run (PostgreSQL refuses a plan whose result type changed), the failed transaction's
    rollback forgets every prepared statement, and the next run prepares it afresh."""
    import psycopg
    from tool.db import db
    _read_prepared(pg_connection)
    pg_connection.rollback()
    raw = pg_connection.connection.driver_connection
    with psycopg.connect(tool.settings.database_url, autocommit=True) as other:
        other.execute("ALTER TABLE used_nonces ALTER COLUMN expires_at TYPE text")
    try:
        with pytest.raises(psycopg.errors.FeatureNotSupported):  # "cached plan must not change result type"
            _read_prepared(pg_connection)
        pg_connection.rollback()
        assert _READ_AS_PREPARED not in _prepared_on(raw)
        pg_connection.rollback()
        assert _read_prepared(pg_connection) == []
    finally:
        pg_connection.rollback()
        with psycopg.connect(tool.settings.database_url, autocommit=True) as other:
            other.execute("ALTER TABLE used_nonces ALTER COLUMN expires_at TYPE timestamp "
                          "USING expires_at::timestamp")
        db.engine.dispose()  # no pooled connection keeps a plan made on the text column


def test_pooled_connections_are_replaced_so_plans_follow_the_tables_growth(pg_connection):
    from tool.db import PREPARED_PLAN_AGE, db
    assert db.engine.pool._recycle == PREPARED_PLAN_AGE <= 600


def _prepared_on_every_pooled_connection(engine) -> list[str]:
    """The prepared statements of each connection the pool holds (all taken at once, so each
    is a different one)."""
    from sqlalchemy.pool import QueuePool
    assert isinstance(engine.pool, QueuePool)
    held = [engine.connect() for _ in range(engine.pool.checkedin())]
    try:
        return [s for conn in held for s in _prepared_on(conn.connection.driver_connection)]
    finally:
        for conn in held:
            conn.close()


def test_with_prepared_statements_off_a_launch_still_works_and_nothing_is_prepared(tool, lms):
    """DATABASE_PREPARED_STATEMENTS=0, for a transaction-mode pooler such as PgBouncer, where
    the next transaction may run on a server connection that never saw the statement."""
    from config import Settings
    from tool.db import db, prepares_statements
    if db.dialect != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    url = tool.app.config["DATABASE_URL"]
    assert Settings().database_prepared_statements  # on unless the operator says otherwise
    for _ in range(2):
        assert lms.launch(lms.student, placement="course_navigation").status_code == 200
    assert any("used_nonces" in s for s in _prepared_on_every_pooled_connection(db.engine))

    import dataclasses
    from tool import create_app
    # A second app started with the setting off rebinds the process's engine, as at start-up.
    create_app(dataclasses.replace(tool.settings, database_prepared_statements=False))
    try:
        assert not prepares_statements(db.engine)
        for _ in range(3):
            resp = lms.launch(lms.student, placement="course_navigation")
            assert resp.status_code == 200 and "/student" in resp.url
        assert _prepared_on_every_pooled_connection(db.engine) == []
    finally:
        db.configure(url, prepared=True)


def test_the_setting_reaches_the_engine(monkeypatch):
    from config import Settings
    for raw, expected in (("0", False), ("off", False), ("1", True), ("", True)):
        monkeypatch.setenv("DATABASE_PREPARED_STATEMENTS", raw)
        monkeypatch.setenv("SECRET_KEY", "s" * 40)
        assert Settings.from_env().database_prepared_statements is expected


def test_a_read_opens_no_transaction_and_a_later_write_still_has_one(tool, db_session):
    """Page views read without BEGIN/ROLLBACK on PostgreSQL; a write after such a read is still
    inside a transaction the session can roll back (SQLite only ever begins one for a write)."""
    from tool.db import db
    run = driver(db_session)
    assert run.read(_READ, {"nonce": "nobody"}).fetchall() == []
    raw = db_session.connection().connection.driver_connection
    if db.dialect == "postgresql":
        from psycopg.pq import TransactionStatus
        assert raw.info.transaction_status == TransactionStatus.IDLE
        assert raw.autocommit is False
    else:
        assert not raw.in_transaction
    run.execute(_INSERT, {"nonce": "after-a-read", "registration_id": 1,
                          "expires_at": run.time(datetime(2030, 1, 1))})
    db_session.rollback()
    assert db_session.get(UsedNonce, "after-a-read") is None


def _pooled_backend_pids(engine) -> list[int]:
    """The server process of each connection the pool holds (all taken at once)."""
    held = [engine.connect() for _ in range(engine.pool.checkedin())]
    try:
        return [conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() for conn in held]
    finally:
        for conn in held:
            conn.rollback()
            conn.close()


def test_connections_the_server_dropped_while_idle_are_replaced_before_a_launch_uses_them(
        tool, lms, monkeypatch):
    """A database restart, a proxy or an idle timeout closes pooled connections; the next
    launch after such a pause still lands on its page (the pool pings a connection that sat
    idle, and only then)."""
    import psycopg

    from tool import db as db_module
    from tool.db import db
    if db.dialect != "postgresql":
        pytest.skip("SQLite has no server to drop a connection")
    assert lms.launch(lms.student, placement="course_navigation").status_code == 200
    pids = _pooled_backend_pids(db.engine)
    assert pids
    with psycopg.connect(tool.settings.database_url, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    monkeypatch.setattr(db_module, "IDLE_PING_AFTER", 0.0)  # every pooled connection counts as idle
    resp = lms.launch(lms.student, placement="course_navigation")
    assert resp.status_code == 200 and "/student" in resp.url, resp.text[:300]
    assert not set(_pooled_backend_pids(db.engine)) & set(pids)
