"""Sending one outbox row to the platform (AGS 2.0 §3.4), and what its answer means for the row.

Steps, each safe to run twice: take a slot of the registration's shared semaphore
(``slots.py``: the bound on calls in flight holds across every worker process, facts sheet
section 9) -> take the row with one conditional UPDATE (pending and due, or sending with a lease
that ran out: its worker died) -> the line item URL (stored once, ``lineitems.ensure_lineitem``)
-> POST the score with a client whose retry budget is small (the outbox retries, durably) ->
record the answer, only if the row is still ours (same lease).

Answers (facts section 8, 9): 2xx sent; 5xx, 429 (``Retry-After`` honoured), Canvas's 403
"Rate Limit Exceeded" and timeouts go back to pending with exponential backoff and jitter;
422 "not a student of the course" fails until a roster sync shows the person enrolled; 404
(line item gone), 400 and other refusals fail with the platform's words, for an instructor to
send again.
"""
from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, replace
from datetime import timedelta, timezone
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..errors import ToolError
from ..lti.errors import PlatformError
from ..lti.service_client import ClientSettings, PlatformClient
from ..models import Assessment, Registration, ScoreDelivery, User, utcnow
from ..models.states import DeliveryStatus as DS
from . import slots
from .delivery import SUBMISSION_EXTENSION

log = logging.getLogger(__name__)

# Seconds one call may spend on the client's own retries: the outbox does the real retrying.
CALL_RETRY_BUDGET = 2.0
LEASE_MARGIN = 10.0
# Canvas refills 50 units (one request in flight) of its bucket in this many seconds at 10/s.
THROTTLE_WAIT_UNITS = 50.0
MESSAGE_LIMIT = 500


@dataclass
class SendSettings:
    client: ClientSettings
    concurrency: int = 10
    backoff: float = 1.0
    max_backoff: float = 3600.0
    slot_wait: float = 1.0

    @classmethod
    def from_settings(cls, settings, client: ClientSettings) -> "SendSettings":
        # The slots already keep calls in flight to ``concurrency`` (10 x 50 of Canvas's 600
        # units): pace only when less than one more request's worth is left, which means
        # something else (a roster sync) is drawing on the same bucket.
        client = replace(client, retry_budget=min(client.retry_budget, CALL_RETRY_BUDGET),
                         rate_low_water=min(client.rate_low_water, THROTTLE_WAIT_UNITS))
        return cls(client=client,
                   concurrency=settings.delivery_concurrency, backoff=settings.service_backoff,
                   max_backoff=settings.delivery_max_backoff)

    @property
    def lease(self) -> float:
        """Longer than any one call can take, so a live worker never loses its row."""
        c = self.client
        return c.connect_timeout + c.read_timeout + c.retry_budget + LEASE_MARGIN


@dataclass
class Outcome:
    status: str  # "sent" | "pending" | "failed" | "superseded" | "skipped" | "busy"
    http_status: int | None = None
    message: str | None = None
    delay: float = 0.0
    waiting_for_enrollment: bool = False
    delivery_id: int | None = None


def backoff(tries: int, base: float, maximum: float, rng: Callable[[float, float], float] = random.uniform) -> float:
    """min(maximum, base * 2**(tries-1)) scaled by a jitter in [0.5, 1]: spreads a class's retries."""
    return min(maximum, base * 2 ** max(0, tries - 1)) * rng(0.5, 1.0)


def classify(exc: Exception, tries: int, settings: SendSettings) -> Outcome:
    """What a failed try means for the row (facts sheet sections 8 and 9)."""
    if isinstance(exc, PlatformError):
        status = exc.http_status
        message = _clean(exc.platform_message or exc.reason)
        throttled = status == 403 and exc.retryable
        if exc.retryable or status is None or status == 429 or status >= 500:
            delay = backoff(tries, settings.backoff, settings.max_backoff)
            if exc.retry_after:
                delay = max(delay, float(exc.retry_after))
            if throttled:
                delay = max(delay, THROTTLE_WAIT_UNITS / settings.client.rate_leak)
            return Outcome(DS.PENDING, status, message, min(delay, settings.max_backoff))
        if status == 422 and any(word in message.lower() for word in ("student", "user")):
            return Outcome(DS.FAILED, status, message, waiting_for_enrollment=True)
        return Outcome(DS.FAILED, status, message)
    if isinstance(exc, ToolError):
        return Outcome(DS.FAILED, None, _clean(exc.reason))
    # Ours, not the platform's: try again later rather than lose the score.
    return Outcome(DS.PENDING, None, "The tool could not send it (an internal error; see the log).",
                   backoff(tries, settings.backoff, settings.max_backoff))


