"""Real-browser fixtures: Debian's headless Chromium driven by Playwright (sync API).

- ``browser``: one Chromium for the tests of this folder, launched from ``/usr/bin/chromium`` (or the
  ``chromium`` on PATH, or ``$CHROMIUM``). Nothing is downloaded at test time. Without Chromium
  (or without Playwright) every test here is skipped with the reason; with ``CI=true`` the same
  absence fails the run instead, since ``.ci/run`` installs ``chromium`` with apt.
- ``context`` / ``page``: a fresh browser context per test (its own cookie jar and storage: a
  fresh profile), third-party cookies blocked as Safari and Chrome's "block third-party
  cookies" setting do; ``test_third_party_cookies.py`` proves the blocking really happens.
- ``shot(name)``: a screenshot under ``tests/artifacts/screenshots/<test>/NN-name.png``.
- ``axe_check(page)``: an axe-core scan at WCAG 2.1 A and AA that fails with a readable list of
  violations (rule, impact, elements, help).
- Two sites on one machine: the tool on ``http://127.0.0.1:<port>`` and the emulated Canvas's
  browser-facing pages on ``http://localhost:<port>`` (:func:`on_localhost`), so a course page
  frames the tool from another site, as Canvas does.

The browser tests run on SQLite only: the database backend changes nothing a browser sees, and the
PostgreSQL pass is covered by the HTTP-level tests.
"""
from __future__ import annotations

import os
import re
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from emulator.server import QuietHandler

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
TIMEOUT_MS = 15_000
# The machine's network is closed: these flags stop Chromium from calling home (update checks,
# sync, field trials, QUIC probes), which would otherwise retry in a storm.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",  # containers give /dev/shm 64 MB; Chromium then crashes tabs
    # Third-party cookies blocked, whatever this Chromium build's default is.
    "--test-third-party-cookie-phaseout",
    # ``localhost`` straight to the IPv4 loopback the test servers listen on (no ::1 attempt first).
    "--host-resolver-rules=MAP localhost 127.0.0.1",
]


def chromium_path() -> str | None:
    """Debian's Chromium: ``$CHROMIUM`` when set (and then only it), else ``chromium`` on PATH,
    else /usr/bin/chromium."""
    chosen = os.environ.get("CHROMIUM")
    for candidate in ([chosen] if chosen else [shutil.which("chromium"), "/usr/bin/chromium"]):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def missing_browser_reason() -> str | None:
    """None when a browser test can run, else why not."""
    try:
        import playwright.sync_api  # noqa: F401
        import axe_playwright_python  # noqa: F401
    except ImportError as exc:
        return f"Playwright for Python or axe-playwright-python is not installed ({exc.name})"
    if chromium_path() is None:
        where = os.environ.get("CHROMIUM") or "/usr/bin/chromium or on PATH"
        return f"Chromium is not installed ({where}; on Debian: apt-get install chromium)"
    return None


def _unavailable(reason: str):
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}. CI needs the real-browser tests: .ci/run installs chromium with apt "
                    "before running the tests; check that step.", pytrace=False)
    pytest.skip(reason)


@pytest.hookimpl(tryfirst=True)
def pytest_generate_tests(metafunc):
    # One backend for browser tests: the session-scoped tool on SQLite (see the module docstring).
    # A parametrize mark, added before pytest reads the marks, takes precedence over the
    # fixture's own two params; the same "sqlite" id shares the tool with the other tests.
    if "database_url" in metafunc.fixturenames:
        metafunc.definition.add_marker(pytest.mark.parametrize(
            "database_url", ["sqlite"], indirect=True, scope="session"))
    # A browser journey takes seconds; one stuck on a frame that never answers fails with its
    # stack after this bound rather than holding the run.
    metafunc.definition.add_marker(pytest.mark.timeout(240))


# -- the browser -----------------------------------------------------------------------------

# Package scope, not session: Playwright's sync API runs an event loop in this thread while it
# is started, and any other test that starts its own (``with sync_playwright()``) would fail.
@pytest.fixture(scope="package")
def playwright_session():
    reason = missing_browser_reason()
    if reason:
        _unavailable(reason)
    from playwright.sync_api import sync_playwright
    manager = sync_playwright().start()
    yield manager
    manager.stop()


