"""Errors any part of the tool raises, each with a reason a person can act on.

The web layer turns them into a page or JSON; ``status`` is 4xx when the caller (platform or
browser) sent something wrong, 5xx only when the fault is ours or an upstream platform's.
Errors about LTI messages and platforms live in ``tool/lti/errors.py`` and derive from
:class:`ToolError`.
"""
from __future__ import annotations


class ToolError(Exception):
    status = 400
    title = "Request refused"

    def __init__(self, reason: str, *, hint: str | None = None, code: str | None = None,
                 status: int | None = None, command: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint
        self.command = command  # a command an administrator can run to fix it
        self.code = code or self.__class__.__name__
        if status is not None:
            self.status = status

    def as_dict(self) -> dict:
        out = {"error": self.code, "reason": self.reason}
        if self.hint:
            out["hint"] = self.hint
        if self.command:
            out["command"] = self.command
        return out


class AccessDenied(ToolError):
    """The page session is valid but does not allow this (a student on an instructor page)."""

    status = 403
    title = "Not allowed"


class SessionExpired(ToolError):
    """No usable page session: missing, forged, revoked or past its lifetime."""

    status = 401
    # Most 401s come from a link opened without any launch: claim no session existed.
    title = "Please sign in through your course"


class NotFound(ToolError):
    status = 404
    title = "Not found"


class Conflict(ToolError):
    """The request is understood but the thing's state forbids it (an unpublished assessment)."""

    status = 409
    title = "Not possible right now"


class FormInvalid(ToolError):
    """A form failed validation; ``errors`` maps field names to messages, ``values`` keeps input."""

    status = 422
    title = "Please check the form"

    def __init__(self, reason: str, *, errors: dict[str, str] | None = None,
                 values: dict | None = None, **kw) -> None:
        super().__init__(reason, **kw)
        self.errors = errors or {}
        self.values = values or {}
