"""The signed, short-lived page token that stands in for a session cookie after a launch.

Canvas shows the tool in an iframe and Safari blocks third-party cookies there, so pages carry
``?t=<token>`` (and forms a hidden field) instead. The token names the user, course and view
chosen at launch; it is signed with SECRET_KEY and expires after ``page_token_ttl`` seconds.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from flask import current_app, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from ..lti.errors import AccessDenied, SessionExpired

SALT = "page-token-v1"


@dataclass(frozen=True)
class PageSession:
    user_id: int
    registration_id: int
    context_id: int | None
    view: str  # "instructor" or "student"
    resource_link_id: int | None = None

    @property
    def is_instructor(self) -> bool:
        return self.view == "instructor"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def issue(page: PageSession) -> str:
    return _serializer().dumps(asdict(page))


def current() -> PageSession:
    token = request.values.get("t") or request.headers.get("X-Page-Token")
    if not token:
        raise SessionExpired("This page needs a launch from the course.",
                             hint="Open the tool from your course in the learning platform.",
                             code="no_session")
    try:
        data = _serializer().loads(token, max_age=current_app.config["PAGE_TOKEN_TTL"])
    except SignatureExpired:
        raise SessionExpired("Your session with the tool has expired.",
                             hint="Launch the tool again from your course.", code="session_expired")
    except BadSignature:
        raise SessionExpired("This page link is not valid.",
                             hint="Launch the tool again from your course.", code="session_invalid")
    return PageSession(**data)


def require_instructor() -> PageSession:
    page = current()
    if not page.is_instructor:
        raise AccessDenied("This page is for instructors of the course.", code="instructors_only")
    return page
