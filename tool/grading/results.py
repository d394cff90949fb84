"""What the platform's gradebook holds: AGS results read into ``PlatformResult`` (AGS 2.0 §3.5).

A read takes every page of the line item's results (Canvas: ``?limit=`` up to 100, paged by
``Link``; facts section 8) and replaces what was stored for the assessment in one transaction,
so a failed read leaves the last complete picture. People are matched by ``userId`` = ``sub``;
results for people the tool does not know are skipped. Only with the ``result.readonly`` scope.

When: a job when the gradebook page is opened (``queue_refresh``, at most once per
``results_refresh`` seconds unless forced), and a periodic job every few minutes for the
assessments someone looked at, or sent scores to, within the last hour.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, or_, select
from sqlalchemy.orm import Session

from ..db import upsert
from ..lti import ags
from ..lti.service_client import PlatformClient
from ..models import Assessment, Context, PlatformResult, ScoreDelivery, User, utcnow
from .lineitems import client_for

log = logging.getLogger(__name__)

PAGE_SIZE = 100
# After the page was opened or a score was sent, keep the picture current this long.
WATCH = timedelta(hours=1)
CHUNK = 500


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def can_read(session: Session, assessment: Assessment) -> bool:
    context = session.get(Context, assessment.context_id)
    return bool(assessment.lineitem_url) and ags.capabilities(context.ags_scopes).can_read_results


def refresh(session: Session, assessment_id: int, *, client: PlatformClient | None = None,
            requested: bool = False) -> int | None:
    """Read every page of the results into ``PlatformResult``; how many stored, None if impossible.

    ``requested``: a person asked (the gradebook page): the periodic read watches it a while.
    Runs twice safely; ``PlatformError`` when the platform fails (nothing stored then).
    """
    assessment = session.get(Assessment, assessment_id)
    if assessment is None:
        return None
    if requested:
        assessment.results_requested_at = utcnow()
    if not can_read(session, assessment):
        session.commit()
        return None
    context = session.get(Context, assessment.context_id)
    url = assessment.lineitem_url
    session.commit()  # no transaction stays open across the platform calls
    client = client or client_for(session, context)
    by_sub: dict[str, dict] = {}
    for result in ags.iter_results(client, url, limit=PAGE_SIZE, scopes=[ags.SCOPE_RESULT_READONLY]):
        sub = result.get("userId")
        if isinstance(sub, str) and sub:
            by_sub[sub] = result
    now = utcnow()
    rows = []
    subs = list(by_sub)
    for start in range(0, len(subs), CHUNK):
        for user_id, sub in session.execute(select(User.id, User.sub).where(
                User.registration_id == context.registration_id,
                User.sub.in_(subs[start:start + CHUNK]))):
            result = by_sub[sub]
            comment = result.get("comment")
            rows.append({"assessment_id": assessment_id, "user_id": user_id,
                         "result_score": _number(result.get("resultScore")),
                         "result_maximum": _number(result.get("resultMaximum")),
                         "comment": comment if isinstance(comment, str) else None, "read_at": now})
    skipped = len(by_sub) - len(rows)
    for start in range(0, len(rows), CHUNK):
        upsert(session, PlatformResult, rows[start:start + CHUNK], ["assessment_id", "user_id"],
               ["result_score", "result_maximum", "comment", "read_at"])
    # A complete read: whoever it did not list, the gradebook holds nothing for.
    session.execute(delete(PlatformResult).where(PlatformResult.assessment_id == assessment_id,
                                                 PlatformResult.read_at < now))
    assessment = session.get(Assessment, assessment_id)
    if assessment is not None:
        assessment.results_read_at = now
    session.commit()
    if skipped:
        log.info("results of assessment %r: %d for people the tool does not know, skipped",
                 assessment_id, skipped)
    return len(rows)


def is_fresh(read_at: datetime | None, refresh_seconds: float, now: datetime | None = None) -> bool:
    now = now or utcnow()
    return read_at is not None and read_at > now - timedelta(seconds=refresh_seconds)


def queue_refresh(assessment_id: int, force: bool = False) -> bool:
    """Queue a read of the results unless one was made within ``results_refresh``; True if queued.

    The gradebook page calls it when opened; the read itself is a job, the page never waits.
    """
    from .. import jobs
    from ..db import db
    from .tasks import read_results_task
    with Session(db.engine) as session:  # its own session: the caller's stays as it is
        read_at = session.scalar(select(Assessment.results_read_at)
                                 .where(Assessment.id == assessment_id))
    if not force and is_fresh(read_at, jobs.settings().results_refresh):
        return False
    read_results_task(assessment_id, force, True)
    return True


def run_read(session: Session, assessment_id: int, *, force: bool = False,
             requested: bool = False, refresh_seconds: float = 0) -> str:
    """The job: skip when a read is fresh (another job just made it), else read. Its outcome."""
    assessment = session.get(Assessment, assessment_id)
    if assessment is None:
        return "missing"
    if not force and is_fresh(assessment.results_read_at, refresh_seconds):
        if requested:
            assessment.results_requested_at = utcnow()
            session.commit()
        return "fresh"
    stored = refresh(session, assessment_id, requested=requested)
    return "unavailable" if stored is None else f"read {stored}"


def due_for_refresh(session: Session, refresh_seconds: float, now: datetime | None = None) -> list[int]:
    """Assessments watched lately (page opened, or scores sent, within ``WATCH``) whose read is stale."""
    now = now or utcnow()
    since = now - WATCH
    sent_lately = exists().where(ScoreDelivery.assessment_id == Assessment.id,
                                 ScoreDelivery.sent_at > since)
    candidates = session.scalars(select(Assessment).where(
        Assessment.lineitem_url.is_not(None),
        or_(Assessment.results_read_at.is_(None),
            Assessment.results_read_at <= now - timedelta(seconds=refresh_seconds)),
        or_(Assessment.results_requested_at > since, sent_lately))).all()
    return [a.id for a in candidates if can_read(session, a)]
