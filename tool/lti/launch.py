"""Launch validation: the id_token a platform form-posts to ``/lti/launch``, checked completely.

Each step enforces one rule and fails with a reason an admin can act on (LTI 1.3 core §5.1.2,
§5.3, §5.4; Security Framework §5.1.3). pylti1p3's ``MessageLaunch`` parses the JWT and runs its
message validators, but its signature, audience, time, nonce and state checks are replaced:
they skip ``aud``/``azp``, accept tokens without ``exp``/``iat``, have no leeway, and never
spend a nonce (pylti1p3 notes).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import jwt
from pylti1p3.exception import LtiException
from pylti1p3.message_launch import MessageLaunch
from pylti1p3.request import Request
from pylti1p3.session import SessionService
from sqlalchemy.orm import Session

from .. import registrations
from ..models import Deployment, Registration
from . import claims as c
from . import deep_linking, states
from .claims import Launch
from .errors import LaunchError, PlatformError, RegistrationNotFound
from .platform_keys import PlatformKeyCache
from .toolconf import DatabaseToolConf


@dataclass
class LaunchSettings:
    leeway: int = 60
    # Both default to the Flask app's SECRET_KEY and LOGIN_STATE_TTL when not given.
    secret_key: str | None = None
    state_ttl: int | None = None


class _FormRequest(Request):
    def __init__(self, form: Mapping[str, str]) -> None:
        self.form = form

    @property
    def session(self) -> dict:  # pylti1p3 wants one; nothing is stored in it
        return {}

    def is_secure(self) -> bool:
        return True

    def get_param(self, key: str) -> str:
        return self.form.get(key) or ""


class _NoCookies:
    def get_cookie(self, name: str) -> None:
        return None

    def set_cookie(self, *args: Any, **kwargs: Any) -> None:
        return None


class _CheckedLaunch(MessageLaunch):
    """pylti1p3's MessageLaunch with the tool's validation chain."""

    def __init__(self, form: Mapping[str, str], session: Session, keys: PlatformKeyCache,
                 settings: LaunchSettings) -> None:
        request = _FormRequest(form)
        conf = DatabaseToolConf(session)
        super().__init__(request, conf, session_service=SessionService(request),
                         cookie_service=_NoCookies())
        self.db = session
        self.keys = keys
        self.settings = settings
        self.registration: Registration | None = None
        self._registration = None
        self.client_id = ""
        self.deployment: Deployment | None = None
        self.login: states.IssuedState | None = None

    def _get_request_param(self, key: str) -> str:
        return self._request.get_param(key)

    # -- the chain ------------------------------------------------------------------------
    def run(self) -> Launch:
        self._validated = True  # stop pylti1p3 from auto-running its own validate()
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
        body = self._jwt["body"]
        # Spent before it is compared with the state's, so a replayed id_token is named as such
        # even when it comes with a fresh state; a refused launch is rolled back, spend included.
        states.spend_nonce(self.db, body["nonce"], self.registration.id)
        states.check_nonce(self.login, body["nonce"])
        if self.deployment is None:  # an any-deployment registration meets a new deployment
            self.deployment = registrations.record_deployment(self.db, self.registration,
                                                              body[c.DEPLOYMENT_ID])
        return Launch(registration_id=self.registration.id, issuer=body["iss"],
                      client_id=self.client_id, deployment_id=body[c.DEPLOYMENT_ID],
                      message_type=body[c.MESSAGE_TYPE], sub=body["sub"],
                      roles=launch_roles(body[c.ROLES]), body=body,
                      nonce=body["nonce"],
                      deployment_pk=self.deployment.id, registration=self.registration)

    def check_form(self) -> None:
        if not self._get_request_param("id_token"):
            raise LaunchError("The launch form has no id_token.",
                              hint="The platform must form-post id_token and state to /lti/launch.",
                              code="id_token_missing")
        if not self._get_request_param("state"):
            raise LaunchError("The launch form has no state, so it cannot be matched to a login.",
                              hint="Launch the tool from the course; /lti/launch cannot be opened directly.",
                              code="state_missing")

    def check_format(self) -> None:
        try:
            self.validate_jwt_format()  # pylti1p3: three parts, base64url JSON header and body
        except LtiException as exc:
            raise LaunchError("The id_token is not a valid JWT (three base64url-encoded JSON parts).",
                              code="id_token_malformed") from exc
        if not isinstance(self._jwt.get("header"), dict) or not isinstance(self._jwt.get("body"), dict):
            raise LaunchError("The id_token header or payload is not a JSON object.", code="id_token_malformed")

    def check_header(self) -> None:
        header = self._jwt["header"]
        alg = header.get("alg")
        if alg != "RS256":
            raise LaunchError(f"The id_token is signed with alg {alg!r}; LTI 1.3 requires RS256.",
                              hint="Unsigned (alg none) and HMAC-signed id_tokens are never accepted.",
                              code="alg_not_allowed")
        if not header.get("kid"):
            raise LaunchError("The id_token header has no key id (kid), so its signing key cannot be found.",
                              code="kid_missing")
        _identifier(header["kid"], "header's kid")

    def check_registration(self) -> None:
        body = self._jwt["body"]
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
        known = registrations.of_issuer(self.db, iss)
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
        self.login = states.read_state(self._get_request_param("state"), self.registration.id,
                                       secret_key=self.settings.secret_key,
                                       max_age=self.settings.state_ttl)

    def check_signature(self) -> None:
        jwk = self.keys.key_for(self.registration.key_set_url, self._jwt["header"]["kid"])
        try:
            key = jwt.PyJWK(jwk, algorithm="RS256").key
        except (jwt.PyJWKError, TypeError, ValueError) as exc:
            # The platform published it: its fault, not the launching browser's.
            raise PlatformError("The platform's key for this kid is not a usable RSA key.",
                                hint="Tell the platform's administrator; launches signed with other "
                                     "keys are not affected.",
                                code="platform_key_invalid") from exc
        try:
            jwt.decode(self._get_request_param("id_token"), key, algorithms=["RS256"],
                       audience=self.client_id, issuer=self.registration.issuer,
                       leeway=self.settings.leeway,
                       options={"require": ["exp", "iat"], "verify_iat": True})
        except jwt.ExpiredSignatureError as exc:
            raise LaunchError("The id_token has expired (exp is in the past).",
                              hint="Launch again; if it keeps happening, check the platform's clock.",
                              code="token_expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise LaunchError(f"The id_token was issued in the future (iat more than "
                              f"{self.settings.leeway} s ahead of this tool's clock).",
                              hint="Check the clocks of the platform and of this server (NTP).",
                              code="token_issued_in_future") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise LaunchError(f"The id_token has no {exc.claim!r} claim; exp and iat are required.",
                              code="timestamp_missing") from exc
        except jwt.InvalidAudienceError as exc:
            raise LaunchError("The id_token's audience is not this tool's client id.",
                              code="aud_mismatch") from exc
        except jwt.InvalidSignatureError as exc:
            raise LaunchError("The id_token's signature does not verify with the platform's key: it was "
                              "altered or not signed by this platform.", code="bad_signature") from exc
        except jwt.InvalidTokenError as exc:
            raise LaunchError(f"The id_token was rejected: {exc}.", code="token_invalid") from exc

    def check_claims(self) -> None:
        body = self._jwt["body"]
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
        self.deployment = registrations.check_deployment(self.db, self.registration,
                                                         self._jwt["body"][c.DEPLOYMENT_ID])

    def check_message(self) -> None:
        body = self._jwt["body"]
        if body.get(c.MESSAGE_TYPE) == deep_linking.REQUEST:  # the tool's words, not the library's
            deep_linking.check_accepts_links(body.get(c.DEEP_LINKING_SETTINGS))
        try:
            self.validate_message()  # pylti1p3's per-message-type validators
        except LtiException as exc:
            raise LaunchError(f"The launch message is incomplete: {exc}.", code="message_invalid") from exc


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
