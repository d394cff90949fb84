"""The page session after a launch, over real HTTP: what an old link still opens, and for how long.

Pages carry a signed reference to a server-side session; every request checks the session and the
enrolment behind it, so a dropped or downgraded instructor loses the instructor pages at once, the
session ends at an absolute time from the launch, and removing a registration ends its sessions.
"""
from __future__ import annotations

import re
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from sqlalchemy import event, func, select, update
from sqlalchemy.orm import Session

from emulator import INSTITUTION_ADMIN, LEARNER, Browser
from tool.web.sessions import frame_origins, origin

INSTRUCTOR_PAGES = ("/instructor", "/instructor/roster.csv", "/instructor/roster/progress")


def _t(resp) -> str:
    return parse_qs(urlsplit(resp.url).query)["t"][0]


def _get(tool, path, t, **params):
    return requests.get(tool.base_url + path, params={"t": t, **params}, timeout=10)


def _sync(tool, lms) -> None:
    """One roster sync in the foreground, as `flask roster sync` runs it."""
    from tool import jobs
    from tool.db import db
    from tool.models import Context
    from tool.roster.runs import create_run
    from tool.roster.sync import run_sync
    with tool.app.app_context():
        context = db.session.scalars(select(Context).where(
            Context.registration_id == lms.registration_id,
            Context.lti_context_id == lms.course.context_id)).one()
        run = create_run(db.session, context, "test")
        run = run_sync(db.session, run.id, jobs.client_settings(), lambda: Session(db.engine))
        assert run.status == "succeeded", run.error
        db.session.remove()


def _record(db_session, t):
    from tool.models import PageSession
    db_session.expire_all()
    key = t.rsplit(".", 1)[0]
    return db_session.scalars(select(PageSession).where(PageSession.key == key)).one()


@contextmanager
def _lifetime(tool, seconds):
    saved = tool.app.config["SESSION_LIFETIME"]
    tool.app.config["SESSION_LIFETIME"] = seconds
    try:
        yield
    finally:
        tool.app.config["SESSION_LIFETIME"] = saved


# -- access follows the enrolment ------------------------------------------------------------

def test_a_dropped_instructor_loses_the_instructor_pages_at_once(tool, lms):
    t = _t(lms.launch(lms.teacher))
    for path in INSTRUCTOR_PAGES:
        assert _get(tool, path, t).status_code == 200, path

    lms.platform.unenroll(lms.course, lms.teacher)
    _sync(tool, lms)

    for path in INSTRUCTOR_PAGES:
        resp = _get(tool, path, t)
        assert resp.status_code == 403, (path, resp.status_code)
        assert "no longer active" in resp.text, resp.text[:500]
    assert "Ada Teacher" not in _get(tool, "/instructor/roster.csv", t).text


def test_an_instructor_who_launches_again_as_learner_loses_the_old_instructor_link(tool, lms):
    old = _t(lms.launch(lms.teacher))
    assert _get(tool, "/instructor/roster.csv", old).status_code == 200

    lms.platform.enroll(lms.course, lms.teacher, roles=[LEARNER])
    now = lms.launch(lms.teacher)
    assert urlsplit(now.url).path == "/student"

    for path in ("/instructor", "/instructor/roster.csv"):
        resp = _get(tool, path, old)
        assert resp.status_code == 403, (path, resp.status_code)
        assert "no longer instructor or TA" in resp.text
    # The old link still opens what the person may see now.
    assert _get(tool, "/student", old).status_code == 200


def test_a_dropped_student_is_refused_with_the_reason(tool, lms):
    t = _t(lms.launch(lms.student))
    assert _get(tool, "/student", t).status_code == 200
    lms.platform.unenroll(lms.course, lms.student)
    _sync(tool, lms)
    resp = _get(tool, "/student", t)
    assert resp.status_code == 403 and "no longer active" in resp.text


