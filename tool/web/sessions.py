"""The page session after a launch: a server-side record, and the signed reference pages carry.

Canvas shows the tool in an iframe and Safari blocks third-party cookies there, so pages carry
``?t=<reference>`` (forms a hidden field, scripts the ``X-Page-Token`` header) instead of a
cookie. The reference is the random key of a :class:`~tool.models.PageSession` row signed with
SECRET_KEY: it holds nothing else, and stays the same for the whole life of the session.

Every request that carries one loads the row with the user, course and membership behind it
(one query) and checks them, so access ends at once when the record or the enrolment changes:

- the session ends at an absolute time counted from the launch (``SESSION_LIFETIME``); page
  views never extend it. Removing a registration deletes its sessions (ON DELETE CASCADE).
- instructor pages need an active membership with a staff role in the session's course, or an
  institution/system administrator role carried by the launch itself (LTI core §A.2.1, §A.2.2:
  an account admin testing the install is usually not enrolled, and a roster sync marks them
  absent);
- student pages need an active membership when the session has a course.

Several sessions per person may live at once (course navigation and an assignment in two tabs).
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import random
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from urllib.parse import urlencode, urlsplit

from flask import after_this_request, current_app, g, request
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ..db import db
from ..driver import Statement, driver, read_json, read_time
from ..lti import Launch, deep_linking, roles
from ..errors import AccessDenied, SessionExpired
from ..models import Context, Membership, PageSession, Registration, User, utcnow
from ..signing import BadSignature, SignedValue, signed_value

log = logging.getLogger("tool.web")

SALT = "page-session-v2"
MAX_REFERENCE = 200  # a reference is ~70 characters; anything longer is not one of ours
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
# Expired rows are kept a day (an old link then still says "ended"), then deleted in small batches.
KEEP_EXPIRED = timedelta(days=1)
SWEEP_BATCH = 500
SWEEP_CHANCE = 0.05


@dataclass(frozen=True)
class PageRecord:
    """A page session row as plain values (see :class:`~tool.models.PageSession`)."""

    id: int
    user_id: int
    registration_id: int
    context_id: int | None
    resource_link_id: int | None
    view: str
    roles: list
    frame_origins: list
    deep_linking: dict | None
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class Person:
    """What the pages show of the session's user."""

    id: int
    sub: str | None
    name: str | None
    given_name: str | None
    family_name: str | None
    email: str | None

    display_name = User.display_name


@dataclass(frozen=True)
class Course:
    """What the pages show of the session's course."""

    id: int
    registration_id: int
    lti_context_id: str
    label: str | None
    title: str | None

    display_name = Context.display_name


@dataclass(frozen=True)
class Enrolment:
    """The session user's membership in the session's course, as the access checks read it."""

    id: int
    roles: list
    is_active: bool


@dataclass(frozen=True)
class Page:
    """What a request may rely on after its session was checked.

    ``record``, ``person``, ``course`` and ``enrolment`` are read with the session in one
    statement; ``user``, ``context`` and ``membership`` are the ORM rows, loaded when a view
    first asks for them (the home pages never do).
    """

    record: PageRecord
    person: Person
    course: Course | None
    enrolment: Enrolment | None
    reference: str  # the signed reference, for links and hidden fields (``t`` in templates)

    @cached_property
    def user(self) -> User:
        return db.session.get(User, self.record.user_id)

    @cached_property
    def context(self) -> Context | None:
        return db.session.get(Context, self.record.context_id) if self.course is not None else None

    @cached_property
    def membership(self) -> Membership | None:
        return db.session.get(Membership, self.enrolment.id) if self.enrolment is not None else None

    @property
    def user_id(self) -> int:
        return self.record.user_id

    @property
    def registration_id(self) -> int:
        return self.record.registration_id

    @property
    def context_id(self) -> int | None:
        return self.record.context_id

    @property
    def resource_link_id(self) -> int | None:
        return self.record.resource_link_id

    @property
    def view(self) -> str:
        return self.record.view

    @property
    def roles(self) -> list[str]:
        return list(self.record.roles or ())

    @property
    def is_instructor(self) -> bool:
        return self.record.view == "instructor"

    @property
    def is_admin(self) -> bool:
        return roles.is_admin(self.record.roles)


# -- the reference ---------------------------------------------------------------------------

def _signer() -> SignedValue:
    """The signer for this app's SECRET_KEY (apps in one process may differ)."""
    return signed_value(current_app.config["SECRET_KEY"], SALT, hashlib.sha256)


