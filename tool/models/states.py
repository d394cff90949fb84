"""The states of the tool's state machines, one enum each (stored as their string values).

``StrEnum`` members compare equal to their values, so rows read back as plain strings still
match ``SyncStatus.SUCCEEDED`` and the values on disk stay readable.
"""
from __future__ import annotations

from enum import StrEnum


class SyncStatus(StrEnum):
    """A roster sync run: queued -> running -> succeeded | failed; skipped when the course was busy."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class AttemptStatus(StrEnum):
    """A student's attempt: in_progress -> submitted (a hand-graded answer is open) -> graded."""

    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"
    GRADED = "graded"


class DeliveryStatus(StrEnum):
    """A score on its way to the platform (the outbox row).

    pending (waiting for a worker or for its next try) -> sending -> sent; failed when the
    platform refused it for good (the reason is kept, an instructor may send it again);
    superseded when a newer score for the same person and line item replaced it unsent.
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPERSEDED = "superseded"


class QuestionKind(StrEnum):
    CHOICE = "choice"      # multiple choice, one right answer
    MULTI = "multi"        # multiple answers: every right option and no wrong one
    NUMERIC = "numeric"    # a number within a tolerance
    TEXT = "text"          # short text, graded by hand


class ScoringPolicy(StrEnum):
    HIGHEST = "highest"
    LATEST = "latest"
