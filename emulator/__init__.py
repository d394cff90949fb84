"""A Canvas-faithful LTI 1.3 Advantage platform emulator.

Implements /work/shared/reference/canvas-lti13-facts.md sections 1 (keys, JWKS),
2 (login initiation, auth endpoint), 3 (id_token, deep linking), 6 (client credentials),
7 (NRPS), 8 (AGS: line items, scores, results, the gradebook) and 9 (throttling), plus a
``Browser`` that drives a launch over HTTP.
"""

from .browser import Browser
from .constants import (
    CONTENT_DEVELOPER, DEFAULT_SCOPES, DELETE, INSTITUTION_ADMIN, INSTITUTION_INSTRUCTOR,
    INSTITUTION_STUDENT, INSTRUCTOR, LEARNER, LINEITEM_CONTAINER_MEDIA_TYPE,
    LINEITEM_MEDIA_TYPE, MENTOR, NRPS_MEDIA_TYPE, RESULT_CONTAINER_MEDIA_TYPE, SCOPE_LINEITEM,
    SCOPE_LINEITEM_READONLY, SCOPE_NRPS, SCOPE_RESULT_READONLY, SCOPE_SCORE, SCORE_MEDIA_TYPE,
    STUDENT_ROLE, SUBMISSION_EXT, SYSTEM_SYSADMIN, SYSTEM_USER, TA,
)
from .platform import Platform
from .server import ServerThread, serve

__all__ = [
    "Platform", "Browser", "DELETE", "ServerThread", "serve",
    "INSTRUCTOR", "LEARNER", "STUDENT_ROLE", "TA", "MENTOR", "CONTENT_DEVELOPER",
    "INSTITUTION_INSTRUCTOR", "INSTITUTION_STUDENT", "INSTITUTION_ADMIN",
    "SYSTEM_USER", "SYSTEM_SYSADMIN",
    "SCOPE_LINEITEM", "SCOPE_LINEITEM_READONLY", "SCOPE_RESULT_READONLY", "SCOPE_SCORE",
    "SCOPE_NRPS", "DEFAULT_SCOPES", "NRPS_MEDIA_TYPE", "LINEITEM_MEDIA_TYPE",
    "LINEITEM_CONTAINER_MEDIA_TYPE", "SCORE_MEDIA_TYPE", "RESULT_CONTAINER_MEDIA_TYPE",
    "SUBMISSION_EXT",
]