def _clean(text: str | None) -> str:
    text = "".join(ch if ch.isprintable() else " " for ch in (text or "")).strip()
    return text[:MESSAGE_LIMIT] or "no reason given"


def _iso(moment) -> str | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc).isoformat(timespec="milliseconds")


def score_body(row: ScoreDelivery, user_sub: str) -> dict:
    """The AGS score (AGS 2.0 §3.4) with Canvas's submission extension (facts section 8).

    A try after one that may have reached the platform (a timeout, a 5xx, a worker killed
    mid-call) says ``new_submission`` false: Canvas would otherwise make a second submission.
    The comment stays until one try is known to have arrived (2xx): an instructor's comment
    twice is better than never.
    """
    blind_retry = row.tries > 1 and (row.http_status is None or row.http_status >= 500)
    body = {"userId": user_sub, "scoreMaximum": row.score_maximum,
            "activityProgress": row.activity_progress, "gradingProgress": row.grading_progress,
            "timestamp": _iso(row.timestamp)}
    if row.score_given is not None:
        body["scoreGiven"] = row.score_given
    if row.comment:
        body["comment"] = row.comment
    extension = {"new_submission": bool(row.new_submission and not blind_retry)}
    if row.submission_data_url:
        extension["submission_type"] = "basic_lti_launch"
        extension["submission_data"] = row.submission_data_url
    if row.submitted_at is not None:
        extension["submitted_at"] = _iso(row.submitted_at)
    body[SUBMISSION_EXTENSION] = extension
    return body


# -- clients, one per registration per process (pacing by X-Rate-Limit-Remaining lives in it) --
_clients: dict[tuple, PlatformClient] = {}
_clients_lock = threading.Lock()


def client_for(session_factory: Callable[[], Session], registration: Registration,
               settings: ClientSettings) -> PlatformClient:
    key = (registration.id, repr(settings))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = PlatformClient(session_factory, registration, settings)
        return client


_token_locks: dict[int, threading.Lock] = {}


def _token_lock(registration_id: int) -> threading.Lock:
    with _clients_lock:
        return _token_locks.setdefault(registration_id, threading.Lock())


def client_stats() -> dict:
    """Token requests and in-call retries of this process's clients (the benchmark prints them)."""
    with _clients_lock:
        return {"token_requests": sum(c.token_requests for c in _clients.values()),
                "retries": sum(c.retries for c in _clients.values())}


# -- the send step --------------------------------------------------------------------------

def _due(row: ScoreDelivery | None, now, force: bool) -> bool:
    if row is None:
        return False
    if row.status == DS.PENDING:
        return force or row.next_try_at <= now + timedelta(seconds=1)
    return row.status == DS.SENDING and row.lease_until is not None and row.lease_until < now


def _take(session: Session, delivery_id: int, lease: float, force: bool):
    """Pending-and-due (or sending with an expired lease) -> sending, by one conditional UPDATE."""
    now = utcnow()
    until = now + timedelta(seconds=lease, microseconds=random.randrange(1000))
    pending = ScoreDelivery.status == DS.PENDING
    if not force:
        pending = pending & (ScoreDelivery.next_try_at <= now + timedelta(seconds=1))
    lost = (ScoreDelivery.status == DS.SENDING) & (ScoreDelivery.lease_until < now)
    taken = session.execute(update(ScoreDelivery).where(
        ScoreDelivery.id == delivery_id, pending | lost).values(
        status=DS.SENDING, lease_until=until, tries=ScoreDelivery.tries + 1))
    session.commit()
    return until if taken.rowcount == 1 else None


