"""OIDC login state and nonce, kept in the database so every process and worker shares them.

LTI 1.3 core §5.1.1 / Security Framework §5.1.1.1: the tool issues ``state`` and ``nonce`` at
login; at launch the state must be one the tool issued, not yet used, and the id_token's nonce
must be the one issued with it. A nonce once accepted is recorded so the same id_token can
never be accepted again (pylti1p3 only checks that a nonce exists and never removes it).
"""
from __future__ import annotations

import random
import secrets
from datetime import timedelta

from sqlalchemy import delete, text
from sqlalchemy.orm import Session

from ..db import insert_for
from ..models import LoginState, UsedNonce, utcnow
from .errors import LaunchError

NONCE_KEEP = timedelta(hours=2)  # longer than id_token exp (Canvas: iat + 3600) plus leeway


def issue(session: Session, registration_id: int, ttl: int) -> tuple[str, str]:
    state = "state-" + secrets.token_urlsafe(24)
    nonce = secrets.token_urlsafe(24)
    now = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        # A login state lost in a crash only means "launch again": skip the WAL flush wait.
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))
    session.add(LoginState(state=state, nonce=nonce, registration_id=registration_id,
                           created_at=now, expires_at=now + timedelta(seconds=ttl)))
    if random.random() < 0.02:  # keep the tables small without a dedicated sweeper
        sweep(session)
    session.commit()
    return state, nonce


def sweep(session: Session) -> None:
    now = utcnow()
    session.execute(delete(LoginState).where(LoginState.expires_at < now))
    session.execute(delete(UsedNonce).where(UsedNonce.expires_at < now))


def spend_nonce(session: Session, nonce: str, registration_id: int) -> None:
    """Record the nonce as used; raise if it already was (a replayed id_token)."""
    stmt = insert_for(session, UsedNonce.__table__).values(
        nonce=nonce, registration_id=registration_id, expires_at=utcnow() + NONCE_KEEP)
    inserted = session.connection().execute(
        stmt.on_conflict_do_nothing(index_elements=["nonce"]).returning(UsedNonce.__table__.c.nonce)).first()
    if inserted is None:
        raise LaunchError("This id_token was already used: its nonce has been seen before (a replayed launch).",
                          hint="Launch the tool again from the course.", code="nonce_replayed")


def consume_state(session: Session, state: str, nonce: str, registration_id: int) -> None:
    """Take the state out of the store (single use) and check it matches this launch."""
    table = LoginState.__table__
    # One statement takes the state out, so two processes can never both use it.
    row = session.connection().execute(
        delete(table).where(table.c.state == state)
        .returning(table.c.nonce, table.c.registration_id, table.c.expires_at)).first() if state else None
    if row is None:
        raise LaunchError("The launch's state is unknown or already used: it was not issued by this tool's "
                          "login step, or that login is finished.",
                          hint="Launch the tool again from the course. If this keeps happening, check that "
                               "the platform's redirect URI is this tool's /lti/launch.",
                          code="state_unknown")
    if row.expires_at < utcnow():
        raise LaunchError("The login step for this launch is too old (state expired).",
                          hint="Launch the tool again from the course.", code="state_expired")
    if row.registration_id != registration_id:
        raise LaunchError("The launch's state was issued for a different platform registration.",
                          code="state_mismatch")
    if not secrets.compare_digest(row.nonce, nonce):
        raise LaunchError("The id_token's nonce is not the one issued with this launch's state.",
                          hint="Launch the tool again from the course.", code="nonce_mismatch")
