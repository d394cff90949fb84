"""Forged, broken and replayed launches are refused with their own reason, never with a 500."""
from __future__ import annotations

import base64
import json
import time
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from emulator import DELETE, Browser, Platform


def _refused(resp, code, status=None):
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:400])
    if status:
        assert resp.status_code == status
    assert f"<code>{code}</code>" in resp.text, resp.text[:1000]


def _platform_fault(resp, code, status):
    """The platform's fault (its key set down or broken): 502/503 with the clear page."""
    assert resp.status_code == status, (resp.status_code, resp.text[:400])
    assert f"<code>{code}</code>" in resp.text and "Traceback" not in resp.text, resp.text[:1000]


def test_alg_none_is_refused(lms):
    _refused(lms.launch(lms.student, alg="none"), "alg_not_allowed")


def test_hs256_signed_with_the_platform_public_key_is_refused(lms):
    _refused(lms.launch(lms.student, alg="HS256"), "alg_not_allowed")


def test_tampered_payload_is_refused(lms):
    _refused(lms.launch(lms.student, tamper=True), "bad_signature")


def test_token_signed_by_another_key_under_the_platform_kid_is_refused(lms):
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _refused(lms.launch(lms.student, sign_with=forger), "bad_signature")


def test_wrong_audience_is_refused(lms):
    _refused(lms.launch(lms.student, claims={"aud": "99999999999999", "azp": "99999999999999"}),
             "unknown_client_id")


def test_several_audiences_without_our_azp_are_refused(lms):
    client = lms.registration.client_id
    _refused(lms.launch(lms.student, claims={"aud": [client, "another-tool"], "azp": "another-tool"}),
             "azp_mismatch")


def test_azp_not_the_client_is_refused(lms):
    _refused(lms.launch(lms.student, claims={"azp": "another-tool"}), "azp_mismatch")


def test_expired_token_is_refused(lms):
    now = int(time.time())
    _refused(lms.launch(lms.student, claims={"iat": now - 3700, "exp": now - 100}), "token_expired")


def test_token_expired_within_the_leeway_is_accepted(lms):
    now = int(time.time())
    resp = lms.launch(lms.student, claims={"iat": now - 3630, "exp": now - 30})
    assert resp.status_code == 200


def test_iat_in_the_future_beyond_the_leeway_is_refused(lms):
    _refused(lms.launch(lms.student, clock_offset=180), "token_issued_in_future")


def test_platform_clock_30_seconds_ahead_is_accepted(lms):
    resp = lms.launch(lms.student, clock_offset=30)
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/student"


@pytest.mark.parametrize("claim", ["exp", "iat"])
def test_missing_timestamp_is_refused(lms, claim):
    _refused(lms.launch(lms.student, remove=(claim,)), "timestamp_missing")


def test_replayed_id_token_is_refused(lms):
    browser = Browser()
    assert lms.launch(lms.student, browser=browser).status_code == 200
    replay = browser.post_form(browser.last_action, browser.last_form)
    _refused(replay, "nonce_replayed")


def test_replayed_id_token_with_a_fresh_state_is_refused(lms):
    browser = Browser()
    assert lms.launch(lms.student, browser=browser).status_code == 200
    old_token = browser.last_form["id_token"]
    attacker = Browser()
    resp = lms.launch(lms.student, browser=attacker,
                      tamper_form=lambda form: {**form, "id_token": old_token})
    _refused(resp, "nonce_replayed")


def test_wrong_state_is_refused(lms):
    _refused(lms.launch(lms.student, tamper_form=lambda f: {**f, "state": "state-forged"}), "state_unknown")


def test_missing_state_is_refused(lms):
    _refused(lms.launch(lms.student, tamper_form=lambda f: {k: v for k, v in f.items() if k != "state"}),
             "state_missing")


def test_unknown_issuer_is_refused_at_launch(lms):
    _refused(lms.launch(lms.student, claims={"iss": "https://lms.elsewhere.example"}), "unknown_issuer")


def test_unknown_issuer_is_refused_at_login(tool):
    stranger = Platform(issuer="https://lms.elsewhere.example")
    stranger.start()
    try:
        reg = stranger.register_tool(login_url=tool.login_url, redirect_uris=[tool.launch_url],
                                     target_link_uri=tool.launch_url, jwks_url=tool.jwks_url)
        course, user = stranger.add_course(), stranger.add_user(name="Eve")
        resp = Browser().launch(tool.login_url, stranger.resource_link_launch(reg, user, course))
        _refused(resp, "unknown_registration")
        assert "platform add" in resp.text
    finally:
        stranger.stop()


def test_unknown_client_id_is_refused_at_login(lms):
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course)
    pending.login_params["client_id"] = "12345678901234"
    _refused(Browser().launch(lms.tool.login_url, pending), "unknown_registration")


