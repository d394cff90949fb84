"""People and courses as the platform describes them: users, contexts, memberships, links.

Ids that come from the platform are named ``lti_*``; role URIs are kept in full, as sent
(LTI 1.3 core §5.3.7 and Appendix A), never flattened to booleans.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
                        text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("registration_id", "sub", name="uq_users_registration_sub"),
        # Claim lookups (roster/matching.py) only ever look among people without a ``sub``:
        # indexed only there, a roster sync's thousands of new people (all with a ``sub``)
        # add nothing to these two indexes.
        Index("ix_users_unclaimed_legacy", "registration_id", "lti11_legacy_user_id",
              sqlite_where=text("sub IS NULL"), postgresql_where=text("sub IS NULL")),
        Index("ix_users_unclaimed_sourcedid", "registration_id", "lis_person_sourcedid",
              sqlite_where=text("sub IS NULL"), postgresql_where=text("sub IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    # Null only for people imported before they ever launched (e.g. from an LTI 1.1 install).
    sub: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lti11_legacy_user_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lis_person_sourcedid: Mapped[str | None] = mapped_column(String(255), nullable=True)
    name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    given_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    family_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)
    picture: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    canvas_user_id: Mapped[str | None] = mapped_column(String(50), nullable=True)
    # How this row was matched to the platform's person: sub, lti11_legacy_user_id,
    # lis_person_sourcedid, email, or created.
    matched_by: Mapped[str] = mapped_column(String(40), default="created")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_launch_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        joined = " ".join(p for p in (self.given_name, self.family_name) if p)
        return joined or self.email or f"User {self.sub or self.id}"


class Context(Base):
    """A course (or group) on the platform, with the service URLs its launches carried."""

    __tablename__ = "contexts"
    __table_args__ = (UniqueConstraint("registration_id", "lti_context_id",
                                       name="uq_contexts_registration_context"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id", ondelete="SET NULL"),
                                                      nullable=True)
    lti_context_id: Mapped[str] = mapped_column(String(255))
    label: Mapped[str | None] = mapped_column(String(300), nullable=True)
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    context_types: Mapped[list] = mapped_column(JSON, default=list)
    canvas_course_id: Mapped[str | None] = mapped_column(String(50), nullable=True)
    # Names and Role Provisioning Services 2.0 §3.6.1.1: the memberships URL from the launch claim.
    memberships_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # Assignment and Grade Services 2.0 §3.1: line items URL and the scopes the platform granted.
    lineitems_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    ags_scopes: Mapped[list] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    @property
    def display_name(self) -> str:
        return self.title or self.label or self.lti_context_id


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("context_id", "user_id", name="uq_memberships_context_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    context_id: Mapped[int] = mapped_column(ForeignKey("contexts.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    roles: Mapped[list] = mapped_column(JSON, default=list)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Why the membership is inactive: Inactive/Deleted as the platform said, or absent from a full sync.
    status_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    inactive_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_launch_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_synced_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    user: Mapped[User] = relationship()
    context: Mapped[Context] = relationship()


class ResourceLink(Base):
    __tablename__ = "resource_links"
    __table_args__ = (UniqueConstraint("registration_id", "lti_resource_link_id",
                                       name="uq_resource_links_registration_link"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    context_id: Mapped[int | None] = mapped_column(ForeignKey("contexts.id", ondelete="CASCADE"),
                                                   nullable=True)
    lti_resource_link_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(String(500), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    placement: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # AGS line item URL when launched from an assignment with exactly one line item (facts §3).
    lineitem_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # The assessment this link opens (deep linking, or an instructor's choice); None for the
    # course navigation link, which opens the home page.
    assessment_id: Mapped[int | None] = mapped_column(
        ForeignKey("assessments.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
