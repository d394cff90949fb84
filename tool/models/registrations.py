"""Platforms the tool trusts: registrations, their deployments, and the tool's own signing keys.

A registration is found by (issuer, client_id): every hosted Canvas shares the issuer
``https://canvas.instructure.com`` (facts sheet section 1), so issuer alone is ambiguous.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, utcnow


class Registration(Base):
    __tablename__ = "registrations"
    __table_args__ = (UniqueConstraint("issuer", "client_id", name="uq_registrations_issuer_client"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(200))
    auth_login_url: Mapped[str] = mapped_column(String(1000))
    auth_token_url: Mapped[str] = mapped_column(String(1000))
    key_set_url: Mapped[str] = mapped_column(String(1000))
    # Some platforms want a different `aud` in the client assertion than the token URL.
    auth_audience: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # The school's own platform address (``platform add --canvas URL``): pages after a launch may
    # be framed by it (CSP frame-ancestors) besides the issuer's origin.
    platform_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    accepts_any_deployment: Mapped[bool] = mapped_column(Boolean, default=False)
    matches_by_email: Mapped[bool] = mapped_column(Boolean, default=False)
    # How it was added: "manual" (`platform add`), "dynamic" (LTI Dynamic Registration) or
    # "sandbox" (the emulated LMS served in the same process; it never launches into real courses).
    source: Mapped[str] = mapped_column(String(20), default="manual", server_default="manual")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    deployments: Mapped[list["Deployment"]] = relationship(
        back_populates="registration", cascade="all, delete-orphan", order_by="Deployment.id")

    def __repr__(self) -> str:
        return f"<Registration {self.issuer} client {self.client_id}>"


class Deployment(Base):
    __tablename__ = "deployments"
    __table_args__ = (UniqueConstraint("registration_id", "deployment_id",
                                       name="uq_deployments_registration_deployment"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    deployment_id: Mapped[str] = mapped_column(String(300))
    # True when recorded automatically on first launch (registration accepts any deployment).
    is_auto_recorded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    registration: Mapped[Registration] = relationship(back_populates="deployments")


class ToolKey(Base):
    """One RSA key pair of the tool. The private half lives in ``keys/<file>`` (mode 0600)."""

    __tablename__ = "tool_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kid: Mapped[str] = mapped_column(String(100), unique=True)
    public_jwk: Mapped[str] = mapped_column(Text)
    private_key_file: Mapped[str] = mapped_column(String(300))
    is_signing: Mapped[bool] = mapped_column(Boolean, default=False)
    is_published: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class RegistryVersion(Base):
    """One row whose number grows whenever a registration or deployment changes.

    Processes keep registrations and deployments in memory and read this one number to know
    whether what they hold is still true (every process, every machine sharing the database).
    """

    __tablename__ = "registry_version"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)


class RegistrationInvite(Base):
    """A one-time code that lets a platform register itself (LTI Dynamic Registration 1.0).

    Only the SHA-256 of the code is stored; the code itself is printed once by
    ``flask --app app platform invite``.
    """

    __tablename__ = "registration_invites"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("registrations.id", ondelete="SET NULL"), nullable=True)
