"""Each assessment's gradebook column and what Canvas holds, against the emulator over HTTP.

AGS 2.0 §3.2 (line items), §3.5 (results); Canvas's rules from facts sheet section 8: a line item
POST without ``resourceLinkId`` makes a new assignment, DELETE answers 401 for an assignment's
own line item, listings and results page by ``Link``.
"""
from __future__ import annotations

import pytest
from roster.rosterkit import add_course_to_tool, consumer, fast_retries, sync  # noqa: F401 (tests/roster)

from tool.lti import ags

MOODLE_GRADE_SYNC = [ags.SCOPE_SCORE, ags.SCOPE_LINEITEM_READONLY, ags.SCOPE_RESULT_READONLY]


# -- helpers ----------------------------------------------------------------------------------

def course(lms, scopes=None) -> int:
    """The course as a launch leaves it in the tool: lineitems URL and the granted AGS scopes."""
    from tool.db import db
    from tool.models import Context
    context_id = add_course_to_tool(lms)
    granted = list(ags.ALL_SCOPES) if scopes is None else scopes
    with lms.tool.app.app_context():
        context = db.session.get(Context, context_id)
        context.lineitems_url = lms.course.lineitems_url
        context.ags_scopes = granted
        db.session.commit()
        db.session.remove()
    return context_id


def assessment(tool, context_id: int, title="Quiz 1", points=10.0) -> int:
    from tool.db import db
    from tool.models import Assessment
    with tool.app.app_context():
        made = Assessment(context_id=context_id, title=title, points_possible=points,
                          questions=[{"key": "q1", "kind": "numeric", "prompt": "1+1",
                                      "points": points, "answer": 2, "tolerance": 0}])
        db.session.add(made)
        db.session.commit()
        made_id = made.id
        db.session.remove()
    return made_id


def map_link(lms, context_id: int, assessment_id: int | None, placement: str | None,
             link_id: str, lineitem_url: str | None = None) -> None:
    """The tool's record of a resource link (as a launch stores it), opening the assessment."""
    from tool.db import db
    from tool.models import ResourceLink
    with lms.tool.app.app_context():
        db.session.add(ResourceLink(registration_id=lms.registration_id, context_id=context_id,
                                    lti_resource_link_id=link_id, placement=placement,
                                    assessment_id=assessment_id, lineitem_url=lineitem_url))
        db.session.commit()
        db.session.remove()


def run(tool, fn, assessment_id: int, *args, **kw):
    """``fn(session, assessment, ...)`` as a request or job runs it; its result and the stored row."""
    from tool.db import db
    from tool.models import Assessment
    with tool.app.app_context():
        try:
            out = fn(db.session, db.session.get(Assessment, assessment_id), *args, **kw)
            db.session.commit()
            db.session.expire_all()
            row = db.session.get(Assessment, assessment_id)
            stored = {c.name: getattr(row, c.name) for c in Assessment.__table__.columns}
        finally:
            db.session.remove()
    return out, stored


def with_client(tool, context_id: int, fn):
    """``fn(client)`` with a service client for the course's platform (test setup through AGS)."""
    from tool.db import db
    from tool.grading.lineitems import client_for
    from tool.models import Context
    with tool.app.app_context():
        try:
            return fn(client_for(db.session, db.session.get(Context, context_id)))
        finally:
            db.session.remove()


def ags_calls(platform) -> list[dict]:
    with platform.lock:
        return list(platform.ags_requests)


def columns(lms) -> dict[str, dict]:
    return {li["id"]: li for li in lms.platform.line_items(lms.course)}


# -- line items ---------------------------------------------------------------------------------

