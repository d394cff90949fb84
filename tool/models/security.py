"""Short-lived security records every process shares: spent id_token nonces.

The OIDC login state itself is a signed token (``tool/lti/states.py``): a login writes nothing.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base


class UsedNonce(Base):
    """An id_token nonce already accepted; a second launch with it is a replay (Security Framework §5.1.3)."""

    __tablename__ = "used_nonces"

    nonce: Mapped[str] = mapped_column(String(255), primary_key=True)
    registration_id: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
