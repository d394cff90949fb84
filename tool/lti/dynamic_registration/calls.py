"""Calls to a platform during registration: bounded in size and time, never redirected.

The registration URL is opened by someone holding an invite, and the addresses it names are
the platform's word alone, so each answer is read up to ``MAX_DOCUMENT`` bytes within the
(connect, read) timeout as a whole, and a redirect is an answer, not a hop (it could lead off
https or to another host). Refusals carry the platform's own words, cleaned and bounded.
"""
from __future__ import annotations

import json
import logging
import time

import requests

from ...errors import ToolError
from .. import http
from ..claims import clean_text

log = logging.getLogger(__name__)

MAX_DOCUMENT = 256 * 1024  # a Canvas configuration, variables list included, is about 10 KB
MAX_PLATFORM_MESSAGE = 500


class RegistrationRefused(ToolError):
    """The platform's configuration or answer does not allow a registration (caller's side)."""

    title = "This platform cannot be registered"


class PlatformUnreachable(RegistrationRefused):
    """The platform did not answer, or answered with a server error: an upstream fault."""

    status = 502
    title = "The platform did not answer"


def text(value, limit: int = 200) -> str:
    """A platform-given value as one printable line of at most ``limit`` characters."""
    if not isinstance(value, str):
        return ""
    return " ".join(clean_text(value[:limit * 4]).split())[:limit]


def _read(response: requests.Response, deadline: float, what: str) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_DOCUMENT:
        raise RegistrationRefused(f"The platform's {what} is {int(declared)} bytes long; the tool "
                                  f"reads at most {MAX_DOCUMENT}.", code="document_too_large")
    body = bytearray()
    for chunk in response.iter_content(16 * 1024):
        body += chunk
        if len(body) > MAX_DOCUMENT:
            raise RegistrationRefused(f"The platform's {what} is longer than the {MAX_DOCUMENT} "
                                      f"bytes the tool reads.", code="document_too_large")
        if time.monotonic() > deadline:
            raise requests.Timeout()
    return bytes(body)


def call(method: str, url: str, token: str | None, timeout: tuple[float, float], what: str,
         body: dict | None = None) -> tuple[int, bytes]:
    """One bounded call with the registration token as bearer: (status, body)."""
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    deadline = time.monotonic() + sum(timeout)
    try:
        with http.session().request(method, url, headers=headers, json=body, timeout=timeout,
                                    stream=True, allow_redirects=False) as response:
            return response.status_code, _read(response, deadline, what)
    except requests.Timeout:
        raise PlatformUnreachable(f"The platform did not answer the request for its {what} within "
                                  f"{sum(timeout):g} seconds.", code="platform_timeout",
                                  hint="Try again in a moment; if it keeps happening, check that the "
                                       "tool's server can reach the platform.") from None
    except requests.RequestException as exc:
        log.warning("dynamic registration: %s %r failed: %r", method, url, exc)
        raise PlatformUnreachable(f"The tool could not reach the platform for its {what} "
                                  f"({exc.__class__.__name__}).", code="platform_unreachable",
                                  hint="Check the platform's address and that the tool's server "
                                       "can reach it, then start again from the platform.") from None


def platform_message(body: bytes) -> str:
    """The platform's own words from an error answer, bounded (pages escape them)."""
    try:
        data = json.loads(body)
    except ValueError:
        return text(body[:4 * MAX_PLATFORM_MESSAGE].decode("utf-8", "replace"), MAX_PLATFORM_MESSAGE)
    if isinstance(data, dict):
        errors = data.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            data = errors[0]  # Canvas: {"errors": [{"message": ...}]}
        parts = [text(data.get(k), MAX_PLATFORM_MESSAGE) for k in ("error", "error_description", "message")]
        joined = ": ".join(p for p in parts if p)
        if joined:
            return joined[:MAX_PLATFORM_MESSAGE]
    return text(json.dumps(data)[:4 * MAX_PLATFORM_MESSAGE], MAX_PLATFORM_MESSAGE)


def json_object(status: int, body: bytes, what: str, *, accepted=(200,),
                refused_code: str = "platform_refused") -> dict:
    """The answer as a JSON object, or the refusal that says what the platform answered."""
    said = platform_message(body) or "(no message)"
    if status >= 500:
        raise PlatformUnreachable(f"The platform answered the request for its {what} with HTTP "
                                  f"{status}: {said}", code="platform_error", hint="Try again later.")
    if status in (401, 403):
        raise RegistrationRefused(
            f"The platform refused the registration token (HTTP {status}) when asked for its "
            f"{what}: {said}", code="token_refused",
            hint="Registration tokens expire quickly: start the registration again from the platform.")
    if status not in accepted:
        raise RegistrationRefused(f"The platform answered the request for its {what} with HTTP "
                                  f"{status}: {said}", code=refused_code,
                                  hint="Start the registration again from the platform; if it is "
                                       "refused again, give this message to its administrator.")
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise RegistrationRefused(f"The platform's {what} is not a JSON object.", code="not_json",
                                  hint="Check that the registration was started from the platform's "
                                       "own registration page, not from a copied link.")
    return data
