"""Pages are written in a few statements whatever their size; a worker in its own process runs syncs."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import event

from rosterkit import add_course_to_tool, fast_retries, roster, sync  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def _statements_during_sync(tool, context_id) -> tuple[int, object]:
    from tool.db import db
    seen: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        run = sync(tool, context_id)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    return len(seen), run


def test_statements_per_page_do_not_grow_with_the_page_size(tool, lms):
    small = lms.platform.add_course(label="S", title="Small")
    big = lms.platform.add_course(label="B", title="Big")
    lms.platform.add_many(small, 2)
    lms.platform.add_many(big, 100)  # two full pages of 50
    small_n, small_run = _statements_during_sync(tool, add_course_to_tool(lms, small))
    big_n, big_run = _statements_during_sync(tool, add_course_to_tool(lms, big))
    assert small_run.status == big_run.status == "succeeded"
    assert (small_run.pages_fetched, big_run.pages_fetched) == (1, 2)
    # 100 members on 2 pages cost at most a page's worth of statements more than 2 members on
    # 1 page, never one per member.
    assert big_n - small_n <= 15, (small_n, big_n)
    assert big_n < 50


def test_a_worker_in_its_own_process_runs_queued_syncs(tool, lms):
    from tool import jobs
    from tool.db import db
    from tool.models import Context, RosterSync
    from tool.roster import runs
    lms.platform.add_many(lms.course, 30)
    context_id = add_course_to_tool(lms)
    jobs.huey.flush()
    with tool.app.app_context():
        run_id = runs.enqueue_sync(db.session, db.session.get(Context, context_id), "manual").id
        db.session.remove()
    settings = tool.settings
    env = {**os.environ, "DATABASE_URL": settings.database_url, "JOBS_DB": str(settings.jobs_path),
           "TOOL_KEY_DIR": str(settings.key_dir), "SECRET_KEY": settings.secret_key,
           "TOOL_BASE_URL": settings.base_url, "REDIS_URL": ""}
    worker = subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "jobs", "worker",
                               "--workers", "1", "--no-periodic"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            with tool.app.app_context():
                status = db.session.get(RosterSync, run_id, populate_existing=True).status
                db.session.remove()
            if status in ("succeeded", "failed"):
                break
            time.sleep(0.1)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=15)[0].decode(errors="replace")
        jobs.huey.flush()
    assert status == "succeeded", output[-2000:]
    assert len(roster(tool, context_id)) == 32
