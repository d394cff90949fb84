"""Flask app of the emulated Canvas: JWKS (section 1) and the OIDC auth endpoint
(section 2); the token endpoint, NRPS and the deep linking return are
registered from ``oauth.py``, ``nrps.py``, ``ags.py`` and ``deeplink.py``.
"""

import html
import secrets
import time

from flask import Flask, g, jsonify, request

AUTH_CHECKS = (  # (parameter, required value)
    ("scope", "openid"),
    ("response_type", "id_token"),
    ("response_mode", "form_post"),
    ("prompt", "none"),
)


def create_app(platform):
    app = Flask("emulator")
    app.config["JSON_SORT_KEYS"] = False
    app.json.sort_keys = False

    @app.before_request
    def _start_clock():
        g.started = time.perf_counter()

    @app.after_request
    def _throttle_headers(response):
        """Section 9: every answer carries X-Request-Cost and X-Rate-Limit-Remaining."""
        cost = time.perf_counter() - g.get("started", time.perf_counter())
        response.headers.setdefault("X-Request-Cost", f"{cost:.6f}")
        response.headers.setdefault("X-Rate-Limit-Remaining",
                                    str(float(platform.faults.rate_limit_remaining)))
        return response

    @app.get("/api/lti/security/jwks")
    def jwks():
        """Section 1: every past/present key, public parts only."""
        platform.count("jwks_requests")
        if platform.jwks_delay:
            time.sleep(platform.jwks_delay)
        if platform.jwks_down:
            return jsonify({"errors": [{"message": "service unavailable"}]}), 503
        if platform.jwks_broken:  # a misconfigured proxy answering an HTML page with 200
            return "<html><body>Welcome</body></html>", 200, {"Content-Type": "text/html"}
        return jsonify(platform.keys.jwks())

    @app.route("/api/lti/authorize_redirect", methods=["GET", "POST"])
    def authorize_redirect():
        """Section 2: validate the tool's auth request, form-POST the id_token back."""
        params = request.values.to_dict()
        launch, problem = check_auth_request(platform, params)
        if problem:
            with platform.lock:
                platform.auth_errors.append(problem)
            return jsonify({"error": "invalid_request", "error_description": problem}), 400
        id_token = platform.issue_id_token(launch, params["nonce"])
        fields = {
            "utf8": "\u2713",
            "authenticity_token": secrets.token_urlsafe(32),
            "id_token": id_token,
            "state": params["state"],
            "lti_storage_target": launch.login_params.get("lti_storage_target", ""),
        }
        return autosubmit_page(params["redirect_uri"], fields), 200, {
            "Content-Type": "text/html; charset=utf-8"}

    from . import ags, deeplink, nrps, oauth
    oauth.register(app, platform)
    nrps.register(app, platform)
    ags.register(app, platform)
    deeplink.register(app, platform)
    from . import ui; ui.register(app, platform)  # noqa: E702  the pages people click (course, gradebook)
    from . import dynreg; dynreg.register(app, platform)  # noqa: E702  dynamic registration (section 5)
    from . import storage; storage.register(app)  # noqa: E702  the storage frame (section 10)
    return app


def check_auth_request(platform, params):
    """(launch, None) if the auth request is exactly right, else (None, which check failed)."""
    for name, required in AUTH_CHECKS:
        if params.get(name) != required:
            return None, f"{name} must be {required}"
    tool = platform.tools.get(params.get("client_id") or "")
    if tool is None:
        return None, "client_id is not a registered tool"
    if params.get("redirect_uri") not in tool.redirect_uris:
        return None, "redirect_uri does not match a registered redirect URI"
    hint = params.get("lti_message_hint")
    if not hint:
        return None, "lti_message_hint missing"
    launch = platform.launch_for_hint(hint)
    if launch is None:
        return None, "lti_message_hint unknown or expired"
    if launch.tool.client_id != tool.client_id:
        return None, "client_id does not match the launch"
    if params.get("login_hint") != launch.user.login_hint:
        return None, "login_hint does not match the launch user"
    if not params.get("nonce"):
        return None, "nonce missing"
    if not params.get("state"):
        return None, "state missing"
    with platform.lock:
        launch.auth_requests.append(dict(params))
        uses = len(launch.auth_requests)
    if launch.max_uses is not None and uses > launch.max_uses:
        return None, "launch already used"
    return launch, None


def autosubmit_page(action, fields):
    """The HTML Canvas answers with: a form POSTing ``fields`` to ``action`` on load."""
    inputs = "\n".join(
        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(str(v))}">'
        for k, v in fields.items())
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Launching</title></head>"
        "<body>\n"
        f'<form id="launch_form" action="{html.escape(action)}" method="post"'
        ' encType="application/x-www-form-urlencoded">\n'
        f"{inputs}\n<noscript><button type=\"submit\">Continue</button></noscript>\n</form>\n"
        "<script>document.getElementById('launch_form').submit();</script>\n"
        "</body></html>\n")
