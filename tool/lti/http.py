"""One HTTP session per thread for every call to a platform: keep-alive, User-Agent, timeouts.

Canvas requires a User-Agent on service calls (facts sheet section 8); every call has a
(connect, read) timeout so a stuck platform cannot hang a worker or a request.

What ``requests`` would read from the environment on every call (proxy variables, the CA
bundle) is read once per platform origin: a roster sync makes a thousand calls, and each read
walked the whole environment and looked for netrc files. Netrc credentials are never used:
every platform call carries its own ``Authorization`` (a client assertion or a bearer token),
which netrc's basic credentials would replace.
"""
from __future__ import annotations

import os
import threading
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

USER_AGENT = "roster-grades-lti-tool/1.0 (+LTI 1.3 Advantage)"
DEFAULT_TIMEOUT = (5.0, 15.0)
ORIGINS_KEPT = 256  # environment answers remembered per session, one per platform origin

_local = threading.local()


class PlatformSession(requests.Session):
    """A ``requests.Session`` that reads the environment once per origin (see the module)."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # the environment is read below, once per origin; no netrc
        self._environment: dict[str, tuple[dict, str | None]] = {}

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._environment.get(origin)
        if found is None:
            if len(self._environment) >= ORIGINS_KEPT:
                self._environment.clear()
            # The same variables requests itself honours, with the same precedence.
            # The bundle only matters for https; requests looks the path up on every call.
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            found = (get_environ_proxies(url), bundle if parts.scheme == "https" else None)
            self._environment[origin] = found
        env_proxies, bundle = found
        proxies = {**env_proxies, **(proxies or {})}
        if bundle and (verify is True or verify is None):
            verify = bundle
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def session() -> requests.Session:
    """A keep-alive session for this thread (requests.Session is not guaranteed thread-safe)."""
    sess = getattr(_local, "session", None)
    if sess is None:
        sess = PlatformSession()
        sess.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=8, max_retries=0)
        sess.mount("http://", adapter)
        sess.mount("https://", adapter)
        _local.session = sess
    return sess
