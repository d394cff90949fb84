"""What every LTI Advantage service call goes through (facts sheet, sections 7, 8, 9).

``serve`` wraps a service handler the way Canvas's middleware and controllers do:
the throttle bucket of the caller's client_id (``throttle.py``, when switched on), the
latency and fault switches (``models.Faults``), the bearer token and scope check, the
``X-Request-Cost`` / ``X-Rate-Limit-Remaining`` headers and a log entry per call.

Scope refusals follow canvas-lms ``LtiServices#verify_access_scope``: 401 with
``{"errors": {"type": "unauthorized", "message": "Insufficient permissions"}}`` (Canvas
never answers 403 for a missing scope; its only 403 on these routes is the throttle).
"""

import json
import time

from flask import Response, request

THROTTLED_TEXT = "403 Forbidden (Rate Limit Exceeded)"
LOGGED_HEADERS = ("Accept", "User-Agent", "Authorization", "Content-Type")


def errors(status, kind, message):
    """Canvas ``render_error``: ``{"errors": {"type": <status name>, "message": ...}}``."""
    body = json.dumps({"errors": {"type": kind, "message": message}})
    return Response(body, status=status, content_type="application/json")


def rails_error(status, message):
    """Canvas's generic API error (RecordNotFound, ParameterMissing): a list of messages."""
    body = json.dumps({"errors": [{"message": message}]})
    return Response(body, status=status, content_type="application/json")


def not_found():
    return rails_error(404, "The specified resource does not exist.")


def token_grant(platform):
    """(grant, problem): the grant of the request's bearer token, or why there is none."""
    header = request.headers.get("Authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        return None, "Missing access token"
    with platform.lock:
        grant = platform.access_tokens.get(token.strip())
    if grant is None:
        return None, "Invalid access token"
    if grant["revoked"] or grant["expires_at"] <= time.time():
        return None, "Access token expired"
    return grant, None


def throttled():
    r = Response(THROTTLED_TEXT, status=403, content_type="text/plain; charset=utf-8")
    r.headers["X-Rate-Limit-Remaining"] = "0.0"
    return r


def fault_response(platform, faults, fault):
    """The answer for an injected fault (see ``Faults``); None for ``timeout_after_apply``."""
    if fault in ("throttle", 403):
        platform.count("throttle_refusals")
        return throttled()
    if fault == 429:
        r = errors(429, "too_many_requests", "Rate limit exceeded")
        r.headers["Retry-After"] = "1"
        return r
    if fault == "5xx":
        status = faults.next_5xx()
        return Response(f"{status} upstream error", status=status, content_type="text/plain")
    if fault == "timeout":
        platform.hang(float(faults.hang_seconds))
        return Response("504 Gateway Timeout", status=504, content_type="text/plain")
    if isinstance(fault, int):
        return Response(f"{fault} upstream error", status=fault, content_type="text/plain")
    return None


def serve(platform, *, service, faults, handler, scopes=None, latency=0.0, log=None):
    """Run ``handler(grant)`` as Canvas would answer a service call.

    ``scopes``: any one of them admits the call (None: the handler checks). Order as in
    Canvas: throttle bucket (middleware), then the call itself (latency, faults), then
    token and scope checks, then the handler.
    """
    cpu_started = time.thread_time()
    grant, problem = token_grant(platform)
    client = grant["client_id"] if grant else None
    throttle = platform.throttle
    bucketed = throttle.enabled and client is not None
    allowed = throttle.reserve(client) if bucketed else True
    remaining = None
    try:
        if not allowed:
            platform.count("throttle_refusals")
            response = throttled()
        else:
            response = _call(platform, faults, handler, grant, problem, scopes, latency)
    finally:
        cost = time.thread_time() - cpu_started
        if bucketed:
            remaining = throttle.release(client, cost, allowed)
    response.headers["X-Request-Cost"] = f"{cost:.6f}"
    if "X-Rate-Limit-Remaining" not in response.headers:
        value = remaining if remaining is not None else float(faults.rate_limit_remaining)
        response.headers["X-Rate-Limit-Remaining"] = str(round(max(value, 0.0), 6))
    if log is not None:
        entry = {"service": service, "method": request.method, "path": request.path,
                 "query": request.query_string.decode("latin-1"),
                 "headers": {h: request.headers.get(h) for h in LOGGED_HEADERS
                             if h in request.headers},
                 "status": response.status_code, "client_id": client, "time": time.time()}
        with platform.lock:
            log.append(entry)
    return response


def _call(platform, faults, handler, grant, problem, scopes, latency):
    wait = float(latency or 0) + float(faults.delay or 0)
    if wait > 0:
        platform.hang(wait)
    fault = faults.next_fault()
    response = fault_response(platform, faults, fault)
    if response is not None:
        return response
    if grant is None:
        response = errors(401, "unauthorized", problem)
    elif scopes is not None and not set(scopes) & set(grant["scopes"]):
        response = errors(401, "unauthorized", "Insufficient permissions")
    else:
        response = handler(grant)
    if fault == "timeout_after_apply":
        platform.hang(float(faults.hang_seconds))
    return response