def _newest_other(session: Session, row: ScoreDelivery) -> int | None:
    return session.scalar(select(ScoreDelivery.id).where(
        ScoreDelivery.assessment_id == row.assessment_id, ScoreDelivery.user_id == row.user_id,
        ScoreDelivery.id > row.id, ScoreDelivery.status != DS.SUPERSEDED)
        .order_by(ScoreDelivery.id.desc()).limit(1))


def _record(session: Session, row: ScoreDelivery, until, outcome: Outcome) -> Outcome:
    """Write the outcome if the row is still ours (the lease we took is still on it)."""
    values: dict = {"lease_until": None, "http_status": outcome.http_status}
    if outcome.status == DS.SENT:
        values.update(status=DS.SENT, sent_at=utcnow(), last_error=None,
                      waiting_for_enrollment=False)
    else:
        newer = _newest_other(session, row)
        if newer is not None:  # a newer score is on its way: this one no longer matters
            outcome = replace(outcome, status=DS.SUPERSEDED)
            values.update(status=DS.SUPERSEDED, superseded_by_id=newer, last_error=outcome.message)
        else:
            values.update(status=outcome.status, last_error=outcome.message,
                          waiting_for_enrollment=outcome.waiting_for_enrollment)
            if outcome.status == DS.PENDING:
                values["next_try_at"] = utcnow() + timedelta(seconds=outcome.delay)
    written = session.execute(update(ScoreDelivery).where(
        ScoreDelivery.id == row.id, ScoreDelivery.status == DS.SENDING,
        ScoreDelivery.lease_until == until).values(**values))
    session.commit()
    if written.rowcount != 1:
        log.warning("delivery %r: lease lost before its answer was recorded", row.id)
    return outcome


def send(delivery_id: int, settings: SendSettings, session_factory: Callable[[], Session], *,
         force: bool = False) -> Outcome:
    """One try of one row. ``force`` sends a pending row before its next try is due (CLI)."""
    with session_factory() as session:
        row = session.get(ScoreDelivery, delivery_id)
        if not _due(row, utcnow(), force):
            return Outcome("skipped", delivery_id=delivery_id)
        registration_id = row.registration_id
    with slots.held(session_factory, registration_id, settings.concurrency, settings.lease,
                    wait=settings.slot_wait) as slot:
        if slot is None:
            return Outcome("busy", delay=random.uniform(0.2, 1.0), delivery_id=delivery_id)
        with session_factory() as session:
            until = _take(session, delivery_id, settings.lease, force)
            if until is None:
                return Outcome("skipped", delivery_id=delivery_id)
            row = session.get(ScoreDelivery, delivery_id)
            # Only a row whose worker died can have a newer sibling (queue_score supersedes the
            # waiting ones): the newer score is the one the gradebook should end with.
            if _newest_other(session, row) is not None:
                outcome = Outcome(DS.SUPERSEDED, message="A newer score replaced it.")
                return replace(_record(session, row, until, outcome), delivery_id=delivery_id)
            outcome = _post(session, session_factory, row, settings)
            return replace(_record(session, row, until, outcome), delivery_id=delivery_id)


def _post(session: Session, session_factory, row: ScoreDelivery, settings: SendSettings) -> Outcome:
    from ..lti import ags
    try:
        assessment = session.get(Assessment, row.assessment_id)
        user = session.get(User, row.user_id)
        registration = session.get(Registration, row.registration_id)
        client = client_for(session_factory, registration, settings.client)
        url = assessment.lineitem_url
        if not url:
            from .lineitems import ensure_lineitem
            url = ensure_lineitem(session, assessment, client=client)
            session.commit()
        with _token_lock(registration.id):
            # One token request per process when many sends start at once; later ones read it.
            client.token([ags.SCOPE_SCORE])
        ags.post_score(client, url, score_body(row, user.sub), scopes=(ags.SCOPE_SCORE,))
        return Outcome(DS.SENT, 200)
    except Exception as exc:  # every failure is recorded on the row; none may leave it "sending"
        session.rollback()
        outcome = classify(exc, row.tries, settings)
        if isinstance(exc, ToolError):
            log.info("delivery %r: %s (%s)", row.id, outcome.status, outcome.message)
        else:
            log.exception("delivery %r failed inside the tool", row.id)
        return outcome
