"""Roster sync against the emulated Canvas over real HTTP, on SQLite and PostgreSQL."""
from __future__ import annotations

import threading
import time

from emulator import INSTRUCTOR, LEARNER, NRPS_MEDIA_TYPE, TA
from rosterkit import (add_course_to_tool, fast_retries, nrps_requests, roster,  # noqa: F401
                       sync)


def test_full_sync_of_a_multi_page_course(tool, lms):
    p = lms.platform
    students = p.add_many(lms.course, 120)
    context_id = add_course_to_tool(lms)

    run = sync(tool, context_id)

    assert run.status == "succeeded", run.error
    assert (run.pages_fetched, run.members_seen) == (3, 122)
    members = roster(tool, context_id)
    assert len(members) == 122 and all(m["active"] for m in members.values())
    s = students[77]
    expected = {"name": s.name, "email": s.email, "given_name": s.given_name,
                "family_name": s.family_name, "picture": s.picture,
                "legacy": s.lti11_legacy_user_id, "roles": [LEARNER]}
    assert {k: members[s.sub][k] for k in expected} == expected
    assert members[lms.teacher.sub]["roles"] == [INSTRUCTOR]
    calls = nrps_requests(p)
    assert [c["status"] for c in calls] == [200, 200, 200]
    assert all(c["headers"]["Accept"] == NRPS_MEDIA_TYPE for c in calls)
    assert all("roster-grades" in c["headers"]["User-Agent"] for c in calls)
    # Pages 2 and 3 came from the Link header with the cursor's case intact (else 400).
    assert "cursor=Cx" in calls[2]["query"]
    assert p.token_requests == 1


def test_a_second_unchanged_sync_writes_nothing(tool, lms):
    lms.platform.add_many(lms.course, 60)
    context_id = add_course_to_tool(lms)
    first = sync(tool, context_id)
    second = sync(tool, context_id)
    assert first.rows_written == 2 * 62
    assert second.status == "succeeded" and second.rows_written == 0 and second.members_seen == 62


def test_a_dropped_student_is_inactive_and_comes_back(tool, lms):
    p = lms.platform
    context_id = add_course_to_tool(lms)
    assert sync(tool, context_id).status == "succeeded"

    p.unenroll(lms.course, lms.student)  # Canvas just stops listing them
    run = sync(tool, context_id)
    after_drop = roster(tool, context_id)[lms.student.sub]
    assert run.members_dropped == 1
    assert after_drop["active"] is False and after_drop["reason"] == "absent"
    assert after_drop["inactive_at"] is not None
    assert roster(tool, context_id)[lms.teacher.sub]["active"] is True

    p.enroll(lms.course, lms.student, roles=[LEARNER])
    sync(tool, context_id)
    back = roster(tool, context_id)[lms.student.sub]
    assert back["active"] is True and back["reason"] is None and back["inactive_at"] is None
    assert back["user_id"] == after_drop["user_id"]


def test_inactive_and_deleted_statuses_from_other_platforms(tool, lms):
    p = lms.platform
    p.nrps_report_inactive = True
    ta = p.add_user(name="Tia Assistant")
    p.enroll(lms.course, ta, roles=[TA])
    context_id = add_course_to_tool(lms)
    sync(tool, context_id)
    p.set_status(lms.course, lms.student, "Inactive")
    p.set_status(lms.course, ta, "Deleted")
    sync(tool, context_id)
    members = roster(tool, context_id)
    assert (members[lms.student.sub]["active"], members[lms.student.sub]["reason"]) == (False, "Inactive")
    assert (members[ta.sub]["active"], members[ta.sub]["reason"]) == (False, "Deleted")


def test_a_failure_at_page_k_changes_nobody_and_can_be_run_again(tool, lms):
    p = lms.platform
    p.add_many(lms.course, 130)
    context_id = add_course_to_tool(lms)
    sync(tool, context_id)
    before = roster(tool, context_id)
    p.unenroll(lms.course, lms.student)
    p.faults.fail_at_page = 3

    failed = sync(tool, context_id)

    assert failed.status == "failed"
    assert "HTTP 500" in failed.error and "page 3 failed" in failed.error
    assert failed.pages_fetched == 2
    after = roster(tool, context_id)
    assert {s: (m["active"], m["reason"]) for s, m in after.items()} == \
           {s: (m["active"], m["reason"]) for s, m in before.items()}

    p.faults.fail_at_page = None
    again = sync(tool, context_id)
    assert again.status == "succeeded"
    assert roster(tool, context_id)[lms.student.sub]["active"] is False


