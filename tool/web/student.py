"""Student pages: take an assessment (start, resume, save as you go, submit), see your result.

Only published assessments of the session's course, only with an active membership
(``sessions.require_member()``). Staff who open these pages (Canvas's student view from an
instructor session, the Preview button) take a preview: their attempts are marked and never
reach the gradebook. Observers (``Mentor``, LTI core §A.2.3) see the questions and never start
or submit. A student reads only their own attempts: any other id is "not found".
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ..db import db
from ..errors import AccessDenied, Conflict, NotFound
from ..grading import assessments as store
from ..grading import attempts as work
from ..grading.scoring import answer_words, fmt, right_answer_words
from ..lti import roles
from ..models import Attempt, AttemptStatus, utcnow
from . import linked  # noqa: F401  (registers the resolver that opens a linked assessment)
from . import sessions
from .assessments import here
from .display import utc_iso
from .errors import wants_json
from .pages import _render

bp = Blueprint("student", __name__)

MAX_ANSWERS = 200  # answer fields read from one request (an assessment has at most 100 questions)


def mode(page: sessions.Page) -> str:
    """``preview`` for staff, ``observer`` for a Mentor who is not a student, else ``student``."""
    if page.is_instructor or page.is_admin or roles.is_staff(page.roles):
        return "preview"
    held = page.enrolment.roles if page.enrolment else page.roles
    names = {roles.context_role_name(r) for r in held or ()}
    if "Mentor" in names and "Learner" not in names:
        return "observer"
    return "student"


def _course_assessment(page: sessions.Page, assessment_id: int, how: str):
    assessment = store.get(db.session, page.context_id, assessment_id)
    if not assessment.is_published and how != "preview":
        raise Conflict("This assessment is not open: your instructor has not published it.",
                       hint="Come back when your instructor opens it; answers you saved are kept.",
                       code="assessment_unpublished")
    return assessment


def _no_observers(how: str) -> None:
    if how == "observer":
        raise AccessDenied("Observers can see this assessment but cannot take it.",
                           hint="Only students of the course start and submit attempts.",
                           code="observer_read_only")


def _own_attempt(page: sessions.Page, attempt_id: int):
    found = db.session.get(Attempt, attempt_id) if 0 < attempt_id < 2**31 else None
    if found is None or found.user_id != page.user_id:
        raise NotFound("There is no such attempt of yours.", code="attempt_not_found")
    try:
        assessment = store.get(db.session, page.context_id, found.assessment_id)
    except NotFound:
        raise NotFound("There is no such attempt of yours.", code="attempt_not_found") from None
    return found, assessment


def _typed_answers() -> dict:
    """Answers from a JSON body ({"answers": {key: value}}) or form fields ``a_<key>``."""
    if request.is_json:
        body = request.get_json(silent=True)
        answers = body.get("answers") if isinstance(body, dict) else None
        if not isinstance(answers, dict):
            return {}
        return {str(k)[:20]: v for k, v in list(answers.items())[:MAX_ANSWERS]
                if isinstance(v, (str, int, float, list)) and not isinstance(v, bool)}
    out = {}
    for name in list(request.form.keys())[:MAX_ANSWERS]:
        if name.startswith("a_"):
            values = request.form.getlist(name)
            # Choice fields come with a blank hidden twin, so "nothing picked" also arrives.
            out[name[2:22]] = values if len(values) > 1 else values[0]
    return out


@bp.route("/student/assessments/<int:assessment_id>")
def assessment(assessment_id: int):
    """Take it, resume the attempt in progress, or see past attempts and start another."""
    page = sessions.require_member()
    how = mode(page)
    found = _course_assessment(page, assessment_id, how)
    mine = work.user_attempts(db.session, found.id, page.user_id)
    current = work.open_attempt(mine)
    done = [a for a in mine if a.submitted_at is not None]
    refusal = work.refusal(found, mine, preview=how == "preview")
    return _render("student/assessment.html", page, assessment=found, how=how, current=current,
                   done=done, refusal=refusal, work=work, fmt=fmt,
                   saved=request.args.get("done") == "saved",
                   used=work.used_attempts(mine), now_utc=utcnow())


@bp.route("/student/assessments/<int:assessment_id>/start", methods=["POST"])
def start(assessment_id: int):
    page = sessions.require_member()
    how = mode(page)
    _no_observers(how)
    found = _course_assessment(page, assessment_id, how)
    attempt = work.start(db.session, found, page.user_id, preview=how == "preview")
    db.session.commit()
    return here("student.assessment", page, assessment_id=found.id, _anchor=f"attempt-{attempt.id}")


@bp.route("/student/attempts/<int:attempt_id>/save", methods=["POST"])
def save(attempt_id: int):
    """Answers saved as they go: JSON from the page's script, or the Save button's form."""
    page = sessions.require_member()
    how = mode(page)
    _no_observers(how)
    found, assessment = _own_attempt(page, attempt_id)
    # Saving stays possible after an unpublish: what was typed is kept; submitting is refused.
    saved_at = work.save(db.session, assessment, found, _typed_answers())
    db.session.commit()
    if request.is_json or wants_json():
        return jsonify({"saved_at": utc_iso(saved_at)})
    return here("student.assessment", page, assessment_id=assessment.id, done="saved")


@bp.route("/student/attempts/<int:attempt_id>/submit", methods=["POST"])
def submit(attempt_id: int):
    """Submit once; a second press (or a second tab) lands on the same result."""
    page = sessions.require_member()
    how = mode(page)
    _no_observers(how)
    found, assessment = _own_attempt(page, attempt_id)
    if found.status == AttemptStatus.IN_PROGRESS:
        _course_assessment(page, assessment.id, how)
        work.submit(db.session, assessment, found, _typed_answers())
        db.session.commit()
    return here("student.attempt", page, attempt_id=found.id)


@bp.route("/student/attempts/<int:attempt_id>")
def attempt(attempt_id: int):
    """Your own result: the score when the instructor shows scores, right answers when shown."""
    page = sessions.require_member()
    how = mode(page)
    found, assessment = _own_attempt(page, attempt_id)
    if found.status == AttemptStatus.IN_PROGRESS:
        return here("student.assessment", page, assessment_id=assessment.id)
    preview = how == "preview"
    return _render("student/attempt.html", page, assessment=assessment, attempt=found, how=how,
                   show_scores=preview or assessment.show_scores,
                   show_answers=preview or assessment.show_answers,
                   late=work.is_late(assessment, found), work=work, fmt=fmt, right=right_answer_words, answer_words=answer_words)
