"""OIDC login state and nonce (LTI 1.3 core §5.1.1; Security Framework §5.1.1.1).

The login step is unauthenticated, so it writes nothing: the ``state`` the tool hands out is a
token signed with SECRET_KEY that carries the ``nonce`` and the registration it was issued for,
and expires after LOGIN_STATE_TTL. At launch the state's signature and age are checked, the
registration must be the one the id_token names, and the id_token's nonce must be the one in
the state. A nonce is recorded as used only once the platform's signature on the id_token is
verified, so the same id_token can never be accepted twice (pylti1p3 only checks that a nonce
exists and never removes it) and a flood of logins or forged launches stores nothing.

The state also ties the launch to the browser that began the login (OAuth 2.0, RFC 6749
§10.12: the state binds the request to the user agent; see ``tool/web/binding.py``). It records
the platform's storage frame when the login offered one (``lti_storage_target``, 1EdTech LTI
Client Side postMessages, target frame; facts sheet section 10) and the origin of the platform's auth endpoint, which
is the only origin the tool's page accepts storage answers from. :func:`proof` derives, from the
state and SECRET_KEY, the values the browser keeps (a cookie, or the platform's storage) and hands
back at launch: only the server can compute them, and each one is good for one state only.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import random
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import delete
from sqlalchemy.orm import Session

from ..driver import Statement, driver
from ..models import UsedNonce, utcnow
from ..signing import BadSignature, SignatureExpired, TimedToken, timed_token
from .errors import LaunchError

NONCE_KEEP = timedelta(hours=2)  # longer than id_token exp (Canvas: iat + 3600) plus leeway
SALT = "lti-login-state"  # its own salt: no other token signed with SECRET_KEY is a valid state
STATE_MAX = 1024  # a state this tool issued is about 120 characters, 200 with a storage target
# A frame name as platforms send it ("post_message_forwarding", "_parent"); anything else is ignored.
_FRAME_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def _serializer(secret_key: str) -> TimedToken:
    """States are written uncompressed (zlib took 27 us of a login to save at most 40
    characters); a compressed one an earlier version issued still reads."""
    return timed_token(secret_key, SALT)


def app_setting(name: str, given):
    """``given``, else the Flask app's setting (the web layer need not pass what the app knows)."""
    if given is not None:
        return given
    from flask import current_app
    return current_app.config[name]


@dataclass(frozen=True)
class Storage:
    """Where the platform keeps values for the tool (LTI postMessage Storage): the frame named
    ``target`` in the tool frame's parent, answering from ``origin`` (the auth endpoint's origin)."""

    target: str
    origin: str


def storage_for(target: str | None, auth_login_url: str) -> Storage | None:
    """The platform storage a login offers, or None: no target, an odd frame name, or an auth
    endpoint whose origin cannot be named exactly (a postMessage target origin must be)."""
    if not target or not _FRAME_NAME.fullmatch(target):
        return None
    parts = urlsplit(auth_login_url)
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    return Storage(target=target, origin=origin) if _ORIGIN.fullmatch(origin) else None


def issue(registration_id: int, secret_key: str | None = None,
          storage: Storage | None = None) -> tuple[str, str]:
    """A fresh (state, nonce) for a login of ``registration_id``; nothing is stored."""
    nonce = secrets.token_urlsafe(24)
    data: dict = {"n": nonce, "r": registration_id}
    if storage is not None:
        data["t"], data["o"] = storage.target, storage.origin
    state = _serializer(app_setting("SECRET_KEY", secret_key)).dumps(data)
    return state, nonce


@dataclass(frozen=True)
class IssuedState:
    nonce: str
    registration_id: int
    storage: Storage | None = None


