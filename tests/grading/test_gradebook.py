"""The instructor's gradebook over real HTTP: every active student, where each score stands, what
Canvas holds, "Send again"; students get 403; and the ``grades`` commands."""
from __future__ import annotations

import html
import re

import requests
from grading.deliverykit import deliveries, make_course, submit
from roster.rosterkit import fast_retries, page_token  # noqa: F401 (fixture)


def _get(tool, path, t, **params):
    return requests.get(tool.base_url + path, params={"t": t, **params}, timeout=10)


def _row_text(page_html: str, assessment_id: int, user_id: int) -> str:
    found = re.search(rf'<tr id="cell-{assessment_id}-{user_id}".*?</tr>', page_html, re.S)
    assert found, f"no row for {assessment_id}/{user_id}"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", found.group(0))).split())


def _set(tool, model, row_id, **values):
    from tool.db import db
    with tool.app.app_context():
        row = db.session.get(model, row_id)
        for key, value in values.items():
            setattr(row, key, value)
        db.session.commit()
        db.session.remove()


def test_the_gradebook_lists_every_active_student_with_where_each_score_stands(tool, lms, db_session):
    from tool.models import Assessment, PlatformResult, ScoreDelivery, utcnow
    course = make_course(tool, lms)
    never = lms.platform.add_user(name="Nora Neveropened")
    refused = lms.platform.add_user(name="Rita Refused")
    for person in (never, refused):
        lms.platform.enroll(lms.course, person)
    from grading.deliverykit import user_id_of
    from roster.rosterkit import sync
    assert sync(tool, course.context_id).status == "succeeded"
    t = page_token(lms.launch(lms.teacher))
    _attempt, sent = submit(db_session, course, 8.0)
    _attempt, failed = submit(db_session, course, 4.0, user_id=user_id_of(tool, refused.sub))
    now = utcnow()
    _set(tool, ScoreDelivery, sent.id, status="sent", sent_at=now, http_status=200)
    _set(tool, ScoreDelivery, failed.id, status="failed", http_status=422, waiting_for_enrollment=True,
         last_error="User not found in course or is not a student")
    # Canvas holds something else for Sam (a teacher changed it in SpeedGrader).
    db_session.add(PlatformResult(assessment_id=course.assessment_id, user_id=course.student_id,
                                  result_score=6.0, result_maximum=10.0, read_at=now))
    db_session.commit()
    _set(tool, Assessment, course.assessment_id, results_read_at=now)

    page = _get(tool, "/instructor/gradebook", t)

    assert page.status_code == 200, page.text
    assert "<title>Gradebook · Biology</title>" in page.text
    sam = _row_text(page.text, course.assessment_id, course.student_id)
    assert "Sam Student" in sam and "8 / 10" in sam and "Sent to Canvas" in sam
    assert "6 / 10" in sam and "differs from the tool" in sam and "Send again" in sam
    assert 'class="mismatch"' in page.text
    rita = _row_text(page.text, course.assessment_id, user_id_of(tool, refused.sub))
    assert "Canvas refused: the student is not enrolled" in rita
    nora = _row_text(page.text, course.assessment_id, user_id_of(tool, never.sub))
    assert "Not started" in nora
    assert "Ada Teacher" not in page.text.split("<tbody>")[1]  # staff are not graded
    status = _get(tool, "/instructor/gradebook/status", t).json()
    states = {c["user_id"]: c["state_words"] for c in status["cells"]}
    assert states[course.student_id] == "Sent to Canvas"
    assert states[user_id_of(tool, never.sub)] == "Not started"


