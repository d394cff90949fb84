"""Launches are bound to the browser that began the login (login CSRF closed), over real HTTP.

Both ways of binding are exercised: the partitioned cookie set at login, and LTI Platform
Storage (the login page stores a proof in the platform's frame, the launch page reads it back
and posts it from the tool's own origin). The emulator's Browser plays the pages' scripts here;
tests/browser/test_launch_binding.py runs the real scripts in Chromium.
"""
from __future__ import annotations

import logging
import re
from urllib.parse import parse_qs, urlsplit

import requests
from support import table_counts

from emulator import Browser
from emulator.browser import parse_forms


_counts = table_counts


def _csp(resp) -> dict[str, list[str]]:
    out = {}
    for part in filter(None, (p.strip() for p in resp.headers.get("Content-Security-Policy", "").split(";"))):
        name, *values = part.split()
        out[name] = values
    return out


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _login_cookie(resp) -> str:
    cookies = [c for c in resp.raw.headers.getlist("Set-Cookie") if c.startswith("lti_login_")]
    assert len(cookies) == 1, resp.raw.headers.getlist("Set-Cookie")
    return cookies[0]


def _storage_form(resp, mode: str) -> dict:
    forms = [f for f in parse_forms(resp.text) if f["attrs"].get("data-lti-storage") == mode]
    assert len(forms) == 1, resp.text[:500]
    return forms[0]


def _refused(resp, code: str, status: int = 403) -> None:
    assert resp.status_code == status, (resp.status_code, resp.text[:400])
    assert f"<code>{code}</code>" in resp.text, resp.text[:600]
    assert "/student" not in resp.url and "/instructor" not in resp.url


def _to_launch_form(lms, browser, **options):
    """Login and auth in ``browser``: the platform's (action, fields) for the launch post."""
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course, **options)
    login = browser.initiate(lms.tool.login_url, pending)
    location = browser.auth_location(login, lms.platform.auth_login_url)
    assert location, (login.status_code, login.text[:300])
    return browser.authorize(location)


# -- the login answer ------------------------------------------------------------------------
def test_login_offered_storage_answers_a_page_that_stores_the_state_then_goes_on(lms):
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course)
    resp = Browser().initiate(lms.tool.login_url, pending)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    assert resp.headers["Cache-Control"] == "no-store"
    form = _storage_form(resp, "put")
    platform = _origin(lms.platform.auth_login_url)
    assert form["method"] == "get" and form["action"] == lms.platform.auth_login_url
    assert form["attrs"]["data-lti-storage-target"] == "post_message_forwarding"
    assert form["attrs"]["data-lti-storage-origin"] == platform
    assert form["attrs"]["data-lti-storage-key"].startswith("lti_state_")
    assert len(form["attrs"]["data-lti-storage-value"]) == 43
    fields = form["fields"]
    assert fields["scope"] == "openid" and fields["response_type"] == "id_token"
    assert fields["redirect_uri"] == lms.tool.launch_url and fields["state"] and fields["nonce"]
    assert fields["lti_message_hint"] == pending.login_params["lti_message_hint"]
    # The script is a file; the form may go to the platform; the platform may frame the page.
    assert '<script src="/static/platform_storage.js" defer></script>' in resp.text
    assert not re.search(r"<script(?![^>]*\bsrc=)", resp.text)
    csp = _csp(resp)
    assert csp["script-src"] == ["'self'"] and platform in csp["form-action"]
    assert platform in csp["frame-ancestors"]
    cookie = _login_cookie(resp)
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned", "Path=/lti/", "Max-Age=600"):
        assert attribute in cookie, cookie


def test_login_without_storage_redirects_and_sets_the_cookie(lms):
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course,
                                                storage_target=None)
    resp = Browser().initiate(lms.tool.login_url, pending)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith(lms.platform.auth_login_url + "?")
    assert resp.headers["Cache-Control"] == "no-store"
    assert "Partitioned" in _login_cookie(resp)


def test_an_odd_storage_target_is_ignored_and_the_cookie_still_binds(lms):
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course,
                                                storage_target="x\"><script>")
    resp = Browser().initiate(lms.tool.login_url, pending)
    assert resp.status_code == 302 and "<script>" not in resp.text
    assert lms.launch(lms.student, storage_target="x\"><script>").status_code == 200


# -- the cookie path ----------------------------------------------------------------------------
def test_the_cookie_binds_the_launch_to_the_browser_that_logged_in(lms):
    browser = Browser(platform_storage=False)
    resp = lms.launch(lms.student, browser=browser, storage_target=None)
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/student"
    # With storage offered, a browser that keeps the cookie never needs the storage round trip.
    browser = Browser()
    resp = lms.launch(lms.teacher, browser=browser)
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/instructor"
    assert [r.status_code for r in resp.history] == [303]


