"""Course copy pages: a launched link names another course's assessment (``grading.course_copy``).

The resolver (order 50, before the one that opens a link's assessment) never opens the other
course's assessment. Staff land on an offer to copy it into this course (``deep_linking.copy``),
or to reuse a copy made from another link of the same course copy; students land on a page
saying the assessment is not set up here yet. Which assessment and which link the offer is
about travels signed and bound to the page session, so a changed URL cannot copy anything else.
"""
from __future__ import annotations

import logging

from flask import current_app, redirect, render_template, request
from itsdangerous import BadSignature, URLSafeSerializer

from ..db import db
from ..errors import AccessDenied, NotFound
from ..grading import course_copy, links
from ..models import Assessment, Context, ResourceLink
from . import dispatch, sessions
from .deep_linking import absolute, bp

log = logging.getLogger("tool.web")
SALT = "course-copy-offer"


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _offer_token(reference: str, link_id: int, source_id: int) -> str:
    return _serializer().dumps({"k": reference, "l": link_id, "a": source_id})


def copy_resolver(landing: dispatch.Landing) -> str | None:
    """A link whose ``assessment_id`` names another course's assessment (a course copy)."""
    value = landing.launch.custom.get(links.ASSESSMENT_CUSTOM)
    if not value or landing.context_id is None or landing.resource_link_id is None:
        return None
    session = db.session
    context = session.get(Context, landing.context_id)
    link = session.get(ResourceLink, landing.resource_link_id)
    if course_copy.mapped_in_course(session, link, context.id) is not None:
        return None  # already copied here: the link opens this course's copy
    source = course_copy.source_of(session, value, context)
    if source is None:
        return None
    log.info("link %r in context %r names assessment %r of context %r (course copy)",
             link.lti_resource_link_id, context.id, source.id, source.context_id)
    if landing.view != "instructor":
        return absolute("deep_linking.not_ready", t=landing.reference)
    token = _offer_token(landing.reference, link.id, source.id)
    return absolute("deep_linking.copy_offer", t=landing.reference, c=token)


def _offer(page: sessions.Page, token: str | None) -> tuple[ResourceLink, Assessment, Context]:
    """The link and source the signed offer names, checked again against this session."""
    try:
        body = _serializer().loads(token or "")
    except BadSignature:
        body = None
    if (not isinstance(body, dict) or body.get("k") != page.reference
            or body.get("l") != page.resource_link_id):
        raise AccessDenied("This copy offer does not belong to your launch.",
                           hint="Open the assignment again from Canvas.", code="copy_offer_invalid")
    context = page.context
    link = db.session.get(ResourceLink, page.resource_link_id)
    source = course_copy.source_of(db.session, str(body.get("a", "")), context) if context else None
    if link is None or source is None:
        raise NotFound("The assessment this link was copied from no longer exists.",
                       hint="Create a new assessment in this course and add it to the assignment "
                            "again.", code="copy_source_gone")
    return link, source, context


def _edit_url(page: sessions.Page, assessment: Assessment) -> str:
    return (absolute("assessments.edit", assessment_id=assessment.id, t=page.reference)
            or sessions.page_url("instructor", page.reference))


@bp.get("/lti/course-copy")
def copy_offer():
    page = sessions.require_instructor()
    token = request.args.get("c")
    link, source, context = _offer(page, token)
    mapped = course_copy.mapped_in_course(db.session, link, context.id)
    if mapped is not None:
        return redirect(_edit_url(page, mapped), code=303)
    return render_template("deep_linking/copy.html", t=page.reference, c=token, source=source,
                           context=context, link=link,
                           earlier=course_copy.earlier_copy(db.session, source, context.id))


@bp.post("/lti/course-copy")
def copy():
    """Copy the source into this course (or reuse an earlier copy) and map this link to it."""
    page = sessions.require_instructor()
    link, source, context = _offer(page, request.form.get("c"))
    mapped = course_copy.mapped_in_course(db.session, link, context.id)
    if mapped is None:
        earlier = course_copy.earlier_copy(db.session, source, context.id)
        use_earlier = earlier is not None and request.form.get("use") == str(earlier.id)
        target = earlier if use_earlier else course_copy.make_copy(
            db.session, source, context.id, page.user_id)
        if course_copy.map_link(db.session, link, target):
            db.session.commit()
            mapped = target
        else:  # another click got there first: keep its copy, drop ours
            db.session.rollback()
            db.session.expire_all()
            mapped = course_copy.mapped_in_course(db.session, db.session.get(ResourceLink, link.id),
                                                  context.id)
            if mapped is None:
                raise NotFound("This link changed while copying.",
                               hint="Open the assignment again from Canvas.", code="copy_raced")
    return redirect(_edit_url(page, mapped), code=303)


@bp.get("/lti/not-set-up")
def not_ready():
    """A student's landing for a copied link whose assessment is not in this course yet."""
    page = sessions.require_member()
    link = db.session.get(ResourceLink, page.resource_link_id) if page.resource_link_id else None
    if page.context_id is not None:
        mapped = course_copy.mapped_in_course(db.session, link, page.context_id)
        if mapped is not None:
            url = absolute("student.assessment", assessment_id=mapped.id, t=page.reference)
            if url:
                return redirect(url, code=303)
    return render_template("deep_linking/not_ready.html", context=page.context,
                           title=(link.title if link else None)), 409


dispatch.register_resource_link(copy_resolver, order=50)
