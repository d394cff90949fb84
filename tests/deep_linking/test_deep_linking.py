"""Deep linking over real HTTP against the emulator (Deep Linking 2.0 §4.4, §4.5; facts section 3).

The instructor's picker, the signed ``LtiDeepLinkingResponse`` (verified here with the tool's
published JWKS, and by the emulator's return endpoint), ``accept_multiple``, Cancel, refusals,
and the course copy of a link that names another course's assessment.
"""
from __future__ import annotations

from urllib.parse import urljoin

import jwt
import pytest
import requests
from emulator import INSTRUCTOR, Browser
from emulator.browser import parse_forms
from emulator.constants import DL_SETTINGS
from sqlalchemy.exc import NoResultFound
from roster.rosterkit import context_id_of, page_token  # noqa: F401 (tests/roster, a namespace package)

DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
LTI = "https://purl.imsglobal.org/spec/lti/claim/"


def dl_launch(lms, user=None, *, placement="assignment_selection", settings=None, course=None,
              browser=None, **kw):
    """A deep linking launch through login and auth; the tool's final response and the launch."""
    browser = browser or Browser()
    pending = lms.platform.deep_linking_launch(lms.registration, user or lms.teacher,
                                               course or lms.course, placement=placement, **kw)
    for key, value in (settings or {}).items():
        if value is None:
            pending.claims[DL_SETTINGS].pop(key, None)
        else:
            pending.claims[DL_SETTINGS][key] = value
    return browser.launch(lms.tool.login_url, pending), pending, browser


def add_assessment(lms, title, *, points=5.0, published=True, course=None, questions=None):
    from tool.db import db
    from tool.models import Assessment
    try:
        context_id = context_id_of(lms, course)
    except NoResultFound:  # the tool knows a course from its first launch
        assert lms.launch(lms.teacher, course).status_code == 200
        context_id = context_id_of(lms, course)
    with lms.tool.app.app_context():
        row = Assessment(context_id=context_id, title=title, instructions="Read carefully.",
                         questions=questions if questions is not None else [
                             {"key": "a1", "kind": "numeric", "prompt": "2+3?", "points": points,
                              "answer": 5, "tolerance": 0}],
                         points_possible=points, is_published=published, attempts_allowed=2)
        db.session.add(row)
        db.session.commit()
        found = row.id
        db.session.remove()
    return found


def answer_form(resp):
    """(action, fields) of the page's auto-posting form."""
    forms = [f for f in parse_forms(resp.text) if "JWT" in f["fields"]]
    assert len(forms) == 1, resp.text
    return urljoin(resp.url, forms[0]["action"]), forms[0]["fields"]


def verified(lms, token):
    """The response payload, verified with the key the tool publishes under the header's kid."""
    header = jwt.get_unverified_header(token)
    keys = requests.get(lms.tool.jwks_url, timeout=5).json()["keys"]
    jwk = next(k for k in keys if k["kid"] == header["kid"])
    public = jwt.algorithms.RSAAlgorithm.from_jwk(jwk)
    return header, jwt.decode(token, public, algorithms=["RS256"], audience=lms.platform.issuer,
                              issuer=lms.registration.client_id)


