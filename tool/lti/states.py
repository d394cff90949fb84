"""OIDC login state and nonce (LTI 1.3 core §5.1.1; Security Framework §5.1.1.1).

The login step is unauthenticated, so it writes nothing: the ``state`` the tool hands out is a
token signed with SECRET_KEY that carries the ``nonce`` and the registration it was issued for,
and expires after LOGIN_STATE_TTL. At launch the state's signature and age are checked, the
registration must be the one the id_token names, and the id_token's nonce must be the one in
the state. A nonce is recorded as used only once the platform's signature on the id_token is
verified, so the same id_token can never be accepted twice (pylti1p3 only checks that a nonce
exists and never removes it) and a flood of logins or forged launches stores nothing.
"""
from __future__ import annotations

import random
import secrets
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import delete
from sqlalchemy.orm import Session

from ..db import insert_for
from ..models import UsedNonce, utcnow
from .errors import LaunchError

NONCE_KEEP = timedelta(hours=2)  # longer than id_token exp (Canvas: iat + 3600) plus leeway
SALT = "lti-login-state"  # its own salt: no other token signed with SECRET_KEY is a valid state
STATE_MAX = 1024  # a state this tool issued is about 120 characters


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret_key, salt=SALT)


def app_setting(name: str, given):
    """``given``, else the Flask app's setting (the web layer need not pass what the app knows)."""
    if given is not None:
        return given
    from flask import current_app
    return current_app.config[name]


def issue(registration_id: int, secret_key: str | None = None) -> tuple[str, str]:
    """A fresh (state, nonce) for a login of ``registration_id``; nothing is stored."""
    nonce = secrets.token_urlsafe(24)
    state = _serializer(app_setting("SECRET_KEY", secret_key)).dumps({"n": nonce, "r": registration_id})
    return state, nonce


@dataclass(frozen=True)
class IssuedState:
    nonce: str
    registration_id: int


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
    if not isinstance(data, dict) or not isinstance(data.get("n"), str) or not isinstance(data.get("r"), int):
        raise LaunchError("The launch's state was not issued by this tool's login step.", code="state_unknown")
    if data["r"] != registration_id:
        raise LaunchError("The launch's state was issued for a different platform registration.",
                          code="state_mismatch")
    return IssuedState(nonce=data["n"], registration_id=data["r"])


def check_nonce(login: IssuedState, nonce: str) -> None:
    """The id_token's nonce must be the one issued with the state (OIDC Core §3.2.2.11)."""
    if not secrets.compare_digest(login.nonce.encode(), nonce.encode()):
        raise LaunchError("The id_token's nonce is not the one issued with this launch's state.",
                          hint="Launch the tool again from the course.", code="nonce_mismatch")


def spend_nonce(session: Session, nonce: str, registration_id: int) -> None:
    """Record the nonce as used; raise if it already was (a replayed id_token).

    Called only after the id_token's signature verified: an unauthenticated request never
    reaches this write.
    """
    stmt = insert_for(session, UsedNonce.__table__).values(
        nonce=nonce, registration_id=registration_id, expires_at=utcnow() + NONCE_KEEP)
    inserted = session.connection().execute(
        stmt.on_conflict_do_nothing(index_elements=["nonce"]).returning(UsedNonce.__table__.c.nonce)).first()
    if inserted is None:
        raise LaunchError("This id_token was already used: its nonce has been seen before (a replayed launch).",
                          hint="Launch the tool again from the course.", code="nonce_replayed")
    if random.random() < 0.02:  # keep the table small without a dedicated sweeper
        sweep(session)


def sweep(session: Session) -> None:
    session.execute(delete(UsedNonce).where(UsedNonce.expires_at < utcnow()))
