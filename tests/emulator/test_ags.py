"""The emulator's Assignment and Grade Services, over real HTTP (facts sheet sections 8, 9)."""

import threading
import time

import pytest
import requests

from emulator import INSTRUCTOR, LEARNER, TA, Platform
from emulator import constants as C
from emulator.keys import generate_rsa
from emulator_stub import (CONTAINER, LINEITEM, RESULTS, SCORE, Ags, StubTool, iso_now,
                           link_rels, read_all)

EXT = "https://canvas.instructure.com/lti/submission"
ALL = [C.SCOPE_LINEITEM, C.SCOPE_LINEITEM_READONLY, C.SCOPE_RESULT_READONLY, C.SCOPE_SCORE]


@pytest.fixture(scope="module")
def tool_key():
    return generate_rsa()


@pytest.fixture
def platform():
    p = Platform()
    p.start()
    yield p
    p.stop()


@pytest.fixture
def stub(tool_key, platform):
    s = StubTool(tool_key)
    s.platform = platform
    yield s
    s.stop()


@pytest.fixture
def tool_reg(platform, stub):
    return platform.register_tool(
        client_id="10000000000002", login_url=stub.url + "/login",
        redirect_uris=[stub.url + "/launch"], target_link_uri=stub.url + "/launch",
        jwks_url=stub.url + "/jwks")


@pytest.fixture
def course(platform):
    course = platform.add_course(label="BIO101", title="Biology")
    course.teacher = platform.add_user(name="Ada Teacher")
    course.student = platform.add_user(name="Sam Student")
    platform.enroll(course, course.teacher, roles=[INSTRUCTOR])
    platform.enroll(course, course.student, roles=[LEARNER])
    return course


@pytest.fixture
def ags(platform, stub, tool_reg):
    return Ags(platform, stub, tool_reg, ALL)


def new_item(ags, course, **fields):
    body = {"label": "Quiz 1", "scoreMaximum": 10, **fields}
    r = ags.post(course.lineitems_url, body)
    assert r.status_code == 201, r.text
    return r.json()


# ---------------------------------------------------------------- line items
def test_create_needs_label_and_score_maximum_and_makes_an_assignment(platform, course, ags):
    for body in ({"scoreMaximum": 10}, {"label": "Quiz"}, {"label": "Quiz", "scoreMaximum": -1},
                 {"label": " ", "scoreMaximum": 5}):
        r = ags.post(course.lineitems_url, body)
        assert r.status_code == 400 and "Validation failed" in r.json()["errors"][0]["message"]
    assert platform.line_items(course) == []
    r = ags.post(course.lineitems_url, {"label": "Quiz 1", "scoreMaximum": 10,
                                        "resourceId": "assessment-7", "tag": "quiz"})
    assert r.status_code == 201 and r.headers["Content-Type"] == LINEITEM
    item = r.json()
    assert item == {"id": item["id"], "scoreMaximum": 10.0, "label": "Quiz 1",
                    "resourceId": "assessment-7", "tag": "quiz"}
    assert item["id"].startswith(course.lineitems_url + "/")
    (assignment,) = platform.assignments(course)
    assert (assignment.title, assignment.points_possible, assignment.origin) == \
        ("Quiz 1", 10.0, "ags")
    assert ags.get(item["id"]).json() == item
    r = ags.put(item["id"], {"label": "Quiz one", "scoreMaximum": 20, "tag": "t2"})
    assert r.status_code == 200 and r.json()["label"] == "Quiz one"
    assert r.json()["scoreMaximum"] == 20.0 and r.json()["tag"] == "t2"
    assert (assignment.title, assignment.points_possible) == ("Quiz one", 20.0)
    assert ags.put(item["id"], {"label": ""}).status_code == 400
    assert ags.put(item["id"], {"resourceLinkId": "other"}).status_code == 412


