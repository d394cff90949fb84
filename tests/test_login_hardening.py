"""Unauthenticated requests write nothing; identifiers are bounded; fix commands are safe to paste;
text from a launch is stored without control characters."""
from __future__ import annotations

import shlex
from html import unescape
from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select

from emulator import LEARNER, Browser
from support import table_counts


_counts = table_counts


def _page_command(html: str) -> list[str]:
    """The fix command an error page shows, as the shell would split it when pasted."""
    command = html.split('<pre class="command"><code>', 1)[1].split("</code>", 1)[0]
    return shlex.split(unescape(command))


def _json(resp) -> dict:
    assert resp.headers["Content-Type"].startswith("application/json"), resp.text[:300]
    return resp.json()


def test_a_login_flood_writes_no_row(lms, db_session):
    params = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course).login_params
    before = _counts(db_session)
    with requests.Session() as http:
        for _ in range(1000):
            resp = http.get(lms.tool.login_url, params=params, allow_redirects=False)
            assert resp.status_code == 200  # the page that stores the state in Canvas's frame
    assert _counts(db_session) == before


def test_a_launch_still_works_with_a_stateless_login(lms):
    resp = lms.launch(lms.student)
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/student"


def test_a_5_mb_deployment_id_gets_400_and_writes_nothing(lms, db_session):
    params = dict(lms.platform.resource_link_launch(lms.registration, lms.student, lms.course).login_params)
    params["lti_deployment_id"] = params["deployment_id"] = "7" * (5 * 1024 * 1024)
    before = _counts(db_session)
    client = lms.tool.app.test_client()
    resp = client.get("/lti/login", query_string=params, headers={"Accept": "application/json"})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["error"] == "identifier_invalid" and "'lti_deployment_id'" in body["reason"]
    assert "255" in body["reason"] and "command" not in body
    assert len(resp.data) < 2000  # the value is not echoed back
    # Over real HTTP, within the body limit.
    params["lti_deployment_id"] = params["deployment_id"] = "7" * (500 * 1024)
    resp = requests.post(lms.tool.login_url, data=params, headers={"Accept": "application/json"},
                         allow_redirects=False)
    assert resp.status_code == 400 and _json(resp)["error"] == "identifier_invalid"
    assert _counts(db_session) == before


def test_identifiers_with_control_characters_are_refused_at_login(lms):
    for name, value in [("login_hint", "abc\ndef"), ("iss", lms.platform.issuer + "\x00"),
                        ("client_id", "1\r\nX-Injected: 1"), ("lti_deployment_id", "a\x1bb")]:
        params = dict(lms.platform.resource_link_launch(lms.registration, lms.student, lms.course).login_params)
        params[name] = value
        resp = requests.post(lms.tool.login_url, data=params, headers={"Accept": "application/json"},
                             allow_redirects=False)
        assert resp.status_code == 400, (name, resp.status_code)
        body = _json(resp)
        assert body["error"] == "identifier_invalid" and repr(name) in body["reason"]
        assert "control characters" in body["reason"] and "command" not in body


def test_a_long_message_hint_passes_but_a_huge_one_is_refused(lms):
    params = dict(lms.platform.resource_link_launch(lms.registration, lms.student, lms.course).login_params)
    params["lti_message_hint"] = "h" * 3000  # a signed Canvas JWT is longer than 255 characters
    resp = requests.post(lms.tool.login_url, data=params, allow_redirects=False)
    assert resp.status_code == 200
    query = parse_qs(urlsplit(Browser().auth_location(resp)).query)
    assert query["lti_message_hint"] == ["h" * 3000]
    params["lti_message_hint"] = "h" * 10000
    resp = requests.post(lms.tool.login_url, data=params, headers={"Accept": "application/json"},
                         allow_redirects=False)
    assert resp.status_code == 400 and "'lti_message_hint'" in _json(resp)["reason"]


def test_identifiers_in_the_id_token_are_bounded(lms):
    for claims, name in [({"sub": "s" * 256}, "sub"), ({"deployment_id": "d\x00"}, "deployment_id"),
                         ({"context": {"id": "c" * 300, "label": "X", "title": "X"}}, "context id"),
                         ({"resource_link": {"id": "l\x07"}}, "resource_link id")]:
        resp = lms.launch(lms.student, claims=claims)
        assert resp.status_code == 400, (name, resp.status_code)
        assert "<code>identifier_invalid</code>" in resp.text and name in resp.text


def test_a_hostile_deployment_id_gets_a_quoted_command(lms):
    hostile = "x'; id; echo '"
    params = dict(lms.platform.resource_link_launch(lms.registration, lms.student, lms.course).login_params)
    params["lti_deployment_id"] = params["deployment_id"] = hostile
    resp = requests.get(lms.tool.login_url, params=params, headers={"Accept": "application/json"},
                        allow_redirects=False)
    assert resp.status_code == 400
    body = _json(resp)
    assert body["error"] == "unknown_deployment"
    argv = shlex.split(body["command"])
    assert argv[:5] == ["flask", "--app", "app", "platform", "add-deployment"]
    assert argv[argv.index("--deployment-id") + 1] == hostile
    assert argv[argv.index("--client-id") + 1] == lms.registration.client_id
    assert argv[argv.index("--issuer") + 1] == lms.platform.issuer
    assert len(argv) == 11
    # The page shows the same command, escaped for HTML.
    page = requests.get(lms.tool.login_url, params=params, allow_redirects=False)
    assert page.status_code == 400 and _page_command(page.text) == argv


