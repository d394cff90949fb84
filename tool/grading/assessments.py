"""Assessments instructors write: the form, its validation, and create/update/publish/delete.

The form keeps what was typed on any error (``FormInvalid.values``, raw strings) and names each
problem by field id (``title``, ``q2_points``) so the page puts the message next to the field.
Question keys stay the same across edits; a change to what decides scores (right options,
numeric answer or tolerance, points, kind, questions added or removed) bumps ``key_version``
and regrades every submitted attempt (``attempts.regrade``).
"""
from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..errors import Conflict, FormInvalid, NotFound, ToolError
from ..models import Assessment, Attempt, QuestionKind, ScoringPolicy
from .scoring import fmt, key_signature, number

log = logging.getLogger("tool.grading")

MAX_TITLE = 200
MAX_INSTRUCTIONS = 10_000
MAX_QUESTIONS = 100
MAX_OPTIONS = 20
MAX_PROMPT = 2_000
MAX_OPTION = 500
MAX_POINTS = 1000
MAX_ATTEMPTS = 100
MAX_NUMBER = 1e12
KINDS = {QuestionKind.CHOICE: "Multiple choice (one right answer)",
         QuestionKind.MULTI: "Multiple answers",
         QuestionKind.NUMERIC: "Number",
         QuestionKind.TEXT: "Short text (graded by hand)"}
_KEY = re.compile(r"^[a-z0-9]{1,16}$")
_QFIELD = re.compile(r"^q(\d{1,3})_kind$")


def _text(value, limit: int | None = None, *, lines: bool = False) -> str:
    """Typed text without control characters (line breaks kept where ``lines``)."""
    text = value if isinstance(value, str) else ""
    keep = "\n\t" if lines else ""
    text = "".join(ch for ch in text.replace("\r\n", "\n") if ch.isprintable() or ch in keep).strip()
    return text if limit is None else text[: limit + 1]  # one over: "too long" is then seen


def blank_question(kind: str = QuestionKind.CHOICE) -> dict:
    return {"key": "", "kind": kind if kind in KINDS else QuestionKind.CHOICE, "prompt": "",
            "points": "1", "options": "", "correct": "", "answer": "", "tolerance": "0"}


def values_of(assessment: Assessment | None) -> dict:
    """The form's raw values for an assessment (or a new one)."""
    if assessment is None:
        return {"title": "", "instructions": "", "attempts_allowed": "1", "scoring_policy": "highest",
                "due_at": "", "show_scores": True, "show_answers": False,
                "questions": [blank_question()]}
    questions = []
    for q in assessment.questions or []:
        questions.append({
            "key": q["key"], "kind": q["kind"], "prompt": q.get("prompt", ""),
            "points": fmt(q.get("points")), "options": "\n".join(q.get("options") or []),
            "correct": ", ".join(str(i + 1) for i in q.get("correct") or []),
            "answer": fmt(q.get("answer")) if q.get("answer") is not None else "",
            "tolerance": fmt(q.get("tolerance")) if q.get("tolerance") is not None else "0"})
    due = assessment.due_at.strftime("%Y-%m-%dT%H:%M") if assessment.due_at else ""
    return {"title": assessment.title, "instructions": assessment.instructions or "",
            "attempts_allowed": str(assessment.attempts_allowed),
            "scoring_policy": assessment.scoring_policy, "due_at": due,
            "show_scores": bool(assessment.show_scores), "show_answers": bool(assessment.show_answers),
            "questions": questions}


def raw_values(form) -> dict:
    """What was typed, as strings, questions in page order (bounded in number)."""
    indexes = sorted({int(m.group(1)) for name in form.keys() if (m := _QFIELD.match(name))})
    questions = []
    for i in indexes[: MAX_QUESTIONS + 1]:
        get = lambda field: form.get(f"q{i}_{field}", "")  # noqa: E731
        if form.get(f"q{i}_remove"):
            continue
        questions.append({"key": get("key")[:16], "kind": get("kind")[:10], "prompt": get("prompt")[:MAX_PROMPT + 1],
                          "points": get("points")[:40], "options": get("options")[:MAX_OPTIONS * (MAX_OPTION + 2)],
                          "correct": get("correct")[:200], "answer": get("answer")[:40],
                          "tolerance": get("tolerance")[:40]})
    return {"title": form.get("title", "")[:MAX_TITLE + 1],
            "instructions": form.get("instructions", "")[:MAX_INSTRUCTIONS + 1],
            "attempts_allowed": form.get("attempts_allowed", "")[:20],
            "scoring_policy": form.get("scoring_policy", "")[:20],
            "due_at": form.get("due_at", "")[:40],
            "show_scores": bool(form.get("show_scores")), "show_answers": bool(form.get("show_answers")),
            "questions": questions}


