"""The deep linking response a tool returns to the platform (Deep Linking 2.0: the response
message, §4.5, and the LTI resource link content item, §3).

The tool answers an ``LtiDeepLinkingRequest`` by form-posting a JWT named ``JWT`` to the
request's ``deep_link_return_url``. The JWT is signed RS256 with the tool's current signing key
(``kid`` in the header, so the platform finds it in the tool's JWKS; LTI Security Framework
§6.3) and carries: ``iss`` = the tool's client id, ``aud`` = the platform's issuer, the request's
``deployment_id``, a fresh ``nonce``, ``iat``/``exp``, message type ``LtiDeepLinkingResponse``,
version ``1.3.0``, the ``content_items``, and the request's ``data`` echoed unchanged (§4.5).
A cancelled request answers with no items and a ``msg`` (§4.5 ``msg``/``errormsg``).
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from sqlalchemy.orm import Session

from . import keys
from .errors import LaunchError

DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
CONTENT_ITEMS = DL + "content_items"
DATA = DL + "data"
MSG = DL + "msg"
LOG = DL + "log"
ERRORMSG = DL + "errormsg"
ERRORLOG = DL + "errorlog"
LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MESSAGE_TYPE = LTI + "message_type"
VERSION = LTI + "version"
DEPLOYMENT_ID = LTI + "deployment_id"

REQUEST = "LtiDeepLinkingRequest"
RESOURCE_LINK = "ltiResourceLink"
# Ten minutes: the platform verifies the response when the auto-posted form arrives, seconds later.
LIFETIME = 600
MAX_RETURN_URL = 2048
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class DeepLinkingRefused(LaunchError):
    """A deep linking request the tool cannot answer (Deep Linking 2.0 §4.4.1 settings)."""

    title = "Nothing can be added from here"


@dataclass(frozen=True)
class Request:
    """What a deep linking request asked for, as kept in the page session until the answer."""

    return_url: str
    deployment_id: str
    accept_types: tuple[str, ...]
    targets: tuple[str, ...]  # accept_presentation_document_targets
    accept_multiple: bool
    data: str | None
    title: str | None = None
    text: str | None = None

    @classmethod
    def from_record(cls, record: dict | None) -> "Request":
        """The request a page session kept at launch, checked again; refused when the session
        did not start with a deep linking launch."""
        if not isinstance(record, dict):
            raise DeepLinkingRefused(
                "This page belongs to adding content from Canvas, and this session did not start "
                "that way.", hint="In Canvas, add an assignment or module item and choose the tool "
                                  "as its external tool.", code="not_deep_linking", status=409)
        return request_from_settings(record, str(record.get("deployment_id") or ""))

    @property
    def document_target(self) -> str | None:
        """``iframe`` when the platform accepts it, else ``window``, else none (§3)."""
        for target in ("iframe", "window"):
            if target in self.targets:
                return target
        return None


def session_record(launch) -> dict | None:
    """What a page session keeps of a deep linking launch (its settings and deployment id), so
    the answer can be built after the instructor picks; None for other launches."""
    if launch.message_type != REQUEST:
        return None
    return {**launch.deep_linking_settings, "deployment_id": launch.deployment_id}


def return_url_problem(url: str | None) -> str | None:
    """Why ``url`` cannot be a ``deep_link_return_url`` the browser posts to, or None.

    https, or http on a loopback host (a local platform); no user name or password in it; a
    bounded length. The value comes from a signed id_token, but it still decides where the
    browser sends a signed JWT, so a plain-http or odd address is refused rather than used.
    """
    if not url:
        return "The launch carried no deep_link_return_url."
    if len(url) > MAX_RETURN_URL:
        return f"The deep_link_return_url is {len(url)} characters long; at most {MAX_RETURN_URL}."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return "The deep_link_return_url is not a valid address."
    host = (parts.hostname or "").lower()
    if not host:
        return "The deep_link_return_url has no host."
    if parts.username is not None or parts.password is not None:
        return "The deep_link_return_url carries a user name or password."
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and host in LOOPBACK:
        return None
    return "The deep_link_return_url must use https."


def check_accepts_links(settings) -> tuple[str, ...]:
    """The accepted types, when they include LTI resource links (§4.4.1 ``accept_types``);
    refused in the tool's own words otherwise (the launch checks this before any library does)."""
    raw = settings.get("accept_types") if isinstance(settings, dict) else None
    accepted = tuple(t for t in raw if isinstance(t, str))[:20] if isinstance(raw, list) else ()
    if RESOURCE_LINK not in accepted:
        shown = ", ".join(t[:40] for t in accepted) if accepted else "no content types"
        raise DeepLinkingRefused(
            f"This placement cannot take assessments: it accepts {shown}, and an assessment is "
            "an LTI link.",
            hint="Add the assessment as an assignment, or as a module item of type External Tool.",
            code="accept_types")
    return accepted


