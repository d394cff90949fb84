"""One HTTP session per thread for every call to a platform: keep-alive, User-Agent, timeouts.

Canvas requires a User-Agent on service calls (facts sheet section 8); every call has a
(connect, read) timeout so a stuck platform cannot hang a worker or a request.

What ``requests`` would read from the environment on every call (proxy variables, the CA
bundle) is read once per platform origin: a roster sync makes a thousand calls, and each read
walked the whole environment and looked for netrc files. Netrc credentials are never used:
every platform call carries its own ``Authorization`` (a client assertion or a bearer token),
which netrc's basic credentials would replace.

Service calls (tokens, NRPS pages, AGS) go through :func:`call` instead, on urllib3 directly:
a roster sync makes one call per 50 members, and ``requests`` spent about 1 ms of CPU on each
(sessions, hooks, adapters, cookie jars) against 0.5 ms for urllib3 doing the same call. It
keeps what the service client relies on: (connect, read) timeouts, no retries of its own (the
client retries with its budget), the environment's proxies and CA bundle as ``requests`` reads
them, certificate checks, gzip, redirects without the ``Authorization`` header once the host
changes, and the same two failures, ``requests.Timeout`` and ``requests.ConnectionError``.
"""
from __future__ import annotations

import json
import os
import threading
from urllib.parse import urlencode, urlsplit

import certifi
import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from urllib3.exceptions import HTTPError, MaxRetryError, NewConnectionError, ResponseError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from .errors import PlatformError

USER_AGENT = "roster-grades-lti-tool/1.0 (+LTI 1.3 Advantage)"
DEFAULT_TIMEOUT = (5.0, 15.0)
ORIGINS_KEPT = 256  # environment answers remembered per session, one per platform origin

_local = threading.local()


def read_environment(url: str) -> tuple[dict, str | None]:
    """The proxies (``NO_PROXY`` applied) and CA bundle the environment gives ``url``: the same
    variables ``requests`` itself honours, with the same precedence. The bundle only matters
    for https."""
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    return get_environ_proxies(url), bundle if urlsplit(url).scheme == "https" else None


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
            found = self._environment[origin] = read_environment(url)
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


# -- service calls -------------------------------------------------------------------------------
MAX_REDIRECTS = 10
# Nothing is retried here (the service client retries within its budget); redirects are followed.
_NO_RETRIES = urllib3.Retry(total=MAX_REDIRECTS, connect=0, read=0, status=0, other=0,
                            redirect=MAX_REDIRECTS, raise_on_redirect=True, raise_on_status=False)
_CHARSET = "charset="


class CallTimedOut(requests.Timeout):
    """The platform did not connect or answer within the timeout."""


class CallFailed(requests.ConnectionError):
    """No answer: refused, reset, DNS, TLS, proxy or a broken response."""


class PlatformResponse:
    """A platform's answer to a service call: the parts the service client reads."""

    __slots__ = ("status_code", "reason", "headers", "content", "url")

    def __init__(self, status_code: int, reason: str, headers, content: bytes, url: str) -> None:
        self.status_code = status_code
        self.reason = reason
        self.headers = headers  # case-insensitive (urllib3's HTTPHeaderDict)
        self.content = content
        self.url = url

    @property
    def text(self) -> str:
        content_type = self.headers.get("Content-Type", "")
        at = content_type.lower().find(_CHARSET)
        charset = content_type[at + len(_CHARSET):].split(";")[0].strip(' "') if at >= 0 else ""
        try:
            return self.content.decode(charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.content.decode("utf-8", errors="replace")

    def json(self):
        """The body as JSON; ``ValueError`` when it is not."""
        return json.loads(self.content)


class _Managers:
    """urllib3 connection pools for this process: one per (proxy, CA bundle) in use."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.by_route: dict[tuple[str | None, str | None], urllib3.PoolManager] = {}
        self.environment: dict[str, tuple[str | None, str | None]] = {}

    def _route(self, url: str) -> tuple[str | None, str | None]:
        """(proxy URL or None, CA bundle or None) for ``url``'s origin, read once per origin."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self.environment.get(origin)
        if found is None:
            proxies, bundle = read_environment(url)
            found = (proxies.get(parts.scheme) or proxies.get("all"), bundle)
            with self.lock:
                if len(self.environment) >= ORIGINS_KEPT:
                    self.environment.clear()
                self.environment[origin] = found
        return found

    def for_url(self, url: str) -> urllib3.PoolManager:
        route = proxy, bundle = self._route(url)
        manager = self.by_route.get(route)
        if manager is None:
            with self.lock:
                manager = self.by_route.get(route)
                if manager is None:
                    options = dict(num_pools=ORIGINS_KEPT, maxsize=8, cert_reqs="CERT_REQUIRED",
                                   ca_certs=bundle or certifi.where())
                    if proxy:
                        auth = urllib3.util.parse_url(proxy).auth
                        headers = urllib3.make_headers(proxy_basic_auth=auth) if auth else None
                        manager = urllib3.ProxyManager(proxy, proxy_headers=headers, **options)
                    else:
                        manager = urllib3.PoolManager(**options)
                    self.by_route[route] = manager
        return manager


_managers = _Managers()


def _pools() -> _Managers:
    global _managers
    if _managers.pid != os.getpid():  # a forked child never shares its parent's sockets
        _managers = _Managers()
    return _managers


def call(method: str, url: str, *, headers: dict[str, str], body: bytes | None = None,
         params: dict | None = None, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> PlatformResponse:
    """One service call: the platform's answer whatever its status, or ``CallTimedOut`` /
    ``CallFailed`` when none came. ``params`` are added to the URL's query."""
    if params:
        query = urlencode({k: v for k, v in params.items() if v is not None}, doseq=True)
        if query:
            url += ("&" if "?" in url else "?") + query
    sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", "Accept": "*/*", **headers}
    try:
        answer = _pools().for_url(url).urlopen(
            method, url, body=body, headers=sent, redirect=True, retries=_NO_RETRIES,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]), preload_content=True)
    except MaxRetryError as exc:
        reason = exc.reason
        if isinstance(reason, ResponseError):  # more redirects than MAX_REDIRECTS
            raise PlatformError(f"{method} {url} was redirected more than {MAX_REDIRECTS} times.",
                                code="redirect_loop") from None
        raise _failure(reason or exc, url) from None
    except HTTPError as exc:
        raise _failure(exc, url) from None
    return PlatformResponse(answer.status, answer.reason or "", answer.headers, answer.data or b"",
                            url)


def _failure(exc: BaseException, url: str) -> requests.RequestException:
    what = f"{exc.__class__.__name__} calling {urlsplit(url).netloc}"
    if isinstance(exc, Urllib3Timeout) and not isinstance(exc, NewConnectionError):
        return CallTimedOut(what)
    return CallFailed(what)