def test_throttle_403_429_and_5xx_are_retried_and_succeed(tool, lms):
    p = lms.platform
    p.add_many(lms.course, 60)
    context_id = add_course_to_tool(lms)
    p.faults.throttle_403 = 2
    p.faults.status_429 = 1
    p.faults.status_5xx = 2
    started = time.monotonic()
    run = sync(tool, context_id)
    assert run.status == "succeeded", run.error
    assert run.retries == 5 and run.members_seen == 62
    statuses = [c["status"] for c in nrps_requests(p)]
    assert statuses.count(403) == 2 and statuses.count(429) == 1 and statuses.count(200) == 2
    # The 429 said Retry-After: 1, and that was honoured.
    assert time.monotonic() - started >= 1.0


def test_gives_up_after_the_retry_budget_with_the_reason(tool, lms, fast_retries):  # noqa: F811
    p = lms.platform
    context_id = add_course_to_tool(lms)
    p.faults.throttle_403 = 10_000
    started = time.monotonic()
    run = sync(tool, context_id)
    elapsed = time.monotonic() - started
    assert run.status == "failed"
    assert "Rate Limit Exceeded" in run.error and "gave up after" in run.error
    assert elapsed < fast_retries.service_retry_budget + 2
    assert roster(tool, context_id) == {}


def test_a_platform_that_times_out_is_given_up_on(tool, lms, fast_retries):  # noqa: F811
    fast_retries.http_read_timeout = 0.3
    fast_retries.service_retry_budget = 1.5
    context_id = add_course_to_tool(lms)
    lms.platform.faults.delay = 0.8
    run = sync(tool, context_id)
    lms.platform.faults.delay = 0
    assert run.status == "failed" and "timed out" in run.error


def test_pacing_slows_down_as_the_rate_limit_remaining_falls(tool, lms, fast_retries):  # noqa: F811
    p = lms.platform
    p.add_many(lms.course, 100)
    context_id = add_course_to_tool(lms)
    fast_retries.service_rate_leak = 250.0  # 150 units below the low-water mark: 0.6 s
    p.faults.rate_limit_remaining = 0.0
    sync(tool, context_id)
    times = [c["time"] for c in nrps_requests(p)]
    assert len(times) == 3
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.5


def test_a_401_refreshes_the_token_once(tool, lms):
    p = lms.platform
    context_id = add_course_to_tool(lms)
    sync(tool, context_id)
    assert p.token_requests == 1
    p.revoke_tokens()
    run = sync(tool, context_id)
    assert run.status == "succeeded"
    assert p.token_requests == 2
    assert [c["status"] for c in nrps_requests(p)][-2:] == [401, 200]


def test_one_token_serves_several_syncs(tool, lms):
    p = lms.platform
    other = p.add_course(label="CHEM", title="Chemistry")
    p.enroll(other, lms.teacher, roles=[INSTRUCTOR])
    first, second = add_course_to_tool(lms), add_course_to_tool(lms, other)
    for context_id in (first, second, first, second):
        assert sync(tool, context_id).status == "succeeded"
    assert p.token_requests == 1


def test_two_concurrent_syncs_of_one_course_do_not_both_run(tool, lms):
    p = lms.platform
    p.add_many(lms.course, 100)
    context_id = add_course_to_tool(lms)
    p.faults.delay = 0.3
    runs = []
    barrier = threading.Barrier(2)

    def worker():
        barrier.wait()
        runs.append(sync(tool, context_id))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.status for r in runs) == ["skipped", "succeeded"]
    skipped = next(r for r in runs if r.status == "skipped")
    assert "already running" in skipped.error and skipped.pages_fetched == 0
    assert len(nrps_requests(p)) == 3  # one walk of three pages
    p.faults.delay = 0
    assert sync(tool, context_id).status == "succeeded"  # the course lock was released


