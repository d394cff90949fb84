"""Plain records the platform keeps: tools, courses, users, enrollments, launches, faults.

Identifier shapes follow the facts sheet, section 3: ``sub`` a UUID, context ids,
``login_hint`` and ``lti11_legacy_user_id`` 40-hex strings, Canvas numeric ids,
deployment ids ``"N:<40 hex>"``.
"""

import threading
from dataclasses import dataclass, field

from .constants import MESSAGE_TYPE


@dataclass
class Tool:
    """A developer key plus its deployments (sections 1, 4)."""

    client_id: str
    login_url: str
    redirect_uris: list
    target_link_uri: str
    jwks_url: str
    deployment_ids: list
    privacy_level: str
    scopes: list
    title: str = "Emulated Tool"
    custom_fields: dict = field(default_factory=dict)
    jwks: dict = None  # a static public_jwk set instead of jwks_url (Canvas: one of the two)


@dataclass(eq=False, slots=True)
class User:
    """A Canvas user as the LTI side sees it."""

    sub: str
    lti11_legacy_user_id: str
    login_hint: str
    canvas_user_id: str
    name: str
    given_name: str
    family_name: str
    email: str
    picture: str
    sourcedid: str
    institution_roles: list  # None: derived from enrollments (section 3)


@dataclass(eq=False, slots=True)
class Enrollment:
    user: User
    roles: list
    status: str  # "Active" | "Inactive" | "Deleted"


class Course:
    """A Canvas course: the LTI context with its roster and NRPS change log (section 7)."""

    def __init__(self, platform, course_id, context_id, label, title):
        self.platform = platform
        self.course_id = course_id
        self.context_id = context_id
        self.label = label
        self.title = title
        self.enrollments = {}  # sub -> Enrollment, insertion order = roster order
        self.changes = []  # (seq, sub) appended on every enrollment change
        self.removed = {}  # sub -> User, for differences of dropped members
        self.links = {}  # resource link id -> set of subs allowed, or None (everyone)
        self.version = 0  # bumps on every change; NRPS caches key on it

    @property
    def memberships_url(self):
        return f"{self.platform.base_url}/api/lti/courses/{self.course_id}/names_and_roles"

    @property
    def lineitems_url(self):
        return f"{self.platform.base_url}/api/lti/courses/{self.course_id}/line_items"

    def __repr__(self):
        return f"<Course {self.course_id} {self.label!r} members={len(self.enrollments)}>"


class Launch:
    """A pending launch: login initiation params plus everything to build the id_token."""

    def __init__(self, platform, launch_id, tool, user, course, deployment_id, claims,
                 overrides, remove, options):
        self.platform = platform
        self.id = launch_id
        self.tool = tool
        self.user = user
        self.course = course
        self.deployment_id = deployment_id
        self.claims = claims  # template (overrides already applied); base claims added at auth
        self.overrides = overrides or {}
        self.remove = tuple(remove or ())
        self.header = options.get("header")
        self.alg = options.get("alg", "RS256")
        self.sign_with = options.get("sign_with")
        self.clock_offset = options.get("clock_offset", 0)
        self.tamper = options.get("tamper", False)
        self.raw_token = options.get("raw_token")
        self.login_params = {}
        self.id_tokens = []  # every id_token issued for this launch
        self.auth_requests = []  # the auth request params the tool sent
        self.max_uses = None  # set an int to refuse replays after that many auth requests

    @property
    def auth_url(self):
        return self.platform.auth_login_url

    @property
    def message_type(self):
        return self.claims.get(MESSAGE_TYPE)

    def __repr__(self):
        return f"<Launch {self.id} {self.message_type} user={self.user.name!r}>"


class Faults:
    """Fault switches for the service endpoints (section 9). Thread-safe.

    Countdowns (each request consumes one; N failures, then success): ``throttle_403``
    (Canvas's 403 text), ``status_429`` (with ``Retry-After: 1``), ``status_5xx`` (502,
    503 alternating), ``status_500``, ``status_503``, ``timeout`` (the call hangs
    ``hang_seconds``, is not applied, then answers 504), ``timeout_after_apply`` (applied,
    then hangs: the client times out although the platform acted). ``fail_next(*kinds)``
    queues faults in order (kinds: an HTTP status, ``"throttle"``, ``"timeout"``,
    ``"timeout_after_apply"``); queued ones fire before the countdowns.
    Persistent: ``delay`` (seconds before every answer), ``fail_at_page`` (NRPS page k
    answers 500 while set), ``rate_limit_remaining`` (reported in ``X-Rate-Limit-Remaining``
    while the throttle bucket is off), ``hang_seconds``.
    """

    COUNTERS = ("throttle_403", "status_429", "status_5xx", "status_500", "status_503",
                "timeout", "timeout_after_apply")
    KINDS = {"throttle_403": "throttle", "status_429": 429, "status_5xx": "5xx",
             "status_500": 500, "status_503": 503, "timeout": "timeout",
             "timeout_after_apply": "timeout_after_apply"}

    def __init__(self):
        object.__setattr__(self, "_lock", threading.Lock())
        self.reset()

    def reset(self):
        with self._lock:
            for name in self.COUNTERS:
                object.__setattr__(self, name, 0)
            object.__setattr__(self, "delay", 0)
            object.__setattr__(self, "fail_at_page", None)
            object.__setattr__(self, "rate_limit_remaining", 600.0)
            object.__setattr__(self, "hang_seconds", 30.0)
            object.__setattr__(self, "_served_5xx", 0)
            object.__setattr__(self, "_queue", [])

    def __setattr__(self, name, value):
        with self._lock:
            object.__setattr__(self, name, value)

    def take(self, name):
        """Consume one unit of counter ``name``; True if a fault should fire."""
        with self._lock:
            n = getattr(self, name)
            if n and n > 0:
                object.__setattr__(self, name, n - 1)
                return True
            return False

    def fail_next(self, *kinds):
        """Queue faults for the next requests, in order: ``fail_next(503, "timeout", 429)``."""
        with self._lock:
            self._queue.extend(kinds)

    def next_fault(self):
        """The fault this request gets (a kind as in ``fail_next``), or None."""
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
        for name in self.COUNTERS:
            if self.take(name):
                return self.KINDS[name]
        return None

    def next_5xx(self):
        with self._lock:
            served = self._served_5xx
            object.__setattr__(self, "_served_5xx", served + 1)
            return 502 if served % 2 == 0 else 503