def test_a_line_item_found_by_resource_id_is_stored_and_never_searched_again(tool, lms):
    from tool.grading.lineitems import ensure_lineitem
    context_id = course(lms)
    assessment_id = assessment(tool, context_id)
    existing = with_client(tool, context_id, lambda c: ags.create_lineitem(
        c, lms.course.lineitems_url, {"label": "Quiz 1 (Canvas)", "scoreMaximum": 10,
                                      "resourceId": str(assessment_id)}))
    before = len(ags_calls(lms.platform))

    url, row = run(tool, ensure_lineitem, assessment_id)
    again = [run(tool, ensure_lineitem, assessment_id)[0] for _ in range(3)]

    calls = ags_calls(lms.platform)[before:]
    assert url == existing["id"] and again == [url] * 3
    assert [(c["method"], c["query"]) for c in calls] == \
        [("GET", f"resource_id={assessment_id}&limit=100")]
    assert calls[0]["headers"]["Accept"] == ags.MEDIA_LINEITEM_CONTAINER
    assert row["lineitem_created_by_tool"] is False
    assert (row["lineitem_label"], row["lineitem_score_maximum"]) == ("Quiz 1 (Canvas)", 10.0)
    assert len(columns(lms)) == 1  # nothing created


def test_a_created_line_item_names_the_assignment_link_never_the_navigation_link(tool, lms):
    from tool.grading.lineitems import TAG, ensure_lineitem
    context_id = course(lms)
    first = assessment(tool, context_id, title="Quiz A", points=5)
    second = assessment(tool, context_id, title="Quiz B", points=7)
    canvas_assignment = lms.platform.add_assignment(lms.course, lms.registration, title="Quiz A",
                                                    points=5)
    map_link(lms, context_id, first, "course_navigation", lms.course.context_id)
    map_link(lms, context_id, second, "course_navigation", "nav-link-2")
    map_link(lms, context_id, first, None, canvas_assignment.link.id)

    url_a, row_a = run(tool, ensure_lineitem, first)
    url_b, row_b = run(tool, ensure_lineitem, second)

    made = columns(lms)
    assert (made[url_a]["label"], made[url_a]["scoreMaximum"]) == ("Quiz A", 5.0)
    assert (made[url_a]["resourceId"], made[url_a]["tag"]) == (str(first), TAG)
    assert made[url_a]["resourceLinkId"] == canvas_assignment.link.id
    assert made[url_a]["assignment_id"] == canvas_assignment.id
    # Without a link of its own: no resourceLinkId, so Canvas makes a new assignment.
    assert "resourceLinkId" not in made[url_b] and made[url_b]["origin"] == "ags"
    assert made[url_b]["resourceId"] == str(second)
    assert row_a["lineitem_created_by_tool"] and row_b["lineitem_created_by_tool"]
    assert (row_b["lineitem_label"], row_b["lineitem_score_maximum"]) == ("Quiz B", 7.0)
    posts = [c for c in ags_calls(lms.platform) if c["method"] == "POST"]
    assert [(c["status"], c["headers"]["Content-Type"]) for c in posts] == \
        [(201, ags.MEDIA_LINEITEM)] * 2


def test_a_listing_reads_every_page(tool, lms):
    context_id = course(lms)
    for n in range(5):
        with_client(tool, context_id, lambda c: ags.create_lineitem(
            c, lms.course.lineitems_url, {"label": f"Column {n}", "scoreMaximum": 1, "tag": "t"}))
    before = len(ags_calls(lms.platform))

    items = with_client(tool, context_id, lambda c: ags.list_lineitems(
        c, lms.course.lineitems_url, tag="t", limit=2))

    assert sorted(i["label"] for i in items) == [f"Column {n}" for n in range(5)]
    reads = ags_calls(lms.platform)[before:]
    assert [c["status"] for c in reads] == [200, 200, 200]
    assert all("tag=t" in c["query"] for c in reads)


def test_the_launch_carried_line_item_is_used_without_any_call(tool, lms):
    from tool.grading.lineitems import ensure_lineitem
    context_id = course(lms, scopes=MOODLE_GRADE_SYNC)
    assessment_id = assessment(tool, context_id)
    canvas_assignment = lms.platform.add_assignment(lms.course, lms.registration, title="Quiz 1",
                                                    points=10)
    carried = canvas_assignment.default_line_item().url
    map_link(lms, context_id, assessment_id, None, canvas_assignment.link.id, lineitem_url=carried)
    before = len(ags_calls(lms.platform))

    url, row = run(tool, ensure_lineitem, assessment_id)

    assert url == carried and row["lineitem_created_by_tool"] is False
    assert ags_calls(lms.platform)[before:] == []


