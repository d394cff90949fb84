"""A scripted browser that drives an LTI 1.3 launch over real HTTP (facts sheet, section 2).

Login initiation form -> tool redirects to the platform auth endpoint -> the
platform's auto-submitting form -> POST to the tool's redirect URI.
"""

from html.parser import HTMLParser
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urljoin, urlsplit

import requests

TIMEOUT = 10
REDIRECTS = (301, 302, 303, 307, 308)
LOOPBACK = ("127.0.0.1", "localhost", "localhost.local", "::1", "[::1]")


class LoopbackSecurePolicy(DefaultCookiePolicy):
    """Browsers treat http://127.0.0.1 and http://localhost as secure contexts, so
    ``Secure`` (SameSite=None) cookies are sent there; ``block=True`` stores no cookies
    at all (Safari-style third-party cookie blocking)."""

    def __init__(self, block=False, **kw):
        super().__init__(**kw)
        self.block = block

    def set_ok(self, cookie, request):
        return False if self.block else super().set_ok(cookie, request)

    def return_ok_secure(self, cookie, request):
        host = urlsplit(request.get_full_url()).hostname or ""
        return host in LOOPBACK or super().return_ok_secure(cookie, request)


class FormParser(HTMLParser):
    """Collect forms: ``[{"action", "method", "id", "fields": {name: value}}]``."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = {k.lower(): (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get").lower(),
                               "id": a.get("id"), "fields": {}})
        elif tag == "input" and self.forms and a.get("name"):
            if a.get("type", "text").lower() in ("submit", "button", "image", "reset"):
                return
            if a.get("type", "").lower() in ("checkbox", "radio") and "checked" not in a:
                return
            self.forms[-1]["fields"][a["name"]] = a.get("value", "")
        elif tag == "textarea" and self.forms and a.get("name"):
            self._textarea = a["name"]
            self.forms[-1]["fields"][a["name"]] = ""

    def handle_data(self, data):
        if self._textarea and self.forms:
            self.forms[-1]["fields"][self._textarea] += data

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None


def parse_forms(text):
    parser = FormParser()
    parser.feed(text or "")
    parser.close()
    return parser.forms


def _same_endpoint(url, target):
    a, b = urlsplit(url), urlsplit(target)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)


class Browser(requests.Session):
    """A ``requests.Session`` with a cookie jar; every call times out after 10 s."""

    def __init__(self, block_cookies=False, timeout=TIMEOUT):
        super().__init__()
        self.trust_env = False  # never send 127.0.0.1 traffic through an env proxy
        self.timeout = timeout
        self.cookies.set_policy(LoopbackSecurePolicy(block=block_cookies))
        self.headers["User-Agent"] = "Mozilla/5.0 (emulator Browser)"
        self.last_form = None
        self.last_action = None
        self.last_auth_location = None

    def request(self, method, url, **kw):
        kw.setdefault("timeout", self.timeout)
        return super().request(method, url, **kw)

    def prepare_request(self, request):
        # requests copies the jar into a fresh one (default policy) before building the
        # Cookie header; rebuild it from our own jar so our cookie policy applies.
        prepared = super().prepare_request(request)
        prepared.headers.pop("Cookie", None)
        prepared.prepare_cookies(self.cookies)
        return prepared

    def initiate(self, url, launch, method="POST"):
        """Send the login initiation (section 2) to the tool; redirects not followed."""
        if method.upper() == "GET":
            return self.get(url, params=launch.login_params, allow_redirects=False)
        return self.post(url, data=launch.login_params, allow_redirects=False)

    def authorize(self, location, method="GET", data=None):
        """Follow the tool's auth request to the platform; (action, fields) of the
        auto-submit form, or the platform's Response when it did not answer 200."""
        self.last_auth_location = location
        if method.upper() == "POST":
            resp = self.post(location, data=data, allow_redirects=False)
        else:
            resp = self.get(location, allow_redirects=False)
        if resp.status_code != 200:
            return resp
        forms = [f for f in parse_forms(resp.text) if f["method"] == "post"]
        if not forms:
            return resp
        form = forms[0]
        return urljoin(resp.url, form["action"]), dict(form["fields"])

    def post_form(self, action, fields, follow=True):
        """POST ``fields`` to ``action`` (as the auto-submit form would)."""
        self.last_form = dict(fields)
        self.last_action = action
        return self.post(action, data=fields, allow_redirects=follow)

    def submit_form(self, response, follow=True):
        """POST the first POST form of ``response`` as its auto-submit script would (e.g. a
        tool's deep linking response page posting ``JWT`` to ``deep_link_return_url``)."""
        forms = [f for f in parse_forms(response.text) if f["method"] == "post"]
        if not forms:
            raise ValueError(f"no POST form in the response from {response.url}")
        return self.post_form(urljoin(response.url, forms[0]["action"]), forms[0]["fields"],
                              follow=follow)

    def launch(self, tool_login_url, launch, method="POST", tamper_form=None, follow=True):
        """Drive the whole launch; returns the tool's final response, or the first
        response that breaks the flow (tool error page, platform 400)."""
        resp = self.initiate(tool_login_url, launch, method)
        auth_url = launch.auth_url
        if resp.status_code in REDIRECTS and resp.headers.get("Location"):
            location = urljoin(resp.url, resp.headers["Location"])
            if not _same_endpoint(location, auth_url):
                return resp
            result = self.authorize(location)
        elif resp.status_code == 200:
            # Some tools answer with an auto-submitting form to the auth endpoint.
            forms = [f for f in parse_forms(resp.text)
                     if _same_endpoint(urljoin(resp.url, f["action"]), auth_url)]
            if not forms:
                return resp
            form = forms[0]
            action = urljoin(resp.url, form["action"])
            if form["method"] == "post":
                result = self.authorize(action, "POST", form["fields"])
            else:
                result = self.authorize(requests.Request("GET", action, params=form["fields"])
                                        .prepare().url)
        else:
            return resp
        if isinstance(result, requests.Response):
            return result
        action, fields = result
        if tamper_form is not None:
            fields = tamper_form(dict(fields))
        return self.post_form(action, fields, follow=follow)
