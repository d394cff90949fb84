"""The emulated Canvas: its state (tools, courses, users, enrollments, launches,
tokens, counters, faults) and the calls tests use to set it up.

Identifiers follow the facts sheet sections 1 and 3; the HTTP side lives in
``app.py`` (JWKS, auth), ``oauth.py`` (section 6), ``nrps.py`` (section 7), ``ags.py`` and
``scoring.py`` (section 8), ``services.py`` and ``throttle.py`` (section 9).
"""

import itertools
import os
import secrets
import threading
import uuid

from . import constants as C
from .assignments import AssignmentsMixin
from .gradebook import GradebookMixin
from .keys import KeySet
from .launches import LaunchMixin
from .models import Course, Enrollment, Faults, Tool, User
from .throttle import Throttle


class Platform(LaunchMixin, AssignmentsMixin, GradebookMixin):
    def __init__(self, issuer="https://canvas.instructure.com", name="Emulated School",
                 key_bits=2048, message_hint_ttl=300, keys=None):
        self.issuer = issuer
        self.name = name
        self.guid = secrets.token_hex(20)
        self.keys = keys or KeySet(key_bits)  # ``keys``: a KeySet kept across restarts
        self.message_hint_ttl = message_hint_ttl
        self._hint_secret = secrets.token_bytes(32)
        self.secret = secrets.token_bytes(32)  # signs NRPS cursors and DL data
        self.lock = threading.RLock()
        self.tools = {}  # client_id -> Tool
        self.courses = {}  # course_id -> Course
        self.users = {}  # sub -> User
        self.launches = {}  # launch id -> Launch
        self.access_tokens = {}  # token -> grant dict (client_id, scopes, expires_at, revoked)
        self.seen_jtis = set()
        self.auth_errors = []
        self.token_errors = []
        self.requests = []  # NRPS requests: method, path, query, headers, status
        self.deep_link_responses = []
        self.nrps_cache = {}  # filtered rosters keyed by course version (nrps.py)
        self.since_tokens = {}  # differences token -> (course_id, change seq)
        self.faults = Faults()  # NRPS fault switches
        self.ags_faults = Faults()  # AGS fault switches (line items, scores, results)
        self.ags_latency = 0.0  # seconds every AGS call spends in flight before answering
        self.throttle = Throttle()  # Canvas's bucket per client_id; .enabled switches it on
        self.throttle_refusals = 0  # 403 "Rate Limit Exceeded" answers (bucket or injected)
        self.assignment_records = {}  # id -> gradebook.Assignment
        self.line_item_records = {}  # id -> gradebook.LineItem
        self.link_records = {}  # resource link id -> gradebook.LinkRecord
        self.scores = []  # every score POST: course_id, line_item_id, body, status, answer
        self.ags_requests = []  # every AGS call: method, path, query, headers, status
        self.score_posts = 0
        self.line_item_calls = 0
        self.result_calls = 0
        self._record_ids = itertools.count(1)
        self._stopping = threading.Event()
        self.jwks_requests = 0
        self.tool_jwks_fetches = 0
        self.token_requests = 0
        self.jwks_down = False
        self.jwks_delay = 0.0  # seconds the JWKS endpoint waits before answering
        self.jwks_broken = False  # the JWKS endpoint answers 200 with something that is no key set
        self.nrps_report_inactive = False
        self.nrps_offer_differences = False
        self._seq = itertools.count(1)
        self.last_seq = 0
        self._ids = itertools.count(1)
        self._user_ids = itertools.count(1001)
        self._deployment_n = itertools.count(7)
        self._base_url = None
        self._server = None
        from .app import create_app
        self.app = create_app(self)

    # -- serving ---------------------------------------------------------
    def start(self):
        """Serve on 127.0.0.1 on a free port in a daemon thread; returns the base URL."""
        from .server import ServerThread
        if self._server is None:
            self._stopping.clear()
            self._server = ServerThread(self.app)
            self._server.start()
            self._base_url = self._server.url
        return self._base_url

    def stop(self):
        self._stopping.set()  # releases calls hanging in a latency or timeout fault
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self):
        if self._base_url is None:
            raise RuntimeError("platform not started: call start() or set base_url")
        return self._base_url

    @base_url.setter
    def base_url(self, value):
        self._base_url = value.rstrip("/")

    @property
    def auth_login_url(self):
        return self.base_url + "/api/lti/authorize_redirect"

    @property
    def token_url(self):
        return self.base_url + "/login/oauth2/token"

    @property
    def jwks_url(self):
        return self.base_url + "/api/lti/security/jwks"

    def count(self, name, n=1):
        with self.lock:
            setattr(self, name, getattr(self, name) + n)

    def next_id(self):
        """Canvas-style numeric id for assignments, line items and results."""
        with self.lock:
            return next(self._record_ids)

    def hang(self, seconds):
        """Wait ``seconds`` in a request thread; ``stop()`` cuts every wait short."""
        if seconds > 0:
            self._stopping.wait(seconds)

    # -- keys and tokens -------------------------------------------------
    def rotate_key(self):
        """New signing key with a later ISO kid; old keys stay published (section 1)."""
        return self.keys.rotate()

    @property
    def kid(self):
        return self.keys.current_kid

    def revoke_tokens(self):
        """Invalidate every access token issued so far."""
        with self.lock:
            for grant in self.access_tokens.values():
                grant["revoked"] = True

    # -- setup -----------------------------------------------------------
    def register_tool(self, client_id=None, login_url=None, redirect_uris=None,
                      target_link_uri=None, jwks_url=None, deployment_ids=None,
                      privacy_level="public", scopes=None, title="Emulated Tool",
                      custom_fields=None, jwks=None):
        explicit = client_id is not None
        if privacy_level not in C.PRIVACY_LEVELS:
            raise ValueError(f"privacy_level must be one of {C.PRIVACY_LEVELS}")
        while client_id is None or (not explicit and client_id in self.tools):
            client_id = str(10000000000000 + secrets.randbelow(10 ** 9))  # 14 digits
        if deployment_ids is None:
            deployment_ids = [f"{next(self._deployment_n)}:{secrets.token_hex(20)}"]
        tool = Tool(
            client_id=str(client_id), login_url=login_url,
            redirect_uris=list(redirect_uris or ([target_link_uri] if target_link_uri else [])),
            target_link_uri=target_link_uri, jwks_url=jwks_url,
            deployment_ids=list(deployment_ids), privacy_level=privacy_level,
            scopes=list(C.DEFAULT_SCOPES if scopes is None else scopes), title=title,
            custom_fields=dict(custom_fields if custom_fields is not None else {
                "canvas_user_id": "$Canvas.user.id", "canvas_course_id": "$Canvas.course.id"}),
            jwks=jwks)
        with self.lock:
            self.tools[tool.client_id] = tool
        return tool

    def add_course(self, label=None, title=None):
        with self.lock:
            course_id = next(self._ids)
            course = Course(self, course_id, secrets.token_hex(20), label or f"C{course_id}",
                            title or f"Course {course_id}")
            self.courses[course_id] = course
        return course

    def add_user(self, name=None, given_name=None, family_name=None, email=None,
                 sourcedid=None, picture=None, institution_roles=None):
        canvas_id = str(next(self._user_ids))
        name = name or f"User {canvas_id}"
        parts = name.split(None, 1)
        given = given_name if given_name is not None else parts[0]
        family = family_name if family_name is not None else (parts[1] if len(parts) > 1 else "")
        if email is None:
            local = ".".join("".join(ch for ch in p if ch.isalnum()) for p in name.lower().split())
            email = f"{local or 'user'}.{canvas_id}@school.example"
        user = User(
            sub=str(uuid.uuid4()), lti11_legacy_user_id=secrets.token_hex(20),
            login_hint=secrets.token_hex(20), canvas_user_id=canvas_id, name=name,
            given_name=given, family_name=family, email=email,
            picture=picture or f"https://canvas.instructure.com/images/thumbnails/{canvas_id}/avatar.png",
            sourcedid=sourcedid, institution_roles=institution_roles)
        with self.lock:
            self.users[user.sub] = user
        return user

    def _changed(self, course, sub):
        seq = next(self._seq)
        course.changes.append((seq, sub))
        course.version += 1
        self.last_seq = seq

    def enroll(self, course, user, roles=(C.LEARNER,), status="Active"):
        if isinstance(roles, str):
            roles = [roles]
        with self.lock:
            course.enrollments[user.sub] = Enrollment(user, list(roles), status)
            course.removed.pop(user.sub, None)
            self._changed(course, user.sub)

    def set_status(self, course, user, status):
        if status not in ("Active", "Inactive", "Deleted"):
            raise ValueError("status must be Active, Inactive or Deleted")
        with self.lock:
            course.enrollments[user.sub].status = status
            self._changed(course, user.sub)

    def unenroll(self, course, user):
        """Remove the enrollment entirely (what Canvas does on a drop)."""
        with self.lock:
            enrollment = course.enrollments.pop(user.sub)
            course.removed[user.sub] = enrollment
            self._changed(course, user.sub)

    def add_many(self, course, n, role=C.LEARNER):
        """Bulk: ``n`` users enrolled with ``role``; cheap per user (benchmarks)."""
        raw = os.urandom(40 * n).hex()
        users = []
        with self.lock:
            start = next(self._user_ids)
            self._user_ids = itertools.count(start + n)
            for i in range(n):
                cid = str(start + i)
                user = User(str(uuid.uuid4()), raw[80 * i:80 * i + 40], raw[80 * i + 40:80 * i + 80],
                            cid, f"Student {cid}", "Student", cid, f"student.{cid}@school.example",
                            f"https://canvas.instructure.com/images/thumbnails/{cid}/avatar.png",
                            None, None)
                self.users[user.sub] = user
                course.enrollments[user.sub] = Enrollment(user, [role], "Active")
                self._changed(course, user.sub)
                users.append(user)
        return users

    def restrict_link(self, course, rlid, users):
        """Only ``users`` (plus instructors) can see resource link ``rlid`` (NRPS rlid filter)."""
        with self.lock:
            course.links[rlid] = {u if isinstance(u, str) else u.sub for u in users}
            course.version += 1

    def institution_roles(self, user):
        """Institution roles Canvas adds: from any teaching/learning enrollment, or given."""
        if user.institution_roles is not None:
            return list(user.institution_roles)
        teach = learn = False
        for course in list(self.courses.values()):
            e = course.enrollments.get(user.sub)
            if e is None:
                continue
            teach |= any(r in (C.INSTRUCTOR, C.TA) for r in e.roles)
            learn |= C.LEARNER in e.roles
        return ([C.INSTITUTION_INSTRUCTOR] if teach else []) + \
               ([C.INSTITUTION_STUDENT] if learn else [])