def test_unknown_deployment_is_refused_with_the_command_that_allows_it(lms):
    resp = lms.launch(lms.student, claims={"deployment_id": "42:feedfacefeedface"})
    _refused(resp, "unknown_deployment")
    assert "42:feedfacefeedface" in resp.text
    assert "platform add-deployment" in resp.text and lms.registration.client_id in resp.text


def test_unknown_deployment_at_login_is_refused(lms):
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course)
    pending.login_params["lti_deployment_id"] = pending.login_params["deployment_id"] = "43:cafe"
    _refused(Browser().launch(lms.tool.login_url, pending), "unknown_deployment")


def test_any_deployment_registration_records_a_new_deployment(tool, db_session):
    from support import Lms
    from sqlalchemy import select
    from tool import platforms
    from tool.models import Deployment
    env = Lms(tool)
    try:
        with tool.app.app_context():
            spec = platforms.PlatformSpec(env.platform.issuer, env.registration.client_id,
                                          env.platform.auth_login_url, env.platform.token_url,
                                          env.platform.jwks_url)
            platforms.add_platform(db_session, spec, any_deployment=True)
        new_id = "77:0123456789abcdef"
        env.registration.deployment_ids.append(new_id)
        resp = env.launch(env.student, deployment_id=new_id)
        assert resp.status_code == 200
        row = db_session.scalars(select(Deployment).where(Deployment.deployment_id == new_id)).one()
        assert row.is_auto_recorded and row.registration_id == env.registration_id
    finally:
        env.stop()


def test_platform_jwks_down_gives_a_clear_error_not_a_500(lms):
    lms.platform.jwks_down = True
    resp = lms.launch(lms.student)
    _platform_fault(resp, "platform_jwks_unavailable", 503)
    assert "key set" in resp.text
    # Launches right after a failure are answered at once, without asking the platform again.
    _platform_fault(lms.launch(lms.student), "platform_jwks_unavailable", 503)
    assert lms.platform.jwks_requests == 1
    lms.platform.jwks_down = False
    time.sleep(lms.tool.settings.jwks_refetch_interval + 0.1)
    assert lms.launch(lms.student).status_code == 200


def test_a_known_key_keeps_working_while_the_platform_jwks_is_down(lms):
    assert lms.launch(lms.student).status_code == 200
    lms.platform.jwks_down = True
    lms.tool.app.extensions["platform_keys"]._entry(lms.platform.jwks_url).fetched_at = 1.0  # expired
    assert lms.launch(lms.student).status_code == 200


def test_steady_launches_fetch_the_platform_jwks_once(lms):
    for _ in range(5):
        assert lms.launch(lms.student).status_code == 200
    assert lms.platform.jwks_requests == 1


def test_platform_key_rotation_costs_exactly_one_refetch(lms):
    assert lms.launch(lms.student).status_code == 200
    assert lms.platform.jwks_requests == 1
    lms.platform.rotate_key()
    assert lms.launch(lms.teacher).status_code == 200
    assert lms.launch(lms.student).status_code == 200
    assert lms.platform.jwks_requests == 2


def test_unknown_kid_stream_does_not_hammer_the_platform_jwks(lms):
    assert lms.launch(lms.student).status_code == 200
    for _ in range(4):
        _refused(lms.launch(lms.student, header={"kid": "1999-01-01T00:00:00Z"}), "unknown_kid")
    assert lms.platform.jwks_requests <= 2


def _b64(obj) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


MALFORMED_TOKENS = [
    "a.b.c",
    "....",
    _b64([1, 2]) + "." + _b64({"iss": "x"}) + ".sig",
    _b64({"alg": "RS256", "kid": 5}) + "." + _b64("just a string") + ".sig",
    _b64({"alg": "RS256", "kid": "k"}) + "." + _b64({"iss": 5, "aud": {"x": 1}}) + ".sig",
    _b64({"alg": "RS256", "kid": "k"}) + "." + _b64({"iss": "https://canvas.instructure.com", "aud": []}) + ".sig",
    _b64({"alg": "RS256", "kid": "k"}) + "." + _b64(b"\xff\xfe not json") + ".sig",
    "x" * 20000,
]


@pytest.mark.parametrize("token", MALFORMED_TOKENS, ids=range(len(MALFORMED_TOKENS)))
def test_malformed_launch_forms_get_a_4xx_with_a_reason(tool, token):
    resp = Browser().post(tool.launch_url, data={"id_token": token, "state": "state-x"},
                          headers={"Accept": "application/json"})
    assert 400 <= resp.status_code < 500, resp.text[:300]
    body = resp.json()
    assert body["error"] and body["reason"]


