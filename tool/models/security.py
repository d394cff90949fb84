"""Short-lived security records every process shares: OIDC login states and spent nonces."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class LoginState(Base):
    """A `state`/`nonce` pair issued at OIDC login (LTI 1.3 core §5.1.1), consumed once at launch."""

    __tablename__ = "login_states"

    state: Mapped[str] = mapped_column(String(100), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(100))
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)


class UsedNonce(Base):
    """An id_token nonce already accepted; a second launch with it is a replay (Security Framework §5.1.3)."""

    __tablename__ = "used_nonces"

    nonce: Mapped[str] = mapped_column(String(255), primary_key=True)
    registration_id: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
