"""Headers every answer carries, and what the tool trusts from proxies.

- Content-Security-Policy (CSP Level 3): scripts, styles, images, fetches and form posts from the
  tool's own origin only, so nothing inline runs. The one page that posts elsewhere, the deep
  linking answer, adds the platform's return origin to ``form-action`` (``flask.g.form_action``).
  ``frame-ancestors`` lets a page be framed by the platform that launched it
  (``flask.g.frame_ancestors``, set when a request loaded a page session) and, for pages that
  hold nothing personal, by any https origin: Canvas shows tools in an iframe, so
  ``X-Frame-Options`` (which cannot name several origins) is never sent. The login and launch
  pages that talk to the platform's storage frame add the platform's exact origin
  (``flask.g.frame_ancestors_extra``); the login page sends its form to the platform's auth
  endpoint (``flask.g.form_action``).
- Forwarded headers: ``X-Forwarded-*`` are honoured only from ``PROXY_HOPS`` proxies
  (Werkzeug ProxyFix), ``X-Forwarded-Prefix`` only with ``TRUST_FORWARDED_PREFIX=1`` and only
  when it is a plain path, never ``//host`` (which browsers read as another site).
- A redirect whose ``Location`` is absurdly long (a parameter echoed into it) becomes a 400 page.
"""
from __future__ import annotations

import io
import re
from functools import lru_cache
from urllib.parse import urlsplit

from flask import Flask, current_app, g, make_response, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.middleware.proxy_fix import ProxyFix

# Longest Location the tool sends; a login redirect with Canvas's signed lti_message_hint is ~2 KB.
MAX_LOCATION = 8192
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# An origin as CSP source expression: scheme://host[:port], nothing that could add a directive.
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_PLAIN_PREFIX = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


def frame_ancestors_default(base_url: str) -> list[str]:
    """Pages before any launch: any https origin, plus loopback pages for local trials."""
    return list(_default_frame_sources(base_url))


@lru_cache(maxsize=8)
def _default_frame_sources(base_url: str) -> tuple[str, ...]:
    sources = ("https:",)
    if (urlsplit(base_url).hostname or "") in LOOPBACK_HOSTS:
        sources += ("http://127.0.0.1:*", "http://localhost:*")
    return sources


def frame_ancestors_extra(origins) -> list[str]:
    """Exact origins added to the default for a page before any launch: the platform that runs
    the login (``flask.g.frame_ancestors_extra``), which may be a loopback http platform in front
    of a tool on another address."""
    return [o for o in (origins or []) if isinstance(o, str) and _ORIGIN.match(o)]


def frame_ancestors_for(origins) -> list[str]:
    """The platform's origins as CSP sources; anything not a bare origin is dropped."""
    kept = [o for o in (origins or []) if isinstance(o, str) and _ORIGIN.match(o)]
    return kept or ["'none'"]


def form_action_for(origins) -> list[str]:
    """``'self'`` plus the bare origins (or ``https:``) a page may send a form to; anything
    else is dropped."""
    return ["'self'"] + [o for o in (origins or [])
                         if isinstance(o, str) and (o == "https:" or _ORIGIN.match(o))]


def content_security_policy(frame_sources: list[str], form_sources: list[str] | None = None) -> str:
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action " + " ".join(form_sources or ["'self'"]),
        "base-uri 'none'",
        "frame-ancestors " + " ".join(frame_sources),
    ])


def _location_too_long(response) -> bool:
    return len(response.headers.get("Location", "")) > MAX_LOCATION


def _add_headers(response):
    if _location_too_long(response):
        from .errors import render_error
        response = make_response(render_error(
            400, "This request could not be redirected",
            "A value in the request was too long to pass on.",
            "Open the tool again from your course.", "location_too_long"))
    found = vars(g._get_current_object())  # one proxy lookup, not three
    origins = found.get("frame_ancestors")
    extra, form_action = found.get("frame_ancestors_extra"), found.get("form_action")
    headers = response.headers
    # Forms go elsewhere only from the deep linking answer (the platform's return URL) and the
    # login page (the platform's auth endpoint): g.form_action.
    headers["Content-Security-Policy"] = _request_policy(
        None if origins is None else _strings(origins), _strings(extra), _strings(form_action),
        current_app.config["TOOL_BASE_URL"])
    # Page references ride in URLs: never hand them to another site in a Referer.
    if "Referrer-Policy" not in headers:
        headers["Referrer-Policy"] = "same-origin"
    headers["X-Content-Type-Options"] = "nosniff"
    return response


