"""Names and Role Provisioning Service (facts sheet, section 7) with Canvas
throttling and fault injection (section 9).

Canvas lists only active members, pages by ``Link`` (entries joined by ","
with no space), ``limit`` default and max 50. Each page URL carries a
case-sensitive ``cursor`` that is checked, so a tool that mangles (e.g.
lower-cases) the Link header gets 400. ``differences`` links are not Canvas
(other platforms) and only appear when ``platform.nrps_offer_differences``.
"""

import base64
import hashlib
import hmac
import json
import math
import secrets
from urllib.parse import urlencode

from flask import Response, request

from . import constants as C
from .services import serve
from .claims import expand_custom, personal_claims

PAGE_MAX = 50


def _errors(status, kind, message):
    body = json.dumps({"errors": {"type": kind, "message": message}})
    return Response(body, status=status, content_type="application/json")


def make_cursor(platform, course_id, page, limit, filters):
    """Opaque mixed-case token binding a page URL to its page and filters."""
    text = f"{course_id}|{page}|{limit}|{sorted(filters.items())}".encode()
    digest = hmac.new(platform.secret, text, hashlib.sha256).digest()[:9]
    return "Cx" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _role_matches(wanted, roles):
    if "://" not in wanted:  # short name such as "Learner"
        return any(r.rsplit("#", 1)[-1] == wanted for r in roles)
    return wanted in roles


def member_list(platform, course, filters):
    """[(enrollment, status)] for the filters, in stable roster order; cached per version.

    Returns (members, seq) where seq is the course's last change sequence.
    """
    key = (course.course_id, tuple(sorted(filters.items())), platform.nrps_report_inactive)
    with platform.lock:
        cache = platform.nrps_cache
        hit = cache.get(key)
        if hit and hit[0] == course.version:
            return hit[1], hit[2]
        seq = course.changes[-1][0] if course.changes else 0
        since = filters.get("since")
        if since is not None:
            _, since_seq = platform.since_tokens[since]
            changed = {}
            for s, sub in reversed(course.changes):
                if s <= since_seq:
                    break
                changed.setdefault(sub, s)
            rows = []
            for sub, _ in sorted(changed.items(), key=lambda kv: kv[1]):
                if sub in course.enrollments:
                    e = course.enrollments[sub]
                    rows.append((e, e.status))
                elif sub in course.removed:
                    rows.append((course.removed[sub], "Deleted"))
        else:
            rows = [(e, e.status) for e in course.enrollments.values()
                    if e.status == "Active" or platform.nrps_report_inactive]
        role = filters.get("role")
        if role:
            rows = [r for r in rows if _role_matches(role, r[0].roles)]
        rlid = filters.get("rlid")
        if rlid is not None:
            allowed = course.links.get(rlid)
            if allowed is not None:
                rows = [r for r in rows if r[0].user.sub in allowed
                        or any(x != C.LEARNER for x in r[0].roles)]
        if len(cache) > 256:
            cache.clear()
        cache[key] = (course.version, rows, seq)
        return rows, seq


def member_json(enrollment, status, privacy, course, rlid):
    user = enrollment.user
    m = {"status": status}
    personal = personal_claims(user, privacy)
    for k in ("name", "picture", "given_name", "family_name", "email"):
        if k in personal:
            m[k] = personal[k]
    if privacy in ("name_only", "public") and user.sourcedid:
        m["lis_person_sourcedid"] = user.sourcedid
    m["user_id"] = user.sub
    m["lti11_legacy_user_id"] = user.lti11_legacy_user_id
    m["roles"] = list(enrollment.roles)
    if rlid is not None:
        m["message"] = [{
            C.MESSAGE_TYPE: "LtiResourceLinkRequest",
            "locale": "en",
            C.RESOURCE_LINK: {"id": rlid},
            C.LTI11_LEGACY_USER_ID: user.lti11_legacy_user_id,
            C.CUSTOM: expand_custom({"canvas_user_id": "$Canvas.user.id",
                                     "canvas_course_id": "$Canvas.course.id"}, user, course),
        }]
    return m


def names_and_roles(platform, course_id, grant):
    """One page of the course roster (section 7); faults, token and scope are checked by
    ``services.serve`` before this runs."""
    course = platform.courses.get(course_id)
    if course is None:
        return _errors(404, "not_found", "The specified resource does not exist.")
    args = request.args
    try:
        limit = int(args.get("limit") or args.get("per_page") or PAGE_MAX)
        page = int(args.get("page") or 1)
    except ValueError:
        return _errors(400, "bad_request", "limit and page must be integers")
    limit = max(1, min(limit, PAGE_MAX))
    page = max(1, page)
    if platform.faults.fail_at_page is not None and page == int(platform.faults.fail_at_page):
        return _errors(500, "internal_server_error", f"page {page} failed")
    filters = {k: args[k] for k in ("role", "rlid", "since") if args.get(k)}
    cursor = args.get("cursor")
    if cursor is not None and not hmac.compare_digest(
            cursor, make_cursor(platform, course_id, page, limit, filters)):
        return _errors(400, "bad_request", "Invalid cursor")
    if "since" in filters:
        token = platform.since_tokens.get(filters["since"])
        if token is None or token[0] != course_id:
            return _errors(400, "bad_request", "Invalid since token")
    if "rlid" in filters and filters["rlid"] not in course.links:
        return _errors(400, "bad_request", "Invalid 'rlid' parameter")
    rows, seq = member_list(platform, course, filters)
    tool = platform.tools.get(grant["client_id"])
    privacy = tool.privacy_level if tool else "anonymous"
    rlid = filters.get("rlid")
    chunk = rows[(page - 1) * limit: page * limit]
    body = {"id": request.url,
            "context": {"id": course.context_id, "label": course.label, "title": course.title},
            "members": [member_json(e, s, privacy, course, rlid) for e, s in chunk]}
    response = Response(json.dumps(body), status=200, content_type=C.NRPS_MEDIA_TYPE)
    last = max(1, math.ceil(len(rows) / limit))
    response.headers["Link"] = link_header(platform, course, page, last, limit, filters, seq)
    return response


def link_header(platform, course, page, last, limit, filters, seq):
    base = f"{platform.base_url}/api/lti/courses/{course.course_id}/names_and_roles"

    def url(n):
        q = dict(filters, page=n, per_page=limit,
                 cursor=make_cursor(platform, course.course_id, n, limit, filters))
        return base + "?" + urlencode(q)

    links = [(url(page), "current")]
    if page < last:
        links.append((url(page + 1), "next"))
    if page > 1:
        links.append((url(min(page - 1, last)), "prev"))
    links += [(url(1), "first"), (url(last), "last")]
    if platform.nrps_offer_differences and page >= last:
        token = "Df" + secrets.token_urlsafe(12)
        with platform.lock:
            platform.since_tokens[token] = (course.course_id, seq)
        links.append((base + "?" + urlencode({"since": token}), "differences"))
    return ",".join(f'<{u}>; rel="{rel}"' for u, rel in links)


def register(app, platform):
    @app.get("/api/lti/courses/<int:course_id>/names_and_roles")
    def nrps(course_id):
        return serve(platform, service="nrps", faults=platform.faults, scopes=[C.SCOPE_NRPS],
                     log=platform.requests,
                     handler=lambda grant: names_and_roles(platform, course_id, grant))
