"""Registering platforms: add, update and remove registrations and their deployments.

What an administrator types is checked here; the lookups themselves are ``tool/registrations.py``.

Canvas's well-known endpoints (facts sheet section 1) fill in a registration from the school's
URL alone. Platform URLs must be https, except on loopback hosts for local trials and the emulator.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import is_loopback

from . import registrations, registry
from .errors import ToolError
from .models import Context, Deployment, Registration, User

CANVAS_ISSUERS = {
    "prod": "https://canvas.instructure.com",
    "beta": "https://canvas.beta.instructure.com",
    "test": "https://canvas.test.instructure.com",
}
CANVAS_SSO = {"prod": "https://sso.canvaslms.com", "beta": "https://sso.beta.canvaslms.com",
              "test": "https://sso.test.canvaslms.com"}
# Hosted Canvas serves each school's beta and test copies under these suffixes (facts sheet section 1).
CANVAS_ENV_SUFFIXES = {".beta.instructure.com": "beta", ".test.instructure.com": "test"}
# The longest identifier the tool accepts from a command line, as at launch.
MAX_IDENTIFIER = 255


@dataclass
class PlatformSpec:
    issuer: str
    client_id: str
    auth_login_url: str
    auth_token_url: str
    key_set_url: str
    name: str = ""
    # The school's own address (Canvas: the URL given to --canvas); pages may be framed by it.
    platform_url: str | None = None
    # How it is added: "manual", "dynamic" or "sandbox"; None keeps what is stored.
    source: str | None = None


@dataclass
class Saved:
    """What ``save_platform`` did: created, or the list of changes (empty: unchanged)."""

    registration: Registration
    created: bool
    changes: list[str] = field(default_factory=list)


def platform_origin(url: str, what: str = "Canvas URL", option: str = "--canvas") -> str:
    """The school's platform origin from what was typed; a path, query or login is refused.

    Canvas's token endpoint is ``<origin>/login/oauth2/token`` (facts sheet section 1), so a URL
    copied from a course page (``/courses/5``) would make every token request fail later; and a
    browser compares frame-ancestors by origin only.
    """
    raw = (url or "").strip()
    parts = urlsplit(raw if "://" in raw else "https://" + raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"{what} {url!r} is not a web address.",
                        hint="Give the school's address, such as https://school.instructure.com.")
    try:
        parts.port
    except ValueError:
        raise ToolError(f"{what} {url!r} has an invalid port.") from None
    origin = f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1].lower()}"
    if "://" not in raw:
        raise ToolError(f"{what} {url!r} has no scheme.", hint=f"Use {option} {origin}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
        raise ToolError(f"{what} {url!r} must be the school's address alone, without a path.",
                        hint=f"Use {option} {origin}")
    check_url(origin, what)
    return origin


def canvas_environment(origin: str) -> str:
    """prod, beta or test, from a hosted school's address (``school.beta.instructure.com``)."""
    host = urlsplit(origin).hostname or ""
    for suffix, environment in CANVAS_ENV_SUFFIXES.items():
        if host.endswith(suffix):
            return environment
    return "prod"


def canvas_environment_of(issuer: str) -> str:
    return next((env for env, known in CANVAS_ISSUERS.items() if known == issuer), "self-hosted")


def canvas_spec(school_url: str, client_id: str, environment: str | None = None) -> PlatformSpec:
    """Canvas's issuer, auth, JWKS and token URLs for a school's Canvas (facts sheet section 1).

    The beta and test copies of a hosted Canvas have their own issuer and endpoints; they are
    chosen from the address unless ``environment`` says otherwise.
    """
    school = platform_origin(school_url)
    environment = environment or canvas_environment(school)
    sso = CANVAS_SSO[environment]
    return PlatformSpec(issuer=CANVAS_ISSUERS[environment], client_id=client_id,
                        auth_login_url=f"{sso}/api/lti/authorize_redirect",
                        auth_token_url=f"{school}/login/oauth2/token",
                        key_set_url=f"{sso}/api/lti/security/jwks", platform_url=school)


