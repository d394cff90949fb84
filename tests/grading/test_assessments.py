"""Instructors write assessments: create, edit, publish, validation that keeps what was typed,
delete, and a resource link launch that opens its assessment directly (over real HTTP)."""
from __future__ import annotations

import re

import requests

from emulator import INSTRUCTOR, LEARNER
from grading.assesskit import (QUESTIONS, assessment, create, form, get, keys, landed, launch, post,
                               rows)
from roster.rosterkit import context_id_of, fast_retries  # noqa: F401 (fixture)

CUSTOM = "https://purl.imsglobal.org/spec/lti/claim/custom"


def test_an_instructor_creates_edits_and_publishes_an_assessment(tool, lms):
    t = launch(lms)
    home = get(tool, "/instructor", t)
    assert "No assessments yet" in home.text and "Create an assessment" in home.text

    assessment_id = create(tool, t, publish=False, due_at="2031-05-01T23:59")
    stored = assessment(tool, assessment_id)
    assert stored.title == "Quiz 1" and stored.points_possible == 10 and not stored.is_published
    assert [q["kind"] for q in stored.questions] == ["choice", "multi", "numeric"]
    assert stored.questions[1]["correct"] == [0, 2] and stored.due_at.isoformat() == "2031-05-01T23:59:00"
    page = get(tool, f"/instructor/assessments/{assessment_id}", t)
    assert "<title>Quiz 1 · Biology</title>" in page.text and "Draft" in page.text
    assert 'value="2031-05-01T23:59"' in page.text and "Due (UTC, optional)" in page.text

    # Students do not see a draft, in the list or by its address.
    student_t = launch(lms, lms.student)
    assert "Quiz 1" not in get(tool, "/student", student_t).text
    refused = get(tool, f"/student/assessments/{assessment_id}", student_t)
    assert refused.status_code == 409 and "not published" in refused.text

    published = post(tool, f"/instructor/assessments/{assessment_id}/publish", t)
    assert "Published: students of the course can take it now." in published.text
    listed = get(tool, "/student", student_t).text
    assert "Quiz 1" in listed and "Not started" in listed

    # An edit of the title keeps every question's key; removing one drops only that one.
    before = keys(tool, assessment_id)
    data = form(title="Quiz 1 (revised)")
    for n, key in enumerate(before, start=1):
        data[f"q{n}_key"] = key
    data["q2_remove"] = "1"
    r = post(tool, f"/instructor/assessments/{assessment_id}", t, data)
    assert r.status_code == 200 and "Quiz 1 (revised)" in r.text
    assert keys(tool, assessment_id) == [before[0], before[2]]
    assert assessment(tool, assessment_id).points_possible == 7

    r = post(tool, f"/instructor/assessments/{assessment_id}/unpublish", t)
    assert "Unpublished" in r.text and not assessment(tool, assessment_id).is_published
    index = get(tool, "/instructor/assessments", t)
    assert "Quiz 1 (revised)" in index.text and "<caption>Assessments of this course</caption>" in index.text


def test_a_form_with_mistakes_keeps_what_was_typed_and_says_what_is_wrong(tool, lms):
    t = launch(lms)
    bad = form(title="", attempts_allowed="-1", due_at="next tuesday", questions=[
        {"kind": "choice", "prompt": "Pick <b>one</b>", "points": "lots", "options": "Only one",
         "correct": "7"},
        {"kind": "numeric", "prompt": "Pi?", "points": "2000", "answer": "three", "tolerance": "-1"},
        {"kind": "choice", "prompt": "", "points": "1", "options": "a\nb", "correct": "1, 2"},
    ])
    r = post(tool, "/instructor/assessments/new", t, bad)
    assert r.status_code == 422
    html = r.text
    for message in ("Give the assessment a title.", "whole number from 0 to 100",
                    "date and time", "Points must be a number from 0 to 1000.",
                    "at least two options", "Give the right answer as a number",
                    "The tolerance is a number, 0 or more", "Write the question.",
                    "Multiple choice has one right option"):
        assert message in html, message
    # The message sits next to its field and the first field in error gets the focus.
    assert re.search(r'id="title"[^>]*aria-describedby="title-error"[^>]*aria-invalid="true"[^>]*autofocus', html)
    assert 'id="title-error"' in html and 'id="q1_points-error"' in html
    # What was typed is still there (escaped), nothing was stored.
    assert "Pick &lt;b&gt;one&lt;/b&gt;" in html and 'value="lots"' in html and 'value="next tuesday"' in html
    assert 'value="-1"' in html and 'value="three"' in html
    from tool.models import Assessment
    assert rows(tool, Assessment, context_id=context_id_of(lms)) == []


