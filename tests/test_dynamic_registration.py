"""LTI Dynamic Registration over real HTTP, as a Canvas admin and the tool's admin would do it.

The tool's admin makes an invite (``platform invite``); the platform's admin pastes the URL;
the platform opens it with ``openid_configuration`` and ``registration_token`` (facts sheet
section 5); the tool shows what it will register and, on Confirm, registers with the platform,
stores the registration and closes the frame. Both shapes run against the emulator: Canvas's
(no deployment id until the app is installed: the first launch records it) and the plain
1EdTech one of a platform installed in a folder (issuer with a path, deployment id in the
answer). Every refusal says why on the page, with a 4xx for what the platform or link got
wrong and a 502 when the platform cannot be reached.
"""
from __future__ import annotations

import html
import os
import re
import shutil
import socket
import threading
from datetime import timedelta
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from sqlalchemy import func, select

from emulator import INSTRUCTOR, Browser, Platform
from emulator.browser import parse_forms
from tool import invites
from tool.lti import ags, nrps
from tool.models import Registration, RegistrationInvite, utcnow

TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"


# -- helpers -------------------------------------------------------------------------------
def _db(tool, work):
    from tool.db import db
    with tool.app.app_context():
        try:
            return work(db.session)
        finally:
            db.session.remove()


def _cli(tool, *args):
    result = tool.app.test_cli_runner().invoke(args=list(args))
    assert "Traceback" not in result.output and result.exception is None, result.output
    return result


def invite_url(tool, *args) -> str:
    out = _cli(tool, "platform", "invite", *args).output
    found = re.search(r"(http://\S+/lti/register\?invite=\S+)", out)
    assert found, out
    return found.group(1)


def _registrations(tool, issuer):
    return _db(tool, lambda s: [(r.client_id, r.name, r.source, r.accepts_any_deployment,
                                 r.platform_url, sorted(d.deployment_id for d in r.deployments))
                                for r in s.scalars(select(Registration).where(
                                    Registration.issuer == issuer).order_by(Registration.id))])


def _invite(tool, url):
    code = parse_qs(urlsplit(url).query)["invite"][0]
    return _db(tool, lambda s: s.scalars(select(RegistrationInvite).where(
        RegistrationInvite.code_hash == invites.code_hash(code))).one())


def _page_ok(resp):
    assert "Traceback" not in resp.text
    assert resp.headers["Content-Type"].startswith("text/html")
    assert "<script>" not in resp.text  # strict CSP: no inline script


class Admin(requests.Session):
    """The platform admin's browser inside the platform's registration frame."""

    def __init__(self):
        super().__init__()
        self.trust_env = False

    def request(self, method, url, **kw):
        kw.setdefault("timeout", 30)
        return super().request(method, url, **kw)

    def confirm(self, page):
        forms = [f for f in parse_forms(page.text) if "confirmation" in f["fields"]]
        assert len(forms) == 1, page.text
        return self.post(urljoin(page.url, forms[0]["action"]), data=forms[0]["fields"])


@pytest.fixture
def platform(tool):
    lms = Platform(name="Emulated School")
    lms.start()
    yield lms
    lms.stop()


@pytest.fixture
def admin():
    with Admin() as session:
        yield session


def register(tool, platform, admin, shape="canvas"):
    """The whole happy path; (confirm page, done page)."""
    url = platform.dynreg.begin(invite_url(tool), shape)
    page = admin.get(url)
    assert page.status_code == 200, page.text
    _page_ok(page)
    done = admin.confirm(page)
    assert done.status_code == 200, done.text
    _page_ok(done)
    return page, done


def launch(tool, platform, client_id, deployment_id=None):
    """An instructor launch from the platform with this client id; the tool's final answer."""
    tool.app.extensions["platform_keys"].forget(platform.jwks_url)  # ports are reused
    course = platform.add_course(label="BIO101", title="Biology")
    teacher = platform.add_user(name="Ada Teacher")
    platform.enroll(course, teacher, roles=[INSTRUCTOR])
    pending = platform.resource_link_launch(platform.tools[client_id], teacher, course,
                                            deployment_id=deployment_id)
    return Browser().launch(tool.login_url, pending)