def check_url(url: str, what: str) -> None:
    """An absolute http(s) URL; https unless the host is loopback (local trials, the emulator)."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ToolError(f"{what} {url!r} is not an absolute http(s) URL.")
    if parts.scheme != "https" and not is_loopback(parts.hostname):
        raise ToolError(f"{what} {url!r} must use https (plain http is allowed only on 127.0.0.1 "
                        f"and localhost).")


def check_identifier(value: str, what: str) -> str:
    """Ids an administrator types must be ones a launch can carry: printable, at most 255 characters."""
    value = (value or "").strip()
    if not value:
        raise ToolError(f"{what} cannot be empty.")
    if len(value) > MAX_IDENTIFIER or not value.isprintable():
        shown = repr(value[:40]) + ("..." if len(value) > 40 else "")
        raise ToolError(f"{what} {shown} is not a platform identifier (printable, at most "
                        f"{MAX_IDENTIFIER} characters).")
    return value


def _default_name(spec: PlatformSpec) -> str:
    return urlsplit(spec.platform_url).hostname if spec.platform_url else spec.issuer


def save_platform(session: Session, spec: PlatformSpec, deployment_ids: list[str] = (), *,
                  any_deployment: bool = False, match_email: bool = False) -> Saved:
    """Create or update the registration for (issuer, client_id), add deployments, say what changed.

    Options left out keep their stored value: a repeated ``platform add`` without ``--name`` or
    ``--any-deployment`` does not undo an earlier one.
    """
    if not spec.issuer or not spec.client_id:
        raise ToolError("Both an issuer and a client id are needed.")
    spec.client_id = check_identifier(spec.client_id, "The client id")
    spec.issuer = check_identifier(spec.issuer, "The issuer")
    check_url(spec.issuer, "Issuer")
    for url, what in ((spec.auth_login_url, "Auth login URL"), (spec.auth_token_url, "Token URL"),
                      (spec.key_set_url, "Key set URL")):
        check_url(url, what)
    if spec.platform_url:
        check_url(spec.platform_url, "Platform URL")
    deployment_ids = [check_identifier(d, "A deployment id") for d in deployment_ids]
    reg = registrations.find(session, spec.issuer, spec.client_id)
    created = reg is None
    if created:
        reg = Registration(issuer=spec.issuer, client_id=spec.client_id)
        session.add(reg)
    wanted = {
        "name": spec.name or reg.name or _default_name(spec),
        "auth_login_url": spec.auth_login_url,
        "auth_token_url": spec.auth_token_url,
        "key_set_url": spec.key_set_url,
        "platform_url": spec.platform_url or reg.platform_url,
        "accepts_any_deployment": any_deployment or bool(reg.accepts_any_deployment),
        "matches_by_email": match_email or bool(reg.matches_by_email),
        "source": spec.source or reg.source or "manual",
    }
    changes = []
    for attr, value in wanted.items():
        before = getattr(reg, attr)
        if not created and before != value:
            changes.append(f"{FIELD_NAMES[attr]} {_shown(before)} -> {_shown(value)}")
        setattr(reg, attr, value)
    session.flush()
    for deployment_id in deployment_ids:
        if registrations.find_deployment(session, reg, deployment_id) is None:
            registrations.add_deployment(session, reg, deployment_id)
            if not created:
                changes.append(f"deployment {deployment_id} added")
    if created or changes:
        registry.bump(session)  # every process reads the registration again
    session.commit()
    return Saved(reg, created, changes)


FIELD_NAMES = {"name": "name", "auth_login_url": "auth login URL", "auth_token_url": "token URL",
               "key_set_url": "key set URL", "platform_url": "platform URL",
               "accepts_any_deployment": "any deployment", "matches_by_email": "match by email",
               "source": "source"}


def _shown(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "(none)" if value in (None, "") else str(value)


def add_platform(session: Session, spec: PlatformSpec, deployment_ids: list[str] = (), *,
                 any_deployment: bool = False, match_email: bool = False) -> Registration:
    """Create or update the registration for (issuer, client_id) and add deployments."""
    return save_platform(session, spec, deployment_ids, any_deployment=any_deployment,
                         match_email=match_email).registration


def add_deployment(session: Session, reg: Registration, deployment_id: str) -> Deployment:
    """Allow launches from one more deployment an administrator named (checked first)."""
    return registrations.add_deployment(session, reg, check_identifier(deployment_id, "A deployment id"))


def provisioned(session: Session, reg: Registration) -> dict[str, int]:
    """What removing ``reg`` takes with it: counts of deployments, users and courses."""
    def count(model) -> int:
        return session.scalar(select(func.count()).select_from(model).where(
            model.registration_id == reg.id)) or 0
    return {"deployment": count(Deployment), "user": count(User), "course": count(Context)}


def remove_platform(session: Session, issuer: str, client_id: str) -> None:
    """Delete a registration; its deployments, users, courses, memberships and page sessions go
    with it (foreign keys ON DELETE CASCADE)."""
    session.delete(registrations.get(session, issuer, client_id))
    registry.bump(session)  # every process refuses its launches from the next one on
    session.commit()