def test_list_pages_by_link_and_filters(platform, course, ags, stub):
    for n in range(105):
        new_item(ags, course, label=f"Item {n}", tag="odd" if n % 2 else "even",
                 resourceId=f"r{n % 3}")
    r = ags.get(course.lineitems_url, accept=CONTAINER)
    assert r.headers["Content-Type"] == CONTAINER and len(r.json()) == 10
    rels = link_rels(r)
    assert {"current", "next", "first", "last"} <= set(rels) and ", " not in r.headers["Link"]
    assert "per_page=10" in rels["next"] and "page=11" in rels["last"]
    rows, pages = read_all(ags, course.lineitems_url)
    assert pages == 11 and [x["label"] for x in rows] == [f"Item {n}" for n in range(105)]
    assert len(ags.get(course.lineitems_url, accept=CONTAINER, limit=500).json()) == 100
    assert len(ags.get(course.lineitems_url, accept=CONTAINER, limit=7).json()) == 7
    rows, _ = read_all(ags, course.lineitems_url, tag="odd", resource_id="r1")
    assert [x["label"] for x in rows] == [f"Item {n}" for n in range(105) if n % 6 == 1]
    # resource_link_id matches the assignment: its own line item and one joined to it
    assignment = platform.add_assignment(course, platform.tools["10000000000002"], "Essay", 5)
    extra = new_item(ags, course, label="Essay rubric", resourceLinkId=assignment.link.id)
    assert extra["resourceLinkId"] == assignment.link.id
    assert len(platform.assignments(course)) == 106  # joining made no new assignment
    rows, _ = read_all(ags, course.lineitems_url, resource_link_id=assignment.link.id)
    assert [x["label"] for x in rows] == ["Essay", "Essay rubric"]
    assert ags.post(course.lineitems_url, {"label": "x", "scoreMaximum": 1,
                                           "resourceLinkId": "nope"}).status_code == 404
    ungraded = platform.resource_link_launch(platform.tools["10000000000002"], course.teacher,
                                             course).claims[C.RESOURCE_LINK]["id"]
    assert ags.post(course.lineitems_url, {"label": "x", "scoreMaximum": 1,
                                           "resourceLinkId": ungraded}).status_code == 412
    # another tool sees none of them and may not touch them
    other = platform.register_tool(client_id="10000000000003", jwks_url=stub.url + "/jwks")
    theirs = Ags(platform, stub, other, ALL)
    assert theirs.get(course.lineitems_url, accept=CONTAINER).json() == []
    r = theirs.get(extra["id"])
    assert r.status_code == 412 and "permission" in r.json()["errors"]["message"]
    assert ags.get(course.lineitems_url.replace(f"/{course.course_id}/", "/999/"),
                   accept=CONTAINER).status_code == 404


def test_scopes_and_tokens(platform, course, stub, tool_reg, ags):
    item = new_item(ags, course)
    assert requests.get(course.lineitems_url, timeout=5).status_code == 401
    bad = requests.get(course.lineitems_url, timeout=5, headers={"Authorization": "Bearer x"})
    assert bad.status_code == 401 and bad.json()["errors"]["type"] == "unauthorized"

    def refused(response):
        assert response.status_code == 401, response.text
        assert response.json() == {"errors": {"type": "unauthorized",
                                              "message": "Insufficient permissions"}}

    score_only = Ags(platform, stub, tool_reg, [C.SCOPE_SCORE])
    refused(score_only.get(course.lineitems_url, accept=CONTAINER))
    refused(score_only.get(item["id"] + "/results", accept=RESULTS))
    assert score_only.score(item["id"], course.student, scoreGiven=1,
                            scoreMaximum=10).status_code == 200
    readonly = Ags(platform, stub, tool_reg, [C.SCOPE_LINEITEM_READONLY])
    assert readonly.get(course.lineitems_url, accept=CONTAINER).status_code == 200
    assert readonly.get(item["id"]).status_code == 200
    refused(readonly.post(course.lineitems_url, {"label": "x", "scoreMaximum": 1}))
    refused(readonly.put(item["id"], {"label": "x"}))
    refused(readonly.delete(item["id"]))
    refused(readonly.score(item["id"], course.student, scoreGiven=1, scoreMaximum=10))
    refused(readonly.get(item["id"] + "/results", accept=RESULTS))
    results = Ags(platform, stub, tool_reg, [C.SCOPE_RESULT_READONLY])
    assert results.get(item["id"] + "/results", accept=RESULTS).status_code == 200
    platform.revoke_tokens()
    assert ags.get(item["id"]).status_code == 401


