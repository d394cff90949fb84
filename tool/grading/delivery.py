"""The score outbox: a score is written beside the attempt that produced it, and sent by a job.

AGS 2.0 §3.4 (the score: ``userId``, ``scoreGiven``, ``scoreMaximum``, ``comment``,
``timestamp``, ``activityProgress``, ``gradingProgress``) as Canvas takes it (facts sheet
section 8): a timestamp older than the one it holds is refused with 400, so timestamps only
increase per person and line item; every score with ``new_submission`` true makes a new
submission and every comment a new comment, so only an attempt's first delivery says true and
no comment is sent twice.

``queue_score`` writes the row in the caller's transaction and never commits; the row's id is
handed to the queue only after that transaction commits (a job must never look for a row that
is not there yet). A row whose job was lost (queue wiped, worker killed) is found by ``sweep``.
The send step itself is ``tool.grading.sender``.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Iterable

from sqlalchemy import bindparam, event, func, or_, select, update
from sqlalchemy.orm import Session

from ..models import (Assessment, Attempt, Context, Membership, ScoreDelivery, User, utcnow)
from ..models.states import DeliveryStatus as DS
from . import links

log = logging.getLogger(__name__)

SUBMISSION_EXTENSION = "https://canvas.instructure.com/lti/submission"
_INFO_KEY = "grading.deliveries_to_queue"
# A pending row whose job has not taken it this long after it was due is taken as lost.
LOST_AFTER = timedelta(seconds=60)
SWEEP_BATCH = 1000
ONE_MS = timedelta(milliseconds=1)


def _floor_ms(moment: datetime) -> datetime:
    # Sent with millisecond precision: stored the same, so "strictly later" survives the trip.
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def next_timestamp(session: Session, assessment_id: int, user_id: int,
                   now: datetime | None = None) -> datetime:
    """max(now, the last timestamp of this person and line item + 1 ms) (Canvas: 400 if older)."""
    last = session.scalar(select(func.max(ScoreDelivery.timestamp)).where(
        ScoreDelivery.assessment_id == assessment_id, ScoreDelivery.user_id == user_id))
    return _after(last, now)


def _after(last: datetime | None, now: datetime | None = None) -> datetime:
    """max(now, last + 1 ms), to the millisecond."""
    now = _floor_ms(now or utcnow())
    return now if last is None or now >= last + ONE_MS else _floor_ms(last) + ONE_MS


# Every row of one person and line item, oldest first; built once (a regrade queues a class).
_EARLIER = (select(ScoreDelivery).where(ScoreDelivery.assessment_id == bindparam("assessment"),
                                        ScoreDelivery.user_id == bindparam("person"))
            .order_by(ScoreDelivery.id))


def may_have_applied(row: ScoreDelivery) -> bool:
    """Could the platform have applied this row already?

    Yes when sent or in flight, or when a try ended without a clear refusal (a timeout, a
    worker that died mid-call, a 5xx: the platform may have stored it before failing). A 4xx,
    Canvas's 403 throttle and 429 included, means it did nothing.
    """
    if row.status in (DS.SENT, DS.SENDING):
        return True
    # Sticky: a later 429 or throttle does not undo an earlier timeout's uncertainty.
    return bool(row.maybe_applied) or (row.tries > 0 and (row.http_status is None or row.http_status >= 500))


def queue_score(session: Session, *, assessment: Assessment, user_id: int, attempt: Attempt | None,
                score_given: float | None, needs_grading: bool, reason: str,
                comment: str | None = None) -> ScoreDelivery | None:
    """Write the outbox row for this person's score (no commit); None when it cannot be sent.

    A person without a platform ``sub`` (imported, never launched) has no ``userId`` to send.
    Older pending or failed rows of the same person and assessment become superseded by this one
    (a row being sent is left to finish: this one's later timestamp wins).
    """
    if attempt is not None and attempt.is_preview:
        return None  # staff previews never reach the gradebook
    user = session.get(User, user_id)
    context = session.get(Context, assessment.context_id)
    if user is None or not user.sub or context is None:
        log.warning("score for user %r on assessment %r not queued: no platform user id",
                    user_id, assessment.id)
        return None
    earlier = list(session.scalars(_EARLIER, {"assessment": assessment.id, "person": user_id}))
    waiting = [row for row in earlier if row.status in (DS.PENDING, DS.FAILED)]
    reached = [row for row in earlier if may_have_applied(row)]
    if comment is None:
        # A comment still waiting in a row this one replaces would otherwise never arrive.
        comment = next((row.comment for row in reversed(waiting) if row.comment), None)
    if comment is not None and any(row.comment == comment and may_have_applied(row)
                                   for row in earlier):
        comment = None  # Canvas adds every comment it is sent as a new one
    first = attempt is not None and not any(
        row.attempt_id == attempt.id and row.new_submission for row in reached)
    now = utcnow()
    row = ScoreDelivery(
        registration_id=context.registration_id, assessment_id=assessment.id, user_id=user_id,
        attempt_id=attempt.id if attempt is not None else None, score_given=score_given,
        score_maximum=float(assessment.points_possible or 0.0),
        activity_progress="Submitted" if needs_grading else "Completed",
        grading_progress="PendingManual" if needs_grading else "FullyGraded",
        # ``earlier`` holds every row of this person and line item: no second query for the last
        # timestamp (``next_timestamp`` asks the same of the database).
        comment=comment, timestamp=_after(max((r.timestamp for r in earlier), default=None), now),
        submitted_at=attempt.submitted_at if attempt is not None else None,
        new_submission=first,
        submission_data_url=links.submission_review_url(attempt.id) if attempt is not None else None,
        reason=reason, status=DS.PENDING, tries=0, next_try_at=now, created_at=now)
    session.add(row)
    session.flush()
    for old in waiting:
        old.status, old.superseded_by_id, old.lease_until = DS.SUPERSEDED, row.id, None
    _queue_after_commit(session, [row.id])
    return row


def resend(session: Session, assessment: Assessment, user_id: int) -> ScoreDelivery | None:
    """"Send again": the latest score of this person once more (no new submission, no comment
    already sent). None when there is nothing to send."""
    latest = session.scalars(select(ScoreDelivery).where(
        ScoreDelivery.assessment_id == assessment.id, ScoreDelivery.user_id == user_id)
        .order_by(ScoreDelivery.id.desc()).limit(1)).first()
    if latest is None:
        return None
    attempt = session.get(Attempt, latest.attempt_id) if latest.attempt_id else None
    row = queue_score(session, assessment=assessment, user_id=user_id, attempt=attempt,
                      score_given=latest.score_given,
                      needs_grading=latest.grading_progress == "PendingManual", reason="resend",
                      comment=latest.comment)
    if row is not None:
        row.new_submission = False
    return row


# -- handing ids to the queue after the caller's commit -----------------------------------

def _queue_after_commit(session: Session, ids: Iterable[int]) -> None:
    session.info.setdefault(_INFO_KEY, []).extend(ids)


@event.listens_for(Session, "after_commit")
def _enqueue_committed(session: Session) -> None:
    ids = session.info.pop(_INFO_KEY, None)
    if ids:
        enqueue(ids)


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_INFO_KEY, None)


def enqueue(ids: Iterable[int], delay: float = 0.0) -> None:
    """Hand delivery ids to the queue; a failure is logged (the sweep finds the rows later)."""
    from . import tasks
    for delivery_id in ids:
        try:
            if delay > 0:
                tasks.deliver.schedule(args=(delivery_id,), delay=delay)
            else:
                tasks.deliver(delivery_id)
        except Exception:  # the queue being down must not fail the commit that already happened
            log.exception("could not queue score delivery %r; the sweep will retry it", delivery_id)


# -- the sweep and the roster hook ----------------------------------------------------------

def due_ids(session: Session, now: datetime | None = None, limit: int = SWEEP_BATCH) -> list[int]:
    """Rows a lost job left: pending and overdue, or sending with a lease that ran out."""
    now = now or utcnow()
    return list(session.scalars(select(ScoreDelivery.id).where(or_(
        (ScoreDelivery.status == DS.PENDING) & (ScoreDelivery.next_try_at <= now - LOST_AFTER),
        (ScoreDelivery.status == DS.SENDING) & (ScoreDelivery.lease_until < now)))
        .order_by(ScoreDelivery.next_try_at).limit(limit)))


def sweep(session: Session, now: datetime | None = None) -> list[int]:
    """Queue again every delivery whose job was lost; the ids queued."""
    ids = due_ids(session, now)
    session.rollback()
    if ids:
        log.info("sweep: queueing %d score deliveries again", len(ids))
        enqueue(ids)
    return ids


def retry_enrolled(session: Session, context_id: int) -> list[int]:
    """After a roster sync: send again the scores Canvas refused because the person was not a
    student (422), now that the roster shows them active in the course."""
    active = select(Membership.user_id).where(Membership.context_id == context_id,
                                              Membership.is_active.is_(True))
    in_course = select(Assessment.id).where(Assessment.context_id == context_id)
    ids = list(session.scalars(select(ScoreDelivery.id).where(
        ScoreDelivery.status == DS.FAILED, ScoreDelivery.waiting_for_enrollment.is_(True),
        ScoreDelivery.assessment_id.in_(in_course), ScoreDelivery.user_id.in_(active))))
    if not ids:
        return []
    session.execute(update(ScoreDelivery).where(ScoreDelivery.id.in_(ids)).values(
        status=DS.PENDING, next_try_at=utcnow(), waiting_for_enrollment=False))
    _queue_after_commit(session, ids)
    session.commit()
    log.info("roster of context %r synced: %d refused scores queued again", context_id, len(ids))
    return ids


def _register_roster_hook() -> None:
    from ..roster import hooks
    if retry_enrolled not in hooks.after_sync:
        hooks.after_sync.append(retry_enrolled)


_register_roster_hook()
