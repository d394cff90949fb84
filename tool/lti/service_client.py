"""Calls from the tool to a platform's LTI Advantage services, with one shared access token.

Token: OAuth2 client credentials with a JWT client assertion (LTI Security Framework §4.1;
facts sheet section 6): RS256, ``iss`` = ``sub`` = client_id, ``aud`` = the token URL (or the
registration's ``auth_audience``), ``iat``, ``exp``, ``jti``, header ``kid`` = the tool key.
The token is kept in the ``access_tokens`` table per (registration, sorted scope set) until
shortly before it expires, so every process and job shares it; a client also keeps the token it
read in memory until the same moment (a score delivery would otherwise read the table once per
call). A 401 drops both copies (the table's only if it still holds the failed token) and gets
one refresh and one retry.

Faults (facts sheet section 9): Canvas answers a throttled call with 403 and the text/plain
body ``403 Forbidden (Rate Limit Exceeded)``; others send 429 with ``Retry-After``, or 5xx, or
time out. These are retried with backoff until ``retry_budget`` seconds have passed, then
``PlatformError`` says what happened. As ``X-Rate-Limit-Remaining`` falls the client waits for
Canvas's bucket to leak before the next call.
"""
from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Callable
from urllib.parse import urlencode

import jwt
import requests
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..db import insert_for
from ..models import AccessToken, Registration, utcnow
from . import http, keys
from .errors import PlatformError

log = logging.getLogger(__name__)

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Refresh a stored token this long before the platform says it expires.
EXPIRY_MARGIN = 60
MAX_BACKOFF = 30.0
MAX_PACE = 15.0


@dataclass
class ClientSettings:
    key_dir: Path
    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    retry_budget: float = 120.0
    backoff: float = 1.0
    rate_low_water: float = 150.0
    rate_leak: float = 10.0
    # Retry a timeout or a 5xx inside the call. Reads are safe to repeat; a score is not: the
    # platform may have applied it, and the outbox must then change the next body (no second
    # submission, no second comment), so the score sender turns this off.
    retry_unclear: bool = True

    @classmethod
    def from_settings(cls, settings) -> "ClientSettings":
        return cls(key_dir=Path(settings.key_dir), connect_timeout=settings.http_connect_timeout,
                   read_timeout=settings.http_read_timeout,
                   retry_budget=settings.service_retry_budget, backoff=settings.service_backoff,
                   rate_low_water=settings.service_rate_low_water,
                   rate_leak=settings.service_rate_leak)


def scope_key(scopes: list[str] | tuple[str, ...]) -> str:
    return " ".join(sorted(set(scopes)))


def _platform_reason(response: http.PlatformResponse) -> str:
    """The platform's own words: OAuth ``error_description``, Canvas ``errors.message``, or text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if body.get("error_description") or body.get("error"):
            return str(body.get("error_description") or body.get("error"))
        errors = body.get("errors")
        if isinstance(errors, dict) and errors.get("message"):
            return str(errors["message"])
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message") or errors[0])
    text = (response.text or "").strip()
    return text[:200] or response.reason or "no reason given"


def is_canvas_throttle(response: http.PlatformResponse) -> bool:
    """Canvas's 403 for throttling, told apart from a real 403 by its body (facts section 9)."""
    return response.status_code == 403 and "rate limit exceeded" in (response.text or "").lower()