def test_a_launch_finished_in_another_browser_is_refused_and_spends_nothing(lms, db_session):
    attacker, victim = Browser(), Browser()
    action, fields = _to_launch_form(lms, attacker, storage_target=None)
    before = _counts(db_session)
    resp = victim.post_form(action, fields)
    _refused(resp, "launch_not_bound")
    assert "Allow cookies for this tool" in resp.text and "open the tool from your own course" in resp.text
    assert _counts(db_session) == before  # no session, no nonce spent, no user
    # Nothing was spent: the browser that began the login can still finish it.
    assert attacker.post_form(action, fields).status_code == 200


def test_a_cookie_of_another_login_does_not_count(lms, db_session):
    attacker, victim = Browser(), Browser()
    _to_launch_form(lms, victim, storage_target=None)  # the victim holds a cookie of its own login
    action, fields = _to_launch_form(lms, attacker, storage_target=None)
    _refused(victim.post_form(action, fields), "launch_not_bound")


def test_a_cross_site_form_post_of_the_launch_is_refused(lms, db_session):
    """What an attacker's page does: auto-submit the id_token and state it got, in the victim's browser."""
    action, fields = _to_launch_form(lms, Browser(), storage_target=None)
    before = _counts(db_session)
    resp = requests.post(action, data=fields, headers={"Origin": "https://evil.example"}, timeout=10)
    _refused(resp, "launch_not_bound")
    assert _counts(db_session) == before


# -- the platform storage path --------------------------------------------------------------------
def test_without_the_cookie_the_launch_reads_platform_storage_and_is_accepted(lms, db_session):
    browser = Browser(block_cookies=True)
    action, fields = _to_launch_form(lms, browser)
    tool = _origin(lms.tool.base_url)
    assert len(browser.platform_storage[tool]) == 1  # the login page stored its proof
    before = _counts(db_session)
    page = browser.post_form(action, fields)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert _counts(db_session) == before  # nothing checked or spent before the proof is back
    form = _storage_form(page, "get")
    assert form["method"] == "post" and form["action"] == "/lti/launch"
    assert form["attrs"]["data-lti-storage-target"] == "post_message_forwarding"
    assert form["attrs"]["data-lti-storage-origin"] == _origin(lms.platform.auth_login_url)
    assert form["attrs"]["data-lti-storage-key"] in browser.platform_storage[tool]
    assert form["fields"]["id_token"] == fields["id_token"] and form["fields"]["state"] == fields["state"]
    assert form["fields"]["lti_storage_value"] == ""
    assert not re.search(r"<script(?![^>]*\bsrc=)", page.text)
    assert _csp(page)["script-src"] == ["'self'"] and _csp(page)["form-action"] == ["'self'"]
    resp = browser.storage_post(page, _origin(lms.platform.auth_login_url))
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/student"
    assert browser.platform_storage[tool] == {}  # read once, then cleared


def test_the_storage_check_posted_from_another_site_is_refused(lms, db_session):
    browser = Browser(block_cookies=True)
    action, fields = _to_launch_form(lms, browser)
    page = browser.post_form(action, fields)
    form = _storage_form(page, "get")
    value = browser.platform_storage[_origin(lms.tool.base_url)][form["attrs"]["data-lti-storage-key"]]
    checked = {**form["fields"], "lti_storage_value": value}
    before = _counts(db_session)
    for headers in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}, {}):
        resp = requests.post(lms.tool.launch_url, data=checked, headers=headers, timeout=10)
        _refused(resp, "launch_check_foreign")
    assert _counts(db_session) == before
    # The same post from the tool's own page goes through: nothing was spent by the refusals.
    resp = requests.post(lms.tool.launch_url, data=checked, timeout=10,
                         headers={"Origin": _origin(lms.tool.base_url)})
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/student"


def test_the_storage_check_with_a_wrong_value_is_refused(lms, db_session):
    browser = Browser(block_cookies=True)
    action, fields = _to_launch_form(lms, browser)
    other_action, other_fields = _to_launch_form(lms, browser)  # another login: another value
    page = browser.post_form(action, fields)
    form = _storage_form(page, "get")
    store = browser.platform_storage[_origin(lms.tool.base_url)]
    key = form["attrs"]["data-lti-storage-key"]
    other_value = next(v for k, v in store.items() if k != key)
    same_origin = {"Origin": _origin(lms.tool.base_url)}
    before = _counts(db_session)
    for wrong in ("", "x" * 43, other_value, store[key] + "x", "é" * 500):
        resp = requests.post(lms.tool.launch_url, data={**form["fields"], "lti_storage_value": wrong},
                             headers=same_origin, timeout=10)
        _refused(resp, "launch_not_bound")
    assert _counts(db_session) == before
    assert browser.storage_post(page, _origin(lms.platform.auth_login_url)).status_code == 200


def test_a_stolen_launch_reaching_a_browser_without_the_stored_value_is_refused(lms, db_session):
    attacker, victim = Browser(), Browser(block_cookies=True)
    action, fields = _to_launch_form(lms, attacker)
    before = _counts(db_session)
    page = victim.post_form(action, fields)
    assert page.status_code == 200 and _storage_form(page, "get")
    resp = victim.storage_post(page, _origin(lms.platform.auth_login_url))
    _refused(resp, "launch_not_bound")
    assert _counts(db_session) == before
    assert attacker.post_form(action, fields).status_code == 200


