"""Registering platforms: add, list, remove registrations and their deployments.

Canvas's well-known endpoints (facts sheet section 1) fill in a registration from the school's
URL alone. Platform URLs must be https, except on loopback hosts for local trials and the emulator.
"""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from .lti.errors import ToolError
from .models import Deployment, Registration

CANVAS_ISSUERS = {
    "prod": "https://canvas.instructure.com",
    "beta": "https://canvas.beta.instructure.com",
    "test": "https://canvas.test.instructure.com",
}
CANVAS_SSO = {"prod": "https://sso.canvaslms.com", "beta": "https://sso.beta.canvaslms.com",
              "test": "https://sso.test.canvaslms.com"}
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class PlatformSpec:
    issuer: str
    client_id: str
    auth_login_url: str
    auth_token_url: str
    key_set_url: str
    name: str = ""


def canvas_spec(school_url: str, client_id: str, environment: str = "prod") -> PlatformSpec:
    """Canvas's issuer, auth, JWKS and token URLs for a school's Canvas (facts sheet section 1)."""
    school = school_url.rstrip("/")
    check_url(school, "Canvas URL")
    sso = CANVAS_SSO[environment]
    return PlatformSpec(issuer=CANVAS_ISSUERS[environment], client_id=client_id,
                        auth_login_url=f"{sso}/api/lti/authorize_redirect",
                        auth_token_url=f"{school}/login/oauth2/token",
                        key_set_url=f"{sso}/api/lti/security/jwks",
                        name=urlsplit(school).hostname or school)


def check_url(url: str, what: str) -> None:
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"{what} {url!r} is not an absolute http(s) URL.")
    if parts.scheme != "https" and parts.hostname not in LOOPBACK:
        raise ToolError(f"{what} {url!r} must use https (plain http is allowed only on 127.0.0.1 "
                        f"and localhost).")


def add_platform(session: Session, spec: PlatformSpec, deployment_ids: list[str] = (), *,
                 any_deployment: bool = False, match_email: bool = False) -> Registration:
    """Create or update the registration for (issuer, client_id) and add deployments."""
    if not spec.issuer or not spec.client_id:
        raise ToolError("Both an issuer and a client id are needed.")
    for url, what in ((spec.auth_login_url, "Auth login URL"), (spec.auth_token_url, "Token URL"),
                      (spec.key_set_url, "Key set URL")):
        check_url(url, what)
    reg = find(session, spec.issuer, spec.client_id)
    if reg is None:
        reg = Registration(issuer=spec.issuer, client_id=spec.client_id)
        session.add(reg)
    reg.name = spec.name or reg.name or spec.issuer
    reg.auth_login_url = spec.auth_login_url
    reg.auth_token_url = spec.auth_token_url
    reg.key_set_url = spec.key_set_url
    reg.accepts_any_deployment = any_deployment or bool(reg.accepts_any_deployment)
    reg.matches_by_email = match_email or bool(reg.matches_by_email)
    session.flush()
    for deployment_id in deployment_ids:
        add_deployment(session, reg, deployment_id)
    session.commit()
    return reg


def find(session: Session, issuer: str, client_id: str) -> Registration | None:
    return session.scalars(select(Registration).where(Registration.issuer == issuer,
                                                      Registration.client_id == client_id)).first()


def get(session: Session, issuer: str, client_id: str) -> Registration:
    reg = find(session, issuer, client_id)
    if reg is None:
        raise ToolError(f"No registration for issuer {issuer!r} and client id {client_id!r}.",
                        hint="See `flask --app app platform list`.")
    return reg


def add_deployment(session: Session, reg: Registration, deployment_id: str) -> Deployment:
    deployment_id = deployment_id.strip()
    if not deployment_id:
        raise ToolError("A deployment id cannot be empty.")
    row = session.scalars(select(Deployment).where(Deployment.registration_id == reg.id,
                                                   Deployment.deployment_id == deployment_id)).first()
    if row is None:
        row = Deployment(registration_id=reg.id, deployment_id=deployment_id)
        session.add(row)
        session.flush()
    return row


def remove_platform(session: Session, issuer: str, client_id: str) -> None:
    session.delete(get(session, issuer, client_id))
    session.commit()


def list_platforms(session: Session) -> list[Registration]:
    return list(session.scalars(select(Registration).order_by(Registration.id)))
