"""Launch validation: the id_token a platform form-posts to ``/lti/launch``, checked completely.

Each step enforces one rule and fails with a reason an admin can act on (LTI 1.3 core §5.1.2,
§5.3, §5.4; Security Framework §5.1.3). The JWT is verified here with ``cryptography`` and the
platform's key object kept in memory (RFC 7515 §5.2, RS256 only); the per-message-type rules are
pylti1p3's validators. pylti1p3's own signature, audience, time, nonce and state checks are not
used: they skip ``aud``/``azp``, accept tokens without ``exp``/``iat``, have no leeway, and never
spend a nonce (pylti1p3 notes). Registrations and deployments come from the process's registry
(``tool/registry.py``), which reads one version number per launch.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from pylti1p3.exception import LtiException
from pylti1p3.message_validators import get_validators
from sqlalchemy.orm import Session

from .. import registrations, registry
from ..registry import DeploymentRecord, RegistrationRecord
from . import claims as c
from . import deep_linking, states
from .claims import Launch
from .errors import LaunchError, RegistrationNotFound
from .platform_keys import PlatformKeyCache


@dataclass
class LaunchSettings:
    leeway: int = 60
    # Both default to the Flask app's SECRET_KEY and LOGIN_STATE_TTL when not given.
    secret_key: str | None = None
    state_ttl: int | None = None


class _Rejected(Exception):
    """The token failed a check of its encoding or claims (the reason is shown as is)."""


_B64URL = re.compile(rb"[A-Za-z0-9_-]*")
_VALIDATORS = get_validators()  # pylti1p3's per-message-type validators hold no state
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def _lenient_part(part: str) -> Any:
    """A header or payload as a permissive decoder reads it (padding added, then JSON)."""
    padded = part + "=" * (-len(part) % 4)
    return json.loads(base64.b64decode(padded.translate(_URLSAFE)).decode("utf-8"))


_URLSAFE = str.maketrans("-_", "+/")


def _segment(segment: bytes, name: str) -> bytes:
    """A strict base64url segment (RFC 7515 §2): its alphabet, canonical, at most 2 pad characters."""
    stripped = segment.rstrip(b"=")
    pad = len(segment) - len(stripped)
    if pad > 2 or (pad and len(segment) % 4) or len(stripped) % 4 == 1 \
            or not _B64URL.fullmatch(stripped):
        raise _Rejected(f"Invalid {name} padding")
    try:
        decoded = base64.urlsafe_b64decode(stripped + b"=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _Rejected(f"Invalid {name} padding") from exc
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != stripped:
        raise _Rejected(f"Invalid {name} padding")
    return decoded


def _integer(payload: dict, claim: str, what: str) -> int:
    try:
        return int(payload[claim])
    except (ValueError, TypeError, OverflowError):
        raise _Rejected(f"{what} claim ({claim}) must be an integer.") from None


class _Expired(Exception):
    pass


class _Immature(Exception):
    pass


class _CheckedLaunch:
    """The tool's validation chain over one launch form."""

    def __init__(self, form: Mapping[str, str], session: Session, keys: PlatformKeyCache,
                 settings: LaunchSettings) -> None:
        self.form = form
        self.db = session
        self.keys = keys
        self.settings = settings
        self.registry = None
        self.header: dict = {}
        self.body: dict = {}
        self.registration: RegistrationRecord | None = None
        self.client_id = ""
        self.deployment: DeploymentRecord | None = None
        self.login: states.IssuedState | None = None

    def _param(self, key: str) -> str:
        return self.form.get(key) or ""

    # -- the chain ------------------------------------------------------------------------
    def run(self) -> Launch:
        self.check_form()
        self.check_format()
        self.check_header()
        self.check_registration()
        self.check_state()
        self.check_signature()
        # Everything below reads a token the platform signed.
        self.check_claims()
        self.check_deployment()
        self.check_message()
        body = self.body
        # Spent before it is compared with the state's, so a replayed id_token is named as such
        # even when it comes with a fresh state; a refused launch is rolled back, spend included.
        version = states.spend_nonce(self.db, body["nonce"], self.registration.id)
        if not registry.confirm(self.registry, version):
            # Registrations changed since this process last read them (the spend read the
            # version): everything that depends on them is checked again against the database.
            self.check_registration(held=False)
            self.check_state()
            self.check_signature()
            self.check_deployment()
        states.check_nonce(self.login, body["nonce"])
        deployment_pk = self.deployment.id if self.deployment is not None else None
        if deployment_pk is None:  # an any-deployment registration meets a new deployment
            deployment_pk = registrations.record_deployment(self.db, self.registration,
                                                            body[c.DEPLOYMENT_ID]).id
        return Launch(registration_id=self.registration.id, issuer=body["iss"],
                      client_id=self.client_id, deployment_id=body[c.DEPLOYMENT_ID],
                      message_type=body[c.MESSAGE_TYPE], sub=body["sub"],
                      roles=launch_roles(body[c.ROLES]), body=body,
                      nonce=body["nonce"],
                      deployment_pk=deployment_pk, registration=self.registration)

    def check_form(self) -> None:
        if not self._param("id_token"):
            raise LaunchError("The launch form has no id_token.",
                              hint="The platform must form-post id_token and state to /lti/launch.",
                              code="id_token_missing")
        if not self._param("state"):
            raise LaunchError("The launch form has no state, so it cannot be matched to a login.",
                              hint="Launch the tool from the course; /lti/launch cannot be opened directly.",
                              code="state_missing")

    def check_format(self) -> None:
        """Three base64url-encoded JSON parts (RFC 7519 §7.2), header and payload objects."""
        parts = self._param("id_token").split(".")
        try:
            if len(parts) != 3:
                raise ValueError("a JWT has 3 parts")
            header, body = _lenient_part(parts[0]), _lenient_part(parts[1])
        except Exception as exc:  # any decoding or JSON failure: not a JWT
            raise LaunchError("The id_token is not a valid JWT (three base64url-encoded JSON parts).",
                              code="id_token_malformed") from exc
        if not isinstance(header, dict) or not isinstance(body, dict):
            raise LaunchError("The id_token header or payload is not a JSON object.", code="id_token_malformed")
        self.header, self.body = header, body

    def check_header(self) -> None:
        header = self.header
        alg = header.get("alg")
        if alg != "RS256":
            raise LaunchError(f"The id_token is signed with alg {alg!r}; LTI 1.3 requires RS256.",
                              hint="Unsigned (alg none) and HMAC-signed id_tokens are never accepted.",
                              code="alg_not_allowed")
        if not header.get("kid"):
            raise LaunchError("The id_token header has no key id (kid), so its signing key cannot be found.",
                              code="kid_missing")
        _identifier(header["kid"], "header's kid")

    def check_registration(self, held: bool = True) -> None:
        """The issuer and audience name a registration; ``held``: as this process holds the
        registry (confirmed by the version the nonce's spend reads), else as stored now."""
        body = self.body
        iss = body.get("iss")
        if not iss or not isinstance(iss, str):
            raise LaunchError("The id_token has no issuer (iss).", code="iss_missing")
        _identifier(iss, "iss")
        aud = body.get("aud")
        auds = [aud] if isinstance(aud, str) else list(aud) if isinstance(aud, list) else []
        if not auds:
            raise LaunchError("The id_token has no audience (aud).", code="aud_missing")
        for value in auds:
            _identifier(value, "aud")
        if body.get("azp") is not None:
            _identifier(body["azp"], "azp")
        self.registry = registry.held_or_read(self.db) if held else registry.view(self.db)
        known = self.registry.of_issuer(iss)
        if not known:
            raise RegistrationNotFound(
                f"No platform with issuer {iss!r} is registered with this tool.",
                hint="Register it: `flask --app app platform add --issuer ... --client-id ...` "
                     "(or `--canvas https://school.instructure.com`).", code="unknown_issuer")
        matches = [r for r in known if r.client_id in auds]
        if not matches:
            raise RegistrationNotFound(
                f"The id_token's audience {auds!r} contains no client id registered for issuer {iss!r}.",
                hint="Check the developer key's client id, then `flask --app app platform list`.",
                code="unknown_client_id")
        self.registration = matches[0]
        self.client_id = self.registration.client_id
        if len(auds) > 1 and body.get("azp") != self.client_id:
            raise LaunchError("The id_token has several audiences but its authorized party (azp) is not "
                              "this tool's client id.", code="azp_mismatch")
        if body.get("azp") is not None and body.get("azp") != self.client_id:
            raise LaunchError("The id_token's authorized party (azp) is not this tool's client id.",
                              code="azp_mismatch")

    def check_state(self) -> None:
        """The state was issued by this tool's login, is young enough, and for this registration."""
        self.login = states.read_state(self._param("state"), self.registration.id,
                                       secret_key=self.settings.secret_key,
                                       max_age=self.settings.state_ttl)

    def check_signature(self) -> None:
        """RS256 over the token as sent (RFC 7515 §5.2), then exp, iat, nbf, iss and aud (RFC 7519 §4.1)."""
        key = self.keys.public_key(self.registration.key_set_url, self.header["kid"])
        leeway = self.settings.leeway
        try:
            token = self._param("id_token").encode("utf-8")
            signing_input, _, signature = token.rpartition(b".")
            header_part, _, payload_part = signing_input.partition(b".")
            _segment(header_part, "header")
            _segment(payload_part, "payload")
            try:
                key.verify(_segment(signature, "crypto"), signing_input, _PKCS1, _SHA256)
            except InvalidSignature:
                raise LaunchError("The id_token's signature does not verify with the platform's key: it "
                                  "was altered or not signed by this platform.",
                                  code="bad_signature") from None
            payload = self.body
            for claim in ("exp", "iat"):
                if payload.get(claim) is None:
                    raise LaunchError(f"The id_token has no {claim!r} claim; exp and iat are required.",
                                      code="timestamp_missing")
            now = time.time()
            if _integer(payload, "iat", "Issued At") > now + leeway:
                raise _Immature()
            if "nbf" in payload and _integer(payload, "nbf", "Not Before") > now + leeway:
                raise _Immature()
            if _integer(payload, "exp", "Expiration Time") <= now - leeway:
                raise _Expired()
            if payload.get("iss") != self.registration.issuer:
                raise _Rejected("Invalid issuer")
            auds = payload.get("aud")
            auds = [auds] if isinstance(auds, str) else auds
            if not isinstance(auds, list) or any(not isinstance(a, str) for a in auds):
                raise _Rejected("Invalid claim format in token")
            if self.client_id not in auds:
                raise LaunchError("The id_token's audience is not this tool's client id.",
                                  code="aud_mismatch")
        except _Expired:
            raise LaunchError("The id_token has expired (exp is in the past).",
                              hint="Launch again; if it keeps happening, check the platform's clock.",
                              code="token_expired") from None
        except _Immature:
            raise LaunchError(f"The id_token was issued in the future (iat more than "
                              f"{leeway} s ahead of this tool's clock).",
                              hint="Check the clocks of the platform and of this server (NTP).",
                              code="token_issued_in_future") from None
        except _Rejected as exc:
            raise LaunchError(f"The id_token was rejected: {exc}.", code="token_invalid") from None

    def check_claims(self) -> None:
        body = self.body
        nonce = body.get("nonce")
        if not nonce:
            raise LaunchError("The id_token has no nonce.", code="nonce_missing")
        _identifier(nonce, "nonce")
        version = body.get(c.VERSION)
        if version is None:
            raise LaunchError("The id_token has no LTI version claim; this tool speaks LTI 1.3.0.",
                              code="version_missing")
        if version != "1.3.0":
            raise LaunchError(f"The id_token's LTI version is {version!r}; this tool requires 1.3.0.",
                              code="version_wrong")
        message_type = body.get(c.MESSAGE_TYPE)
        if not message_type:
            raise LaunchError("The id_token has no message_type claim.", code="message_type_missing")
        if not isinstance(message_type, str) or message_type not in c.MESSAGE_TYPES:
            raise LaunchError(f"The message type {message_type!r} is not one this tool handles.",
                              code="message_type_unknown")
        if not body.get(c.DEPLOYMENT_ID):
            raise LaunchError("The id_token has no deployment_id claim.", code="deployment_id_missing")
        _identifier(body[c.DEPLOYMENT_ID], "deployment_id")
        if not body.get("sub") or not isinstance(body.get("sub"), str):
            raise LaunchError("The id_token has no user (sub claim); anonymous launches are not supported.",
                              code="sub_missing")
        _identifier(body["sub"], "sub")
        if c.ROLES not in body or not isinstance(body[c.ROLES], list):
            raise LaunchError("The id_token has no roles claim (it may be an empty list, but must be present).",
                              code="roles_missing")
        if c.CONTEXT in body:
            context = body[c.CONTEXT]
            if isinstance(context, dict) and isinstance(context.get("id"), str):
                _identifier(context["id"], "context id")
            if not isinstance(context, dict) or not c.clean(context.get("id")):
                raise LaunchError("The id_token's context claim has no id (core §5.4.1 requires one).",
                                  code="context_invalid")
            _identifier(c.clean(context["id"]), "context id")
        link = body.get(c.RESOURCE_LINK)
        if isinstance(link, dict) and isinstance(link.get("id"), str):
            _identifier(link["id"], "resource_link id")
        if message_type == "LtiResourceLinkRequest" and (not isinstance(link, dict) or not c.clean(link.get("id"))):
            raise LaunchError("The resource link launch has no resource_link id.",
                              code="resource_link_missing")
        if isinstance(link, dict) and c.clean(link.get("id")):
            _identifier(c.clean(link["id"]), "resource_link id")

    def check_deployment(self) -> None:
        """A known deployment, or None when the registration accepts any (recorded at the end)."""
        deployment_id = self.body[c.DEPLOYMENT_ID]
        self.deployment = self.registry.deployment(self.registration.id, deployment_id)
        if self.deployment is None and not self.registration.accepts_any_deployment:
            raise registrations.unknown_deployment(self.registration, deployment_id)

    def check_message(self) -> None:
        body = self.body
        if body.get(c.MESSAGE_TYPE) == deep_linking.REQUEST:  # the tool's words, not the library's
            deep_linking.check_accepts_links(body.get(c.DEEP_LINKING_SETTINGS))
        try:
            _validate_message(body)
        except LtiException as exc:
            raise LaunchError(f"The launch message is incomplete: {exc}.", code="message_invalid") from exc