def _retry_after(response: http.PlatformResponse) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class PlatformClient:
    """One registration's service calls. Cheap to create; the token lives in the database (and
    in this client's memory until shortly before it expires)."""

    def __init__(self, session_factory: Callable[[], Session], registration: Registration,
                 settings: ClientSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.session_factory = session_factory
        self.registration_id = registration.id
        self.client_id = registration.client_id
        self.token_url = registration.auth_token_url
        self.audience = registration.auth_audience or registration.auth_token_url
        self.settings = settings
        self.sleep = sleep
        self.retries = 0
        self.token_requests = 0
        self._next_call_at = 0.0
        # scope key -> (token, refresh after): this client's copy of the table's token.
        self._tokens: dict[str, tuple[str, datetime]] = {}
        # One reader of the table (and one token request) at a time per client: many calls
        # starting at once then share one request instead of each making its own.
        self._token_lock = threading.Lock()

    # -- access token (Security Framework §4.1, facts section 6) -------------------------
    def token(self, scopes: list[str], *, refresh: bool = False, stale: str | None = None) -> str:
        key = scope_key(scopes)
        if not refresh:
            remembered = self._remembered(key)
            if remembered is not None:
                return remembered
        with self._token_lock:
            if refresh:
                self._forget(key, stale)
            else:
                remembered = self._remembered(key)  # another thread may have read it meanwhile
                if remembered is not None:
                    return remembered
            token, expires_at = self._stored_or_new(key, refresh=refresh, stale=stale)
            self._tokens[key] = (token, expires_at - timedelta(seconds=EXPIRY_MARGIN))
            return token

    def _remembered(self, key: str) -> str | None:
        """The token in memory, while it is not within ``EXPIRY_MARGIN`` of expiring."""
        held = self._tokens.get(key)
        if held is not None and utcnow() < held[1]:
            return held[0]
        return None

    def _forget(self, key: str, stale: str | None) -> None:
        held = self._tokens.get(key)
        if held is not None and (stale is None or held[0] == stale):
            del self._tokens[key]

    def _stored_or_new(self, key: str, *, refresh: bool, stale: str | None) -> tuple[str, datetime]:
        """(token, expires at) from the table, or a new one from the platform stored there."""
        with self.session_factory() as session:
            if refresh:
                # Only drop the token that failed: another process may already have a new one.
                stmt = delete(AccessToken).where(AccessToken.registration_id == self.registration_id,
                                                 AccessToken.scope_key == key)
                if stale:
                    stmt = stmt.where(AccessToken.token == stale)
                session.execute(stmt)
                session.commit()
            row = session.execute(select(AccessToken.token, AccessToken.expires_at).where(
                AccessToken.registration_id == self.registration_id, AccessToken.scope_key == key,
                AccessToken.expires_at > utcnow() + timedelta(seconds=EXPIRY_MARGIN))).first()
            if row is not None:
                return row.token, row.expires_at
            token, expires_in = self._request_token(session, key)
            now = utcnow()
            expires_at = now + timedelta(seconds=expires_in)
            stmt = insert_for(session, AccessToken).values(
                registration_id=self.registration_id, scope_key=key, token=token,
                expires_at=expires_at, created_at=now)
            stmt = stmt.on_conflict_do_update(
                index_elements=["registration_id", "scope_key"],
                set_={"token": stmt.excluded.token, "expires_at": stmt.excluded.expires_at,
                      "created_at": stmt.excluded.created_at})
            session.execute(stmt)
            session.commit()
            return token, expires_at

    def client_assertion(self, session: Session) -> str:
        kid, pem = keys.signing_key(session, self.settings.key_dir)
        now = int(time.time())
        claims = {"iss": self.client_id, "sub": self.client_id, "aud": self.audience,
                  "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        return jwt.encode(claims, pem, algorithm="RS256", headers={"kid": kid})

    def _request_token(self, session: Session, key: str) -> tuple[str, int]:
        def post() -> http.PlatformResponse:
            # A fresh assertion per attempt: its jti is single-use.
            form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": self.client_assertion(session), "scope": key}
            self.token_requests += 1
            return http.call("POST", self.token_url, body=urlencode(form).encode(),
                             timeout=self._timeout(),
                             headers={"Accept": "application/json",
                                      "Content-Type": "application/x-www-form-urlencoded"})

        response = self._with_retries(post, f"token request to {self.token_url}")
        if response.status_code != 200:
            raise PlatformError(
                f"The platform refused an access token (HTTP {response.status_code}): "
                f"{_platform_reason(response)}", http_status=response.status_code,
                code="token_refused",
                hint="Check the developer key's scopes and that the tool's JWKS URL is set on it.")
        try:
            body = response.json()
            token = body["access_token"]
            expires_in = int(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise PlatformError("The token endpoint answered without an access_token.",
                                http_status=response.status_code, code="token_unusable")
        return token, expires_in

    # -- service calls --------------------------------------------------------------------
    def request(self, method: str, url: str, *, scopes: list[str], accept: str | None = None,
                json_body: object = None, content_type: str | None = None,
                params: dict | None = None) -> http.PlatformResponse:
        """Any verb on a service URL with the shared token; a 2xx answer or ``PlatformError``.

        JSON bodies go out with ``content_type`` (the AGS media types, e.g.
        ``application/vnd.ims.lis.v1.score+json``, AGS 2.0 §3.4). A 401 gets one token refresh
        and one more try; throttles, 429, 5xx and timeouts are retried within the budget. A
        refusal keeps the platform's status and message on the error (``http_status``,
        ``reason``) so callers can tell "user not in course" (422) from "line item gone" (404).
        """
        method = method.upper()
        token = self.token(scopes)
        response = self._authorized(method, url, token, accept, json_body, content_type, params)
        if response.status_code == 401:
            log.info("platform answered 401 for %s %r: refreshing the token once", method, url)
            token = self.token(scopes, refresh=True, stale=token)
            response = self._authorized(method, url, token, accept, json_body, content_type, params)
            if response.status_code == 401:
                raise PlatformError(
                    f"The platform refused a fresh access token for {method} {url}: "
                    f"{_platform_reason(response)}", http_status=401, code="token_rejected",
                    platform_message=_platform_reason(response))
        if not 200 <= response.status_code < 300:
            raise PlatformError(f"{method} {url} failed with HTTP {response.status_code}: "
                                f"{_platform_reason(response)}", http_status=response.status_code,
                                code="service_refused", platform_message=_platform_reason(response))
        return response

    def get(self, url: str, *, scopes: list[str], accept: str,
            params: dict | None = None) -> http.PlatformResponse:
        """GET a service URL with the shared token; 2xx or ``PlatformError``."""
        return self.request("GET", url, scopes=scopes, accept=accept, params=params)

    def post(self, url: str, body: object, *, scopes: list[str], content_type: str,
             accept: str | None = None) -> http.PlatformResponse:
        return self.request("POST", url, scopes=scopes, json_body=body, content_type=content_type,
                            accept=accept)

    def put(self, url: str, body: object, *, scopes: list[str], content_type: str,
            accept: str | None = None) -> http.PlatformResponse:
        return self.request("PUT", url, scopes=scopes, json_body=body, content_type=content_type,
                            accept=accept)

    def delete(self, url: str, *, scopes: list[str]) -> http.PlatformResponse:
        return self.request("DELETE", url, scopes=scopes)

    def _authorized(self, method: str, url: str, token: str, accept: str | None,
                    json_body: object, content_type: str | None, params: dict | None):
        headers = {"Authorization": f"Bearer {token}"}
        if accept:
            headers["Accept"] = accept
        data = None
        if json_body is not None:
            headers["Content-Type"] = content_type or "application/json"
            data = json.dumps(json_body).encode()

        def call() -> http.PlatformResponse:
            return http.call(method, url, params=params, body=data, timeout=self._timeout(),
                             headers=headers)
        return self._with_retries(call, f"{method} {url}")

    def _timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout, self.settings.read_timeout)

    def _with_retries(self, call: Callable[[], http.PlatformResponse], what: str) -> http.PlatformResponse:
        """Run ``call``, retrying throttles, 429, 5xx and network faults within the budget."""
        started = time.monotonic()
        attempt = 0
        while True:
            self._pace_wait()
            attempt += 1
            wait: float | None = None
            try:
                response = call()
            except (requests.Timeout, requests.ConnectionError) as exc:
                kind = "timed out" if isinstance(exc, requests.Timeout) else "could not connect"
                problem = f"{what} {kind} ({exc.__class__.__name__})"
                response = None
            else:
                self._note_rate(response)
                status = response.status_code
                if is_canvas_throttle(response):
                    problem = f"{what} was throttled: HTTP 403 {_platform_reason(response)}"
                    # Wait for one request's worth (50 units) to leak from Canvas's bucket.
                    wait = 50.0 / self.settings.rate_leak
                elif status == 429:
                    problem = f"{what} was throttled: HTTP 429 {_platform_reason(response)}"
                    wait = _retry_after(response)
                elif status >= 500:
                    problem = f"{what} failed with HTTP {status}: {_platform_reason(response)}"
                else:
                    return response
            elapsed = time.monotonic() - started
            backoff = min(MAX_BACKOFF, self.settings.backoff * 2 ** (attempt - 1))
            delay = max(wait or 0.0, backoff * random.uniform(0.5, 1.0),
                        self._next_call_at - time.monotonic())
            unclear = response is None or response.status_code >= 500
            if elapsed + delay > self.settings.retry_budget or (unclear and not self.settings.retry_unclear):
                raise PlatformError(
                    f"{problem}; gave up after {attempt} attempt{'s' if attempt > 1 else ''} "
                    f"in {elapsed:.1f} s (retry budget {self.settings.retry_budget:g} s).",
                    http_status=response.status_code if response is not None else None,
                    retryable=True, retry_after=wait, code="platform_unavailable",
                    hint="The platform is busy or down; run the sync again later.")
            self.retries += 1
            log.warning("%r; retry %d in %.2f s", problem, attempt, delay)
            self.sleep(delay)

    def _note_rate(self, response: http.PlatformResponse) -> None:
        """Pace by ``X-Rate-Limit-Remaining``: below the low-water mark, let the bucket leak."""
        raw = response.headers.get("X-Rate-Limit-Remaining")
        try:
            remaining = float(raw) if raw is not None else None
        except ValueError:
            remaining = None
        if remaining is None or remaining >= self.settings.rate_low_water:
            return
        pause = min(MAX_PACE, (self.settings.rate_low_water - remaining) / self.settings.rate_leak)
        self._next_call_at = time.monotonic() + pause

    def _pace_wait(self) -> None:
        delay = self._next_call_at - time.monotonic()
        if delay > 0:
            self.sleep(delay)
