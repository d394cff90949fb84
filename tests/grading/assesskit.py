"""Helpers for the assessment and attempt tests: launches, the instructor's form, and reading
attempts back. Everything goes through the tool's pages over real HTTP, as a browser would."""
from __future__ import annotations

import re

import requests
from roster.rosterkit import page_token
from sqlalchemy import select

TIMEOUT = 10


def launch(lms, user=None, **options) -> str:
    """A complete launch; the page token ``t`` of the page it landed on."""
    response = lms.launch(user or lms.teacher, **options)
    assert response.status_code == 200, response.text[:500]
    return page_token(response)


def landed(lms, user=None, **options):
    """A complete launch; the final response (to check where it landed)."""
    return lms.launch(user or lms.teacher, **options)


def get(tool, path: str, t: str, **params):
    return requests.get(tool.base_url + path, params={"t": t, **params}, timeout=TIMEOUT)


def post(tool, path: str, t: str, data=None, **kw):
    body = {"t": t, **(data or {})} if not isinstance(data, list) else [("t", t), *data]
    return requests.post(tool.base_url + path, data=body, timeout=TIMEOUT, **kw)


def form(title="Quiz 1", questions=None, **settings) -> dict:
    """The instructor's form as a browser posts it (questions as q<n>_<field>)."""
    data = {"title": title, "instructions": "Work alone.", "attempts_allowed": "2",
            "scoring_policy": "highest", "due_at": "", "show_scores": "1", "action": "save"}
    data.update(settings)
    for n, q in enumerate(questions if questions is not None else QUESTIONS, start=1):
        for field, value in q.items():
            data[f"q{n}_{field}"] = value
    return data


QUESTIONS = [
    {"kind": "choice", "prompt": "Which is a mammal?", "points": "2",
     "options": "Shark\nWhale\nTrout", "correct": "2"},
    {"kind": "multi", "prompt": "Which are primes?", "points": "3",
     "options": "2\n4\n5\n9", "correct": "1, 3"},
    {"kind": "numeric", "prompt": "g in m/s²?", "points": "5", "answer": "9.81", "tolerance": "0.05"},
]
TEXT_QUESTION = {"kind": "text", "prompt": "Explain osmosis.", "points": "4"}


def create(tool, t: str, **kw) -> int:
    """Create an assessment through the form; its id (from the page it redirected to)."""
    publish = kw.pop("publish", True)
    r = post(tool, "/instructor/assessments/new", t, form(**kw))
    assert r.status_code == 200 and "Assessment created." in r.text, r.text[:800]
    assessment_id = int(re.search(r"/instructor/assessments/(\d+)\?", r.url).group(1))
    if publish:
        r = post(tool, f"/instructor/assessments/{assessment_id}/publish", t)
        assert r.status_code == 200 and "Published" in r.text, r.text[:800]
    return assessment_id


def start(tool, t: str, assessment_id: int) -> int:
    """Start (or resume) an attempt as the page's person; the attempt id."""
    r = post(tool, f"/student/assessments/{assessment_id}/start", t)
    assert r.status_code == 200, r.text[:800]
    return int(re.search(r'id="attempt-(\d+)"', r.text).group(1))


def keys(tool, assessment_id: int) -> list[str]:
    return [q["key"] for q in assessment(tool, assessment_id).questions]


def assessment(tool, assessment_id: int):
    from tool.db import db
    from tool.models import Assessment
    with tool.app.app_context():
        found = db.session.get(Assessment, assessment_id)
        db.session.expunge_all()
        db.session.remove()
    return found


def attempts(tool, assessment_id: int, preview=None) -> list:
    from tool.db import db
    from tool.models import Attempt
    with tool.app.app_context():
        stmt = select(Attempt).where(Attempt.assessment_id == assessment_id).order_by(Attempt.id)
        if preview is not None:
            stmt = stmt.where(Attempt.is_preview.is_(preview))
        found = list(db.session.scalars(stmt))
        db.session.expunge_all()
        db.session.remove()
    return found


def rows(tool, model, **where) -> list:
    from tool.db import db
    with tool.app.app_context():
        stmt = select(model).order_by(model.id)
        for name, value in where.items():
            stmt = stmt.where(getattr(model, name) == value)
        found = list(db.session.scalars(stmt))
        db.session.expunge_all()
        db.session.remove()
    return found


def answer_fields(tool, assessment_id: int, choice=1, multi=(0, 2), numeric="9.8", text=None) -> dict:
    """Form fields answering the standard questions (right by default: 10 of 10 points)."""
    k = keys(tool, assessment_id)
    fields = {f"a_{k[0]}": str(choice), f"a_{k[1]}": [str(i) for i in multi], f"a_{k[2]}": numeric}
    if text is not None:
        fields[f"a_{k[3]}"] = text
    return fields
