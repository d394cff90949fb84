"""Tool keys and JWKS, the Canvas developer key JSON, and the platform/keys CLI."""
from __future__ import annotations

import json
import os
import stat
import time
import uuid

import jwt
import requests
from sqlalchemy import select

from tool.models import Deployment, Registration, ToolKey


def test_jwks_publishes_public_rsa_keys_only_with_the_signing_kid(tool, db_session):
    body = requests.get(tool.jwks_url, timeout=5).json()
    assert body["keys"], body
    for key in body["keys"]:
        assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
        assert key["kid"] and key["n"] and key["e"]
        assert not set(key) & {"d", "p", "q", "dp", "dq", "qi"}
        assert len(jwt.utils.base64url_decode(key["n"])) * 8 >= 2048
    signing = db_session.scalars(select(ToolKey).where(ToolKey.is_signing.is_(True))).one()
    assert signing.kid in [k["kid"] for k in body["keys"]]


def test_private_key_file_is_owner_only(tool, db_session):
    for key in db_session.scalars(select(ToolKey).where(ToolKey.retired_at.is_(None))):
        mode = stat.S_IMODE(os.stat(tool.settings.key_dir / key.private_key_file).st_mode)
        assert mode == 0o600


def _assertion(tool, db_session, platform) -> str:
    from tool.lti import keys
    kid, pem = keys.signing_key(db_session, tool.settings.key_dir)
    now = int(time.time())
    client_id = platform.registration.client_id
    return jwt.encode({"iss": client_id, "sub": client_id, "aud": platform.platform.token_url,
                       "iat": now, "exp": now + 300, "jti": uuid.uuid4().hex},
                      pem, algorithm="RS256", headers={"kid": kid})


def _token(lms, assertion):
    return requests.post(lms.platform.token_url, timeout=5, data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion,
        "scope": "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"})


def test_rotation_keeps_old_key_published_and_the_platform_accepts_the_new_one(tool, lms, db_session):
    runner = tool.app.test_cli_runner()
    before = {k["kid"] for k in requests.get(tool.jwks_url, timeout=5).json()["keys"]}
    old_assertion = _assertion(tool, db_session, lms)
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    db_session.expire_all()
    after = {k["kid"] for k in requests.get(tool.jwks_url, timeout=5).json()["keys"]}
    new = db_session.scalars(select(ToolKey).where(ToolKey.is_signing.is_(True))).one()
    assert before < after and new.kid in after - before
    # The platform verifies assertions against our JWKS: one signed before and one after the
    # rotation are both accepted.
    assert _token(lms, old_assertion).status_code == 200
    assert _token(lms, _assertion(tool, db_session, lms)).status_code == 200
    assert lms.launch(lms.student).status_code == 200

    old_kid = next(iter(before))
    refused = runner.invoke(args=["keys", "retire", new.kid])
    assert refused.exit_code != 0 and "current signing key" in refused.output
    assert runner.invoke(args=["keys", "retire", old_kid]).exit_code == 0
    published = {k["kid"] for k in requests.get(tool.jwks_url, timeout=5).json()["keys"]}
    assert old_kid not in published and new.kid in published
    stale = _token(lms, old_assertion)
    assert stale.status_code in (400, 401)


def test_canvas_developer_key_json_follows_canvas(tool):
    cfg = requests.get(tool.base_url + "/lti/canvas.json", timeout=5).json()
    base = tool.base_url
    assert cfg["oidc_initiation_url"] == base + "/lti/login"
    assert cfg["target_link_uri"] == base + "/lti/launch"
    assert cfg["public_jwk_url"] == base + "/.well-known/jwks.json" and "public_jwk" not in cfg
    # The four AGS scopes (scores, line items, results) and the roster scope (facts section 4).
    assert sorted(cfg["scopes"]) == sorted([
        "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
        "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
        "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
        "https://purl.imsglobal.org/spec/lti-ags/scope/score",
        "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"])
    ext = cfg["extensions"][0]
    assert ext["platform"] == "canvas.instructure.com" and ext["privacy_level"] == "public"
    placements = {p["placement"]: p["message_type"] for p in ext["settings"]["placements"]}
    # Course navigation opens the tool; the two deep linking placements add assessments.
    assert placements == {"course_navigation": "LtiResourceLinkRequest",
                          "assignment_selection": "LtiDeepLinkingRequest",
                          "link_selection": "LtiDeepLinkingRequest"}
    assert {p["target_link_uri"] for p in ext["settings"]["placements"]} == {base + "/lti/launch"}
    assert cfg["custom_fields"] == {"canvas_user_id": "$Canvas.user.id", "canvas_course_id": "$Canvas.course.id"}


