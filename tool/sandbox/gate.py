"""The sandbox's password, asked when the tool is not on loopback (``SANDBOX_PASSWORD``).

The sandbox mints launches for made-up people: on a machine others can reach, only people given
the password may open its pages. An unlock is remembered in a cookie on the tool's own origin,
scoped to the sandbox's path: signed with the tool's secret key, HttpOnly, Secure, SameSite=Lax,
for ``UNLOCK_SECONDS``. It carries a digest of the password, so changing the password locks
every browser out again. The LTI endpoints (auth, token, JWKS, names and roles, grades) stay
open: they are reached by the tool itself, and each checks its own credentials.
"""
from __future__ import annotations

import hashlib
import hmac

from flask import Blueprint, current_app, redirect, render_template, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

COOKIE = "sandbox_unlock"
UNLOCK_SECONDS = 12 * 3600
MAX_PASSWORD = 200
MAX_NEXT = 2000

bp = Blueprint("sandbox_gate", __name__, template_folder="templates")


class Gate:
    def __init__(self, password: str, secret_key: str) -> None:
        self.password = password
        self.signer = URLSafeTimedSerializer(secret_key, salt="sandbox-unlock")
        self.digest = hashlib.sha256(b"sandbox-password:" + password.encode()).hexdigest()[:32]

    def is_unlocked(self) -> bool:
        token = request.cookies.get(COOKIE, "")
        if not token or len(token) > 500:
            return False
        try:
            return self.signer.loads(token, max_age=UNLOCK_SECONDS) == self.digest
        except BadSignature:
            return False

    def matches(self, typed: str) -> bool:
        return hmac.compare_digest(typed.encode(), self.password.encode())

    def cookie(self) -> str:
        return self.signer.dumps(self.digest)


def install(emulator_app, gate: Gate) -> None:
    """Ask for the password before any of the sandbox's pages (the ``ui`` blueprint)."""
    emulator_app.extensions["sandbox_gate"] = gate
    emulator_app.register_blueprint(bp)

    @emulator_app.before_request
    def _ask_first():
        if request.blueprint == "ui" and request.endpoint != "ui.static" and not gate.is_unlocked():
            return redirect(request.script_root + "/unlock?next=" + _quote(_here()), 303)
        return None


def _here() -> str:
    path = request.full_path if request.query_string else request.path
    return path[:MAX_NEXT]


def _quote(value: str) -> str:
    from urllib.parse import quote
    return quote(value, safe="")


def _safe_next(value: str) -> str:
    """A path inside the sandbox to go back to; anything else (another site) becomes its start."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > MAX_NEXT:
        return "/"
    return value


@bp.route("/unlock", methods=["GET", "POST"])
def unlock():
    gate: Gate = current_app.extensions["sandbox_gate"]
    platform = current_app.extensions["emulator_platform"]
    target = _safe_next(request.values.get("next", "/"))
    error = None
    if request.method == "POST":
        typed = request.form.get("password", "")[:MAX_PASSWORD]
        if gate.matches(typed):
            response = redirect(request.script_root + target, 303)
            response.set_cookie(COOKIE, gate.cookie(), max_age=UNLOCK_SECONDS,
                                path=request.script_root or "/", secure=True, httponly=True,
                                samesite="Lax")
            return response
        error = "That is not the sandbox password. Ask the person who runs this tool for it."
    page = render_template("sandbox/unlock.html", platform=platform, next=target, error=error)
    return page, (401 if error else 200), {"Cache-Control": "no-store"}