def test_adding_a_question_keeps_what_was_typed(tool, lms):
    t = launch(lms)
    data = form(title="Draft quiz", questions=QUESTIONS[:1])
    data.update(action="add", new_kind="numeric")
    r = post(tool, "/instructor/assessments/new", t, data)
    assert r.status_code == 200
    assert 'value="Draft quiz"' in r.text and "Which is a mammal?" in r.text
    assert "Question 2" in r.text and re.search(r'id="q2_prompt"[^>]*autofocus', r.text)
    assert re.search(r'<select id="q2_kind"[^>]*>.*?<option value="numeric" selected', r.text, re.S)


def test_bad_form_input_never_gets_a_500(tool, lms):
    t = launch(lms)
    assessment_id = create(tool, t)
    attempts = [
        {"title": "x" * 5000, "attempts_allowed": "9" * 50, "due_at": "9999-99-99T99:99",
         "q1_kind": "choice", "q1_points": "1e400", "q1_options": "a\n" * 5000, "q1_correct": "1" * 300},
        {"title": "\x00\x01 nul", "q1_kind": "numeric", "q1_answer": "nan", "q1_tolerance": "inf",
         "q1_prompt": "\u202e\x00", "q1_points": "-0"},
        {"title": "t", **{f"q{i}_kind": "text" for i in range(150)}},
        {"title": "t", "q1_kind": "<script>", "q1_key": "../../etc", "scoring_policy": "random"},
        {"title": "t", "q999_kind": "multi", "q999_options": "a\nb", "q999_correct": "0, -1, x"},
        # "²" passes str.isdigit() but int() refuses it
        {"title": "t", "attempts_allowed": "²", "q1_kind": "choice", "q1_options": "a\nb", "q1_correct": "²"},
        {"action": "add", "new_kind": "\x00"},
        {},
    ]
    for data in attempts:
        for path in ("/instructor/assessments/new", f"/instructor/assessments/{assessment_id}"):
            r = post(tool, path, t, data)
            assert r.status_code in (200, 422), (data, r.status_code, r.text[:300])
    for path in ("/instructor/assessments/99999999999", "/instructor/attempts/0",
                 "/student/attempts/99999999999", "/student/assessments/-1"):
        assert get(tool, path, t).status_code == 404
    r = requests.post(tool.base_url + f"/instructor/assessments/{assessment_id}", json={"title": 1},
                      headers={"X-Page-Token": t}, timeout=10)
    assert r.status_code in (200, 422)
    assert post(tool, "/instructor/assessments/new", "", form()).status_code == 401


def test_deleting_asks_first_and_says_what_happens_to_the_gradebook_column(tool, lms):
    t = launch(lms)
    assessment_id = create(tool, t)
    confirm = get(tool, f"/instructor/assessments/{assessment_id}/delete", t)
    assert confirm.status_code == 200 and "This cannot be undone." in confirm.text
    assert "has no gradebook column in Canvas" in confirm.text and 'name="delete_column"' not in confirm.text
    assert assessment(tool, assessment_id) is not None
    r = post(tool, f"/instructor/assessments/{assessment_id}/delete", t)
    assert r.status_code == 200 and "Assessment deleted." in r.text
    assert assessment(tool, assessment_id) is None


