"""The id_token claim template, built the Canvas way (facts sheet, section 3).

Only the launch-specific part lives here; ``iss``, ``aud``, ``azp``, ``sub``,
``nonce``, ``iat`` and ``exp`` are added when the auth request arrives
(``tokens.build_id_token_payload``).
"""

import uuid

from . import constants as C

# Canvas variable expansions the emulator knows; anything else stays unexpanded
# (section 3: "Unresolvable variables arrive unexpanded").
def _expansions(user, course):
    values = {
        "$Canvas.user.id": user.canvas_user_id,
        "$Canvas.user.globalId": user.canvas_user_id,
        "$Person.name.full": user.name,
        "$Person.name.given": user.given_name,
        "$Person.name.family": user.family_name,
        "$Person.email.primary": user.email,
        "$User.id": user.canvas_user_id,
    }
    if course is not None:
        values.update({
            "$Canvas.course.id": str(course.course_id),
            "$Context.id": course.context_id,
            "$Context.title": course.title,
            "$Context.label": course.label,
            "$Canvas.course.name": course.title,
        })
    return values


def expand_custom(custom_fields, user, course):
    table = _expansions(user, course)
    return {k: table.get(v, v) if isinstance(v, str) else v for k, v in custom_fields.items()}


def personal_claims(user, privacy_level):
    """Personal fields by privacy level (section 3): anonymous none; name_only names
    + lis person_sourcedid; email_only email; public all plus picture."""
    out = {}
    if privacy_level in ("name_only", "public"):
        out.update(name=user.name, given_name=user.given_name, family_name=user.family_name)
    if privacy_level in ("email_only", "public"):
        out["email"] = user.email
    if privacy_level == "public":
        out["picture"] = user.picture
    return out


def launch_roles(platform, user, course):
    """Enrollment roles in ``course`` plus the institution/system roles Canvas adds."""
    membership = []
    if course is not None:
        enrollment = course.enrollments.get(user.sub)
        if enrollment is not None and enrollment.status == "Active":
            membership = list(enrollment.roles)
    institution = platform.institution_roles(user)
    return institution + membership + [C.SYSTEM_USER]


def dl_settings(platform, course, placement, data):
    """Deep linking settings claim (section 3) for a Canvas placement."""
    multiple = placement != "assignment_selection"
    cid = course.course_id if course is not None else 0
    return {
        "deep_link_return_url": f"{platform.base_url}/courses/{cid}/deep_linking_response"
                                f"?modal=true&placement={placement}",
        "accept_types": ["ltiResourceLink"] if not multiple
        else ["ltiResourceLink", "link", "file", "html", "image"],
        "accept_presentation_document_targets": ["iframe", "window"],
        "accept_media_types": "application/vnd.ims.lti.v1.ltilink" if not multiple
        else "image/*,text/html,application/vnd.ims.lti.v1.ltilink,*/*",
        "auto_create": False,
        "accept_multiple": multiple,
        "data": data,
    }


def build_template(platform, tool, user, course, *, message_type, deployment_id, roles,
                   resource_link, placement, privacy_level, ags, nrps, lineitem, dl_data):
    privacy = privacy_level or tool.privacy_level
    base = platform.base_url
    claims = {
        C.MESSAGE_TYPE: message_type,
        C.VERSION: "1.3.0",
        C.DEPLOYMENT_ID: deployment_id,
        C.TARGET_LINK_URI: tool.target_link_uri,
    }
    if message_type == "LtiResourceLinkRequest":
        if isinstance(resource_link, dict):
            link = dict(resource_link)
        else:
            if resource_link is not None:
                link_id = str(resource_link)
            elif placement == "course_navigation" and course is not None:
                link_id = course.context_id
            else:
                link_id = str(uuid.uuid4())
            title = tool.title if placement == "course_navigation" else "Assignment"
            link = {"id": link_id, "title": title, "description": None if
                    placement == "course_navigation" else "<p>Emulated assignment</p>"}
        claims[C.RESOURCE_LINK] = link
    if course is not None:
        claims[C.CONTEXT] = {"id": course.context_id, "label": course.label,
                             "title": course.title, "type": [C.COURSE_OFFERING]}
    claims[C.TOOL_PLATFORM] = {"guid": platform.guid + ":canvas-lms", "name": platform.name,
                               "version": "cloud", "product_family_code": "canvas"}
    cid = course.course_id if course is not None else None
    claims[C.LAUNCH_PRESENTATION] = {
        "document_target": "iframe",
        "return_url": f"{base}/courses/{cid}/external_content/success/external_tool_redirect"
        if placement == "course_navigation" else f"{base}/courses/{cid}/assignments",
        "locale": "en",
        "height": 400,
        "width": 800,
    }
    claims[C.ROLES] = list(roles) if roles is not None else launch_roles(platform, user, course)
    claims[C.CUSTOM] = expand_custom(tool.custom_fields, user, course)
    if privacy in ("name_only", "public"):
        lis = {"course_offering_sourcedid": "$CourseSection.sourcedId"}
        if user.sourcedid:
            lis = {"person_sourcedid": user.sourcedid, **lis}
        claims[C.LIS] = lis
    claims[C.LTI11_LEGACY_USER_ID] = user.lti11_legacy_user_id
    claims[C.LTI1P1] = {"user_id": user.lti11_legacy_user_id}
    claims.update(personal_claims(user, privacy))
    ags_scopes = [s for s in tool.scopes if "lti-ags" in s]
    if ags and ags_scopes and course is not None:
        endpoint = {"scope": ags_scopes, "lineitems": course.lineitems_url}
        if lineitem is not None:
            endpoint["lineitem"] = lineitem if isinstance(lineitem, str) \
                else f"{course.lineitems_url}/{lineitem}"
        claims[C.AGS_ENDPOINT] = endpoint
    if nrps and C.SCOPE_NRPS in tool.scopes and course is not None:
        claims[C.NRPS_CLAIM] = {"context_memberships_url": course.memberships_url,
                                "service_versions": ["2.0"]}
    if message_type == "LtiDeepLinkingRequest":
        claims[C.DL_SETTINGS] = dl_settings(platform, course, placement, dl_data)
        claims[C.PLACEMENT] = placement
    else:
        claims[C.PLACEMENT] = placement if placement not in (None, "assignment",
                                                             "assignment_view") else None
    return claims