def test_an_administrator_not_enrolled_and_marked_absent_still_opens_the_instructor_page(tool, lms, db_session):
    from tool.models import Membership, User
    admin = lms.platform.add_user(name="Ari Admin", institution_roles=[INSTITUTION_ADMIN])
    resp = lms.launch(admin)
    assert resp.status_code == 200 and urlsplit(resp.url).path == "/instructor"
    t = _t(resp)

    _sync(tool, lms)  # the admin is not in the course roster: marked absent
    user = db_session.scalars(select(User).where(User.sub == admin.sub)).one()
    membership = db_session.scalars(select(Membership).where(Membership.user_id == user.id)).one()
    assert not membership.is_active and membership.status_reason == "absent"

    page = _get(tool, "/instructor", t)
    assert page.status_code == 200 and "Ari Admin" in page.text and "Administrator" in page.text
    assert _get(tool, "/instructor/roster.csv", t).status_code == 200


def test_a_student_link_never_opens_the_instructor_pages(tool, lms):
    t = _t(lms.launch(lms.student))
    for path in INSTRUCTOR_PAGES:
        resp = _get(tool, path, t)
        assert resp.status_code == 403 and "for instructors" in resp.text, path


# -- lifetime, references, tabs --------------------------------------------------------------

def test_the_session_ends_at_its_absolute_lifetime_however_often_pages_are_viewed(tool, lms, db_session):
    with _lifetime(tool, 3):
        resp = lms.launch(lms.teacher)
    began = time.monotonic()
    t = link = _t(resp)
    record = _record(db_session, t)
    assert record.expires_at - record.created_at == timedelta(seconds=3)
    expires_at = record.expires_at

    views = 0
    while time.monotonic() - began < 6:  # a person clicking from page to page the whole time
        page = _get(tool, "/instructor", link)
        if page.status_code != 200:
            break
        views += 1
        link = re.search(r'name="t" value="([^"]+)"', page.text).group(1)  # the page's own link
        assert link == t  # the same reference for the session's whole life, never a renewed one
        time.sleep(0.2)
    assert views >= 5
    assert page.status_code == 401, "the session outlived its lifetime"
    assert "ended" in page.text and "Sign in through your course" in page.text
    assert time.monotonic() - began < 5
    assert _record(db_session, t).expires_at == expires_at


def test_a_session_past_its_expiry_answers_401(tool, lms, db_session):
    from tool.models import PageSession
    t = _t(lms.launch(lms.student))
    record = _record(db_session, t)
    db_session.execute(update(PageSession).where(PageSession.id == record.id)
                       .values(expires_at=record.created_at - timedelta(seconds=1)))
    db_session.commit()
    resp = _get(tool, "/student", t)
    assert resp.status_code == 401 and "ended" in resp.text


def test_the_default_lifetime_is_two_hours(tool, lms, db_session):
    record = _record(db_session, _t(lms.launch(lms.student)))
    assert record.expires_at - record.created_at == timedelta(hours=2)


def test_a_reference_with_a_bad_signature_answers_401(tool, lms):
    t = _t(lms.launch(lms.teacher))
    key, signature = t.rsplit(".", 1)
    forged = key + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    for bad in (forged, key, "x" * 5000, t + "x"):
        resp = _get(tool, "/instructor", bad)
        assert resp.status_code == 401, bad[:80]
        assert "Sign in through your course" in resp.text
    assert requests.get(tool.base_url + "/instructor", timeout=10).status_code == 401


def test_two_tabs_from_two_launches_both_work(tool, lms):
    navigation = _t(lms.launch(lms.teacher, placement="course_navigation"))
    assignment = _t(lms.launch(lms.teacher))
    assert navigation != assignment
    for t in (navigation, assignment, navigation):
        assert _get(tool, "/instructor", t).status_code == 200


def test_removing_the_registration_ends_its_sessions(tool, lms, db_session):
    from tool import platforms
    from tool.models import PageSession
    t = _t(lms.launch(lms.teacher))
    assert _get(tool, "/instructor", t).status_code == 200

    with tool.app.app_context():
        from tool.db import db
        platforms.remove_platform(db.session, lms.platform.issuer, lms.registration.client_id)
        db.session.remove()

    resp = _get(tool, "/instructor", t)
    assert resp.status_code == 401 and "Sign in through your course" in resp.text
    db_session.expire_all()
    assert db_session.scalar(select(func.count()).select_from(PageSession).where(
        PageSession.registration_id == lms.registration_id)) == 0


