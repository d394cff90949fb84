"""``flask --app app roster sync CONTEXT_ID | --all`` and ``roster show CONTEXT_ID``.

CONTEXT_ID is the course's context id as the platform sends it (the LTI ``context.id`` claim;
a 40-hex string on Canvas, facts sheet section 3). Syncs run in the foreground through the same
code and course lock as background jobs; the command exits non-zero when a sync fails.
"""
from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db import db
from ..models import Context, Registration
from . import view
from .sync import create_run, run_sync

roster_cli = AppGroup("roster", help="Course rosters from the platform (Names and Role Provisioning).")
jobs_cli = AppGroup("jobs", help="Background workers (roster syncs and their schedule).")


def _find(context_id: str, client_id: str | None) -> Context:
    stmt = select(Context).where(Context.lti_context_id == context_id)
    if client_id:
        stmt = stmt.join(Registration, Registration.id == Context.registration_id).where(
            Registration.client_id == client_id)
    found = db.session.scalars(stmt.limit(2)).all()
    if not found:
        raise click.ClickException(f"No course with context id {context_id!r}. A course becomes known "
                                   "when someone launches the tool from it.")
    if len(found) > 1:
        raise click.ClickException(f"Context id {context_id!r} is known from several platforms; "
                                   "add --client-id.")
    return found[0]


def _sync(context: Context, trigger: str, role, rlid, full) -> bool:
    from ..jobs import client_settings
    run = create_run(db.session, context, trigger, role=role, rlid=rlid)
    run = run_sync(db.session, run.id, client_settings(), lambda: Session(db.engine), full=full)
    label = context.label or context.lti_context_id
    if run.status == "succeeded":
        how = " (differences)" if run.used_differences else ""
        click.echo(f"{label}: synced{how}: {run.members_seen} members on {run.pages_fetched} pages, "
                   f"{run.rows_written} rows written, {run.members_dropped} now inactive, "
                   f"{run.retries} retries.")
        return True
    click.echo(f"{label}: sync {run.status}: {run.error}", err=True)
    return False


@roster_cli.command("sync")
@click.argument("context_id", required=False)
@click.option("--all", "all_courses", is_flag=True, help="Sync every course that has a roster URL.")
@click.option("--client-id", help="The platform's client id (with --all: only its courses).")
@click.option("--role", help="Only members with this role (full role URI), NRPS 2.0 role filter.")
@click.option("--rlid", help="Only members who can see this resource link (NRPS rlid).")
@click.option("--full", is_flag=True, help="Read the whole roster even if a differences link is stored.")
def roster_sync(context_id, all_courses, client_id, role, rlid, full):
    """Sync a course roster now, in the foreground."""
    if bool(context_id) == bool(all_courses):
        raise click.UsageError("Give a CONTEXT_ID or --all.")
    if all_courses:
        stmt = select(Context).where(Context.memberships_url.is_not(None)).order_by(Context.id)
        if client_id:
            stmt = stmt.join(Registration, Registration.id == Context.registration_id).where(
                Registration.client_id == client_id)
        contexts = db.session.scalars(stmt).all()
        if not contexts:
            click.echo("No course with a roster URL yet.")
        failed = [c for c in contexts if not _sync(c, "cli", role, rlid, full)]
        if failed:
            raise SystemExit(1)
        return
    if not _sync(_find(context_id, client_id), "cli", role, rlid, full):
        raise SystemExit(1)


@roster_cli.command("show")
@click.argument("context_id")
@click.option("--client-id", help="The platform's client id, when the context id is ambiguous.")
@click.option("--status", type=click.Choice(view.STATUSES), help="Only active or inactive members.")
def roster_show(context_id, client_id, status):
    """One line per member: name, email, roles, status."""
    context = _find(context_id, client_id)
    for row in view.members(db.session, context.id, status=status, page_size=None):
        click.echo("\t".join([row.name, row.email or "-", ", ".join(row.roles) or "-", row.status]))


@jobs_cli.command("worker")
@click.option("--workers", type=int, default=None, help="Worker threads (default JOBS_WORKERS, 2).")
@click.option("--no-periodic", is_flag=True, help="Do not run the schedule in this worker.")
def jobs_worker(workers, no_periodic):
    """Run a queue worker in the foreground (Ctrl-C stops it after the current task)."""
    from ..jobs import huey
    from flask import current_app
    consumer = huey.create_consumer(workers=workers or current_app.config["SETTINGS"].jobs_workers,
                                    periodic=not no_periodic, worker_type="thread", max_delay=2.0)
    consumer.run()


@jobs_cli.command("schedule")
def jobs_schedule():
    """Queue the courses due for their scheduled roster sync now (what the worker does each minute)."""
    from ..jobs import schedule_due_syncs
    queued = schedule_due_syncs()
    click.echo(f"Queued {len(queued)} roster sync(s).")
