"""Sending one outbox row to the platform (AGS 2.0 §3.4), and what its answer means for the row.

Steps, each safe to run twice: read the row with its person's ``sub`` and its line item URL (one
joined SELECT) -> wait at this process's gate, then in one transaction take a slot of the
registration's shared semaphore (``slots.py``: the bound on calls in flight holds across every
worker process, facts sheet section 9) and the row (one conditional UPDATE: pending and due, or
sending with a lease that ran out: its worker died) -> POST the score with a client whose retry
budget is small (the outbox retries, durably) and whose token is kept in memory -> in one
transaction free the slot and record the answer, only if the row is still ours (same lease).
Two commits per try: on SQLite every commit is a turn at the one write lock, so they are few.

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
import time
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta, timezone
from typing import Callable

from sqlalchemy import and_, bindparam, or_, select, update
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
                         rate_low_water=min(client.rate_low_water, THROTTLE_WAIT_UNITS),
                         retry_unclear=False)
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

    Once a try may have reached the platform (a timeout, a 5xx, a worker killed mid-call:
    ``maybe_applied``, sticky across later 429s and throttles) every later try says
    ``new_submission`` false and leaves the comment out: Canvas makes a new submission and
    adds a new comment for every score it applies, so repeating either could double them.
    """
    blind_retry = bool(row.maybe_applied)
    body = {"userId": user_sub, "scoreMaximum": row.score_maximum,
            "activityProgress": row.activity_progress, "gradingProgress": row.grading_progress,
            "timestamp": _iso(row.timestamp)}
    if row.score_given is not None:
        body["scoreGiven"] = row.score_given
    if row.comment and not blind_retry:
        body["comment"] = row.comment
    extension = {"new_submission": bool(row.new_submission and not blind_retry)}
    if row.submission_data_url:
        extension["submission_type"] = "basic_lti_launch"
        extension["submission_data"] = row.submission_data_url
    if row.submitted_at is not None:
        extension["submitted_at"] = _iso(row.submitted_at)
    body[SUBMISSION_EXTENSION] = extension
    return body


# -- clients, one per registration per process (pacing and the token live in it) -------------
_clients: dict[tuple, PlatformClient] = {}
_clients_lock = threading.Lock()


def client_for(session_factory: Callable[[], Session], registration_id: int,
               settings: ClientSettings) -> PlatformClient:
    """This process's client of a registration: made (one registration read) on first use.

    Kept for the process's life so its in-memory token and its pacing by
    ``X-Rate-Limit-Remaining`` serve every delivery, not one.
    """
    key = (registration_id, repr(settings))
    with _clients_lock:
        client = _clients.get(key)
    if client is not None:
        return client
    with session_factory() as session:
        registration = session.get(Registration, registration_id)
        if registration is None:
            raise ToolError("The platform registration of this score is gone.")
        made = PlatformClient(session_factory, registration, settings)
    with _clients_lock:
        return _clients.setdefault(key, made)


def client_stats() -> dict:
    """Token requests and in-call retries of this process's clients (the benchmark prints them)."""
    with _clients_lock:
        return {"token_requests": sum(c.token_requests for c in _clients.values()),
                "retries": sum(c.retries for c in _clients.values())}


# -- the send step --------------------------------------------------------------------------
#
# Per try, two short write transactions and one read, all Core statements:
#   read:   the row with its person's ``sub`` and its line item URL (one joined SELECT);
#   take:   a slot and the row (``slots.claim`` + a conditional UPDATE ... RETURNING);
#   finish: free the slot and record the answer, if the row is still ours (same lease).
# In both transactions the slot comes first, so two of them never wait on each other in a
# cycle on PostgreSQL.

_rows = ScoreDelivery.__table__


@dataclass(frozen=True)
class Job:
    """One outbox row as the send step needs it (read once, joined with its person and column)."""
    id: int
    registration_id: int
    assessment_id: int
    user_id: int
    status: str
    next_try_at: object
    lease_until: object
    tries: int
    http_status: int | None
    maybe_applied: bool
    score_given: float | None
    score_maximum: float
    activity_progress: str
    grading_progress: str
    comment: str | None
    timestamp: object
    submitted_at: object
    new_submission: bool
    submission_data_url: str | None
    user_sub: str | None
    lineitem_url: str | None


@dataclass(frozen=True)
class Claim:
    """What the take transaction holds: the row's lease and the slot."""
    until: object
    slot: int
    holder: str


# The statements of every try, built once with named parameters: building a statement and
# its cache key again per score cost more CPU than running it (the GIL is shared by every
# worker thread of the process).
_READ = (select(*[_rows.c[f.name] for f in fields(Job) if f.name not in ("user_sub", "lineitem_url")],
                User.__table__.c.sub.label("user_sub"), Assessment.__table__.c.lineitem_url)
         .join(User.__table__, User.__table__.c.id == _rows.c.user_id)
         .join(Assessment.__table__, Assessment.__table__.c.id == _rows.c.assessment_id)
         .where(_rows.c.id == bindparam("delivery_id")))
