"""Helpers for the emulator's own tests: a tiny stub tool (login initiation, a redirect
URI that records the form, a JWKS) on real HTTP.

Deliberately not a conftest.py: tests/conftest.py belongs to the tool's tests, and two
package-less conftest modules would fight over the name ``conftest``.
"""

import json
import secrets
import time
import uuid
from urllib.parse import urlencode

import jwt
import requests
from werkzeug.wrappers import Request, Response

from emulator.keys import public_jwk
from emulator.server import ServerThread

TOOL_KID = "tool-key-1"


class StubTool:
    """One tiny WSGI app: /login (redirects to the platform auth URL), /launch
    (records posted forms), /jwks (the tool's public key)."""

    def __init__(self, key):
        self.key = key
        self.kid = TOOL_KID
        self.forms = []
        self.auth_params = []
        self.auth_overrides = {}  # merged into the auth request (None drops a param)
        self.platform = None
        self.server = ServerThread(self.wsgi)
        self.url = self.server.start()
        self.jwks = {"keys": [public_jwk(key.public_key(), self.kid)]}

    def wsgi(self, environ, start_response):
        req = Request(environ)
        if req.path == "/login":
            params = {
                "scope": "openid", "response_type": "id_token", "response_mode": "form_post",
                "prompt": "none", "client_id": req.values["client_id"],
                "redirect_uri": self.url + "/launch", "login_hint": req.values["login_hint"],
                "lti_message_hint": req.values.get("lti_message_hint"),
                "state": secrets.token_urlsafe(16), "nonce": secrets.token_urlsafe(16)}
            params.update(self.auth_overrides)
            params = {k: v for k, v in params.items() if v is not None}
            self.auth_params.append(params)
            resp = Response(status=302)
            resp.headers["Location"] = self.platform.auth_login_url + "?" + urlencode(params)
            resp.set_cookie("lti_state", params.get("state", ""), secure=True, samesite="None")
        elif req.path == "/launch":
            self.forms.append({"form": req.form.to_dict(), "cookies": dict(req.cookies)})
            resp = Response("launched", status=200)
        elif req.path == "/jwks":
            resp = Response(json.dumps(self.jwks), content_type="application/json")
        elif req.path == "/broken-login":
            resp = Response("tool says no", status=400)
        else:
            resp = Response("not found", status=404)
        return resp(environ, start_response)

    def assertion(self, platform, client_id, key=None, kid=None, **claims):
        now = int(time.time())
        body = {"iss": client_id, "sub": client_id, "aud": platform.token_url, "iat": now,
                "exp": now + 300, "jti": str(uuid.uuid4())}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.key, algorithm="RS256",
                          headers={"kid": kid or self.kid})

    def stop(self):
        self.server.stop()


def get_token(platform, stub, tool, scope):
    r = requests.post(platform.token_url, data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": stub.assertion(platform, tool.client_id), "scope": scope}, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


LINEITEM = "application/vnd.ims.lis.v2.lineitem+json"
CONTAINER = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE = "application/vnd.ims.lis.v1.score+json"
RESULTS = "application/vnd.ims.lis.v2.resultcontainer+json"


class Ags:
    """AGS calls with one bearer token of the given scopes (the stub tool's client)."""

    def __init__(self, platform, stub, tool, scopes):
        self.token = get_token(platform, stub, tool, " ".join(scopes))
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers.update({"Authorization": f"Bearer {self.token}",
                                  "User-Agent": "emulator-tests/1"})

    def get(self, url, accept=LINEITEM, **params):
        return self.http.get(url, params=params or None, headers={"Accept": accept}, timeout=10)

    def post(self, url, body, media=LINEITEM, timeout=10):
        return self.http.post(url, data=json.dumps(body), timeout=timeout,
                              headers={"Content-Type": media})

    def put(self, url, body):
        return self.http.put(url, data=json.dumps(body), timeout=10,
                             headers={"Content-Type": LINEITEM})

    def delete(self, url):
        return self.http.delete(url, timeout=10)

    def score(self, url, user, timeout=10, **fields):
        body = {"userId": getattr(user, "sub", user), "activityProgress": "Completed",
                "gradingProgress": "FullyGraded", "timestamp": iso_now()}
        body.update(fields)
        body = {k: v for k, v in body.items() if v is not None}
        return self.post(url + "/scores", body, media=SCORE, timeout=timeout)


def iso_now(offset=0.0):
    from datetime import datetime, timedelta, timezone
    moment = datetime.now(timezone.utc) + timedelta(seconds=offset)
    return moment.isoformat(timespec="microseconds")


def link_rels(response):
    out = {}
    for part in response.headers["Link"].split(","):
        url, _, rel = part.partition("; rel=")
        out[rel.strip('"')] = url.strip("<>")
    return out


def read_all(ags, url, accept=CONTAINER, **params):
    """Every page of a paged AGS list; (rows, pages)."""
    rows, pages = [], 0
    response = ags.get(url, accept=accept, **params)
    while True:
        assert response.status_code == 200, response.text
        rows += response.json()
        pages += 1
        nxt = link_rels(response).get("next")
        if not nxt:
            return rows, pages
        response = ags.get(nxt, accept=accept)
