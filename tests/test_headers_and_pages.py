"""What a browser, a proxy and an attacker see of every answer: forwarded headers ignored,
Content-Security-Policy with the right frame-ancestors, 405/401/413 answers, bounded
redirects; and the instructor's pages as people read them (labels, captions, titles, UTC)."""
from __future__ import annotations

import re
import resource
import socket
import threading
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import requests

from emulator import Browser

EVIL = {"X-Forwarded-Prefix": "//evil.example", "X-Forwarded-Host": "evil.example",
        "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}


def _csp(resp) -> dict[str, list[str]]:
    policy = resp.headers.get("Content-Security-Policy", "")
    out = {}
    for part in filter(None, (p.strip() for p in policy.split(";"))):
        name, *values = part.split()
        out[name] = values
    return out


def _token(resp) -> str:
    return parse_qs(urlsplit(resp.url).query)["t"][0]


def _title(html: str) -> str:
    return re.search(r"<title>(.*?)</title>", html, re.S).group(1).strip()


class _Structure(HTMLParser):
    """Inline code, and forms opened inside a paragraph."""

    def __init__(self):
        super().__init__()
        self.inline, self.form_in_p, self.open_p = [], 0, 0

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "style" or "style" in names or any(n.startswith("on") for n in names):
            self.inline.append((tag, attrs))
        if tag == "script" and not names.get("src"):
            self.inline.append((tag, attrs))
        if tag == "p":
            self.open_p += 1
        if tag == "form" and self.open_p:
            self.form_in_p += 1

    def handle_endtag(self, tag):
        if tag == "p" and self.open_p:
            self.open_p -= 1


def _structure(html: str) -> _Structure:
    parser = _Structure()
    parser.feed(html)
    return parser


# Proxies ----------------------------------------------------------------------------------

def test_forwarded_headers_from_a_direct_client_change_no_url_the_tool_gives_out(lms):
    """No proxy configured (PROXY_HOPS=0): X-Forwarded-Prefix ``//evil.example`` once turned
    the post-launch redirect into ``//evil.example/instructor?t=...``."""
    browser = Browser()
    browser.headers.update(EVIL)
    resp = lms.launch(lms.teacher, browser=browser)
    assert resp.status_code == 200, resp.text[:400]
    hops = [r.headers.get("Location", "") for r in resp.history] + [resp.url]
    assert not [h for h in hops if "evil.example" in h], hops
    assert urlsplit(resp.url).netloc == urlsplit(lms.tool.base_url).netloc
    assert "evil.example" not in resp.text
    assert re.search(r'href="/static/tool\.css"', resp.text)
    config = browser.get(lms.tool.base_url + "/lti/canvas.json")
    assert "evil.example" not in config.text and lms.tool.base_url in config.text


# Content-Security-Policy -----------------------------------------------------------------

def test_pages_send_a_strict_policy_and_carry_no_inline_code(lms):
    teacher = lms.launch(lms.teacher)
    student = lms.launch(lms.student)
    refused = Browser().get(lms.tool.login_url)  # an error page
    for resp in (teacher, student, refused):
        csp = _csp(resp)
        assert csp["default-src"] == ["'none'"], csp
        for directive in ("script-src", "style-src", "connect-src", "form-action", "img-src"):
            assert csp[directive] == ["'self'"], (directive, csp)
        assert "unsafe-inline" not in resp.headers["Content-Security-Policy"]
        assert "X-Frame-Options" not in resp.headers  # it would stop Canvas framing the tool
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        found = _structure(resp.text)
        assert found.inline == [], found.inline
        assert 'rel="stylesheet"' in resp.text
    assert 'src="/static/roster.js"' in teacher.text
    for path, kind in (("/static/tool.css", "text/css"), ("/static/roster.js", "javascript")):
        asset = requests.get(lms.tool.base_url + path, timeout=5)
        assert asset.status_code == 200 and kind in asset.headers["Content-Type"]
        assert asset.headers["X-Content-Type-Options"] == "nosniff"


def test_no_template_carries_inline_code():
    """Every template, not only the pages tests open: the policy would silently block inline code."""
    from pathlib import Path
    inline = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=|javascript:", re.I)
    templates = Path(__file__).resolve().parent.parent / "tool" / "templates"
    found = [(path.name, match.group(0)) for path in templates.rglob("*.html")
             for match in inline.finditer(path.read_text())]
    assert len(list(templates.rglob("*.html"))) > 10 and found == [], found


def test_pages_after_a_launch_frame_only_in_that_platform(lms):
    page = lms.launch(lms.teacher)
    ancestors = _csp(page)["frame-ancestors"]
    assert "https://canvas.instructure.com" in ancestors, ancestors
    assert "https:" not in ancestors and "*" not in ancestors, ancestors
    progress = requests.get(lms.tool.base_url + "/instructor/roster/progress",
                            params={"t": _token(page)}, timeout=5)
    assert _csp(progress)["frame-ancestors"] == ancestors


def test_pages_before_a_launch_may_be_framed_by_any_https_origin(tool):
    answers = [requests.get(tool.base_url + "/", timeout=5),
               requests.get(tool.login_url, timeout=5),
               requests.get(tool.jwks_url, timeout=5),
               requests.get(tool.base_url + "/no-such-page", timeout=5)]
    for resp in answers:
        ancestors = _csp(resp)["frame-ancestors"]
        # TOOL_BASE_URL is loopback here: local trials frame it from a local platform too.
        assert ancestors[0] == "https:" and "http://127.0.0.1:*" in ancestors, (resp.url, ancestors)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"


def test_frame_ancestors_keep_only_bare_origins():
    from tool.web import security
    assert security.frame_ancestors_for(["https://school.instructure.com", "https://a.b:8443"]) == [
        "https://school.instructure.com", "https://a.b:8443"]
    # An origin that smuggles another directive, or a wildcard, is dropped.
    assert security.frame_ancestors_for(["https://x.edu; script-src *", "*", "https:"]) == ["'none'"]
    assert security.frame_ancestors_default("https://tool.school.edu") == ["https:"]


# Status answers --------------------------------------------------------------------------

def test_method_not_allowed_answers_carry_allow(tool):
    opened = requests.get(tool.launch_url, timeout=5)
    assert opened.status_code == 405 and "Open the tool from your course" in opened.text
    allowed = {m.strip() for m in opened.headers["Allow"].split(",")}
    assert "POST" in allowed and "GET" not in allowed, allowed

    wrong = requests.put(tool.login_url, timeout=5)
    assert wrong.status_code == 405
    assert {m.strip() for m in wrong.headers["Allow"].split(",")} >= {"GET", "POST"}
    assert 'class="error"' in wrong.text and "Traceback" not in wrong.text


def test_401_asks_to_sign_in_through_the_course_without_claiming_a_session(tool):
    never = requests.get(tool.base_url + "/instructor", timeout=5)
    forged = requests.get(tool.base_url + "/student", params={"t": "not-a-reference"}, timeout=5)
    for resp in (never, forged):
        assert resp.status_code == 401
        text = resp.text.lower()
        assert "sign in through your course" in text
        assert "has ended" not in text and "expired" not in text
        assert "sign in through your course" in _title(resp.text).lower()


def test_a_newline_from_outside_cannot_forge_a_log_line(tool, caplog):
    """A refusal is logged with the path and the reason, both of which can carry outside text."""
    from tool.errors import ToolError
    forged = "x\n2030-01-01 00:00:00 INFO tool.lti: launch accepted"
    with caplog.at_level("INFO"), tool.app.test_request_context("/instructor%0A" + forged.replace("\n", "%0A")):
        response = tool.app.handle_user_exception(ToolError(f"No platform with issuer {forged}."))
    assert response.status_code == 400
    logged = [r.getMessage() for r in caplog.records if r.name.startswith("tool")]
    assert any("launch accepted" in line for line in logged), logged
    assert not any("\n" in line for line in logged), logged


def _post_raw(base_url: str, head: str, chunks) -> tuple[int, bytes]:
    """Sends a request over a plain socket; returns (status, response) even if the server
    stops reading the body and closes early (which is what it should do)."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while True:
                part = sock.recv(65536)
                if not part:
                    break
                data += part
        except (ConnectionResetError, socket.timeout):
            pass
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/") else 0
    return status, data


def _chunked(total: int, size: int = 64 * 1024):
    sent = 0
    while sent < total:
        yield b"%x\r\n%s\r\n" % (size, b"x" * size)
        sent += size
    yield b"0\r\n\r\n"


def test_a_body_over_the_limit_gets_413_without_being_read(tool):
    """A 2 MiB form post, and a 64 MiB chunked one without Content-Length, to the launch URL."""
    host = urlsplit(tool.base_url).netloc
    requests.get(tool.jwks_url, timeout=5)  # warm up before measuring
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    big = 2 * 1024 * 1024
    status, answer = _post_raw(tool.base_url, (
        f"POST /lti/launch HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {big}\r\n\r\n"),
        (b"x" * 65536 for _ in range(big // 65536)))
    assert status == 413, answer[:300]
    assert b"too large" in answer and b"<code>request_entity_too_large</code>" in answer

    status, answer = _post_raw(tool.base_url, (
        f"POST /lti/launch HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"),
        _chunked(64 * 1024 * 1024))
    assert status == 413, answer[:300]
    assert b"too large" in answer

    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 40, f"the process grew by {grown_mb:.0f} MB for bodies it refused"
    assert requests.get(tool.jwks_url, timeout=5).status_code == 200  # still serving

    # A chunked body within the limit still reaches the view whole.
    status, answer = _post_raw(tool.base_url, (
        f"POST /lti/launch HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"),
        [b"5\r\nstate\r\n", b"4\r\n=abc\r\n", b"0\r\n\r\n"])
    assert status == 400 and b"id_token" in answer, answer[-300:]


def test_waitress_with_the_same_limit_refuses_big_bodies_and_keeps_serving(tool):
    """``python app.py`` serves with waitress; ``max_request_body_size`` is the same limit."""
    from waitress.server import create_server
    server = create_server(tool.app, host="127.0.0.1", port=0, threads=2,
                           max_request_body_size=tool.settings.max_body_bytes)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.effective_port}"
    try:
        for head, body in (
                (f"Content-Length: {4 * 1024 * 1024}\r\n", (b"x" * 65536 for _ in range(64))),
                ("Transfer-Encoding: chunked\r\n", _chunked(8 * 1024 * 1024))):
            status, answer = _post_raw(base, (
                f"POST /lti/launch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/x-www-form-urlencoded\r\n{head}\r\n"), body)
            assert status == 413, answer[:300]
        assert requests.get(base + "/.well-known/jwks.json", timeout=5).status_code == 200
    finally:
        server.close()


def test_a_redirect_never_carries_an_unbounded_location(tool):
    """A login whose lti_message_hint is 20 KB is refused, not echoed into a 20 KB Location."""
    resp = requests.get(tool.login_url, allow_redirects=False, timeout=5, params={
        "iss": "https://canvas.instructure.com", "login_hint": "x", "client_id": "1",
        "target_link_uri": tool.launch_url, "lti_message_hint": "h" * 20000})
    assert resp.status_code == 400 and len(resp.headers.get("Location", "")) <= 8192

    # The last guard, whatever view made the redirect.
    from flask import redirect
    from tool.web import security
    with tool.app.test_request_context("/somewhere"):
        answer = security._add_headers(redirect("/next?hint=" + "y" * 9000))
        assert answer.status_code == 400 and "Location" not in answer.headers
        assert "too long" in answer.get_data(as_text=True)
        short = security._add_headers(redirect("/next?hint=y"))
        assert short.status_code == 302


# Pages people read -----------------------------------------------------------------------

def test_the_instructor_page_is_labelled_for_assistive_technology(lms, db_session):
    from sqlalchemy import update
    from tool.models import User
    lms.launch(lms.student)  # known to the tool: a row in the roster
    db_session.execute(update(User).where(User.sub == lms.student.sub).values(matched_by="email"))
    db_session.commit()
    page = lms.launch(lms.teacher)  # queues a sync nobody runs here: the progress bar shows
    html = page.text
    assert page.status_code == 200 and 'id="roster"' in html

    assert "<caption>" in html and html.count('<th scope="col">') == 6
    assert re.search(r'<div class="table-wrap" tabindex="0" role="region" aria-label="[^"]+"', html)
    assert re.search(r'id="sync-status"[^>]*aria-live="polite"', html)
    assert re.search(r'<progress id="sync-progress" aria-labelledby="sync-label"', html)
    assert 'id="sync-label"' in html
    assert _structure(html).form_in_p == 0

    # Times say their zone, and carry the exact time.
    assert "First seen (UTC)" in html and re.search(r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"', html)
    # How a person was matched: words, and only where it is not the usual case.
    assert "(matched by email)" in html
    assert "created" not in html and "lis_person_sourcedid" not in html and "How matched" not in html
    # Words for instructors, not counters of the tool.
    assert "pages fetched" not in html and "members seen" not in html


def test_each_page_has_its_own_title(lms):
    teacher = lms.launch(lms.teacher)
    student = lms.launch(lms.student)
    refused = requests.get(lms.tool.launch_url, timeout=5)
    titles = [_title(r.text) for r in (teacher, student, refused)]
    course = lms.course.title
    assert titles[0] == f"Roster · {course}"
    assert titles[1] == f"{course} · Student"
    assert titles[2].startswith(re.search(r"<h1>(.*?)</h1>", refused.text).group(1))
    assert len(set(titles)) == 3, titles
