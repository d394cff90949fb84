"""The tool's front page: what it is and the addresses an administrator registers it with.

Someone who opens the tool's address in a browser (an administrator setting it up, a person who
followed a stray link) gets this instead of a 404. Every URL is built from ``TOOL_BASE_URL``,
exactly as ``/lti/canvas.json`` advertises it; nothing on the page depends on who asks.
When the sandbox is on (``tool/sandbox``), the page offers it first: a newcomer's way in.
"""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

bp = Blueprint("home", __name__)


def admin_urls(base: str) -> list[tuple[str, str, str]]:
    """(label, URL, where it goes) for each address a platform administrator needs."""
    return [
        ("Canvas configuration URL", f"{base}/lti/canvas.json",
         "Canvas: Developer Keys, + LTI Key, Method “Enter URL”"),
        ("Public keys (JWKS) URL", f"{base}/.well-known/jwks.json", "the tool's public JWK set URL"),
        ("Login (OIDC initiation) URL", f"{base}/lti/login", "OpenID Connect initiation URL"),
        ("Launch (redirect) URL", f"{base}/lti/launch", "redirect URI and target link URI"),
    ]


@bp.route("/", methods=["GET"])
def index():
    base = current_app.config["TOOL_BASE_URL"]
    sandbox = current_app.extensions.get("sandbox")
    sandbox_url = request.script_root + sandbox.course_path if sandbox else None
    return render_template("home.html", urls=admin_urls(base), base_url=base,
                           sandbox=sandbox, sandbox_url=sandbox_url)
