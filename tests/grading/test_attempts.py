"""Students take assessments; instructors grade, override and change the key (over real HTTP).

Scores that reach the outbox are checked as ``score_deliveries`` rows (the delivery helper's
module sends them; its own tests cover sending).
"""
from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
import requests
from emulator import MENTOR, TA
from grading.assesskit import (QUESTIONS, TEXT_QUESTION, answer_fields, assessment, attempts, create,
                               form, get, keys, launch, post, rows, start)
from roster.rosterkit import fast_retries  # noqa: F401 (fixture)


def deliveries(tool, assessment_id):
    from tool.models import ScoreDelivery
    return rows(tool, ScoreDelivery, assessment_id=assessment_id)


def test_a_student_takes_and_submits_and_sees_the_result(tool, lms):
    assessment_id = create(tool, launch(lms))
    t = launch(lms, lms.student)
    page = get(tool, f"/student/assessments/{assessment_id}", t)
    assert page.status_code == 200 and "<title>Quiz 1 · Biology</title>" in page.text
    attempt_id = start(tool, t, assessment_id)
    k = keys(tool, assessment_id)

    # Saved as they go: JSON from the page's script (token in a header), then the Save button.
    saved = requests.post(f"{tool.base_url}/student/attempts/{attempt_id}/save",
                          json={"answers": {k[0]: "1", k[2]: "9.79"}},
                          headers={"X-Page-Token": t, "Accept": "application/json"}, timeout=10)
    assert saved.status_code == 200 and saved.json()["saved_at"].endswith("Z")
    r = post(tool, f"/student/attempts/{attempt_id}/save", t, {f"a_{k[1]}": ["0", "2"]})
    assert r.status_code == 200 and "Answers saved." in r.text
    assert attempts(tool, assessment_id)[0].answers == {k[0]: 1, k[1]: [0, 2], k[2]: "9.79"}
    assert 'value="9.79"' in r.text and re.search(rf'id="a_{k[0]}-1"[^>]*checked', r.text)

    result = post(tool, f"/student/attempts/{attempt_id}/submit", t, answer_fields(tool, assessment_id))
    assert result.status_code == 200 and f"/student/attempts/{attempt_id}?" in result.url
    assert "10 / 10" in result.text and "Right answer:" not in result.text  # answers not shown yet
    [done] = attempts(tool, assessment_id)
    assert done.status == "graded" and done.score == 10 and done.submitted_at is not None
    [sent] = deliveries(tool, assessment_id)
    assert (sent.score_given, sent.reason, sent.grading_progress) == (10, "submit", "FullyGraded")
    home = get(tool, "/student", t).text
    assert "10 / 10" in home


