"""The claim lookups' indexes cover only people without a ``sub`` (migration 0006), on SQLite
and PostgreSQL, and claiming by every rule still finds the person imported before LTI 1.3."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from emulator import LEARNER
from rosterkit import add_course_to_tool, fast_retries, roster, sync  # noqa: F401

PARTIAL = ("ix_users_unclaimed_legacy", "ix_users_unclaimed_sourcedid")


def _index_definitions(conn) -> dict[str, str]:
    """Index name -> its CREATE statement, for the indexes of ``users``."""
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users'")
    else:
        rows = conn.exec_driver_sql(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'users'")
    return {name: sql or "" for name, sql in rows}


def test_claim_indexes_are_partial_after_upgrade(tool):
    from tool.db import db
    with tool.app.app_context(), db.engine.connect() as conn:
        found = _index_definitions(conn)
    assert "ix_users_registration_legacy" not in found
    assert "ix_users_registration_sourcedid" not in found
    for name in PARTIAL:
        definition = found[name].lower().replace("(", "").replace(")", "")
        assert definition.endswith("where sub is null"), found[name]


def test_migrations_match_the_models_on_this_database(tool):
    from tool.db import db
    from tool.models import Base
    with tool.app.app_context(), db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], diff


def _plan(conn, sql: str, params) -> list[str]:
    return [row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)]


def test_claim_lookups_use_their_own_index_on_sqlite(tool, lms, db_session):
    """Each lookup of a person imported before LTI 1.3 reads that person's index entry, not
    every imported person's. SQLite plans without statistics, and left to itself it took the
    ``(registration_id, sub)`` key for "sub IS NULL": 1.7 ms per launch lookup and 2.6 ms per
    roster page with 20,000 imported people, growing with each one."""
    from sqlalchemy import event, insert

    from tool.db import db
    from tool.models import Registration, User
    from tool.roster import matching
    from tool.roster.pagesql import SqlitePageSql
    if db.dialect != "sqlite":
        pytest.skip("PostgreSQL plans from statistics, refreshed after a big sync (pagesql.py)")
    reg_id = lms.registration_id
    db_session.execute(insert(User), [
        {"registration_id": reg_id, "sub": None, "name": f"Imported {i}", "matched_by": "created",
         "lti11_legacy_user_id": f"claim-legacy-{i}", "lis_person_sourcedid": f"CLAIM-SIS-{i}"}
        for i in range(300)])
    db_session.commit()
    with db.engine.connect() as conn:
        for rule, index in (("lti11_legacy_user_id", "ix_users_unclaimed_legacy"),
                            ("lis_person_sourcedid", "ix_users_unclaimed_sourcedid")):
            plan = _plan(conn, SqlitePageSql.CLAIM_SELECT[rule], (reg_id, '["x"]'))
            assert any(step.startswith(f"SEARCH users USING INDEX {index} (registration_id=? AND {rule}=?)")
                       for step in plan), plan

    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, params, _context, _many):
        if "sub IS NULL" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    registration = db_session.get(Registration, reg_id)
    event.listen(db.engine, "before_cursor_execute", record)
    try:
        by_sis = matching.find_or_create_user(db_session, registration, "claim-new-sub-1",
                                              {"lis_person_sourcedid": "CLAIM-SIS-250"})
        by_legacy = matching.find_or_create_user(db_session, registration, "claim-new-sub-2",
                                                 {"lti11_legacy_user_id": "claim-legacy-299"})
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert (by_sis.name, by_sis.matched_by) == ("Imported 250", "lis_person_sourcedid")
    assert (by_legacy.name, by_legacy.matched_by) == ("Imported 299", "lti11_legacy_user_id")
    assert seen, "the claim lookups were not seen"
    conn = db_session.connection()
    for statement, params in seen:
        plan = _plan(conn, statement, params)
        assert any("USING INDEX ix_users_unclaimed_" in step for step in plan), (statement, plan)
    db_session.rollback()


def test_downgrade_restores_the_full_indexes_and_upgrade_makes_them_partial_again(tmp_path):
    from alembic import command

    from tool.db import make_engine
    from tool.migrate import alembic_config, upgrade
    engine = make_engine(f"sqlite:///{tmp_path / 'round.db'}")
    upgrade(engine)
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    with engine.connect() as conn:
        found = _index_definitions(conn)
    assert "where" not in found["ix_users_registration_legacy"].lower()
    assert not set(PARTIAL) & set(found)
    upgrade(engine)
    with engine.connect() as conn:
        found = _index_definitions(conn)
    assert set(PARTIAL) <= set(found) and "ix_users_registration_legacy" not in found
    engine.dispose()


def test_sync_claims_people_by_legacy_id_and_by_sourcedid_and_leaves_others(tool, lms, db_session):
    from tool.models import User
    p = lms.platform
    by_sourcedid = p.add_user(name="Sis Person", sourcedid="SIS-0042")
    p.enroll(lms.course, by_sourcedid, roles=[LEARNER])
    imported = [
        User(registration_id=lms.registration_id, sub=None, name="Old Import",
             lti11_legacy_user_id=lms.student.lti11_legacy_user_id, matched_by="created"),
        User(registration_id=lms.registration_id, sub=None, name="Old Sis",
             lis_person_sourcedid="SIS-0042", matched_by="created"),
        User(registration_id=lms.registration_id, sub=None, name="Never Listed",
             lis_person_sourcedid="SIS-9999", matched_by="created"),
    ]
    db_session.add_all(imported)
    db_session.commit()
    ids = [u.id for u in imported]
    context_id = add_course_to_tool(lms)

    run = sync(tool, context_id)

    assert run.status == "succeeded", run.error
    members = roster(tool, context_id)
    assert (members[lms.student.sub]["user_id"], members[lms.student.sub]["matched_by"]) == \
        (ids[0], "lti11_legacy_user_id")
    assert (members[by_sourcedid.sub]["user_id"], members[by_sourcedid.sub]["matched_by"]) == \
        (ids[1], "lis_person_sourcedid")
    db_session.expire_all()
    assert db_session.get(User, ids[2]).sub is None
    again = sync(tool, context_id)
    assert again.status == "succeeded" and again.rows_written == 0