_TAKE = (update(_rows).where(
    _rows.c.id == bindparam("delivery_id"),
    or_(and_(_rows.c.status == DS.PENDING, _rows.c.next_try_at <= bindparam("due_by")),
        and_(_rows.c.status == DS.SENDING, _rows.c.lease_until < bindparam("now"))))
    # A row taken back from a worker lost mid-call may have reached the platform.
    .values(status=DS.SENDING, lease_until=bindparam("until"), tries=_rows.c.tries + 1,
            maybe_applied=or_(_rows.c.maybe_applied, _rows.c.status == DS.SENDING))
    .returning(_rows.c.tries, _rows.c.http_status, _rows.c.maybe_applied))
_NEWER = (select(_rows.c.id).where(
    _rows.c.assessment_id == bindparam("assessment"), _rows.c.user_id == bindparam("person"),
    _rows.c.id > bindparam("delivery_id"), _rows.c.status != DS.SUPERSEDED)
    .order_by(_rows.c.id.desc()).limit(1))
_STILL_OURS = and_(_rows.c.id == bindparam("delivery_id"), _rows.c.status == DS.SENDING,
                   _rows.c.lease_until == bindparam("until"))
_SENT = update(_rows).where(_STILL_OURS).values(
    status=DS.SENT, sent_at=bindparam("sent_time"), last_error=None, waiting_for_enrollment=False,
    lease_until=None, http_status=bindparam("answer"))
# A ``force``d try (the CLI) takes a pending row whenever its next try was meant to be.
_ANY_TIME = datetime(9999, 12, 31)


def _read(session: Session, delivery_id: int) -> Job | None:
    """The row, its person's platform id and its line item URL, in one SELECT (no ORM objects)."""
    found = session.execute(_READ, {"delivery_id": delivery_id}).first()
    return None if found is None else Job(**found._mapping)


def _due(row, now, force: bool) -> bool:
    if row is None:
        return False
    if row.status == DS.PENDING:
        return force or row.next_try_at <= now + timedelta(seconds=1)
    return row.status == DS.SENDING and row.lease_until is not None and row.lease_until < now


def _take_row(session: Session, delivery_id: int, lease: float, force: bool):
    """Pending-and-due (or sending with an expired lease) -> sending, by one conditional UPDATE.

    (lease end, tries, http_status) as the UPDATE left them, or None when the row is not ours
    to send (someone else took it, it was superseded, or it is not due).
    """
    now = utcnow()
    until = now + timedelta(seconds=lease, microseconds=random.randrange(1000))
    due_by = _ANY_TIME if force else now + timedelta(seconds=1)
    taken = session.execute(_TAKE, {"delivery_id": delivery_id, "due_by": due_by, "now": now,
                                    "until": until}).first()
    return None if taken is None else (until, taken.tries, taken.http_status, bool(taken.maybe_applied))


def _take(session: Session, job: Job, settings: SendSettings, force: bool):
    """One transaction: a slot, then the row. (job as taken, claim), "busy" or "skipped".

    No free slot: polls (another process holds them) until ``slot_wait`` runs out. The row
    not ours: the slot is given back by the rollback.
    """
    def attempt():
        with slots.write_turn(session):
            got = slots.claim(session, job.registration_id, settings.concurrency, settings.lease)
            if got is None:
                session.rollback()
                return None
            taken = _take_row(session, job.id, settings.lease, force)
            if taken is None:
                session.rollback()
                return "skipped"
            session.commit()
        until, tries, http_status, maybe_applied = taken
        return replace(job, status=DS.SENDING, tries=tries, http_status=http_status,
                       maybe_applied=maybe_applied), \
            Claim(until, got[0], got[1])

    return slots.poll(attempt, time.monotonic() + settings.slot_wait) or "busy"


def _newest_other(session: Session, row) -> int | None:
    return session.scalar(_NEWER, {"assessment": row.assessment_id, "person": row.user_id,
                                   "delivery_id": row.id})


def _finish(session: Session, job: Job, claim: Claim, outcome: Outcome) -> Outcome:
    """One transaction: free the slot, and write the outcome if the row is still ours (the lease
    we took is still on it)."""
    ours = {"delivery_id": job.id, "until": claim.until}
    if outcome.status == DS.SENT:
        statement, params = _SENT, {**ours, "sent_time": utcnow(), "answer": outcome.http_status}
    else:
        outcome, values = _unsent_values(session, job, outcome)
        statement, params = update(_rows).where(_STILL_OURS).values(**values), ours
    with slots.write_turn(session):
        slots.free(session, job.registration_id, claim.slot, claim.holder)
        written = session.execute(statement, params)
        session.commit()
    if written.rowcount != 1:
        log.warning("delivery %r: lease lost before its answer was recorded", job.id)
    return outcome