def test_a_hostile_deployment_id_in_the_id_token_gets_a_quoted_command(lms):
    hostile = "it's $(touch /tmp/pwned) `id`"
    lms.registration.deployment_ids.append(hostile)
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course,
                                                deployment_id=hostile)
    pending.login_params["lti_deployment_id"] = pending.login_params["deployment_id"] = lms.deployment_id
    resp = Browser().launch(lms.tool.login_url, pending)
    assert resp.status_code == 400 and "<code>unknown_deployment</code>" in resp.text
    argv = _page_command(resp.text)
    assert argv[argv.index("--deployment-id") + 1] == hostile and len(argv) == 11


def test_an_unprintable_deployment_id_gets_no_command(lms):
    odd = "abc\u202edef"  # a right-to-left override: printable nowhere, pasted it hides text
    params = dict(lms.platform.resource_link_launch(lms.registration, lms.student, lms.course).login_params)
    params["lti_deployment_id"] = params["deployment_id"] = odd
    resp = requests.post(lms.tool.login_url, data=params, headers={"Accept": "application/json"},
                         allow_redirects=False)
    body = _json(resp)
    assert resp.status_code == 400 and body["error"] == "unknown_deployment"
    assert "command" not in body and "no command is offered" in body["hint"]


def test_fix_commands_are_offered_only_for_plausible_identifiers():
    from tool.lti.errors import fix_command
    base = "flask --app app platform add-deployment"
    assert fix_command(base, deployment_id="a" * 256) is None
    assert fix_command(base, deployment_id="a\tb") is None
    assert fix_command(base, deployment_id="") is None
    assert shlex.split(fix_command(base, deployment_id="a b"))[-1] == "a b"


def test_any_deployment_records_a_deployment_only_after_a_verified_launch(tool, db_session):
    from support import Lms
    from tool import platforms
    from tool.models import Deployment
    env = Lms(tool)
    try:
        with tool.app.app_context():
            spec = platforms.PlatformSpec(env.platform.issuer, env.registration.client_id,
                                          env.platform.auth_login_url, env.platform.token_url,
                                          env.platform.jwks_url)
            platforms.add_platform(db_session, spec, any_deployment=True)
        new_id = "88:feedbeef"
        env.registration.deployment_ids.append(new_id)
        pending = env.platform.resource_link_launch(env.registration, env.student, env.course,
                                                    deployment_id=new_id)
        before = _counts(db_session)
        login = Browser().initiate(tool.login_url, pending)
        assert login.status_code == 200
        assert _counts(db_session) == before
        # A launch whose signature does not verify records nothing either.
        assert env.launch(env.student, deployment_id=new_id, tamper=True).status_code == 400
        assert _counts(db_session) == before
        assert env.launch(env.student, deployment_id=new_id).status_code == 200
        db_session.rollback()
        row = db_session.scalars(select(Deployment).where(Deployment.deployment_id == new_id)).one()
        assert row.is_auto_recorded and row.registration_id == env.registration_id
    finally:
        env.stop()


def test_a_state_reused_with_another_id_token_is_refused(lms):
    # Both logins in one browser: a state from another browser is refused before this check
    # (tests/test_launch_binding.py).
    first = second = Browser()
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course)
    action, fields_a = first.authorize(first.auth_location(first.initiate(lms.tool.login_url, pending)))
    pending = lms.platform.resource_link_launch(lms.registration, lms.student, lms.course)
    _, fields_b = second.authorize(second.auth_location(second.initiate(lms.tool.login_url, pending)))
    mixed = second.post_form(action, {**fields_b, "state": fields_a["state"]})
    assert mixed.status_code == 400 and "<code>nonce_mismatch</code>" in mixed.text
    # The refused launch spent nothing: the id_token still works with its own state.
    assert second.post_form(action, fields_b).status_code == 200
    assert first.post_form(action, fields_a).status_code == 200


def test_a_state_signed_with_another_key_or_too_old_is_refused(lms):
    from itsdangerous import URLSafeTimedSerializer
    from tool.lti import states
    forged = URLSafeTimedSerializer("not-the-secret", salt=states.SALT).dumps({"n": "x", "r": lms.registration_id})
    resp = lms.launch(lms.student, tamper_form=lambda f: {**f, "state": forged})
    assert resp.status_code == 400 and "<code>state_unknown</code>" in resp.text
    config = lms.tool.app.config
    saved = config["LOGIN_STATE_TTL"]
    config["LOGIN_STATE_TTL"] = -1
    try:
        resp = lms.launch(lms.student)
    finally:
        config["LOGIN_STATE_TTL"] = saved
    assert resp.status_code == 400 and "<code>state_expired</code>" in resp.text


def test_a_user_named_with_a_nul_byte_can_launch(lms, db_session):
    from tool.models import User
    evil = lms.platform.add_user(name="Evil\x00Null", given_name="Ev\til", family_name="Null\r\nBy")
    lms.platform.enroll(lms.course, evil, roles=[LEARNER])
    resp = lms.launch(evil)
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/student"
    db_session.rollback()
    user = db_session.scalars(select(User).where(User.sub == evil.sub)).one()
    assert (user.name, user.given_name, user.family_name) == ("EvilNull", "Ev il", "Null By")


def test_clean_removes_control_characters():
    from tool.lti.claims import clean
    assert clean("a\x00b\x7fc\x9fd") == "abcd"
    assert clean("  Ada\t\tLove\r\nlace ") == "Ada Love lace"
    assert clean("Čeština 🎓") == "Čeština 🎓"
    assert clean("\x00") is None
