"""The pages people see after a launch: the instructor's and the student's home.

Each loads the page session first (``sessions.require_*``), which also marks the answer
``Cache-Control: no-store``: these pages show names, emails and the course roster.
"""
from __future__ import annotations

from flask import Blueprint, render_template, request
from sqlalchemy import and_, bindparam, select

from ..db import db
from ..lti import roles
from ..models import Assessment, Attempt
from . import sessions
from .roster import panel

bp = Blueprint("pages", __name__)


def _role_words(page: sessions.Page) -> str:
    # An administrator is often not enrolled: then the launch's own roles say who they are.
    words = roles.in_words(page.membership.roles if page.membership else []) or roles.in_words(page.roles)
    return ", ".join(words) if words else "No course role"


def _render(template: str, page: sessions.Page, **extra):
    return render_template(template, user=page.user, context=page.context,
                           membership=page.membership, role_words=_role_words(page),
                           t=page.reference, page=page, **extra)


def _assessments(page: sessions.Page) -> dict | None:
    """The course's assessments for the home pages (None outside a course)."""
    if page.context_id is None:
        return None
    from ..grading import assessments, attempts, lineitems
    if page.is_instructor:
        return {"items": assessments.in_course(db.session, page.context_id),
                "counts": assessments.attempt_counts(db.session, page.context_id),
                "capabilities": lineitems.capability_words(page.context)}
    items: dict = {}
    mine: dict = {}
    for assessment, attempt in db.session.execute(_STUDENT_HOME, {"context_id": page.context_id,
                                                                 "user_id": page.user_id}):
        items.setdefault(assessment.id, assessment)
        if attempt is not None:
            mine.setdefault(assessment.id, []).append(attempt)
    return {"items": list(items.values()), "mine": mine, "work": attempts}


# A student's home: the course's published assessments with the student's own attempts, one
# query (built once) instead of one for each.
_STUDENT_HOME = (
    select(Assessment, Attempt)
    .outerjoin(Attempt, and_(Attempt.assessment_id == Assessment.id,
                             Attempt.user_id == bindparam("user_id")))
    .where(Assessment.context_id == bindparam("context_id"), Assessment.is_published.is_(True))
    .order_by(Assessment.due_at.is_(None), Assessment.due_at, Assessment.id, Attempt.number))


@bp.route("/instructor")
def instructor_home():
    page = sessions.require_instructor()
    return _render("instructor.html", page, assessments=_assessments(page),
                   roster=panel(page.context, request.args) if page.context else None)


@bp.route("/student")
def student_home():
    page = sessions.require_member()
    return _render("student.html", page, assessments=_assessments(page))
