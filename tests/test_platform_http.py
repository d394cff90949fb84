"""Service calls to a platform (tool/lti/http.py ``call``) over real sockets.

What a school's network and a platform can do to a call: an egress proxy named in the
environment (and NO_PROXY around it), a redirect to another host (the bearer token must not
follow), a gzip body, a server that accepts and never answers, a port where nothing listens,
and an answer whose status is an error (handed back, not raised: the client decides).
"""
from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tool.lti import http


class Recorder(ThreadingHTTPServer):
    """A small HTTP server that records what it was sent and answers from ``answer``."""

    daemon_threads = True

    def __init__(self, answer) -> None:
        self.seen: list[dict] = []
        self.answer = answer
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                self._record()

            def do_POST(self):
                self._record()

            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.seen.append({"line": self.requestline, "headers": dict(self.headers),
                                      "body": body})
                status, headers, content = recorder.answer(self)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *_args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _json(status: int = 200, body=None, **headers):
    return lambda _handler: (status, {"Content-Type": "application/json", **headers},
                             json.dumps(body if body is not None else {"ok": True}).encode())


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    http._managers = http._Managers()  # routes are read once per origin: start from none
    yield monkeypatch
    http._managers = http._Managers()


def test_a_call_sends_the_token_and_user_agent_and_hands_back_any_status(no_proxy_env):
    server = Recorder(_json(422, {"errors": {"message": "User not found in course"}}))
    answer = http.call("POST", server.url + "/scores", headers={"Authorization": "Bearer abc",
                                                               "Content-Type": "application/json"},
                       body=b'{"scoreGiven": 1}', params={"user_id": "7", "empty": None})
    assert answer.status_code == 422
    assert answer.json() == {"errors": {"message": "User not found in course"}}
    assert answer.headers["content-type"] == "application/json"  # any case
    sent = server.seen[0]
    assert sent["line"] == "POST /scores?user_id=7 HTTP/1.1"
    assert sent["headers"]["Authorization"] == "Bearer abc"
    assert sent["headers"]["User-Agent"] == http.USER_AGENT
    assert sent["body"] == b'{"scoreGiven": 1}'
    server.shutdown()


def test_the_schools_ca_bundle_checks_https_platforms_even_after_a_plain_http_call(no_proxy_env, tmp_path):
    """A school's own CA bundle (REQUESTS_CA_BUNDLE) is what https platforms are checked
    against, whichever call the process made first; without one, certifi's."""
    import certifi
    bundle = tmp_path / "school-ca.pem"
    bundle.write_text(open(certifi.where()).read())
    no_proxy_env.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    server = Recorder(_json())
    assert http.call("GET", server.url + "/first", headers={}).status_code == 200
    manager = http._pools().for_url("https://canvas.example.edu/api/lti/courses/1/names_and_roles")
    assert manager.connection_pool_kw["ca_certs"] == str(bundle)
    assert manager.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"
    no_proxy_env.delenv("REQUESTS_CA_BUNDLE")
    no_proxy_env.delenv("CURL_CA_BUNDLE", raising=False)
    http._managers = http._Managers()
    assert http._pools().for_url("https://canvas.example.edu/x").connection_pool_kw["ca_certs"] == certifi.where()
    server.shutdown()


def test_an_egress_proxy_from_the_environment_carries_the_call_except_for_no_proxy_hosts(no_proxy_env):
    proxy = Recorder(_json(body={"via": "proxy"}))
    direct = Recorder(_json(body={"via": "direct"}))
    no_proxy_env.setenv("HTTP_PROXY", proxy.url)
    no_proxy_env.setenv("NO_PROXY", "localhost")
    answer = http.call("GET", "http://canvas.school.invalid/api/lti/courses/1/names_and_roles",
                       headers={"Authorization": "Bearer abc"})
    assert answer.json() == {"via": "proxy"}
    # An HTTP proxy is sent the whole URL, with the call's own headers.
    assert proxy.seen[0]["line"].startswith("GET http://canvas.school.invalid/api/lti/courses/1/")
    assert proxy.seen[0]["headers"]["Authorization"] == "Bearer abc"
    around = http.call("GET", f"http://localhost:{direct.server_address[1]}/x", headers={})
    assert around.json() == {"via": "direct"} and len(proxy.seen) == 1
    proxy.shutdown()
    direct.shutdown()


def test_a_redirect_to_another_host_is_followed_without_the_bearer_token(no_proxy_env):
    target = Recorder(_json(body={"moved": True}))
    elsewhere = f"http://localhost:{target.server_address[1]}/members"
    origin = Recorder(lambda _h: (302, {"Location": elsewhere}, b""))
    answer = http.call("GET", origin.url + "/members", headers={"Authorization": "Bearer abc"})
    assert answer.status_code == 200 and answer.json() == {"moved": True}
    assert origin.seen[0]["headers"]["Authorization"] == "Bearer abc"
    assert "Authorization" not in target.seen[0]["headers"]
    origin.shutdown()
    target.shutdown()


def test_a_redirect_loop_is_a_platform_error(no_proxy_env):
    from tool.lti.errors import PlatformError
    loop = Recorder(lambda h: (302, {"Location": h.path}, b""))
    with pytest.raises(PlatformError) as raised:
        http.call("GET", loop.url + "/again", headers={})
    assert raised.value.code == "redirect_loop"
    loop.shutdown()


def test_a_gzip_body_reads_as_the_json_it_holds(no_proxy_env):
    body = json.dumps({"members": [{"user_id": str(i)} for i in range(50)]}).encode()
    server = Recorder(lambda _h: (200, {"Content-Type": "application/json", "Content-Encoding": "gzip"},
                                  gzip.compress(body)))
    answer = http.call("GET", server.url + "/page", headers={})
    assert len(answer.json()["members"]) == 50
    assert "gzip" in server.seen[0]["headers"]["Accept-Encoding"]
    server.shutdown()


def test_a_platform_that_accepts_and_never_answers_times_out_within_the_read_timeout(no_proxy_env):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    began = time.monotonic()
    with pytest.raises(requests.Timeout):
        http.call("GET", f"http://127.0.0.1:{listener.getsockname()[1]}/slow", headers={},
                  timeout=(2.0, 0.5))
    assert time.monotonic() - began < 10  # bounded by the timeout, not hung
    listener.close()


def test_nothing_listening_is_a_connection_failure_not_a_timeout(no_proxy_env):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(requests.ConnectionError) as raised:
        http.call("GET", f"http://127.0.0.1:{port}/", headers={}, timeout=(2.0, 2.0))
    assert not isinstance(raised.value, requests.Timeout)


def test_a_body_that_is_not_json_raises_value_error_and_keeps_its_text(no_proxy_env):
    server = Recorder(lambda _h: (403, {"Content-Type": "text/plain; charset=utf-8"},
                                  "403 Forbidden (Rate Limit Exceeded)".encode()))
    answer = http.call("GET", server.url + "/", headers={})
    with pytest.raises(ValueError):
        answer.json()
    assert answer.text == "403 Forbidden (Rate Limit Exceeded)"
    server.shutdown()
