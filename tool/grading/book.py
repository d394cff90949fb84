"""The gradebook as the instructor reads it: per active student and assessment, the tool's score,
where its delivery stands (in words), and what the platform's gradebook holds (AGS 2.0 §3.5
results, read by a job into ``platform_results``), with the differences marked.

Students come from the roster (NRPS), so those who never opened an assessment are listed too.
The web page (``tool/web/gradebook.py``) and ``flask grades status`` both read it from here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Assessment, Attempt, PlatformResult, ScoreDelivery, User
from ..models.states import DeliveryStatus as DS
from ..roster import view as roster_view

PAGE_SIZE = 100
# Scores are floats on both sides; Canvas rounds to two decimals.
TOLERANCE = 0.005

STATE_WORDS = {
    "pending": "Waiting to send",
    "busy": "Waiting to send (Canvas is busy)",
    "sending": "Sending to Canvas",
    "sent": "Sent to Canvas",
    "not_enrolled": "Canvas refused: the student is not enrolled",
    "failed": "Canvas refused",
    "superseded": "Replaced by a newer score",
    "not_started": "Not started",
    "in_progress": "In progress",
    "not_sent": "Not sent",
}


def number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}".rstrip("0").rstrip(".")


@dataclass
class Cell:
    assessment_id: int
    user_id: int
    attempts: int = 0
    submitted: bool = False
    delivery: ScoreDelivery | None = None
    result: PlatformResult | None = None
    results_read_at: datetime | None = None

    @property
    def state(self) -> str:
        row = self.delivery
        if row is None:
            if not self.attempts:
                return "not_started"
            return "not_sent" if self.submitted else "in_progress"
        if row.status == DS.PENDING:
            return "busy" if row.tries > 0 else "pending"
        if row.status == DS.FAILED:
            return "not_enrolled" if row.waiting_for_enrollment else "failed"
        return str(row.status)

    @property
    def state_words(self) -> str:
        words = STATE_WORDS.get(self.state, self.state)
        row = self.delivery
        if self.state == "failed" and row is not None and row.last_error:
            words = f"{words}: {row.last_error}"
        return words

    @property
    def score_text(self) -> str:
        row = self.delivery
        if row is None:
            return "—"
        text = f"{number(row.score_given)} / {number(row.score_maximum)}"
        return text + (" (awaiting grading)" if row.grading_progress == "PendingManual" else "")

    @property
    def canvas_text(self) -> str:
        if self.result is not None:
            if self.result.result_score is None:
                return "no score"
            maximum = self.result.result_maximum
            return number(self.result.result_score) + (f" / {number(maximum)}" if maximum else "")
        return "not read yet" if self.results_read_at is None else "no score"

    @property
    def canvas_read_at(self) -> datetime | None:
        return self.result.read_at if self.result is not None else self.results_read_at

    @property
    def mismatch(self) -> bool:
        """Sent, read back after it was sent, and the platform holds something else."""
        row = self.delivery
        if row is None or row.status != DS.SENT or row.sent_at is None or row.score_given is None:
            return False
        read_at = self.canvas_read_at
        if read_at is None or read_at < row.sent_at:
            return False  # not read since: nothing to compare yet
        result = self.result
        if result is None or result.result_score is None:
            return True
        ours = row.score_given / row.score_maximum if row.score_maximum else row.score_given
        theirs = (result.result_score / result.result_maximum if result.result_maximum
                  else result.result_score)
        return abs(ours - theirs) * max(row.score_maximum or 1.0, 1.0) > TOLERANCE

    @property
    def can_resend(self) -> bool:
        return self.delivery is not None and self.delivery.status in (DS.SENT, DS.FAILED)

    def as_dict(self) -> dict:
        return {"assessment_id": self.assessment_id, "user_id": self.user_id, "state": self.state,
                "state_words": self.state_words, "score": self.score_text,
                "canvas": self.canvas_text, "mismatch": self.mismatch,
                "canvas_read_at": self.canvas_read_at.isoformat() + "Z" if self.canvas_read_at else None,
                "can_resend": self.can_resend}


@dataclass
class Student:
    user_id: int
    name: str
    email: str
    cells: list[Cell] = field(default_factory=list)


@dataclass
class Book:
    assessments: list[Assessment]
    students: list[Student]
    total: int
    page: int
    pages: int

    @property
    def busy(self) -> bool:
        return any(c.state in ("pending", "busy", "sending") for s in self.students for c in s.cells)


def assessments_of(session: Session, context_id: int, only: int | None = None) -> list[Assessment]:
    stmt = select(Assessment).where(Assessment.context_id == context_id)
    if only is not None:
        stmt = stmt.where(Assessment.id == only)
    return list(session.scalars(stmt.order_by(Assessment.created_at, Assessment.id)))


def read(session: Session, context_id: int, *, assessment_id: int | None = None, page: int = 1,
         page_size: int | None = PAGE_SIZE) -> Book:
    """One page of active students (by name) with a cell per assessment."""
    assessments = assessments_of(session, context_id, assessment_id)
    stmt = roster_view._filtered(context_id, "Student", "active").order_by(
        func.lower(func.coalesce(User.name, User.email, "")), User.id)
    total = session.scalar(select(func.count()).select_from(
        roster_view._filtered(context_id, "Student", "active").with_only_columns(User.id).subquery()))
    pages = max(1, -(-total // page_size)) if page_size else 1
    page = min(max(1, page), pages)
    if page_size:
        stmt = stmt.limit(page_size).offset((page - 1) * page_size)
    students = [Student(user.id, user.display_name, user.email or "")
                for _membership, user in session.execute(stmt)]
    _fill(session, assessments, students)
    return Book(assessments, students, total or 0, page, pages)


def _fill(session: Session, assessments: list[Assessment], students: list[Student]) -> None:
    if not assessments or not students:
        for student in students:
            student.cells = []
        return
    a_ids = [a.id for a in assessments]
    u_ids = [s.user_id for s in students]
    cells = {(a.id, s.user_id): Cell(a.id, s.user_id, results_read_at=a.results_read_at)
             for s in students for a in assessments}
    for a_id, u_id, status, n in session.execute(
            select(Attempt.assessment_id, Attempt.user_id, Attempt.status, func.count())
            .where(Attempt.assessment_id.in_(a_ids), Attempt.user_id.in_(u_ids),
                   Attempt.is_preview.is_(False))
            .group_by(Attempt.assessment_id, Attempt.user_id, Attempt.status)):
        cell = cells[(a_id, u_id)]
        cell.attempts += n
        cell.submitted = cell.submitted or status != "in_progress"
    latest = (select(func.max(ScoreDelivery.id))
              .where(ScoreDelivery.assessment_id.in_(a_ids), ScoreDelivery.user_id.in_(u_ids))
              .group_by(ScoreDelivery.assessment_id, ScoreDelivery.user_id))
    for row in session.scalars(select(ScoreDelivery).where(ScoreDelivery.id.in_(latest))):
        cells[(row.assessment_id, row.user_id)].delivery = row
    for result in session.scalars(select(PlatformResult).where(
            PlatformResult.assessment_id.in_(a_ids), PlatformResult.user_id.in_(u_ids))):
        cells[(result.assessment_id, result.user_id)].result = result
    for student in students:
        student.cells = [cells[(a.id, student.user_id)] for a in assessments]


def open_deliveries(session: Session, context_id: int) -> list[ScoreDelivery]:
    """The latest row of each person and assessment of a course that is pending or failed."""
    in_course = select(Assessment.id).where(Assessment.context_id == context_id)
    latest = (select(func.max(ScoreDelivery.id)).where(ScoreDelivery.assessment_id.in_(in_course))
              .group_by(ScoreDelivery.assessment_id, ScoreDelivery.user_id))
    return list(session.scalars(select(ScoreDelivery).where(
        ScoreDelivery.id.in_(latest), ScoreDelivery.status.in_((DS.PENDING, DS.FAILED)))
        .order_by(ScoreDelivery.id)))
