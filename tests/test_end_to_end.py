"""The whole path, over real HTTP, as Canvas and two people would walk it.

An instructor opens the tool from Canvas's assignment_selection placement (a deep linking
request), creates an assessment, publishes it and picks it; the signed answer goes to Canvas's
return URL, which verifies it and makes the assignment with its gradebook column. A student
launches that assignment, answers, submits; a real job worker delivers the score through AGS;
the Canvas gradebook then holds the right score with the submission extension; SpeedGrader
launches the submission's ``submission_data`` and the instructor lands on the attempt's review.
"""
from __future__ import annotations

import time
from urllib.parse import urljoin

from emulator import Browser
from emulator.browser import parse_forms
from roster.rosterkit import consumer, context_id_of, fast_retries, page_token  # noqa: F401 (fixtures)
from sqlalchemy import select

NUMERIC_RIGHT = {"q1_kind": "numeric", "q1_prompt": "What is 6 × 7?", "q1_points": "4",
                 "q1_answer": "42", "q1_tolerance": "0"}
CHOICE_WRONG = {"q2_kind": "choice", "q2_prompt": "Which colour is the sky?", "q2_points": "6",
                "q2_options": "Red\nBlue\nGreen", "q2_correct": "2"}


def _db(tool, work):
    from tool.db import db
    with tool.app.app_context():
        try:
            return work(db.session)
        finally:
            db.session.remove()


def _only_form(resp, field):
    forms = [f for f in parse_forms(resp.text) if field in f["fields"]]
    assert len(forms) == 1, resp.text
    return urljoin(resp.url, forms[0]["action"]), dict(forms[0]["fields"])


def _wait(read, wanted, timeout=30):
    """True once ``read()`` gives ``wanted``; its last value when time runs out (a clear diff)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (seen := read()) == wanted:
            return True
        time.sleep(0.1)
    return seen


def _wait_for_score(platform, course, assignment, student, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cell = platform.gradebook(course).cell(assignment, student)
        if cell.score is not None:
            return cell
        time.sleep(0.1)
    raise AssertionError(f"no score reached the gradebook: {cell}")


def test_deep_linked_assessment_taken_by_a_student_reaches_the_canvas_gradebook(lms, consumer):
    import tool.grading.tasks  # noqa: F401 -- the delivery task joins the queue's registry
    from tool.models import Assessment, Attempt, ScoreDelivery
    base, platform = lms.tool.base_url, lms.platform

    # 1. The instructor adds content from the assignment_selection placement.
    teacher = Browser()
    request = platform.deep_linking_launch(lms.registration, lms.teacher, lms.course)
    picker = teacher.launch(lms.tool.login_url, request)
    assert picker.status_code == 200 and "/lti/deep-linking" in picker.url, picker.text
    t = page_token(picker)

    # 2. Creates an assessment from the picker, which brings them back to it; publishes it.
    created = teacher.post(base + "/instructor/assessments/new", data={
        "t": t, "next": "picker", "title": "Quiz 1", "instructions": "Two questions.",
        "attempts_allowed": "1", "scoring_policy": "highest", "show_scores": "on",
        **NUMERIC_RIGHT, **CHOICE_WRONG})
    assert created.status_code == 200 and "/lti/deep-linking" in created.url, created.text
    course_id = context_id_of(lms)
    assessment_id = _db(lms.tool, lambda s: s.scalars(select(Assessment.id).where(
        Assessment.context_id == course_id, Assessment.title == "Quiz 1")).one())
    published = teacher.post(base + f"/instructor/assessments/{assessment_id}/publish",
                             data={"t": t})
    assert published.status_code == 200, published.text

    # 3. Picks it: the answer auto-posts to Canvas, which verifies it and makes the assignment.
    answer = teacher.post(base + "/lti/deep-linking/respond",
                          data={"t": t, "assessment": str(assessment_id)})
    action, fields = _only_form(answer, "JWT")
    back = teacher.post_form(action, fields)
    assert back.status_code == 200, back.text
    record = platform.deep_link_responses[-1]
    assert record["errors"] == []
    [assignment] = record["assignments"]
    assert assignment.points_possible == 10.0
    [column] = platform.line_items(lms.course)
    assert column["resourceId"] == str(assessment_id) and column["tag"] == "roster-grades"
    assert column["label"] == "Quiz 1" and column["scoreMaximum"] == 10.0

    # 4. The student opens the assignment in Canvas, lands on the assessment, answers, submits.
    student = Browser()
    opened = student.launch(lms.tool.login_url, platform.assignment_launch(
        lms.registration, lms.student, lms.course, assignment))
    assert opened.status_code == 200 and f"/student/assessments/{assessment_id}" in opened.url
    ts = page_token(opened)
    action, _ = _only_form(opened, "t")
    started = student.post(action, data={"t": ts})
    assert started.status_code == 200, started.text
    action, fields = [(urljoin(started.url, f["action"]), f["fields"])
                      for f in parse_forms(started.text) if any(k.startswith("a_") for k in f["fields"])][0]
    keys = _db(lms.tool, lambda s: [q["key"] for q in s.get(Assessment, assessment_id).questions])
    fields.update({f"a_{keys[0]}": "42", f"a_{keys[1]}": "0"})  # right, then Red (wrong)
    result = student.post(action, data=fields)
    assert result.status_code == 200 and "/student/attempts/" in result.url, result.text
    attempt_id = _db(lms.tool, lambda s: s.scalars(select(Attempt.id).where(
        Attempt.assessment_id == assessment_id)).one())

    # 5. A worker delivers the score; Canvas's gradebook holds it with the submission extension.
    cell = _wait_for_score(platform, lms.course, assignment, lms.student)
    assert cell.score == 4.0 and cell.result_maximum == 10.0
    assert cell.grading_progress == "FullyGraded"
    [submission] = cell.attempts  # one new submission: only the first delivery says so
    review_url = f"{base}/lti/launch?review_attempt={attempt_id}"
    assert submission["submission_type"] == "basic_lti_launch"
    assert submission["submission_data"] == review_url
    assert submission["submitted_at"] and submission["extension"]["new_submission"] is True
    assert cell.score_posts == 1
    # The worker records the platform's answer just after Canvas applied it.
    assert _wait(lambda: _db(lms.tool, lambda s: s.scalars(select(ScoreDelivery.status).where(
        ScoreDelivery.attempt_id == attempt_id)).all()), ["sent"])

    # 6. SpeedGrader launches submission_data: the instructor sees the attempt's review.
    review = Browser().launch(lms.tool.login_url, platform.speedgrader_launch(
        lms.registration, lms.teacher, lms.course, assignment, lms.student))
    assert review.status_code == 200 and f"/instructor/attempts/{attempt_id}" in review.url
    assert "Sam Student" in review.text