def test_delete_only_what_ags_created(platform, course, ags, tool_reg):
    made_in_canvas = platform.add_assignment(course, tool_reg, "Lab report", 20)
    own_url = made_in_canvas.line_items[0].url
    r = ags.delete(own_url)
    assert r.status_code == 401 and ags.get(own_url).status_code == 200
    joined = new_item(ags, course, label="Lab rubric", resourceLinkId=made_in_canvas.link.id)
    assert ags.delete(joined["id"]).status_code == 204
    assert ags.get(joined["id"]).status_code == 404
    assert [a.title for a in platform.assignments(course)] == ["Lab report"]
    created = new_item(ags, course, label="Quiz 2")
    assert ags.delete(created["id"]).status_code == 204
    assert ags.get(created["id"]).status_code == 404
    assert ags.score(created["id"], course.student, scoreGiven=1,
                     scoreMaximum=1).status_code == 404
    assert [a.title for a in platform.assignments(course)] == ["Lab report"]
    platform.delete_assignment(made_in_canvas)
    assert ags.get(own_url).status_code == 404


# ---------------------------------------------------------------- scores
def test_score_rules(platform, course, ags):
    url = new_item(ags, course, scoreMaximum=20)["id"]
    late = platform.add_user(name="Lee Late")
    for user in (late, course.teacher, "no-such-user"):
        r = ags.score(url, user, scoreGiven=5, scoreMaximum=10)
        assert r.status_code == 422
        assert r.json() == {"errors": {"type": "unprocessable_entity", "message":
                                       "User not found in course or is not a student"}}
    r = ags.score(url, course.student, scoreGiven=5)
    assert r.status_code == 422 and "ScoreMaximum" in r.json()["errors"]["message"]
    r = ags.score(url, course.student, scoreGiven=5, scoreMaximum=10, timestamp="yesterday")
    assert r.status_code == 400 and "not a valid timestamp" in r.json()["errors"]["message"]
    body = {"userId": course.student.sub, "scoreGiven": 1, "scoreMaximum": 2,
            "activityProgress": "Completed", "gradingProgress": "FullyGraded"}
    r = ags.post(url + "/scores", body, media=SCORE)
    assert r.status_code == 400 and "timestamp" in r.json()["errors"][0]["message"]
    stamp = iso_now()
    r = ags.score(url, course.student, scoreGiven=7, scoreMaximum=10, timestamp=stamp)
    assert r.status_code == 200 and r.headers["Content-Type"] == SCORE
    result_url = r.json()["resultUrl"]
    assert result_url.startswith(url + "/results/")
    cell = platform.gradebook(course).cell(url, course.student)
    assert (cell.score, cell.result_score, cell.result_maximum) == (14.0, 7.0, 10.0)
    assert (cell.workflow_state, cell.grading_progress) == ("graded", "FullyGraded")
    r = ags.score(url, course.student, scoreGiven=1, scoreMaximum=10, timestamp=iso_now(-60))
    assert r.status_code == 400 and "before last updated" in r.json()["errors"]["message"]
    r = ags.score(url, course.student, scoreGiven=8, scoreMaximum=10, timestamp=stamp)
    assert r.status_code == 200  # an equal timestamp is applied again
    assert platform.gradebook(course).cell(url, course.student).score == 16.0
    # PendingManual keeps the score and asks for grading; anything else clears it
    ags.score(url, course.student, scoreGiven=3, scoreMaximum=10, gradingProgress="PendingManual")
    cell = platform.gradebook(course).cell(url, course.student)
    assert (cell.score, cell.workflow_state) == (6.0, "pending_review")
    ags.score(url, course.student, scoreGiven=9, scoreMaximum=10, gradingProgress="Pending")
    assert platform.gradebook(course).cell(url, course.student).score is None
    ags.score(url, course.student, scoreGiven=9, scoreMaximum=10)
    ags.score(url, course.student, scoreGiven=None)
    cell = platform.gradebook(course).cell(url, course.student)
    assert cell.score is None and cell.score_posts == 6
    # enrolled later: the same score now goes through
    platform.enroll(course, late, roles=[LEARNER])
    assert ags.score(url, late, scoreGiven=5, scoreMaximum=10).status_code == 200
    assert platform.gradebook(course).cell(url, late).score == 10.0
    statuses = [s["status"] for s in platform.scores]
    assert statuses.count(422) == 4 and statuses.count(400) == 3 and platform.score_posts == 14