# -- the whole flow, both shapes ---------------------------------------------------------------
def test_canvas_registration_then_install_then_first_launch_records_the_deployment(tool, platform, admin):
    page, done = register(tool, platform, admin, "canvas")
    dynreg = platform.dynreg
    # The admin saw what will be registered before anything was.
    assert "Emulated School" in page.text and platform.issuer in page.text
    for placement in ("course_navigation", "assignment_selection", "link_selection"):
        assert placement in page.text
    assert "Privacy level: public" in page.text and nrps.SCOPE in page.text
    assert dynreg.config_requests[0]["authorization"].startswith("Bearer ")
    # What went to Canvas (facts sheet section 5).
    assert len(dynreg.posts) == 1
    body = dynreg.posts[-1]["body"]
    assert body["initiate_login_uri"] == tool.login_url and body["redirect_uris"] == [tool.launch_url]
    assert body["jwks_uri"] == tool.jwks_url and body["token_endpoint_auth_method"] == "private_key_jwt"
    assert set(body["scope"].split()) == {*ags.ALL_SCOPES, nrps.SCOPE}
    conf = body[TOOL_CONFIGURATION]
    assert conf["https://canvas.instructure.com/lti/privacy_level"] == "public"
    assert conf["custom_parameters"] == {"canvas_user_id": "$Canvas.user.id",
                                         "canvas_course_id": "$Canvas.course.id"}
    placements = {p: m["type"] for m in conf["messages"] for p in m["placements"]}
    assert placements == {"course_navigation": "LtiResourceLinkRequest",
                          "assignment_selection": "LtiDeepLinkingRequest",
                          "link_selection": "LtiDeepLinkingRequest"}
    client_id = dynreg.posts[-1]["answer"]["client_id"]
    # Stored: Canvas gave no deployment yet, so the first launch will record it.
    assert _registrations(tool, platform.issuer) == [
        (client_id, "Emulated School", "dynamic", True, platform.base_url, [])]
    assert client_id in done.text and "first launch" in done.text
    assert 'src="/static/register.js"' in done.text and "Return to the platform" in done.text
    assert "added by: dynamic registration" in _cli(tool, "platform", "list").output
    invite = _db(tool, lambda s: s.scalars(select(RegistrationInvite).order_by(
        RegistrationInvite.id.desc())).first())
    assert invite.used_at is not None and invite.registration_id is not None

    deployment_id = dynreg.install(client_id)  # the Canvas admin installs the app
    landed = launch(tool, platform, client_id, deployment_id)
    assert landed.status_code == 200, landed.text
    assert urlsplit(landed.url).path == "/instructor" and "Ada Teacher" in landed.text
    assert _registrations(tool, platform.issuer)[0][5] == [deployment_id]


def test_1edtech_platform_in_a_folder_gives_its_deployment_in_the_answer(tool, platform, admin):
    page, done = register(tool, platform, admin, "1edtech")
    assert platform.issuer == platform.base_url + "/moodle"
    # Its deep linking placements are its own: the page says ours may be ignored.
    assert "does not list assignment_selection, link_selection" in page.text
    answer = platform.dynreg.posts[-1]["answer"]
    client_id, deployment_id = answer["client_id"], answer[TOOL_CONFIGURATION]["deployment_id"]
    assert "custom_parameters" not in platform.dynreg.posts[-1]["body"][TOOL_CONFIGURATION]
    assert _registrations(tool, platform.issuer) == [
        (client_id, "moodle at 127.0.0.1", "dynamic", False, platform.base_url, [deployment_id])]
    assert deployment_id in done.text and "first launch" not in done.text
    landed = launch(tool, platform, client_id)
    assert landed.status_code == 200, landed.text
    assert urlsplit(landed.url).path == "/instructor"


