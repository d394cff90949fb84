"""Turning errors into answers: a page for people, JSON for programs; never a raw 500 page.

Werkzeug's HTTP errors get the tool's words (404, 405, 413...) and keep their headers: a 405
carries ``Allow`` (RFC 9110 §15.5.6). A 401 never claims a session existed: someone who opens a
page link without a launch never had one, so it asks them to sign in through their course.
"""
from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..errors import ToolError

log = logging.getLogger("tool.web")

SIGN_IN_TITLE = "Please sign in through your course"
SIGN_IN_HINT = "Open the tool from your course in the learning platform: that signs you in."

# Werkzeug's errors in words a person can act on: (title, reason, hint).
HTTP_WORDS = {
    401: (SIGN_IN_TITLE, "This page is only shown after opening the tool from a course.", SIGN_IN_HINT),
    404: ("Page not found", "There is no page at this address.",
          "Open the tool from your course in the learning platform."),
    405: ("This address does not take that kind of request",
          "The tool does not answer this request method here.", None),
    413: ("The request was too large", "The tool accepts at most {limit} in one request.",
          "A launch from Canvas is far smaller: open the tool again from your course."),
}


def wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def render_error(status: int, title: str, reason: str, hint: str | None = None, code: str = "error",
                 command: str | None = None):
    if wants_json():
        body = {"error": code, "reason": reason}
        if hint:
            body["hint"] = hint
        if command:
            body["command"] = command
        return jsonify(body), status
    return render_template("error.html", status=status, title=title, reason=reason, hint=hint,
                           code=code, command=command), status


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"


def _allowed_methods() -> list[str]:
    """Methods this path answers, less the one refused (a route may exist only to explain a 405)."""
    try:
        methods = set(current_app.url_map.bind_to_environ(request.environ).allowed_methods())
    except Exception:  # a path no rule matches: nothing to offer
        return []
    methods.discard(request.method)
    if request.method == "GET":
        methods.discard("HEAD")
    return sorted(methods)


def register(app: Flask) -> None:
    @app.errorhandler(ToolError)
    def _tool_error(exc: ToolError):
        log.warning("%s %r refused (%s, %s): %r", request.method, request.path, exc.status, exc.code,
                    exc.reason)
        title = SIGN_IN_TITLE if exc.status == 401 else exc.title
        hint = exc.hint or (SIGN_IN_HINT if exc.status == 401 else None)
        response = make_response(render_error(exc.status, title, exc.reason, hint, exc.code, exc.command))
        if exc.status == 405:
            response.headers["Allow"] = ", ".join(_allowed_methods())
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 400
        title, reason, hint = HTTP_WORDS.get(status, (exc.name, exc.description or exc.name, None))
        if exc.description and exc.description != type(exc).description:
            reason = exc.description  # a view's own reason (abort(404, "...")) beats the generic one
        if status == 413:
            reason = reason.format(limit=_size(current_app.config.get("MAX_CONTENT_LENGTH") or 0))
            log.warning("%s %r refused: body over %s bytes", request.method, request.path,
                        current_app.config.get("MAX_CONTENT_LENGTH"))
        response = make_response(render_error(status, title, reason, hint,
                                              (exc.name or "error").lower().replace(" ", "_")))
        # Werkzeug's own headers, such as Allow on a 405; the body and its type are ours.
        for name, value in exc.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        if isinstance(exc, MethodNotAllowed) and "Allow" not in response.headers:
            response.headers["Allow"] = ", ".join(_allowed_methods())
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %r", request.method, request.path)
        return render_error(500, "Something went wrong in the tool",
                            "The tool hit an unexpected error; it has been logged.",
                            "Try again; if it keeps happening, tell your administrator the time it happened.",
                            "internal_error")
