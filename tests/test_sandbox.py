"""The sandbox, as a newcomer meets it: ``python app.py`` on loopback, the home page's offer, the
demo course, launches from the course page's frame, the roster, the whole assessment journey, a
restart; and, off loopback, the password and the refusal to start without one.

The tool runs as a real process (the README's command) on SQLite and on PostgreSQL; the tests
click through it with ``emulator.Browser`` over real HTTP, following the frames' URLs as a
browser would.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from sqlalchemy import create_engine, text

from emulator import Browser
from emulator.browser import parse_forms
from support import free_port

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ("DATABASE_URL", "TOOL_KEY_DIR", "JOBS_DB", "TOOL_BASE_URL", "PORT", "HOST", "SECRET_KEY",
            "SANDBOX", "SANDBOX_PASSWORD", "JOBS_IMMEDIATE", "PROXY_HOPS", "REDIS_URL")
WAIT = 40  # seconds: the bound on every wait below
NUMERIC = {"q1_kind": "numeric", "q1_prompt": "What is 6 × 7?", "q1_points": "4",
           "q1_answer": "42", "q1_tolerance": "0"}
CHOICE = {"q2_kind": "choice", "q2_prompt": "Which gas do plants take in?", "q2_points": "6",
          "q2_options": "Oxygen\nCarbon dioxide\nHelium", "q2_correct": "2"}


class Served:
    """``python app.py`` in a child process; ``restart()`` stops it and starts it again."""

    def __init__(self, tmp: Path, database_url: str, base_url: str | None = None, **env) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base_url = base_url or self.url
        self.key_dir = tmp / "keys"
        self.database_url = database_url
        self.env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
        self.env.update(PORT=str(self.port), HOST="127.0.0.1", TOOL_BASE_URL=self.base_url,
                        DATABASE_URL=database_url, TOOL_KEY_DIR=str(self.key_dir),
                        JOBS_DB=str(tmp / "jobs.db"), PYTHONUNBUFFERED="1", **env)
        self.proc = None
        self.log = tmp / "app.log"

    def start(self) -> "Served":
        handle = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=self.env,
                                     stdout=handle, stderr=subprocess.STDOUT)
        handle.close()
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the tool exited: {self.log.read_text()[-3000:]}")
            try:
                requests.get(self.url + "/", timeout=2)
                return self
            except requests.ConnectionError:
                time.sleep(0.1)
        raise AssertionError(f"the tool did not answer: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def sql(self, query: str, **params):
        url = self.database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                return conn.execute(text(query), params).all()
        finally:
            engine.dispose()


@contextmanager
def own_database(database_url: str, tmp: Path):
    """A database of its own for a served tool, on the backend of this pass: the served process
    makes its own signing key in its own key folder, so it must not share the tables (and the
    signing key row) of the session's tool."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp / 'tool.db'}"
        return
    import psycopg
    from conftest import PG_URL
    schema = f"s_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module")
