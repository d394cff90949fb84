"""Registration invites: the tool administrator's consent before a platform registers itself.

LTI Dynamic Registration 1.0 lets whoever opens the tool's registration URL add a platform the
tool will trust, so the URL carries a one-time code that ``flask --app app platform invite``
prints. Only the code's SHA-256 is stored; a code is usable until it expires or one
registration used it.
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .errors import ToolError
from .models import RegistrationInvite, utcnow

INVITE_COMMAND = "flask --app app platform invite"
# Codes are 32 url-safe characters; anything far longer is not one of ours.
MAX_CODE = 100
MAX_NOTE = 200


class InviteRefused(ToolError):
    """The registration URL has no usable invite code."""

    status = 403
    title = "This registration link cannot be used"


@dataclass(frozen=True)
class NewInvite:
    invite: RegistrationInvite
    code: str  # shown once; only its hash is kept


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()


def create(session: Session, ttl_seconds: int, note: str = "") -> NewInvite:
    """A new invite valid for ``ttl_seconds``; the caller shows ``code`` once."""
    if ttl_seconds <= 0:
        raise ToolError("An invite must last at least one second.",
                        hint="Give --expires-in a positive number of seconds.")
    note = " ".join((note or "").split())
    if len(note) > MAX_NOTE or not note.isprintable():
        raise ToolError(f"The note must be printable text of at most {MAX_NOTE} characters.")
    code = secrets.token_urlsafe(24)
    now = utcnow()
    invite = RegistrationInvite(code_hash=code_hash(code), note=note, created_at=now,
                                expires_at=now + timedelta(seconds=ttl_seconds))
    session.add(invite)
    session.commit()
    return NewInvite(invite, code)


def _how_to_get_one(reason: str, code: str) -> InviteRefused:
    return InviteRefused(
        reason, code=code, command=INVITE_COMMAND,
        hint="An administrator of this tool runs the command below on the tool's server. It "
             "prints a registration URL with a new one-time code; paste that URL into the "
             "platform (Canvas: Admin, Developer Keys, + Developer Key, LTI Registration).")


def usable(session: Session, code: str | None) -> RegistrationInvite:
    """The invite a code names, if it is unused and unexpired; else why not, with the command."""
    code = (code or "").strip()
    if not code:
        raise _how_to_get_one("This registration URL has no invite code: registering a platform "
                              "needs the tool administrator's consent first.", "invite_missing")
    invite = None
    if len(code) <= MAX_CODE:
        invite = session.scalars(select(RegistrationInvite).where(
            RegistrationInvite.code_hash == code_hash(code))).first()
    if invite is None:
        raise _how_to_get_one("The invite code in this registration URL is not one this tool "
                              "issued (it may have been mistyped or cut short).", "invite_unknown")
    return _still_open(invite)


def confirmed(session: Session, invite_id: int, expected_hash: str) -> RegistrationInvite:
    """The invite a confirmation form was made for, if it is still unused and unexpired."""
    invite = session.get(RegistrationInvite, invite_id)
    if invite is None or invite.code_hash != expected_hash:
        raise _how_to_get_one("The invite code this confirmation was made for no longer exists.",
                              "invite_unknown")
    return _still_open(invite)


def _still_open(invite: RegistrationInvite) -> RegistrationInvite:
    if invite.used_at is not None:
        raise _how_to_get_one(f"This invite code was already used, at {invite.used_at:%Y-%m-%d %H:%M} "
                              "UTC: each code registers one platform only.", "invite_used")
    if invite.expires_at <= utcnow():
        raise _how_to_get_one(f"This invite code expired at {invite.expires_at:%Y-%m-%d %H:%M} UTC.",
                              "invite_expired")
    return invite


def claim(session: Session, invite_id: int) -> None:
    """Mark the invite used, exactly once: of two confirmations at the same moment, one wins.

    Committed at once, before the platform is called, so a second confirmation is refused
    while the first is still talking to the platform.
    """
    result = session.execute(update(RegistrationInvite).where(
        RegistrationInvite.id == invite_id, RegistrationInvite.used_at.is_(None),
        RegistrationInvite.expires_at > utcnow()).values(used_at=utcnow()))
    session.commit()
    if result.rowcount != 1:
        raise _how_to_get_one("This invite code was used or expired while the page was open.",
                              "invite_used")


def release(session: Session, invite_id: int) -> None:
    """Give a claimed invite back after the platform refused, so the admin can try again."""
    session.rollback()
    session.execute(update(RegistrationInvite).where(
        RegistrationInvite.id == invite_id, RegistrationInvite.registration_id.is_(None))
        .values(used_at=None))
    session.commit()


def record(session: Session, invite_id: int, registration_id: int) -> None:
    """Remember which registration a used invite made (``platform invites`` shows it)."""
    session.execute(update(RegistrationInvite).where(RegistrationInvite.id == invite_id)
                    .values(registration_id=registration_id))
    session.commit()


def open_invites(session: Session) -> list[RegistrationInvite]:
    """Invites still usable, oldest first."""
    return list(session.scalars(select(RegistrationInvite).where(
        RegistrationInvite.used_at.is_(None), RegistrationInvite.expires_at > utcnow())
        .order_by(RegistrationInvite.id)))
