"""LTI endpoints: OIDC login, launch, the tool JWKS and the Canvas developer key configuration."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import Blueprint, current_app, jsonify, redirect, request

from ..db import db
from ..lti import LaunchError, LaunchSettings, begin_login, validate_launch
from ..lti import ags, nrps
from ..lti import keys as tool_keys
from ..roster.provision import provision_from_launch
from . import binding, dispatch, sessions

bp = Blueprint("lti", __name__)
log = logging.getLogger("tool.lti")


def base_url() -> str:
    return current_app.config["TOOL_BASE_URL"]


def launch_url() -> str:
    return base_url() + "/lti/launch"


@bp.route("/lti/login", methods=["GET", "POST"])
def login():
    """OIDC third-party initiated login (LTI 1.3 core §5.1.1), GET or POST as Canvas may send."""
    redirect_to = begin_login(request.values, db.session, launch_url(),
                              current_app.config["LOGIN_STATE_TTL"])
    # A redirect, or a page that first stores the state's proof in the platform's frame; either
    # way with the cookie that binds the launch to this browser.
    return binding.login_answer(redirect_to)


@bp.route("/lti/launch", methods=["POST"])
def launch():
    """The platform's form post of the id_token (LTI 1.3 core §5.1.2)."""
    # Login CSRF: only the browser that began the login may finish it (tool/web/binding.py).
    reading_storage = binding.bind_launch()
    if reading_storage is not None:
        return reading_storage
    settings = LaunchSettings(leeway=current_app.config["JWT_LEEWAY"])
    # One transaction: the nonce is spent, the person provisioned and the page session recorded
    # together, and nothing is accepted before it commits. Every refusal comes before that
    # commit and rolls all of it back (the same id_token is refused again for the same reason);
    # after it nothing can refuse the launch, and its nonce stays spent.
    try:
        checked = validate_launch(request.form, db.session,
                                  current_app.extensions["platform_keys"], settings)
        dispatch.check_supported(checked)
        result = provision_from_launch(db.session, checked)
        view = "instructor" if checked.is_staff else "student"
        # A new session per launch: another tab's session stays valid (launches never revoke).
        reference = sessions.start(db.session, checked, result.user_id, result.context_id,
                                   result.resource_link_id, view)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    log.info("launch accepted: %r %r as %s in %r (%s)", checked.issuer, checked.sub, view,
             checked.context["id"] if checked.context else "-", checked.message_type)
    current_app.extensions["after_launch"](checked, result)
    landing = dispatch.Landing(launch=checked, user_id=result.user_id, context_id=result.context_id,
                               resource_link_id=result.resource_link_id, view=view,
                               reference=reference, link_assessment_id=result.link_assessment_id)
    # Absolute, from TOOL_BASE_URL: forwarded headers must never choose where a launch lands.
    return redirect(dispatch.land(landing), code=303)


@bp.route("/lti/launch", methods=["GET"])
def launch_get():
    raise LaunchError("The launch URL only accepts the platform's form post.",
                      hint="Open the tool from your course in the learning platform.",
                      code="launch_not_posted", status=405)


@bp.route("/.well-known/jwks.json")
def jwks():
    """The tool's public keys (LTI Security Framework §6.3): what platforms verify our JWTs with."""
    response = jsonify(tool_keys.jwks(db.session))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.route("/lti/canvas.json")
def canvas_config():
    """Canvas developer key configuration, for "Enter URL" (facts sheet section 4).

    The course navigation launch; the deep linking placements where an instructor adds an
    assessment as an assignment (``assignment_selection``) or a module item
    (``link_selection``), both ``LtiDeepLinkingRequest`` (Deep Linking 2.0 §4.4); the AGS
    scopes the tool sends scores and reads results with (AGS 2.0 §3.1) and the roster scope.
    """
    base = base_url()
    target = launch_url()
    title = current_app.config["TOOL_TITLE"]
    return jsonify({
        "title": current_app.config["TOOL_TITLE"],
        "description": current_app.config["TOOL_DESCRIPTION"],
        "oidc_initiation_url": base + "/lti/login",
        "target_link_uri": target,
        "public_jwk_url": base + "/.well-known/jwks.json",
        "scopes": [*ags.ALL_SCOPES, nrps.SCOPE],
        "extensions": [{
            "platform": "canvas.instructure.com",
            "domain": urlsplit(base).hostname,
            "tool_id": "roster-grades",
            "privacy_level": "public",
            "settings": {
                "text": current_app.config["TOOL_TITLE"],
                "placements": [
                    {"placement": "course_navigation", "message_type": "LtiResourceLinkRequest",
                     "target_link_uri": target, "text": title},
                    {"placement": "assignment_selection", "message_type": "LtiDeepLinkingRequest",
                     "target_link_uri": target, "text": title},
                    {"placement": "link_selection", "message_type": "LtiDeepLinkingRequest",
                     "target_link_uri": target, "text": title},
                ],
            },
        }],
        "custom_fields": {"canvas_user_id": "$Canvas.user.id", "canvas_course_id": "$Canvas.course.id"},
    })
