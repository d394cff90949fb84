"""The platform emulator itself, over real HTTP on 127.0.0.1."""

import hashlib
import hmac
import re
import time

import jwt
import pytest
import requests

from emulator import (DELETE, INSTITUTION_INSTRUCTOR, INSTRUCTOR, LEARNER, NRPS_MEDIA_TYPE,
                      SCOPE_NRPS, SCOPE_SCORE, SYSTEM_USER, TA, Browser, Platform)
from emulator import constants as C
from emulator.browser import parse_forms
from emulator.keys import generate_rsa
from emulator.tokens import b64url_decode
from emulator_stub import StubTool, get_token

ISO_KID = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ---------------------------------------------------------------- fixtures
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


# ---------------------------------------------------------------- helpers
def auth_params(launch, **over):
    params = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post",
              "prompt": "none", "client_id": launch.tool.client_id,
              "redirect_uri": launch.tool.redirect_uris[0], "login_hint": launch.user.login_hint,
              "lti_message_hint": launch.login_params["lti_message_hint"],
              "state": "st-1", "nonce": "n-1"}
    params.update(over)
    return {k: v for k, v in params.items() if v is not None}


def authorize(p, launch, **over):
    r = requests.get(p.auth_login_url, params=auth_params(launch, **over), timeout=5)
    assert r.status_code == 200, r.text
    (form,) = parse_forms(r.text)
    return form["action"], form["fields"]


def verify(p, token, client_id):
    kid = jwt.get_unverified_header(token)["kid"]
    keys = requests.get(p.jwks_url, timeout=5).json()["keys"]
    (jwk,) = [k for k in keys if k["kid"] == kid]
    return jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=client_id,
                      issuer=p.issuer)


def setup_course(p, n_students=0):
    course = p.add_course(label="BIO101", title="Biology")
    teacher = p.add_user(name="Ada Teacher", sourcedid="7858675309")
    p.enroll(course, teacher, roles=[INSTRUCTOR])
    students = p.add_many(course, n_students) if n_students else []
    return course, teacher, students


def assertion_form(stub, p, tool, scope=SCOPE_NRPS, **kw):
    return {"grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": stub.assertion(p, tool.client_id, **kw), "scope": scope}


def nrps_get(url, token, **params):
    return requests.get(url, params=params or None, timeout=5, headers={
        "Authorization": f"Bearer {token}", "Accept": NRPS_MEDIA_TYPE, "User-Agent": "test/1"})


def links(response):
    out = {}
    for part in response.headers["Link"].split(","):
        m = re.fullmatch(r'<([^>]*)>; rel="(\w+)"', part)
        assert m, part
        out[m.group(2)] = m.group(1)
    return out


# ---------------------------------------------------------------- section 1: keys
def test_jwks_shape_and_rotation(platform, tool_reg, stub):
    r = requests.get(platform.jwks_url, timeout=5)
    assert r.status_code == 200 and platform.jwks_requests == 1
    (key,) = r.json()["keys"]
    assert set(key) == {"kty", "kid", "alg", "use", "n", "e"}
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
    assert ISO_KID.match(key["kid"])
    old = key["kid"]
    new = platform.rotate_key()
    assert new > old
    kids = [k["kid"] for k in requests.get(platform.jwks_url, timeout=5).json()["keys"]]
    assert kids == [old, new]
    course, teacher, _ = setup_course(platform)
    _, fields = authorize(platform, platform.resource_link_launch(tool_reg, teacher, course))
    assert jwt.get_unverified_header(fields["id_token"])["kid"] == new
    verify(platform, fields["id_token"], tool_reg.client_id)
    platform.jwks_down = True
    assert requests.get(platform.jwks_url, timeout=5).status_code == 503


# ---------------------------------------------------------------- section 2: auth endpoint
@pytest.mark.parametrize("override, check", [
    ({"redirect_uri": "http://127.0.0.1:1/elsewhere"}, "redirect_uri"),
    ({"nonce": None}, "nonce"),
    ({"state": None}, "state"),
    ({"response_mode": "query"}, "response_mode"),
    ({"response_type": "code"}, "response_type"),
    ({"scope": "openid profile"}, "scope"),
    ({"prompt": "login"}, "prompt"),
    ({"client_id": "999"}, "client_id"),
    ({"login_hint": "0" * 40}, "login_hint"),
    ({"lti_message_hint": "forged"}, "lti_message_hint"),
])
def test_auth_rejects_bad_requests(platform, tool_reg, override, check):
    course, teacher, _ = setup_course(platform)
    launch = platform.resource_link_launch(tool_reg, teacher, course)
    r = requests.get(platform.auth_login_url, params=auth_params(launch, **override), timeout=5)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert check in r.json()["error_description"]
    assert platform.auth_errors == [r.json()["error_description"]]


