"""Attempts: start or resume, answers saved as they go, submit once, grading, overrides, regrades.

Every change that moves a student's counting score writes its outbox row in the same
transaction (``delivery.queue_score``, AGS 2.0 §3.4 scores; Canvas facts section 8), so a
score is never lost between the attempt and the gradebook. Preview attempts (staff taking a
student-facing assessment) are never sent.

Concurrency: a student has at most one attempt in progress per assessment. Starting is one
read of (open attempt, highest number) then an INSERT that a unique constraint on
(assessment, user, number) lets only one tab win; the loser resumes the winner's attempt.
Submitting is a conditional UPDATE (``status = in_progress``): a double submit changes nothing.
Late work is accepted and marked late (``is_late``): the instructor decides what it costs.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from ..db import insert_for
from ..errors import Conflict, FormInvalid
from ..models import Assessment, Attempt, AttemptStatus, GradeChange, ScoringPolicy, utcnow
from .scoring import clean_answer, fmt, number, score_attempt

log = logging.getLogger("tool.grading")

MAX_COMMENT = 2000
DONE = (AttemptStatus.SUBMITTED, AttemptStatus.GRADED)


# -- reading -------------------------------------------------------------------------------------

def effective_score(attempt: Attempt | None) -> float | None:
    """The score that counts for an attempt: the instructor's override, else the graded score."""
    if attempt is None:
        return None
    return attempt.override_score if attempt.override_score is not None else attempt.score


def pending(attempt: Attempt) -> bool:
    """A hand-graded answer is still open (an override settles the attempt)."""
    return bool(attempt.needs_grading) and attempt.override_score is None


def is_late(assessment: Assessment, attempt: Attempt) -> bool:
    return bool(assessment.due_at and attempt.submitted_at and attempt.submitted_at > assessment.due_at)


def choose(attempts: list[Attempt], policy: str) -> Attempt | None:
    """The counting attempt among submitted ones: the latest, or the highest (ties: the later)."""
    done = [a for a in attempts if a.submitted_at is not None and not a.is_preview]
    if not done:
        return None
    if policy == ScoringPolicy.LATEST:
        return max(done, key=lambda a: a.number)
    return max(done, key=lambda a: (effective_score(a) or 0.0, a.number))


def _state(attempt: Attempt | None) -> tuple | None:
    return None if attempt is None else (attempt.id, effective_score(attempt), pending(attempt))


def user_attempts(session: Session, assessment_id: int, user_id: int) -> list[Attempt]:
    return list(session.scalars(select(Attempt).where(
        Attempt.assessment_id == assessment_id, Attempt.user_id == user_id).order_by(Attempt.number)))


def counting_attempt(session: Session, assessment: Assessment, user_id: int) -> Attempt | None:
    return choose(user_attempts(session, assessment.id, user_id), assessment.scoring_policy)


def open_attempt(attempts: list[Attempt]) -> Attempt | None:
    return next((a for a in attempts if a.status == AttemptStatus.IN_PROGRESS), None)


def used_attempts(attempts: list[Attempt]) -> int:
    return sum(1 for a in attempts if a.submitted_at is not None and not a.is_preview)


def refusal(assessment: Assessment, attempts: list[Attempt], *, preview: bool) -> str | None:
    """Why a new attempt may not start, in words; None when it may."""
    if preview:
        return None  # staff preview as often as they like, published or not
    if not assessment.is_published:
        return "This assessment is not open: your instructor has not published it."
    allowed = assessment.attempts_allowed or 0
    if allowed and used_attempts(attempts) >= allowed:
        return (f"You have used all {allowed} attempt{'s' if allowed != 1 else ''} this "
                "assessment allows.")
    return None


# -- a student's attempt ---------------------------------------------------------------------------

def start(session: Session, assessment: Assessment, user_id: int, *, preview: bool) -> Attempt:
    """The attempt in progress, resumed; else a new one (refused with the reason when not allowed)."""
    row = session.execute(
        select(func.max(Attempt.number),
               func.max(Attempt.id).filter(Attempt.status == AttemptStatus.IN_PROGRESS))
        .where(Attempt.assessment_id == assessment.id, Attempt.user_id == user_id)).one()
    if row[1] is not None:
        return session.get(Attempt, row[1])
    reason = refusal(assessment, user_attempts(session, assessment.id, user_id), preview=preview)
    if reason:
        raise Conflict(reason, code="attempt_refused")
    now = utcnow()
    stmt = insert_for(session, Attempt.__table__).values(
        assessment_id=assessment.id, user_id=user_id, number=(row[0] or 0) + 1,
        status=AttemptStatus.IN_PROGRESS, is_preview=preview, answers={}, question_scores={},
        needs_grading=False, key_version=assessment.key_version, started_at=now, updated_at=now,
    ).on_conflict_do_nothing(index_elements=["assessment_id", "user_id", "number"]).returning(
        Attempt.__table__.c.id)
    new_id = session.execute(stmt).scalar()
    if new_id is None:  # another tab started it a moment ago: resume that one
        new_id = session.scalar(select(Attempt.id).where(
            Attempt.assessment_id == assessment.id, Attempt.user_id == user_id,
            Attempt.status == AttemptStatus.IN_PROGRESS))
        if new_id is None:
            raise Conflict("Another tab changed this attempt at the same moment.",
                           hint="Reload the page.", code="attempt_race")
    return session.get(Attempt, new_id)


