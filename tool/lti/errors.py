"""Errors raised inside the tool, each with a reason an administrator can act on.

The web layer turns them into a page or JSON; ``status`` is 4xx when the caller (platform or
browser) sent something wrong, 5xx only when the fault is ours or an upstream platform's.
"""
from __future__ import annotations

import shlex

from .claims import plausible_identifier


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


class LoginError(ToolError):
    """The OIDC login initiation (LTI 1.3 core §5.1.1) could not be accepted."""

    title = "This launch could not start"


class LaunchError(ToolError):
    """The id_token or the launch form failed a check (LTI 1.3 core §5.1.2, Security Framework §5.1.3)."""

    title = "This launch was refused"


class RegistrationNotFound(LaunchError):
    """No registration for (issuer, client_id)."""

    title = "This platform is not registered with the tool"


class DeploymentNotFound(LaunchError):
    title = "This deployment is not registered with the tool"


class PlatformError(ToolError):
    """A platform endpoint (JWKS, token, NRPS, AGS) failed or answered something unusable."""

    status = 502
    title = "The learning platform did not answer as expected"

    def __init__(self, reason: str, *, http_status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None, **kw) -> None:
        super().__init__(reason, **kw)
        self.http_status = http_status
        self.retryable = retryable
        self.retry_after = retry_after


class AccessDenied(ToolError):
    status = 403
    title = "Not allowed"


class SessionExpired(ToolError):
    status = 401
    title = "Your session has ended"


def fix_command(base: str, **options: str) -> str | None:
    """``base --option value ...`` for an administrator to paste, or None when it cannot be offered.

    Every value is quoted for a POSIX shell (``shlex.quote``) so a value such as
    ``x'; id; echo '`` stays one argument. Values that are not plausible identifiers (printable,
    1 to 255 characters) get no command at all: the page gives the reason only, since nobody
    should be invited to paste a value like that.
    """
    parts = [base]
    for name, value in options.items():
        if not plausible_identifier(value):
            return None
        parts.append(f"--{name.replace('_', '-')} {shlex.quote(value)}")
    return " ".join(parts)