def test_browser_launch_posts_verified_id_token(platform, tool_reg, stub):
    course, teacher, _ = setup_course(platform)
    launch = platform.resource_link_launch(tool_reg, teacher, course)
    lp = launch.login_params
    assert lp["lti_deployment_id"] == lp["deployment_id"] == tool_reg.deployment_ids[0]
    assert re.fullmatch(r"\d+:[0-9a-f]{40}", lp["deployment_id"])
    assert (lp["canvas_region"], lp["lti_storage_target"]) == ("us-east-1", "post_message_forwarding")
    resp = Browser().launch(tool_reg.login_url, launch)
    assert resp.status_code == 200 and resp.text == "launched"
    (posted,) = stub.forms
    form, sent = posted["form"], stub.auth_params[0]
    assert set(form) == {"id_token", "state", "lti_storage_target", "utf8", "authenticity_token"}
    assert form["state"] == sent["state"] and form["utf8"] == "\u2713"
    assert posted["cookies"]["lti_state"] == sent["state"]  # Secure cookie kept on 127.0.0.1
    assert launch.id_tokens == [form["id_token"]]
    header = jwt.get_unverified_header(form["id_token"])
    assert header == {"typ": "JWT", "alg": "RS256", "kid": platform.kid}
    claims = verify(platform, form["id_token"], tool_reg.client_id)
    assert claims["nonce"] == sent["nonce"] and claims["azp"] == tool_reg.client_id
    assert claims["exp"] == claims["iat"] + 3600 and claims["sub"] == teacher.sub
    assert claims[C.MESSAGE_TYPE] == "LtiResourceLinkRequest" and claims[C.VERSION] == "1.3.0"
    assert claims[C.ROLES] == [INSTITUTION_INSTRUCTOR, INSTRUCTOR, SYSTEM_USER]
    assert claims[C.CONTEXT]["id"] == course.context_id and claims[C.PLACEMENT] is None
    assert re.fullmatch(r"[0-9a-f]{40}", claims[C.LTI11_LEGACY_USER_ID])
    assert claims[C.CUSTOM] == {"canvas_user_id": teacher.canvas_user_id,
                                "canvas_course_id": str(course.course_id)}
    assert claims[C.LIS] == {"person_sourcedid": "7858675309",
                             "course_offering_sourcedid": "$CourseSection.sourcedId"}
    assert claims[C.NRPS_CLAIM] == {"context_memberships_url": course.memberships_url,
                                    "service_versions": ["2.0"]}
    ags = claims[C.AGS_ENDPOINT]
    assert ags["lineitems"] == course.lineitems_url and "lineitem" not in ags
    assert SCOPE_SCORE in ags["scope"]
    # the pending launch can be replayed; a tampered form reaches the tool as is
    b = Browser()
    b.launch(tool_reg.login_url, launch, tamper_form=lambda f: {**f, "state": "evil"})
    assert b.last_form["state"] == "evil" and stub.forms[-1]["form"]["state"] == "evil"
    assert len(launch.id_tokens) == 2


def test_browser_returns_tool_error_and_platform_error(platform, tool_reg, stub):
    course, teacher, _ = setup_course(platform)
    launch = platform.resource_link_launch(tool_reg, teacher, course)
    assert Browser().launch(stub.url + "/broken-login", launch).status_code == 400
    stub.auth_overrides = {"nonce": None}
    r = Browser().launch(tool_reg.login_url, launch, method="GET")
    assert r.status_code == 400 and r.json()["error_description"] == "nonce missing"


@pytest.mark.parametrize("level, present, absent", [
    ("anonymous", set(), {"name", "given_name", "family_name", "email", "picture", C.LIS}),
    ("name_only", {"name", "given_name", "family_name", C.LIS}, {"email", "picture"}),
    ("email_only", {"email"}, {"name", "given_name", "family_name", "picture", C.LIS}),
    ("public", {"name", "given_name", "family_name", "email", "picture", C.LIS}, set()),
])
def test_privacy_levels(platform, tool_reg, level, present, absent):
    course, teacher, _ = setup_course(platform)
    _, fields = authorize(platform, platform.resource_link_launch(
        tool_reg, teacher, course, privacy_level=level))
    claims = verify(platform, fields["id_token"], tool_reg.client_id)
    assert present <= set(claims) and not (absent & set(claims))
    assert claims[C.LTI11_LEGACY_USER_ID] == teacher.lti11_legacy_user_id


