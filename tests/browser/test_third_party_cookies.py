"""The test browser blocks third-party cookies, as the browsers the launch binding must survive.

A small site stands in for the tool: on ``127.0.0.1`` it sets an ordinary cookie
(``SameSite=None; Secure``) while visited first-party; framed by a page on ``localhost`` (another
site) that cookie must not be sent, while a ``Partitioned`` cookie set inside the frame is kept for
that frame only (CHIPS), which is what the launch binding's cookie path relies on.
"""
from __future__ import annotations

import html
import threading

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from emulator.server import QuietHandler


@Request.application
def _site(request):
    cookies = html.escape(request.headers.get("Cookie") or "(none)")
    body = f"<!DOCTYPE html><title>cookies</title><p id=cookies>{cookies}</p>"
    if request.path == "/set":
        response = Response(body, mimetype="text/html")
        response.headers.add("Set-Cookie", "first_party=1; Path=/; SameSite=None; Secure")
        return response
    if request.path == "/set-in-frame":
        response = Response(body, mimetype="text/html")
        response.headers.add("Set-Cookie", "chips=1; Path=/; SameSite=None; Secure; Partitioned")
        response.headers.add("Set-Cookie", "framed_plain=1; Path=/; SameSite=None; Secure")
        return response
    if request.path == "/frame":
        src = html.escape(request.args.get("src", ""))
        return Response(f'<!DOCTYPE html><title>course</title><iframe title="tool" src="{src}">'
                        "</iframe>", mimetype="text/html")
    return Response(body, mimetype="text/html")


@pytest.fixture
def site():
    server = make_server("127.0.0.1", 0, _site, threaded=True, request_handler=QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_port
    server.shutdown()


def _framed_cookies(page, port, path):
    page.goto(f"http://localhost:{port}/frame?src=http://127.0.0.1:{port}{path}")
    frame = page.frame_locator("iframe[title=tool]")
    return frame.locator("#cookies").inner_text()


def test_a_cookie_the_tool_site_set_first_party_is_not_sent_when_framed_by_another_site(page, site):
    page.goto(f"http://127.0.0.1:{site}/set")
    page.goto(f"http://127.0.0.1:{site}/echo")
    assert page.locator("#cookies").inner_text() == "first_party=1"  # stored and sent first-party

    assert _framed_cookies(page, site, "/echo") == "(none)"


def test_inside_a_frame_only_partitioned_cookies_survive(page, site):
    _framed_cookies(page, site, "/set-in-frame")
    assert _framed_cookies(page, site, "/echo") == "chips=1"
    # The partitioned cookie belongs to the (localhost, 127.0.0.1) pair, never to the tool's own site.
    page.goto(f"http://127.0.0.1:{site}/echo")
    assert page.locator("#cookies").inner_text() == "(none)"