def parse_due(text: str) -> datetime | None:
    """``YYYY-MM-DDTHH:MM`` read as UTC (stored naive UTC); raises ValueError when unreadable."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "T"))
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    if not 2000 <= moment.year <= 2100:
        raise ValueError("year out of range")
    return moment.replace(second=0, microsecond=0)


def _question(raw: dict, n: int, errors: dict, existing_keys: set, used: set) -> dict:
    """One question from its raw values; problems go into ``errors`` under ``q{n}_field``."""
    def bad(field, message):
        errors.setdefault(f"q{n}_{field}", message)

    kind = raw["kind"] if raw["kind"] in KINDS else None
    if kind is None:
        bad("kind", "Choose the kind of question.")
        kind = QuestionKind.CHOICE
    key = raw["key"] if _KEY.match(raw["key"] or "") and raw["key"] in existing_keys else ""
    if not key or key in used:
        key = secrets.token_hex(4)
    used.add(key)
    prompt = _text(raw["prompt"], MAX_PROMPT, lines=True)
    if not prompt:
        bad("prompt", "Write the question.")
    elif len(prompt) > MAX_PROMPT:
        bad("prompt", f"Keep the question under {MAX_PROMPT} characters.")
    points = number(raw["points"])
    if points is None or not 0 <= points <= MAX_POINTS:
        bad("points", f"Points must be a number from 0 to {MAX_POINTS}.")
        points = 0.0
    question = {"key": key, "kind": kind, "prompt": prompt, "points": points}
    if kind in (QuestionKind.CHOICE, QuestionKind.MULTI):
        options = [_text(line, MAX_OPTION) for line in raw["options"].split("\n")]
        options = [o for o in options if o]
        if len(options) < 2:
            bad("options", "Give at least two options, one per line.")
        elif len(options) > MAX_OPTIONS:
            bad("options", f"At most {MAX_OPTIONS} options.")
        elif any(len(o) > MAX_OPTION for o in options):
            bad("options", f"Keep each option under {MAX_OPTION} characters.")
        picks = [p for p in re.split(r"[\s,;]+", raw["correct"].strip()) if p]
        # isascii(): isdigit() also accepts "²", which int() refuses.
        if not picks or not all(p.isascii() and p.isdigit() and 1 <= int(p) <= max(len(options), 1)
                                for p in picks):
            bad("correct", f"Give the number of the right option (1 to {max(len(options), 1)}).")
            picks = []
        correct = sorted({int(p) - 1 for p in picks})
        if kind == QuestionKind.CHOICE and len(correct) > 1:
            bad("correct", "Multiple choice has one right option: give one number, or choose "
                           "“Multiple answers”.")
        question.update(options=options[:MAX_OPTIONS], correct=correct)
    elif kind == QuestionKind.NUMERIC:
        answer = number(raw["answer"])
        if answer is None or abs(answer) > MAX_NUMBER:
            bad("answer", "Give the right answer as a number (for example 9.81).")
        tolerance = number(raw["tolerance"] or "0")
        if tolerance is None or not 0 <= tolerance <= MAX_NUMBER:
            bad("tolerance", "The tolerance is a number, 0 or more (0: exactly the answer).")
        question.update(answer=answer, tolerance=tolerance or 0.0)
    return question


def parse(form, assessment: Assessment | None = None) -> dict:
    """Checked values to store, or FormInvalid with every problem and what was typed."""
    values = raw_values(form)
    errors: dict[str, str] = {}
    title = _text(values["title"], MAX_TITLE)
    if not title:
        errors["title"] = "Give the assessment a title."
    elif len(title) > MAX_TITLE:
        errors["title"] = f"Keep the title under {MAX_TITLE} characters."
    instructions = _text(values["instructions"], MAX_INSTRUCTIONS, lines=True)
    if len(instructions) > MAX_INSTRUCTIONS:
        errors["instructions"] = f"Keep the instructions under {MAX_INSTRUCTIONS} characters."
    attempts = values["attempts_allowed"].strip()
    if not (attempts.isascii() and attempts.isdigit()) or int(attempts) > MAX_ATTEMPTS:
        errors["attempts_allowed"] = f"Attempts allowed is a whole number from 0 to {MAX_ATTEMPTS} (0: no limit)."
    policy = values["scoring_policy"]
    if policy not in (ScoringPolicy.HIGHEST, ScoringPolicy.LATEST):
        errors["scoring_policy"] = "Choose which attempt counts."
    due_at = None
    if values["due_at"].strip():
        try:
            due_at = parse_due(values["due_at"])
        except ValueError:
            errors["due_at"] = "Give the due date as a date and time, for example 2025-11-30T23:59 (UTC)."
    existing = {q["key"] for q in (assessment.questions or [])} if assessment else set()
    if len(values["questions"]) > MAX_QUESTIONS:
        errors["questions"] = f"An assessment has at most {MAX_QUESTIONS} questions."
    used: set[str] = set()
    questions = [_question(raw, n, errors, existing, used)
                 for n, raw in enumerate(values["questions"][:MAX_QUESTIONS], start=1)]
    # Keys stay with their question on a re-render, so a failed save loses no key either.
    for raw, q in zip(values["questions"], questions):
        raw["key"] = q["key"] if q["key"] in existing else ""
    if errors:
        raise FormInvalid("Some answers in the form need attention.", errors=errors, values=values)
    return {"title": title, "instructions": instructions, "attempts_allowed": int(attempts),
            "scoring_policy": policy, "due_at": due_at, "show_scores": values["show_scores"],
            "show_answers": values["show_answers"], "questions": questions,
            "points_possible": round(sum(q["points"] for q in questions), 4)}


def get(session: Session, context_id: int | None, assessment_id: int) -> Assessment:
    """An assessment of this course; another course's is "not found" (never shown)."""
    found = session.get(Assessment, assessment_id) if 0 < assessment_id < 2**31 else None
    if found is None or context_id is None or found.context_id != context_id:
        raise NotFound("There is no such assessment in this course.",
                       hint="Open the course's list of assessments.", code="assessment_not_found")
    return found


