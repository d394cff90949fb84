"""Instructor pages for assessments: list, create, edit, publish, delete, attempts, grading.

Every view loads the page session with ``sessions.require_instructor()`` (staff of this course
still), and every assessment or attempt is looked up within the session's course: another
course's ids are "not found". Forms that fail validation are shown again (422) with what was
typed and the message beside each field; nothing here answers 500 for bad input.
"""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, request, url_for
from sqlalchemy import select
from werkzeug.routing import BuildError

from ..db import db
from ..errors import FormInvalid, NotFound
from ..grading import assessments as store
from ..grading import attempts as work
from ..grading.scoring import answer_words, fmt, right_answer_words
from ..models import Attempt, GradeChange, User
from . import sessions
from .pages import _render

bp = Blueprint("assessments", __name__)


@bp.app_template_filter("points")
def points_filter(value) -> str:
    """Points for people: ``2``, ``2.5``, a dash when there is none."""
    return fmt(value) or "—"

# Notices after a redirect, chosen by a fixed word (nothing typed is echoed through the URL).
NOTICES = {"created": "Assessment created.", "saved": "Changes saved.",
           "regraded": "Changes saved. The answer key changed, so submitted attempts were regraded "
                       "and changed scores are on their way to the gradebook.",
           "published": "Published: students of the course can take it now.",
           "unpublished": "Unpublished: students can no longer start or submit it.",
           "graded": "Grades saved.", "overridden": "Score saved."}


def here(endpoint: str, page: sessions.Page, **values):
    """A 303 to one of the tool's pages, absolute from TOOL_BASE_URL, carrying ``t``."""
    path = url_for(endpoint, t=page.reference, **values)
    root = request.script_root
    if root and path.startswith(root):
        path = path[len(root):]
    return redirect(current_app.config["TOOL_BASE_URL"] + path, code=303)


def _course(page: sessions.Page) -> int:
    if page.context_id is None:
        raise NotFound("Assessments belong to a course; this launch did not come from one.",
                       hint="Open the tool from a course's navigation.", code="no_course")
    return page.context_id


def _first(errors: dict) -> str | None:
    return next(iter(errors), None)


def _form_page(page, assessment, values, errors=None, status=200, *, focus=None, next_=None):
    errors = errors or {}
    title = assessment.title if assessment else "New assessment"
    return _render("assessments/form.html", page, assessment=assessment, values=values,
                   errors=errors, first_error=focus or _first(errors), kinds=store.KINDS,
                   heading=title, next=next_, notice=NOTICES.get(request.args.get("done", "")),
                   counts=store.attempt_counts(db.session, page.context_id) if assessment else {},
                   limits=store), status


def _after_save(page, assessment, next_, done):
    if next_ == "picker":
        try:
            return here("deep_linking.picker", page)
        except BuildError:  # deep linking not installed: stay on the assessment
            pass
    return here("assessments.edit", page, assessment_id=assessment.id, done=done)


def _add_question(page, assessment, next_):
    values = store.raw_values(request.form)
    if len(values["questions"]) >= store.MAX_QUESTIONS:
        errors = {"questions": f"An assessment has at most {store.MAX_QUESTIONS} questions."}
        return _form_page(page, assessment, values, errors, 422, next_=next_)
    values["questions"].append(store.blank_question(request.form.get("new_kind", "choice")))
    return _form_page(page, assessment, values, focus=f"q{len(values['questions'])}_prompt", next_=next_)


@bp.route("/instructor/assessments")
def index():
    page = sessions.require_instructor()
    context_id = _course(page)
    return _render("assessments/index.html", page, assessments=store.in_course(db.session, context_id),
                   counts=store.attempt_counts(db.session, context_id),
                   notice="Assessment deleted." if request.args.get("done") == "deleted" else None,
                   outcome=None)


@bp.route("/instructor/assessments/new", methods=["GET", "POST"])
def new():
    page = sessions.require_instructor()
    context_id = _course(page)
    next_ = "picker" if (request.values.get("next") == "picker") else None
    if request.method == "GET":
        return _form_page(page, None, store.values_of(None), next_=next_)
    if request.form.get("action") == "add":
        return _add_question(page, None, next_)
    try:
        data = store.parse(request.form)
    except FormInvalid as exc:
        db.session.rollback()
        return _form_page(page, None, exc.values, exc.errors, 422, next_=next_)
    assessment = store.create(db.session, context_id, page.user_id, data)
    db.session.commit()
    return _after_save(page, assessment, next_, "created")