def reference(key: str) -> str:
    """The signed reference to a session key (deterministic: the same for the session's life)."""
    return _signer().sign(key)


def _key_from(ref: str) -> str:
    if len(ref) > MAX_REFERENCE:
        raise BadSignature("reference too long")
    return _signer().unsign(ref)


# -- starting a session at launch ------------------------------------------------------------

def origin(url) -> str | None:
    """``scheme://host[:port]`` of a URL allowed to frame the pages, or None.

    Only https, or http on a loopback host (a local Canvas or the emulator). The host is checked
    strictly because it goes into a Content-Security-Policy header, where a space or ``;``
    would add directives.
    """
    if not url or not isinstance(url, str):
        return None
    return _origin_of(url)


@lru_cache(maxsize=1024)  # a handful of platforms' URLs, each checked on every launch
def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if not host or scheme not in ("https", "http"):
        return None
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        return None
    if ":" in host:  # an IPv6 literal
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        host = f"[{host}]"
    elif not _HOST.match(host):
        return None
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def frame_origins(platform_url: str | None, issuer: str | None, return_url: str | None) -> list[str]:
    """Origins that may frame this session's pages: the Canvas URL the admin gave, the issuer,
    and the launch's ``launch_presentation.return_url`` (LTI core §5.4.4; on Canvas, the
    school's own domain when it has one)."""
    out: list[str] = []
    for url in (platform_url, issuer, return_url):
        found = origin(url)
        if found and found not in out:
            out.append(found)
    return out


_INSERT = Statement(
    "INSERT INTO page_sessions (key, user_id, registration_id, context_id, resource_link_id, view, "
    "roles, frame_origins, deep_linking, created_at, expires_at, revoked_at) VALUES (:key, :user_id, "
    ":registration_id, :context_id, :resource_link_id, :view, :roles, :frame_origins, :deep_linking, "
    ":created_at, :expires_at, NULL)")


def start(session: Session, launch: Launch, user_id: int, context_id: int | None,
          resource_link_id: int | None, view: str) -> str:
    """Record a page session for a verified launch; returns the reference pages carry.

    Written in the launch's transaction: the caller commits it with the spent nonce.
    """
    registration = launch.registration or session.get(Registration, launch.registration_id)
    now = utcnow()
    key = secrets.token_urlsafe(32)
    run = driver(session)
    run.execute(_INSERT, {
        "key": key, "user_id": user_id, "registration_id": launch.registration_id,
        "context_id": context_id, "resource_link_id": resource_link_id, "view": view,
        "roles": run.json(list(launch.roles or ())),
        "frame_origins": run.json(frame_origins(getattr(registration, "platform_url", None),
                                                launch.issuer, launch.return_url)),
        "deep_linking": run.json(deep_linking.session_record(launch)), "created_at": run.time(now),
        "expires_at": run.time(now + timedelta(seconds=current_app.config["SESSION_LIFETIME"]))})
    if random.random() < SWEEP_CHANCE:  # keeps the table small without a dedicated sweeper
        sweep(session, now)
    return reference(key)


def sweep(session: Session, now=None) -> int:
    """Delete a bounded batch of sessions that ended more than a day ago; the number deleted."""
    cutoff = (now or utcnow()) - KEEP_EXPIRED
    table = PageSession.__table__
    old = select(table.c.id).where(table.c.expires_at < cutoff).limit(SWEEP_BATCH).scalar_subquery()
    return session.execute(delete(table).where(table.c.id.in_(old))).rowcount or 0


def page_url(view: str, ref: str) -> str:
    """The absolute address of a view, built from TOOL_BASE_URL only: request headers
    (``X-Forwarded-Host``, ``X-Forwarded-Prefix``) can never change where a launch lands."""
    return f"{current_app.config['TOOL_BASE_URL']}/{view}?{urlencode({'t': ref})}"


# -- checking a request ----------------------------------------------------------------------

def _ended(code: str) -> SessionExpired:
    # Only a record the tool holds proves a session existed; a forged or unknown reference
    # must not be told that "its" session ended.
    reason = ("Your session with the tool has ended." if code == "session_ended"
              else "This link does not open a session with the tool.")
    return SessionExpired(reason, hint="Sign in through your course. Launch the tool again from it.",
                          code=code)


