"""Deep linking return endpoint (facts sheet, section 3, deep linking request;
certification guide, deep linking cases).

The tool form-POSTs a ``JWT`` field to ``deep_link_return_url``. The emulator
verifies it against the tool's JWKS and checks the required claims
(``iss`` = client_id, ``aud`` = platform issuer, ``nonce``, ``deployment_id``,
message type, version, ``content_items``, ``data`` echoed, ``accept_multiple``,
``accept_types``, presentation targets, each item's ``url``, ``custom`` and
``lineItem.scoreMaximum``), then records it in ``platform.deep_link_responses``.

A valid response is applied as Canvas applies it (``assignments.apply_deep_link``): each
``ltiResourceLink`` becomes a resource link (``record["links"]``) and, with a ``lineItem``,
an assignment with a coupled line item (``record["assignments"]``), ready for
``platform.assignment_launch``. The record also keeps the response's ``msg``, ``log``,
``errormsg`` and ``errorlog`` (Deep Linking 2.0 §4.2), e.g. a cancel's message.
"""

import html
import time

import jwt
from flask import jsonify, request

from . import constants as C
from .assignments import content_item_errors
from .oauth import TokenError, tool_public_key
from .tokens import decode_unverified

DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"


def check_response(platform, token, placement):
    """(record dict) with ``errors`` (list of str, empty when the response is valid)."""
    record = {"placement": placement, "header": None, "payload": None, "content_items": [],
              "errors": [], "launch": None, "time": time.time(), "links": [],
              "assignments": [], "tool": None}
    errors = record["errors"]
    try:
        header, payload = decode_unverified(token or "")
    except ValueError:
        errors.append("JWT missing or malformed")
        return record
    record.update(header=header, payload=payload)
    for name in ("msg", "log", "errormsg", "errorlog"):
        record[name] = payload.get(DL + name)
    tool = platform.tools.get(str(payload.get("iss")))
    if tool is None:
        errors.append("iss is not a registered client_id")
        return record
    record["tool"] = tool
    if header.get("alg") != "RS256":
        errors.append("alg must be RS256")
    try:
        key = tool_public_key(platform, tool, header.get("kid"))
        jwt.decode(token, key, algorithms=["RS256"],
                   options={"verify_aud": False, "verify_exp": False, "verify_iat": False,
                            "verify_nbf": False})
    except (TokenError, jwt.PyJWTError) as exc:
        errors.append(f"signature invalid: {exc}")
    aud = payload.get("aud")
    if platform.issuer not in (aud if isinstance(aud, list) else [aud]):
        errors.append("aud must be the platform issuer")
    now = time.time()
    if not isinstance(payload.get("exp"), (int, float)) or payload["exp"] <= now:
        errors.append("exp missing or in the past")
    if not isinstance(payload.get("iat"), (int, float)) or payload["iat"] > now + 60:
        errors.append("iat missing or in the future")
    if not payload.get("nonce"):
        errors.append("nonce missing")
    if payload.get(C.DEPLOYMENT_ID) not in tool.deployment_ids:
        errors.append("deployment_id missing or unknown")
    if payload.get(C.MESSAGE_TYPE) != "LtiDeepLinkingResponse":
        errors.append("message_type must be LtiDeepLinkingResponse")
    if payload.get(C.VERSION) != "1.3.0":
        errors.append("version must be 1.3.0")
    items = payload.get(C.DL_CONTENT_ITEMS)
    if not isinstance(items, list):
        errors.append("content_items missing")
        items = []
    record["content_items"] = items
    launch = _launch_for_data(platform, payload.get(C.DL_DATA))
    record["launch"] = launch
    if launch is None:
        errors.append("data not echoed back")
    else:
        if payload.get(C.DEPLOYMENT_ID) != launch.deployment_id:
            errors.append("deployment_id does not match the deep linking request")
        settings = launch.claims.get(C.DL_SETTINGS) or {}
        if not settings.get("accept_multiple") and len(items) > 1:
            errors.append("more than one content item for a single-item placement")
        accepted = settings.get("accept_types") or []
        bad = [i.get("type") for i in items if isinstance(i, dict) and i.get("type") not in accepted]
        if bad:
            errors.append(f"content item types not accepted: {bad}")
        errors.extend(content_item_errors(items, settings))
    return record


def _launch_for_data(platform, data):
    if not data:
        return None
    try:
        body = jwt.decode(data, platform.secret, algorithms=["HS256"])
    except jwt.PyJWTError:
        return None
    return platform.launches.get(body.get("launch"))


def register(app, platform):
    @app.post("/courses/<int:course_id>/deep_linking_response")
    def deep_linking_response(course_id):
        record = check_response(platform, request.form.get("JWT"), request.args.get("placement"))
        record["course_id"] = course_id
        course = platform.courses.get(course_id)
        launch = record["launch"]
        if course is None or (launch is not None and launch.course is not course):
            record["errors"].append("the response does not belong to this course")
        if not record["errors"]:
            platform.apply_deep_link(record, course, record["tool"])
        with platform.lock:
            platform.deep_link_responses.append(record)
        if record["errors"]:
            return jsonify({"errors": record["errors"]}), 400
        titles = "".join(f"<li>{html.escape(str(i.get('title', i.get('type'))))}</li>"
                         for i in record["content_items"] if isinstance(i, dict))
        msg = f"<p>{html.escape(str(record['msg']))}</p>" if record.get("msg") else ""
        return (f"<!DOCTYPE html><html><body><h1>Content received</h1>{msg}<ul>{titles}</ul>"
                "</body></html>"), 200, {"Content-Type": "text/html; charset=utf-8"}