def test_a_double_submit_makes_one_attempt_and_one_score(tool, lms):
    assessment_id = create(tool, launch(lms))
    t = launch(lms, lms.student)

    # Two tabs starting at once get the same attempt.
    ids, barrier = [], threading.Barrier(4)

    def tab():
        barrier.wait()
        ids.append(start(tool, t, assessment_id))
    threads = [threading.Thread(target=tab) for _ in range(4)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    assert len(set(ids)) == 1 and len(attempts(tool, assessment_id)) == 1

    fields = answer_fields(tool, assessment_id, choice=0)
    results = []

    def press():
        results.append(post(tool, f"/student/attempts/{ids[0]}/submit", t, fields))
    threads = [threading.Thread(target=press) for _ in range(3)]
    [th.start() for th in threads]
    [th.join() for th in threads]
    assert all(r.status_code == 200 and f"/student/attempts/{ids[0]}?" in r.url for r in results)
    [only] = attempts(tool, assessment_id)
    assert only.status == "graded" and only.score == 8
    assert len(deliveries(tool, assessment_id)) == 1
    # Saving after the submit is refused with the reason; the answers stay as submitted.
    late = post(tool, f"/student/attempts/{ids[0]}/save", t, {f"a_{keys(tool, assessment_id)[0]}": "1"})
    assert late.status_code == 409 and "already submitted" in late.text


@pytest.mark.parametrize("policy", ["highest", "latest"])
def test_attempts_allowed_and_which_attempt_counts(tool, lms, policy):
    assessment_id = create(tool, launch(lms), attempts_allowed="2", scoring_policy=policy)
    t = launch(lms, lms.student)
    first = start(tool, t, assessment_id)
    post(tool, f"/student/attempts/{first}/submit", t, answer_fields(tool, assessment_id))  # 10
    second = start(tool, t, assessment_id)
    assert second != first
    post(tool, f"/student/attempts/{second}/submit", t, answer_fields(tool, assessment_id, numeric="1"))  # 5
    page = get(tool, f"/student/assessments/{assessment_id}", t)
    assert "You have used all 2 attempts this assessment allows." in page.text and ">Start" not in page.text
    refused = post(tool, f"/student/assessments/{assessment_id}/start", t)
    assert refused.status_code == 409 and "used all 2 attempts" in refused.text
    assert len(attempts(tool, assessment_id)) == 2
    home = get(tool, "/student", t).text
    sent = deliveries(tool, assessment_id)
    if policy == "highest":
        assert "10 / 10" in home
        assert [d.score_given for d in sent] == [10]  # the lower second attempt changes nothing
    else:
        assert "5 / 10" in home
        assert [d.score_given for d in sent] == [10, 5]


def test_a_hand_graded_answer_awaits_grading_then_is_graded(tool, lms):
    teacher_t = launch(lms)
    assessment_id = create(tool, teacher_t, questions=[*QUESTIONS, TEXT_QUESTION])
    t = launch(lms, lms.student)
    attempt_id = start(tool, t, assessment_id)
    result = post(tool, f"/student/attempts/{attempt_id}/submit", t,
                  answer_fields(tool, assessment_id, text="Water moves <across> membranes"))
    assert "Awaiting grading" in result.text
    [waiting] = attempts(tool, assessment_id)
    assert waiting.status == "submitted" and waiting.needs_grading and waiting.score == 10
    assert "Awaiting grading" in get(tool, "/student", t).text
    [first] = deliveries(tool, assessment_id)
    assert first.grading_progress == "PendingManual"

    listing = get(tool, f"/instructor/assessments/{assessment_id}/attempts", teacher_t)
    assert "Sam Student" in listing.text and "Awaiting grading" in listing.text
    text_key = keys(tool, assessment_id)[3]
    review = get(tool, f"/instructor/attempts/{attempt_id}", teacher_t)
    assert "Water moves &lt;across&gt; membranes" in review.text and f'name="g_{text_key}"' in review.text
    bad = post(tool, f"/instructor/attempts/{attempt_id}", teacher_t, {"action": "grade", f"g_{text_key}": "9"})
    assert bad.status_code == 422 and "Give 0 to 4 points." in bad.text and 'value="9"' in bad.text
    assert attempts(tool, assessment_id)[0].needs_grading

    good = post(tool, f"/instructor/attempts/{attempt_id}", teacher_t, {"action": "grade", f"g_{text_key}": "3.5"})
    assert good.status_code == 200 and "Grades saved." in good.text and "Graded by hand" in good.text
    [graded] = attempts(tool, assessment_id)
    assert graded.status == "graded" and not graded.needs_grading and graded.score == 13.5
    from tool.models import GradeChange
    [change] = rows(tool, GradeChange, attempt_id=attempt_id)
    assert (change.kind, change.question_key, change.old_value, change.new_value) == ("manual", text_key, None, 3.5)
    assert change.actor_user_id is not None
    assert [(d.score_given, d.grading_progress, d.reason) for d in deliveries(tool, assessment_id)][-1] == \
        (13.5, "FullyGraded", "grade")
    assert "13.5 / 14" in get(tool, f"/student/attempts/{attempt_id}", t).text


def test_an_override_with_a_comment_is_recorded_and_sent(tool, lms):
    teacher_t = launch(lms)
    assessment_id = create(tool, teacher_t)
    t = launch(lms, lms.student)
    attempt_id = start(tool, t, assessment_id)
    post(tool, f"/student/attempts/{attempt_id}/submit", t, answer_fields(tool, assessment_id, numeric="0"))
    bad = post(tool, f"/instructor/attempts/{attempt_id}", teacher_t,
               {"action": "override", "override_score": "11", "override_comment": "Too generous"})
    assert bad.status_code == 422 and "from 0 to 10" in bad.text and "Too generous" in bad.text
    r = post(tool, f"/instructor/attempts/{attempt_id}", teacher_t,
             {"action": "override", "override_score": "9", "override_comment": "Units were right"})
    assert r.status_code == 200 and "Score saved." in r.text and "Units were right" in r.text
    from tool.models import GradeChange
    [change] = rows(tool, GradeChange, attempt_id=attempt_id)
    assert (change.kind, change.old_value, change.new_value, change.comment) == ("override", 5, 9, "Units were right")
    last = deliveries(tool, assessment_id)[-1]
    assert (last.score_given, last.reason, last.comment) == (9, "override", "Units were right")
    assert "9 / 10" in get(tool, f"/student/attempts/{attempt_id}", t).text


def test_changing_the_answer_key_regrades_submitted_attempts(tool, lms):
    teacher_t = launch(lms)
    assessment_id = create(tool, teacher_t)
    t = launch(lms, lms.student)
    attempt_id = start(tool, t, assessment_id)
    post(tool, f"/student/attempts/{attempt_id}/submit", t, answer_fields(tool, assessment_id, numeric="9.7"))
    assert attempts(tool, assessment_id)[0].score == 5
    before = assessment(tool, assessment_id)

    data = form(questions=[dict(q) for q in QUESTIONS])
    for n, key in enumerate(keys(tool, assessment_id), start=1):
        data[f"q{n}_key"] = key
    data["q3_tolerance"] = "0.2"  # 9.7 is now within the tolerance
    r = post(tool, f"/instructor/assessments/{assessment_id}", teacher_t, data)
    assert r.status_code == 200 and "regraded" in r.text
    after = assessment(tool, assessment_id)
    assert after.key_version == before.key_version + 1
    [regraded] = attempts(tool, assessment_id)
    assert regraded.score == 10 and regraded.key_version == after.key_version
    from tool.models import GradeChange
    [change] = rows(tool, GradeChange, attempt_id=attempt_id)
    assert (change.kind, change.old_value, change.new_value) == ("regrade", 5, 10)
    assert [(d.score_given, d.reason) for d in deliveries(tool, assessment_id)][-1] == (10, "regrade")

    # A title-only edit is no key change: nothing regraded, nothing sent.
    data["title"] = "Quiz 1 renamed"
    post(tool, f"/instructor/assessments/{assessment_id}", teacher_t, data)
    assert assessment(tool, assessment_id).key_version == after.key_version
    assert len(deliveries(tool, assessment_id)) == 2


def test_an_unpublished_assessment_cannot_be_started_or_submitted(tool, lms):
    teacher_t = launch(lms)
    assessment_id = create(tool, teacher_t)
    t = launch(lms, lms.student)
    attempt_id = start(tool, t, assessment_id)
    post(tool, f"/instructor/assessments/{assessment_id}/unpublish", teacher_t)
    k = keys(tool, assessment_id)
    # What was typed can still be saved (nothing lost); submitting is refused with the reason.
    saved = requests.post(f"{tool.base_url}/student/attempts/{attempt_id}/save", json={"answers": {k[2]: "3"}},
                          headers={"X-Page-Token": t}, timeout=10)
    assert saved.status_code == 200 and attempts(tool, assessment_id)[0].answers[k[2]] == "3"
    refused = post(tool, f"/student/attempts/{attempt_id}/submit", t, answer_fields(tool, assessment_id))
    assert refused.status_code == 409 and "not published" in refused.text
    assert attempts(tool, assessment_id)[0].status == "in_progress"
    assert post(tool, f"/student/assessments/{assessment_id}/start", t).status_code == 409
    assert deliveries(tool, assessment_id) == []


def test_an_observer_sees_but_never_starts_or_submits(tool, lms):
    assessment_id = create(tool, launch(lms))
    parent = lms.platform.add_user(name="Pat Parent")
    lms.platform.enroll(lms.course, parent, roles=[MENTOR])
    t = launch(lms, parent)
    page = get(tool, f"/student/assessments/{assessment_id}", t)
    assert page.status_code == 200 and "Which is a mammal?" in page.text and "observing" in page.text
    assert 'name="a_' not in page.text and ">Start<" not in page.text
    refused = post(tool, f"/student/assessments/{assessment_id}/start", t)
    assert refused.status_code == 403 and "Observers can see this assessment but cannot take it." in refused.text
    assert attempts(tool, assessment_id) == []


@pytest.mark.parametrize("role", ["teacher", "ta"])
def test_staff_take_a_preview_that_is_never_sent(tool, lms, role):
    assessment_id = create(tool, launch(lms), publish=False)
    user = lms.teacher
    if role == "ta":
        user = lms.platform.add_user(name="Tia Assistant")
        lms.platform.enroll(lms.course, user, roles=[TA])
    t = launch(lms, user)
    preview = get(tool, f"/instructor/assessments/{assessment_id}/preview", t)
    assert preview.status_code == 200 and "Preview: you are course staff" in preview.text
    attempt_id = start(tool, t, assessment_id)
    result = post(tool, f"/student/attempts/{attempt_id}/submit", t, answer_fields(tool, assessment_id))
    assert "Preview" in result.text and "10 / 10" in result.text
    [taken] = attempts(tool, assessment_id)
    assert taken.is_preview and taken.status == "graded"
    assert deliveries(tool, assessment_id) == []


def test_a_student_cannot_read_another_students_attempt(tool, lms):
    assessment_id = create(tool, launch(lms))
    t = launch(lms, lms.student)
    attempt_id = start(tool, t, assessment_id)
    post(tool, f"/student/attempts/{attempt_id}/submit", t, answer_fields(tool, assessment_id, text=None))
    other = lms.platform.add_user(name="Olga Other")
    lms.platform.enroll(lms.course, other)
    other_t = launch(lms, other)
    for path in (f"/student/attempts/{attempt_id}", f"/instructor/attempts/{attempt_id}"):
        r = get(tool, path, other_t)
        assert r.status_code in (403, 404) and "Which is a mammal?" not in r.text, path
    assert post(tool, f"/student/attempts/{attempt_id}/submit", other_t, {}).status_code == 404
    assert post(tool, f"/student/attempts/{attempt_id}/save", other_t, {}).status_code == 404


def test_odd_answers_are_ignored_not_a_500(tool, lms):
    """Digits int() refuses ("²", 5,000 digits) and JSON numbers too big for a float."""
    assessment_id = create(tool, launch(lms))
    t = launch(lms, lms.student)
    attempt_id = start(tool, t, assessment_id)
    k = keys(tool, assessment_id)
    save = f"{tool.base_url}/student/attempts/{attempt_id}/save"
    for odd in ("²", "9" * 5000, "1e999"):
        r = post(tool, f"/student/attempts/{attempt_id}/save", t, {f"a_{k[0]}": odd, f"a_{k[1]}": [odd, "0"]})
        assert r.status_code == 200, (odd[:8], r.status_code)
    r = requests.post(save, params={"t": t}, json={"answers": {k[0]: "²", k[1]: [10**400, 0], k[2]: 10**400}},
                      timeout=10)
    assert r.status_code == 200, r.text[:300]
    submitted = post(tool, f"/student/attempts/{attempt_id}/submit", t, {})
    assert submitted.status_code == 200
    assert attempts(tool, assessment_id)[0].answers[k[1]] == [0]


def test_a_session_that_ends_mid_attempt_loses_no_saved_answer(tool, lms):
    from tool.db import db
    from tool.models import PageSession, utcnow
    assessment_id = create(tool, launch(lms))
    t = launch(lms, lms.student)
    attempt_id = start(tool, t, assessment_id)
    k = keys(tool, assessment_id)
    post(tool, f"/student/attempts/{attempt_id}/save", t, {f"a_{k[0]}": "1", f"a_{k[2]}": "9.81"})
    with tool.app.app_context():  # the session's two hours are up
        for record in db.session.query(PageSession).all():
            record.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        db.session.remove()
    assert post(tool, f"/student/attempts/{attempt_id}/save", t, {f"a_{k[1]}": "0"}).status_code == 401

    t2 = launch(lms, lms.student)
    page = get(tool, f"/student/assessments/{assessment_id}", t2)
    assert f'id="attempt-{attempt_id}"' in page.text
    assert 'value="9.81"' in page.text and re.search(rf'id="a_{k[0]}-1"[^>]*checked', page.text)
    assert start(tool, t2, assessment_id) == attempt_id and len(attempts(tool, assessment_id)) == 1


def _same_questions(tool, assessment_id, **settings) -> dict:
    """The instructor's form for the questions as stored (same keys: no regrade by itself)."""
    data = form(questions=[dict(q) for q in QUESTIONS], **settings)
    for n, key in enumerate(keys(tool, assessment_id), start=1):
        data[f"q{n}_key"] = key
    return data


def test_scores_and_right_answers_show_only_when_the_instructor_says(tool, lms):
    teacher_t = launch(lms)
    assessment_id = create(tool, teacher_t, show_scores="", show_answers="")
    t = launch(lms, lms.student)
    attempt_id = start(tool, t, assessment_id)
    result = post(tool, f"/student/attempts/{attempt_id}/submit", t, answer_fields(tool, assessment_id))
    assert result.status_code == 200 and "Submitted" in result.text
    for page in (result, get(tool, "/student", t), get(tool, f"/student/assessments/{assessment_id}", t)):
        assert "10 / 10" not in page.text and "Right answer:" not in page.text, page.url

    # Released later: the same attempt now shows its score and the right answers; nothing is
    # regraded or sent again for it.
    r = post(tool, f"/instructor/assessments/{assessment_id}", teacher_t,
             _same_questions(tool, assessment_id, show_scores="1", show_answers="1"))
    assert r.status_code == 200 and "Changes saved." in r.text
    shown = get(tool, f"/student/attempts/{attempt_id}", t).text
    assert "10 / 10" in shown and re.search(r"Right answer:</span>\s*Whale", shown)
    assert len(deliveries(tool, assessment_id)) == 1


def test_a_key_change_sends_only_the_scores_it_changed(tool, lms):
    teacher_t = launch(lms)
    assessment_id = create(tool, teacher_t)
    other = lms.platform.add_user(name="Olga Other")
    lms.platform.enroll(lms.course, other)
    for user, numeric in ((lms.student, "9.7"), (other, "9.81")):  # 5 of 10, then 10 of 10
        t = launch(lms, user)
        attempt_id = start(tool, t, assessment_id)
        post(tool, f"/student/attempts/{attempt_id}/submit", t,
             answer_fields(tool, assessment_id, numeric=numeric))
    before = {d.user_id: d.score_given for d in deliveries(tool, assessment_id)}
    assert sorted(before.values()) == [5, 10]

    data = _same_questions(tool, assessment_id)
    data["q3_tolerance"] = "0.2"  # 9.7 is right now; 9.81 stays right
    assert "regraded" in post(tool, f"/instructor/assessments/{assessment_id}", teacher_t, data).text
    new = deliveries(tool, assessment_id)[len(before):]
    [changed] = [user for user, score in before.items() if score == 5]
    assert [(d.user_id, d.score_given, d.reason) for d in new] == [(changed, 10, "regrade")]