@pytest.fixture(scope="package")
def browser(playwright_session):
    """One headless Chromium for all the tests in this folder; each test gets its own context."""
    from playwright.sync_api import expect
    expect.set_options(timeout=TIMEOUT_MS)  # a roster sync or a grade may take a few seconds
    launched = playwright_session.chromium.launch(
        executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
    yield launched
    launched.close()


@pytest.fixture
def context(browser):
    """A fresh profile: no cookies, no storage; English, UTC, a laptop-sized window."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US",
                              timezone_id="UTC")
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.set_default_navigation_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    return context.new_page()


# -- screenshots -----------------------------------------------------------------------------

def _test_dir_name(request) -> str:
    name = f"{request.node.module.__name__.rsplit('.', 1)[-1]}-{request.node.name}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:150]


@pytest.fixture
def shot(request, page):
    """``shot(name, target=page)``: save a screenshot (of the whole page) as the test's next step.

    Files land in tests/artifacts/screenshots/<module-test>/NN-name.png (gitignored; CI keeps
    them as artefacts). The folder is emptied when the test starts, so it shows one run.
    """
    folder = ARTIFACTS / _test_dir_name(request)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    count = [0]

    def take(name: str, target=None) -> Path:
        count[0] += 1
        path = folder / f"{count[0]:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}.png"
        target = target or page
        # A full-page capture costs three times a plain one: only when the page is taller.
        taller = target.evaluate("() => { const root = document.documentElement;"
                                 " return !!root && root.scrollHeight > window.innerHeight + 1; }")
        target.screenshot(path=str(path), full_page=taller)
        return path

    return take


# -- accessibility ---------------------------------------------------------------------------

def describe_violations(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v.get('impact') or 'n/a'}): {v.get('help', '')}\n"
                     f"  {v.get('helpUrl', '')}")
        for node in v.get("nodes", [])[:10]:
            target = " ".join(str(t) for t in node.get("target", []))
            lines.append(f"    at {target}: {(node.get('failureSummary') or '').strip()}"
                         .replace("\n", " "))
        if len(v.get("nodes", [])) > 10:
            lines.append(f"    ... and {len(v['nodes']) - 10} more elements")
    return "\n".join(lines)


def run_axe(target) -> list[dict]:
    """axe-core's WCAG 2.1 A/AA violations on a Playwright Page or Frame: that document only
    (a framed tool is scanned as its own Frame; axe would otherwise wait on frames it was
    never injected into)."""
    from axe_playwright_python.sync_playwright import Axe
    results = Axe().run(target, options={"runOnly": {"type": "tag", "values": WCAG_TAGS},
                                         "resultTypes": ["violations"], "iframes": False})
    return results.response["violations"]


@pytest.fixture
def axe_check():
    """``axe_check(page_or_frame, label="")``: fail with every WCAG 2.1 AA violation listed."""
    def check(target, label: str = "") -> None:
        violations = run_axe(target)
        where = label or getattr(target, "url", "")
        assert not violations, (f"{len(violations)} accessibility violation(s) on {where}:\n"
                                + describe_violations(violations))
    return check


# -- two sites on one machine ----------------------------------------------------------------

def on_localhost(url: str) -> str:
    """The same address with ``localhost`` as host: another site than ``127.0.0.1``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"localhost:{parts.port}" if parts.port else "localhost"))


def landing_url(response, status: int = 200) -> str:
    """Where a scripted launch (``lms.launch(...)``) ended: a tool page carrying ``?t=``."""
    assert response.status_code == status and "t=" in response.url, (
        f"launch did not land on a tool page: {response.status_code} {response.url}\n"
        f"{response.text[:2000]}")
    return response.url


@pytest.fixture
def job_worker(tool):
    """A real job consumer (2 threads) on the tool's queue, emptied first and after."""
    from tool import jobs
    jobs.huey.flush()
    running = jobs.start_consumer(workers=2, periodic=False, max_delay=0.1)
    yield running
    running.stop(graceful=True)
    jobs.huey.flush()


@pytest.fixture
def course_site(tool, monkeypatch):
    """An emulated Canvas whose pages and endpoints live at ``http://localhost:<port>``.

    The emulator listens on 127.0.0.1; naming it ``localhost`` makes its course pages another
    site than the tool's ``http://127.0.0.1:<port>``, as Canvas and a tool are. Its issuer stays
    ``https://canvas.instructure.com``. Everything the platform hands out (auth endpoint, return
    URLs, the storage frame) uses that address, so the tool's frame-ancestors names the page that
    frames it. It is an ``Lms`` (tests/support.py): ``.platform``, ``.course``, ``.teacher``...
    """
    from emulator import Platform
    from support import Lms

    started = Platform.start

    def start_as_localhost(self):
        url = started(self)
        self.base_url = on_localhost(url)
        return self.base_url

    monkeypatch.setattr(Platform, "start", start_as_localhost)
    site = Lms(tool)
    monkeypatch.setattr(Platform, "start", started)
    yield site
    site.stop()


@pytest.fixture
def other_site():
    """Another site on this machine, ``http://localhost:<port>``, serving the pages a test puts in
    ``other_site.pages`` (path -> HTML): an attacker's page, say. The tool lets loopback pages
    frame it before a launch, as it lets any https page do in production. (A made-up public
    name served by Playwright would not do: Chromium's local network access checks stop a
    public page from loading a loopback one, which says nothing about the tool.)"""
    pages: dict[str, str] = {}

    @Request.application
    def serve(request):
        body = pages.get(request.path)
        return Response(body or "not found", status=200 if body else 404, mimetype="text/html")

    server = make_server("127.0.0.1", 0, serve, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SimpleNamespace(url=f"http://localhost:{server.server_port}", pages=pages)
    server.shutdown()
