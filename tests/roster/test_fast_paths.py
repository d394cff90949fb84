"""What the fast sync path must keep: no row rewritten, progress shown while it runs, pages
already stored kept when a later page fails, no fetch thread left behind, platform calls that
honour the environment's proxy but never netrc credentials."""
from __future__ import annotations

import math
import threading
import time

from rosterkit import add_course_to_tool, count_commit_batches, fast_retries, roster, sync  # noqa: F401
from sqlalchemy import select

TABLES = ("users", "memberships")


class RowWrites:
    """Database triggers counting every row inserted, updated or deleted in users and memberships,
    whichever connection writes it."""

    def __init__(self, tool) -> None:
        self.tool = tool

    def _run(self, *statements: str) -> None:
        from tool.db import db
        with self.tool.app.app_context():
            conn = db.session.connection()
            for statement in statements:
                conn.exec_driver_sql(statement)
            db.session.commit()
            db.session.remove()

    def __enter__(self) -> "RowWrites":
        from tool.db import db
        statements = ["CREATE TABLE test_row_writes (tbl VARCHAR(20), op VARCHAR(10))"]
        if db.dialect != "sqlite":
            statements.append(
                "CREATE FUNCTION test_count_write() RETURNS trigger AS $$ BEGIN INSERT INTO "
                "test_row_writes VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$ LANGUAGE plpgsql")
        for table in TABLES:
            for op in ("INSERT", "UPDATE", "DELETE"):
                name = f"test_{table}_{op.lower()}"
                statements.append(
                    f"CREATE TRIGGER {name} AFTER {op} ON {table} BEGIN INSERT INTO test_row_writes "
                    f"VALUES ('{table}', '{op}'); END" if db.dialect == "sqlite" else
                    f"CREATE TRIGGER {name} AFTER {op} ON {table} FOR EACH ROW EXECUTE FUNCTION "
                    "test_count_write()")
        self.sqlite = db.dialect == "sqlite"
        self._run(*statements)
        return self

    def seen(self) -> list[tuple[str, str]]:
        from tool.db import db
        with self.tool.app.app_context():
            rows = db.session.connection().exec_driver_sql(
                "SELECT tbl, op FROM test_row_writes").all()
            db.session.remove()
        return [tuple(r) for r in rows]

    def clear(self) -> None:
        self._run("DELETE FROM test_row_writes")

    def __exit__(self, *exc_info) -> None:
        drops = [f"DROP TRIGGER test_{t}_{op}" + ("" if self.sqlite else f" ON {t}")
                 for t in TABLES for op in ("insert", "update", "delete")]
        if not self.sqlite:
            drops.append("DROP FUNCTION test_count_write()")
        self._run(*drops, "DROP TABLE test_row_writes")


def test_an_unchanged_resync_writes_no_row_and_a_changed_member_writes_one(tool, lms):
    p = lms.platform
    students = p.add_many(lms.course, 130)  # three pages
    context_id = add_course_to_tool(lms)
    with RowWrites(tool) as writes:
        first = sync(tool, context_id)
        assert first.status == "succeeded" and first.members_seen == 132
        assert len(writes.seen()) == 2 * 132  # a user and a membership each
        writes.clear()

        again = sync(tool, context_id)
        assert again.status == "succeeded" and again.members_seen == 132
        assert writes.seen() == [] and again.rows_written == 0

        students[70].name = "Renamed Student"  # the platform's answer changes for one person
        third = sync(tool, context_id, full=True)
        assert third.status == "succeeded"
        assert writes.seen() == [("users", "UPDATE")] and third.rows_written == 1
    assert roster(tool, context_id)[students[70].sub]["name"] == "Renamed Student"


def test_progress_is_committed_page_by_page_while_pages_arrive_slowly(tool, lms):
    """The instructor page polls the run: it must move while the sync runs, and the members of
    pages already read are stored before the last page arrives."""
    from tool.db import db
    from tool.models import Membership, RosterSync
    p = lms.platform
    p.add_many(lms.course, 500)  # 11 pages
    context_id = add_course_to_tool(lms)
    p.faults.delay = 0.05  # each page takes a while to arrive, as from a busy Canvas
    seen: list[tuple[int, int]] = []
    done = threading.Event()

    def watch():
        while not done.is_set():
            with tool.app.app_context():
                run = db.session.scalars(select(RosterSync).where(
                    RosterSync.context_id == context_id)).first()
                stored = db.session.query(Membership).filter_by(context_id=context_id).count()
                if run is not None:
                    seen.append((run.pages_fetched, stored))
                db.session.remove()
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        run = sync(tool, context_id)
    finally:
        done.set()
        watcher.join()
        p.faults.delay = 0
    assert run.status == "succeeded" and run.pages_fetched == 11
    midway = [(pages, stored) for pages, stored in seen if 0 < pages < 11]
    assert midway, seen
    assert all(stored >= 50 * pages for pages, stored in midway)


def test_pages_are_committed_a_few_at_a_time(tool, lms, monkeypatch):
    from tool.roster import sync as sync_module
    lms.platform.add_many(lms.course, 998)  # 20 pages of 50
    context_id = add_course_to_tool(lms)
    batches = count_commit_batches(monkeypatch)
    run = sync(tool, context_id)
    assert run.status == "succeeded" and run.pages_fetched == 20
    assert sum(batches) == 20
    assert max(batches) <= sync_module.COMMIT_PAGES
    assert len(batches) >= math.ceil(20 / sync_module.COMMIT_PAGES)


def test_a_page_failing_after_stored_pages_keeps_them_drops_no_one_and_says_why(tool, lms):
    p = lms.platform
    context_id = add_course_to_tool(lms)
    assert sync(tool, context_id).status == "succeeded"  # teacher and student
    p.add_many(lms.course, 400)  # 9 pages in all
    p.faults.fail_at_page = 5
    try:
        run = sync(tool, context_id)
    finally:
        p.faults.fail_at_page = None

    assert run.status == "failed"
    assert "HTTP 500" in run.error and "gave up" in run.error
    assert run.pages_fetched == 4 and run.members_seen == 200
    members = roster(tool, context_id)
    assert len(members) >= 200  # what pages 1 to 4 listed is stored
    assert all(m["active"] for m in members.values())  # and no one was dropped
    assert not [t for t in threading.enumerate() if t.name == "roster-page-feed"]

    again = sync(tool, context_id)
    assert again.status == "succeeded" and again.members_seen == 402
    assert len(roster(tool, context_id)) == 402


def test_platform_calls_use_the_proxy_from_the_environment_but_never_netrc(tmp_path, monkeypatch):
    from tool.lti import http
    netrc = tmp_path / "netrc"
    netrc.write_text("machine canvas.example login someone password secret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.school.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    session = http.PlatformSession()
    sent = session.prepare_request(__import__("requests").Request(
        "GET", "https://canvas.example/api", headers={"Authorization": "Bearer abc"}))
    assert sent.headers["Authorization"] == "Bearer abc"
    settings = session.merge_environment_settings("https://canvas.example/api", {}, None, None, None)
    assert settings["proxies"]["https"] == "http://proxy.school.example:3128"
    direct = session.merge_environment_settings("https://internal.example/x", {}, None, None, None)
    assert "https" not in direct["proxies"]
