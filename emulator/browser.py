"""A scripted browser that drives an LTI 1.3 launch over real HTTP (facts sheet, section 2).

Login initiation form -> tool redirects to the platform auth endpoint -> the
platform's auto-submitting form -> POST to the tool's redirect URI.

It also plays what a real browser inside Canvas does with LTI Platform Storage (section 10),
where the tool's pages run a script: a page whose form says ``data-lti-storage="put"`` stores
its key and value in Canvas's storage frame, one that says ``"get"`` reads the value back into
its ``lti_storage_value`` field and is posted from the tool's own origin. As in a browser, a
message reaches the frame only when the page names the auth endpoint's origin as the target,
and values are kept per tool origin. The real scripts run in the Playwright tests.
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
                               "id": a.get("id"), "fields": {}, "attrs": a})
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


def _origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class Browser(requests.Session):
    """A ``requests.Session`` with a cookie jar; every call times out after 10 s."""

    def __init__(self, block_cookies=False, timeout=TIMEOUT, platform_storage=True):
        """``block_cookies``: store no cookie at all; ``platform_storage``: the page that frames
        the tool holds Canvas's storage frame (False: a platform, or a browser, without it)."""
        super().__init__()
        self.trust_env = False  # never send 127.0.0.1 traffic through an env proxy
        self.timeout = timeout
        self.cookies.set_policy(LoopbackSecurePolicy(block=block_cookies))
        self.headers["User-Agent"] = "Mozilla/5.0 (emulator Browser)"
        self.last_form = None
        self.last_action = None
        self.last_auth_location = None
        # Canvas's storage frame: tool origin -> {key: value} (None: no frame in the page).
        self.platform_storage = {} if platform_storage else None

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

    def cookie_header(self, url):
        """The Cookie header this browser sends to ``url`` (for posting through another client)."""
        return requests.cookies.get_cookie_header(self.cookies, requests.Request("POST", url)) or ""

    def auth_location(self, response, auth_url=None):
        """Where the tool's login answer sends the browser: its redirect's Location, or the URL
        its page's GET form to the auth endpoint submits (storing what the page stores in the
        platform's frame first); None when the answer is neither."""
        if response.status_code in REDIRECTS and response.headers.get("Location"):
            return urljoin(response.url, response.headers["Location"])
        if response.status_code != 200:
            return None
        for form in parse_forms(response.text):
            action = urljoin(response.url, form["action"])
            if form["method"] == "get" and (auth_url is None or _same_endpoint(action, auth_url)):
                self._storage_put(response.url, form, _origin(action))
                return requests.Request("GET", action, params=form["fields"]).prepare().url
        return None

    def _storage_put(self, page_url, form, platform_origin):
        """``lti.put_data`` to the storage frame at the auth endpoint's origin, as the page's script does."""
        attrs = form.get("attrs", {})
        if self.platform_storage is None or attrs.get("data-lti-storage") != "put":
            return
        if (attrs.get("data-lti-storage-origin") or "").lower() != platform_origin:
            return  # a browser drops a message whose target origin is not the frame's
        store = self.platform_storage.setdefault(_origin(page_url), {})
        store[attrs.get("data-lti-storage-key", "")] = attrs.get("data-lti-storage-value", "")

    def storage_post(self, response, platform_origin, follow=True):
        """If ``response`` is the tool's page that reads platform storage, post its form as its
        script does (value read, from the tool's origin) and return the answer; else None."""
        if response.status_code != 200 or "data-lti-storage" not in response.text:
            return None
        for form in parse_forms(response.text):
            attrs = form.get("attrs", {})
            if attrs.get("data-lti-storage") != "get":
                continue
            fields = dict(form["fields"])
            tool_origin = _origin(response.url)
            if (self.platform_storage is not None
                    and (attrs.get("data-lti-storage-origin") or "").lower() == platform_origin):
                store = self.platform_storage.get(tool_origin, {})
                fields["lti_storage_value"] = store.pop(attrs.get("data-lti-storage-key", ""), "")
            return self.post(urljoin(response.url, form["action"]), data=fields,
                             headers={"Origin": tool_origin, "Sec-Fetch-Site": "same-origin"},
                             allow_redirects=follow)
        return None

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
            # The tool answers a page that goes on to the auth endpoint: a GET form (after
            # storing its state in the platform's frame) or an auto-submitting POST form.
            location = self.auth_location(resp, auth_url)
            forms = [f for f in parse_forms(resp.text)
                     if _same_endpoint(urljoin(resp.url, f["action"]), auth_url)]
            if location is not None:
                result = self.authorize(location)
            elif forms:
                result = self.authorize(urljoin(resp.url, forms[0]["action"]), "POST", forms[0]["fields"])
            else:
                return resp
        else:
            return resp
        if isinstance(result, requests.Response):
            return result
        action, fields = result
        if tamper_form is not None:
            fields = tamper_form(dict(fields))
        answer = self.post_form(action, fields, follow=follow)
        checked = self.storage_post(answer, _origin(auth_url), follow=follow)
        return answer if checked is None else checked