def csp(resp) -> dict:
    out = {}
    for part in resp.headers["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def test_instructor_picks_one_and_the_answer_verifies_with_the_line_item(lms):
    resp, pending, browser = dl_launch(lms)
    assert resp.status_code == 200 and "/lti/deep-linking" in resp.url
    assert "No assessments in this course yet" in resp.text and "assessments/new" in resp.text
    draft = add_assessment(lms, "Draft <quiz>", published=False)
    quiz = add_assessment(lms, "Quiz 1", points=7.5)
    t = page_token(resp)
    picker = browser.get(lms.tool.base_url + "/lti/deep-linking", params={"t": t})
    assert picker.status_code == 200
    # Published first; the unpublished one is marked; text from the course is escaped.
    assert picker.text.index("Quiz 1") < picker.text.index("Draft &lt;quiz&gt;")
    assert "Unpublished" in picker.text and 'type="radio"' in picker.text
    assert 'type="checkbox"' not in picker.text

    answer = browser.post(lms.tool.base_url + "/lti/deep-linking/respond",
                          data={"t": t, "assessment": str(quiz)})
    assert answer.status_code == 200, answer.text
    action, fields = answer_form(answer)
    settings = pending.claims[DL_SETTINGS]
    assert action == settings["deep_link_return_url"]
    # This page alone may post to the platform: CSP form-action names its origin.
    assert csp(answer)["form-action"] == ["'self'", lms.platform.base_url]
    assert "autopost.js" in answer.text and ">Continue</button>" in answer.text

    header, body = verified(lms, fields["JWT"])
    assert header["alg"] == "RS256"
    assert body[LTI + "deployment_id"] == lms.deployment_id
    assert body[LTI + "message_type"] == "LtiDeepLinkingResponse" and body[LTI + "version"] == "1.3.0"
    assert body[DL + "data"] == settings["data"]
    assert body["nonce"] and body["exp"] > body["iat"]
    [item] = body[DL + "content_items"]
    assert item["type"] == "ltiResourceLink" and item["title"] == "Quiz 1"
    assert item["url"] == lms.tool.launch_url
    assert item["custom"] == {"assessment_id": str(quiz)}
    assert item["lineItem"] == {"scoreMaximum": 7.5, "label": "Quiz 1", "resourceId": str(quiz),
                                "tag": "roster-grades"}
    assert "iframe" in item and "window" not in item  # iframe is accepted, so it is used

    # The platform verifies it against the tool's JWKS and records the item.
    back = browser.post_form(action, fields)
    assert back.status_code == 200, back.text
    record = lms.platform.deep_link_responses[-1]
    assert record["errors"] == [] and record["content_items"][0]["custom"]["assessment_id"] == str(quiz)

    # Each answer has its own nonce; the draft can be picked too.
    again = browser.post(lms.tool.base_url + "/lti/deep-linking/respond",
                         data={"t": t, "assessment": str(draft)})
    _, second = verified(lms, answer_form(again)[1]["JWT"])
    assert second["nonce"] != body["nonce"]
    assert second[DL + "content_items"][0]["custom"] == {"assessment_id": str(draft)}


def test_window_is_used_when_the_platform_takes_no_iframe(lms):
    quiz = add_assessment(lms, "Quiz W")
    resp, _, browser = dl_launch(lms, settings={"accept_presentation_document_targets": ["window"]})
    answer = browser.post(lms.tool.base_url + "/lti/deep-linking/respond",
                          data={"t": page_token(resp), "assessment": str(quiz)})
    [item] = verified(lms, answer_form(answer)[1]["JWT"])[1][DL + "content_items"]
    assert item["window"] == {"targetName": "_blank"} and "iframe" not in item


def test_accept_multiple_is_respected(lms):
    first, second = add_assessment(lms, "Quiz A"), add_assessment(lms, "Quiz B")
    # link_selection takes several: checkboxes, one item each, in the order picked.
    resp, _, browser = dl_launch(lms, placement="link_selection")
    assert 'type="checkbox"' in resp.text
    t = page_token(resp)
    answer = browser.post(lms.tool.base_url + "/lti/deep-linking/respond",
                          data={"t": t, "assessment": [str(second), str(first)]})
    action, fields = answer_form(answer)
    items = verified(lms, fields["JWT"])[1][DL + "content_items"]
    assert [i["custom"]["assessment_id"] for i in items] == [str(second), str(first)]
    assert browser.post_form(action, fields).status_code == 200
    assert lms.platform.deep_link_responses[-1]["errors"] == []

    # assignment_selection takes one: two are refused with the reason, the choice kept.
    resp, _, browser = dl_launch(lms)
    refused = browser.post(lms.tool.base_url + "/lti/deep-linking/respond",
                           data={"t": page_token(resp), "assessment": [str(first), str(second)]})
    assert refused.status_code == 422
    assert "Canvas takes one assessment here" in refused.text
    assert not [f for f in parse_forms(refused.text) if "JWT" in f["fields"]]
    assert f'value="{first}" id="assessment-{first}" checked' in refused.text

    nothing = browser.post(lms.tool.base_url + "/lti/deep-linking/respond", data={"t": page_token(resp)})
    assert nothing.status_code == 422 and "Choose an assessment to add" in nothing.text


def test_cancel_returns_an_empty_answer_with_a_message(lms):
    add_assessment(lms, "Quiz C")
    resp, pending, browser = dl_launch(lms)
    answer = browser.post(lms.tool.base_url + "/lti/deep-linking/cancel", data={"t": page_token(resp)})
    assert answer.status_code == 200
    action, fields = answer_form(answer)
    _, body = verified(lms, fields["JWT"])
    assert body[DL + "content_items"] == [] and body[DL + "msg"] == "Nothing was added"
    assert body[DL + "data"] == pending.claims[DL_SETTINGS]["data"]
    assert browser.post_form(action, fields).status_code == 200
    assert lms.platform.deep_link_responses[-1]["errors"] == []


def test_a_student_cannot_pick(lms):
    add_assessment(lms, "Quiz S")
    resp, _, _ = dl_launch(lms, lms.student)
    assert resp.status_code == 403
    assert "instructors and TAs can add assessments to Canvas" in resp.text
    assert not [f for f in parse_forms(resp.text) if "JWT" in f["fields"]]


def test_a_student_session_cannot_answer_either(lms):
    quiz = add_assessment(lms, "Quiz S2")
    student = lms.launch(lms.student)
    resp = requests.post(lms.tool.base_url + "/lti/deep-linking/respond", timeout=5,
                         data={"t": page_token(student), "assessment": str(quiz)})
    assert resp.status_code == 403 and "JWT" not in resp.text


@pytest.mark.parametrize("url, words", [
    (None, "carried no deep_link_return_url"),
    ("http://evil.example/courses/1/deep_linking_response", "must use https"),
    ("javascript:alert(1)", "no host"),
    ("https://user:pw@school.example/back", "user name or password"),
])
def test_an_absent_or_unusable_return_url_is_refused(lms, url, words):
    resp, _, _ = dl_launch(lms, settings={"deep_link_return_url": url})
    assert resp.status_code == 400 and words in resp.text
    assert not [f for f in parse_forms(resp.text) if "JWT" in f["fields"]]


def test_the_answer_goes_only_to_the_launch_return_url(lms):
    quiz = add_assessment(lms, "Quiz F")
    resp, pending, browser = dl_launch(lms)
    forged = browser.post(lms.tool.base_url + "/lti/deep-linking/respond", data={
        "t": page_token(resp), "assessment": str(quiz),
        "deep_link_return_url": "https://evil.example/steal", "return_url": "https://evil.example/"})
    action, _ = answer_form(forged)
    assert action == pending.claims[DL_SETTINGS]["deep_link_return_url"]
    assert "evil.example" not in forged.text
    assert "evil.example" not in forged.headers["Content-Security-Policy"]
    # A session that did not start with a deep linking launch has nothing to answer.
    ordinary = lms.launch(lms.teacher)
    refused = requests.post(lms.tool.base_url + "/lti/deep-linking/respond", timeout=5,
                            data={"t": page_token(ordinary), "assessment": str(quiz)})
    assert refused.status_code == 409 and "JWT" not in refused.text


def test_a_placement_that_takes_no_links_is_told_so(lms):
    resp, _, _ = dl_launch(lms, settings={"accept_types": ["file", "html"]})
    assert resp.status_code == 400
    assert "This placement cannot take assessments" in resp.text


def test_an_assessment_of_another_course_cannot_be_picked(lms):
    other = lms.platform.add_course(label="BIO102", title="Biology II")
    lms.platform.enroll(other, lms.teacher, roles=[INSTRUCTOR])
    lms.launch(lms.teacher, other)
    resp, _, browser = dl_launch(lms, course=other)
    mine = add_assessment(lms, "Mine")  # in lms.course, not in the course of this picker
    refused = browser.post(lms.tool.base_url + "/lti/deep-linking/respond",
                           data={"t": page_token(resp), "assessment": str(mine)})
    assert refused.status_code == 422 and "no longer in this course" in refused.text


# -- course copy ----------------------------------------------------------------------------

def _copies(lms, source_id):
    from sqlalchemy import select
    from tool.db import db
    from tool.models import Assessment, ResourceLink
    with lms.tool.app.app_context():
        rows = db.session.scalars(select(Assessment).where(Assessment.copied_from_id == source_id)).all()
        links = {link.lti_resource_link_id: link.assessment_id for link in db.session.scalars(
            select(ResourceLink).where(ResourceLink.registration_id == lms.registration_id))}
        out = [{"id": a.id, "context_id": a.context_id, "title": a.title, "questions": a.questions,
                "instructions": a.instructions, "published": a.is_published,
                "attempts_allowed": a.attempts_allowed, "lineitem_url": a.lineitem_url} for a in rows]
        db.session.remove()
    return out, links


def _copied_course(lms):
    """A second course (as Canvas course copy makes it) with the same teacher and student."""
    from emulator import INSTRUCTOR, LEARNER
    course = lms.platform.add_course(label="BIO101-S2", title="Biology (spring)")
    lms.platform.enroll(course, lms.teacher, roles=[INSTRUCTOR])
    lms.platform.enroll(course, lms.student, roles=[LEARNER])
    return course


def _copied_link_launch(lms, user, course, source_id, link_id, **kw):
    return lms.launch(user, course, resource_link={"id": link_id, "title": "Quiz 1 (copied)"},
                      claims={"custom": {"assessment_id": str(source_id)}}, **kw)


def test_a_copied_link_never_opens_the_other_course_and_staff_copy_it(lms):
    source = add_assessment(lms, "Quiz 1", points=4.0, questions=[
        {"key": "k1", "kind": "numeric", "prompt": "Secret 6*7?", "points": 4.0, "answer": 42,
         "tolerance": 0}])
    course = _copied_course(lms)
    # The student comes first: told plainly, nothing of the original shown.
    early = _copied_link_launch(lms, lms.student, course, source, "copied-link-1", lineitem=3)
    assert early.status_code == 409 and "/lti/not-set-up" in early.url
    assert "not set up in this course yet" in early.text and "Secret" not in early.text

    offer = _copied_link_launch(lms, lms.teacher, course, source, "copied-link-1", lineitem=3)
    assert offer.status_code == 200 and "/lti/course-copy" in offer.url, offer.text
    assert "copied from another course" in offer.text and "Secret" not in offer.text
    [form] = [f for f in parse_forms(offer.text) if f["fields"].get("c")]
    # A changed offer is refused.
    browser = requests.Session()
    forged = browser.post(urljoin(offer.url, form["action"]), timeout=5,
                          data={**form["fields"], "c": form["fields"]["c"] + "x"})
    assert forged.status_code == 403
    assert _copies(lms, source)[0] == []

    done = browser.post(urljoin(offer.url, form["action"]), data=form["fields"], timeout=5,
                        allow_redirects=False)
    assert done.status_code == 303
    again = browser.post(urljoin(offer.url, form["action"]), data=form["fields"], timeout=5,
                         allow_redirects=False)
    assert again.status_code == 303  # a second click makes no second copy
    copies, links = _copies(lms, source)
    assert len(copies) == 1
    [made] = copies
    assert made["context_id"] == context_id_of(lms, course) != context_id_of(lms, lms.course)
    assert made["title"] == "Quiz 1" and made["questions"][0]["prompt"] == "Secret 6*7?"
    assert made["instructions"] == "Read carefully." and made["attempts_allowed"] == 2
    assert made["published"] is False
    assert made["lineitem_url"] == f"{course.lineitems_url}/3"  # the copied assignment's column
    assert links["copied-link-1"] == made["id"]
    assert str(made["id"]) in done.headers["Location"]

    # From now on the link opens this course's copy, for both of them.
    teacher = _copied_link_launch(lms, lms.teacher, course, source, "copied-link-1")
    assert "/lti/course-copy" not in teacher.url and f"/{made['id']}" in teacher.url
    student = _copied_link_launch(lms, lms.student, course, source, "copied-link-1")
    assert "/lti/not-set-up" not in student.url and "not set up in this course" not in student.text

    # Another link of the same course copy offers the copy already made, and uses it.
    second = _copied_link_launch(lms, lms.teacher, course, source, "copied-link-2")
    assert "copied here already" in second.text
    [form2] = [f for f in parse_forms(second.text) if f["fields"].get("c")]
    used = requests.post(urljoin(second.url, form2["action"]), timeout=5, allow_redirects=False,
                         data={**form2["fields"], "use": str(made["id"])})
    assert used.status_code == 303
    copies, links = _copies(lms, source)
    assert len(copies) == 1 and links["copied-link-2"] == made["id"]


def test_an_assessment_of_another_platform_is_never_offered(lms):
    from support import Lms
    elsewhere = Lms(lms.tool)
    try:
        foreign = add_assessment(elsewhere, "Their quiz")
    finally:
        elsewhere.stop()
    resp = _copied_link_launch(lms, lms.teacher, lms.course, foreign, "foreign-link")
    assert resp.status_code == 200
    assert "/lti/course-copy" not in resp.url and "Their quiz" not in resp.text
    assert _copies(lms, foreign)[0] == []


# -- SpeedGrader: the score's submission_data launched again ---------------------------------

def _attempt(lms, assessment_id, user):
    from roster.rosterkit import roster
    from tool.db import db
    from tool.models import Attempt, utcnow
    user_id = roster(lms.tool, context_id_of(lms))[user.sub]["user_id"]
    with lms.tool.app.app_context():
        row = Attempt(assessment_id=assessment_id, user_id=user_id, number=1, status="submitted",
                      answers={"a1": "5"}, question_scores={"a1": 5.0}, score=5.0,
                      submitted_at=utcnow())
        db.session.add(row)
        db.session.commit()
        found = row.id
        db.session.remove()
    return found


def _review_launch(lms, user, attempt_id, course=None):
    with lms.tool.app.test_request_context():
        from tool.grading.links import submission_review_url
        target = submission_review_url(attempt_id)
    return lms.launch(user, course, claims={"target_link_uri": target})


def test_speedgrader_opens_the_review_for_staff_and_the_result_for_its_student(lms):
    from emulator import INSTRUCTOR, LEARNER
    quiz = add_assessment(lms, "Quiz R")
    assert lms.launch(lms.student).status_code == 200
    attempt = _attempt(lms, quiz, lms.student)

    staff = _review_launch(lms, lms.teacher, attempt)
    assert staff.status_code == 200 and f"/instructor/attempts/{attempt}" in staff.url, staff.url
    own = _review_launch(lms, lms.student, attempt)
    assert own.status_code == 200 and f"/student/attempts/{attempt}" in own.url, own.url

    classmate = lms.platform.add_user(name="Other Student")
    lms.platform.enroll(lms.course, classmate, roles=[LEARNER])
    refused = _review_launch(lms, classmate, attempt)
    assert refused.status_code == 403 and "another person" in refused.text
    # An instructor of another course may not read it either.
    other = lms.platform.add_course(label="CHEM", title="Chemistry")
    stranger = lms.platform.add_user(name="Other Teacher")
    lms.platform.enroll(other, stranger, roles=[INSTRUCTOR])
    assert _review_launch(lms, stranger, attempt, course=other).status_code == 403
    gone = _review_launch(lms, lms.teacher, 987654)
    assert gone.status_code == 404


@pytest.mark.parametrize("target", [
    "https://tool.example/lti/launch?review_attempt=99999999999",  # past an INTEGER column
    "https://tool.example/lti/launch?review_attempt=%C2%B2",  # "²": isdigit() yes, int() no
    "https://[tool/lti/launch?review_attempt=1",  # urlsplit refuses the host
    "https://tool.example/lti/launch?review_attempt=-1",
])
def test_a_review_target_that_names_no_plausible_attempt_is_no_review(target):
    from tool.grading.links import review_attempt_id
    assert review_attempt_id(target) is None
    assert review_attempt_id("https://tool.example/lti/launch?review_attempt=42") == 42