def answers_from(assessment: Assessment, raw: dict) -> dict:
    """Typed answers for this assessment's questions only, cleaned and bounded."""
    out = {}
    for question in assessment.questions or []:
        if question["key"] in raw:
            out[question["key"]] = clean_answer(question, raw[question["key"]])
    return out


def save(session: Session, assessment: Assessment, attempt: Attempt, raw: dict) -> datetime:
    """Merge the typed answers into an attempt still in progress; when they were saved."""
    answers = {**(attempt.answers or {}), **answers_from(assessment, raw)}
    now = utcnow()
    done = session.execute(
        update(Attempt).where(Attempt.id == attempt.id, Attempt.status == AttemptStatus.IN_PROGRESS)
        .values(answers=answers, updated_at=now).execution_options(synchronize_session=False))
    if not done.rowcount:
        raise Conflict("This attempt was already submitted; answers can no longer change.",
                       code="attempt_submitted")
    session.refresh(attempt)
    return now


def submit(session: Session, assessment: Assessment, attempt: Attempt, raw: dict | None) -> bool:
    """Submit once: True when this call submitted it, False when it already was.

    The score and, when the counting score changed, the outbox row are written in this
    transaction; the caller commits.
    """
    users = [] if attempt.is_preview else user_attempts(session, assessment.id, attempt.user_id)
    before = _state(choose(users, assessment.scoring_policy))
    answers = {**(attempt.answers or {}), **answers_from(assessment, raw or {})}
    scores, total, needs = score_attempt(assessment.questions or [], answers)
    now = utcnow()
    done = session.execute(
        update(Attempt).where(Attempt.id == attempt.id, Attempt.status == AttemptStatus.IN_PROGRESS)
        .values(answers=answers, question_scores=scores, score=total, needs_grading=needs,
                status=AttemptStatus.SUBMITTED if needs else AttemptStatus.GRADED,
                submitted_at=now, graded_at=None if needs else now, updated_at=now,
                key_version=assessment.key_version)
        .execution_options(synchronize_session=False))
    session.refresh(attempt)
    if not done.rowcount:
        return False
    if not attempt.is_preview:
        _queue_if_changed(session, assessment, attempt.user_id, before, "submit")
    return True


# -- instructors -----------------------------------------------------------------------------------

def grade(session: Session, assessment: Assessment, attempt: Attempt, form, actor_user_id: int) -> int:
    """Points for hand-graded answers (``g_<key>`` fields); the number of answers changed."""
    if attempt.submitted_at is None:
        raise Conflict("This attempt is still in progress: it can be graded once submitted.",
                       code="attempt_in_progress")
    errors, values, new = {}, {}, {}
    for question in assessment.questions or []:
        key, field = question["key"], f"g_{question['key']}"
        if question["kind"] != "text" or field not in form:
            continue
        typed = str(form.get(field, ""))[:40]
        values[field] = typed
        if not typed.strip():
            continue  # left blank: stays as it is
        points = number(typed)
        limit = float(question.get("points") or 0)
        if points is None or not 0 <= points <= limit:
            errors[field] = f"Give 0 to {fmt(limit)} points."
        else:
            new[key] = points
    if errors:
        raise FormInvalid("Some points need attention.", errors=errors, values=values)
    before = _before(session, assessment, attempt)
    scores = dict(attempt.question_scores or {})
    changed = 0
    for key, points in new.items():
        if scores.get(key) != points:
            session.add(GradeChange(attempt_id=attempt.id, actor_user_id=actor_user_id, kind="manual",
                                    question_key=key, old_value=scores.get(key), new_value=points))
            scores[key] = points
            changed += 1
    if changed:
        _rescore(attempt, assessment, scores)
        session.flush()
        if not attempt.is_preview:
            _queue_if_changed(session, assessment, attempt.user_id, before, "grade")
    return changed


def override(session: Session, assessment: Assessment, attempt: Attempt, typed: str, comment: str,
             actor_user_id: int) -> None:
    """Set (or with a blank score, remove) the attempt's overriding score, with a comment."""
    if attempt.submitted_at is None:
        raise Conflict("This attempt is still in progress: its score can be set once submitted.",
                       code="attempt_in_progress")
    typed = (typed or "").strip()[:40]
    comment = "".join(ch for ch in (comment or "") if ch.isprintable() or ch == "\n").strip()
    values = {"override_score": typed, "override_comment": comment[:MAX_COMMENT + 1]}
    score = None
    if typed:
        score = number(typed)
        limit = float(assessment.points_possible or 0)
        if score is None or not 0 <= score <= limit:
            raise FormInvalid("The score needs attention.", values=values,
                              errors={"override_score": f"Give a score from 0 to {fmt(limit)}, or leave it "
                                                        "blank to use the graded score."})
    if len(comment) > MAX_COMMENT:
        raise FormInvalid("The comment is too long.", values=values,
                          errors={"override_comment": f"Keep the comment under {MAX_COMMENT} characters."})
    if score == attempt.override_score and (comment or None) == attempt.override_comment:
        return  # nothing changed: no record, nothing sent again
    before = _before(session, assessment, attempt)
    old = effective_score(attempt)
    attempt.override_score = score
    attempt.override_comment = comment or None
    session.add(GradeChange(attempt_id=attempt.id, actor_user_id=actor_user_id, kind="override",
                            old_value=old, new_value=effective_score(attempt), comment=comment or None))
    session.flush()
    if not attempt.is_preview:
        _queue_if_changed(session, assessment, attempt.user_id, before, "override",
                          comment=comment or None, force=True)