def test_canvas_answer_with_a_top_level_deployment_id_is_stored(tool, platform, admin):
    platform.dynreg.deployment_in_answer = "top"
    register(tool, platform, admin, "canvas")
    answer = platform.dynreg.posts[-1]["answer"]
    assert _registrations(tool, platform.issuer) == [
        (answer["client_id"], "Emulated School", "dynamic", False, platform.base_url,
         [answer["deployment_id"]])]


def test_registering_the_same_issuer_and_client_again_updates_it(tool, platform, admin):
    platform.dynreg.next_client_id = "10000000000777"
    register(tool, platform, admin, "canvas")
    platform.dynreg.account_name = "Renamed School"
    _, done = register(tool, platform, admin, "canvas")
    assert "Registration updated" in done.text and "Renamed School" in done.text
    assert _registrations(tool, platform.issuer) == [
        ("10000000000777", "Renamed School", "dynamic", True, platform.base_url, [])]


def test_another_client_of_the_same_issuer_is_a_second_registration(tool, platform, admin):
    register(tool, platform, admin, "canvas")
    register(tool, platform, admin, "canvas")
    assert len({row[0] for row in _registrations(tool, platform.issuer)}) == 2


# -- invites ---------------------------------------------------------------------------------
def test_without_an_invite_the_page_explains_the_command(tool, admin):
    for url in (tool.base_url + "/lti/register",
                tool.base_url + "/lti/register?invite=not-a-code&openid_configuration=http://x"):
        resp = admin.get(url)
        assert resp.status_code == 403
        _page_ok(resp)
        assert "flask --app app platform invite" in resp.text
        assert "Developer Keys" in resp.text


def test_an_invite_opened_directly_says_to_paste_it_into_the_platform(tool, admin):
    resp = admin.get(invite_url(tool))
    assert resp.status_code == 400
    assert "Paste it into the platform" in resp.text and "LTI Registration" in resp.text


def test_an_invite_registers_once_only(tool, platform, admin):
    url = platform.dynreg.begin(invite_url(tool), "canvas")
    page = admin.get(url)
    assert admin.confirm(page).status_code == 200
    again = admin.get(url)
    assert again.status_code == 403 and "already used" in again.text
    assert "flask --app app platform invite" in again.text
    replay = admin.confirm(page)  # the same confirmation posted twice
    assert replay.status_code == 403 and "already used" in replay.text
    assert len(platform.dynreg.posts) == 1 and len(_registrations(tool, platform.issuer)) == 1


def test_an_expired_invite_is_refused(tool, platform, admin):
    url = platform.dynreg.begin(invite_url(tool, "--expires-in", "60"), "canvas")
    page = admin.get(url)
    assert page.status_code == 200

    def expire(session):
        invite = session.get(RegistrationInvite, _invite(tool, url).id)
        invite.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    _db(tool, expire)
    for resp in (admin.get(url), admin.confirm(page)):
        assert resp.status_code == 403 and "expired" in resp.text
    assert platform.dynreg.posts == [] and _registrations(tool, platform.issuer) == []


def test_invite_command_stores_only_a_hash_and_lists_open_invites(tool):
    url = invite_url(tool, "--note", "Canvas at North High", "--expires-in", "7200")
    code = parse_qs(urlsplit(url).query)["invite"][0]
    invite = _invite(tool, url)
    assert invite.code_hash == invites.code_hash(code) and code not in (invite.code_hash, invite.note)
    assert timedelta(seconds=7100) < invite.expires_at - invite.created_at <= timedelta(seconds=7200)
    listed = _cli(tool, "platform", "invites").output
    assert f"invite {invite.id}:" in listed and "Canvas at North High" in listed and code not in listed
    refused = tool.app.test_cli_runner().invoke(args=["platform", "invite", "--expires-in", "5"])
    assert refused.exit_code != 0 and "Traceback" not in refused.output