def test_a_grade_sync_only_course_never_creates_a_line_item(tool, lms):
    from tool.grading.lineitems import GradebookUnavailable, ensure_lineitem
    context_id = course(lms, scopes=MOODLE_GRADE_SYNC)
    assessment_id = assessment(tool, context_id)

    with pytest.raises(GradebookUnavailable) as refused:
        run(tool, ensure_lineitem, assessment_id)

    assert refused.value.reason == (
        "This course's platform lets the tool send scores only to the assignment it was launched "
        "from; open the assessment from its Canvas assignment once.")
    assert columns(lms) == {}
    assert [c["method"] for c in ags_calls(lms.platform)] == ["GET"]  # looked, never posted


def test_a_score_only_course_neither_lists_nor_reads_results(tool, lms):
    from tool.grading import results
    from tool.grading.lineitems import GradebookUnavailable, ensure_lineitem
    context_id = course(lms, scopes=[ags.SCOPE_SCORE])
    assessment_id = assessment(tool, context_id)

    with pytest.raises(GradebookUnavailable, match="launched from"):
        run(tool, ensure_lineitem, assessment_id)
    stored, row = run(tool, lambda s, a: results.refresh(s, a.id), assessment_id)

    assert stored is None and row["results_read_at"] is None
    assert ags_calls(lms.platform) == []


def test_editing_title_and_points_updates_the_line_item(tool, lms):
    from tool.grading import lineitems
    context_id = course(lms)
    assessment_id = assessment(tool, context_id)
    url, _ = run(tool, lineitems.ensure_lineitem, assessment_id)

    def edit(session, row):
        row.title, row.points_possible = "Quiz 1 (revised)", 12.0
        session.commit()
        return lineitems.run_update(session, row.id)
    outcome, row = run(tool, edit, assessment_id)
    rerun, _ = run(tool, lambda s, a: lineitems.run_update(s, a.id), assessment_id)

    column = columns(lms)[url]
    assert outcome == "updated" and rerun == "unchanged"
    assert (column["label"], column["scoreMaximum"]) == ("Quiz 1 (revised)", 12.0)
    assert (row["lineitem_label"], row["lineitem_score_maximum"], row["lineitem_error"]) == \
        ("Quiz 1 (revised)", 12.0, None)
    puts = [c for c in ags_calls(lms.platform) if c["method"] == "PUT"]
    assert len(puts) == 1 and puts[0]["headers"]["Content-Type"] == ags.MEDIA_LINEITEM


def test_an_edit_in_a_read_only_course_is_recorded_for_the_instructor(tool, lms):
    from tool.grading import lineitems
    context_id = course(lms, scopes=MOODLE_GRADE_SYNC)
    assessment_id = assessment(tool, context_id)
    canvas_assignment = lms.platform.add_assignment(lms.course, lms.registration, title="Quiz 1",
                                                    points=10)
    map_link(lms, context_id, assessment_id, None, canvas_assignment.link.id,
             lineitem_url=canvas_assignment.default_line_item().url)
    run(tool, lineitems.ensure_lineitem, assessment_id)

    same, _ = run(tool, lambda s, a: lineitems.run_update(s, a.id), assessment_id)
    run(tool, lambda s, a: setattr(a, "points_possible", 20.0), assessment_id)
    changed, row = run(tool, lambda s, a: lineitems.run_update(s, a.id), assessment_id)

    assert same == "unchanged" and changed == "refused"
    assert "does not let the tool change gradebook columns" in row["lineitem_error"]
    assert not [c for c in ags_calls(lms.platform) if c["method"] == "PUT"]


