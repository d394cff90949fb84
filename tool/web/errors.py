"""Turning errors into answers: a page for people, JSON for programs; never a raw 500 page."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from ..lti.errors import ToolError

log = logging.getLogger("tool.web")


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


def register(app: Flask) -> None:
    @app.errorhandler(ToolError)
    def _tool_error(exc: ToolError):
        log.warning("%s %s refused (%s, %s): %s", request.method, request.path, exc.status, exc.code,
                    exc.reason)
        return render_error(exc.status, exc.title, exc.reason, exc.hint, exc.code, exc.command)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return render_error(exc.code or 400, exc.name, exc.description or exc.name, None,
                            (exc.name or "error").lower().replace(" ", "_"))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.path)
        return render_error(500, "Something went wrong in the tool",
                            "The tool hit an unexpected error; it has been logged.",
                            "Try again; if it keeps happening, tell your administrator the time it happened.",
                            "internal_error")