def sandbox(database_url, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sandbox")
    with own_database(database_url, tmp) as url:
        served = Served(tmp, url).start()
        yield served
        served.stop()


# -- pages and frames, as a browser follows them ----------------------------------------------

def _frame_src(page) -> str:
    """The tool frame's URL on an emulated Canvas page."""
    match = re.search(r'<iframe[^>]*id="tool_content"[^>]*src="([^"]+)"', page.text)
    assert match, page.text
    return urljoin(page.url, match.group(1).replace("&amp;", "&"))


def _open_tool(browser: Browser, page_url: str, served: Served):
    """Open a course page, load its tool frame, and run the launch it starts: the tool's page."""
    page = browser.get(page_url)
    assert page.status_code == 200, page.text
    assert 'name="post_message_forwarding"' in page.text  # Platform Storage frame for the tool
    frame = browser.get(_frame_src(page))
    assert frame.status_code == 200, frame.text
    [form] = [f for f in parse_forms(frame.text) if f["method"] == "post"]
    login_url = urljoin(frame.url, form["action"])
    assert login_url == served.base_url + "/lti/login"
    pending = SimpleNamespace(login_params=form["fields"],
                              auth_url=served.base_url + "/sandbox/api/lti/authorize_redirect")
    return browser.launch(login_url, pending)


def _people(page) -> list[str]:
    select = re.search(r'<select id="view-as" name="as">(.*?)</select>', page.text, re.S)
    assert select, page.text
    return re.findall(r'<option value="(\d+)"[^>]*>([^<]+)</option>', select.group(1))


def _person(served: Served, name: str) -> str:
    course = requests.get(served.url + "/sandbox/courses/1", timeout=10)
    for canvas_id, label in _people(course):
        if label.startswith(name + " ("):
            return canvas_id
    raise AssertionError(f"{name} is not in the demo course")


def _token(response) -> str:
    return parse_qs(urlsplit(response.url).query)["t"][0]


def _wait_for(read, timeout=WAIT):
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = read()
        if seen:
            return seen
        time.sleep(0.2)
    raise AssertionError(f"still waiting; last seen: {seen!r}")


# -- the tests ------------------------------------------------------------------------------

def test_home_page_offers_the_sandbox_on_loopback(sandbox):
    home = requests.get(sandbox.url + "/", timeout=10)
    assert home.status_code == 200
    assert "Try it without Canvas" in home.text
    assert 'href="/sandbox/courses/1"' in home.text
    course = requests.get(sandbox.url + "/sandbox/courses/1", timeout=10)
    assert course.status_code == 200 and "Sandbox." in course.text


def test_demo_course_lists_its_teacher_and_30_students(sandbox):
    course = requests.get(sandbox.url + "/sandbox/courses/1", timeout=10)
    people = [label for _, label in _people(course)]
    assert len(people) == 31
    assert people[0] == "Maya Okafor (Teacher)"
    assert sum(label.endswith("(Student)") for label in people) == 30
    assert {"Zoë Ngô (Student)", "José Álvarez (Student)"} <= set(people)
    roster = requests.get(sandbox.url + "/sandbox/courses/1/people", timeout=10)
    assert "31 people in ENV 101" in roster.text and "zoe.ngo@demo-school.example" in roster.text


def test_teacher_launch_from_the_course_frame_and_the_roster_fills(sandbox):
    teacher = Browser()
    page = _open_tool(teacher, sandbox.url + "/sandbox/courses/1/external_tools/" +
                      _client_id(sandbox), sandbox)
    assert page.status_code == 200 and urlsplit(page.url).path == "/instructor", page.text
    assert "Introduction to Climate Science" in page.text
    # The tool's own page, inside the sandbox's frame, says it is a sandbox as well.
    assert "A pretend course with made-up people" in page.text
    t = _token(page)

    def members():
        counts = teacher.get(sandbox.url + "/instructor/roster/progress", params={"t": t}).json()
        return counts["counts"]["active"] == 31 and counts["counts"]

    counts = _wait_for(members)
    assert counts["per_role"] == {"Instructor": 1, "Student": 30}


def test_student_launch_from_the_course_frame(sandbox):
    zoe = _person(sandbox, "Zoë Ngô")
    page = _open_tool(Browser(), f"{sandbox.url}/sandbox/courses/1/external_tools/"
                      f"{_client_id(sandbox)}?as={zoe}", sandbox)
    assert page.status_code == 200 and urlsplit(page.url).path.startswith("/student"), page.text
    assert "Zoë Ngô" in page.text


def test_assessment_journey_ends_with_the_grade_in_the_sandbox_gradebook(sandbox):
    base = sandbox.url
    teacher = Browser()
    course = teacher.get(base + "/sandbox/courses/1")
    add = re.search(r'href="([^"]*/assignments/new[^"]*)"', course.text)
    assert add, course.text
    picker = _open_tool(teacher, urljoin(course.url, add.group(1).replace("&amp;", "&")), sandbox)
    assert picker.status_code == 200 and "/lti/deep-linking" in picker.url, picker.text
    t = _token(picker)
    created = teacher.post(base + "/instructor/assessments/new", data={
        "t": t, "next": "picker", "title": "Carbon cycle check", "instructions": "Two questions.",
        "attempts_allowed": "1", "scoring_policy": "highest", "show_scores": "on",
        **NUMERIC, **CHOICE})
    assert created.status_code == 200 and "/lti/deep-linking" in created.url, created.text
    assessment_id = re.search(r'name="assessment" value="(\d+)"', created.text)
    assert assessment_id, created.text
    assessment_id = assessment_id.group(1)
    published = teacher.post(f"{base}/instructor/assessments/{assessment_id}/publish",
                             data={"t": t})
    assert published.status_code == 200, published.text
    answer = teacher.post(base + "/lti/deep-linking/respond", data={"t": t, "assessment": assessment_id})
    [form] = [f for f in parse_forms(answer.text) if "JWT" in f["fields"]]
    assert form["action"].startswith(sandbox.base_url + "/sandbox/courses/1/")
    done = teacher.post_form(urljoin(answer.url, form["action"]), form["fields"])
    assert done.status_code == 200 and "Assignment added" in done.text, done.text
    link = re.search(r'href="([^"]*/assignments/(\d+)[^"]*)"', done.text)
    assignment_path = urlsplit(urljoin(done.url, link.group(1))).path
    course = teacher.get(base + "/sandbox/courses/1")
    assert "Carbon cycle check" in course.text and "10 points" in course.text

    # A student opens the assignment from the course, answers one of two right, submits.
    jose = _person(sandbox, "José Álvarez")
    student = Browser()
    opened = _open_tool(student, f"{base}{assignment_path}?as={jose}", sandbox)
    assert opened.status_code == 200 and f"/student/assessments/{assessment_id}" in opened.url, opened.text
    [start] = [f for f in parse_forms(opened.text) if "t" in f["fields"]]
    started = student.post(urljoin(opened.url, start["action"]), data=start["fields"])
    assert started.status_code == 200, started.text
    [form] = [f for f in parse_forms(started.text) if any(k.startswith("a_") for k in f["fields"])]
    names = sorted({m for m in re.findall(r'name="(a_[^"]+)"', started.text)},
                   key=started.text.index)
    fields = dict(form["fields"])
    fields.update({names[0]: "42", names[1]: "0"})  # 42 is right; Oxygen is wrong
    result = student.post(urljoin(started.url, form["action"]), data=fields)
    assert result.status_code == 200 and "/student/attempts/" in result.url, result.text

    # The tool's worker sends the score; the sandbox's gradebook shows it on José's row.
    def jose_row():
        page = requests.get(base + "/sandbox/courses/1/gradebook", timeout=10).text
        row = re.search(r"José Álvarez</th>(.*?)</tr>", page, re.S)
        return row and re.search(r'class="num">4<', row.group(1)) and page

    gradebook = _wait_for(jose_row)
    assert "Carbon cycle check" in gradebook
    own = requests.get(f"{base}/sandbox/courses/1/gradebook?as={jose}", timeout=10).text
    table = own[own.index("<table"):]
    assert "Your grades" in own and "José Álvarez</th>" in table and "Zoë Ngô" not in table


def test_a_restart_keeps_the_registration_and_launches_still_work(sandbox):
    before = sandbox.sql("SELECT id, client_id FROM registrations WHERE source = 'sandbox' "
                         "AND issuer = :issuer", issuer=sandbox.base_url + "/sandbox")
    assert len(before) == 1
    sandbox.restart()
    after = sandbox.sql("SELECT id, client_id FROM registrations WHERE source = 'sandbox' "
                        "AND issuer = :issuer", issuer=sandbox.base_url + "/sandbox")
    assert after == before
    deployments = sandbox.sql("SELECT count(*) FROM deployments WHERE registration_id = :r",
                              r=before[0][0])
    assert deployments == [(1,)]
    page = _open_tool(Browser(), sandbox.url + "/sandbox/courses/1/external_tools/" +
                      _client_id(sandbox), sandbox)
    assert page.status_code == 200 and urlsplit(page.url).path == "/instructor", page.text
    # The same course as before the restart, not a second one.
    courses = sandbox.sql("SELECT count(*) FROM contexts WHERE registration_id = :r", r=before[0][0])
    assert courses == [(1,)]


def _client_id(served: Served) -> str:
    course = requests.get(served.url + "/sandbox/courses/1", timeout=10)
    match = re.search(r'/external_tools/(\d+)', course.text)
    assert match, course.text
    return match.group(1)


# -- the sandbox cannot reach real courses -----------------------------------------------------

def _flask(served: Served, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT,
                          env=served.env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def real_canvas(sandbox):
    """An emulated Canvas of its own (another issuer and key), registered with the served tool."""
    from emulator import INSTRUCTOR, Platform
    platform = Platform(issuer="https://canvas.instructure.com")
    platform.start()
    tool = platform.register_tool(
        login_url=sandbox.base_url + "/lti/login", redirect_uris=[sandbox.base_url + "/lti/launch"],
        target_link_uri=sandbox.base_url + "/lti/launch",
        jwks_url=sandbox.base_url + "/.well-known/jwks.json")
    added = _flask(sandbox, "platform", "add", "--issuer", platform.issuer, "--client-id",
                   tool.client_id, "--auth-login-url", platform.auth_login_url, "--auth-token-url",
                   platform.token_url, "--key-set-url", platform.jwks_url, "--deployment-id",
                   tool.deployment_ids[0], "--name", "Real school")
    assert added.returncode == 0, added.stderr
    teacher = platform.add_user(name="Rita Real")
    course = platform.add_course(label="REAL1", title="A real course")
    platform.enroll(course, teacher, roles=[INSTRUCTOR])
    yield SimpleNamespace(platform=platform, tool=tool, teacher=teacher, course=course)
    platform.stop()


def _sandbox_key(served: Served):
    from cryptography.hazmat.primitives import serialization

    from tool.sandbox import keys
    key = serialization.load_pem_private_key(
        (served.key_dir / keys.FILE_NAME).read_bytes(), password=None)
    return key, keys.kid_of(key)


def test_a_token_signed_by_the_sandbox_cannot_launch_as_another_platform(sandbox, real_canvas):
    platform, tool = real_canvas.platform, real_canvas.tool
    login_url = sandbox.base_url + "/lti/login"
    genuine = Browser().launch(login_url, platform.resource_link_launch(
        tool, real_canvas.teacher, real_canvas.course))
    assert genuine.status_code == 200 and urlsplit(genuine.url).path == "/instructor", genuine.text

    # The sandbox's key signs a token claiming the real Canvas's issuer and client id.
    key, kid = _sandbox_key(sandbox)
    forged = Browser().launch(login_url, platform.resource_link_launch(
        tool, real_canvas.teacher, real_canvas.course, sign_with=key, header={"kid": kid}))
    assert 400 <= forged.status_code < 500, (forged.status_code, forged.text)
    assert "unknown_kid" in forged.text  # the real Canvas's key set has no sandbox key
    assert "/instructor" not in forged.url

    # The sandbox's issuer with the real Canvas's client id names no registration at all.
    login = Browser().post(login_url, data={
        "iss": sandbox.base_url + "/sandbox", "client_id": tool.client_id,
        "login_hint": "x", "target_link_uri": sandbox.base_url + "/lti/launch",
        "lti_message_hint": "x"}, allow_redirects=False)
    assert 400 <= login.status_code < 500, login.text


def test_sandbox_courses_are_kept_apart_from_real_ones(sandbox, real_canvas):
    teacher = Browser()
    _open_tool(teacher, sandbox.url + "/sandbox/courses/1/external_tools/" + _client_id(sandbox),
               sandbox)
    [(sandbox_reg, context_id)] = sandbox.sql(
        "SELECT c.registration_id, c.lti_context_id FROM contexts c JOIN registrations r "
        "ON r.id = c.registration_id WHERE r.source = 'sandbox' AND r.issuer = :issuer",
        issuer=sandbox.base_url + "/sandbox")
    # A real course that happens to carry the same context id is another course.
    real_canvas.course.context_id = context_id
    page = Browser().launch(sandbox.base_url + "/lti/login", real_canvas.platform.resource_link_launch(
        real_canvas.tool, real_canvas.teacher, real_canvas.course))
    assert page.status_code == 200 and "A real course" in page.text, page.text
    assert "made-up people" not in page.text  # a real course's pages never say "sandbox"
    owners = sandbox.sql("SELECT registration_id, title FROM contexts WHERE lti_context_id = :c "
                         "ORDER BY id", c=context_id)
    assert len(owners) == 2 and owners[0] == (sandbox_reg, "Introduction to Climate Science")
    assert owners[1][0] != sandbox_reg and owners[1][1] == "A real course"


# -- off loopback ------------------------------------------------------------------------------

ELSEWHERE = "https://tool.school.example"


def test_off_loopback_the_sandbox_is_off_unless_asked_for(tmp_path):
    served = Served(tmp_path, f"sqlite:///{tmp_path / 'tool.db'}", base_url=ELSEWHERE).start()
    try:
        home = requests.get(served.url + "/", timeout=10)
        assert home.status_code == 200 and "Try it without Canvas" not in home.text
        assert requests.get(served.url + "/sandbox/courses/1", timeout=10).status_code == 404
        assert not (served.key_dir / "sandbox_platform.pem").exists()
    finally:
        served.stop()


def test_sandbox_on_a_public_address_needs_a_password_to_start(tmp_path):
    env = Served(tmp_path, f"sqlite:///{tmp_path / 'tool.db'}", base_url=ELSEWHERE, SANDBOX="1").env
    result = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "SANDBOX_PASSWORD" in lines[0] and "SANDBOX=0" in lines[0]


def test_sandbox_on_a_public_address_asks_for_its_password(tmp_path):
    served = Served(tmp_path, f"sqlite:///{tmp_path / 'tool.db'}", base_url=ELSEWHERE,
                    SANDBOX="1", SANDBOX_PASSWORD="correct horse battery").start()
    try:
        home = requests.get(served.url + "/", timeout=10)
        assert "Try it without Canvas" in home.text and "sandbox password" in home.text
        visitor = Browser()
        asked = visitor.get(served.url + "/sandbox/courses/1")
        assert asked.status_code == 200 and "/sandbox/unlock" in asked.url
        assert "Sandbox password" in asked.text and "Sandbox." in asked.text
        [form] = [f for f in parse_forms(asked.text) if f["method"] == "post"]
        action = urljoin(asked.url, form["action"])
        wrong = visitor.post(action, data={**form["fields"], "password": "guess"})
        assert wrong.status_code == 401 and "not the sandbox password" in wrong.text
        # The launch frame, which mints launches, is closed too.
        frame = visitor.get(served.url + "/sandbox/courses/1/external_tools/1/launch",
                            allow_redirects=False)
        assert frame.status_code == 303 and "/sandbox/unlock" in frame.headers["Location"]

        right = visitor.post(action, data={**form["fields"], "password": "correct horse battery"},
                             allow_redirects=False)
        assert right.status_code == 303 and right.headers["Location"] == "/sandbox/courses/1"
        cookie = right.headers["Set-Cookie"]
        for attribute in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/sandbox"):
            assert attribute in cookie, cookie
        course = visitor.get(served.url + "/sandbox/courses/1")
        assert course.status_code == 200 and len(_people(course)) == 31
        # The LTI endpoints the tool itself calls are not behind the password.
        assert requests.get(served.url + "/sandbox/api/lti/security/jwks", timeout=10).json()["keys"]
    finally:
        served.stop()


def test_processes_starting_together_share_one_sandbox(database_url, tmp_path):
    """Web server and job workers start at once: one key file, one registration, one client id."""
    with own_database(database_url, tmp_path) as url:
        _processes_share_one_sandbox(Served(tmp_path, url))


def _processes_share_one_sandbox(served: "Served") -> None:
    script = "import app; print(app.app.extensions['sandbox'].tool.client_id)"
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=served.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    outputs = [p.communicate(timeout=WAIT) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    client_ids = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(client_ids) == 1, outputs
    rows = served.sql("SELECT client_id, source FROM registrations WHERE issuer = :issuer",
                      issuer=served.base_url + "/sandbox")
    assert rows == [(client_ids.pop(), "sandbox")]
    assert [p.name for p in served.key_dir.iterdir() if "sandbox" in p.name] == ["sandbox_platform.pem"]
    assert (served.key_dir / "sandbox_platform.pem").stat().st_mode & 0o777 == 0o600