def test_course_navigation_and_deep_linking(platform, tool_reg):
    course, teacher, _ = setup_course(platform)
    nav = platform.resource_link_launch(tool_reg, teacher, course, placement="course_navigation")
    assert nav.claims[C.RESOURCE_LINK]["id"] == course.context_id
    assert nav.claims[C.PLACEMENT] == "course_navigation"
    dl = platform.deep_linking_launch(tool_reg, teacher, course)
    claims = verify(platform, authorize(platform, dl)[1]["id_token"], tool_reg.client_id)
    settings = claims[C.DL_SETTINGS]
    assert claims[C.MESSAGE_TYPE] == "LtiDeepLinkingRequest" and C.RESOURCE_LINK not in claims
    assert settings["accept_types"] == ["ltiResourceLink"] and settings["accept_multiple"] is False
    assert settings["deep_link_return_url"].endswith("placement=assignment_selection")
    multi = platform.deep_linking_launch(tool_reg, teacher, course, placement="link_selection")
    assert multi.claims[C.DL_SETTINGS]["accept_multiple"] is True


def test_deep_linking_response_endpoint(platform, tool_reg, stub):
    course, teacher, _ = setup_course(platform)
    dl = platform.deep_linking_launch(tool_reg, teacher, course)
    settings = dl.claims[C.DL_SETTINGS]
    now = int(time.time())
    body = {"iss": tool_reg.client_id, "aud": platform.issuer, "iat": now, "exp": now + 300,
            "nonce": "x", C.DEPLOYMENT_ID: dl.deployment_id,
            C.MESSAGE_TYPE: "LtiDeepLinkingResponse", C.VERSION: "1.3.0",
            C.DL_CONTENT_ITEMS: [{"type": "ltiResourceLink", "title": "Quiz 1"}],
            C.DL_DATA: settings["data"]}
    good = jwt.encode(body, stub.key, "RS256", headers={"kid": stub.kid})
    r = requests.post(settings["deep_link_return_url"], data={"JWT": good}, timeout=5)
    assert r.status_code == 200, r.text
    assert platform.deep_link_responses[-1]["errors"] == []
    bad = jwt.encode({**body, "aud": "nope"}, stub.key, "RS256", headers={"kid": stub.kid})
    r = requests.post(settings["deep_link_return_url"], data={"JWT": bad}, timeout=5)
    assert r.status_code == 400 and "aud must be the platform issuer" in r.json()["errors"]