def proof(state: str, purpose: str, secret_key: str | None = None) -> str:
    """A value only this tool can derive for ``state``: HMAC-SHA256 under SECRET_KEY, with the
    ``purpose`` ("cookie", "storage") in the message so one never stands in for the other."""
    key = app_setting("SECRET_KEY", secret_key).encode()
    mac = hmac.new(key, f"lti-login-binding|{purpose}|{state}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def fingerprint(state: str) -> str:
    """A short name for a state (cookie names, storage keys): 16 URL-safe characters of its hash."""
    digest = hashlib.sha256(state.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()[:16]


def proof_matches(given: str | None, state: str, purpose: str, secret_key: str | None = None) -> bool:
    if not given or len(given) > 128:
        return False
    return secrets.compare_digest(given.encode(), proof(state, purpose, secret_key).encode())


def peek(state: str | None, *, secret_key: str | None = None,
         max_age: int | None = None) -> IssuedState | None:
    """What a state says when it is this tool's and young enough, else None (the launch's own
    check then names the problem). No registration is known yet at this point."""
    if not state or len(state) > STATE_MAX:
        return None
    try:
        data = _serializer(app_setting("SECRET_KEY", secret_key)).loads(
            state, max_age=app_setting("LOGIN_STATE_TTL", max_age))
    except BadSignature:  # SignatureExpired included
        return None
    return _issued(data)


def _issued(data) -> IssuedState | None:
    if not isinstance(data, dict) or not isinstance(data.get("n"), str) or not isinstance(data.get("r"), int):
        return None
    storage = None
    if isinstance(data.get("t"), str) and isinstance(data.get("o"), str):
        storage = Storage(target=data["t"], origin=data["o"])
    return IssuedState(nonce=data["n"], registration_id=data["r"], storage=storage)


def read_state(state: str, registration_id: int, *, secret_key: str | None = None,
               max_age: int | None = None) -> IssuedState:
    """The nonce and registration a state carries, after checking its signature, age and registration."""
    max_age = app_setting("LOGIN_STATE_TTL", max_age)
    try:
        if len(state) > STATE_MAX:
            raise BadSignature("too long")
        data = _serializer(app_setting("SECRET_KEY", secret_key)).loads(state, max_age=max_age)
    except SignatureExpired as exc:
        raise LaunchError(f"The login step for this launch is too old (the state is more than {max_age} "
                          "seconds old).", hint="Launch the tool again from the course.",
                          code="state_expired") from exc
    except BadSignature as exc:
        raise LaunchError("The launch's state was not issued by this tool's login step.",
                          hint="Launch the tool again from the course. If this keeps happening, check that "
                               "the platform's redirect URI is this tool's /lti/launch.",
                          code="state_unknown") from exc
    issued = _issued(data)
    if issued is None:
        raise LaunchError("The launch's state was not issued by this tool's login step.", code="state_unknown")
    if issued.registration_id != registration_id:
        raise LaunchError("The launch's state was issued for a different platform registration.",
                          code="state_mismatch")
    return issued


def check_nonce(login: IssuedState, nonce: str) -> None:
    """The id_token's nonce must be the one issued with the state (OIDC Core §3.2.2.11)."""
    if not secrets.compare_digest(login.nonce.encode(), nonce.encode()):
        raise LaunchError("The id_token's nonce is not the one issued with this launch's state.",
                          hint="Launch the tool again from the course.", code="nonce_mismatch")


# The nonce is the table's key: a second insert of it changes nothing and returns no row. The
# registry's version comes back with it, read in the same statement (tool/registry.py).
_SPEND = Statement("INSERT INTO used_nonces (nonce, registration_id, expires_at) "
                   "VALUES (:nonce, :registration_id, :expires_at) "
                   "ON CONFLICT (nonce) DO NOTHING "
                   "RETURNING nonce, (SELECT version FROM registry_version WHERE id = 1)")


def spend_nonce(session: Session, nonce: str, registration_id: int) -> int | None:
    """Record the nonce as used; raise if it already was (a replayed id_token). Returns the
    registry's version as the same statement read it (None when its row is missing).

    Called only after the id_token's signature verified: an unauthenticated request never
    reaches this write.
    """
    run = driver(session)
    inserted = run.first(_SPEND, {"nonce": nonce, "registration_id": registration_id,
                                  "expires_at": run.time(utcnow() + NONCE_KEEP)})
    if inserted is None:
        raise LaunchError("This id_token was already used: its nonce has been seen before (a replayed launch).",
                          hint="Launch the tool again from the course.", code="nonce_replayed")
    if random.random() < 0.02:  # keep the table small without a dedicated sweeper
        sweep(session)
    return inserted[1]


def sweep(session: Session) -> None:
    session.execute(delete(UsedNonce).where(UsedNonce.expires_at < utcnow()))
