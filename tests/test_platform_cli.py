"""``flask --app app platform add|remove`` as an administrator types them, and the front page.

Canvas's token endpoint is the school's origin plus ``/login/oauth2/token`` (facts sheet
section 1): a URL with a path registered a token URL that could never work. Beta and test
Canvas have their own issuer and endpoints. Every refusal is one line and exit status 1.
"""
from __future__ import annotations

import uuid

import requests
from sqlalchemy import select

from tool.models import Registration


def _cli(tool, *args, input=None):
    result = tool.app.test_cli_runner().invoke(args=list(args), input=input)
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def _client_id() -> str:
    return "c" + uuid.uuid4().hex[:12]


def _reg(db_session, client_id) -> Registration | None:
    db_session.expire_all()
    return db_session.scalars(select(Registration).where(Registration.client_id == client_id)).first()


def _refused(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_canvas_url_with_a_path_is_refused_with_the_origin_suggested(tool, db_session):
    client_id = _client_id()
    result = _cli(tool, "platform", "add", "--canvas", "https://school.instructure.com/courses/5",
                  "--client-id", client_id)
    _refused(result, "without a path", "--canvas https://school.instructure.com")
    assert _reg(db_session, client_id) is None
    no_scheme = _cli(tool, "platform", "add", "--canvas", "school.instructure.com", "--client-id", client_id)
    _refused(no_scheme, "--canvas https://school.instructure.com")
    _refused(_cli(tool, "platform", "add", "--canvas", "https://school.instructure.com/?x=1",
                  "--client-id", client_id), "without a path")


def test_canvas_url_is_stored_as_the_platform_origin(tool, db_session):
    client_id = _client_id()
    result = _cli(tool, "platform", "add", "--canvas", "https://School.Instructure.com/", "--client-id", client_id)
    assert result.exit_code == 0, result.output
    reg = _reg(db_session, client_id)
    assert reg.platform_url == "https://school.instructure.com"
    assert reg.auth_token_url == "https://school.instructure.com/login/oauth2/token"


def test_beta_and_test_canvas_pick_their_own_issuer_and_endpoints(tool, db_session):
    for environment in ("beta", "test"):
        client_id = _client_id()
        result = _cli(tool, "platform", "add", "--canvas", f"https://school.{environment}.instructure.com",
                      "--client-id", client_id)
        assert result.exit_code == 0, result.output
        reg = _reg(db_session, client_id)
        assert reg.issuer == f"https://canvas.{environment}.instructure.com"
        assert reg.auth_login_url == f"https://sso.{environment}.canvaslms.com/api/lti/authorize_redirect"
        assert reg.key_set_url == f"https://sso.{environment}.canvaslms.com/api/lti/security/jwks"
        assert reg.auth_token_url == f"https://school.{environment}.instructure.com/login/oauth2/token"
        assert environment in result.output
    # --canvas-env overrides what the address says.
    client_id = _client_id()
    forced = _cli(tool, "platform", "add", "--canvas", "https://school.instructure.com", "--canvas-env", "beta",
                  "--client-id", client_id)
    assert forced.exit_code == 0, forced.output
    assert _reg(db_session, client_id).issuer == "https://canvas.beta.instructure.com"


def test_canvas_with_issuer_is_an_error(tool, db_session):
    client_id = _client_id()
    result = _cli(tool, "platform", "add", "--canvas", "https://school.instructure.com",
                  "--issuer", "https://canvas.instructure.com", "--client-id", client_id)
    _refused(result, "--canvas", "--issuer")
    assert _reg(db_session, client_id) is None


def test_plain_http_issuer_is_refused_unless_loopback(tool, db_session):
    client_id = _client_id()
    urls = ["--auth-login-url", "https://lms.example.edu/auth", "--auth-token-url", "https://lms.example.edu/token",
            "--key-set-url", "https://lms.example.edu/jwks"]
    refused = _cli(tool, "platform", "add", "--issuer", "http://lms.example.edu", "--client-id", client_id, *urls)
    _refused(refused, "Issuer", "https")
    assert _reg(db_session, client_id) is None
    allowed = _cli(tool, "platform", "add", "--issuer", "http://127.0.0.1:9", "--client-id", client_id, *urls)
    assert allowed.exit_code == 0, allowed.output
    canvas_http = _cli(tool, "platform", "add", "--canvas", "http://school.instructure.com", "--client-id", client_id)
    _refused(canvas_http, "https")


def test_platform_url_for_other_platforms_is_an_origin(tool, db_session):
    client_id = _client_id()
    common = ["platform", "add", "--issuer", "https://lms.example.edu", "--client-id", client_id,
              "--auth-login-url", "https://lms.example.edu/auth", "--auth-token-url", "https://lms.example.edu/token",
              "--key-set-url", "https://lms.example.edu/jwks"]
    _refused(_cli(tool, *common, "--platform-url", "https://lms.example.edu/course/view.php"),
             "--platform-url https://lms.example.edu")
    assert _cli(tool, *common, "--platform-url", "https://lms.example.edu").exit_code == 0
    assert _reg(db_session, client_id).platform_url == "https://lms.example.edu"


def test_repeated_add_says_unchanged_or_what_was_updated(tool, db_session):
    client_id = _client_id()
    add = ["platform", "add", "--canvas", "https://school.instructure.com", "--client-id", client_id,
           "--deployment-id", "1:abc", "--name", "North School"]
    first = _cli(tool, *add)
    assert first.exit_code == 0 and first.output.startswith("Registered"), first.output
    again = _cli(tool, *add)
    assert again.exit_code == 0 and again.output.startswith("Unchanged"), again.output
    # Without --name the name stays; a new deployment and a new address are reported.
    moved = _cli(tool, "platform", "add", "--canvas", "https://north.instructure.com", "--client-id", client_id,
                 "--deployment-id", "1:abc", "--deployment-id", "2:def")
    assert moved.exit_code == 0 and moved.output.startswith("Updated"), moved.output
    assert "token URL https://school.instructure.com/login/oauth2/token -> " \
           "https://north.instructure.com/login/oauth2/token" in moved.output
    assert "deployment 2:def added" in moved.output and "1:abc" not in moved.output
    reg = _reg(db_session, client_id)
    assert reg.name == "North School" and reg.platform_url == "https://north.instructure.com"


def test_identifiers_a_launch_could_never_carry_are_refused(tool, db_session):
    client_id = _client_id()
    result = _cli(tool, "platform", "add", "--canvas", "https://school.instructure.com", "--client-id", client_id,
                  "--deployment-id", "x" * 256)
    _refused(result, "deployment id", "255")
    assert _reg(db_session, client_id) is None


def test_remove_of_an_unknown_registration_says_so_before_any_question(tool):
    result = _cli(tool, "platform", "remove", "--issuer", "https://canvas.instructure.com",
                  "--client-id", "no-such-client", input="y\n")
    _refused(result, "No registration", "no-such-client")
    assert "[y/N]" not in result.output


def test_remove_names_what_goes_with_it_and_asks(lms, db_session):
    tool = lms.tool
    assert lms.launch(lms.teacher).status_code == 200
    assert lms.launch(lms.student).status_code == 200
    args = ["platform", "remove", "--issuer", lms.platform.issuer, "--client-id", lms.registration.client_id]
    declined = _cli(tool, *args, input="n\n")
    assert declined.exit_code == 1 and "[y/N]" in declined.output, declined.output
    assert "1 deployment, 2 users and 1 course" in declined.output
    assert _reg(db_session, lms.registration.client_id) is not None
    accepted = _cli(tool, *args, input="y\n")
    assert accepted.exit_code == 0 and "Removed" in accepted.output, accepted.output
    assert _reg(db_session, lms.registration.client_id) is None


def test_remove_with_yes_does_not_ask(tool, db_session):
    client_id = _client_id()
    assert _cli(tool, "platform", "add", "--canvas", "https://school.instructure.com",
                "--client-id", client_id).exit_code == 0
    result = _cli(tool, "platform", "remove", "--issuer", "https://canvas.instructure.com",
                  "--client-id", client_id, "--yes")
    assert result.exit_code == 0 and "[y/N]" not in result.output, result.output
    assert "0 deployments, 0 users and 0 courses" in result.output
    assert _reg(db_session, client_id) is None


def test_key_rotation_into_a_folder_that_cannot_hold_keys_is_one_line(tool, tmp_path):
    blocker = tmp_path / "keys"
    blocker.write_text("a file where the key folder should be")
    saved = tool.app.config["KEY_DIR"]
    tool.app.config["KEY_DIR"] = blocker
    try:
        _refused(_cli(tool, "keys", "rotate"), "TOOL_KEY_DIR", str(blocker))
    finally:
        tool.app.config["KEY_DIR"] = saved


def test_front_page_shows_what_the_tool_is_and_the_admin_urls(tool):
    resp = requests.get(tool.base_url + "/", timeout=5)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    page = resp.text
    base = tool.base_url
    assert f"<title>{tool.settings.title.replace('&', '&amp;')} · LTI 1.3 tool</title>" in page
    for path in ("/lti/canvas.json", "/.well-known/jwks.json", "/lti/login", "/lti/launch"):
        assert f"<code>{base}{path}</code>" in page, path
    assert "README.md in the tool&#39;s repository" in page or "README.md in the tool's repository" in page
    assert "<script" not in page and "style=" not in page and "<style" not in page
    assert 'href="http' not in page  # no links that leave the tool


def test_front_page_urls_follow_tool_base_url_not_the_request(tool):
    resp = requests.get(tool.base_url + "/", timeout=5, headers={"Host": "evil.example",
                                                                  "X-Forwarded-Host": "evil.example"})
    assert resp.status_code == 200 and "evil.example" not in resp.text