def test_launch_options_make_bad_tokens(platform, tool_reg):
    course, teacher, _ = setup_course(platform)

    def token(**opts):
        return authorize(platform, platform.resource_link_launch(tool_reg, teacher, course,
                                                                 **opts))[1]["id_token"]

    t = token(alg="none")
    assert t.endswith(".") and jwt.get_unverified_header(t)["alg"] == "none"
    t = token(alg="HS256")
    signing_input, sig = t.rsplit(".", 1)
    expected = hmac.new(platform.keys.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    assert b64url_decode(sig) == expected
    with pytest.raises(jwt.InvalidSignatureError):
        verify(platform, token(sign_with=generate_rsa()), tool_reg.client_id)
    with pytest.raises(jwt.InvalidSignatureError):
        verify(platform, token(tamper=True), tool_reg.client_id)
    assert "kid" not in jwt.get_unverified_header(token(header={"kid": DELETE}))
    claims = jwt.decode(token(clock_offset=-7200), options={"verify_signature": False})
    assert claims["exp"] < time.time()
    claims = verify(platform, token(claims={"roles": [], C.VERSION: "1.1", "sub": DELETE},
                                    remove=("deployment_id", C.CONTEXT)), tool_reg.client_id)
    assert claims[C.ROLES] == [] and claims[C.VERSION] == "1.1" and "sub" not in claims
    assert C.DEPLOYMENT_ID not in claims and C.CONTEXT not in claims
    assert token(raw_token="not.a.jwt") == "not.a.jwt"


# ---------------------------------------------------------------- section 6: token endpoint
def test_token_endpoint(platform, tool_reg, stub):
    post = lambda form: requests.post(platform.token_url, data=form, timeout=5)  # noqa: E731
    form = assertion_form(stub, platform, tool_reg, scope=f"{SCOPE_NRPS} {SCOPE_SCORE}")
    r = post(form)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["token_type"], body["expires_in"]) == ("Bearer", 3600)
    assert body["scope"].split() == [SCOPE_NRPS, SCOPE_SCORE]
    assert platform.access_tokens[body["access_token"]]["client_id"] == tool_reg.client_id
    assert (platform.tool_jwks_fetches, platform.token_requests) == (1, 1)

    def rejected(form, status, error, text):
        r = post(form)
        assert (r.status_code, r.json()["error"]) == (status, error), r.text
        assert text in r.json()["error_description"]

    rejected(form, 400, "invalid_request", "jti")  # replay
    rejected(assertion_form(stub, platform, tool_reg, key=generate_rsa()), 400,
             "invalid_request", "signature")
    rejected(assertion_form(stub, platform, tool_reg, iat=int(time.time()) - 600), 400,
             "invalid_request", "iat")
    rejected(assertion_form(stub, platform, tool_reg, exp=int(time.time()) - 5), 400,
             "invalid_request", "exp")
    rejected(assertion_form(stub, platform, tool_reg, aud="http://elsewhere/token"), 400,
             "invalid_request", "aud")
    rejected(assertion_form(stub, platform, tool_reg, kid="unknown"), 400, "invalid_request",
             "kid")
    rejected(assertion_form(stub, platform, tool_reg, scope="https://example.com/other"), 400,
             "invalid_scope", "other")
    rejected(assertion_form(stub, platform, tool_reg, sub="123", iss="123"), 401,
             "invalid_client", "client")
    rejected({**assertion_form(stub, platform, tool_reg), "grant_type": "password"}, 400,
             "unsupported_grant_type", "password")
    ok = assertion_form(stub, platform, tool_reg, aud=[platform.token_url, "other"])
    assert post(ok).status_code == 200
    assert platform.tool_jwks_fetches == 9  # every request that got as far as the signature


# ---------------------------------------------------------------- section 7: NRPS
def test_nrps_paging_and_cursor(platform, tool_reg, stub):
    course, teacher, students = setup_course(platform, n_students=119)
    token = get_token(platform, stub, tool_reg, SCOPE_NRPS)
    url, seen, pages = course.memberships_url, [], 0
    while url:
        r = nrps_get(url, token)
        assert r.status_code == 200, r.text
        assert r.headers["Content-Type"] == NRPS_MEDIA_TYPE
        assert ", " not in r.headers["Link"] and "X-Request-Cost" in r.headers
        assert r.headers["X-Rate-Limit-Remaining"] == "600.0"
        body = r.json()
        assert body["id"] == url and body["context"]["id"] == course.context_id
        seen += [m["user_id"] for m in body["members"]]
        rels = links(r)
        assert {"current", "first", "last"} <= set(rels)
        pages += 1
        if pages == 2:
            assert "prev" in rels
            bad = rels["next"].replace("cursor=Cx", "cursor=cx")
            assert nrps_get(bad, token).status_code == 400
            assert nrps_get(rels["next"].lower(), token).status_code == 400
        url = rels.get("next")
    assert pages == 3
    assert seen == [teacher.sub] + [s.sub for s in students]
    member = body["members"][-1]
    assert member["status"] == "Active" and member["roles"] == [LEARNER]
    assert {"name", "email", "picture", "lti11_legacy_user_id"} <= set(member)
    assert platform.requests[0]["headers"]["Accept"] == NRPS_MEDIA_TYPE
    assert platform.requests[0]["headers"]["User-Agent"] == "test/1"
    assert nrps_get(course.memberships_url, token, limit=500).json()["members"].__len__() == 50


def test_nrps_auth(platform, tool_reg, stub):
    course, _, _ = setup_course(platform)
    assert requests.get(course.memberships_url, timeout=5).status_code == 401
    score_only = get_token(platform, stub, tool_reg, SCOPE_SCORE)
    r = nrps_get(course.memberships_url, score_only)
    assert r.status_code == 401 and r.json()["errors"]["type"] == "unauthorized"
    token = get_token(platform, stub, tool_reg, SCOPE_NRPS)
    assert nrps_get(course.memberships_url, token).status_code == 200
    platform.revoke_tokens()
    assert nrps_get(course.memberships_url, token).status_code == 401


