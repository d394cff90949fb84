"""Launch targets the tool hands to the platform, which the platform launches back later.

Canvas keeps a score's ``submission_data`` for good and SpeedGrader launches it as an LTI launch
(facts sheet section 8): it must be a launch target under the tool's launch URL that names the
attempt, never a page-session link (those end after hours). The platform puts the URL in the
id_token's ``target_link_uri`` claim; ``dispatch`` resolvers read the query back.
"""
from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from flask import current_app

REVIEW_PARAM = "review_attempt"
# The custom parameter a deep-linked resource link carries (Deep Linking 2.0 §3.1 ``custom``).
ASSESSMENT_CUSTOM = "assessment_id"


def launch_url() -> str:
    return current_app.config["TOOL_BASE_URL"] + "/lti/launch"


def submission_review_url(attempt_id: int) -> str:
    """The ``submission_data`` URL of an attempt: a launch that opens its review."""
    return f"{launch_url()}?{REVIEW_PARAM}={int(attempt_id)}"


def review_attempt_id(target_link_uri: str | None) -> int | None:
    """The attempt a launch's ``target_link_uri`` names, or None (bounded, digits only)."""
    if not target_link_uri:
        return None
    try:
        values = parse_qs(urlsplit(target_link_uri).query).get(REVIEW_PARAM) or []
    except ValueError:  # urlsplit refuses some malformed hosts ("https://[x")
        return None
    value = values[0] if values else ""
    return row_id(value) if len(value) <= 10 else None


def row_id(value) -> int | None:
    """A row id written as plain digits, or None.

    Ids stop at 2**31 (an INTEGER column: PostgreSQL refuses larger values outright, a 500
    instead of "not found"); the length check keeps ``int()`` away from huge strings.
    """
    if not (isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12):
        return None
    return int(value) if 0 < int(value) < 2**31 else None
