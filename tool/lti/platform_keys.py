"""Platform public keys: the JWKS of each platform, cached per URL (LTI Security Framework §6.3).

A steady stream of launches makes no JWKS request once the set is cached. A launch signed with
a ``kid`` the cache does not know triggers one refetch (platforms rotate keys: Canvas monthly,
facts sheet section 1), and refetches of one URL are spaced at least ``refetch_interval`` apart
so a stream of forged kids cannot turn the tool into a JWKS hammer. When the platform is down,
a key already cached is still used.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import requests

from . import http
from .errors import LaunchError


@dataclass
class _Entry:
    keys: dict = field(default_factory=dict)  # kid -> JWK dict
    fetched_at: float = 0.0
    attempted_at: float = 0.0  # last refetch caused by an unknown kid
    failed_at: float = 0.0  # last fetch that failed
    failure: LaunchError | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class PlatformKeyCache:
    def __init__(self, ttl: float = 24 * 3600, refetch_interval: float = 10.0,
                 timeout: tuple[float, float] = http.DEFAULT_TIMEOUT) -> None:
        self.ttl = ttl
        self.refetch_interval = refetch_interval
        self.timeout = timeout
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

    def key_for(self, url: str, kid: str) -> dict:
        entry = self._entry(url)
        now = time.monotonic()
        fresh = entry.fetched_at and now - entry.fetched_at < self.ttl
        if fresh and kid in entry.keys:
            return entry.keys[kid]
        with entry.lock:
            now = time.monotonic()
            fresh = entry.fetched_at and now - entry.fetched_at < self.ttl
            if fresh and kid in entry.keys:
                return entry.keys[kid]
            # Fetch when nothing usable is cached; refetch for an unknown kid at most once per
            # interval (the first fetch does not count, so a rotation right after it still works).
            stale = not fresh
            if stale or not entry.attempted_at or now - entry.attempted_at >= self.refetch_interval:
                if not stale:
                    entry.attempted_at = now
                if entry.failure is not None and now - entry.failed_at < self.refetch_interval:
                    # The platform's key set just failed: answer at once instead of making
                    # every launch wait out another timeout.
                    if kid in entry.keys:
                        return entry.keys[kid]
                    raise entry.failure
                try:
                    entry.keys = self._fetch(url)
                    entry.fetched_at = time.monotonic()
                    entry.failure = None
                except LaunchError as exc:
                    entry.failure, entry.failed_at = exc, time.monotonic()
                    if kid in entry.keys:  # platform down, but we know this key: keep serving
                        return entry.keys[kid]
                    raise
            if kid in entry.keys:
                return entry.keys[kid]
        raise LaunchError(
            f"The id_token was signed with key id (kid) {kid!r}, which the platform's key set "
            f"at {url} does not contain.",
            hint="If the platform just rotated its keys, launch again in a few seconds; "
                 "otherwise the token was not signed by this platform.",
            code="unknown_kid")

    def _fetch(self, url: str) -> dict:
        self.fetches += 1
        try:
            resp = http.session().get(url, timeout=self.timeout,
                                      headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise LaunchError(
                f"The platform's public key set could not be fetched from {url}: {exc.__class__.__name__}.",
                hint="The platform may be briefly unavailable: launch again in a minute. If it "
                     "persists, check the registration's key set URL with `flask --app app platform list`.",
                code="platform_jwks_unavailable") from exc
        if resp.status_code != 200:
            raise LaunchError(
                f"The platform's public key set at {url} answered HTTP {resp.status_code}.",
                hint="Launch again in a minute. If it persists, check the registration's key set URL.",
                code="platform_jwks_unavailable")
        try:
            keys = resp.json()["keys"]
            return {k["kid"]: k for k in keys if isinstance(k, dict) and k.get("kid")}
        except (ValueError, KeyError, TypeError) as exc:
            raise LaunchError(f"The platform's key set at {url} is not a JSON Web Key Set.",
                              hint="Check the registration's key set URL.",
                              code="platform_jwks_invalid") from exc