def regrade(session: Session, assessment: Assessment, actor_user_id: int | None) -> int:
    """Score every submitted attempt again under the current key; the number whose score changed.

    Hand grades stay where the question is still a hand-graded one (capped at its points); each
    change is recorded, and every student whose counting score moved gets it sent.
    """
    rows = list(session.scalars(select(Attempt).where(Attempt.assessment_id == assessment.id)))
    by_user: dict[int, list[Attempt]] = {}
    for a in rows:
        if not a.is_preview:
            by_user.setdefault(a.user_id, []).append(a)
    before = {u: _state(choose(list_, assessment.scoring_policy)) for u, list_ in by_user.items()}
    changed = 0
    for attempt in rows:
        if attempt.submitted_at is None:
            continue
        old = attempt.score
        kept = {k: v for k, v in (attempt.question_scores or {}).items() if v is not None}
        scores, _total, _needs = score_attempt(assessment.questions or [], attempt.answers or {}, kept)
        _rescore(attempt, assessment, scores)
        attempt.key_version = assessment.key_version
        if attempt.score != old:
            changed += 1
            session.add(GradeChange(attempt_id=attempt.id, actor_user_id=actor_user_id, kind="regrade",
                                    old_value=old, new_value=attempt.score,
                                    comment=f"Answer key changed (version {assessment.key_version})"))
    session.flush()
    for user_id, list_ in by_user.items():
        _queue_if_changed(session, assessment, user_id, before[user_id], "regrade", attempts=list_)
    log.info("assessment %s regraded: %s attempt scores changed", assessment.id, changed)
    return changed


# -- helpers ---------------------------------------------------------------------------------------

def _rescore(attempt: Attempt, assessment: Assessment, scores: dict) -> None:
    keys = {q["key"] for q in assessment.questions or []}
    scores = {k: v for k, v in scores.items() if k in keys}
    attempt.question_scores = scores
    attempt.score = round(sum(v for v in scores.values() if v is not None), 4)
    attempt.needs_grading = any(v is None for v in scores.values())
    now = utcnow()
    if attempt.needs_grading:
        attempt.status, attempt.graded_at = AttemptStatus.SUBMITTED, None
    else:
        attempt.status, attempt.graded_at = AttemptStatus.GRADED, attempt.graded_at or now


def _before(session: Session, assessment: Assessment, attempt: Attempt) -> tuple | None:
    if attempt.is_preview:
        return None
    return _state(counting_attempt(session, assessment, attempt.user_id))


def _queue_if_changed(session: Session, assessment: Assessment, user_id: int, before: tuple | None,
                      reason: str, *, comment: str | None = None, attempts: list[Attempt] | None = None,
                      force: bool = False) -> None:
    """Write the outbox row when the counting score (or its attempt, or its pending state) moved."""
    current = choose(attempts if attempts is not None else user_attempts(session, assessment.id, user_id),
                     assessment.scoring_policy)
    if current is None:
        return
    same = _state(current) == before
    # An override of the counting attempt is sent even at the same score: its comment is news.
    if same and not (force and before is not None and current.id == before[0]):
        return
    try:
        from . import delivery
    except ImportError:  # the delivery module lands separately; until then nothing is sent
        log.warning("score for user %s on assessment %s not queued: no delivery module", user_id,
                    assessment.id)
        return
    delivery.queue_score(session, assessment=assessment, user_id=user_id, attempt=current,
                         score_given=effective_score(current), needs_grading=pending(current),
                         reason=reason, comment=comment)


def rows_for(session: Session, assessment: Assessment) -> list[tuple]:
    """(attempt, user) for every attempt of an assessment, newest first per student."""
    from ..models import User
    return list(session.execute(
        select(Attempt, User).join(User, User.id == Attempt.user_id)
        .where(Attempt.assessment_id == assessment.id)
        .order_by(Attempt.is_preview, User.name, Attempt.number.desc())).all())


def student_summary(session: Session, context_id: int, user_id: int) -> dict[int, list[Attempt]]:
    """A student's own attempts per assessment of the course (for the home page)."""
    rows = session.scalars(select(Attempt).join(Assessment, and_(
        Assessment.id == Attempt.assessment_id, Assessment.context_id == context_id))
        .where(Attempt.user_id == user_id).order_by(Attempt.number))
    out: dict[int, list[Attempt]] = {}
    for a in rows:
        out.setdefault(a.assessment_id, []).append(a)
    return out