def test_launch_url_opened_directly_explains_itself(tool):
    resp = Browser().get(tool.launch_url)
    assert resp.status_code == 405 and "Open the tool from your course" in resp.text


def test_login_without_issuer_or_hint_is_refused(tool):
    resp = Browser().post(tool.login_url, data={"login_hint": "x"})
    _refused(resp, "iss_missing")
    resp = Browser().post(tool.login_url, data={"iss": "https://canvas.instructure.com"})
    _refused(resp, "login_hint_missing")


def test_rejection_answers_json_when_asked(lms):
    resp = Browser().post(lms.tool.launch_url, data={"state": "s"}, headers={"Accept": "application/json"})
    assert resp.status_code == 400
    assert resp.json() == {"error": "id_token_missing", "reason": "The launch form has no id_token.",
                           "hint": "The platform must form-post id_token and state to /lti/launch."}


def test_every_refusal_is_logged_with_its_reason(lms, caplog):
    import logging
    with caplog.at_level(logging.WARNING, logger="tool.web"):
        _refused(lms.launch(lms.student, header={"kid": DELETE}), "kid_missing")
    lines = [r.getMessage() for r in caplog.records if r.name == "tool.web"]
    assert any("kid_missing" in line and "no key id (kid)" in line for line in lines), lines


def test_login_for_a_foreign_target_link_uri_is_refused(lms):
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course)
    pending.login_params["target_link_uri"] = "https://evil.example/steal"
    resp = Browser().launch(lms.tool.login_url, pending)
    _refused(resp, "target_link_uri_foreign")
    assert "TOOL_BASE_URL" in resp.text


def test_pages_do_not_leak_their_token_in_referers(lms):
    resp = lms.launch(lms.student)
    assert resp.headers["Referrer-Policy"] == "same-origin"


def test_a_platform_jwks_that_hangs_is_cut_off_by_the_timeout(lms):
    keys = lms.tool.app.extensions["platform_keys"]
    saved = keys.timeout
    keys.timeout = (1.0, 0.5)
    lms.platform.jwks_delay = 3.0
    try:
        began = time.monotonic()
        _platform_fault(lms.launch(lms.student), "platform_jwks_unavailable", 503)
        assert time.monotonic() - began < 2.5
    finally:
        keys.timeout = saved
        lms.platform.jwks_delay = 0.0


def test_an_unknown_message_type_is_refused(lms):
    _refused(lms.launch(lms.student, claims={"message_type": "LtiMysteryRequest"}), "message_type_unknown")


def _launch_through(app, lms, headers):
    """A student launch whose form post reaches ``app`` with the given (forwarded) headers."""
    browser = Browser()
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course)
    login = browser.initiate(lms.tool.login_url, pending)
    action, fields = browser.authorize(browser.auth_location(login))
    client = app.test_client(use_cookies=False)  # the Cookie header below is sent as given
    # With the login cookie of the browser that began the launch (it binds the launch).
    resp = client.post("/lti/launch", data=fields, headers={**headers, "Cookie": browser.cookie_header(action)})
    assert resp.status_code == 303, resp.text[:400]
    location = urlsplit(resp.headers["Location"])
    page = client.get(f"{location.path}?{location.query}", headers=headers)
    return location, page


def test_launch_behind_a_tls_proxy_honours_only_configured_forwarded_headers(lms):
    """PROXY_HOPS=1 trusts the proxy's scheme and host, never its X-Forwarded-Prefix unless
    TRUST_FORWARDED_PREFIX=1, and then only a plain path: ``//evil.example`` as a prefix would
    make every link and redirect point at another site."""
    from dataclasses import replace

    from tool import create_app, jobs
    behind = replace(lms.tool.settings, base_url="https://tool.school.edu", proxy_hops=1)
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "tool.school.edu"}
    try:
        untrusted = create_app(behind)
        for prefix in ("/lti-tool", "//evil.example"):
            location, page = _launch_through(untrusted, lms, {**proxied, "X-Forwarded-Prefix": prefix})
            assert location.path == "/student" and location.netloc in ("", "tool.school.edu"), location
            assert page.status_code == 200 and 'href="/static/tool.css"' in page.text

        trusted = create_app(replace(behind, trust_forwarded_prefix=True))
        _, page = _launch_through(trusted, lms, {**proxied, "X-Forwarded-Prefix": "/lti-tool"})
        assert page.status_code == 200 and 'href="/lti-tool/static/tool.css"' in page.text
        location, page = _launch_through(trusted, lms, {**proxied, "X-Forwarded-Prefix": "//evil.example"})
        assert "evil.example" not in location.netloc + location.path, location
        assert 'href="/static/tool.css"' in page.text and "evil.example" not in page.text
    finally:
        jobs.init_app(lms.tool.app)  # create_app rebound the job queue: give it back
