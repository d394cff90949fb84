"""Errors about LTI messages and platforms, each with a reason an administrator can act on.

Errors that are not about LTI (access, sessions, forms) live in ``tool/errors.py``; these derive
from its :class:`ToolError`, so the web layer renders them the same way.
"""
from __future__ import annotations

import shlex

from ..errors import ToolError
from .claims import plausible_identifier


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
                 retry_after: float | None = None, platform_message: str | None = None,
                 **kw) -> None:
        super().__init__(reason, **kw)
        self.http_status = http_status
        self.retryable = retryable
        self.retry_after = retry_after
        # The platform's own words (Canvas ``errors.message``), without the tool's framing.
        self.platform_message = platform_message


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