def test_a_forged_confirmation_is_refused(tool, platform, admin):
    url = platform.dynreg.begin(invite_url(tool), "canvas")
    page = admin.get(url)
    forms = parse_forms(page.text)
    resp = admin.post(urljoin(page.url, forms[0]["action"]),
                      data={"confirmation": forms[0]["fields"]["confirmation"][:-3] + "AAA"})
    assert resp.status_code == 400 and "did not come from" in resp.text
    assert platform.dynreg.posts == []


# -- refusals ------------------------------------------------------------------------------
REFUSALS = [
    # (fault switches, expected status, words on the page)
    ({"token_refused": True}, 400, "refused the registration token (HTTP 401)"),
    ({"config_status": 500}, 502, "HTTP 500"),
    ({"config_raw": b"<html><body>Welcome</body></html>"}, 400, "is not a JSON object"),
    ({"config_extra": {"padding": "x" * 300_000}}, 400, "the tool reads at most 262144"),
    ({"config_extra": {"padding": "x" * 300_000}, "config_chunked": True}, 400,
     "is longer than the 262144 bytes the tool reads"),
    ({"issuer_mismatch": True}, 400, "does not match the address its configuration came from"),
    ({"config_extra": {"token_endpoint": "http://school.example/login/oauth2/token"}}, 400,
     "does not use https"),
    ({"config_extra": {"registration_endpoint": "http://192.0.2.1/api/lti/registrations"}}, 400,
     "does not use https"),
    ({"missing_message_types": ["LtiDeepLinkingRequest"]}, 400,
     "does not offer the message types the tool needs: LtiDeepLinkingRequest"),
    ({"no_rs256": True}, 400, "RS256"),
    ({"config_extra": {"https://purl.imsglobal.org/spec/lti-platform-configuration": None}}, 400,
     "no LTI platform configuration"),
]


@pytest.mark.parametrize("faults,status,words", REFUSALS,
                         ids=["token", "500", "html", "huge", "huge-chunked", "issuer", "http-token-endpoint",
                              "http-registration", "message-type", "rs256", "not-lti"])
def test_a_configuration_the_tool_cannot_use_is_refused_with_its_reason(
        tool, platform, admin, faults, status, words):
    for name, value in faults.items():
        setattr(platform.dynreg.faults, name, value)
    url = platform.dynreg.begin(invite_url(tool), "canvas")
    resp = admin.get(url)
    assert resp.status_code == status, resp.text
    _page_ok(resp)
    assert words in resp.text
    assert platform.dynreg.posts == [] and _registrations(tool, platform.issuer) == []
    assert _invite(tool, url).used_at is None  # nothing happened: the invite still works


def test_an_unreachable_platform_is_explained(tool, admin):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]  # nothing listens here once the socket closes
    url = (invite_url(tool) + f"&openid_configuration=http://127.0.0.1:{closed}/config"
           "&registration_token=t")
    resp = admin.get(url)
    assert resp.status_code == 502 and "could not reach the platform" in resp.text
    _page_ok(resp)


def test_a_platform_that_never_answers_times_out_with_a_reason(tool, admin):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted = []
    stop = threading.Event()

    def hold():  # accept and never answer
        conn, _ = listener.accept()
        accepted.append(conn)
        stop.wait(30)
    threading.Thread(target=hold, daemon=True).start()
    settings = tool.app.config["SETTINGS"]
    saved = settings.http_read_timeout
    settings.http_read_timeout = 0.5
    try:
        url = (invite_url(tool) + f"&openid_configuration=http://127.0.0.1:"
               f"{listener.getsockname()[1]}/config&registration_token=t")
        resp = admin.get(url)
    finally:
        settings.http_read_timeout = saved
        stop.set()
        listener.close()
        for conn in accepted:
            conn.close()
    assert resp.status_code == 502 and "did not answer" in resp.text


def test_a_configuration_url_elsewhere_than_https_is_not_fetched(tool, admin):
    resp = admin.get(invite_url(tool) + "&openid_configuration=http://192.0.2.1/config")
    assert resp.status_code == 400 and "does not use https" in resp.text