def test_differences_link_is_followed_when_offered(tool, lms):
    p = lms.platform
    p.nrps_offer_differences = True
    p.add_many(lms.course, 70)
    newcomer = p.add_user(name="Nia Newcomer")
    context_id = add_course_to_tool(lms)
    assert sync(tool, context_id).used_differences is False
    p.unenroll(lms.course, lms.student)
    p.enroll(lms.course, newcomer, roles=[LEARNER])
    p.enroll(lms.course, lms.teacher, roles=[INSTRUCTOR, TA])

    run = sync(tool, context_id)

    assert run.status == "succeeded" and run.used_differences is True
    assert run.members_seen == 3 and run.pages_fetched == 1
    assert "since=Df" in nrps_requests(p)[-1]["query"]
    members = roster(tool, context_id)
    assert (members[lms.student.sub]["active"], members[lms.student.sub]["reason"]) == (False, "Deleted")
    assert members[newcomer.sub]["active"] is True
    assert members[lms.teacher.sub]["roles"] == [INSTRUCTOR, TA]
    assert sum(m["active"] for m in members.values()) == 72  # nobody else was closed out


def test_role_and_rlid_filters_read_part_of_the_roster_and_drop_no_one(tool, lms):
    p = lms.platform
    p.add_many(lms.course, 10)
    context_id = add_course_to_tool(lms)

    by_role = sync(tool, context_id, role=INSTRUCTOR)
    assert by_role.status == "succeeded" and by_role.members_seen == 1
    assert "role=" in nrps_requests(p)[-1]["query"]
    assert set(roster(tool, context_id)) == {lms.teacher.sub}

    sync(tool, context_id)
    p.restrict_link(lms.course, "link-1", [lms.student])
    by_link = sync(tool, context_id, rlid="link-1")
    assert by_link.status == "succeeded" and by_link.members_seen == 2  # the student + instructor
    assert "rlid=link-1" in nrps_requests(p)[-1]["query"]
    assert all(m["active"] for m in roster(tool, context_id).values())
    assert len(roster(tool, context_id)) == 12


def test_a_launch_before_and_a_sync_after_give_one_person(tool, lms):
    p = lms.platform
    response = lms.launch(lms.student)
    assert response.status_code == 200
    from rosterkit import context_id_of
    context_id = context_id_of(lms)
    launched = roster(tool, context_id)[lms.student.sub]

    sync(tool, context_id)

    members = roster(tool, context_id)
    assert len(members) == 2
    assert members[lms.student.sub]["user_id"] == launched["user_id"]
    assert p.users[lms.student.sub].name == members[lms.student.sub]["name"]
    from sqlalchemy import func, select
    from tool.db import db
    from tool.models import User
    with tool.app.app_context():
        people = db.session.scalar(select(func.count()).select_from(User).where(
            User.registration_id == lms.registration_id))
        db.session.remove()
    assert people == 2


def test_a_person_imported_before_lti13_is_claimed_by_the_sync(tool, lms, db_session):
    from tool.models import User
    p = lms.platform
    legacy = User(registration_id=lms.registration_id, sub=None, name="Old Import",
                  lti11_legacy_user_id=lms.student.lti11_legacy_user_id, matched_by="created")
    db_session.add(legacy)
    db_session.commit()
    context_id = add_course_to_tool(lms)
    sync(tool, context_id)
    member = roster(tool, context_id)[lms.student.sub]
    assert member["user_id"] == legacy.id
    assert member["matched_by"] == "lti11_legacy_user_id"
    assert member["name"] == p.users[lms.student.sub].name


def test_launch_and_sync_agree_on_roles_so_syncs_after_a_launch_write_nothing(tool, lms):
    from rosterkit import context_id_of
    # Canvas adds institution and system roles to the launch; NRPS lists course roles only.
    assert lms.launch(lms.teacher).status_code == 200
    assert lms.launch(lms.student).status_code == 200
    context_id = context_id_of(lms)
    assert sync(tool, context_id).status == "succeeded"
    members = roster(tool, context_id)
    assert members[lms.teacher.sub]["roles"] == [INSTRUCTOR]
    assert members[lms.student.sub]["roles"] == [LEARNER]
    assert lms.launch(lms.teacher).status_code == 200
    again = sync(tool, context_id)
    assert again.status == "succeeded" and again.rows_written == 0
    assert roster(tool, context_id)[lms.teacher.sub]["roles"] == [INSTRUCTOR]


def test_odd_member_entries_are_skipped_or_cut_to_fit_and_the_sync_succeeds(tool, lms):
    p = lms.platform
    long_named = p.add_user(name="N" * 600)
    p.enroll(lms.course, long_named, roles=[LEARNER])
    context_id = add_course_to_tool(lms)
    run = sync(tool, context_id)
    assert run.status == "succeeded", run.error
    members = roster(tool, context_id)
    assert len(members[long_named.sub]["name"]) == 300
    assert sync(tool, context_id).rows_written == 0  # the cut name is not rewritten every time