def test_new_submission_and_comments(platform, course, ags, tool_reg):
    assignment = platform.add_assignment(course, tool_reg, "Quiz 3", 10)
    url = assignment.line_items[0].url
    review = "https://tool.example/lti/launch?review_attempt=41"
    first = {"new_submission": True, "submission_type": "basic_lti_launch",
             "submission_data": review, "submitted_at": iso_now(-30)}
    ags.score(url, course.student, scoreGiven=6, scoreMaximum=10, comment="Well done",
              **{EXT: first})
    ags.score(url, course.student, scoreGiven=6, scoreMaximum=10,
              **{EXT: {"new_submission": False}})
    ags.score(url, course.student, scoreGiven=7, scoreMaximum=10, comment="Well done")
    cell = platform.gradebook(course).cell(assignment, course.student)
    assert [a["attempt"] for a in cell.attempts] == [1, 2]
    assert cell.attempts[0]["submission_type"] == "basic_lti_launch"
    assert cell.attempts[0]["submission_data"] == review
    assert cell.attempts[0]["submitted_at"][:19] == first["submitted_at"][:19]
    assert cell.attempts[0]["extension"] == first
    assert cell.attempts[1]["submission_type"] == "external_tool"
    assert cell.comments == ["Well done", "Well done"] and cell.score == 7.0
    r = ags.score(url, course.student, scoreGiven=7, scoreMaximum=10,
                  **{EXT: {"submitted_at": iso_now(3600)}})
    assert r.status_code == 400 and "future" in r.json()["errors"]["message"]
    # SpeedGrader launches the attempt's submission_data as an instructor
    launch = platform.speedgrader_launch(tool_reg, course.teacher, course, assignment,
                                         course.student, attempt=1)
    assert launch.claims[C.TARGET_LINK_URI] == review == launch.login_params["target_link_uri"]
    assert launch.claims[C.RESOURCE_LINK]["id"] == assignment.link.id
    assert C.INSTRUCTOR in launch.claims[C.ROLES] and launch.claims[C.PLACEMENT] is None
    assert launch.claims[C.AGS_ENDPOINT]["lineitem"] == url
    with pytest.raises(ValueError):
        platform.speedgrader_launch(tool_reg, course.teacher, course, assignment,
                                    course.student, attempt=2)


def test_results_paging_and_user_filter(platform, course, ags):
    url = new_item(ags, course)["id"]
    students = platform.add_many(course, 23)
    for n, s in enumerate(students):
        assert ags.score(url, s, scoreGiven=n % 10, scoreMaximum=10,
                         comment=f"c{n}").status_code == 200
    rows, pages = read_all(ags, url + "/results", accept=RESULTS)
    assert pages == 3 and [r["userId"] for r in rows] == [s.sub for s in students]
    assert rows[3] == {"id": rows[3]["id"], "scoreOf": url, "userId": students[3].sub,
                       "resultScore": 3.0, "resultMaximum": 10.0, "comment": "c3"}
    r = ags.get(url + "/results", accept=RESULTS, user_id=students[5].sub)
    assert r.headers["Content-Type"] == RESULTS and [x["userId"] for x in r.json()] == \
        [students[5].sub]
    assert ags.get(rows[5]["id"], accept=RESULTS).json()["resultScore"] == 5.0
    assert ags.get(url + "/results", accept=RESULTS, user_id=course.teacher.sub).json() == []
    assert ags.get(url + "/results", accept=RESULTS, user_id=course.student.sub).json() == []
    assert len(ags.get(url + "/results", accept=RESULTS, limit=20).json()) == 20