# -- what the answers carry ------------------------------------------------------------------

def test_pages_with_personal_data_are_never_stored(tool, lms):
    from grading.assesskit import create, start
    teacher = _t(lms.launch(lms.teacher))
    student = _t(lms.launch(lms.student))
    assessment_id = create(tool, teacher)
    attempt_id = start(tool, student, assessment_id)
    instructor_pages = (*INSTRUCTOR_PAGES, "/instructor/gradebook", "/instructor/gradebook/status",
                        "/instructor/assessments", f"/instructor/assessments/{assessment_id}",
                        f"/instructor/assessments/{assessment_id}/attempts",
                        f"/instructor/attempts/{attempt_id}")
    student_pages = ("/student", f"/student/assessments/{assessment_id}")
    answers = ([_get(tool, path, teacher) for path in instructor_pages]
               + [_get(tool, path, student) for path in student_pages]
               + [requests.post(f"{tool.base_url}/student/attempts/{attempt_id}/save", params={"t": student},
                                json={"answers": {}}, timeout=10)])
    for resp in answers:
        assert resp.status_code == 200, resp.url
        assert resp.headers.get("Cache-Control") == "no-store", resp.url


def test_a_page_view_loads_its_session_in_one_query(tool, lms):
    import threading
    from tool.db import db
    t = _t(lms.launch(lms.student))
    statements = []
    me = threading.get_ident()

    def count(conn, cursor, statement, *args):
        if threading.get_ident() == me:
            statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        resp = tool.app.test_client().get("/student", query_string={"t": t})
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert resp.status_code == 200
    # The student home also lists the course's assessments; the session itself is one query.
    session_reads = [s for s in statements if "page_sessions" in s]
    assert len(session_reads) == 1 and statements[0] is session_reads[0], statements


def test_page_views_hand_their_connections_back_when_they_end(tool, lms):
    """Pages read on a connection of their own (no ORM session); each goes back to the pool at
    the end of its request, whether the page answered, refused or wrote."""
    from tool.db import db
    student_t, teacher_t = _t(lms.launch(lms.student)), _t(lms.launch(lms.teacher))
    client = tool.app.test_client()  # the same thread for every request, as a server thread
    before = db.engine.pool.checkedout()
    for _ in range(3):
        assert client.get("/student", query_string={"t": student_t}).status_code == 200
        assert client.get("/instructor", query_string={"t": teacher_t}).status_code == 200
        assert client.get("/instructor", query_string={"t": student_t}).status_code == 403
        assert client.get("/student", query_string={"t": student_t + "x"}).status_code == 401
    assert db.engine.pool.checkedout() == before


def test_a_read_after_the_requests_own_write_sees_it(tool, lms):
    """Inside a transaction the page reader is the session's own connection: what the request
    wrote and has not committed yet is what it reads."""
    from tool.db import db
    from tool.driver import Statement
    from tool.models import PageSession
    table = PageSession.__table__
    t = _t(lms.launch(lms.student))
    key = t.rsplit(".", 1)[0]
    read = Statement("SELECT revoked_at FROM page_sessions WHERE key = :key")
    with tool.app.test_request_context("/student"):
        assert db.reader().read(read, {"key": key}).fetchone()[0] is None
        db.session.execute(update(table).where(table.c.key == key).values(revoked_at=func.now()))
        assert db.reader().read(read, {"key": key}).fetchone()[0] is not None
        db.session.rollback()
        assert db.reader().read(read, {"key": key}).fetchone()[0] is None


def _launch_form(lms):
    """(action, fields, headers): the launch form, and the login cookie that binds it to the browser."""
    browser = Browser()
    pending = lms.platform.resource_link_launch(lms.registration, lms.teacher, lms.course)
    login = browser.initiate(lms.tool.login_url, pending)
    action, fields = browser.authorize(browser.auth_location(login))
    return action, fields, {"Cookie": browser.cookie_header(action)}


FORWARDED = {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
             "X-Forwarded-Prefix": "//evil.example", "X-Forwarded-Port": "8443",
             "Host": "evil.example"}


