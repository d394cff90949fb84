"""Bearer token checks for the LTI Advantage services (facts sheet, sections 6, 7)."""

import time

from flask import request


def bearer_grant(platform, scope):
    """(grant, None) if the request's bearer token is valid and has ``scope``,
    else (None, message) for a 401."""
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        return None, "Missing or malformed access token"
    with platform.lock:
        grant = platform.access_tokens.get(token.strip())
    if grant is None:
        return None, "Invalid access token"
    if grant["revoked"] or grant["expires_at"] <= time.time():
        return None, "Access token expired"
    if scope not in grant["scopes"]:
        return None, "Insufficient scope: " + scope
    return grant, None