def in_course(session: Session, context_id: int, *, published_only: bool = False) -> list[Assessment]:
    stmt = select(Assessment).where(Assessment.context_id == context_id)
    if published_only:
        stmt = stmt.where(Assessment.is_published.is_(True))
    return list(session.scalars(stmt.order_by(Assessment.due_at.is_(None), Assessment.due_at,
                                              Assessment.id)))


def attempt_counts(session: Session, context_id: int) -> dict[int, int]:
    """Submitted student attempts per assessment (previews left out)."""
    rows = session.execute(
        select(Attempt.assessment_id, func.count(Attempt.id))
        .join(Assessment, Assessment.id == Attempt.assessment_id)
        .where(Assessment.context_id == context_id, Attempt.is_preview.is_(False),
               Attempt.submitted_at.is_not(None))
        .group_by(Attempt.assessment_id))
    return {a: n for a, n in rows}


def create(session: Session, context_id: int, user_id: int, data: dict) -> Assessment:
    assessment = Assessment(context_id=context_id, created_by_user_id=user_id, key_version=1, **data)
    session.add(assessment)
    session.flush()
    log.info("assessment %s created in context %s", assessment.id, context_id)
    return assessment


def update(session: Session, assessment: Assessment, data: dict, actor_user_id: int) -> bool:
    """Store the edit; regrade when the answer key changed. True when it did."""
    from . import attempts
    old_signature = key_signature(assessment.questions or [])
    for name, value in data.items():
        setattr(assessment, name, value)
    changed = key_signature(data["questions"]) != old_signature
    if changed:
        assessment.key_version = (assessment.key_version or 1) + 1
        session.flush()
        attempts.regrade(session, assessment, actor_user_id)
    return changed


def after_edit(session: Session, assessment: Assessment) -> None:
    """Keep the gradebook column's label and points in step (a job, when they changed)."""
    try:
        from . import lineitems
    except ImportError:  # the line item module is optional until it lands
        return
    lineitems.update_after_edit(session, assessment)


def publish(session: Session, assessment: Assessment, published: bool) -> None:
    if published and not assessment.questions:
        raise Conflict("An assessment without questions cannot be published.",
                       hint="Add at least one question, save, then publish.", code="no_questions")
    assessment.is_published = published


def delete(session: Session, assessment: Assessment, *, delete_column: bool) -> str | None:
    """Delete it (attempts go with it); the gradebook column too when asked and the tool made it.

    Returns the outcome words for the column, or None when it was not asked about.
    """
    outcome = None
    if delete_column and assessment.lineitem_created_by_tool and assessment.lineitem_url:
        try:
            from . import lineitems
        except ImportError:
            outcome = "The gradebook column could not be deleted from here: remove it in Canvas."
        else:
            try:
                outcome = lineitems.delete_column(session, assessment)
            except ToolError as exc:  # PlatformError included: the platform's reason is shown
                outcome = f"The gradebook column was not deleted: {exc.reason}"
    session.delete(assessment)
    return outcome
