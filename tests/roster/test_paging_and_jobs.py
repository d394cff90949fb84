"""Link header parsing (case kept), the differences fallback, and the Redis job store."""
from __future__ import annotations

import os

import pytest
from rosterkit import add_course_to_tool, fast_retries, nrps_requests, roster, sync  # noqa: F401

from tool.lti.nrps import parse_links, with_query


def test_link_header_keeps_the_url_case_and_reads_every_rel():
    header = ('<https://school.example/api/lti/courses/3/names_and_roles?page=2&cursor=AbC9xZ>; rel="next",'
              '<https://school.example/api/lti/courses/3/names_and_roles?page=1&cursor=QqW>; rel="current first",'
              '<https://other.example/nrps?since=Df_Zz-9>; rel=differences')
    links = parse_links(header)
    assert links["next"].endswith("page=2&cursor=AbC9xZ")
    assert links["current"] == links["first"] and links["current"].endswith("cursor=QqW")
    assert links["differences"] == "https://other.example/nrps?since=Df_Zz-9"
    assert parse_links(None) == {} and parse_links("garbage") == {}


def test_filters_are_added_to_the_memberships_url_without_losing_its_query():
    url = with_query("https://p.example/nrps?tenant=X1", role="http://purl.imsglobal.org/vocab/lis/v2/membership#Learner")
    assert url.startswith("https://p.example/nrps?tenant=X1&role=http%3A%2F%2F")
    assert with_query("https://p.example/nrps", role=None, rlid=None) == "https://p.example/nrps"


def test_an_expired_differences_link_falls_back_to_a_full_read(tool, lms):
    p = lms.platform
    p.nrps_offer_differences = True
    context_id = add_course_to_tool(lms)
    sync(tool, context_id)
    p.unenroll(lms.course, lms.student)
    with p.lock:
        p.since_tokens.clear()  # the platform forgot the token: 400 "Invalid since token"

    run = sync(tool, context_id)

    assert run.status == "succeeded" and run.used_differences is False
    assert [c["status"] for c in nrps_requests(p)][-2:] == [400, 200]
    assert roster(tool, context_id)[lms.student.sub]["reason"] == "absent"


def _redis_url() -> str | None:
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        import redis
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return url
    except Exception:
        return None


def test_with_redis_url_jobs_go_through_redis(tool, lms):
    url = _redis_url()
    if url is None:
        pytest.skip("Redis not reachable (set TEST_REDIS_URL)")
    from huey.storage import RedisStorage
    from tool import jobs
    from tool.db import db
    from tool.models import Context
    from tool.roster import runs
    saved_url = tool.settings.redis_url
    tool.settings.redis_url = url
    try:
        jobs.init_app(tool.app)
        assert isinstance(jobs.huey.storage, RedisStorage)
        jobs.huey.flush()
        context_id = add_course_to_tool(lms)
        with tool.app.app_context():
            run = runs.enqueue_sync(db.session, db.session.get(Context, context_id), "manual")
            db.session.remove()
        assert jobs.huey.pending_count() == 1
        consumer = jobs.start_consumer(workers=1, periodic=False, max_delay=0.1)
        try:
            import time
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and len(roster(tool, context_id)) < 2:
                time.sleep(0.05)
        finally:
            consumer.stop(graceful=True)
        assert len(roster(tool, context_id)) == 2
        with tool.app.app_context():
            assert db.session.get(type(run), run.id).status == "succeeded"
            db.session.remove()
    finally:
        jobs.huey.flush()
        tool.settings.redis_url = saved_url
        jobs.init_app(tool.app)  # back to the SQLite store the other tests use


def test_in_immediate_mode_the_launch_itself_runs_the_sync(tool, lms):
    from tool import jobs
    lms.platform.add_many(lms.course, 60)
    tool.settings.jobs_immediate = True
    try:
        jobs.init_app(tool.app)
        page = lms.launch(lms.teacher)
    finally:
        tool.settings.jobs_immediate = False
        jobs.init_app(tool.app)
    assert page.status_code == 200
    assert "62</strong> active" in page.text and "succeeded" in page.text
