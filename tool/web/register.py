"""The registration URL a platform administrator pastes (LTI Dynamic Registration 1.0).

``GET /lti/register?invite=...&openid_configuration=...&registration_token=...`` checks the
tool administrator's invite, reads and checks the platform's configuration and shows what will
be registered with a Confirm button; ``POST /lti/register`` registers with the platform,
stores the registration and closes the platform's registration frame (DR 1.0, step 4:
``{subject: "org.imsglobal.lti.close"}`` posted by ``static/register.js``).

The platform frames these pages (Canvas opens the URL in an iframe on the school's domain,
while its configuration URL is on the issuer's domain), so they keep the framing rule for
pages before a launch (any https origin, loopback origins when the tool runs on loopback) and
add the configuration URL's own origin, which covers a trial platform on plain http.
No cookie is needed: the confirmation form carries everything, signed with the tool's secret
and bound to the invite, and the configuration is read again from the platform on confirm.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, render_template, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from .. import invites, platforms
from ..db import db
from ..errors import ToolError
from ..lti import dynamic_registration as dr

bp = Blueprint("register", __name__)
log = logging.getLogger("tool.register")

SALT = "lti-dynamic-registration-confirm"
# Long enough to read the page and ask a colleague; Canvas's registration token lasts an hour.
CONFIRM_MAX_AGE = 3600


class ConfirmationInvalid(ToolError):
    title = "This confirmation cannot be used"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _timeout() -> tuple[float, float]:
    settings = current_app.config["SETTINGS"]
    return settings.http_connect_timeout, settings.http_read_timeout


def _allow_framing_by(url: str | None) -> None:
    """Let the platform whose configuration URL this is frame the page (security.py keeps
    only a bare http(s) origin)."""
    parts = urlsplit(url or "")
    if parts.scheme in ("http", "https") and parts.hostname:
        g.frame_ancestors_extra = [f"{parts.scheme}://{parts.netloc}"]


def _configuration(url: str | None, token: str | None) -> dr.PlatformConfiguration:
    return dr.fetch_configuration(url or "", token or None, timeout=_timeout(),
                                  tool_base_url=current_app.config["TOOL_BASE_URL"])


def _request(config: dr.PlatformConfiguration) -> dict:
    return dr.registration_request(config, base_url=current_app.config["TOOL_BASE_URL"],
                                   title=current_app.config["TOOL_TITLE"],
                                   description=current_app.config["TOOL_DESCRIPTION"])


@bp.route("/lti/register", methods=["GET"])
def start():
    """Check the invite first: without the tool administrator's consent nothing is fetched."""
    config_url = request.args.get("openid_configuration")
    _allow_framing_by(config_url)
    invite = invites.usable(db.session, request.args.get("invite"))
    if not config_url:
        raise dr.RegistrationRefused(
            "This registration URL is valid, but it was opened directly rather than by a platform.",
            code="configuration_missing", status=400,
            hint="Paste it into the platform instead. In Canvas: Admin, Developer Keys, "
                 "+ Developer Key, LTI Registration; Canvas then opens it here with its configuration.")
    token = request.args.get("registration_token")
    config = _configuration(config_url, token)
    confirmation = _serializer().dumps({"i": invite.id, "h": invite.code_hash, "c": config_url,
                                        "t": token or ""})
    return render_template("register/confirm.html", platform=config, request_body=_request(config),
                           placements=dr.PLACEMENTS, scope_uses=dr.SCOPE_USES,
                           confirmation=confirmation, base_url=current_app.config["TOOL_BASE_URL"])


@bp.route("/lti/register", methods=["POST"])
def confirm():
    """Register with the platform, store the registration, use up the invite."""
    try:
        carried = _serializer().loads(request.form.get("confirmation", ""), max_age=CONFIRM_MAX_AGE)
    except SignatureExpired:
        raise ConfirmationInvalid("This confirmation page was open for more than an hour.",
                                  code="confirmation_expired",
                                  hint="Start the registration again from the platform.") from None
    except BadSignature:
        raise ConfirmationInvalid("This confirmation did not come from the tool's registration page.",
                                  code="confirmation_invalid",
                                  hint="Start the registration again from the platform.") from None
    _allow_framing_by(carried["c"])
    invite = invites.confirmed(db.session, carried["i"], carried["h"])
    # Read again rather than trust anything carried: the platform's answer decides.
    config = _configuration(carried["c"], carried["t"])
    invites.claim(db.session, invite.id)
    try:
        answer = dr.register(config, carried["t"] or None, _request(config), timeout=_timeout())
        saved = platforms.save_platform(db.session, platforms.PlatformSpec(
            issuer=config.issuer, client_id=answer.client_id,
            auth_login_url=config.authorization_endpoint, auth_token_url=config.token_endpoint,
            key_set_url=config.jwks_uri, name=config.name, platform_url=config.platform_url,
            source="dynamic"),
            [answer.deployment_id] if answer.deployment_id else [],
            # No deployment yet (Canvas until the app is installed): the first verified launch
            # of this client records its deployment, as `platform add --any-deployment` does.
            any_deployment=answer.deployment_id is None)
    except Exception:
        invites.release(db.session, invite.id)
        raise
    invites.record(db.session, invite.id, saved.registration.id)
    reg = saved.registration
    log.info("dynamic registration %s: issuer %r client id %r deployment %r",
             "created" if saved.created else "updated", reg.issuer, reg.client_id, answer.deployment_id)
    return render_template("register/done.html", platform=config, registration=reg,
                           created=saved.created, changes=saved.changes,
                           deployment_id=answer.deployment_id)
