"""``flask --app app grades status CONTEXT_ID`` and ``grades push CONTEXT_ID``.

CONTEXT_ID is the course's context id as the platform sends it (the LTI ``context.id`` claim).
``status`` prints one line per active student and assessment: the tool's score and where its
delivery to the platform's gradebook stands. ``push`` sends what is waiting or was refused, in
the foreground, through the same send step and shared slots as the workers, and exits non-zero
when something was not delivered.
"""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import update
from sqlalchemy.orm import Session

from ..db import db
from ..models import Assessment, ScoreDelivery, User, utcnow
from ..models.states import DeliveryStatus as DS
from ..roster.cli import _find, _plain, plain_errors, plural
from . import book

grades_cli = AppGroup("grades", help="Scores sent to the platform's gradebook (Assignment and Grade Services).")


@grades_cli.command("status")
@click.argument("context_id")
@click.option("--client-id", help="The platform's client id, when the context id is ambiguous.")
@plain_errors
def grades_status(context_id, client_id):
    """One line per student and assessment: name, assessment, score, delivery state."""
    context = _find(context_id, client_id)
    gradebook = book.read(db.session, context.id, page_size=None)
    if not gradebook.assessments:
        click.echo(f"{_plain(context.display_name)}: no assessments yet.")
        return
    for student in gradebook.students:
        for assessment, cell in zip(gradebook.assessments, student.cells):
            canvas = f"Canvas holds {cell.canvas_text}" + (" (differs)" if cell.mismatch else "")
            click.echo("\t".join(_plain(v) for v in (student.name, assessment.title,
                                                      cell.score_text, cell.state_words, canvas)))


@grades_cli.command("push")
@click.argument("context_id")
@click.option("--client-id", help="The platform's client id, when the context id is ambiguous.")
@plain_errors
def grades_push(context_id, client_id):
    """Send now what is waiting or was refused (foreground); exit 1 if any is not delivered."""
    from ..jobs import client_settings, settings
    from .sender import SendSettings, send
    context = _find(context_id, client_id)
    rows = book.open_deliveries(db.session, context.id)
    if not rows:
        click.echo(f"{_plain(context.display_name)}: nothing waiting to be sent.")
        return
    ids = [row.id for row in rows]
    # A refused row goes back to pending: the person asked for it to be tried again now.
    db.session.execute(update(ScoreDelivery).where(
        ScoreDelivery.id.in_(ids), ScoreDelivery.status == DS.FAILED).values(
        status=DS.PENDING, next_try_at=utcnow(), waiting_for_enrollment=False))
    db.session.commit()
    send_settings = SendSettings.from_settings(settings(), client_settings())
    send_settings.slot_wait = 30.0  # in the foreground, wait for a slot rather than give up
    failed = 0
    for delivery_id in ids:
        outcome = send(delivery_id, send_settings, lambda: Session(db.engine, expire_on_commit=False),
                       force=True)
        row = db.session.get(ScoreDelivery, delivery_id, populate_existing=True)
        who = db.session.get(User, row.user_id)
        what = db.session.get(Assessment, row.assessment_id)
        if outcome.status == DS.SENT:
            words = "sent"
        elif outcome.status == "skipped" and row.status in (DS.SENT, DS.SENDING):
            words = "already sent" if row.status == DS.SENT else "being sent by a worker"
        elif outcome.status == DS.SUPERSEDED:
            words = "replaced by a newer score"
        else:
            failed += 1
            words = f"not sent: {outcome.message or row.last_error or outcome.status}"
        click.echo("\t".join(_plain(v) for v in (who.display_name if who else str(row.user_id),
                                                  what.title if what else str(row.assessment_id),
                                                  words)))
    click.echo(f"{plural(len(ids) - failed, 'score')} delivered, {failed} not.")
    if failed:
        raise SystemExit(1)
