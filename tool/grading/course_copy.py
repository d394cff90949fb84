"""Course copy: a link copied into another course still names the old course's assessment.

Canvas course copy and Blueprint sync copy an assignment's link with its custom parameters, so
the new course's link carries ``assessment_id`` of an assessment that belongs to the old course
(Deep Linking 2.0 §3, the resource link's ``custom``; the tool set it when the link was made).
A launch never opens another course's assessment: the instructor is offered a copy into this
course, which then becomes what the link opens; the copy adopts the gradebook column Canvas copied with the
assignment (the ``lineitem`` the launch carried, AGS 2.0 §3.1).
"""
from __future__ import annotations

import copy
import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..models import Assessment, Context, ResourceLink

log = logging.getLogger("tool.grading")

# What a copy takes over; answers, attempts, scores and the line item stay with the original.
# The due date is left out: a copied course runs in another term, and an old date would make
# every attempt late.
COPIED = ("title", "instructions", "points_possible", "attempts_allowed", "scoring_policy",
          "show_scores", "show_answers")


def source_of(session: Session, value: str | None, context: Context) -> Assessment | None:
    """The assessment of ANOTHER course on the same platform that a link's custom value names.

    None when the value names nothing, an assessment of this course, or one on another platform
    (a link cannot reach across platforms: copying from there would leak another school's work).
    """
    if not value or not (value.isascii() and value.isdigit()) or len(value) > 9:
        return None
    source = session.get(Assessment, int(value))
    if source is None or source.context_id == context.id:
        return None
    source_context = session.get(Context, source.context_id)
    if source_context is None or source_context.registration_id != context.registration_id:
        return None
    return source


def mapped_in_course(session: Session, link: ResourceLink | None, context_id: int) -> Assessment | None:
    """The assessment of this course the link already opens (after a copy), or None."""
    if link is None or link.assessment_id is None:
        return None
    found = session.get(Assessment, link.assessment_id)
    return found if found is not None and found.context_id == context_id else None


def earlier_copy(session: Session, source: Assessment, context_id: int) -> Assessment | None:
    """A copy of ``source`` already made in this course (another link of the same course copy)."""
    return session.scalars(select(Assessment).where(
        Assessment.context_id == context_id, Assessment.copied_from_id == source.id)
        .order_by(Assessment.id.desc())).first()


def make_copy(session: Session, source: Assessment, context_id: int, user_id: int) -> Assessment:
    """A new, unpublished assessment in this course with the source's text, questions and settings."""
    made = Assessment(context_id=context_id, created_by_user_id=user_id, copied_from_id=source.id,
                      questions=copy.deepcopy(source.questions or []), is_published=False,
                      key_version=1, **{name: getattr(source, name) for name in COPIED})
    session.add(made)
    session.flush()
    log.info("assessment %r copied into context %r as %r", source.id, context_id, made.id)
    return made


def map_link(session: Session, link: ResourceLink, target: Assessment) -> bool:
    """Make ``link`` open ``target`` unless another request mapped it first (then False).

    A compare-and-set on the link's previous value, so two clicks of "Copy" at once leave one
    mapping. The copy adopts the line item the link's launch carried (Canvas copied the
    assignment and its gradebook column with it), when it has none of its own.
    """
    previous = link.assessment_id
    changed = session.execute(
        update(ResourceLink)
        .where(ResourceLink.id == link.id,
               ResourceLink.assessment_id.is_not_distinct_from(previous))
        .values(assessment_id=target.id)
        .execution_options(synchronize_session=False)).rowcount
    if changed != 1:
        return False
    if link.lineitem_url and not target.lineitem_url:
        # Label and maximum stay unknown (None): the next edit compares and updates the column.
        target.lineitem_url = link.lineitem_url
        target.lineitem_created_by_tool = False
    return True
