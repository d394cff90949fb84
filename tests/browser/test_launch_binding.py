"""The launch is bound to the browser that began it, in a real Chromium that blocks third-party
cookies, with the tool framed by the emulated Canvas's course page from another site
(``localhost`` framing ``127.0.0.1``). Each way is forced in turn:

- the partitioned cookie: no ``lti_storage_target`` is sent, so only the cookie can bind;
- LTI Platform Storage: the cookie is withheld on purpose (dropped from the browser just before
  the launch is posted), so only the value stored in the course page's storage frame can bind;
- neither: no storage target and no cookie: the explanation page, never a tool page;
- and a login CSRF attempt from a page that frames the tool and answers the storage messages
  itself: the tool's script ignores an answer from any origin but the platform's.

What the browser really sent is read from its requests (the launch posts, their Cookie and
Origin headers), so each test shows which way bound the launch.
"""
from __future__ import annotations

import html
import re
import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from emulator import Browser
from emulator.browser import parse_forms

REFUSED = "This launch could not be matched to your browser"


def _course_tool_page(site, user=None) -> str:
    user = user or site.teacher
    return (f"{site.platform.base_url}/courses/{site.course.course_id}/external_tools/"
            f"{site.registration.client_id}?as={user.canvas_user_id}")


def _tool_frame(page):
    return page.frame_locator("iframe#tool_content")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _withhold_login_cookie(page, site) -> list[dict]:
    """Drop the cookie the tool's login set just before the launch is posted, as a browser that
    keeps no cookie for the tool would; returns the cookies dropped. (The browser attaches
    cookies after the route handler lets the request go. Rewriting the login answer instead
    would make Chromium take the tool's page for a public-internet one, and its local network
    access checks would then block the loopback platform.)"""
    dropped: list[dict] = []

    def drop(route):
        dropped.extend(c for c in page.context.cookies() if c["name"].startswith("lti_login_"))
        page.context.clear_cookies(name=re.compile(r"^lti_login_"))
        route.continue_()

    page.route(site.tool.launch_url, drop)
    return dropped


class LaunchPosts:
    """Every POST the browser sends to the tool's /lti/launch (from any frame)."""

    def __init__(self, page, tool) -> None:
        self.requests = []
        page.on("request", lambda r: self.requests.append(r)
                if r.method == "POST" and r.url == tool.launch_url else None)

    def forms(self) -> list[dict]:
        return [{k: v[0] for k, v in parse_qs(r.post_data or "", keep_blank_values=True).items()}
                for r in self.requests]

    def headers(self) -> list[dict]:
        return [r.all_headers() for r in self.requests]


def test_the_partitioned_cookie_binds_the_launch(page, course_site, shot):
    site = course_site
    site.platform.storage_target = None  # no storage offered: only the cookie can bind
    posts = LaunchPosts(page, site.tool)
    page.goto(_course_tool_page(site))
    expect(_tool_frame(page).get_by_role("heading", name="Course roster")).to_be_visible()
    shot("tool-opened-with-the-partitioned-cookie")
    assert len(posts.requests) == 1  # the platform's post, accepted at once
    assert "lti_storage_value" not in posts.forms()[0]
    assert "lti_login_" in posts.headers()[0].get("cookie", "")
    kept = [c for c in page.context.cookies() if c["name"].startswith("lti_login_")]
    assert kept and all(c["secure"] and c["httpOnly"] and c["sameSite"] == "None" for c in kept)


def test_platform_storage_binds_the_launch_when_the_cookie_is_withheld(page, course_site, shot):
    site = course_site
    dropped = _withhold_login_cookie(page, site)
    posts = LaunchPosts(page, site.tool)
    page.goto(_course_tool_page(site))
    expect(_tool_frame(page).get_by_role("heading", name="Course roster")).to_be_visible()
    shot("tool-opened-through-platform-storage")
    assert dropped and all(c["secure"] and c["httpOnly"] for c in dropped)  # the tool did set it
    forms, headers = posts.forms(), posts.headers()
    assert len(forms) == 2, forms  # the platform's post, then the tool page's own
    assert "lti_storage_value" not in forms[0] and "lti_login_" not in headers[0].get("cookie", "")
    assert len(forms[1]["lti_storage_value"]) == 43 and forms[1]["state"] == forms[0]["state"]
    assert forms[1]["id_token"] == forms[0]["id_token"]
    assert headers[1]["origin"] == _origin(site.tool.base_url)
    assert not [c for c in page.context.cookies() if c["name"].startswith("lti_login_")]


