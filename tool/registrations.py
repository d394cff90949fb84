"""Registrations and deployments: every lookup the tool makes, in one place.

A registration is one platform client: unique on (issuer, client_id), and always looked up by
both (pylti1p3 notes, "registration lookup"), except where OIDC third-party login lets the
platform leave ``client_id`` out (LTI 1.3 core §5.1.1): then only an issuer with exactly one
registration is answered. A deployment is unique on (registration, deployment_id) (LTI 1.3 core
§3.1.3); one that an ``--any-deployment`` registration meets for the first time is recorded only
after a launch whose signature verified. Validation of what an administrator types lives in
``tool/platforms.py``; this module trusts its arguments.

Login and launch read registrations and deployments through ``tool/registry.py``, which holds
them in each process; every write here moves its version (``registry.bump``) in the same
transaction, so every process sees the change on its next request.
"""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import registry
from .db import upsert
from .errors import ToolError
from .lti.errors import DeploymentNotFound, fix_command
from .models import Deployment, Registration

log = logging.getLogger(__name__)


def find(session: Session, issuer: str, client_id: str) -> Registration | None:
    """The registration for exactly (issuer, client_id)."""
    return session.scalars(select(Registration).where(Registration.issuer == issuer,
                                                      Registration.client_id == client_id)).first()


def find_for_login(session: Session, issuer: str, client_id: str | None) -> Registration | None:
    """(issuer, client_id) when the client id is given; without it, the issuer's only registration.

    OIDC third-party login allows ``client_id`` to be absent: guessing among several clients of
    one issuer would start a login for the wrong tool configuration, so that answers None.
    """
    if client_id:
        return find(session, issuer, client_id)
    found = of_issuer(session, issuer, limit=2)
    return found[0] if len(found) == 1 else None


def of_issuer(session: Session, issuer: str, *, limit: int | None = None) -> list[Registration]:
    """Every registration of one platform issuer, oldest first."""
    stmt = select(Registration).where(Registration.issuer == issuer).order_by(Registration.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return list(session.scalars(stmt))


def get(session: Session, issuer: str, client_id: str) -> Registration:
    """The registration for (issuer, client_id), or a ToolError naming the pair."""
    reg = find(session, issuer, client_id)
    if reg is None:
        raise ToolError(f"No registration for issuer {issuer!r} and client id {client_id!r}.",
                        hint="See `flask --app app platform list`.")
    return reg


def list_all(session: Session) -> list[Registration]:
    return list(session.scalars(select(Registration).order_by(Registration.id)))


def find_deployment(session: Session, registration: Registration,
                    deployment_id: str) -> Deployment | None:
    return session.scalars(select(Deployment).where(
        Deployment.registration_id == registration.id,
        Deployment.deployment_id == deployment_id)).first()


def add_deployment(session: Session, registration: Registration, deployment_id: str, *,
                   auto_recorded: bool = False) -> Deployment:
    """The deployment row, created when missing (the one get-or-create for deployments).

    One upsert, so two launches that meet a new deployment at once leave one row; the caller
    commits, and every process sees the new row from then on (``registry.bump``).
    """
    row = find_deployment(session, registration, deployment_id)
    if row is not None:
        return row
    upsert(session, Deployment, [{"registration_id": registration.id,
                                  "deployment_id": deployment_id,
                                  "is_auto_recorded": auto_recorded}],
           keys=["registration_id", "deployment_id"])
    registry.bump(session)
    return find_deployment(session, registration, deployment_id)


def unknown_deployment(registration: Registration, deployment_id: str) -> DeploymentNotFound:
    """The refusal for a deployment the tool does not know, with the command that allows it."""
    command = fix_command("flask --app app platform add-deployment", issuer=registration.issuer,
                          client_id=registration.client_id, deployment_id=deployment_id)
    hint = ("An administrator of the tool can allow it with this command:" if command else
            "This deployment id is not a plausible identifier (printable, at most 255 characters), "
            "so no command is offered to allow it.")
    return DeploymentNotFound(
        f"Deployment {deployment_id[:300]!r} of platform {registration.issuer!r} (client id "
        f"{registration.client_id!r}) is not registered with this tool.",
        hint=hint, command=command, code="unknown_deployment")


def check_deployment(session: Session, registration: Registration,
                     deployment_id: str) -> Deployment | None:
    """A known deployment; None when unknown but the registration accepts any; else refused.

    Reads only: login and launch call it before anything is verified.
    """
    row = find_deployment(session, registration, deployment_id)
    if row is None and not registration.accepts_any_deployment:
        raise unknown_deployment(registration, deployment_id)
    return row


def record_deployment(session: Session, registration: Registration,
                      deployment_id: str) -> Deployment:
    """Record a deployment first seen in a verified launch (the registration accepts any)."""
    row = add_deployment(session, registration, deployment_id, auto_recorded=True)
    log.info("recorded new deployment %r for issuer %r client id %r", deployment_id,
             registration.issuer, registration.client_id)
    return row


def ensure_deployment(session: Session, registration: Registration,
                      deployment_id: str) -> Deployment:
    """The deployment row, recorded on first sight when the registration accepts any deployment.

    Writes: call it only for a launch whose signature verified.
    """
    return (check_deployment(session, registration, deployment_id)
            or record_deployment(session, registration, deployment_id))