def test_platform_add_with_canvas_shortcut_fills_in_canvas_endpoints(tool, db_session):
    client_id = str(uuid.uuid4().int)[:14]
    result = tool.app.test_cli_runner().invoke(args=[
        "platform", "add", "--canvas", "https://school.instructure.com", "--client-id", client_id,
        "--deployment-id", "1:abc", "--deployment-id", "2:def"])
    assert result.exit_code == 0, result.output
    reg = db_session.scalars(select(Registration).where(Registration.client_id == client_id)).one()
    assert reg.issuer == "https://canvas.instructure.com"
    assert reg.auth_login_url == "https://sso.canvaslms.com/api/lti/authorize_redirect"
    assert reg.key_set_url == "https://sso.canvaslms.com/api/lti/security/jwks"
    assert reg.auth_token_url == "https://school.instructure.com/login/oauth2/token"
    deployments = db_session.scalars(select(Deployment.deployment_id).where(
        Deployment.registration_id == reg.id)).all()
    assert sorted(deployments) == ["1:abc", "2:def"]
    listed = tool.app.test_cli_runner().invoke(args=["platform", "list"])
    assert client_id in listed.output and "2:def" in listed.output
    removed = tool.app.test_cli_runner().invoke(args=["platform", "remove", "--issuer", reg.issuer,
                                                      "--client-id", client_id, "--yes"])
    assert removed.exit_code == 0, removed.output
    db_session.expire_all()
    assert db_session.scalars(select(Registration).where(Registration.client_id == client_id)).first() is None


def test_platform_urls_must_be_https_except_on_loopback(tool):
    runner = tool.app.test_cli_runner()
    common = ["platform", "add", "--issuer", "https://lms.example", "--client-id", "c-" + uuid.uuid4().hex]
    refused = runner.invoke(args=common + ["--auth-login-url", "http://lms.example/auth",
                                           "--auth-token-url", "https://lms.example/token",
                                           "--key-set-url", "https://lms.example/jwks"])
    assert refused.exit_code != 0 and "must use https" in refused.output
    allowed = runner.invoke(args=common + ["--auth-login-url", "http://127.0.0.1:9/auth",
                                           "--auth-token-url", "http://localhost:9/token",
                                           "--key-set-url", "http://127.0.0.1:9/jwks"])
    assert allowed.exit_code == 0, allowed.output
    incomplete = runner.invoke(args=["platform", "add", "--issuer", "https://x.example", "--client-id", "1"])
    assert incomplete.exit_code != 0 and "--auth-login-url" in incomplete.output


def test_add_deployment_command_allows_a_refused_deployment(lms):
    resp = lms.launch(lms.student, claims={"deployment_id": "9:newdeploy"})
    assert resp.status_code == 400 and "add-deployment" in resp.text
    lms.registration.deployment_ids.append("9:newdeploy")
    result = lms.tool.app.test_cli_runner().invoke(args=[
        "platform", "add-deployment", "--issuer", lms.platform.issuer, "--client-id",
        lms.registration.client_id, "--deployment-id", "9:newdeploy"])
    assert result.exit_code == 0, result.output
    assert lms.launch(lms.student, deployment_id="9:newdeploy").status_code == 200


def test_settings_generate_and_keep_a_secret_key(tmp_path, monkeypatch):
    from config import Settings
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("TOOL_KEY_DIR", str(tmp_path / "k"))
    monkeypatch.setenv("TOOL_BASE_URL", "https://tool.example.edu/")
    first, second = Settings.from_env(), Settings.from_env()
    assert first.secret_key and first.secret_key == second.secret_key
    assert stat.S_IMODE(os.stat(tmp_path / "k" / "secret_key").st_mode) == 0o600
    assert first.base_url == "https://tool.example.edu"
    assert first.database_url.startswith("sqlite:///")


def test_retire_takes_a_kid_that_starts_with_a_dash(tool, db_session):
    kid = "-Dash" + uuid.uuid4().hex
    db_session.add(ToolKey(kid=kid, public_jwk=json.dumps({"kty": "RSA", "kid": kid, "n": "AQAB", "e": "AQAB"}),
                           private_key_file="missing.pem", is_signing=False, is_published=True))
    db_session.commit()
    result = tool.app.test_cli_runner().invoke(args=["keys", "retire", kid])
    assert result.exit_code == 0, result.output
    db_session.expire_all()
    assert db_session.scalars(select(ToolKey).where(ToolKey.kid == kid)).one().is_published is False