# -- neither ----------------------------------------------------------------------------------------
def test_a_launch_with_neither_cookie_nor_storage_gets_the_explanation(lms, db_session):
    browser = Browser(block_cookies=True, platform_storage=False)
    before = _counts(db_session)
    resp = lms.launch(lms.student, browser=browser, storage_target=None)
    _refused(resp, "launch_not_bound")
    assert "<title>This launch could not be matched to your browser" in resp.text
    assert "did not send back the cookie" in resp.text and "Third-party cookies" in resp.text
    assert "partitioned" in resp.text
    assert _counts(db_session) == before
    # Storage offered but the course page holds no storage frame: the same explanation.
    resp = lms.launch(lms.student, browser=browser)
    _refused(resp, "launch_not_bound")
    assert "did not hold the value" in resp.text
    assert _counts(db_session) == before


def test_the_id_token_is_never_logged(lms, caplog):
    with caplog.at_level(logging.DEBUG):
        attacker = Browser()
        action, fields = _to_launch_form(lms, attacker, storage_target=None)
        _refused(Browser().post_form(action, fields), "launch_not_bound")
        _refused(lms.launch(lms.student, browser=Browser(block_cookies=True, platform_storage=False)),
                 "launch_not_bound")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "launch_not_bound" in logged
    assert fields["id_token"] not in logged and fields["id_token"][:40] not in logged


# -- the emulator's storage frame -----------------------------------------------------------------
def test_the_emulator_serves_canvas_storage_frame(lms):
    page = requests.get(lms.platform.base_url + "/post_message_forwarding", timeout=10)
    assert page.status_code == 200 and '<script src="post_message_forwarding.js">' in page.text
    script = requests.get(lms.platform.base_url + "/post_message_forwarding.js", timeout=10)
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("text/javascript")
    for subject in ("lti.put_data", "lti.get_data", "lti.capabilities", "storage_exhaustion"):
        assert subject in script.text


def test_state_proofs_are_per_state_and_per_purpose():
    from tool.lti import states
    state_a, _ = states.issue(1, "k")
    state_b, _ = states.issue(1, "k")
    assert states.proof(state_a, "cookie", "k") != states.proof(state_b, "cookie", "k")
    assert states.proof(state_a, "cookie", "k") != states.proof(state_a, "storage", "k")
    assert states.proof(state_a, "cookie", "k") != states.proof(state_a, "cookie", "other")
    assert states.proof_matches(states.proof(state_a, "storage", "k"), state_a, "storage", "k")
    assert not states.proof_matches(None, state_a, "storage", "k")
    assert states.storage_for("post_message_forwarding", "https://sso.canvaslms.com/api/lti/authorize_redirect") \
        == states.Storage("post_message_forwarding", "https://sso.canvaslms.com")
    assert states.storage_for("_parent", "http://127.0.0.1:8001/auth").origin == "http://127.0.0.1:8001"
    for odd in ("", None, "a b", "x" * 65, "frame\n"):
        assert states.storage_for(odd, "https://sso.canvaslms.com/auth") is None
    stored = states.peek(states.issue(3, "k", states.Storage("t", "https://p.example"))[0],
                         secret_key="k", max_age=60)
    assert stored.registration_id == 3 and stored.storage == states.Storage("t", "https://p.example")
    assert states.peek("forged", secret_key="k", max_age=60) is None


def test_a_state_issued_compressed_before_an_upgrade_is_still_read():
    """States are now written uncompressed; one an earlier version issued (zlib, leading '.')
    in the last few minutes still reads, and one signed with another key still does not."""
    from itsdangerous import URLSafeTimedSerializer
    from tool.lti import states
    data = {"n": "nonce-" + "x" * 26, "r": 5, "t": "post_message_forwarding", "o": "https://sso.canvaslms.com"}
    earlier = URLSafeTimedSerializer("k", salt=states.SALT).dumps(data)
    assert earlier.startswith(".")  # the compressed form
    issued = states.read_state(earlier, 5, secret_key="k", max_age=60)
    assert issued.nonce == data["n"] and issued.storage.origin == "https://sso.canvaslms.com"
    assert states.peek(URLSafeTimedSerializer("other", salt=states.SALT).dumps(data),
                       secret_key="k", max_age=60) is None
    fresh, nonce = states.issue(5, "k", states.Storage("post_message_forwarding", "https://sso.canvaslms.com"))
    assert not fresh.startswith(".") and len(fresh) < states.STATE_MAX
    assert states.read_state(fresh, 5, secret_key="k", max_age=60).nonce == nonce


def test_pages_framed_by_a_loopback_platform_allow_exactly_that_origin(lms):
    resp = Browser().initiate(lms.tool.login_url,
                              lms.platform.resource_link_launch(lms.registration, lms.student, lms.course))
    ancestors = _csp(resp)["frame-ancestors"]
    assert _origin(lms.platform.auth_login_url) in ancestors and "'none'" not in ancestors
    query = parse_qs(urlsplit(Browser().auth_location(resp)).query)
    assert query["state"] and query["client_id"] == [lms.registration.client_id]
