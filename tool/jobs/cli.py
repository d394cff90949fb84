"""``flask --app app jobs worker`` and ``jobs schedule``: the queue's commands, beside the queue."""
from __future__ import annotations

import click
from flask import current_app

from ..cli import ToolGroup, plural

jobs_cli = ToolGroup("jobs", help="Background workers (roster syncs and their schedule).")


@jobs_cli.command("worker")
@click.option("--workers", type=int, default=None, help="Worker threads (default JOBS_WORKERS, 12).")
@click.option("--no-periodic", is_flag=True, help="Do not run the schedule in this worker.")
def jobs_worker(workers, no_periodic):
    """Run a queue worker in the foreground (Ctrl-C stops it after the current task)."""
    from . import huey
    consumer = huey.create_consumer(workers=workers or current_app.config["SETTINGS"].jobs_workers,
                                    periodic=not no_periodic, worker_type="thread", max_delay=2.0)
    from .heartbeat import start
    start(consumer, periodic=not no_periodic)  # the instructor page warns when none beats
    consumer.run()


@jobs_cli.command("schedule")
def jobs_schedule():
    """Queue the courses due for their scheduled roster sync now (what the worker does each minute)."""
    from ..roster.runs import schedule_due_syncs
    queued = schedule_due_syncs()
    click.echo(f"Queued {plural(len(queued), 'roster sync')}.")
