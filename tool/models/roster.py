"""Roster sync runs and the service access tokens they share across processes."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow
from .people import Context


class RosterSync(Base):
    """One run of a Names and Role Provisioning Services sync of one course."""

    __tablename__ = "roster_syncs"
    __table_args__ = (Index("ix_roster_syncs_context_status", "context_id", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    context_id: Mapped[int] = mapped_column(ForeignKey("contexts.id", ondelete="CASCADE"))
    # queued -> running -> succeeded | failed
    status: Mapped[str] = mapped_column(String(20), default="queued")
    trigger: Mapped[str] = mapped_column(String(20), default="manual")
    role_filter: Mapped[str | None] = mapped_column(String(300), nullable=True)
    rlid: Mapped[str | None] = mapped_column(String(255), nullable=True)
    used_differences: Mapped[bool] = mapped_column(Boolean, default=False)
    pages_fetched: Mapped[int] = mapped_column(Integer, default=0)
    members_seen: Mapped[int] = mapped_column(Integer, default=0)
    rows_written: Mapped[int] = mapped_column(Integer, default=0)
    members_dropped: Mapped[int] = mapped_column(Integer, default=0)
    retries: Mapped[int] = mapped_column(Integer, default=0)
    # Members the platform listed that could not be stored (skipped, the rest of the course synced).
    members_skipped: Mapped[int] = mapped_column(Integer, default=0)
    skipped_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    context: Mapped[Context] = relationship()


class ContextSyncState(Base):
    """Per-course sync bookkeeping: the lock row and the platform's `differences` link."""

    __tablename__ = "context_sync_states"

    context_id: Mapped[int] = mapped_column(ForeignKey("contexts.id", ondelete="CASCADE"),
                                            primary_key=True)
    # The run holding the course; a lease so a crashed worker does not hold it forever.
    running_sync_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # NRPS 2.0 §3.6.1.3: a URL returning only changes since the last full read.
    differences_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class AccessToken(Base):
    """An OAuth2 client-credentials token (LTI Security Framework §4.1), one per registration and scope set."""

    __tablename__ = "access_tokens"
    __table_args__ = (UniqueConstraint("registration_id", "scope_key", name="uq_access_tokens_reg_scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    scope_key: Mapped[str] = mapped_column(String(1000))
    token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
