"""The platform's OpenID configuration (DR 1.0, step 2: discovery), read and checked.

The tool refuses a platform that cannot run it: no RS256 launches, no resource link or deep
linking messages, endpoints off https, or a configuration whose issuer is not the prefix of
the address it came from. Services the platform does not offer (NRPS, AGS scopes) are left
out of the registration and named on the confirmation page.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from config import is_loopback

from .. import ags, nrps
from ..claims import plausible_identifier
from .calls import RegistrationRefused, call, json_object, text

PLATFORM_CONFIGURATION = "https://purl.imsglobal.org/spec/lti-platform-configuration"
CANVAS_ACCOUNT_NAME = "https://canvas.instructure.com/lti/account_name"
RESOURCE_LINK = "LtiResourceLinkRequest"
DEEP_LINKING = "LtiDeepLinkingRequest"

# (placement, message type, what it gives people): Canvas placements, as in /lti/canvas.json.
PLACEMENTS = (
    ("course_navigation", RESOURCE_LINK, "a course menu item: the roster and the gradebook"),
    ("assignment_selection", DEEP_LINKING, "choosing an assessment as an assignment"),
    ("link_selection", DEEP_LINKING, "adding an assessment as a module item"),
)
SCOPE_USES = {
    nrps.SCOPE: "reading the course roster",
    ags.SCOPE_LINEITEM: "creating and updating gradebook columns",
    ags.SCOPE_LINEITEM_READONLY: "reading gradebook columns",
    ags.SCOPE_RESULT_READONLY: "reading grades back from the gradebook",
    ags.SCOPE_SCORE: "sending grades to the gradebook",
}
TOOL_SCOPES = (*ags.ALL_SCOPES, nrps.SCOPE)
ENDPOINTS = (("authorization_endpoint", "authorization endpoint"),
             ("token_endpoint", "token endpoint"), ("jwks_uri", "key set (jwks_uri)"),
             ("registration_endpoint", "registration endpoint"))
MAX_URL = 2048
MAX_TOKEN = 8192
MAX_LIST = 500


@dataclass
class PlatformConfiguration:
    """The parts of a platform's OpenID configuration the tool uses, cleaned and bounded."""

    url: str
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    registration_endpoint: str
    product: str = ""
    version: str = ""
    account_name: str = ""
    scopes: list[str] = field(default_factory=list)  # the tool's scopes the platform offers
    missing_scopes: list[str] = field(default_factory=list)
    placements: dict[str, list[str] | None] = field(default_factory=dict)  # None: not listed
    claims_supported: list[str] | None = None

    @property
    def is_canvas(self) -> bool:
        return self.product.lower() == "canvas"

    @property
    def name(self) -> str:
        """What to call the platform: Canvas's account name, else product and host."""
        if self.account_name:
            return self.account_name
        host = urlsplit(self.issuer).hostname or self.issuer
        return text(f"{self.product or 'LTI platform'} at {host}")

    @property
    def platform_url(self) -> str:
        """The school's own origin: Canvas serves the registration endpoint on the school's
        domain even when the issuer is the shared ``https://canvas.instructure.com``."""
        parts = urlsplit(self.registration_endpoint)
        return f"{parts.scheme}://{parts.netloc}"

    def unoffered_placements(self) -> list[str]:
        """Our placements that a platform listing its placements does not list."""
        return [p for p, kind, _ in PLACEMENTS
                if self.placements.get(kind) is not None and p not in self.placements[kind]]


def check_url(url: str, what: str, tool_base_url: str) -> str:
    """An absolute https URL; http only when both the tool and this URL are on loopback."""
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        raise RegistrationRefused(f"The platform's {what} {text(url, 300)!r} is not an absolute "
                                  f"http(s) address.", code="bad_endpoint",
                                  hint="The platform's configuration is wrong; tell its administrator.")
    if parts.scheme != "https" and not (is_loopback(parts.hostname)
                                        and is_loopback(urlsplit(tool_base_url).hostname)):
        raise RegistrationRefused(
            f"The platform's {what} {text(url, 300)!r} does not use https.", code="endpoint_not_https",
            hint="LTI needs https between platform and tool; plain http is accepted only when "
                 "both run on this machine (127.0.0.1 or localhost) for a trial.")
    return url


def _origin(parts) -> tuple:
    default = 443 if parts.scheme == "https" else 80
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def issuer_matches(config_url: str, issuer: str) -> bool:
    """DR 1.0 (issuer and configuration URL match): the configuration URL begins with the
    issuer, compared as URLs.

    Same scheme, host and port, and the issuer's path (``/moodle`` for a platform in a
    folder) is a whole-segment prefix of the configuration's path: a plain string prefix
    would let ``https://canvas.instructure.com.evil.example`` pass.
    """
    c, i = urlsplit(config_url), urlsplit(issuer)
    if i.query or i.fragment or "@" in i.netloc or _origin(c) != _origin(i):
        return False
    prefix = i.path.rstrip("/")
    return not prefix or c.path == prefix or c.path.startswith(prefix + "/")


