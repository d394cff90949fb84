"""The pages people see after a launch: the instructor's and the student's home.

Each loads the page session first (``sessions.require_*``), which also marks the answer
``Cache-Control: no-store``: these pages show names, emails and the course roster.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, render_template, request

from ..db import db
from ..driver import Statement, read_time
from ..lti import roles
from . import sessions
from .roster import panel

bp = Blueprint("pages", __name__)


def _role_words(page: sessions.Page) -> str:
    # An administrator is often not enrolled: then the launch's own roles say who they are.
    words = roles.in_words(page.enrolment.roles if page.enrolment else []) or roles.in_words(page.roles)
    return ", ".join(words) if words else "No course role"


def _render(template: str, page: sessions.Page, **extra):
    # What was read with the session: the home pages load no ORM row of the person or course.
    return render_template(template, user=page.person, context=page.course,
                           membership=page.enrolment, role_words=_role_words(page),
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
    rows = db.reader().read(_STUDENT_HOME, {"context_id": page.context_id, "published": True,
                                                   "user_id": page.user_id}).fetchall()
    for row in rows:
        assessment_id = row[0]
        if assessment_id not in items:
            items[assessment_id] = _Listed(*row[:_A])
        if row[_A] is not None:
            mine.setdefault(assessment_id, []).append(_Tried(*row[_A:]))
    return {"items": list(items.values()), "mine": mine, "work": attempts}


@dataclass(frozen=True)
class _Listed:
    """What the student's list shows of an assessment."""

    id: int
    title: str
    due_at: datetime | None
    scoring_policy: str
    show_scores: bool
    points_possible: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "due_at", read_time(self.due_at))
        object.__setattr__(self, "show_scores", bool(self.show_scores))


@dataclass(frozen=True)
class _Tried:
    """What the student's list needs of one of their attempts (``grading.attempts`` reads it)."""

    id: int
    number: int
    status: str
    is_preview: bool
    score: float | None
    needs_grading: bool
    override_score: float | None
    submitted_at: datetime | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "is_preview", bool(self.is_preview))
        object.__setattr__(self, "needs_grading", bool(self.needs_grading))
        object.__setattr__(self, "submitted_at", read_time(self.submitted_at))


# A student's home: the course's published assessments with the student's own attempts, one
# statement on the driver, reading only what the list shows (never questions or answers).
_A = len(_Listed.__dataclass_fields__)
_STUDENT_HOME = Statement(
    "SELECT " + ", ".join([*(f"a.{c}" for c in _Listed.__dataclass_fields__),
                           *(f"t.{c}" for c in _Tried.__dataclass_fields__)]) +
    " FROM assessments a LEFT JOIN attempts t ON t.assessment_id = a.id AND t.user_id = :user_id"
    " WHERE a.context_id = :context_id AND a.is_published = :published"
    " ORDER BY a.due_at IS NULL, a.due_at, a.id, t.number")


@bp.route("/instructor")
def instructor_home():
    page = sessions.require_instructor()
    return _render("instructor.html", page, assessments=_assessments(page),
                   roster=panel(page.context, request.args) if page.context else None)


@bp.route("/student")
def student_home():
    page = sessions.require_member()
    return _render("student.html", page, assessments=_assessments(page))