def test_the_platform_refusing_the_registration_is_shown_escaped_and_the_invite_kept(
        tool, platform, admin):
    platform.dynreg.faults.registration_status = 422
    platform.dynreg.faults.registration_message = "<b>Developer key limit</b> reached " + "y" * 5000
    url = platform.dynreg.begin(invite_url(tool), "canvas")
    page = admin.get(url)
    resp = admin.confirm(page)
    assert resp.status_code == 400, resp.text
    _page_ok(resp)
    assert "HTTP 422" in resp.text and "&lt;b&gt;Developer key limit&lt;/b&gt; reached" in resp.text
    assert "<b>Developer" not in resp.text and "y" * 600 not in resp.text
    assert _registrations(tool, platform.issuer) == []
    # The invite was given back: once the platform accepts, the same page registers.
    platform.dynreg.faults.registration_status = None
    assert admin.confirm(page).status_code == 200
    assert len(_registrations(tool, platform.issuer)) == 1


def test_missing_optional_scopes_register_without_them_and_the_page_says_so(tool, platform, admin):
    platform.dynreg.faults.missing_scopes = [nrps.SCOPE, ags.SCOPE_RESULT_READONLY]
    page, _ = register(tool, platform, admin, "canvas")
    warning = page.text.split('class="notice-warn"')[1].split("</div>")[0]
    assert "reading the course roster" in warning and nrps.SCOPE in warning
    assert "reading grades back" in warning
    requested = set(platform.dynreg.posts[-1]["body"]["scope"].split())
    assert requested == {ags.SCOPE_LINEITEM, ags.SCOPE_LINEITEM_READONLY, ags.SCOPE_SCORE}
    assert len(_registrations(tool, platform.issuer)) == 1


def test_hostile_values_from_the_configuration_are_escaped_and_bounded(tool, platform, admin):
    platform.dynreg.account_name = "<script>alert(1)</script>\u0000\n" + "W" * 100_000
    platform.dynreg.faults.platform_extra = {"version": "<img src=x onerror=alert(1)>"}
    page, done = register(tool, platform, admin, "canvas")
    for resp in (page, done):
        assert "<script>alert" not in resp.text and "<img src=x" not in resp.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in resp.text
        assert "W" * 300 not in resp.text and len(resp.text) < 60_000
    name = _registrations(tool, platform.issuer)[0][1]
    assert name.startswith("<script>alert(1)</script> WWW") and len(name) <= 200


def test_register_pages_may_be_framed_by_the_platform(tool, platform, admin):
    url = platform.dynreg.begin(invite_url(tool), "canvas")
    resp = admin.get(url)
    policy = resp.headers["Content-Security-Policy"]
    ancestors = policy.split("frame-ancestors ")[1].split(";")[0].split()
    assert "https:" in ancestors and "http://127.0.0.1:*" in ancestors
    assert platform.base_url in ancestors  # the configuration URL's origin, exactly
    assert "script-src 'self'" in policy and "X-Frame-Options" not in resp.headers


def test_registration_count_never_duplicates_issuer_and_client(tool, platform, admin):
    platform.dynreg.next_client_id = "10000000000888"
    for _ in range(3):
        register(tool, platform, admin, "1edtech")
    count = _db(tool, lambda s: s.scalar(select(func.count()).select_from(Registration).where(
        Registration.client_id == "10000000000888")))
    assert count == 1


# -- the checks themselves -------------------------------------------------------------------
@pytest.mark.parametrize("config_url,issuer,matches", [
    ("https://canvas.instructure.com/api/lti/security/openid-configuration",
     "https://canvas.instructure.com", True),
    ("https://school.example/moodle/mod/lti/openid-configuration.php", "https://school.example/moodle", True),
    ("https://school.example/moodle/mod/lti/openid-configuration.php", "https://school.example/moodle/", True),
    ("https://canvas.instructure.com.evil.example/config", "https://canvas.instructure.com", False),
    ("https://school.example/moodle2/config", "https://school.example/moodle", False),
    ("https://school.example:8443/config", "https://school.example", False),
    ("https://school.example:443/config", "https://school.example", True),
    ("http://school.example/config", "https://school.example", False),
    ("https://evil.example/config", "https://school.example", False),
])
def test_the_issuer_must_be_the_configuration_urls_prefix(config_url, issuer, matches):
    from tool.lti.dynamic_registration import issuer_matches
    assert issuer_matches(config_url, issuer) is matches