@bp.route("/instructor/assessments/<int:assessment_id>", methods=["GET", "POST"])
def edit(assessment_id: int):
    page = sessions.require_instructor()
    assessment = store.get(db.session, _course(page), assessment_id)
    next_ = "picker" if (request.values.get("next") == "picker") else None
    if request.method == "GET":
        return _form_page(page, assessment, store.values_of(assessment), next_=next_)
    if request.form.get("action") == "add":
        return _add_question(page, assessment, next_)
    try:
        data = store.parse(request.form, assessment)
    except FormInvalid as exc:
        db.session.rollback()
        return _form_page(page, assessment, exc.values, exc.errors, 422, next_=next_)
    if assessment.is_published and not data["questions"]:
        return _form_page(page, assessment, store.raw_values(request.form),
                          {"questions": "A published assessment needs at least one question "
                                        "(unpublish it first to remove them all)."}, 422, next_=next_)
    regraded = store.update(db.session, assessment, data, page.user_id)
    store.after_edit(db.session, assessment)
    db.session.commit()
    return _after_save(page, assessment, next_, "regraded" if regraded else "saved")


@bp.route("/instructor/assessments/<int:assessment_id>/publish", methods=["POST"])
def publish(assessment_id: int):
    page = sessions.require_instructor()
    assessment = store.get(db.session, _course(page), assessment_id)
    store.publish(db.session, assessment, True)
    db.session.commit()
    return here("assessments.edit", page, assessment_id=assessment.id, done="published")


@bp.route("/instructor/assessments/<int:assessment_id>/unpublish", methods=["POST"])
def unpublish(assessment_id: int):
    page = sessions.require_instructor()
    assessment = store.get(db.session, _course(page), assessment_id)
    store.publish(db.session, assessment, False)
    db.session.commit()
    return here("assessments.edit", page, assessment_id=assessment.id, done="unpublished")


@bp.route("/instructor/assessments/<int:assessment_id>/delete", methods=["GET", "POST"])
def delete(assessment_id: int):
    """GET asks for confirmation; POST deletes (and, when asked, the column the tool made)."""
    page = sessions.require_instructor()
    context_id = _course(page)
    assessment = store.get(db.session, context_id, assessment_id)
    if request.method == "GET":
        return _render("assessments/delete.html", page, assessment=assessment,
                       counts=store.attempt_counts(db.session, context_id))
    title = assessment.title
    outcome = store.delete(db.session, assessment, delete_column=bool(request.form.get("delete_column")))
    db.session.commit()
    if outcome is None:
        return here("assessments.index", page, done="deleted")
    # The column's outcome is shown on the list at once: it is not carried through a URL.
    return _render("assessments/index.html", page, assessments=store.in_course(db.session, context_id),
                   counts=store.attempt_counts(db.session, context_id),
                   notice=f"“{title}” deleted.", outcome=outcome)


@bp.route("/instructor/assessments/<int:assessment_id>/preview")
def preview(assessment_id: int):
    """Staff take the student view as a preview: nothing reaches the gradebook."""
    page = sessions.require_instructor()
    assessment = store.get(db.session, _course(page), assessment_id)
    return here("student.assessment", page, assessment_id=assessment.id)


@bp.route("/instructor/assessments/<int:assessment_id>/attempts")
def attempts(assessment_id: int):
    page = sessions.require_instructor()
    assessment = store.get(db.session, _course(page), assessment_id)
    rows = work.rows_for(db.session, assessment)
    return _render("assessments/attempts.html", page, assessment=assessment, rows=rows,
                   work=work, fmt=fmt)


def _attempt_of_course(page, attempt_id: int):
    attempt = db.session.get(Attempt, attempt_id) if 0 < attempt_id < 2**31 else None
    if attempt is None:
        raise NotFound("There is no such attempt in this course.", code="attempt_not_found")
    try:
        assessment = store.get(db.session, _course(page), attempt.assessment_id)
    except NotFound:
        raise NotFound("There is no such attempt in this course.", code="attempt_not_found") from None
    return attempt, assessment


@bp.route("/instructor/attempts/<int:attempt_id>", methods=["GET", "POST"])
def attempt(attempt_id: int):
    """Review one attempt; grade its hand-graded answers; override its score with a comment."""
    page = sessions.require_instructor()
    found, assessment = _attempt_of_course(page, attempt_id)
    errors, values, status, done = {}, {}, 200, request.args.get("done")
    if request.method == "POST":
        action = request.form.get("action")
        try:
            if action == "override":
                work.override(db.session, assessment, found, request.form.get("override_score", ""),
                              request.form.get("override_comment", ""), page.user_id)
                done = "overridden"
            else:
                work.grade(db.session, assessment, found, request.form, page.user_id)
                done = "graded"
            db.session.commit()
            return here("assessments.attempt", page, attempt_id=found.id, done=done)
        except FormInvalid as exc:
            db.session.rollback()
            errors, values, status = exc.errors, exc.values, 422
            found, assessment = _attempt_of_course(page, attempt_id)
    student = db.session.get(User, found.user_id)
    history = db.session.execute(
        select(GradeChange, User).outerjoin(User, User.id == GradeChange.actor_user_id)
        .where(GradeChange.attempt_id == found.id).order_by(GradeChange.id.desc())).all()
    return _render("assessments/attempt.html", page, assessment=assessment, attempt=found,
                   student=student, history=history, errors=errors, values=values,
                   first_error=_first(errors), notice=NOTICES.get(done or ""), work=work, fmt=fmt,
                   right=right_answer_words, answer_words=answer_words), status
