"""Registrations and deployments kept in memory, and the version number that says when they changed.

Every launch and login needs its registration and deployment; reading them from the database
each time costs more than the rest of the lookup work together. Each process keeps them as
plain frozen values (never ORM rows, which belong to one session and one thread) and reads one
number per launch, ``registry_version.version``: every write to ``registrations`` or
``deployments`` adds one to it in the same transaction, so a process on any machine sees the
change on its very next launch and drops what it held. A login, which writes nothing and whose
every fact the launch checks again, goes on a number this process read in the last second.

What bumps the number:

- ``bump(session)``, called by the write functions in ``tool/registrations.py`` and
  ``tool/platforms.py`` (Core statements that the ORM does not see);
- any ORM flush that adds, changes or deletes a ``Registration`` or ``Deployment`` in any
  session (a safety net for code that edits rows directly).

A lookup that misses (an issuer or deployment not held) always asks the database, so a
registration added by another process launches at once; only what was found is held.
"""
from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from itertools import chain

from sqlalchemy import bindparam, event, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .driver import Statement, driver
from .models import Deployment, Registration, RegistryVersion


@dataclass(frozen=True)
class RegistrationRecord:
    """A registration as plain values: safe to share between threads and sessions."""

    id: int
    name: str
    issuer: str
    client_id: str
    auth_login_url: str
    auth_token_url: str
    key_set_url: str
    auth_audience: str | None
    platform_url: str | None
    accepts_any_deployment: bool
    matches_by_email: bool
    source: str


@dataclass(frozen=True)
class DeploymentRecord:
    id: int
    registration_id: int
    deployment_id: str
    is_auto_recorded: bool


_REG_COLUMNS = [Registration.__table__.c[name] for name in RegistrationRecord.__dataclass_fields__]
_DEP_COLUMNS = [Deployment.__table__.c[name] for name in DeploymentRecord.__dataclass_fields__]

# Built once: building a statement costs more than running it.
_VERSION = Statement("SELECT version FROM registry_version WHERE id = 1")
_BUMP = (update(RegistryVersion.__table__).where(RegistryVersion.__table__.c.id == 1)
         .values(version=RegistryVersion.__table__.c.version + 1))
_OF_ISSUER = (select(*_REG_COLUMNS).where(Registration.__table__.c.issuer == bindparam("issuer"))
              .order_by(Registration.__table__.c.id))
_DEPLOYMENT = select(*_DEP_COLUMNS).where(
    Deployment.__table__.c.registration_id == bindparam("registration_id"),
    Deployment.__table__.c.deployment_id == bindparam("deployment_id"))


def registration_record(row) -> RegistrationRecord:
    """A record from a Registration row (ORM object or result row)."""
    return RegistrationRecord(*(getattr(row, name) for name in RegistrationRecord.__dataclass_fields__))


def read_version(session: Session) -> int | None:
    """The registry's version; None when the counter row is missing (then nothing is held)."""
    row = driver(session).read(_VERSION).fetchone()
    return row[0] if row is not None else None


def bump(session: Session) -> None:
    """Tell every process that registrations or deployments changed (commits with the caller)."""
    if session.connection().execute(_BUMP).rowcount == 0:
        # A database made without the migrations' first row: make it, so later bumps count.
        session.add(RegistryVersion(id=1, version=1))
        session.flush()


