"""After-sync hooks: told which course is fresh once a sync committed, never able to fail it."""
from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from rosterkit import add_course_to_tool, fast_retries, roster, sync  # noqa: F401


@pytest.fixture
def after_sync():
    """The hook list, emptied of what a test registered afterwards."""
    from tool.roster import hooks
    saved = list(hooks.after_sync)
    yield hooks.after_sync
    hooks.after_sync[:] = saved


def _active_subs(session, context_id: int) -> set[str]:
    from tool.models import Membership, User
    return set(session.scalars(select(User.sub).join(Membership, Membership.user_id == User.id)
                               .where(Membership.context_id == context_id,
                                      Membership.is_active.is_(True))))


def test_a_hook_sees_the_synced_roster_of_its_course(tool, lms, after_sync):
    students = lms.platform.add_many(lms.course, 3)
    context_id = add_course_to_tool(lms)
    calls = []
    after_sync.append(lambda session, cid: calls.append((cid, _active_subs(session, cid))))

    run = sync(tool, context_id)

    assert run.status == "succeeded", run.error
    # Called once, with the course's id, after the members were committed.
    assert calls == [(context_id, {s.sub for s in students} | {lms.teacher.sub, lms.student.sub})]


def test_no_hook_runs_after_a_failed_sync(tool, lms, after_sync):
    context_id = add_course_to_tool(lms)
    calls = []
    after_sync.append(lambda session, cid: calls.append(cid))
    lms.platform.faults.fail_at_page = 1
    try:
        run = sync(tool, context_id)
    finally:
        lms.platform.faults.fail_at_page = None

    assert run.status == "failed"
    assert calls == []
    sync(tool, context_id)
    assert calls == [context_id]


def test_a_raising_hook_is_logged_and_neither_fails_the_sync_nor_stops_the_others(
        tool, lms, after_sync, caplog):
    lms.platform.add_many(lms.course, 2)
    context_id = add_course_to_tool(lms)
    calls = []

    def broken(session, cid):
        raise RuntimeError("a follower fell over")

    after_sync.extend([broken, lambda session, cid: calls.append(cid)])
    with caplog.at_level(logging.ERROR, logger="tool.roster.hooks"):
        run = sync(tool, context_id)

    assert run.status == "succeeded" and run.error is None
    assert len(roster(tool, context_id)) == 4
    assert calls == [context_id]
    failures = [r for r in caplog.records if r.name == "tool.roster.hooks"]
    assert len(failures) == 1 and failures[0].exc_info[0] is RuntimeError
