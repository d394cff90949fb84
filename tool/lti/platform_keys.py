"""Platform public keys: the JWKS of each platform, cached per URL (LTI Security Framework §6.3).

A steady stream of launches makes no JWKS request once the set is cached. Platforms rotate keys
(Canvas monthly, facts sheet section 1), so a launch signed with a ``kid`` the cache does not
know refetches the set. The request rate stays bounded without letting unauthenticated input
spend that budget and lock out a real rotation:

- refetches caused by unknown kids are spaced at least ``refetch_interval`` apart;
- a kid that a refetch did not find is remembered for ``missing_ttl``: seen again (a forger
  repeating it), it is refused at once and causes no request;
- a launch that meets the spacing waits (at most ``max_wait``) for the next allowed refetch,
  whoever triggers it, instead of failing: every refetch brings the whole set, so a rotated
  key is found even when a forged kid caused the request. At most ``MAX_WAITING`` launches
  wait per URL, so forged kids cannot park every server thread; one turned away is told to
  launch again, and by then the refetch has happened.

A key set that cannot be fetched is the platform's fault: ``PlatformError`` 503 (no answer,
5xx) or 502 (an answer that is not a key set). A key already cached keeps working meanwhile.

Launches verify with the key *object* (``public_key``), built once per (URL, kid) from the JWK:
building it costs more than the RS256 check itself. It is dropped with the JWK it came from
whenever the set is fetched again, so a rotated or replaced key is never verified against.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field

import jwt
import requests

from . import http
from .errors import LaunchError, PlatformError

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 1024 * 1024  # a key set is a few KB; refuse to read a runaway answer
MAX_MISSING = 1024  # kids remembered as absent, per URL (oldest forgotten first)
# Launches that may wait at once for the next allowed refetch of one URL. Every one of them is
# served by the same fetch, and a flood of forged kids must not park every server thread.
MAX_WAITING = 4


@dataclass
class _Entry:
    keys: dict = field(default_factory=dict)  # kid -> JWK dict
    objects: dict = field(default_factory=dict)  # kid -> (the JWK dict, its public key object)
    fetched_at: float = 0.0
    refetched_at: float = 0.0  # last refetch caused by an unknown kid (the rate-limited kind)
    fetching: bool = False
    failed_at: float = 0.0  # last fetch that failed
    failure: PlatformError | None = None
    missing: dict = field(default_factory=dict)  # kid -> (start, end) of a fetch that did not find it
    waiting: int = 0  # launches parked until the next allowed refetch
    cond: threading.Condition = field(default_factory=threading.Condition)


class PlatformKeyCache:
    def __init__(self, ttl: float = 24 * 3600, refetch_interval: float = 10.0,
                 timeout: tuple[float, float] = http.DEFAULT_TIMEOUT, max_wait: float = 5.0,
                 missing_ttl: float = 30.0) -> None:
        self.ttl = ttl
        self.refetch_interval = refetch_interval
        self.timeout = timeout
        self.max_wait = max_wait
        # Short, so a kid remembered as absent (a forger guessing a platform's next kid before
        # it is published) is looked for again soon. Canvas publishes future keys ahead of
        # use, and any fetch that finds a kid clears its mark.
        self.missing_ttl = missing_ttl
        self.fetches = 0
        self._entries: dict[str, _Entry] = {}
        self._guard = threading.Lock()

    def _entry(self, url: str) -> _Entry:
        with self._guard:
            return self._entries.setdefault(url, _Entry())

    def forget(self, url: str) -> None:
        """Drop what is cached for ``url`` (its registration was replaced)."""
        with self._guard:
            self._entries.pop(url, None)

    def public_key(self, url: str, kid: str):
        """The platform's public key object for ``kid`` at ``url`` (kept while its JWK is)."""
        jwk = self.key_for(url, kid)
        entry = self._entry(url)
        held = entry.objects.get(kid)
        if held is not None and held[0] is jwk:
            return held[1]
        try:
            key = jwt.PyJWK(jwk, algorithm="RS256").key
        except (jwt.PyJWKError, jwt.InvalidKeyError, TypeError, ValueError) as exc:
            # The platform published it: its fault, not the launching browser's.
            raise PlatformError("The platform's key for this kid is not a usable RSA key.",
                                hint="Tell the platform's administrator; launches signed with other "
                                     "keys are not affected.",
                                code="platform_key_invalid") from exc
        with entry.cond:
            if entry.keys.get(kid) is jwk:  # still the published key: keep its object
                entry.objects[kid] = (jwk, key)
        return key

    def key_for(self, url: str, kid: str) -> dict:
        """The JWK for ``kid`` published at ``url``; raises LaunchError or PlatformError."""
        entry = self._entry(url)
        arrived = time.monotonic()
        deadline = arrived + self.max_wait
        with entry.cond:
            while True:
                now = time.monotonic()
                fresh = bool(entry.fetched_at) and now - entry.fetched_at < self.ttl
                if fresh and kid in entry.keys:
                    return entry.keys[kid]
                if entry.fetching:
                    # Another launch is fetching (bounded by the HTTP timeout): its answer may
                    # serve this one too.
                    entry.cond.wait(timeout=1.0)
                    continue
                if entry.failure is not None and now - entry.failed_at < self.refetch_interval:
                    # The key set just failed: answer at once instead of making every launch
                    # wait out another timeout; a key we know keeps working.
                    if kid in entry.keys:
                        return entry.keys[kid]
                    raise entry.failure
                if fresh:
                    missed = entry.missing.get(kid)
                    if missed is not None:
                        started, ended = missed
                        # A fetch that began after this launch arrived did not find the kid; or
                        # one that ended before it did, recently: a forger repeating a kid costs
                        # no request. (A fetch in flight on arrival may predate a rotation.)
                        if started >= arrived or (ended <= arrived and now - ended < self.missing_ttl):
                            raise self._unknown(url, kid)
                    allowed_at = entry.refetched_at + self.refetch_interval
                    if entry.refetched_at and now < allowed_at:
                        if allowed_at > deadline or entry.waiting >= MAX_WAITING:
                            raise self._unknown(url, kid)
                        # Wait for the next allowed refetch, whoever makes it.
                        entry.waiting += 1
                        try:
                            entry.cond.wait(timeout=allowed_at - now)
                        finally:
                            entry.waiting -= 1
                        continue
                    entry.refetched_at = now
                entry.fetching = True
                break
        return self._fetch_into(entry, url, kid)

    def _fetch_into(self, entry: _Entry, url: str, kid: str) -> dict:
        """Fetch the set (outside the lock), publish it to waiting launches, return the key."""
        started = time.monotonic()
        try:
            keys = self._fetch(url)
        except PlatformError as exc:
            with entry.cond:
                entry.fetching = False
                entry.failure, entry.failed_at = exc, time.monotonic()
                entry.cond.notify_all()
                if kid in entry.keys:  # platform down, but we know this key: keep serving
                    return entry.keys[kid]
            raise
        except BaseException:
            with entry.cond:
                entry.fetching = False
                entry.cond.notify_all()
            raise
        with entry.cond:
            now = time.monotonic()
            entry.keys, entry.fetched_at, entry.failure, entry.fetching = keys, now, None, False
            entry.objects = {}  # key objects follow the set they were built from
            for known in [k for k in entry.missing if k in keys]:
                del entry.missing[known]
            if kid not in keys:
                entry.missing.pop(kid, None)
                entry.missing[kid] = (started, now)
                while len(entry.missing) > MAX_MISSING:
                    del entry.missing[next(iter(entry.missing))]
            entry.cond.notify_all()
        if kid in keys:
            return keys[kid]
        raise self._unknown(url, kid)

    @staticmethod
    def _unknown(url: str, kid: str) -> LaunchError:
        return LaunchError(
            f"The id_token was signed with key id (kid) {kid!r}, which the platform's key set "
            f"at {url} does not contain.",
            hint="If the platform just rotated its keys, launch again in a few seconds; "
                 "otherwise the token was not signed by this platform.",
            code="unknown_kid")

    def _fetch(self, url: str) -> dict:
        self.fetches += 1
        hint = ("The platform may be briefly unavailable: launch again in a minute. If it persists, "
                "check the registration's key set URL with `flask --app app platform list`.")
        try:
            resp = http.session().get(url, timeout=self.timeout, stream=True,
                                      headers={"Accept": "application/json"})
            with resp:
                body = b""
                if resp.status_code == 200:
                    for chunk in resp.iter_content(64 * 1024):
                        body += chunk
                        if len(body) > MAX_JWKS_BYTES:
                            break
        except requests.RequestException as exc:
            log.warning("platform key set %r unreachable: %s", url, exc.__class__.__name__)
            raise PlatformError(
                f"The platform's public key set could not be fetched from {url}: {exc.__class__.__name__}.",
                hint=hint, code="platform_jwks_unavailable", status=503, retryable=True) from exc
        if resp.status_code >= 500 or resp.status_code == 429:
            raise PlatformError(f"The platform's public key set at {url} answered HTTP {resp.status_code}.",
                                hint=hint, code="platform_jwks_unavailable", status=503,
                                http_status=resp.status_code, retryable=True)
        if resp.status_code != 200:
            raise PlatformError(f"The platform's public key set at {url} answered HTTP {resp.status_code}.",
                                hint="Check the registration's key set URL with `flask --app app platform list`.",
                                code="platform_jwks_invalid", status=502, http_status=resp.status_code)
        try:
            if len(body) > MAX_JWKS_BYTES:
                raise ValueError("too large")
            keys = json.loads(body)["keys"]
            if not isinstance(keys, list):
                raise TypeError("keys is not a list")
            return {k["kid"]: k for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)}
        except (ValueError, KeyError, TypeError) as exc:
            raise PlatformError(f"The platform's answer at {url} is not a JSON Web Key Set.",
                                hint="Check the registration's key set URL with `flask --app app platform list`.",
                                code="platform_jwks_invalid", status=502) from exc