def test_plain_http_needs_both_the_tool_and_the_platform_on_loopback():
    from tool.lti.dynamic_registration import RegistrationRefused, check_url
    assert check_url("http://127.0.0.1:9000/x", "endpoint", "http://localhost:5000")
    assert check_url("https://school.example/x", "endpoint", "https://tool.example")
    for url, tool_url in (("http://127.0.0.1:9000/x", "https://tool.example"),
                          ("http://school.example/x", "http://127.0.0.1:5000"),
                          ("https://user@school.example/x", "https://tool.example"),
                          ("ftp://school.example/x", "https://tool.example")):
        with pytest.raises(RegistrationRefused):
            check_url(url, "endpoint", tool_url)


def test_the_emulator_refuses_a_registration_that_breaks_the_spec(platform):
    """The happy paths mean something only if the emulated platform would refuse a bad request."""
    url = platform.dynreg.begin("https://tool.example/lti/register?invite=x", "1edtech")
    token = parse_qs(urlsplit(url).query)["registration_token"][0]
    endpoint = platform.dynreg.registration_endpoint
    bad = requests.post(endpoint, json={"application_type": "native"}, timeout=10,
                        headers={"Authorization": f"Bearer {token}"})
    said = bad.json()["error_description"]
    assert bad.status_code == 400 and "application_type must be 'web'" in said
    assert "redirect_uris must be a non-empty list" in said and TOOL_CONFIGURATION in said
    assert requests.post(endpoint, json={}, timeout=10,
                         headers={"Authorization": "Bearer not-issued"}).status_code == 401
    assert platform.tools == {}


# -- in a real browser -----------------------------------------------------------------------
def _chromium() -> str:
    """Debian's Chromium (``$CHROMIUM``, PATH, /usr/bin); skipped without it, failed in CI."""
    found = next((c for c in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium")
                  if c and os.path.exists(c)), None)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        found = None
    if found is None:
        reason = "Chromium and Playwright are needed for the framed registration check"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def test_in_the_platforms_frame_confirming_posts_the_close_message(tool, platform):
    """The platform (another site: localhost) frames the registration URL; the admin clicks
    Register; the done page tells the platform window to close it (DR 1.0, step 4)."""
    from flask import Flask
    from playwright.sync_api import sync_playwright

    from emulator.server import serve
    executable = _chromium()
    registration = platform.dynreg.begin(invite_url(tool), "canvas")
    frame_page = ("<!doctype html><html lang=en><title>Developer Keys</title><script>"
                  "window.messages = []; addEventListener('message', function (e) {"
                  " window.messages.push({origin: e.origin, data: e.data}); });</script>"
                  f'<iframe id="registration" title="Registration" src="{html.escape(registration)}" '
                  'width="900" height="700"></iframe></html>')
    keys_app = Flask("developer_keys")
    keys_app.add_url_rule("/accounts/1/developer_keys", "keys", lambda: frame_page)
    server = serve(keys_app)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=executable, args=[
                "--no-sandbox", "--host-resolver-rules=MAP localhost 127.0.0.1"])
            try:
                page = browser.new_page()
                page.goto(f"http://localhost:{server.port}/accounts/1/developer_keys")
                frame = page.frame_locator("#registration")
                frame.get_by_role("button", name="Register with Emulated School").click()
                frame.get_by_role("heading", name="Registered: Emulated School").wait_for()
                page.wait_for_function("window.messages.length > 0")
                messages = page.evaluate("window.messages")
            finally:
                browser.close()
    finally:
        server.stop()
    assert messages == [{"origin": tool.base_url, "data": {"subject": "org.imsglobal.lti.close"}}]
    assert len(_registrations(tool, platform.issuer)) == 1
