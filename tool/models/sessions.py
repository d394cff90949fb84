"""Page sessions: what a launch lets a person see afterwards, kept server-side so it can end.

Canvas frames the tool and Safari blocks third-party cookies there, so pages carry a signed
*reference* to one of these rows (``?t=``), never the session's content. Each request checks
the row (revoked, absolute expiry) and what stands behind it (the course membership), so a
dropped instructor or one who launched again as a learner loses the instructor pages at once.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class PageSession(Base):
    __tablename__ = "page_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The random part of the reference pages carry (signed with SECRET_KEY on the way out).
    key: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Removing a registration deletes its sessions with it (ON DELETE CASCADE): access ends.
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"),
                                                 index=True)
    context_id: Mapped[int | None] = mapped_column(ForeignKey("contexts.id", ondelete="CASCADE"),
                                                   nullable=True)
    resource_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("resource_links.id", ondelete="SET NULL"), nullable=True)
    view: Mapped[str] = mapped_column(String(20))  # "instructor" or "student"
    # Every role URI the launch carried (institution and system roles included).
    roles: Mapped[list] = mapped_column(JSON, default=list)
    # Origins allowed to frame the pages of this session (CSP frame-ancestors).
    frame_origins: Mapped[list] = mapped_column(JSON, default=list)
    # A deep linking launch's settings (return URL, data, accept_*, deployment id), kept until
    # the instructor picks what to return (Deep Linking 2.0 §4.4.1); None for other launches.
    deep_linking: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