class RegistryCache:
    """One database's registrations by issuer and deployments by (registration, id).

    Entries are tagged with the version they were read under and kept only while the version
    read by the current request is the same; a request that reads another version empties the
    cache first. Readers never see a half-made entry: values are immutable and each dict
    assignment is atomic.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.version: int | None = None
        self.read_at = 0.0  # time.monotonic() of the last version read
        self._issuers: dict[str, tuple[RegistrationRecord, ...]] = {}
        self._deployments: dict[tuple[int, str], DeploymentRecord] = {}
        self.loads = 0  # database reads made on a miss (tests and benchmarks look)

    def view(self, session: Session, max_age: float = 0.0) -> "RegistryView":
        """Read the version (one small statement) and answer lookups for this request.

        With ``max_age``, a version this process read less than that many seconds ago stands
        in for reading it again (the login, which writes nothing and proves nothing: the
        launch after it reads the version afresh).
        """
        if max_age and self.version is not None and time.monotonic() - self.read_at < max_age:
            return RegistryView(self, session, self.version)
        version = read_version(session)
        self.read_at = time.monotonic()
        self.observe(version)
        return RegistryView(self, session, version)

    def held(self, session: Session) -> "RegistryView | None":
        """A view at the version this process holds, reading nothing; None when none is held."""
        version = self.version
        return RegistryView(self, session, version) if version is not None else None

    def observe(self, version: int | None) -> bool:
        """Take note of a version read elsewhere; True when it is the one held."""
        if version is None:
            return False
        if version != self.version:
            with self._lock:
                if version != self.version:
                    self._issuers, self._deployments = {}, {}
                    self.version = version
            return False
        return True

    def _keep(self, version: int | None, store: str, key, value) -> None:
        if version is None:
            return
        with self._lock:
            if version == self.version:
                getattr(self, store)[key] = value


class RegistryView:
    """Lookups for one request, at the version that request read."""

    def __init__(self, cache: RegistryCache, session: Session, version: int | None) -> None:
        self.cache = cache
        self.session = session
        self.version = version

    def _current(self) -> bool:
        return self.version is not None and self.version == self.cache.version

    def of_issuer(self, issuer: str, fresh: bool = False) -> tuple[RegistrationRecord, ...]:
        """Every registration of one issuer, oldest first (``fresh``: read from the database)."""
        if self._current() and not fresh:
            found = self.cache._issuers.get(issuer)
            if found is not None:
                return found
        self.cache.loads += 1
        rows = self.session.connection().execute(_OF_ISSUER, {"issuer": issuer}).all()
        found = tuple(RegistrationRecord(*row) for row in rows)
        if found:
            self.cache._keep(self.version, "_issuers", issuer, found)
        return found

    def find(self, issuer: str, client_id: str) -> RegistrationRecord | None:
        found = next((r for r in self.of_issuer(issuer) if r.client_id == client_id), None)
        if found is None:  # a client added since the issuer was held: a miss asks the database
            found = next((r for r in self.of_issuer(issuer, fresh=True) if r.client_id == client_id), None)
        return found

    def find_for_login(self, issuer: str, client_id: str | None) -> RegistrationRecord | None:
        """As ``registrations.find_for_login``: the issuer's only registration when no client id."""
        if client_id:
            return self.find(issuer, client_id)
        # Whether the issuer has exactly one client is read afresh (Canvas always sends one).
        found = self.of_issuer(issuer, fresh=True)
        return found[0] if len(found) == 1 else None

    def deployment(self, registration_id: int, deployment_id: str) -> DeploymentRecord | None:
        key = (registration_id, deployment_id)
        if self._current():
            found = self.cache._deployments.get(key)
            if found is not None:
                return found
        self.cache.loads += 1
        row = self.session.connection().execute(
            _DEPLOYMENT, {"registration_id": registration_id, "deployment_id": deployment_id}).first()
        if row is None:
            return None
        found = DeploymentRecord(*row)
        self.cache._keep(self.version, "_deployments", key, found)
        return found


_caches: "weakref.WeakKeyDictionary[Engine, RegistryCache]" = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(session: Session) -> RegistryCache:
    """The cache of the database ``session`` is bound to (one per engine: tests run several)."""
    engine = session.get_bind()
    engine = getattr(engine, "engine", engine)
    cache = _caches.get(engine)
    if cache is None:
        with _caches_lock:
            cache = _caches.setdefault(engine, RegistryCache())
    return cache


def held_or_read(session: Session) -> RegistryView:
    """The registry at the version this process holds (no statement), or read afresh when it
    holds none. The caller must confirm the version later with :func:`confirm`."""
    cache = cache_for(session)
    return cache.held(session) or cache.view(session)


def confirm(view: RegistryView, version: int | None) -> bool:
    """Whether ``version``, read by the caller's transaction, is the one ``view`` answered at."""
    return view.cache.observe(version) and view.version == version


def view(session: Session, max_age: float = 0.0) -> RegistryView:
    """This request's registry: one statement (the version), then lookups from memory; with
    ``max_age``, none when this process read the version that recently."""
    return cache_for(session).view(session, max_age)


# -- the ORM safety net ----------------------------------------------------------------------

_WATCHED = (Registration, Deployment)


@event.listens_for(Session, "before_flush")
def _note_registry_writes(session: Session, _context, _instances) -> None:
    if session.info.get("registry_changed"):
        return
    for obj in chain(session.new, session.deleted, session.dirty):
        if isinstance(obj, _WATCHED) and (obj not in session.dirty or session.is_modified(obj)):
            session.info["registry_changed"] = True
            return


@event.listens_for(Session, "after_flush")
def _bump_after_registry_writes(session: Session, _context) -> None:
    if session.info.pop("registry_changed", False):
        if session.connection().execute(_BUMP).rowcount == 0:
            session.connection().execute(RegistryVersion.__table__.insert().values(id=1, version=1))