def test_neither_cookie_nor_storage_shows_the_explanation_in_the_frame(page, course_site, shot,
                                                                      axe_check):
    site = course_site
    site.platform.storage_target = None
    _withhold_login_cookie(page, site)
    posts = LaunchPosts(page, site.tool)
    page.goto(_course_tool_page(site))
    frame = _tool_frame(page)
    expect(frame.get_by_role("heading", name=REFUSED)).to_be_visible()
    expect(frame.get_by_text("Third-party cookies", exact=False)).to_be_visible()
    shot("launch-refused-with-the-explanation")
    axe_check(page.frame(name="tool_content"), "launch refused: not matched to the browser")
    assert len(posts.requests) == 1
    expect(frame.get_by_role("heading", name="Course roster")).to_have_count(0)


@pytest.fixture
def evil_site():
    """Another site on this machine (``http://localhost:<port>/``) serving the page put in ``.body``."""
    from werkzeug.serving import WSGIRequestHandler, make_server
    from werkzeug.wrappers import Request, Response

    class Quiet(WSGIRequestHandler):
        def log_request(self, *args, **kwargs):
            pass

    class Site:
        body = ""

    @Request.application
    def serve(request):
        return Response(Site.body, mimetype="text/html")

    server = make_server("127.0.0.1", 0, serve, threaded=True, request_handler=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Site.url = f"http://localhost:{server.server_port}/innocent-page"
    yield Site
    server.shutdown()


def test_a_page_that_frames_the_tool_cannot_answer_for_the_platform(page, course_site, evil_site, shot):
    """Login CSRF: the attacker began a launch in its own browser, knows the proof its login page
    stored, frames the tool with that launch and answers lti.get_data with the proof itself."""
    site = course_site
    attacker = Browser()
    pending = site.platform.resource_link_launch(site.registration, site.teacher, site.course)
    login = attacker.initiate(site.tool.login_url, pending)
    put = next(f for f in parse_forms(login.text) if f["attrs"].get("data-lti-storage") == "put")
    proof = put["attrs"]["data-lti-storage-value"]
    action, fields = attacker.authorize(attacker.auth_location(login, site.platform.auth_login_url))

    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items() if k in ("id_token", "state"))
    evil_site.body = f"""<!DOCTYPE html><html lang="en"><title>Innocent page</title>
<iframe name="post_message_forwarding" src="about:blank" title="fake storage"></iframe>
<iframe name="victim" id="victim" title="tool"></iframe>
<form id="f" method="post" action="{html.escape(action)}" target="victim">{inputs}</form>
<script>
window.addEventListener("message", function (e) {{
  var d = e.data;
  if (d && d.subject === "lti.get_data") {{
    e.source.postMessage({{subject: "lti.get_data.response", message_id: d.message_id,
                           key: d.key, value: {proof!r}}}, "*");
    document.title = "answered";
  }}
}});
document.getElementById("f").submit();
</script></html>"""
    posts = LaunchPosts(page, site.tool)
    page.goto(evil_site.url)
    frame = page.frame_locator("iframe#victim")
    expect(frame.get_by_role("heading", name=REFUSED)).to_be_visible()
    shot("forged-answer-ignored-launch-refused")
    expect(page).to_have_title("answered")  # the forged answer was sent, and ignored
    forms = posts.forms()
    assert len(forms) == 2 and forms[1]["lti_storage_value"] == ""
    # The attacker's own browser can still finish its launch: the refusal spent nothing.
    assert attacker.post_form(action, fields).status_code == 200


def test_without_javascript_the_login_page_continues_by_hand_and_the_cookie_binds(
        playwright_session, course_site, shot):
    """A Chromium with JavaScript off everywhere (Playwright's per-context switch does not reach
    a cross-site frame's parser): each page offers a Continue button, and the cookie binds."""
    from .conftest import CHROMIUM_FLAGS, TIMEOUT_MS, chromium_path
    site = course_site
    no_script = playwright_session.chromium.launch(
        executable_path=chromium_path(), headless=True,
        args=CHROMIUM_FLAGS + ["--blink-settings=scriptEnabled=false"])
    try:
        page = no_script.new_page(locale="en-US", timezone_id="UTC")
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(_course_tool_page(site))
        frame = _tool_frame(page)
        frame.get_by_role("button", name="Continue to the tool").click()  # Canvas's launch form
        go_on = frame.get_by_role("button", name="Continue", exact=True)
        expect(go_on).to_be_visible()
        # (Playwright's text matching skips <noscript>; innerText does not.)
        assert "JavaScript is off in this browser" in frame.locator("main").inner_text()
        shot("login-page-without-javascript", page)
        go_on.click()  # the tool's login page
        frame.get_by_role("button", name="Continue", exact=True).click()  # the platform's auth answer
        expect(frame.get_by_role("heading", name="Course roster")).to_be_visible()
        shot("tool-opened-without-javascript", page)
    finally:
        no_script.close()
