"""How a sync batches its work: pages that arrive while earlier ones are written share one
transaction, the run's own rows are not read back after every commit, and members' role lists
are worked out once per distinct list."""
from __future__ import annotations

import json

from rosterkit import add_course_to_tool, count_commit_batches, fast_retries, roster, sync  # noqa: F401
from sqlalchemy import event


def test_pages_arriving_while_written_share_a_transaction(tool, lms, monkeypatch):
    from tool.roster import sync as sync_module
    lms.platform.add_many(lms.course, 998)  # 20 pages of 50
    context_id = add_course_to_tool(lms)
    monkeypatch.setattr(sync_module, "WRITE_HOLD", 30.0)  # every page arrives within it
    monkeypatch.setattr(sync_module, "PROGRESS_EVERY", 60.0)
    batches = count_commit_batches(monkeypatch)
    run = sync(tool, context_id)
    assert run.status == "succeeded" and run.pages_fetched == 20
    assert batches == [sync_module.COMMIT_PAGES] * 2
    assert len(roster(tool, context_id)) == 1000


def test_the_run_and_registration_are_not_read_back_after_each_commit(tool, lms, monkeypatch):
    from tool.db import db
    from tool.roster import sync as sync_module
    lms.platform.add_many(lms.course, 998)  # 20 pages of 50
    context_id = add_course_to_tool(lms)
    monkeypatch.setattr(sync_module, "COMMIT_PAGES", 1)  # a commit after every page
    reads: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        head = " ".join(statement.split()).lower()
        if head.startswith("select") and (" from roster_syncs" in head or " from registrations" in head
                                          or " from contexts" in head):
            reads.append(head)

    with tool.app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        run = sync(tool, context_id)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert run.status == "succeeded" and run.pages_fetched == 20
    assert len(reads) < 10, reads  # a handful at the start and the end, none per page


def test_a_feed_waits_for_a_page_only_as_long_as_asked():
    import threading

    from tool.roster import feed as feed_module
    from tool.roster.feed import PageFeed, Pause

    arrived = threading.Event()

    class Client:
        pass

    def pages(client, url, role=None, rlid=None):
        yield "page 1"
        arrived.wait(5)
        yield "page 2"

    real = feed_module.nrps.iter_pages
    feed_module.nrps.iter_pages = pages
    try:
        with PageFeed(Client(), "http://x", role=None, rlid=None, pause=Pause(),
                      join_timeout=5) as feed:
            assert feed.ready(5)
            assert feed.next() == "page 1"
            assert not feed.ready(0.01)  # page 2 is held back: the wait ends on time
            arrived.set()
            assert feed.ready(5) and feed.ready()  # asking again keeps the page it holds
            assert feed.next() == "page 2"
            assert feed.next() is None
    finally:
        feed_module.nrps.iter_pages = real


def test_role_lists_are_worked_out_once_and_stored_as_written():
    from tool.lti.roles import course_roles
    from tool.roster.pagewrite import ROLE_MAX, field_text, normalise
    sent = ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner",
            "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Student", "Mentor"]
    first = normalise({"user_id": "a", "roles": list(sent)})
    second = normalise({"user_id": "b", "roles": list(sent)})
    expected = course_roles(sent)
    assert first.roles == second.roles == expected
    assert first.roles_json == second.roles_json == json.dumps(expected)
    for raw in ([" Learner ", 7, "bad\x00role"], [" Learner ", "bad\x00role", "$Canvas.x"]):
        odd = [normalise({"user_id": "c", "roles": list(raw)}) for _ in range(2)]
        expected = course_roles([r for r in map(field_text, raw) if r and len(r) <= ROLE_MAX])
        assert odd[0].roles == odd[1].roles == expected
        assert odd[0].roles_json == json.dumps(expected)
    assert normalise({"user_id": "d", "roles": "Learner"}).roles_json == "[]"
