"""The pages people see after a launch: the instructor's and the student's home.

Each loads the page session first (``sessions.require_*``), which also marks the answer
``Cache-Control: no-store``: these pages show names, emails and the course roster.
"""
from __future__ import annotations

from flask import Blueprint, render_template, request

from ..db import db
from ..lti import roles
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
    return {"items": assessments.in_course(db.session, page.context_id, published_only=True),
            "mine": attempts.student_summary(db.session, page.context_id, page.user_id),
            "work": attempts}


@bp.route("/instructor")
def instructor_home():
    page = sessions.require_instructor()
    return _render("instructor.html", page, assessments=_assessments(page),
                   roster=panel(page.context, request.args) if page.context else None)


@bp.route("/student")
def student_home():
    page = sessions.require_member()
    return _render("student.html", page, assessments=_assessments(page))
