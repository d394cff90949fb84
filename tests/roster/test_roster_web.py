"""The instructor's roster over real HTTP, background syncs on a real huey consumer, the CLI."""
from __future__ import annotations

import csv
import io
import time

import requests
from emulator import INSTRUCTOR
from rosterkit import (add_course_to_tool, consumer, context_id_of, fast_retries,  # noqa: F401
                       nrps_requests, page_token, roster, sync)


def _progress(tool, t):
    r = requests.get(tool.base_url + "/instructor/roster/progress", params={"t": t}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def _wait_done(tool, t, timeout=20):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        body = _progress(tool, t)
        seen.append(body["sync"])
        if body["sync"] and not body["sync"]["running"]:
            return body, seen
        time.sleep(0.05)
    raise AssertionError(f"sync did not finish: {seen[-1]}")


def test_an_instructor_launch_syncs_the_whole_course_in_the_background(tool, lms, consumer):  # noqa: F811
    p = lms.platform
    p.add_many(lms.course, 150)
    p.faults.delay = 0.25  # slow pages, so progress can be watched while it runs

    page = lms.launch(lms.teacher)

    assert page.status_code == 200 and 'id="roster"' in page.text
    t = page_token(page)
    done, seen = _wait_done(tool, t)
    assert any(s["running"] and 0 < s["pages_fetched"] < 4 for s in seen if s), seen
    assert done["sync"]["status"] == "succeeded" and done["sync"]["trigger"] == "launch"
    assert done["sync"]["pages_fetched"] == 4 and done["sync"]["members_seen"] == 152
    assert done["counts"]["active"] == 152 and done["counts"]["per_role"] == {"Instructor": 1, "Student": 151}
    p.faults.delay = 0

    html = requests.get(tool.base_url + "/instructor", params={"t": t}, timeout=5).text
    assert "Sam Student" in html and "152</strong> active" in html and "succeeded" in html

    # Within the freshness window a second launch starts no new sync.
    before = len(nrps_requests(p))
    lms.launch(lms.teacher)
    time.sleep(0.5)
    assert len(nrps_requests(p)) == before


def test_sync_now_shows_progress_and_the_result(tool, lms, consumer):  # noqa: F811
    page = lms.launch(lms.teacher)
    t = page_token(page)
    _wait_done(tool, t)
    lms.platform.unenroll(lms.course, lms.student)

    r = requests.post(tool.base_url + "/instructor/roster/sync", data={"t": t}, timeout=5)
    assert r.status_code == 200 and r.url.startswith(tool.base_url + "/instructor")
    done, _ = _wait_done(tool, t)
    assert done["sync"]["trigger"] == "manual" and done["sync"]["members_dropped"] == 1

    html = requests.get(tool.base_url + "/instructor", params={"t": t, "status": "inactive"}, timeout=5).text
    assert "Sam Student" in html and "Ada Teacher</td>" not in html and "left the course" in html


def test_a_failed_sync_shows_the_platform_reason(tool, lms, consumer):  # noqa: F811
    lms.platform.faults.fail_at_page = 1
    t = page_token(lms.launch(lms.teacher))
    done, _ = _wait_done(tool, t)
    assert done["sync"]["status"] == "failed" and "page 1 failed" in done["sync"]["error"]
    html = requests.get(tool.base_url + "/instructor", params={"t": t}, timeout=5).text
    assert "page 1 failed" in html


def test_roster_filters_and_csv_export(tool, lms):
    lms.platform.add_many(lms.course, 5)
    t = page_token(lms.launch(lms.teacher))
    sync(tool, context_id_of(lms))

    html = requests.get(tool.base_url + "/instructor", params={"t": t, "role": "Instructor"}, timeout=5).text
    assert "Ada Teacher" in html and "Sam Student" not in html

    r = requests.get(tool.base_url + "/instructor/roster.csv", params={"t": t}, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 7
    sam = next(row for row in rows if row["name"] == "Sam Student")
    assert sam["roles"] == "Student" and sam["status"] == "active" and sam["email"] == lms.student.email
    students = list(csv.DictReader(io.StringIO(requests.get(
        tool.base_url + "/instructor/roster.csv", params={"t": t, "role": "Student"}, timeout=5).text)))
    assert len(students) == 6


def test_students_never_see_the_roster(tool, lms):
    t = page_token(lms.launch(lms.student))
    sync(tool, context_id_of(lms))  # the roster now holds the teacher's name and email
    for method, path in (("get", "/instructor"), ("get", "/instructor/roster.csv"),
                         ("get", "/instructor/roster/progress"), ("post", "/instructor/roster/sync")):
        r = requests.request(method, tool.base_url + path, params={"t": t}, timeout=5)
        assert r.status_code == 403, (path, r.status_code)
        assert lms.teacher.email not in r.text and "Ada Teacher" not in r.text
        assert not r.headers["Content-Type"].startswith("text/csv")


def test_the_scheduled_sync_runs_without_a_launch(tool, lms, consumer):  # noqa: F811
    from tool.roster import runs
    lms.platform.add_many(lms.course, 60)
    context_id = add_course_to_tool(lms)  # known from some earlier launch; nobody launches now
    _other_courses_fresh(tool, context_id)

    with tool.app.app_context():
        queued = runs.schedule_due_syncs()
    from tool.db import db
    from tool.models import RosterSync
    mine = [sid for sid in queued if _context_of(tool, sid) == context_id]
    assert len(mine) == 1
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with tool.app.app_context():
            run = db.session.get(RosterSync, mine[0])
            status, trigger = run.status, run.trigger
            db.session.remove()
        if status not in ("queued", "running"):
            break
        time.sleep(0.05)
    assert (status, trigger) == ("succeeded", "scheduled")
    assert len(roster(tool, context_id)) == 62
    # Synced now, so not due again until the interval has passed.
    assert context_id not in [_context_of(tool, sid) for sid in runs.schedule_due_syncs()]


def test_the_schedule_is_a_periodic_job_and_honours_the_interval(tool, lms):
    from datetime import datetime, timedelta
    from tool import jobs
    from tool.db import db
    from tool.models import utcnow
    from tool.roster.runs import due_for_schedule
    # What the consumer's scheduler asks each minute: the schedule task is due at any minute.
    due = jobs.huey.read_periodic(datetime(2026, 1, 1, 3, 17))
    assert "roster.schedule" in [task.name for task in due]
    context_id = add_course_to_tool(lms)
    sync(tool, context_id)
    with tool.app.app_context():
        interval = tool.settings.roster_sync_interval
        assert context_id not in due_for_schedule(db.session, interval)
        later = utcnow() + timedelta(seconds=interval + 3700)
        assert context_id in due_for_schedule(db.session, interval, now=later)
        db.session.remove()


def _other_courses_fresh(tool, context_id):
    """Courses left by earlier tests (their emulators are gone) count as just synced."""
    from sqlalchemy import select
    from tool.db import db
    from tool.models import Context, utcnow
    from tool.roster import lock
    with tool.app.app_context():
        for other in db.session.scalars(select(Context.id).where(Context.id != context_id)).all():
            lock.state_for(db.session, other).last_success_at = utcnow()
        db.session.commit()
        db.session.remove()


def _context_of(tool, sync_id):
    from tool.db import db
    from tool.models import RosterSync
    with tool.app.app_context():
        value = db.session.get(RosterSync, sync_id).context_id
        db.session.remove()
    return value


def test_cli_sync_and_show(tool, lms):
    p = lms.platform
    add_course_to_tool(lms)
    runner = tool.app.test_cli_runner()

    result = runner.invoke(args=["roster", "sync", lms.course.context_id])
    assert result.exit_code == 0, result.output
    assert "2 members on 1 page," in result.output and "0 retries" in result.output

    p.unenroll(lms.course, lms.student)
    everything = runner.invoke(args=["roster", "sync", "--all", "--client-id", lms.registration.client_id])
    assert everything.exit_code == 0, everything.output
    shown = runner.invoke(args=["roster", "show", lms.course.context_id])
    lines = sorted(shown.output.strip().splitlines())
    assert lines == [f"Ada Teacher\t{lms.teacher.email}\tInstructor\tactive",
                     f"Sam Student\t{lms.student.email}\tStudent\tinactive"]

    p.faults.fail_at_page = 1
    failed = runner.invoke(args=["roster", "sync", lms.course.context_id])
    assert failed.exit_code != 0 and "page 1 failed" in failed.output
    assert runner.invoke(args=["roster", "sync", "no-such-course"]).exit_code != 0


def test_a_launch_without_the_nrps_claim_queues_nothing(tool, lms, consumer):  # noqa: F811
    t = page_token(lms.launch(lms.teacher, nrps=False))
    time.sleep(0.3)
    assert _progress(tool, t)["sync"] is None
    assert nrps_requests(lms.platform) == []
    assert p_instructors(tool, lms) == 1


def p_instructors(tool, lms):
    return sum(1 for m in roster(tool, context_id_of(lms)).values() if INSTRUCTOR in m["roles"])


def test_sync_now_recovers_from_a_queued_run_whose_task_was_lost(tool, lms, consumer):  # noqa: F811
    from datetime import timedelta
    from tool.db import db
    from tool.models import RosterSync, utcnow
    from tool.roster import runs
    t = page_token(lms.launch(lms.teacher, nrps=False))  # no sync queued by the launch
    context_id = context_id_of(lms)
    with tool.app.app_context():
        from tool.models import Context
        db.session.get(Context, context_id).memberships_url = lms.course.memberships_url
        lost = RosterSync(context_id=context_id, status="queued", trigger="launch",
                          created_at=utcnow() - timedelta(seconds=runs.LOST_AFTER + 60))
        db.session.add(lost)
        db.session.commit()
        lost_id = lost.id
        db.session.remove()

    r = requests.post(tool.base_url + "/instructor/roster/sync", data={"t": t},
                      headers={"Accept": "application/json"}, timeout=5)
    assert r.status_code == 202 and r.json()["sync"]["id"] != lost_id
    done, _ = _wait_done(tool, t)
    assert done["sync"]["status"] == "succeeded" and done["sync"]["members_seen"] == 2
    with tool.app.app_context():
        old = db.session.get(RosterSync, lost_id)
        assert old.status == "failed" and "never started" in old.error
        db.session.remove()
