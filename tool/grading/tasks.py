"""Grading's background tasks on the tool's huey queue (jobs carry ids only, never scores).

- ``grading.deliver``: one try of one outbox row (``sender.send``); a retry is scheduled with
  the row's backoff. Running it twice is harmless: the row is taken by a conditional UPDATE.
- ``grading.sweep`` (every minute): queues again the rows a lost job left behind (the queue
  was wiped, a worker was killed mid-call and its lease ran out).
"""
from __future__ import annotations

import logging

from huey import crontab
from sqlalchemy.orm import Session

from .. import jobs
from ..db import db

log = logging.getLogger(__name__)


def send_settings():
    from .sender import SendSettings
    return SendSettings.from_settings(jobs.settings(), jobs.client_settings())


def _sessions():
    return Session(db.engine, expire_on_commit=False)


@jobs.huey.task(name="grading.deliver")
def deliver(delivery_id: int) -> str:
    """Send one score (AGS 2.0 §3.4); schedule its next try when it must wait."""
    from . import delivery, sender
    with jobs.app().app_context():
        outcome = sender.send(int(delivery_id), send_settings(), _sessions)
    if outcome.status in ("pending", "busy"):
        delivery.enqueue([int(delivery_id)], delay=max(outcome.delay, 0.05))
    return outcome.status


def sweep_now() -> list[int]:
    from . import delivery
    with jobs.app().app_context(), _sessions() as session:
        return delivery.sweep(session)


@jobs.huey.periodic_task(crontab(minute="*"), name="grading.sweep")
def sweep() -> None:
    """Every minute: rows whose job was lost go back on the queue."""
    sweep_now()


# -- line items and results (tool/grading/lineitems.py, results.py) -------------------------

@jobs.huey.task(name="grading.update_lineitem", retries=5, retry_delay=60)
def update_lineitem_task(assessment_id: int) -> str:
    """Bring the gradebook column's label and points in line with the assessment (AGS 2.0 §3.2).

    Safe twice: a column that already matches is left alone. A platform that cannot be reached
    raises, so huey tries again later; a refusal is recorded on the assessment.
    """
    from . import lineitems
    with jobs.app().app_context(), _sessions() as session:
        return lineitems.run_update(session, int(assessment_id))


@jobs.huey.task(name="grading.read_results")
def read_results_task(assessment_id: int, force: bool = False, requested: bool = False) -> str:
    """Read what the gradebook holds for one assessment (AGS 2.0 §3.5); skipped when fresh."""
    from ..lti.errors import PlatformError
    from . import results
    with jobs.app().app_context(), _sessions() as session:
        try:
            return results.run_read(session, int(assessment_id), force=force, requested=requested,
                                    refresh_seconds=jobs.settings().results_refresh)
        except PlatformError as exc:  # the next periodic read tries again
            log.warning("reading results of assessment %r failed: %r", assessment_id, exc.reason)
            return "failed"


def refresh_watched_results() -> list[int]:
    """Queue a read for each assessment watched lately whose read is stale; their ids."""
    from . import results
    with jobs.app().app_context(), _sessions() as session:
        due = results.due_for_refresh(session, jobs.settings().results_refresh)
    for assessment_id in due:
        read_results_task(assessment_id)
    return due


@jobs.huey.periodic_task(crontab(minute="*/5"), name="grading.refresh_results")
def refresh_results() -> None:
    """Every five minutes: keep the gradebook's picture current where someone is looking."""
    refresh_watched_results()