def _strings(values) -> tuple[str, ...]:
    # Only text can be an origin; a stray value of another type (a damaged record) is dropped
    # here rather than breaking the cache key.
    return tuple(v for v in values or () if isinstance(v, str))


@lru_cache(maxsize=1024)  # one entry per platform and page kind: the inputs repeat on every request
def _request_policy(origins: tuple | None, extra: tuple, form_action: tuple, base_url: str) -> str:
    """The policy for a request: the session's platform origins when a page session was loaded,
    else the default sources plus the exact origins a login or launch page adds."""
    frame_sources = (frame_ancestors_for(origins) if origins is not None
                     else frame_ancestors_default(base_url) + frame_ancestors_extra(extra))
    return content_security_policy(frame_sources, form_action_for(form_action))


class PlainForwardedPrefix:
    """Drops an ``X-Forwarded-Prefix`` that is not a plain path before ProxyFix reads it.

    ProxyFix copies the prefix into SCRIPT_NAME, which every ``url_for`` link starts with; a
    prefix such as ``//evil.example`` would turn links and redirects into another site's URLs.
    """

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        prefix = environ.get("HTTP_X_FORWARDED_PREFIX")
        if prefix is not None and not all(_PLAIN_PREFIX.match(p.strip()) for p in prefix.split(",")):
            del environ["HTTP_X_FORWARDED_PREFIX"]
        return self.app(environ, start_response)


class BoundedBody:
    """Reads a body sent without Content-Length (chunked) up to the limit, and never more.

    Werkzeug's own limit on such a stream stops reading at MAX_CONTENT_LENGTH but then hands
    the view the truncated body as if it were whole (a launch would fail later with a wrong
    reason). Here a body within the limit is handed on buffered, with its length; one over the
    limit is handed on empty with a length over the limit, so the app answers 413 with its
    own page. At most ``limit + 1`` bytes are ever held. Servers that de-chunk first (waitress
    sets CONTENT_LENGTH) never reach this path.
    """

    def __init__(self, app, limit: int | None) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ, start_response):
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if self.limit and chunked and not environ.get("CONTENT_LENGTH"):
            stream, body = environ["wsgi.input"], bytearray()
            while len(body) <= self.limit:
                data = stream.read(min(64 * 1024, self.limit + 1 - len(body)))
                if not data:
                    break
                body += data
            # From here on the body is an ordinary one with a length, as waitress hands it over.
            del environ["HTTP_TRANSFER_ENCODING"]
            environ["CONTENT_LENGTH"] = str(len(body))
            environ["wsgi.input"] = io.BytesIO(bytes(body) if len(body) <= self.limit else b"")
        return self.app(environ, start_response)


def wrap_proxies(app: Flask, proxy_hops: int, trust_prefix: bool) -> None:
    """Trust ``X-Forwarded-For/Proto/Host/Port`` from ``proxy_hops`` proxies; none by default."""
    if not proxy_hops:
        return
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxy_hops, x_proto=proxy_hops, x_host=proxy_hops,
                            x_port=proxy_hops, x_prefix=proxy_hops if trust_prefix else 0)
    if trust_prefix:
        app.wsgi_app = PlainForwardedPrefix(app.wsgi_app)


def _refuse_large_body() -> None:
    """A declared body over MAX_CONTENT_LENGTH is refused before anything reads it.

    Werkzeug refuses it too, but only when a view reads the form. A chunked body has been
    given a length by :class:`BoundedBody` before it gets here.
    """
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit and (request.content_length or 0) > limit:
        raise RequestEntityTooLarge()


class NoCookieSession(SecureCookieSessionInterface):
    """Flask's signed-cookie session, switched off: the tool keeps nothing in a cookie session
    (pages carry a page-session reference, the login its binding cookie), so no request reads
    or writes one."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        return None


def register(app: Flask) -> None:
    """Every answer, pages, JSON and errors alike, leaves through :func:`_add_headers`."""
    app.session_interface = NoCookieSession()
    app.wsgi_app = BoundedBody(app.wsgi_app, app.config.get("MAX_CONTENT_LENGTH"))
    app.before_request(_refuse_large_body)
    app.after_request(_add_headers)