def test_the_launch_redirect_is_absolute_under_the_base_url_whatever_the_headers(tool, lms):
    action, fields, cookie = _launch_form(lms)
    resp = requests.post(action, data=fields, headers={**FORWARDED, **cookie}, allow_redirects=False,
                         timeout=10)
    assert resp.status_code == 303
    location = resp.headers["Location"]
    assert location.startswith(tool.base_url + "/instructor?t="), location
    assert requests.get(location, timeout=10).status_code == 200


def test_even_behind_a_trusted_proxy_the_redirect_comes_from_the_base_url(tool, lms):
    from tool import create_app, jobs
    behind = create_app(replace(tool.settings, proxy_hops=1))
    try:
        _, fields, cookie = _launch_form(lms)
        resp = behind.test_client(use_cookies=False).post("/lti/launch", data=fields,
                                                          headers={**FORWARDED, **cookie})
        assert resp.status_code == 303
        assert resp.headers["Location"].startswith(tool.base_url + "/instructor?t="), resp.headers["Location"]
    finally:
        jobs.init_app(tool.app)  # create_app rebound the job queue: give it back


def test_the_session_records_the_platform_origins_that_may_frame_it(tool, lms, db_session):
    page = lms.launch(lms.teacher, claims={"launch_presentation": {
        "document_target": "iframe", "return_url": "https://school.instructure.com/courses/5/x"}})
    record = _record(db_session, _t(page))
    assert record.frame_origins == ["https://canvas.instructure.com", "https://school.instructure.com"]
    # Every page of the session may be framed by that platform and nowhere else.
    for resp in (page, _get(tool, "/instructor/roster/progress", _t(page))):
        assert "frame-ancestors https://canvas.instructure.com https://school.instructure.com" \
            in resp.headers["Content-Security-Policy"]
    record = _record(db_session, _t(lms.launch(lms.teacher, claims={"launch_presentation": {
        "return_url": "http://school.example/courses/5"}})))
    assert record.frame_origins == ["https://canvas.instructure.com"]  # plain http is not loopback


@pytest.mark.parametrize("url, expected", [
    ("https://School.Instructure.com/courses/5?x=1", "https://school.instructure.com"),
    ("https://canvas.example:443/", "https://canvas.example"),
    ("https://canvas.example:8443/a", "https://canvas.example:8443"),
    ("http://127.0.0.1:5001/courses/1", "http://127.0.0.1:5001"),
    ("http://localhost/", "http://localhost"),
    ("http://[::1]:3000/", "http://[::1]:3000"),
    ("http://canvas.example/", None),
    ("javascript:alert(1)", None),
    ("https://a.example; script-src *", None),
    ("https://a.example:99999/", None),
    ("", None),
    (None, None),
])
def test_frame_origins_are_https_or_loopback_and_safe_for_a_header(url, expected):
    assert origin(url) == expected


def test_frame_origins_are_deduplicated_in_order():
    assert frame_origins("https://school.instructure.com/", "https://canvas.instructure.com",
                         "https://school.instructure.com/courses/1") == \
        ["https://school.instructure.com", "https://canvas.instructure.com"]
    assert frame_origins(None, "https://canvas.instructure.com", None) == ["https://canvas.instructure.com"]


def test_old_expired_sessions_are_swept_and_live_ones_kept(tool, lms, db_session):
    from tool.models import PageSession
    from tool.web import sessions
    old, recent, live = (_t(lms.launch(lms.student)) for _ in range(3))
    now = _record(db_session, live).created_at
    for t, ended in ((old, timedelta(days=2)), (recent, timedelta(minutes=5))):
        db_session.execute(update(PageSession).where(PageSession.id == _record(db_session, t).id)
                           .values(expires_at=now - ended))
    db_session.commit()

    assert sessions.sweep(db_session, now) >= 1
    db_session.commit()
    keys = set(db_session.scalars(select(PageSession.key)))
    assert old.rsplit(".", 1)[0] not in keys
    assert {recent.rsplit(".", 1)[0], live.rsplit(".", 1)[0]} <= keys
    assert _get(tool, "/student", old).status_code == 401
    assert _get(tool, "/student", live).status_code == 200
