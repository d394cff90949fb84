"""The AGS client (AGS 2.0 §3.2, §3.4, §3.5) over real HTTP against a small recording platform.

The platform here is a few werkzeug routes that page by ``Link`` exactly as told, so these
tests pin the client's own rules (URLs, media types, scopes, paging) without the emulator.
"""
from __future__ import annotations

import json
import threading
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from roster.rosterkit import fast_retries  # noqa: F401 (tests/roster, a namespace package)
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from support import free_port
from tool.errors import ToolError
from tool.lti import ags
from tool.lti.errors import PlatformError

MOODLE_GRADE_SYNC = [ags.SCOPE_SCORE, ags.SCOPE_LINEITEM_READONLY, ags.SCOPE_RESULT_READONLY]


class RecordingPlatform:
    """Token endpoint plus AGS routes; every request is recorded with its headers and query."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.token_scopes: list[str] = []
        self.pages: dict[str, tuple[list, str | None]] = {}  # path?query -> (body, next)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = make_server("127.0.0.1", self.port, self.app, threaded=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def app(self, environ, start_response):
        request = Request(environ)
        if request.path == "/token":
            self.token_scopes.append(request.form["scope"])
            response = Response(json.dumps({"access_token": "tok-" + uuid.uuid4().hex,
                                            "expires_in": 3600}), content_type="application/json")
            return response(environ, start_response)
        self.calls.append({"method": request.method, "path": request.path,
                           "query": parse_qs(request.query_string.decode()),
                           "accept": request.headers.get("Accept"),
                           "content_type": request.headers.get("Content-Type"),
                           "body": request.get_data(as_text=True)})
        key = request.full_path.rstrip("?")
        if request.method == "POST" and request.path.endswith("/scores"):
            response = Response(json.dumps({"resultUrl": self.base + request.path[:-7] + "/results/1"}),
                                content_type="application/json")
        elif key in self.pages:
            body, next_url = self.pages[key]
            response = Response(json.dumps(body), content_type="application/json")
            if next_url:
                response.headers["Link"] = f'<{next_url}>; rel="next", <{self.base}{key}>; rel="first"'
        else:
            response = Response(json.dumps({"errors": {"message": "not here"}}), status=404,
                                content_type="application/json")
        return response(environ, start_response)

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def recording():
    platform = RecordingPlatform()
    yield platform
    platform.stop()


@pytest.fixture
def client(tool, recording):
    from sqlalchemy.orm import Session

    from tool import jobs
    from tool.db import db
    from tool.lti.service_client import PlatformClient
    from tool.models import Registration
    with tool.app.app_context():
        registration = Registration(name="Recording", issuer=f"https://rec-{uuid.uuid4().hex}.example",
                                    client_id="rec", auth_login_url=recording.base + "/login",
                                    auth_token_url=recording.base + "/token",
                                    key_set_url=recording.base + "/jwks")
        db.session.add(registration)
        db.session.commit()
        made = PlatformClient(lambda: Session(db.engine), registration, jobs.client_settings())
        db.session.remove()
        yield made
        with Session(db.engine) as session:
            session.delete(session.get(Registration, registration.id))
            session.commit()


def test_score_and_result_urls_extend_the_path_and_keep_the_query():
    assert ags.scores_url("https://p.example/api/lti/courses/3/line_items/7") == \
        "https://p.example/api/lti/courses/3/line_items/7/scores"
    assert ags.scores_url("https://p.example/mod/lti/services.php/2/lineitems/9/lineitem?type_id=4") == \
        "https://p.example/mod/lti/services.php/2/lineitems/9/lineitem/scores?type_id=4"
    assert ags.results_url("https://p.example/li/7/?a=1&b=2") == "https://p.example/li/7/results?a=1&b=2"


def test_capabilities_follow_the_granted_scopes():
    full = ags.capabilities(ags.ALL_SCOPES)
    assert (full.can_create_lineitems, full.can_read_lineitems, full.can_send_scores,
            full.can_read_results) == (True, True, True, True)
    assert full.lineitem_read_scopes == [ags.SCOPE_LINEITEM]
    moodle = ags.capabilities(MOODLE_GRADE_SYNC)
    assert (moodle.can_create_lineitems, moodle.can_read_lineitems, moodle.can_send_scores,
            moodle.can_read_results) == (False, True, True, True)
    assert moodle.lineitem_read_scopes == [ags.SCOPE_LINEITEM_READONLY]
    score_only = ags.capabilities([ags.SCOPE_SCORE])
    assert (score_only.can_read_lineitems, score_only.can_read_results) == (False, False)
    assert ags.capabilities(None) == ags.capabilities([])


def test_capability_words_say_what_the_platform_allows():
    from tool.grading.lineitems import capability_words
    from tool.models import Context
    full = capability_words(Context(ags_scopes=list(ags.ALL_SCOPES)))
    assert full == ["The platform lets the tool create gradebook columns, send scores and read the gradebook."]
    moodle = " ".join(capability_words(Context(ags_scopes=MOODLE_GRADE_SYNC)))
    assert "cannot create gradebook columns" in moodle and "launched from" in moodle
    score_only = " ".join(capability_words(Context(ags_scopes=[ags.SCOPE_SCORE])))
    assert "lets the tool send scores." in score_only and "cannot read the gradebook" in score_only
    assert "has not granted" in capability_words(Context(ags_scopes=[]))[0]


def test_a_listing_follows_every_next_link_with_the_container_media_type(recording, client):
    base = "/api/lti/courses/1/line_items"
    first = f"{base}?resource_id=42&limit=100"
    second = f"{base}?resource_id=42&limit=100&page=2&cursor=AbC"
    third = f"{base}?resource_id=42&limit=100&page=3&cursor=XyZ"
    recording.pages[first] = ([{"id": "li-1", "resourceId": "42"}], recording.base + second)
    recording.pages[second] = ([{"id": "li-2", "resourceId": "42"}], recording.base + third)
    recording.pages[third] = ([{"id": "li-3", "resourceId": "42"}, "junk"], None)

    items = ags.list_lineitems(client, recording.base + base, resource_id="42", limit=100)

    assert [i["id"] for i in items] == ["li-1", "li-2", "li-3"]
    assert [c["query"].get("cursor") for c in recording.calls] == [None, ["AbC"], ["XyZ"]]
    assert {c["accept"] for c in recording.calls} == {ags.MEDIA_LINEITEM_CONTAINER}
    assert recording.token_scopes == [ags.SCOPE_LINEITEM_READONLY]


def test_a_next_link_that_loops_back_is_an_error_not_a_hang(recording, client):
    path = "/api/lti/courses/1/line_items"
    recording.pages[path] = ([{"id": "li-1"}], recording.base + path)
    with pytest.raises(PlatformError, match="loops back"):
        ags.list_lineitems(client, recording.base + path)


def test_results_are_read_page_by_page_from_the_line_items_results_url(recording, client):
    lineitem = recording.base + "/li/7?tenant=T"
    first = "/li/7/results?tenant=T&user_id=sub-1&limit=2"
    recording.pages[first] = ([{"userId": "sub-1", "resultScore": 3}], recording.base + "/li/7/results?p=2")
    recording.pages["/li/7/results?p=2"] = ([{"userId": "sub-1", "resultScore": 4}], None)

    results = list(ags.iter_results(client, lineitem, user_id="sub-1", limit=2))

    assert [r["resultScore"] for r in results] == [3, 4]
    assert recording.calls[0]["path"] == "/li/7/results"
    assert {c["accept"] for c in recording.calls} == {ags.MEDIA_RESULT_CONTAINER}
    assert recording.token_scopes == [ags.SCOPE_RESULT_READONLY]


def test_a_score_goes_to_the_scores_url_with_the_score_media_type(recording, client):
    body = {"userId": "sub-1", "scoreGiven": 4, "scoreMaximum": 5, "activityProgress": "Completed",
            "gradingProgress": "FullyGraded", "timestamp": "2026-01-01T00:00:00.000+00:00"}

    answer = ags.post_score(client, recording.base + "/li/7?tenant=T", body)

    call = recording.calls[0]
    assert (call["method"], call["path"], call["query"]) == ("POST", "/li/7/scores", {"tenant": ["T"]})
    assert call["content_type"] == ags.MEDIA_SCORE and json.loads(call["body"]) == body
    assert answer["resultUrl"].endswith("/li/7/results/1")
    assert recording.token_scopes == [ags.SCOPE_SCORE]


def test_a_line_item_without_label_or_points_is_refused_before_any_call(recording, client):
    with pytest.raises(ToolError, match="title"):
        ags.create_lineitem(client, recording.base + "/li", {"label": " ", "scoreMaximum": 5})
    with pytest.raises(ToolError, match="points"):
        ags.create_lineitem(client, recording.base + "/li", {"label": "Quiz", "scoreMaximum": 0})
    assert recording.calls == [] and recording.token_scopes == []


def test_a_refusal_keeps_the_platforms_status_and_words(recording, client):
    with pytest.raises(PlatformError) as caught:
        ags.get_lineitem(client, recording.base + "/li/404")
    assert caught.value.http_status == 404 and caught.value.platform_message == "not here"
    assert recording.calls[0]["accept"] == ags.MEDIA_LINEITEM
