"""Scoring answers against an assessment's answer key: pure functions, no database.

Question kinds (``QuestionKind``): ``choice`` (one right option), ``multi`` (every right option
and no wrong one earns the points, anything else 0), ``numeric`` (within the tolerance),
``text`` (graded by hand: its score stays None until an instructor grades it).
"""
from __future__ import annotations

import math
from typing import Any

from ..models import QuestionKind

MAX_ANSWER = 2000  # characters kept of one typed answer


def number(value: Any) -> float | None:
    """A finite number from a typed value ("3,5" is read as 3.5), or None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:
            result = float(value)
        except OverflowError:  # a JSON integer of hundreds of digits
            return None
    else:
        text = str(value).strip().replace(",", ".")
        if not text or len(text) > 40:
            return None
        try:
            result = float(text)
        except ValueError:
            return None
    return result if math.isfinite(result) else None


def option_index(value: Any) -> int | None:
    """An option's index from a typed value, or None: plain ASCII digits only, since ``int()``
    refuses ``²`` (which ``isdigit()`` accepts) and strings of thousands of digits."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 10**9 else None
    text = str(value).strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


def clean_answer(question: dict, value: Any) -> Any:
    """An answer as stored: option indexes for choice/multi, text otherwise (bounded)."""
    kind = question.get("kind")
    count = len(question.get("options") or ())
    if kind in (QuestionKind.CHOICE, QuestionKind.MULTI):
        values = value if isinstance(value, list) else ([] if value in (None, "") else [value])
        picked = sorted({i for i in map(option_index, values) if i is not None and i < count})
        if kind == QuestionKind.CHOICE:
            return picked[0] if len(picked) == 1 else None
        return picked
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return "".join(ch for ch in text if ch.isprintable() or ch in "\n\t")[:MAX_ANSWER]


def auto_score(question: dict, answer: Any) -> float | None:
    """Points earned by an answer; None for a hand-graded question."""
    kind = question.get("kind")
    points = float(question.get("points") or 0)
    if kind == QuestionKind.TEXT:
        return None
    if kind == QuestionKind.CHOICE:
        right = list(question.get("correct") or ())
        return points if right and answer == right[0] else 0.0
    if kind == QuestionKind.MULTI:
        picked = sorted(answer) if isinstance(answer, list) else []
        return points if picked and picked == sorted(question.get("correct") or ()) else 0.0
    if kind == QuestionKind.NUMERIC:
        given = number(answer)
        expected = number(question.get("answer"))
        tolerance = abs(number(question.get("tolerance")) or 0.0)
        if given is None or expected is None:
            return 0.0
        # A little slack for binary floating point: 0.1 + 0.2 is within 0 of 0.3.
        return points if abs(given - expected) <= tolerance + 1e-9 * max(1.0, abs(expected)) else 0.0
    return 0.0


def score_attempt(questions: list[dict], answers: dict,
                  kept: dict | None = None) -> tuple[dict, float, bool]:
    """(question_scores, total, needs_grading).

    ``kept`` holds hand grades already given (question key -> points): they stay, capped at the
    question's points, when the key is still a text question. The total counts what is known.
    """
    kept = kept or {}
    scores: dict[str, float | None] = {}
    needs_grading = False
    for question in questions:
        key = question["key"]
        value = auto_score(question, answers.get(key))
        if question.get("kind") == QuestionKind.TEXT:
            old = kept.get(key)
            value = None if old is None else min(float(old), float(question.get("points") or 0))
            needs_grading = needs_grading or value is None
        scores[key] = value
    total = round(sum(v for v in scores.values() if v is not None), 4)
    return scores, total, needs_grading


def key_signature(questions: list[dict]) -> list:
    """What decides scores; when it changes, existing attempts are regraded."""
    return [(q["key"], q.get("kind"), float(q.get("points") or 0), sorted(q.get("correct") or ()),
             q.get("answer"), q.get("tolerance")) for q in questions]


def right_answer_words(question: dict) -> str:
    """The right answer as a student reads it on the result page."""
    kind = question.get("kind")
    options = question.get("options") or []
    if kind in (QuestionKind.CHOICE, QuestionKind.MULTI):
        return "; ".join(options[i] for i in question.get("correct") or () if i < len(options))
    if kind == QuestionKind.NUMERIC:
        tolerance = number(question.get("tolerance")) or 0
        text = fmt(question.get("answer"))
        return f"{text} (± {fmt(tolerance)})" if tolerance else text
    return "Graded by your instructor"


def fmt(value: Any) -> str:
    """A number for people: 2 not 2.0, at most 2 decimals."""
    n = number(value)
    if n is None:
        return ""
    return str(int(n)) if n == int(n) else f"{n:.2f}".rstrip("0").rstrip(".")


def answer_words(question: dict, answer: Any) -> str:
    """A stored answer as the person gave it ("" when there is none)."""
    options = question.get("options") or []
    kind = question.get("kind")
    if kind == QuestionKind.CHOICE:
        return options[answer] if isinstance(answer, int) and 0 <= answer < len(options) else ""
    if kind == QuestionKind.MULTI:
        picked = answer if isinstance(answer, list) else []
        return "; ".join(options[i] for i in picked if isinstance(i, int) and 0 <= i < len(options))
    return "" if answer is None else str(answer)