# ---------------------------------------------------------------- faults and throttling
def test_fault_switches(platform, course, ags):
    url = new_item(ags, course)["id"]
    platform.ags_faults.fail_next(500, 503, "throttle", 429)
    got = [ags.get(url) for _ in range(5)]
    assert [r.status_code for r in got] == [500, 503, 403, 429, 200]
    assert got[2].text == "403 Forbidden (Rate Limit Exceeded)"
    assert got[2].headers["X-Rate-Limit-Remaining"] == "0.0"
    assert got[3].headers["Retry-After"] == "1"
    assert all("X-Request-Cost" in r.headers for r in got)
    platform.ags_faults.status_503 = 2
    assert [ags.get(url).status_code for _ in range(3)] == [503, 503, 200]
    assert platform.throttle_refusals == 1
    assert platform.faults.status_503 == 0  # NRPS switches are separate
    # a timeout before Canvas acts: nothing applied; after it acts: applied all the same
    platform.ags_faults.hang_seconds = 2
    platform.ags_faults.timeout = 1
    with pytest.raises(requests.Timeout):
        ags.score(url, course.student, scoreGiven=4, scoreMaximum=10, timeout=0.3)
    assert platform.gradebook(course).cell(url, course.student).score_posts == 0
    platform.ags_faults.timeout_after_apply = 1
    with pytest.raises(requests.Timeout):
        ags.score(url, course.student, scoreGiven=4, scoreMaximum=10, timeout=0.3)
    assert platform.gradebook(course).cell(url, course.student).score_posts == 1
    platform.ags_latency = 1.0
    with pytest.raises(requests.Timeout):
        ags.http.get(url, timeout=0.3)
    platform.ags_latency = 0
    assert ags.get(url).status_code == 200