def _unsent_values(session: Session, job: Job, outcome: Outcome) -> tuple[Outcome, dict]:
    """The row's new values after a try that did not deliver (superseded if a newer score waits)."""
    values: dict = {"lease_until": None, "http_status": outcome.http_status}
    if outcome.http_status is None or outcome.http_status >= 500:
        values["maybe_applied"] = True  # no clear refusal: the platform may have stored it
    newer = _newest_other(session, job)
    if newer is not None:  # a newer score is on its way: this one no longer matters
        outcome = replace(outcome, status=DS.SUPERSEDED)
        values.update(status=DS.SUPERSEDED, superseded_by_id=newer, last_error=outcome.message)
    else:
        values.update(status=outcome.status, last_error=outcome.message,
                      waiting_for_enrollment=outcome.waiting_for_enrollment)
        if outcome.status == DS.PENDING:
            values["next_try_at"] = utcnow() + timedelta(seconds=outcome.delay)
    return outcome, values


def send(delivery_id: int, settings: SendSettings, session_factory: Callable[[], Session], *,
         force: bool = False) -> Outcome:
    """One try of one row. ``force`` sends a pending row before its next try is due (CLI)."""
    with session_factory() as session:
        job = _read(session, delivery_id)
    if not _due(job, utcnow(), force):
        return Outcome("skipped", delivery_id=delivery_id)
    door = slots.gate(job.registration_id, settings.concurrency)
    if not door.acquire(timeout=settings.slot_wait):
        return _busy(delivery_id)
    try:
        with session_factory() as session:
            return replace(_send_taken(session, session_factory, job, settings, force),
                           delivery_id=delivery_id)
    finally:
        door.release()


def _busy(delivery_id: int) -> Outcome:
    return Outcome("busy", delay=random.uniform(0.2, 1.0), delivery_id=delivery_id)


def _send_taken(session: Session, session_factory, job: Job, settings: SendSettings,
                force: bool) -> Outcome:
    taken = _take(session, job, settings, force)
    if taken == "busy":
        return _busy(job.id)
    if taken == "skipped":
        return Outcome("skipped")
    job, claim = taken
    try:
        # Only a row whose worker died can have a newer sibling (queue_score supersedes the
        # waiting ones): the newer score is the one the gradebook should end with.
        if _newest_other(session, job) is not None:
            outcome = Outcome(DS.SUPERSEDED, message="A newer score replaced it.")
        else:
            outcome = _post(session, session_factory, job, settings)
        return _finish(session, job, claim, outcome)
    except Exception:
        # The answer could not be recorded (the database went away): free the slot at least,
        # as a ``finally`` would; the row's lease runs out and the sweep sends it again.
        _free_anyway(session_factory, job, claim)
        raise


def _free_anyway(session_factory, job: Job, claim: Claim) -> None:
    try:
        with session_factory() as session:
            slots.release(session, job.registration_id, claim.slot, claim.holder)
    except Exception:  # its lease frees it in the end
        log.exception("delivery %r: could not free slot %r", job.id, claim.slot)


def _comment_arrived(client: PlatformClient, lineitem_url: str, job: Job) -> bool | None:
    """Does the platform's result for this person already hold the comment (AGS 2.0 §3.5)?

    Asked only after a try that may have been applied: Canvas adds every comment it is sent, so
    it must not be sent twice, and must not be lost either. None when the results cannot be
    read (no ``result.readonly`` scope, an error): then the comment is not sent again.
    """
    from ..lti import ags
    try:
        for result in ags.iter_results(client, lineitem_url, user_id=job.user_sub):
            if result.get("userId") == job.user_sub:
                return job.comment in str(result.get("comment") or "")
        return False
    except Exception as exc:  # reading is a courtesy: the score still goes out
        log.info("delivery %r: could not read the result back (%s)", job.id, exc.__class__.__name__)
        return None


def _post(session: Session, session_factory, job: Job, settings: SendSettings) -> Outcome:
    """POST the score; the answer as an Outcome (never raises: the row must not stay "sending")."""
    from ..lti import ags
    try:
        client = client_for(session_factory, job.registration_id, settings.client)
        url = job.lineitem_url or _ensure_lineitem(session, job, client)
        body = score_body(job, job.user_sub)
        if job.maybe_applied and job.comment and _comment_arrived(client, url, job) is False:
            body["comment"] = job.comment  # the unclear try never stored it: send it after all
        ags.post_score(client, url, body, scopes=(ags.SCOPE_SCORE,))
        return Outcome(DS.SENT, 200)
    except Exception as exc:  # every failure is recorded on the row; none may leave it "sending"
        session.rollback()
        outcome = classify(exc, job.tries, settings)
        if isinstance(exc, ToolError):
            log.info("delivery %r: %s (%s)", job.id, outcome.status, outcome.message)
        else:
            log.exception("delivery %r failed inside the tool", job.id)
        return outcome


def _ensure_lineitem(session: Session, job: Job, client: PlatformClient) -> str:
    """The assessment has no column yet (rare): find or make it once and store its URL."""
    from .lineitems import ensure_lineitem
    url = ensure_lineitem(session, session.get(Assessment, job.assessment_id), client=client)
    session.commit()
    return url