def test_deleting_removes_the_tool_made_column_and_explains_canvas_own(tool, lms):
    from tool.db import db
    from tool.grading import lineitems
    from tool.models import Assessment
    context_id = course(lms)
    made = assessment(tool, context_id, title="Made by the tool")
    linked = assessment(tool, context_id, title="Deep linked")
    tool_made, _ = run(tool, lineitems.ensure_lineitem, made)
    own = lms.platform.add_assignment(lms.course, lms.registration, title="Deep linked").default_line_item().url
    with tool.app.app_context():  # even if the tool believed it made it, Canvas answers 401
        row = db.session.get(Assessment, linked)
        row.lineitem_url, row.lineitem_created_by_tool = own, True
        db.session.commit()
        db.session.remove()

    deleted, row = run(tool, lineitems.delete_column, made)
    kept, kept_row = run(tool, lineitems.delete_column, linked)

    assert deleted == "The gradebook column was deleted." and row["lineitem_url"] is None
    assert kept == "Canvas keeps this column: remove the assignment in Canvas."
    assert kept_row["lineitem_url"] == own
    assert list(columns(lms)) == [own] and tool_made != own
    deletes = [c["status"] for c in ags_calls(lms.platform) if c["method"] == "DELETE"]
    assert deletes[0] == 204 and set(deletes[1:]) == {401}


# -- results ------------------------------------------------------------------------------------

def test_results_are_read_from_every_page_into_platform_results(tool, lms, monkeypatch):
    from sqlalchemy import select

    from tool.db import db
    from tool.grading import lineitems, results
    from tool.models import PlatformResult, User
    monkeypatch.setattr(results, "PAGE_SIZE", 2)
    students = [lms.student] + [lms.platform.add_user(name=f"Student {n}") for n in range(4)]
    for student in students[1:]:
        lms.platform.enroll(lms.course, student)
    context_id = course(lms)
    sync(tool, context_id)  # the tool knows these five
    stranger = lms.platform.add_user(name="Not in the tool yet")
    lms.platform.enroll(lms.course, stranger)
    assessment_id = assessment(tool, context_id)
    url, _ = run(tool, lineitems.ensure_lineitem, assessment_id)

    def send_all(client):
        for n, person in enumerate(students + [stranger]):
            ags.post_score(client, url, {
                "userId": person.sub, "scoreGiven": n, "scoreMaximum": 10,
                **({"comment": "Well done"} if n == 0 else {}),
                "activityProgress": "Completed", "gradingProgress": "FullyGraded",
                "timestamp": "2026-01-01T00:00:00.000+00:00"})
    with_client(tool, context_id, send_all)
    before = len(ags_calls(lms.platform))

    stored, row = run(tool, lambda s, a: results.refresh(s, a.id), assessment_id)

    with tool.app.app_context():
        held = {sub: (r.result_score, r.result_maximum, r.comment) for r, sub in db.session.execute(
            select(PlatformResult, User.sub).join(User, User.id == PlatformResult.user_id)
            .where(PlatformResult.assessment_id == assessment_id))}
        db.session.remove()
    assert stored == 5 and row["results_read_at"] is not None
    assert held == {s.sub: (float(n), 10.0, "Well done" if n == 0 else None)
                    for n, s in enumerate(students)}
    reads = ags_calls(lms.platform)[before:]
    assert len(reads) == 3 and {c["headers"]["Accept"] for c in reads} == {ags.MEDIA_RESULT_CONTAINER}


def test_a_refresh_is_queued_once_per_interval_unless_forced(tool, lms):
    from tool import jobs
    from tool.grading import results
    from tool.models import utcnow
    context_id = course(lms)
    assessment_id = assessment(tool, context_id)
    jobs.huey.flush()
    try:
        assert results.queue_refresh(assessment_id) is True
        run(tool, lambda s, a: setattr(a, "results_read_at", utcnow()), assessment_id)
        assert results.queue_refresh(assessment_id) is False
        assert results.queue_refresh(assessment_id, force=True) is True
        assert jobs.huey.pending_count() == 2
    finally:
        jobs.huey.flush()