def _texts(value) -> list[str]:
    return [t for t in (text(v, 300) for v in value[:MAX_LIST]) if t] if isinstance(value, list) else []


def _messages(value) -> dict[str, list[str] | None]:
    """``messages_supported`` as {type: placements or None}; plain strings are types too."""
    found: dict[str, list[str] | None] = {}
    for entry in value[:MAX_LIST] if isinstance(value, list) else []:
        if isinstance(entry, str):
            found.setdefault(text(entry, 100), None)
        elif isinstance(entry, dict) and isinstance(entry.get("type"), str):
            listed = entry.get("placements")
            found[text(entry["type"], 100)] = _texts(listed) if isinstance(listed, list) else None
    return found


def _check_request(url: str, token: str | None, tool_base_url: str) -> None:
    if not url or len(url) > MAX_URL:
        raise RegistrationRefused("The registration request has no usable openid_configuration "
                                  "address.", code="configuration_missing",
                                  hint="Start the registration from the platform: it adds the address.")
    if token is not None and (len(token) > MAX_TOKEN or not token.isprintable() or not token.isascii()):
        raise RegistrationRefused("The registration token is not one a platform would send.",
                                  code="bad_token", hint="Start the registration again from the platform.")
    check_url(url, "configuration address", tool_base_url)


def _check_capabilities(data: dict) -> dict:
    """RS256 launches, signed client assertions and both message types; the LTI object."""
    if "RS256" not in _texts(data.get("id_token_signing_alg_values_supported")):
        raise RegistrationRefused("The platform does not say it signs launches with RS256 "
                                  "(id_token_signing_alg_values_supported), which LTI 1.3 requires.",
                                  code="rs256_missing")
    auth_methods = data.get("token_endpoint_auth_methods_supported")
    if auth_methods is not None and "private_key_jwt" not in _texts(auth_methods):
        raise RegistrationRefused("The platform does not accept signed client assertions "
                                  "(private_key_jwt) at its token endpoint, which LTI services need.",
                                  code="private_key_jwt_missing")
    lti = data.get(PLATFORM_CONFIGURATION)
    if not isinstance(lti, dict):
        raise RegistrationRefused("The platform's configuration has no LTI platform configuration "
                                  f"({PLATFORM_CONFIGURATION}).", code="not_lti_platform",
                                  hint="This address is not an LTI 1.3 platform's registration.")
    offered = _messages(lti.get("messages_supported"))
    missing = [kind for kind in (RESOURCE_LINK, DEEP_LINKING) if kind not in offered]
    if missing:
        raise RegistrationRefused(f"The platform does not offer the message types the tool needs: "
                                  f"{', '.join(missing)}.", code="message_type_missing",
                                  hint="The tool opens from course navigation (resource links) and "
                                       "adds assessments by deep linking; both are required.")
    return lti


def fetch_configuration(url: str, token: str | None, *, tool_base_url: str,
                        timeout: tuple[float, float]) -> PlatformConfiguration:
    """Read the platform's OpenID configuration and check it (DR 1.0, step 2)."""
    _check_request(url, token, tool_base_url)
    data = json_object(*call("GET", url, token, timeout, "configuration"), "configuration",
                       refused_code="configuration_unavailable")
    issuer = data.get("issuer")
    if not plausible_identifier(issuer) or not issuer_matches(url, issuer):
        raise RegistrationRefused(
            f"The platform's issuer {text(issuer, 300)!r} does not match the address its "
            f"configuration came from ({text(url, 300)!r}).", code="issuer_mismatch",
            hint="The configuration must be served under the issuer's own address. "
                 "A self-hosted Canvas needs its issuer (lti_iss in security.yml) set to its own address.")
    endpoints = {}
    for key, what in ENDPOINTS:
        value = data.get(key)
        if not isinstance(value, str) or not value or len(value) > 1000:
            raise RegistrationRefused(f"The platform's configuration has no usable {key}.",
                                      code="endpoint_missing",
                                      hint="The platform does not offer LTI Dynamic Registration fully.")
        endpoints[key] = check_url(value, what, tool_base_url)
    lti = _check_capabilities(data)
    listed = data.get("scopes_supported")
    # A platform that lists no scopes is asked for all; it grants what it has.
    offered = set(_texts(listed)) if isinstance(listed, list) else set(TOOL_SCOPES)
    claims = data.get("claims_supported")
    return PlatformConfiguration(
        url=url, issuer=issuer, **endpoints, product=text(lti.get("product_family_code"), 100),
        version=text(lti.get("version"), 100), account_name=text(lti.get(CANVAS_ACCOUNT_NAME)),
        scopes=[s for s in TOOL_SCOPES if s in offered],
        missing_scopes=[s for s in TOOL_SCOPES if s not in offered],
        placements=_messages(lti.get("messages_supported")),
        claims_supported=_texts(claims) if isinstance(claims, list) else None)