def test_an_assessment_with_a_column_the_tool_made_offers_to_delete_it(tool, lms):
    from tool.db import db
    from tool.models import Assessment
    t = launch(lms)
    assessment_id = create(tool, t)
    with tool.app.app_context():
        found = db.session.get(Assessment, assessment_id)
        found.lineitem_url = lms.course.lineitems_url + "/404"
        found.lineitem_created_by_tool = True
        db.session.commit()
        db.session.remove()
    confirm = get(tool, f"/instructor/assessments/{assessment_id}/delete", t)
    assert 'name="delete_column"' in confirm.text and "Also delete its gradebook column" in confirm.text
    r = post(tool, f"/instructor/assessments/{assessment_id}/delete", t, {"delete_column": "1"})
    assert r.status_code == 200 and "deleted" in r.text and "Gradebook column:" in r.text
    assert assessment(tool, assessment_id) is None


def test_a_student_reaches_no_instructor_page(tool, lms):
    t = launch(lms)
    assessment_id = create(tool, t)
    student_t = launch(lms, lms.student)
    for path in ("/instructor/assessments", "/instructor/assessments/new",
                 f"/instructor/assessments/{assessment_id}", f"/instructor/assessments/{assessment_id}/attempts",
                 f"/instructor/assessments/{assessment_id}/delete", f"/instructor/assessments/{assessment_id}/preview"):
        assert get(tool, path, student_t).status_code == 403, path
    for path in (f"/instructor/assessments/{assessment_id}", f"/instructor/assessments/{assessment_id}/publish",
                 f"/instructor/assessments/{assessment_id}/unpublish", f"/instructor/assessments/{assessment_id}/delete",
                 "/instructor/assessments/new"):
        assert post(tool, path, student_t, form(title="Hacked")).status_code == 403, path
    assert assessment(tool, assessment_id).title == "Quiz 1"


def test_a_link_naming_an_assessment_opens_it_and_remembers_it(tool, lms):
    from tool.models import ResourceLink
    t = launch(lms)
    assessment_id = create(tool, t)
    lineitem = lms.course.lineitems_url + "/77"
    first = landed(lms, lms.student, resource_link="assign-1", lineitem=lineitem,
                   claims={CUSTOM: {"assessment_id": str(assessment_id)}})
    assert first.status_code == 200 and f"/student/assessments/{assessment_id}?t=" in first.url
    assert "<title>Quiz 1 · Biology</title>" in first.text and ">Start<" in first.text
    link = [r for r in rows(tool, ResourceLink) if r.lti_resource_link_id == "assign-1"][0]
    assert link.assessment_id == assessment_id
    assert assessment(tool, assessment_id).lineitem_url == lineitem

    # The mapping holds without the custom parameter; staff land on the editor with Preview.
    again = landed(lms, lms.student, resource_link="assign-1")
    assert f"/student/assessments/{assessment_id}?t=" in again.url
    staff = landed(lms, lms.teacher, resource_link="assign-1")
    assert f"/instructor/assessments/{assessment_id}?t=" in staff.url and "Preview as a student" in staff.text


def test_a_link_naming_another_courses_assessment_lands_on_the_home_page(tool, lms):
    t = launch(lms)
    assessment_id = create(tool, t)
    other = lms.platform.add_course(label="CHEM1", title="Chemistry")
    lms.platform.enroll(other, lms.teacher, roles=[INSTRUCTOR])
    lms.platform.enroll(other, lms.student, roles=[LEARNER])
    r = landed(lms, lms.student, course=other, resource_link="copied-1",
               claims={CUSTOM: {"assessment_id": str(assessment_id)}})
    # The course-copy step (deep linking) answers first: "not set up yet"; never this assessment.
    assert r.status_code in (200, 409) and "/student/assessments/" not in r.url
    assert "Which is a mammal?" not in r.text
    # Nor may its page be opened by address from that course.
    other_t = launch(lms, lms.student, course=other)
    assert get(tool, f"/student/assessments/{assessment_id}", other_t).status_code == 404
