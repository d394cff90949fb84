"""Helpers and fixtures for the roster sync tests (imported by each test module).

Retry timings are shrunk so fault tests take a second, not minutes: the tool's ``Settings`` is
the one object the served app reads, so the ``fast_retries`` fixture edits it and restores it.
"""
from __future__ import annotations

from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

FAST = dict(service_retry_budget=4.0, service_backoff=0.05, service_rate_leak=1000.0,
            http_read_timeout=2.0, http_connect_timeout=2.0)


@pytest.fixture(autouse=True)
def fast_retries(tool):
    saved = replace(tool.settings)
    for key, value in FAST.items():
        setattr(tool.settings, key, value)
    yield tool.settings
    for key in FAST:
        setattr(tool.settings, key, getattr(saved, key))


@pytest.fixture
def consumer(tool):
    """A real huey consumer (2 worker threads) on the tool's SQLite job store, queue emptied first."""
    from tool import jobs
    jobs.huey.flush()
    running = jobs.start_consumer(workers=2, periodic=False, max_delay=0.1)
    yield running
    running.stop(graceful=True)
    jobs.huey.flush()


def add_course_to_tool(lms, course=None) -> int:
    """Make the tool know a course the way a launch would (memberships URL stored); its id."""
    from tool.db import db
    from tool.models import Context, Deployment
    course = course or lms.course
    with lms.tool.app.app_context():
        deployment = db.session.scalars(select(Deployment).where(
            Deployment.registration_id == lms.registration_id)).first()
        context = Context(registration_id=lms.registration_id, deployment_id=deployment.id,
                          lti_context_id=course.context_id, label=course.label, title=course.title,
                          context_types=[], memberships_url=course.memberships_url, ags_scopes=[])
        db.session.add(context)
        db.session.commit()
        context_id = context.id
        db.session.remove()
    return context_id


def context_id_of(lms, course=None) -> int:
    from tool.db import db
    from tool.models import Context
    course = course or lms.course
    with lms.tool.app.app_context():
        found = db.session.scalars(select(Context.id).where(
            Context.registration_id == lms.registration_id,
            Context.lti_context_id == course.context_id)).one()
        db.session.remove()
    return found


def sync(tool, context_id: int, trigger="test", *, role=None, rlid=None, full=False):
    """Run one sync in the foreground, as the CLI does; returns the finished run."""
    from tool import jobs
    from tool.db import db
    from tool.models import Context
    from tool.roster.runs import create_run
    from tool.roster.sync import run_sync
    with tool.app.app_context():
        context = db.session.get(Context, context_id)
        run = create_run(db.session, context, trigger, role=role, rlid=rlid)
        run = run_sync(db.session, run.id, jobs.client_settings(), lambda: Session(db.engine), full=full)
        db.session.remove()
    return run


def roster(tool, context_id: int) -> dict:
    """sub -> membership facts, as stored."""
    from tool.db import db
    from tool.models import Membership, User
    with tool.app.app_context():
        rows = db.session.execute(select(Membership, User).join(User, User.id == Membership.user_id)
                                  .where(Membership.context_id == context_id)).all()
        out = {u.sub: {"active": m.is_active, "reason": m.status_reason, "inactive_at": m.inactive_at,
                       "roles": list(m.roles), "name": u.name, "email": u.email, "user_id": u.id,
                       "given_name": u.given_name, "family_name": u.family_name,
                       "picture": u.picture, "legacy": u.lti11_legacy_user_id,
                       "sourcedid": u.lis_person_sourcedid, "matched_by": u.matched_by}
               for m, u in rows}
        db.session.remove()
    return out


def nrps_requests(platform) -> list[dict]:
    with platform.lock:
        return [r for r in platform.requests if r["service"] == "nrps"]


def page_token(response) -> str:
    """The page token ``t`` from the URL a launch ended on."""
    return parse_qs(urlsplit(response.url).query)["t"][0]


def count_commit_batches(monkeypatch) -> list[int]:
    """The pages each progress commit of a sync carries, in order (the list fills as it runs)."""
    from tool.roster import sync as sync_module
    batches: list[int] = []
    real = sync_module._commit_progress

    def counting(state):
        batches.append(state.tally.pending_pages)
        real(state)

    monkeypatch.setattr(sync_module, "_commit_progress", counting)
    return batches
