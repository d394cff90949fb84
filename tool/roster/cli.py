"""``flask --app app roster sync CONTEXT_ID | --all`` and ``roster show CONTEXT_ID``.

CONTEXT_ID is the course's context id as the platform sends it (the LTI ``context.id`` claim;
a 40-hex string on Canvas, facts sheet section 3). Syncs run in the foreground through the same
code and course lock as background jobs; the command exits non-zero when a sync fails.
A tool or database error ends a command with one plain line (the details of a database error go
to the log), never a traceback.
"""
from __future__ import annotations

import contextlib
import functools
import logging

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .. import jobs
from ..cli import plural
from ..db import db
from ..errors import ToolError
from ..models import Context, Registration
from ..models.states import SyncStatus
from . import view
from .pagewrite import UNSTORABLE
from .runs import create_run
from .sync import run_sync

roster_cli = AppGroup("roster", help="Course rosters from the platform (Names and Role Provisioning).")


def _plain(text: str | None) -> str:
    """Platform text for a terminal: a control character could move the cursor or end a line."""
    return UNSTORABLE.sub(" ", text or "").strip()


def plain_errors(command):
    """A ToolError or a database error ends the command with one line and exit status 1."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except ToolError as exc:
            raise click.ClickException(exc.reason + (f" {exc.hint}" if exc.hint else ""))
        except SQLAlchemyError as exc:
            raise click.ClickException(
                f"The database could not be read or written ({_driver_line(exc)}); check "
                "DATABASE_URL and that the database is running and migrated (flask --app app db "
                "upgrade).")
    return wrapper


def _driver_line(exc: SQLAlchemyError) -> str:
    """The driver's first line (never the SQL or its parameters), or the error's class."""
    orig = getattr(exc, "orig", None)
    first = str(orig).strip().splitlines()[0] if orig is not None and str(orig).strip() else ""
    first = _plain(first)[:200]
    return f"{exc.__class__.__name__}: {first}" if first else exc.__class__.__name__


class _OneLineLog(logging.Filter):
    """In a terminal the log is what the person reads: an exception's class, not a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.msg} ({record.exc_info[1].__class__.__name__})"
            record.exc_info = record.exc_text = None
        return True


@contextlib.contextmanager
def _tracebacks_kept_out_of_the_terminal():
    loggers = [logging.getLogger(name) for name in ("tool.roster.sync", "tool.roster.pagewrite",
                                                     "tool.roster.hooks")]
    one_line = _OneLineLog()
    for logger in loggers:
        logger.addFilter(one_line)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(one_line)


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
    run = create_run(db.session, context, trigger, role=role, rlid=rlid)
    with _tracebacks_kept_out_of_the_terminal():
        run = run_sync(db.session, run.id, jobs.client_settings(), lambda: Session(db.engine),
                       full=full)
    label = _plain(context.label or context.lti_context_id)
    if run.status == SyncStatus.SUCCEEDED:
        how = " (differences)" if run.used_differences else ""
        skipped = ""
        if run.members_skipped:
            skipped = (f", {plural(run.members_skipped, 'member')} skipped (could not be stored: "
                       f"{run.skipped_detail})")
        click.echo(f"{label}: synced{how}: {plural(run.members_seen, 'member')} on "
                   f"{plural(run.pages_fetched, 'page')}, {plural(run.rows_written, 'row')} written, "
                   f"{run.members_dropped} now inactive{skipped}, "
                   f"{plural(run.retries, 'retry', 'retries')}.")
        return True
    click.echo(f"{label}: sync {run.status}: {_plain(run.error)}", err=True)
    return False


@roster_cli.command("sync")
@click.argument("context_id", required=False)
@click.option("--all", "all_courses", is_flag=True, help="Sync every course that has a roster URL.")
@click.option("--client-id", help="The platform's client id (with --all: only its courses).")
@click.option("--role", help="Only members with this role (full role URI), NRPS 2.0 role filter.")
@click.option("--rlid", help="Only members who can see this resource link (NRPS rlid).")
@click.option("--full", is_flag=True, help="Read the whole roster even if a differences link is stored.")
@plain_errors
def roster_sync(context_id, all_courses, client_id, role, rlid, full):
    """Sync a course roster now, in the foreground."""
    if context_id and all_courses:
        raise click.UsageError("Give a CONTEXT_ID or --all, not both.")
    if not context_id and not all_courses:
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
@plain_errors
def roster_show(context_id, client_id, status):
    """One line per member: name, email, roles, status."""
    context = _find(context_id, client_id)
    for row in view.members(db.session, context.id, status=status, page_size=None):
        click.echo("\t".join(_plain(value) or "-" for value in
                              (row.name, row.email, ", ".join(row.roles), row.status)))
