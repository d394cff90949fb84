"""The sandbox, registered with the tool like any platform, and marked as the sandbox.

It goes through ``tool/platforms.py`` as ``platform add`` does: the same checks, one
registration per (issuer, client id), updated rather than duplicated. Its issuer is the tool's
own address plus ``/sandbox`` and its key its own (``keys.py``), so nothing it signs can pass for
another platform, and the courses it launches into are its own (courses belong to a registration).
Processes starting together register under the database's start-up lock, so it happens once.
"""
from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from .. import platforms, registrations
from ..models import Registration

log = logging.getLogger(__name__)
SOURCE = "sandbox"
NAME = "Sandbox (emulated LMS in this process)"


def spec_for(platform, client_id: str) -> platforms.PlatformSpec:
    return platforms.PlatformSpec(
        issuer=platform.issuer, client_id=client_id, auth_login_url=platform.auth_login_url,
        auth_token_url=platform.token_url, key_set_url=platform.jwks_url, name=NAME,
        source=SOURCE)


def current(session: Session, platform, client_id: str, deployment_id: str) -> int | None:
    """The registration's id when it is stored exactly as this sandbox would store it, else None."""
    spec = spec_for(platform, client_id)
    reg = registrations.find(session, spec.issuer, spec.client_id)
    urls = (spec.auth_login_url, spec.auth_token_url, spec.key_set_url)
    if reg is None or reg.source != SOURCE or \
            (reg.auth_login_url, reg.auth_token_url, reg.key_set_url) != urls:
        return None
    if registrations.find_deployment(session, reg, deployment_id) is None:
        return None
    return reg.id


def register(session: Session, platform, client_id: str, deployment_id: str) -> Registration:
    """Create or update the sandbox registration and its deployment; the registration."""
    saved = platforms.save_platform(session, spec_for(platform, client_id), [deployment_id])
    reg = saved.registration
    if saved.created:
        log.debug("sandbox registered: issuer %r client id %r", reg.issuer, reg.client_id)
    elif saved.changes:
        log.debug("sandbox registration updated: %s", "; ".join(saved.changes))
    return reg
