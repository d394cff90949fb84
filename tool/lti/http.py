"""One HTTP session per process for every call to a platform: keep-alive, User-Agent, timeouts.

Canvas requires a User-Agent on service calls (facts sheet section 8); every call has a
(connect, read) timeout so a stuck platform cannot hang a worker or a request.
"""
from __future__ import annotations

import threading

import requests
from requests.adapters import HTTPAdapter

USER_AGENT = "roster-grades-lti-tool/1.0 (+LTI 1.3 Advantage)"
DEFAULT_TIMEOUT = (5.0, 15.0)

_local = threading.local()


def session() -> requests.Session:
    """A keep-alive session for this thread (requests.Session is not guaranteed thread-safe)."""
    sess = getattr(_local, "session", None)
    if sess is None:
        sess = requests.Session()
        sess.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=8, max_retries=0)
        sess.mount("http://", adapter)
        sess.mount("https://", adapter)
        _local.session = sess
    return sess
