"""A resource link launch that names an assessment opens it directly (``dispatch`` order 100).

The link is mapped once: either it already carries ``assessment_id`` (set by an earlier launch
or by the course-copy step), or the launch's custom parameter ``assessment_id`` (Deep Linking
2.0 §3.1 ``custom``, put there when the instructor picked the assessment) names an assessment of
*this* course; the mapping is then stored on the link. A custom id of another course is not
handled here (the course-copy resolver runs first); if it arrives, the launch lands on the home.

When the launch carries an AGS ``lineitem`` (AGS 2.0 §3.1: a launch from a gradebook
assignment) and the assessment has no line item yet, that URL is the assignment's own column.
"""
from __future__ import annotations

import logging

from ..db import db
from ..grading.links import ASSESSMENT_CUSTOM, row_id
from ..models import Assessment, ResourceLink
from . import dispatch, sessions

log = logging.getLogger("tool.web")


def _custom_id(landing: dispatch.Landing) -> int | None:
    raw = (landing.launch.custom or {}).get(ASSESSMENT_CUSTOM) or ""
    return row_id(raw)


def _adopt_lineitem(assessment: Assessment, landing: dispatch.Landing) -> None:
    url = (landing.launch.ags or {}).get("lineitem")
    if not url or assessment.lineitem_url:
        return
    try:
        from ..grading import lineitems
    except ImportError:  # the line item module is optional: store the URL the launch carried
        assessment.lineitem_url = url[:1000]
        assessment.lineitem_created_by_tool = False
        return
    db.session.flush()  # the link's mapping must be visible to the query inside
    lineitems.lineitem_for_launch(db.session, assessment, landing.launch)


def open_linked_assessment(landing: dispatch.Landing) -> str | None:
    if landing.resource_link_id is None or landing.context_id is None:
        return None
    if landing.link_assessment_id is None and _custom_id(landing) is None:
        return None  # provisioning read the link: it names no assessment, nor does the launch
    link = db.session.get(ResourceLink, landing.resource_link_id)
    if link is None:
        return None
    assessment = db.session.get(Assessment, link.assessment_id) if link.assessment_id else None
    if assessment is not None and assessment.context_id != landing.context_id:
        assessment = None
    if assessment is None:
        wanted = _custom_id(landing)
        found = db.session.get(Assessment, wanted) if wanted else None
        if found is None or found.context_id != landing.context_id:
            return None  # not this course's: home (the course-copy step had its turn first)
        assessment = found
        link.assessment_id = found.id
        log.info("resource link %r now opens assessment %s", link.lti_resource_link_id, found.id)
    _adopt_lineitem(assessment, landing)
    db.session.commit()
    if landing.view == "student":
        return sessions.page_url(f"student/assessments/{assessment.id}", landing.reference)
    return sessions.page_url(f"instructor/assessments/{assessment.id}", landing.reference)


dispatch.register_resource_link(open_linked_assessment, order=100)
