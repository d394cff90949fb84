"""The client registration the tool sends and what it keeps of the answer (DR 1.0, step 3).

The request is OpenID Connect Dynamic Client Registration metadata plus the
``lti-tool-configuration`` object: domain, target link, claims, the messages with their
placements, Canvas's custom parameters and privacy level (facts sheet section 5, as the
developer key at ``/lti/canvas.json`` has them). The answer gives the ``client_id`` and, where
a deployment exists already, its id: inside ``lti-tool-configuration`` per the spec, or at the
top level as current Canvas may put it; Canvas gives none until the app is installed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..claims import plausible_identifier
from .calls import RegistrationRefused, call, json_object
from .configuration import PLACEMENTS, PlatformConfiguration

log = logging.getLogger(__name__)

TOOL_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-tool-configuration"
CANVAS_PRIVACY_LEVEL = "https://canvas.instructure.com/lti/privacy_level"
PRIVACY_LEVEL = "public"
# Canvas fills these per launch (facts sheet section 4); another platform would send them as is.
CANVAS_CUSTOM = {"canvas_user_id": "$Canvas.user.id", "canvas_course_id": "$Canvas.course.id"}
CLAIMS = ("iss", "sub", "name", "given_name", "family_name", "email")


@dataclass(frozen=True)
class Answer:
    """What the platform registered: its client id, and a deployment id where it gave one."""

    client_id: str
    deployment_id: str | None


def registration_request(config: PlatformConfiguration, *, base_url: str, title: str,
                         description: str) -> dict:
    """The client registration for this tool at ``base_url``."""
    target = base_url + "/lti/launch"
    claims = [c for c in CLAIMS if config.claims_supported is None or c in config.claims_supported
              or c in ("iss", "sub")]
    by_kind: dict[str, list[str]] = {}
    for placement, kind, _ in PLACEMENTS:
        by_kind.setdefault(kind, []).append(placement)
    tool_configuration = {
        "domain": urlsplit(base_url).hostname,
        "target_link_uri": target,
        "description": description,
        "claims": claims,
        "messages": [{"type": kind, "target_link_uri": target, "label": title, "placements": placements}
                     for kind, placements in by_kind.items()],
        CANVAS_PRIVACY_LEVEL: PRIVACY_LEVEL,
    }
    if config.is_canvas:
        tool_configuration["custom_parameters"] = dict(CANVAS_CUSTOM)
    return {
        "application_type": "web",
        "response_types": ["id_token"],
        "grant_types": ["implicit", "client_credentials"],
        "initiate_login_uri": base_url + "/lti/login",
        "redirect_uris": [target],
        "client_name": title,
        "jwks_uri": base_url + "/.well-known/jwks.json",
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": " ".join(config.scopes),
        TOOL_CONFIGURATION: tool_configuration,
    }


def _identifier(value) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else None


def register(config: PlatformConfiguration, token: str | None, request: dict, *,
             timeout: tuple[float, float]) -> Answer:
    """POST the registration; the platform's client id and deployment id."""
    status, body = call("POST", config.registration_endpoint, token, timeout,
                        "registration answer", request)
    data = json_object(status, body, "registration answer", accepted=(200, 201))
    client_id = _identifier(data.get("client_id"))
    if not plausible_identifier(client_id):
        raise RegistrationRefused("The platform accepted the registration but its answer has no "
                                  "usable client_id.", code="client_id_missing",
                                  hint="Remove the half-made registration in the platform and start again.")
    tool_part = data.get(TOOL_CONFIGURATION)
    deployment = _identifier((tool_part.get("deployment_id") if isinstance(tool_part, dict) else None)
                             or data.get("deployment_id"))
    if deployment is not None and not plausible_identifier(deployment):
        # The first launch records the real one (the registration then accepts any deployment).
        log.warning("dynamic registration: ignoring implausible deployment id %r", deployment[:300])
        deployment = None
    return Answer(client_id=client_id, deployment_id=deployment)
