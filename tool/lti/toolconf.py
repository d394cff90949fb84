"""A registration in pylti1p3's shape, for the library calls that want one (NRPS, service tokens).

Login and launch no longer go through pylti1p3's tool configuration: they look registrations up
by (issuer, client_id) in the process's registry (``tool/registry.py``), which also bypasses
pylti1p3's issuer-only mode and its class-level ``issuers_relation_types`` dict (pylti1p3 notes,
"registration lookup").
"""
from __future__ import annotations

from pathlib import Path

from pylti1p3.registration import Registration as LibRegistration
from sqlalchemy.orm import Session

from . import keys


def to_library_registration(session: Session, reg, key_dir: Path | None) -> LibRegistration:
    """``reg`` (a Registration row or a registry record) as pylti1p3's Registration."""
    lib = (LibRegistration().set_issuer(reg.issuer).set_client_id(reg.client_id)
           .set_auth_login_url(reg.auth_login_url).set_auth_token_url(reg.auth_token_url)
           .set_key_set_url(reg.key_set_url))
    if reg.auth_audience:
        lib.set_auth_audience(reg.auth_audience)
    if key_dir is not None:
        _kid, pem = keys.signing_key(session, key_dir)
        lib.set_tool_private_key(pem.decode())
    return lib
