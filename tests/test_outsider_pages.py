"""An outsider's attack on every page people see, over real HTTP with the Canvas emulator.

Hostile data (a student named ``<script>alert(1)</script>`` whose email is a spreadsheet formula,
an assessment titled ``<img src=x onerror=alert(1)>``), oversized bodies, stale links, links of
another course or person, and a student's page token on instructor URLs. Every assertion says
what a person would see.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from urllib.parse import urljoin

import requests
from emulator import Browser, INSTRUCTOR, LEARNER
from grading.assesskit import form, get, keys, post
from roster.rosterkit import context_id_of, page_token, sync
from sqlalchemy import update

SCRIPT = "<script>alert(1)</script>"
SCRIPT_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
IMG = "<img src=x onerror=alert(1)>"
IMG_ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
FORMULA_EMAIL = '=HYPERLINK("x")'
PROMPT = "=1+1 is what?"
TIMEOUT = 20


def _hostile(lms):
    """A course with the hostile student (launched, synced) and the hostile assessment."""
    tool = lms.tool
    evil = lms.platform.add_user(name=SCRIPT, email=FORMULA_EMAIL)
    lms.platform.enroll(lms.course, evil, roles=[LEARNER])
    t = page_token(lms.launch(lms.teacher))
    ts = page_token(lms.launch(evil))
    sync(tool, context_id_of(lms))
    questions = [{"kind": "text", "prompt": PROMPT, "points": "4"},
                 {"kind": "choice", "prompt": IMG, "points": "2", "options": IMG + "\nplain",
                  "correct": "1"}]
    r = post(tool, "/instructor/assessments/new", t, form(title=IMG, questions=questions))
    assert r.status_code == 200 and "Assessment created." in r.text, r.text[:800]
    aid = int(re.search(r"/instructor/assessments/(\d+)\?", r.url).group(1))
    r = post(tool, f"/instructor/assessments/{aid}/publish", t)
    assert r.status_code == 200, r.text[:500]
    r = post(tool, f"/student/assessments/{aid}/start", ts)
    assert r.status_code == 200, r.text[:500]
    attempt_id = int(re.search(r'id="attempt-(\d+)"', r.text).group(1))
    k = keys(tool, aid)
    r = post(tool, f"/student/attempts/{attempt_id}/submit", ts,
             {f"a_{k[0]}": SCRIPT, f"a_{k[1]}": "0"})
    assert r.status_code == 200, r.text[:500]
    return dict(tool=tool, t=t, ts=ts, aid=aid, attempt_id=attempt_id, evil=evil)


def _no_raw(text, *raws):
    for raw in raws:
        assert raw not in text, f"a person's browser would run {raw!r}: {text[:300]}"


def test_hostile_names_and_titles_are_shown_as_text_everywhere(lms):
    h = _hostile(lms)
    tool, t, ts, aid, attempt_id = h["tool"], h["t"], h["ts"], h["aid"], h["attempt_id"]
    instructor_pages = {
        "instructor home": get(tool, "/instructor", t),
        "gradebook": get(tool, "/instructor/gradebook", t),
        "assessments list": get(tool, "/instructor/assessments", t),
        "edit form": get(tool, f"/instructor/assessments/{aid}", t),
        "attempts": get(tool, f"/instructor/assessments/{aid}/attempts", t),
        "one attempt": get(tool, f"/instructor/attempts/{attempt_id}", t),
    }
    for name, r in instructor_pages.items():
        assert r.status_code == 200, (name, r.status_code, r.text[:500])
        _no_raw(r.text, SCRIPT, IMG)
    # The instructor sees the student's name literally on the roster, gradebook and attempts.
    for name in ("instructor home", "gradebook", "attempts", "one attempt"):
        assert SCRIPT_ESCAPED in instructor_pages[name].text, name
    # ... and the assessment title literally wherever the assessment is listed or edited.
    for name in ("instructor home", "gradebook", "assessments list", "attempts", "one attempt"):
        assert IMG_ESCAPED in instructor_pages[name].text, name
    assert PROMPT in instructor_pages["edit form"].text

    # The student sees the title and prompts as text on the home, take and result pages.
    for path in ("/student", f"/student/assessments/{aid}", f"/student/attempts/{attempt_id}"):
        r = get(tool, path, ts)
        assert r.status_code == 200, (path, r.text[:500])
        _no_raw(r.text, SCRIPT, IMG)
        assert IMG_ESCAPED in r.text, path

    # The deep-linking picker lists the hostile title as text.
    picker = Browser().launch(tool.login_url, lms.platform.deep_linking_launch(
        lms.registration, lms.teacher, lms.course))
    assert picker.status_code == 200 and "/lti/deep-linking" in picker.url
    _no_raw(picker.text, IMG)
    assert IMG_ESCAPED in picker.text

    # The CSV opens in a spreadsheet: the formula email is text (leading '), not a live formula.
    r = get(tool, "/instructor/roster.csv", t)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    [row] = [x for x in rows if SCRIPT in (x.get("name") or "")]
    assert row["email"].startswith("'="), row
    for value in (v for x in rows for v in x.values() if v):
        assert value[0] not in "=+-@\t\r" or value.startswith("'"), value


def test_oversized_bodies_are_refused_with_a_page_never_a_500(lms):
    h = _hostile(lms)
    tool, t, ts, aid, attempt_id = h["tool"], h["t"], h["ts"], h["aid"], h["attempt_id"]
    big = "x" * (5 * 1024 * 1024)
    # A 5 MB field: the person sees "The request was too large" (413), never a server error.
    for path, token in (("/instructor/assessments/new", t), (f"/instructor/assessments/{aid}", t)):
        r = post(tool, path, token, form(title="Big", instructions=big))
        assert r.status_code == 413 and "too large" in r.text, (path, r.status_code)
    r2 = post(tool, f"/student/assessments/{aid}/start", ts)  # an attempt in progress to save
    assert r2.status_code in (200, 403), r2.text[:300]
    k = keys(tool, aid)
    r = post(tool, f"/student/attempts/{attempt_id}/save", ts, {f"a_{k[0]}": big})
    assert r.status_code == 413 and "too large" in r.text
    # A 500 KB title fits the body limit: the form comes back with the field's message.
    r = post(tool, "/instructor/assessments/new", t, form(title="T" * 500_000))
    assert 400 <= r.status_code < 500 and "Keep the title under" in r.text, r.status_code
    # So does a 500 KB question prompt, and a 500 KB answer the student saves.
    r = post(tool, "/instructor/assessments/new", t,
             form(questions=[{"kind": "text", "prompt": "P" * 500_000, "points": "1"}]))
    assert r.status_code < 500, r.status_code
    r = post(tool, f"/student/attempts/{attempt_id}/save", ts, {f"a_{k[0]}": "A" * 500_000})
    assert r.status_code < 500, r.status_code


def _expire_all(tool):
    from tool.db import db
    from tool.models import PageSession, utcnow
    with tool.app.app_context():
        db.session.execute(update(PageSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
        db.session.remove()


INSTRUCTOR_GETS = ["/instructor", "/instructor/gradebook", "/instructor/assessments",
                   "/instructor/assessments/new", "/instructor/assessments/{aid}",
                   "/instructor/assessments/{aid}/attempts", "/instructor/assessments/{aid}/delete",
                   "/instructor/assessments/{aid}/preview", "/instructor/attempts/{attempt_id}",
                   "/instructor/roster.csv", "/instructor/roster/progress",
                   "/instructor/gradebook/status"]
INSTRUCTOR_POSTS = ["/instructor/assessments/new", "/instructor/assessments/{aid}",
                    "/instructor/assessments/{aid}/publish", "/instructor/assessments/{aid}/unpublish",
                    "/instructor/assessments/{aid}/delete", "/instructor/attempts/{attempt_id}",
                    "/instructor/roster/sync", "/instructor/gradebook/resend"]


def test_a_students_link_on_every_instructor_url_is_refused(lms):
    h = _hostile(lms)
    tool, ts = h["tool"], h["ts"]
    ids = dict(aid=h["aid"], attempt_id=h["attempt_id"])
    for path in INSTRUCTOR_GETS:
        r = get(tool, path.format(**ids), ts)
        assert r.status_code == 403, ("student GET", path, r.status_code)
        assert "Ada Teacher" not in r.text and not r.headers["Content-Type"].startswith("text/csv")
    for path in INSTRUCTOR_POSTS:
        r = post(tool, path.format(**ids), ts, form(title="Hijack"))
        assert r.status_code == 403, ("student POST", path, r.status_code)
    # Nothing changed: the title is still the instructor's.
    assert "Hijack" not in get(tool, f"/instructor/assessments/{h['aid']}", h["t"]).text


def test_another_course_or_person_gets_a_refusal_not_the_page(lms):
    h = _hostile(lms)
    tool, aid, attempt_id = h["tool"], h["aid"], h["attempt_id"]
    other = lms.platform.add_course(label="CHEM", title="Chemistry")
    lms.platform.enroll(other, lms.teacher, roles=[INSTRUCTOR])
    lms.platform.enroll(other, lms.student, roles=[LEARNER])
    t_other = page_token(lms.launch(lms.teacher, other))
    for path in (f"/instructor/assessments/{aid}", f"/instructor/assessments/{aid}/attempts",
                 f"/instructor/attempts/{attempt_id}"):
        r = get(tool, path, t_other)
        assert r.status_code in (403, 404), (path, r.status_code)
        _no_raw(r.text, SCRIPT, IMG)
        assert IMG_ESCAPED not in r.text and SCRIPT_ESCAPED not in r.text  # nothing leaks
    r = post(tool, f"/instructor/assessments/{aid}/publish", t_other)
    assert r.status_code in (403, 404)
    # Sam, in the same course, opens the hostile student's attempt: refused, nothing shown.
    t_sam = page_token(lms.launch(lms.student))
    for method, path in (("get", f"/student/attempts/{attempt_id}"),
                         ("post", f"/student/attempts/{attempt_id}/save"),
                         ("post", f"/student/attempts/{attempt_id}/submit")):
        r = (get if method == "get" else post)(tool, path, t_sam)
        assert r.status_code in (403, 404), (path, r.status_code)
        assert SCRIPT_ESCAPED not in r.text


def test_a_stale_link_shows_the_session_ended_page_everywhere(lms):
    h = _hostile(lms)
    tool, t, ts = h["tool"], h["t"], h["ts"]
    ids = dict(aid=h["aid"], attempt_id=h["attempt_id"])
    _expire_all(tool)
    for path in INSTRUCTOR_GETS:
        r = get(tool, path.format(**ids), t)
        assert r.status_code == 401, (path, r.status_code)
        if r.headers["Content-Type"].startswith("text/html"):
            assert "ended" in r.text and "Ada Teacher" not in r.text, path
    for path in INSTRUCTOR_POSTS:
        assert post(tool, path.format(**ids), t).status_code == 401, path
    for path in ("/student", "/student/assessments/{aid}", "/student/attempts/{attempt_id}"):
        r = get(tool, path.format(**ids), ts)
        assert r.status_code == 401 and "ended" in r.text, path
    for path in ("/student/assessments/{aid}/start", "/student/attempts/{attempt_id}/save",
                 "/student/attempts/{attempt_id}/submit", "/lti/deep-linking/respond"):
        assert post(tool, path.format(**ids), ts).status_code == 401, path
    r = get(tool, "/lti/deep-linking", t)
    assert r.status_code == 401, r.status_code


def test_home_and_error_pages_do_not_echo_hostile_urls(tool):
    base = tool.base_url
    r = requests.get(base + "/", timeout=TIMEOUT)
    assert r.status_code == 200
    r = requests.get(base + "/nope/" + "%3Cscript%3Ealert(1)%3C/script%3E", timeout=TIMEOUT)
    assert r.status_code == 404 and SCRIPT not in r.text
    r = requests.get(base + "/instructor", params={"t": SCRIPT}, timeout=TIMEOUT)
    assert r.status_code in (400, 401, 403) and SCRIPT not in r.text
    r = requests.get(base + "/lti/deep-linking", params={"t": "x" * 100_000}, timeout=TIMEOUT)
    assert 400 <= r.status_code < 500
