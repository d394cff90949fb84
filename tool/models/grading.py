"""Assessments students complete, their attempts, and the scores on their way to the gradebook.

Line items and scores follow Assignment and Grade Services 2.0 (§3.2 line items, §3.4 scores,
§3.5 results) as Canvas implements them (facts sheet section 8). A score is written to the
``score_deliveries`` outbox in the same transaction as the attempt that produced it; a job
sends it; nothing is lost if the process stops in between.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, utcnow


class Assessment(Base):
    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    context_id: Mapped[int] = mapped_column(ForeignKey("contexts.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    instructions: Mapped[str] = mapped_column(Text, default="")
    # [{"key", "kind" (QuestionKind), "prompt", "points", "options": [text], "correct": [index],
    #   "answer": number, "tolerance": number}] -- keys stay stable across edits.
    questions: Mapped[list] = mapped_column(JSON, default=list)
    points_possible: Mapped[float] = mapped_column(Float, default=0.0)
    attempts_allowed: Mapped[int] = mapped_column(Integer, default=1)  # 0: unlimited
    scoring_policy: Mapped[str] = mapped_column(String(10), default="highest")  # ScoringPolicy
    due_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    is_published: Mapped[bool] = mapped_column(Boolean, default=False)
    # The instructor decides when students see their score and the right answers.
    show_scores: Mapped[bool] = mapped_column(Boolean, default=True)
    show_answers: Mapped[bool] = mapped_column(Boolean, default=False)
    # Bumped when the answer key changes, so attempts graded under an older key are regraded.
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    copied_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("assessments.id", ondelete="SET NULL"), nullable=True)
    created_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    # Its AGS line item (one per assessment): the URL is stored once and reused for every score.
    lineitem_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    # True when the tool created it through AGS (only then may the tool delete it).
    lineitem_created_by_tool: Mapped[bool] = mapped_column(Boolean, default=False)
    # Label and scoreMaximum last written to the platform; a change of either updates it.
    lineitem_label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lineitem_score_maximum: Mapped[float | None] = mapped_column(Float, nullable=True)
    lineitem_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When the platform's results (what the gradebook holds) were last read.
    results_read_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # When someone last asked for them (the gradebook page opened): the periodic read keeps
    # refreshing such assessments for a while after.
    results_requested_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Attempt(Base):
    __tablename__ = "attempts"
    __table_args__ = (
        UniqueConstraint("assessment_id", "user_id", "number", name="uq_attempts_assessment_user_number"),
        Index("ix_attempts_assessment_user", "assessment_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="in_progress")  # AttemptStatus
    # Staff taking a student-facing assessment (Canvas's student view, a TA's preview): never sent.
    is_preview: Mapped[bool] = mapped_column(Boolean, default=False)
    answers: Mapped[dict] = mapped_column(JSON, default=dict)  # question key -> answer as typed
    # question key -> points (None while a hand-graded answer waits for the instructor).
    question_scores: Mapped[dict] = mapped_column(JSON, default=dict)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    needs_grading: Mapped[bool] = mapped_column(Boolean, default=False)
    override_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    override_comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    graded_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class GradeChange(Base):
    """Who changed a grade, when, from what to what (manual grading, overrides, regrades)."""

    __tablename__ = "grade_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id", ondelete="CASCADE"), index=True)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                      nullable=True)
    kind: Mapped[str] = mapped_column(String(20))  # manual | override | regrade
    question_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    old_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    new_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ScoreDelivery(Base):
    """One score for one person and line item, on its way to the platform (the outbox)."""

    __tablename__ = "score_deliveries"
    __table_args__ = (
        Index("ix_score_deliveries_status_next", "status", "next_try_at"),
        Index("ix_score_deliveries_assessment_user", "assessment_id", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"))
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    attempt_id: Mapped[int | None] = mapped_column(ForeignKey("attempts.id", ondelete="SET NULL"),
                                                   nullable=True)
    # The AGS score body's parts (AGS 2.0 §3.4; Canvas's submission extension, facts section 8).
    score_given: Mapped[float | None] = mapped_column(Float, nullable=True)
    score_maximum: Mapped[float] = mapped_column(Float)
    activity_progress: Mapped[str] = mapped_column(String(20))
    grading_progress: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Strictly increasing per person and line item: Canvas refuses an older one with 400.
    timestamp: Mapped[datetime] = mapped_column(DateTime)
    submitted_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # Only an attempt's first delivery makes a new submission in Canvas.
    new_submission: Mapped[bool] = mapped_column(Boolean, default=False)
    submission_data_url: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    reason: Mapped[str] = mapped_column(String(20), default="submit")  # submit|grade|override|regrade|resend
    status: Mapped[str] = mapped_column(String(20), default="pending")  # DeliveryStatus
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Set while a worker holds it; a sending row whose lease ran out is taken as lost and re-sent.
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # A try may have reached the platform (a timeout, a 5xx, a worker lost mid-call). Sticky:
    # every later try says new_submission false and repeats no comment (Canvas would add a
    # second submission and a second comment for a score it already applied).
    maybe_applied: Mapped[bool] = mapped_column(Boolean, default=False)
    # A 422 "not a student of the course": retried after a roster sync shows them enrolled.
    waiting_for_enrollment: Mapped[bool] = mapped_column(Boolean, default=False)
    superseded_by_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class PlatformResult(Base):
    """What the platform's gradebook holds for a person and assessment (AGS 2.0 §3.5 results)."""

    __tablename__ = "platform_results"
    __table_args__ = (UniqueConstraint("assessment_id", "user_id", name="uq_platform_results_assessment_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assessment_id: Mapped[int] = mapped_column(ForeignKey("assessments.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    result_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    result_maximum: Mapped[float | None] = mapped_column(Float, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    read_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ServiceSlot(Base):
    """One of a platform client's concurrent service calls, shared by every worker process.

    Canvas throttles per developer key (facts section 9), so the bound on calls in flight must
    hold across processes and machines: a worker takes a free (or expired) slot row with one
    conditional UPDATE before a call and frees it after.
    """

    __tablename__ = "service_slots"

    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id", ondelete="CASCADE"),
                                                 primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