def request_from_settings(settings: dict, deployment_id: str) -> Request:
    """Check a launch's deep linking settings (§4.4.1) and keep what the answer needs.

    Refused, with the reason, when the return URL is absent or unusable, or when the placement
    does not accept LTI resource links (the only thing this tool returns).
    """
    url = settings.get("deep_link_return_url")
    problem = return_url_problem(url)
    if problem:
        raise DeepLinkingRefused(problem, hint="Ask your Canvas administrator to check the tool's "
                                               "placements; then try again from Canvas.",
                                 code="deep_link_return_url")
    accepted = check_accepts_links(settings)
    data = settings.get("data")
    return Request(return_url=url, deployment_id=deployment_id, accept_types=accepted,
                   targets=tuple(settings.get("accept_presentation_document_targets") or ()),
                   accept_multiple=settings.get("accept_multiple") is True,
                   data=data if isinstance(data, str) else None,
                   title=settings.get("title"), text=settings.get("text"))


def resource_link_item(request: Request, *, title: str, url: str, custom: dict[str, str],
                       line_item: dict | None = None, text: str | None = None) -> dict:
    """An ``ltiResourceLink`` content item (§3) with its presentation and ``lineItem``."""
    item: dict = {"type": RESOURCE_LINK, "title": title, "url": url, "custom": dict(custom)}
    if text:
        item["text"] = text
    if line_item:
        item["lineItem"] = dict(line_item)
    target = request.document_target
    if target == "iframe":
        item["iframe"] = {"width": 800, "height": 600}
    elif target == "window":
        item["window"] = {"targetName": "_blank"}
    return item


def response_jwt(session: Session, key_dir: Path, *, client_id: str, issuer: str,
                 request: Request, items: list[dict], msg: str | None = None,
                 errormsg: str | None = None, now: int | None = None) -> str:
    """The signed ``LtiDeepLinkingResponse`` (§4.5), ready for the ``JWT`` form field."""
    if len(items) > 1 and not request.accept_multiple:
        raise DeepLinkingRefused("Canvas accepts only one item here.",
                                 hint="Choose one assessment.", code="accept_multiple")
    kid, pem = keys.signing_key(session, key_dir)
    issued = int(now if now is not None else time.time())
    payload: dict = {
        "iss": client_id,
        "aud": issuer,
        "iat": issued,
        "exp": issued + LIFETIME,
        "nonce": secrets.token_urlsafe(24),  # fresh per response (LTI core §5.1.2.1 replay)
        DEPLOYMENT_ID: request.deployment_id,
        MESSAGE_TYPE: "LtiDeepLinkingResponse",
        VERSION: "1.3.0",
        CONTENT_ITEMS: list(items),
    }
    if request.data is not None:
        payload[DATA] = request.data  # echoed unchanged (§4.5)
    if msg:
        payload[MSG] = msg
    if errormsg:
        payload[ERRORMSG] = errormsg
    return jwt.encode(payload, pem, algorithm="RS256", headers={"kid": kid, "typ": "JWT"})