def test_throttle_bucket_refuses_the_thirteenth_request_in_flight(platform, course, ags):
    url = new_item(ags, course)["id"]
    r = ags.get(url)
    assert r.headers["X-Rate-Limit-Remaining"] == "600.0"  # switched off: the fixed value
    platform.throttle.enabled = True
    platform.ags_latency = 3.0  # long enough for all 12 to be in flight at once, even under load
    client = "10000000000002"
    answers = []

    def call():
        answers.append(ags.get(url))

    threads = [threading.Thread(target=call) for _ in range(12)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 3
    while platform.throttle.in_flight(client) < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert platform.throttle.in_flight(client) == 12
    refused = ags.score(url, course.student, scoreGiven=1, scoreMaximum=10)
    for t in threads:
        t.join()
    assert (refused.status_code, refused.text) == (403, "403 Forbidden (Rate Limit Exceeded)")
    assert refused.headers["Content-Type"].startswith("text/plain")
    assert refused.headers["X-Rate-Limit-Remaining"] == "0.0" and "Retry-After" not in \
        refused.headers
    assert platform.gradebook(course).cell(url, course.student).score_posts == 0
    assert [r.status_code for r in answers] == [200] * 12
    remaining = sorted(float(r.headers["X-Rate-Limit-Remaining"]) for r in answers)
    assert remaining[0] < 100  # the first to finish saw 11 others still charged
    assert (platform.throttle.refusals, platform.throttle_refusals) == (1, 1)
    platform.ags_latency = 0
    assert float(ags.get(url).headers["X-Rate-Limit-Remaining"]) > 590


def test_throttle_bucket_is_shared_with_nrps(platform, course, stub, tool_reg):
    platform.throttle.enabled = True
    platform.throttle.up_front_cost = 700  # one call in flight fills the bucket
    both = Ags(platform, stub, tool_reg, ALL + [C.SCOPE_NRPS])
    r = both.get(course.memberships_url, accept=C.NRPS_MEDIA_TYPE)
    assert r.status_code == 403 and platform.requests[-1]["status"] == 403
    platform.throttle.up_front_cost = 50
    r = both.get(course.memberships_url, accept=C.NRPS_MEDIA_TYPE)
    assert r.status_code == 200 and float(r.headers["X-Rate-Limit-Remaining"]) <= 600


# ---------------------------------------------------------------- deep linking and launches
def dl_response(platform, stub, tool_reg, launch, items, **extra):
    import jwt
    now = int(time.time())
    body = {"iss": tool_reg.client_id, "aud": platform.issuer, "iat": now, "exp": now + 300,
            "nonce": "n-" + str(now), C.DEPLOYMENT_ID: launch.deployment_id,
            C.MESSAGE_TYPE: "LtiDeepLinkingResponse", C.VERSION: "1.3.0",
            C.DL_CONTENT_ITEMS: items, C.DL_DATA: launch.claims[C.DL_SETTINGS]["data"], **extra}
    token = jwt.encode(body, stub.key, "RS256", headers={"kid": stub.kid})
    return requests.post(launch.claims[C.DL_SETTINGS]["deep_link_return_url"],
                         data={"JWT": token}, timeout=5)


def test_deep_linking_makes_an_assignment_that_launches(platform, course, stub, tool_reg, ags):
    dl = platform.deep_linking_launch(tool_reg, course.teacher, course)
    item = {"type": "ltiResourceLink", "title": "Quiz 4", "url": stub.url + "/launch?a=4",
            "custom": {"assessment_id": "4"},
            "lineItem": {"scoreMaximum": 12, "label": "Quiz 4", "resourceId": "assessment-4",
                         "tag": "quiz"}}
    r = dl_response(platform, stub, tool_reg, dl, [item])
    assert r.status_code == 200, r.text
    record = platform.deep_link_responses[-1]
    (assignment,) = record["assignments"]
    assert (assignment.title, assignment.points_possible, assignment.origin) == \
        ("Quiz 4", 12.0, "deep_linking")
    (li,) = platform.line_items(course)
    assert (li["label"], li["scoreMaximum"], li["resourceId"], li["tag"], li["coupled"]) == \
        ("Quiz 4", 12.0, "assessment-4", "quiz", True)
    assert li["resourceLinkId"] == assignment.link.id
    assert ags.delete(li["id"]).status_code == 401
    assert platform.gradebook(course).cell(li, course.student).score is None
    launch = platform.assignment_launch(tool_reg, course.student, course, assignment)
    stub_form = _launch_through_stub(platform, stub, launch)
    import jwt
    claims = jwt.decode(stub_form["id_token"], options={"verify_signature": False})
    assert claims[C.MESSAGE_TYPE] == "LtiResourceLinkRequest"
    assert claims[C.RESOURCE_LINK]["id"] == assignment.link.id
    assert claims[C.PLACEMENT] is None and claims[C.TARGET_LINK_URI] == item["url"]
    assert claims[C.CUSTOM]["assessment_id"] == "4"
    assert claims[C.CUSTOM]["canvas_user_id"] == course.student.canvas_user_id
    assert claims[C.AGS_ENDPOINT]["lineitem"] == li["id"]
    assert launch.login_params["target_link_uri"] == item["url"]
    # a second line item on the assignment: Canvas no longer names one in the launch
    new_item(ags, course, label="Quiz 4 bonus", resourceLinkId=assignment.link.id)
    again = platform.assignment_launch(tool_reg, course.student, course, assignment)
    assert "lineitem" not in again.claims[C.AGS_ENDPOINT]


def _launch_through_stub(platform, stub, launch):
    """Login initiation by hand, then ``Browser.submit_form`` posts the platform's
    auto-submitting id_token form to the stub tool."""
    from emulator import Browser
    browser = Browser()
    location = browser.initiate(launch.tool.login_url, launch).headers["Location"]
    page = browser.get(location)
    assert browser.submit_form(page).text == "launched"
    return stub.forms[-1]["form"]


@pytest.mark.parametrize("items, placement, problem", [
    ([{"type": "ltiResourceLink", "title": "A"}, {"type": "ltiResourceLink", "title": "B"}],
     "assignment_selection", "more than one content item"),
    ([{"type": "ltiResourceLink", "custom": {"n": 4}}], "assignment_selection", "custom"),
    ([{"type": "ltiResourceLink", "lineItem": {"scoreMaximum": "ten"}}], "assignment_selection",
     "scoreMaximum"),
    ([{"type": "ltiResourceLink", "url": "javascript:alert(1)"}], "assignment_selection", "url"),
    ([{"type": "html", "html": "<p>x</p>"}], "assignment_selection", "not accepted"),
])
def test_deep_linking_refuses_bad_items(platform, course, stub, tool_reg, items, placement,
                                        problem):
    dl = platform.deep_linking_launch(tool_reg, course.teacher, course, placement=placement)
    r = dl_response(platform, stub, tool_reg, dl, items)
    assert r.status_code == 400 and any(problem in e for e in r.json()["errors"]), r.text
    assert platform.assignments(course) == []


def test_deep_linking_multiple_and_cancel(platform, course, stub, tool_reg):
    dl = platform.deep_linking_launch(tool_reg, course.teacher, course, placement="link_selection")
    items = [{"type": "ltiResourceLink", "title": "Graded", "lineItem": {"scoreMaximum": 5}},
             {"type": "ltiResourceLink", "title": "Ungraded", "custom": {"assessment_id": "9"}}]
    assert dl_response(platform, stub, tool_reg, dl, items).status_code == 200
    record = platform.deep_link_responses[-1]
    assert [a.title for a in record["assignments"]] == ["Graded"]
    assert [link.title for link in record["links"]] == ["Graded", "Ungraded"]
    launch = platform.link_launch(tool_reg, course.student, course, record["links"][1])
    assert launch.claims[C.CUSTOM]["assessment_id"] == "9"
    assert "lineitem" not in launch.claims[C.AGS_ENDPOINT]
    cancel = platform.deep_linking_launch(tool_reg, course.teacher, course)
    r = dl_response(platform, stub, tool_reg, cancel, [],
                    **{"https://purl.imsglobal.org/spec/lti-dl/claim/msg": "Nothing chosen"})
    assert r.status_code == 200 and "Nothing chosen" in r.text
    assert platform.deep_link_responses[-1]["msg"] == "Nothing chosen"
    other = platform.deep_linking_launch(tool_reg, course.teacher, course)
    other_deployment = dl_response(platform, stub, tool_reg, other, [],
                                   **{C.DEPLOYMENT_ID: "99:nope"})
    assert other_deployment.status_code == 400


def test_teacher_grade_in_canvas_shows_in_results(platform, course, ags, tool_reg):
    assignment = platform.add_assignment(course, tool_reg, "Quiz 5", 10)
    url = assignment.line_items[0].url
    ags.score(url, course.student, scoreGiven=4, scoreMaximum=10)
    platform.grade_in_canvas(assignment, course.student, 9)
    (row,) = ags.get(url + "/results", accept=RESULTS).json()
    assert (row["resultScore"], row["resultMaximum"]) == (9.0, 10.0)
    assert platform.gradebook(course).cell("Quiz 5", course.student).score == 9.0
    ta = platform.add_user(name="Tia Assistant")
    platform.enroll(course, ta, roles=[TA])
    assert ags.score(url, ta, scoreGiven=1, scoreMaximum=10).status_code == 422