def test_nrps_filters_and_status(platform, tool_reg, stub):
    course, teacher, students = setup_course(platform, n_students=4)
    ta = platform.add_user(name="Tia Assistant")
    platform.enroll(course, ta, roles=[TA])
    token = get_token(platform, stub, tool_reg, SCOPE_NRPS)
    ids = lambda r: [m["user_id"] for m in r.json()["members"]]  # noqa: E731
    assert ids(nrps_get(course.memberships_url, token, role=LEARNER)) == [s.sub for s in students]
    assert ids(nrps_get(course.memberships_url, token, role=TA)) == [ta.sub]
    launch = platform.resource_link_launch(tool_reg, teacher, course)
    rlid = launch.claims[C.RESOURCE_LINK]["id"]
    r = nrps_get(course.memberships_url, token, rlid=rlid)
    assert len(ids(r)) == 6
    assert r.json()["members"][0]["message"][0][C.RESOURCE_LINK] == {"id": rlid}
    platform.restrict_link(course, rlid, students[:2])
    assert ids(nrps_get(course.memberships_url, token, rlid=rlid)) == \
        [teacher.sub, students[0].sub, students[1].sub, ta.sub]
    assert nrps_get(course.memberships_url, token, rlid="nope").status_code == 400
    # Canvas: dropped and inactive members just disappear
    platform.unenroll(course, students[0])
    platform.set_status(course, students[1], "Inactive")
    assert ids(nrps_get(course.memberships_url, token, role=LEARNER)) == \
        [s.sub for s in students[2:]]
    platform.nrps_report_inactive = True
    r = nrps_get(course.memberships_url, token, role=LEARNER)
    assert [m["status"] for m in r.json()["members"]] == ["Inactive", "Active", "Active"]


def test_nrps_differences(platform, tool_reg, stub):
    course, teacher, students = setup_course(platform, n_students=60)
    platform.nrps_offer_differences = True
    token = get_token(platform, stub, tool_reg, SCOPE_NRPS)
    first = links(nrps_get(course.memberships_url, token))
    assert "differences" not in first
    last = links(nrps_get(first["next"], token))
    diff_url = last["differences"]
    assert nrps_get(diff_url, token).json()["members"] == []
    newcomer = platform.add_user(name="New Comer")
    platform.enroll(course, newcomer, roles=[LEARNER])
    platform.unenroll(course, students[3])
    platform.set_status(course, students[7], "Inactive")
    r = nrps_get(diff_url, token)
    got = {m["user_id"]: m["status"] for m in r.json()["members"]}
    assert got == {newcomer.sub: "Active", students[3].sub: "Deleted",
                   students[7].sub: "Inactive"}
    assert nrps_get(links(r)["differences"], token).json()["members"] == []


# ---------------------------------------------------------------- section 9: throttling, faults
def test_nrps_faults(platform, tool_reg, stub):
    course, _, _ = setup_course(platform, n_students=120)
    token = get_token(platform, stub, tool_reg, SCOPE_NRPS)
    url = course.memberships_url
    platform.faults.throttle_403 = 1
    r = nrps_get(url, token)
    assert (r.status_code, r.text) == (403, "403 Forbidden (Rate Limit Exceeded)")
    assert r.headers["Content-Type"].startswith("text/plain")
    assert r.headers["X-Rate-Limit-Remaining"] == "0.0" and "Retry-After" not in r.headers
    platform.faults.status_429 = 1
    r = nrps_get(url, token)
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    platform.faults.status_5xx = 2
    assert [nrps_get(url, token).status_code for _ in range(3)] == [502, 503, 200]
    platform.faults.fail_at_page = 2
    nxt = links(nrps_get(url, token))["next"]
    assert [nrps_get(nxt, token).status_code for _ in range(2)] == [500, 500]
    platform.faults.rate_limit_remaining = 12.5
    platform.faults.delay = 0.2
    started = time.monotonic()
    r = nrps_get(url, token)
    assert time.monotonic() - started >= 0.2 and r.headers["X-Rate-Limit-Remaining"] == "12.5"
    platform.faults.reset()
    assert nrps_get(nxt, token).status_code == 200
    assert [e["status"] for e in platform.requests] == \
        [403, 429, 502, 503, 200, 200, 500, 500, 200, 200]


def test_add_many_is_fast(platform):
    course = platform.add_course()
    started = time.monotonic()
    users = platform.add_many(course, 50_000)
    assert time.monotonic() - started < 3
    assert len(course.enrollments) == 50_000 and len({u.sub for u in users}) == 50_000
