"""The pylti1p3 tool configuration backed by the database.

Always looks a registration up by (issuer, client_id): pylti1p3's default issuer-only mode and
its class-level ``issuers_relation_types`` dict are bypassed (pylti1p3 notes, "registration lookup").
The lookups themselves are ``tool/registrations.py``; this adapts them to pylti1p3's interface.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pylti1p3.deployment import Deployment as LibDeployment
from pylti1p3.registration import Registration as LibRegistration
from pylti1p3.tool_config import ToolConfAbstract
from sqlalchemy.orm import Session

from .. import registrations
from ..models import Registration
from . import keys


class DatabaseToolConf(ToolConfAbstract):
    def __init__(self, session: Session, key_dir: Path | None = None) -> None:
        self.session = session
        self.key_dir = key_dir
        self.found: Registration | None = None

    # pylti1p3 asks these to pick a lookup mode; we always use (issuer, client_id).
    def check_iss_has_one_client(self, iss: str) -> bool:
        return False

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> LibRegistration | None:
        return self.find_registration_by_params(iss, None, *args, **kwargs)

    def find_registration_by_params(self, iss: str, client_id: str | None, *args: Any,
                                    **kwargs: Any) -> LibRegistration | None:
        reg = registrations.find_for_login(self.session, iss, client_id)
        self.found = reg
        return to_library_registration(self.session, reg, self.key_dir) if reg else None

    def find_deployment(self, iss: str, deployment_id: str) -> LibDeployment | None:
        return self.find_deployment_by_params(iss, deployment_id, None)

    def find_deployment_by_params(self, iss: str, deployment_id: str, client_id: str | None,
                                  *args: Any, **kwargs: Any) -> LibDeployment | None:
        reg = registrations.find_for_login(self.session, iss, client_id)
        if reg is None:
            return None
        row = registrations.find_deployment(self.session, reg, deployment_id)
        return LibDeployment().set_deployment_id(row.deployment_id) if row else None


def to_library_registration(session: Session, reg: Registration,
                            key_dir: Path | None) -> LibRegistration:
    lib = (LibRegistration().set_issuer(reg.issuer).set_client_id(reg.client_id)
           .set_auth_login_url(reg.auth_login_url).set_auth_token_url(reg.auth_token_url)
           .set_key_set_url(reg.key_set_url))
    if reg.auth_audience:
        lib.set_auth_audience(reg.auth_audience)
    if key_dir is not None:
        _kid, pem = keys.signing_key(session, key_dir)
        lib.set_tool_private_key(pem.decode())
    return lib
