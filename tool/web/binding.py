"""Launches bound to the browser that began the login (closes login CSRF).

The OIDC ``state`` must tie the authentication response to the browser that sent the request
(OAuth 2.0, RFC 6749 §10.12, which OIDC and the LTI Security Framework's login build on). A
signed, stateless state alone proves only that this tool issued it: someone could start a login,
then get another person's browser to post the resulting id_token, and that person would be
signed in as the starter. So the login leaves a proof in the browser and the launch asks for it
back:

- a cookie, ``Secure; HttpOnly; SameSite=None; Partitioned``, path ``/lti/``, living as long as
  the state. ``Partitioned`` (CHIPS) keeps it usable inside the platform's iframe in browsers that
  block third-party cookies but keep partitioned ones (Chrome, Edge, Firefox);
- LTI Platform Storage when the login offers ``lti_storage_target`` (1EdTech LTI Client Side
  postMessages and postMessage Storage; facts sheet section 10): the login answers a page whose
  script stores the proof in the platform's frame with ``lti.put_data`` before going on to the
  auth endpoint. At launch, without the cookie, the tool answers a page whose script reads it
  back with ``lti.get_data`` and posts the launch again, from the tool's own origin, with the
  value read. Only that same-origin post may carry a value: another site's form cannot. The
  page's script accepts answers only from the auth endpoint's origin, so a site that frames the
  tool cannot answer for the platform.

A launch that brings neither is refused with a page saying which browser setting to change,
before anything in it is checked or spent: no session, no nonce used, nothing written.
"""
from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from flask import current_app, g, make_response, redirect, render_template, request

from ..lti import states
from ..lti.errors import LaunchError

log = logging.getLogger("tool.lti")

COOKIE_PREFIX = "lti_login_"
COOKIE_PATH = "/lti/"
STORAGE_KEY_PREFIX = "lti_state_"
# The field only the tool's own launch page sends, with the value read from platform storage.
STORAGE_FIELD = "lti_storage_value"


class LaunchNotBound(LaunchError):
    """The launch came back without the cookie or platform-stored value its login left."""

    status = 403
    title = "This launch could not be matched to your browser"


def _not_bound(why: str, code: str = "launch_not_bound") -> LaunchNotBound:
    return LaunchNotBound(
        f"{why} The tool checks that a launch ends in the browser where it began, so that nobody "
        "can sign you in with a launch they started.",
        hint="Allow cookies for this tool's site in your browser (in Chrome: Settings, Privacy and "
             f"security, Third-party cookies, Allowed to use third-party cookies: add {_tool_host()}), "
             "or use an up-to-date Chrome, Edge or Firefox, which keep this tool's partitioned "
             "cookie even when third-party cookies are blocked; then open the tool again from your "
             "course. If a link from someone else brought you here, do not try again from that "
             "link: open the tool from your own course.",
        code=code)


def _tool_host() -> str:
    return urlsplit(current_app.config["TOOL_BASE_URL"]).netloc


def _tool_origin() -> str:
    """The origin browsers name for this tool (a default port is never written in it)."""
    parts = urlsplit(current_app.config["TOOL_BASE_URL"])
    default = {"https": 443, "http": 80}.get(parts.scheme)
    port = "" if parts.port in (None, default) else f":{parts.port}"
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
    return f"{parts.scheme}://{host}{port}".lower()


def cookie_name(state: str) -> str:
    return COOKIE_PREFIX + states.fingerprint(state)


def storage_key(state: str) -> str:
    return STORAGE_KEY_PREFIX + states.fingerprint(state)


def _no_store(response):
    # Both pages carry a live state (and the launch page an id_token): never cache them.
    response.headers["Cache-Control"] = "no-store"
    return response


# -- login ---------------------------------------------------------------------------------------
def login_answer(login):
    """The answer to an accepted login: the redirect to the auth endpoint, or, when the platform
    offers storage, a page that stores the proof there first and then goes on (a GET form)."""
    if login.storage is None:
        response = redirect(login.url, code=302)
    else:
        response = make_response(_storage_login_page(login))
    response.set_cookie(cookie_name(login.state), states.proof(login.state, "cookie"),
                        max_age=current_app.config["LOGIN_STATE_TTL"], path=COOKIE_PATH,
                        secure=True, httponly=True, samesite="None", partitioned=True)
    return _no_store(response)


def _storage_login_page(login) -> str:
    parts = urlsplit(login.endpoint)
    action = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    # A GET form replaces the action's query, so every parameter (the endpoint's own included)
    # travels as a field.
    fields = parse_qsl(parts.query, keep_blank_values=True) + list(login.params.items())
    g.form_action = [login.storage.origin]
    if parts.scheme == "https":
        # Canvas's auth endpoint (sso.canvaslms.com) redirects to the school's own domain, and
        # browsers hold a form's redirects to form-action too.
        g.form_action.append("https:")
    g.frame_ancestors_extra = [login.storage.origin]
    return render_template("lti/login_storage.html", action=action, fields=fields,
                           target=login.storage.target, origin=login.storage.origin,
                           key=storage_key(login.state), value=states.proof(login.state, "storage"))


# -- launch --------------------------------------------------------------------------------------
def bind_launch():
    """Called first thing by the launch view: None when this browser began the login, else the
    page that reads the platform's storage (a Response), or :class:`LaunchNotBound`.

    A state that is missing, forged or too old is left to the launch's own checks, which refuse
    it with their precise reason; only a state this tool issued gets this far.
    """
    state = request.form.get("state")
    issued = states.peek(state)
    if issued is None:
        return None
    if states.proof_matches(request.cookies.get(cookie_name(state)), state, "cookie"):
        return None
    if STORAGE_FIELD in request.form:
        _check_storage_post(state, issued)
        return None
    if issued.storage is None:
        raise _not_bound("Your browser did not send back the cookie the tool set when this launch "
                         "began.")
    return _no_store(make_response(_storage_launch_page(state, issued.storage)))


def _storage_launch_page(state: str, storage: states.Storage) -> str:
    g.frame_ancestors_extra = [storage.origin]
    fields = [("id_token", request.form.get("id_token", "")), ("state", state)]
    return render_template("lti/launch_storage.html", fields=fields, target=storage.target,
                           origin=storage.origin, key=storage_key(state))


def _same_origin_post() -> bool:
    """The post comes from a page of this tool (Fetch Metadata, or the Origin header)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return origin.lower() == _tool_origin()
    return request.headers.get("Sec-Fetch-Site") == "same-origin"


def _check_storage_post(state: str, issued: states.IssuedState) -> None:
    if issued.storage is None:
        raise _not_bound("This launch did not begin with the platform's storage.")
    if not _same_origin_post():
        log.warning("launch with a platform storage value posted from %r refused",
                    request.headers.get("Origin") or request.headers.get("Sec-Fetch-Site"))
        raise _not_bound("The check of this launch was not sent by the tool's own page.",
                         code="launch_check_foreign")
    if not states.proof_matches(request.form.get(STORAGE_FIELD), state, "storage"):
        raise _not_bound("Your browser did not send back the cookie the tool set when this launch "
                         "began, and the course page did not hold the value the tool stored there.")
