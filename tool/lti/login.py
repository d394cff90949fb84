"""OIDC third-party initiated login (LTI 1.3 core §5.1.1; Canvas parameters in facts §2).

The platform sends iss, login_hint, client_id, target_link_uri, lti_message_hint and the
deployment id; the tool answers with a redirect to the platform's auth endpoint carrying a fresh
``state`` and ``nonce``. Anyone can call this URL, so it writes nothing to the database: the state
is a signed token (see ``states``), and a deployment first seen here is recorded only by the
launch whose signature verifies.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import urlencode, urlsplit

from sqlalchemy.orm import Session

from .. import registrations, registry
from . import states
from .claims import identifier_problem
from .errors import LoginError, RegistrationNotFound

# Identifiers (core §5.3: at most 255 characters). lti_message_hint is opaque (Canvas sends a
# signed JWT) and only bounded; target_link_uri is a URL.
IDENTIFIERS = ("iss", "client_id", "login_hint", "lti_deployment_id", "deployment_id")
BOUNDED = {"lti_message_hint": 4096, "target_link_uri": 2048}
# Seconds a registry version read by this process serves logins without reading it again.
LOGIN_REGISTRY_AGE = 1.0


@dataclass
class LoginRedirect:
    state: str
    nonce: str
    storage: states.Storage | None = None
    endpoint: str = ""  # the platform's auth endpoint as registered (its own query included)
    params: dict = field(default_factory=dict)  # what ``url`` adds to the endpoint's query

    @property
    def url(self) -> str:
        """The auth request as one URL (a login with platform storage sends a form instead)."""
        sep = "&" if "?" in self.endpoint else "?"
        return self.endpoint + sep + urlencode(self.params)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def check_target(target_link_uri: str | None, launch_url: str) -> None:
    """The target must be this tool (OIDC third-party initiated login §4): refuse another origin.

    A mismatch is almost always a TOOL_BASE_URL that differs from the URL the platform was
    given, so the message names both.
    """
    if target_link_uri and _origin(target_link_uri) != _origin(launch_url):
        raise LoginError(
            f"The login asks to launch {target_link_uri}, which is not this tool ({launch_url}).",
            hint="Check that TOOL_BASE_URL is the address the platform's developer key uses.",
            code="target_link_uri_foreign")


def check_params(params: Mapping[str, str]) -> None:
    """Refuse over-long identifiers or ones with control characters before anything is looked up."""
    for name in IDENTIFIERS:
        value = params.get(name)
        problem = identifier_problem(value) if value else None
        if problem:
            raise LoginError(f"The login parameter {name!r} {problem}.",
                             hint="Identifiers are strings of at most 255 characters without control "
                                  "characters; this login was not sent by a working platform.",
                             code="identifier_invalid")
    for name, limit in BOUNDED.items():
        value = params.get(name)
        problem = identifier_problem(value, limit) if value else None
        if problem:
            raise LoginError(f"The login parameter {name!r} {problem}.", code="parameter_invalid")


def begin_login(params: Mapping[str, str], session: Session, launch_url: str,
                state_ttl: int = 600, secret_key: str | None = None) -> LoginRedirect:
    """The redirect to the platform's auth endpoint; reads the database, never writes to it.

    ``state_ttl`` is kept for callers; the state's age is checked at launch (LOGIN_STATE_TTL).
    """
    check_params(params)
    iss = (params.get("iss") or "").strip()
    login_hint = params.get("login_hint") or ""
    client_id = (params.get("client_id") or "").strip() or None
    if not iss:
        raise LoginError("The login request has no issuer (iss).",
                         hint="Launch the tool from the platform; the login URL is not meant to be opened directly.",
                         code="iss_missing")
    if not login_hint:
        raise LoginError("The login request has no login_hint.", code="login_hint_missing")
    check_target(params.get("target_link_uri"), launch_url)
    # The login writes nothing and the launch checks everything again with the registry read
    # afresh, so a version read in the last second will do: most logins touch no database.
    known = registry.view(session, max_age=LOGIN_REGISTRY_AGE)
    reg = known.find_for_login(iss, client_id)
    if reg is None:
        who = f"issuer {iss!r}" + (f" and client id {client_id!r}" if client_id else "")
        raise RegistrationNotFound(
            f"No platform registration matches {who}.",
            hint="An administrator registers the platform with `flask --app app platform add` "
                 "(see the README, 'Register the tool in Canvas, step by step').",
            code="unknown_registration")
    deployment_id = params.get("lti_deployment_id") or params.get("deployment_id")
    if deployment_id:  # refuse an unknown deployment early, with the same clear page as the launch
        if known.deployment(reg.id, deployment_id) is None and not reg.accepts_any_deployment:
            raise registrations.unknown_deployment(reg, deployment_id)
    # Canvas offers its storage frame (facts section 10); the state records it for the launch.
    storage = states.storage_for(params.get("lti_storage_target"), reg.auth_login_url)
    state, nonce = states.issue(reg.id, secret_key, storage)
    query = {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
        "client_id": reg.client_id,
        "redirect_uri": launch_url,
        "login_hint": login_hint,
        "state": state,
        "nonce": nonce,
    }
    if params.get("lti_message_hint"):
        query["lti_message_hint"] = params["lti_message_hint"]
    return LoginRedirect(state=state, nonce=nonce, storage=storage, endpoint=reg.auth_login_url,
                         params=query)