def _validate_message(body: dict) -> None:
    """pylti1p3's per-message-type validators, applied as its ``MessageLaunch.validate_message``."""
    if not body.get(c.MESSAGE_TYPE):
        raise LtiException("Invalid message type")
    validated = False
    for validator in _VALIDATORS:
        if validator.can_validate(body):
            if validated:
                raise LtiException("Validator conflict")
            validated = True
            if not validator.validate(body):
                raise LtiException("Message validation failed")
    if not validated:
        raise LtiException("Unrecognized message type")


def _identifier(value, name: str) -> None:
    """Identifiers are strings of at most 255 characters without control characters (core §5.3)."""
    problem = c.identifier_problem(value)
    if problem:
        raise LaunchError(f"The id_token's {name} {problem}.",
                          hint="Identifiers are strings of at most 255 characters without control "
                               "characters; this launch was not sent by a working platform.",
                          code="identifier_invalid")


def launch_roles(value: list) -> list[str]:
    """The roles claim's text values; one with control characters is no role URI and is dropped."""
    out = []
    for role in value:
        if isinstance(role, str):
            role = role.strip()
            if role and role.isprintable():
                out.append(role)
    return out


def validate_launch(form: Mapping[str, str], session: Session, keys: PlatformKeyCache,
                    settings: LaunchSettings) -> Launch:
    """Validate a launch form; return the typed Launch or raise LaunchError with the reason."""
    return _CheckedLaunch(form, session, keys, settings).run()