def test_send_again_queues_the_latest_score_without_a_new_submission(tool, lms, db_session):
    from tool.models import ScoreDelivery, utcnow
    course = make_course(tool, lms)
    t = page_token(lms.launch(lms.teacher))
    _attempt, sent = submit(db_session, course, 8.0, comment="Good")
    _set(tool, ScoreDelivery, sent.id, status="sent", sent_at=utcnow(), http_status=200)

    answer = requests.post(tool.base_url + "/instructor/gradebook/resend", timeout=10,
                           data={"t": t, "assessment_id": course.assessment_id,
                                 "user_id": course.student_id}, allow_redirects=False)

    assert answer.status_code == 303
    assert answer.headers["Location"].startswith(tool.base_url + "/instructor/gradebook?t=")
    rows = deliveries(tool, course.assessment_id)
    assert len(rows) == 2 and rows[1].reason == "resend" and rows[1].status == "pending"
    assert rows[1].new_submission is False and rows[1].comment is None
    assert rows[1].score_given == 8.0 and rows[1].timestamp > rows[0].timestamp
    page = _get(tool, "/instructor/gradebook", t)
    assert "Waiting to send" in _row_text(page.text, course.assessment_id, course.student_id)


def test_bad_input_gets_a_clear_answer_and_students_get_403(tool, lms, db_session):
    course = make_course(tool, lms)
    t = page_token(lms.launch(lms.teacher))
    for data in ({"assessment_id": "abc", "user_id": "1"},
                 {"assessment_id": str(course.assessment_id), "user_id": "9" * 40},
                 {"assessment_id": str(course.assessment_id), "user_id": "9" * 12},
                 {"assessment_id": "999999", "user_id": str(course.student_id)},
                 {"assessment_id": str(course.assessment_id), "user_id": str(course.student_id)}):
        answer = requests.post(tool.base_url + "/instructor/gradebook/resend", timeout=10,
                               data={"t": t, **data}, allow_redirects=False)
        assert answer.status_code in (404, 409), (data, answer.status_code)
        assert "Traceback" not in answer.text
    assert _get(tool, "/instructor/gradebook", t, assessment="x' OR 1=1").status_code == 404
    assert _get(tool, "/instructor/gradebook", t, assessment="9" * 12).status_code == 404
    for absurd in ("0", "-1", "9" * 5000, "²", "1e9", "\x00"):  # clamped to a page that exists
        for path in ("/instructor/gradebook", "/instructor/gradebook/status"):
            assert _get(tool, path, t, page=absurd, since=absurd).status_code == 200, (path, absurd[:8])
    student = page_token(lms.launch(lms.student))
    assert _get(tool, "/instructor/gradebook", student).status_code == 403
    assert _get(tool, "/instructor/gradebook/status", student).status_code == 403
    resend = requests.post(tool.base_url + "/instructor/gradebook/resend", timeout=10,
                           data={"t": student, "assessment_id": course.assessment_id,
                                 "user_id": course.student_id})
    assert resend.status_code == 403
    assert deliveries(tool, course.assessment_id) == []


def test_grades_status_and_push_on_the_command_line(tool, lms, db_session):
    from tool.grading import tasks  # noqa: F401 (registers grading.deliver)
    from tool import jobs
    course = make_course(tool, lms)
    lms.platform.set_status(lms.course, lms.student, "Inactive")
    _attempt, row = submit(db_session, course, 7.0)
    runner = tool.app.test_cli_runner()

    status = runner.invoke(args=["grades", "status", lms.course.context_id])
    assert status.exit_code == 0, status.output
    assert "Sam Student\tQuiz 1\t7 / 10\tWaiting to send" in status.output

    refused = runner.invoke(args=["grades", "push", lms.course.context_id])
    assert refused.exit_code == 1
    assert "not sent: User not found in course or is not a student" in refused.output

    lms.platform.set_status(lms.course, lms.student, "Active")
    pushed = runner.invoke(args=["grades", "push", lms.course.context_id])
    assert pushed.exit_code == 0, pushed.output
    assert "Sam Student\tQuiz 1\tsent" in pushed.output
    assert lms.platform.gradebook(lms.course).cell(course.assignment, lms.student).score == 7.0
    again = runner.invoke(args=["grades", "status", lms.course.context_id])
    assert "Sent to Canvas" in again.output
    jobs.huey.flush()