def _wait(predicate, seconds=15.0):
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_the_jobs_update_the_column_and_read_the_gradebook(tool, lms, consumer):
    from tool.grading import tasks  # noqa: F401 (registers the grading tasks with the queue)
    from tool.grading import lineitems, results
    context_id = course(lms)
    assessment_id = assessment(tool, context_id)
    url, _ = run(tool, lineitems.ensure_lineitem, assessment_id)
    with_client(tool, context_id, lambda c: ags.post_score(c, url, {
        "userId": lms.student.sub, "scoreGiven": 7, "scoreMaximum": 10,
        "activityProgress": "Completed", "gradingProgress": "FullyGraded",
        "timestamp": "2026-01-01T00:00:00.000+00:00"}))
    sync(tool, context_id)

    def edit(session, row):
        row.points_possible = 15.0
        session.commit()
        return lineitems.update_after_edit(session, row)
    queued, _ = run(tool, edit, assessment_id)
    assert queued is True
    assert _wait(lambda: run(tool, lambda s, a: a.lineitem_score_maximum, assessment_id)[0] == 15.0)
    assert columns(lms)[url]["scoreMaximum"] == 15.0
    assert run(tool, lineitems.update_after_edit, assessment_id)[0] is False  # nothing left to do

    assert results.queue_refresh(assessment_id) is True
    assert _wait(lambda: run(tool, lambda s, a: a.results_read_at, assessment_id)[0] is not None)
    _, row = run(tool, lambda s, a: None, assessment_id)
    assert row["results_requested_at"] is not None
    from tool.db import db
    from tool.models import PlatformResult
    with tool.app.app_context():
        held = [(r.result_score, r.result_maximum) for r in db.session.query(PlatformResult)
                .filter_by(assessment_id=assessment_id)]
        db.session.remove()
    assert held == [(7.0, 10.0)]


def test_the_periodic_read_covers_watched_assessments_only(tool, lms):
    from datetime import timedelta

    from tool.grading import lineitems, results
    from tool.models import utcnow
    context_id = course(lms)
    watched = assessment(tool, context_id, title="Watched")
    quiet = assessment(tool, context_id, title="Quiet")
    for assessment_id in (watched, quiet):
        run(tool, lineitems.ensure_lineitem, assessment_id)
    run(tool, lambda s, a: results.run_read(s, a.id, requested=True, refresh_seconds=300), watched)
    run(tool, lambda s, a: results.run_read(s, a.id, refresh_seconds=300), quiet)

    def due(now):
        from tool.db import db
        with tool.app.app_context():
            try:
                return set(results.due_for_refresh(db.session, 300, now=now)) & {watched, quiet}
            finally:
                db.session.remove()
    assert due(utcnow()) == set()  # both just read
    assert due(utcnow() + timedelta(minutes=10)) == {watched}
    assert due(utcnow() + timedelta(hours=2)) == set()  # nobody looked for an hour


def test_an_assignment_launch_hands_its_line_item_to_the_assessment(tool, lms):
    from emulator import Browser
    context_id = course(lms, scopes=MOODLE_GRADE_SYNC)
    assessment_id = assessment(tool, context_id)
    run(tool, lambda s, a: setattr(a, "is_published", True), assessment_id)
    canvas_assignment = lms.platform.add_assignment(lms.course, lms.registration, title="Quiz 1",
                                                    points=10, custom={"assessment_id": str(assessment_id)})
    nav = lms.launch(lms.student, placement="course_navigation")  # carries no line item
    assert nav.status_code == 200 and run(tool, lambda s, a: a.lineitem_url, assessment_id)[0] is None

    pending = lms.platform.assignment_launch(lms.registration, lms.student, lms.course, canvas_assignment)
    page = Browser().launch(tool.login_url, pending)

    assert page.status_code == 200
    url, row = run(tool, lambda s, a: a.lineitem_url, assessment_id)
    assert url == canvas_assignment.default_line_item().url and row["lineitem_created_by_tool"] is False