def _no_store(response):
    # The page shows personal data and its URL carries the reference: never keep a copy.
    response.headers["Cache-Control"] = "no-store"
    return response


def current() -> Page:
    """The checked session of this request (revoked, expired, unknown and forged: 401)."""
    after_this_request(_no_store)
    ref = request.args.get("t") or request.form.get("t") or request.headers.get("X-Page-Token")
    if not ref:
        raise SessionExpired("This page opens from your course.",
                             hint="Sign in through your course. Launch the tool from it.",
                             code="no_session")
    try:
        key = _key_from(ref)
    except BadSignature:
        log.info("page reference refused (bad signature) on %r", request.path)
        raise _ended("session_invalid") from None
    page = _load(key, ref)
    if page is None:
        raise _ended("session_unknown")
    record = page.record
    if record.revoked_at is not None or record.expires_at <= utcnow():
        raise _ended("session_ended")
    # Frame only in the platform this session came from (CSP frame-ancestors, set app-wide).
    g.frame_ancestors = list(record.frame_origins or ())
    return page


# Session, user, course and membership in one statement.
_RECORD_COLUMNS = tuple(PageRecord.__dataclass_fields__)
_PERSON_COLUMNS = tuple(Person.__dataclass_fields__)
_COURSE_COLUMNS = tuple(Course.__dataclass_fields__)
_LOAD = Statement(
    "SELECT " + ", ".join([*(f"p.{c}" for c in _RECORD_COLUMNS), *(f"u.{c}" for c in _PERSON_COLUMNS),
                           *(f"c.{c}" for c in _COURSE_COLUMNS), "m.id", "m.roles", "m.is_active"]) +
    " FROM page_sessions p JOIN users u ON u.id = p.user_id"
    " LEFT JOIN contexts c ON c.id = p.context_id"
    " LEFT JOIN memberships m ON m.context_id = p.context_id AND m.user_id = p.user_id"
    " WHERE p.key = :key")
_R, _P, _C = len(_RECORD_COLUMNS), len(_PERSON_COLUMNS), len(_COURSE_COLUMNS)


def _load(key: str, ref: str) -> Page | None:
    row = db.reader().read(_LOAD, {"key": key}).fetchone()
    if row is None:
        return None
    (id_, user_id, registration_id, context_id, link_id, view, held_roles, origins, dl,
     created_at, expires_at, revoked_at) = row[:_R]
    record = PageRecord(id_, user_id, registration_id, context_id, link_id, view,
                        read_json(held_roles) or [], read_json(origins) or [], read_json(dl),
                        read_time(created_at), read_time(expires_at), read_time(revoked_at))
    person = Person(*row[_R:_R + _P])
    course = Course(*row[_R + _P:_R + _P + _C]) if row[_R + _P] is not None else None
    m_id, m_roles, m_active = row[_R + _P + _C:]
    enrolment = Enrolment(m_id, read_json(m_roles) or [], bool(m_active)) if m_id is not None else None
    return Page(record=record, person=person, course=course, enrolment=enrolment, reference=ref)


def _enrolment_denied(page: Page) -> AccessDenied | None:
    if page.enrolment is None or not page.enrolment.is_active:
        return AccessDenied("Your enrolment in this course is no longer active.",
                            hint="If this is a mistake, ask the course's instructor or your "
                                 "administrator; then launch the tool again from the course.",
                            code="enrolment_inactive")
    return None


def require_member() -> Page:
    """Student pages: the session, and an active membership when the session has a course."""
    page = current()
    if page.context_id is not None and not page.is_admin:
        denied = _enrolment_denied(page)
        if denied:
            raise denied
    return page


def require_instructor() -> Page:
    """Instructor pages: a session started as instructor whose staff standing still holds."""
    page = current()
    if not page.is_instructor:
        raise AccessDenied("This page is for instructors of the course.",
                           hint="Launch the tool from your course as an instructor or TA.",
                           code="instructors_only")
    if page.is_admin:
        return page  # an administrator role carried by the launch itself
    if page.context_id is None:
        if roles.is_staff(page.roles):
            return page
        raise AccessDenied("This page is for instructors of the course.", code="instructors_only")
    denied = _enrolment_denied(page)
    if denied:
        raise denied
    if not roles.is_staff(page.enrolment.roles):
        raise AccessDenied("Your role in this course is no longer instructor or TA.",
                           hint="Launch the tool again from your course to open your current view.",
                           code="no_longer_staff")
    return page
