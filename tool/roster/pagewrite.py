"""Writing one NRPS page in a few statements, whatever its size (NRPS 2.0 §2.2 member fields).

Per page (statements in ``pagesql.py``, on the driver's cursor): one SELECT of the page's known
people with their membership in the course; for people not known yet, when the registration
holds anyone without a ``sub``, at most three SELECTs and one UPDATE to tie them to their
platform identity (same order as on launch, ``matching.py``); one upsert of new and changed
users; one upsert of new and changed memberships. What is stored is compared in Python first:
an unchanged member writes nothing, and an unchanged page costs one statement. Status changes
of existing members are *returned*, not written: the sync applies them only after its last
page, so a failed run changes no one's status.

A member the database still refuses after cleaning (a value it cannot hold) must not stop the
course: when a page's write fails with a data error, the page's writes are undone and it is
written again member by member, each in its own SAVEPOINT; a member that fails alone is skipped
and named in the result (``PageResult.skipped``), everyone else is stored. The caller says
whether its transaction already holds earlier pages' writes (``after_writes``): then the page
is written inside a SAVEPOINT, so undoing it keeps them; otherwise undoing it is a rollback.
"""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from ..lti.claims import ID_MAX, clean
from ..lti.roles import course_roles
from ..models import Registration, User
from .pagesql import CLAIM_RULES, USER_FIELDS, PageSql

log = logging.getLogger(__name__)
# Longest text each user field holds: longer values are cut, so they cannot fail a write.
FIELD_LIMITS = tuple(User.__table__.c[f].type.length for f in USER_FIELDS)
FIELD_INDEX = {f: i for i, f in enumerate(USER_FIELDS)}
# C0 and C1 control characters and lone UTF-16 surrogates: PostgreSQL text cannot hold NUL, and
# a lone surrogate (valid JSON: "\ud800") cannot be encoded for either database.
UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]+")
MAX_ROLES = 100  # a person holds a handful of course roles; a longer list is not a roster entry
ROLE_MAX = 500
LABEL_MAX = 64  # how much of a skipped member's user_id is named in the run's result


@dataclass
class PageResult:
    membership_ids: list[int] = field(default_factory=list)
    reactivate: list[int] = field(default_factory=list)
    deactivate: list[tuple[int, str]] = field(default_factory=list)
    rows_written: int = 0
    members: int = 0
    skipped: list[str] = field(default_factory=list)  # labels of the members not stored

    def add(self, other: "PageResult") -> None:
        self.membership_ids += other.membership_ids
        self.reactivate += other.reactivate
        self.deactivate += other.deactivate
        self.rows_written += other.rows_written


def text(value) -> str | None:
    """A member's text field as stored: :func:`clean`, then without control characters."""
    value = clean(value)
    if value is None:
        return None
    value = UNSTORABLE.sub(" ", value).strip()
    return value or None


def label(user_id) -> str:
    """How a skipped member is named to instructors: its user_id in quotes, cleaned and bounded."""
    if isinstance(user_id, (int, float)) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id.strip():
        return "(no user_id)"
    shown = UNSTORABLE.sub("?", user_id.strip())
    return '"' + (shown if len(shown) <= LABEL_MAX else shown[:LABEL_MAX - 1] + "\u2026") + '"'


class Member:
    """One roster entry as the tool stores it; ``profile`` holds ``USER_FIELDS`` in order,
    ``roles_json`` the roles as stored (``json.dumps``). ``roles`` may be shared with other
    members holding the same roles: it is never changed."""
    __slots__ = ("sub", "status", "roles", "roles_json", "profile")

    def __init__(self, sub: str, status: str, roles: list[str], profile: tuple,
                 roles_json: str | None = None) -> None:
        self.sub, self.status, self.roles, self.profile = sub, status, roles, profile
        self.roles_json = json.dumps(roles) if roles_json is None else roles_json


def field_text(value, limit: int | None = None) -> str | None:
    """:func:`text`, cut to ``limit``; printable text (nearly all of it) takes a short way."""
    if value.__class__ is str and value.isprintable():
        # Printable text holds no control character or surrogate: clean() and UNSTORABLE
        # would leave it as it is, apart from the outer blanks.
        value = value.strip()
        if not value or value[0] == "$":
            return None
    else:
        value = text(value)
        if value is None:
            return None
    return value[:limit] if limit is not None and len(value) > limit else value


def _sub_of(raw) -> str | None:
    """The member's ``user_id`` when it is a usable LTI user id, else None.

    Checked as sent: one with control characters is no LTI user id (core §5.3.6, at most 255
    characters; a launch refuses such a ``sub``), and cleaning it would store someone under an
    id no launch can carry.
    """
    if raw.__class__ is str and raw.isprintable():
        sub = raw.strip()
        return sub if sub and sub[0] != "$" and len(sub) <= ID_MAX else None
    sub = clean(raw)
    if not sub or len(sub) > ID_MAX or (isinstance(raw, str) and UNSTORABLE.search(raw)):
        return None
    return str(sub)


FIELD_SPECS = tuple(zip(USER_FIELDS, FIELD_LIMITS))
ROLE_SETS_KEPT = 256  # distinct role lists remembered: a course has a handful


def _roles_of(raw, known: dict) -> tuple[list[str], str]:
    """A member's course roles and their JSON text; a list seen before is not worked again."""
    if raw.__class__ is not list:
        return [], "[]"
    key = tuple(raw) if len(raw) <= 16 and all(r.__class__ is str for r in raw) else None
    found = known.get(key) if key is not None else None
    if found is None:
        roles = course_roles([r for r in map(field_text, raw[:MAX_ROLES])
                              if r and len(r) <= ROLE_MAX])
        found = (roles, json.dumps(roles))
        if key is not None:
            if len(known) >= ROLE_SETS_KEPT:
                known.clear()
            known[key] = found
    return found


# Role lists already worked out, shared by every sync of the process (a dict's get, set and
# clear are each atomic, so threads may share it).
_ROLE_SETS: dict[tuple, tuple[list[str], str]] = {}


def normalise(member: dict) -> Member | None:
    """A member entry as the tool stores it; None without a usable ``user_id``."""
    get = member.get
    sub = _sub_of(get("user_id"))
    if sub is None:
        return None
    status = get("status")
    if status != "Active" and status not in ("Inactive", "Deleted"):
        status = "Active"
    roles, roles_json = _roles_of(get("roles"), _ROLE_SETS)
    profile = []
    for name, limit in FIELD_SPECS:
        value = get(name)
        profile.append(None if value is None else field_text(value, limit))
    return Member(sub, status, roles, tuple(profile), roles_json)


def write_page(session: Session, registration: Registration, context_id: int,
               raw_members: list[dict], now: datetime, *, after_writes: bool = False) -> PageResult:
    """Store one page; a member that cannot be stored is skipped and named, never fatal.

    ``after_writes``: the session's transaction holds earlier pages' writes, not committed yet.
    """
    members: dict[str, Member] = {}
    result = PageResult()
    for raw in raw_members:
        member = normalise(raw)
        if member:
            members[member.sub] = member  # a person listed twice: the later entry wins
        else:
            result.skipped.append(label(raw.get("user_id")))
    result.members = len(members) + len(result.skipped)
    if not members:
        return result
    sql = PageSql.for_session(session)
    keep = sql.keeps_earlier_writes(after_writes)
    try:
        if keep:
            with sql.savepoint():
                result.add(_write(sql, registration, context_id, members, now))
        else:
            result.add(_write(sql, registration, context_id, members, now))
    except Exception as exc:
        if not refused_data(exc):
            raise
        log.warning("roster page of context %r refused by the database (%s); writing it member "
                    "by member", context_id, exc.__class__.__name__)
        if not keep:
            _restart_for_savepoints(session)
            sql = PageSql.for_session(session)
        _write_one_by_one(sql, registration, context_id, members, now, result)
    return result


def _restart_for_savepoints(session: Session) -> None:
    """Undo the page's partial writes; on SQLite, take the write lock before any SAVEPOINT.

    SQLite's Python driver begins a transaction only before a write, so a SAVEPOINT issued
    first would begin a deferred one that reads and must then upgrade to write; another
    writer's commit in between fails that upgrade at once (SQLITE_BUSY_SNAPSHOT, no busy
    timeout). For that reason a page takes a SAVEPOINT there only inside a transaction that
    already writes. ``BEGIN IMMEDIATE`` waits for the lock like any write; the caller's next
    commit ends it.
    """
    session.rollback()  # only this page's writes: nothing else was left uncommitted
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


def refused_data(exc: BaseException) -> bool:
    """The database (or its driver) refused a value, as opposed to being unreachable or broken."""
    if isinstance(exc, (DataError, IntegrityError, UnicodeError)):
        return True
    # A bind value the driver could not convert is wrapped before it reaches the database.
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def _write_one_by_one(sql: PageSql, registration: Registration, context_id: int,
                      members: dict[str, Member], now: datetime, result: PageResult) -> None:
    """Each member in its own SAVEPOINT: the ones refused are skipped, the others stored.

    A skipped member keeps what the tool already held for them and still counts as listed, so
    the run does not mark them absent. When every member of a page fails on its own, the fault
    is not in one member's data: the first error is raised and the run fails.
    """
    failures: list[BaseException] = []
    for sub, member in members.items():
        try:
            with sql.savepoint():
                part = _write(sql, registration, context_id, {sub: member}, now)
        except Exception as exc:
            if not refused_data(exc):
                raise
            failures.append(exc)
            result.skipped.append(label(sub))
            log.warning("roster member %r of context %r could not be stored; skipped", sub,
                        context_id, exc_info=True)
            known = sql.known(registration.id, context_id, [sub])
            if known and known[0][KNOWN_MEMBERSHIP] is not None:
                result.membership_ids.append(known[0][KNOWN_MEMBERSHIP])
            continue
        result.add(part)
    if len(members) > 1 and len(failures) == len(members):
        raise failures[0]


# Positions in a row of ``PageSql.known``.
KNOWN_PROFILE = slice(2, 2 + len(USER_FIELDS))
KNOWN_MEMBERSHIP = 2 + len(USER_FIELDS)


def _write(sql: PageSql, registration: Registration, context_id: int,
           members: dict[str, Member], now: datetime) -> PageResult:
    result = PageResult()
    known = {row[1]: row for row in sql.known(registration.id, context_id, list(members))}
    if len(known) < len(members) and sql.has_unclaimed(registration.id):
        claimed = _claim(sql, registration, [m for sub, m in members.items() if sub not in known])
        if claimed:
            result.rows_written += claimed
            known = {row[1]: row for row in sql.known(registration.id, context_id, list(members))}
    user_ids = {sub: row[0] for sub, row in known.items()}
    result.rows_written += _write_users(sql, registration.id, members, known, user_ids, now)
    _write_memberships(sql, context_id, members, known, user_ids, now, result)
    return result


def _claim(sql: PageSql, registration: Registration, waiting: list[Member]) -> int:
    """Tie people imported without a ``sub`` to their platform identity, in bulk."""
    claims: list[tuple[str, str, int]] = []  # (new sub, rule, user id)
    taken: set[int] = set()
    for rule in CLAIM_RULES:
        if rule == "email" and not registration.matches_by_email:
            continue
        index = FIELD_INDEX[rule]
        values = {m.profile[index]: m for m in waiting if m.profile[index]}
        if rule == "email":
            values = {k.lower(): m for k, m in values.items()}
        if not values:
            continue
        for user_id, value in sql.claim_candidates(registration.id, rule, list(values)):
            member = values.pop(value, None)
            if member is None or user_id in taken:
                continue
            taken.add(user_id)
            claims.append((member.sub, rule, user_id))
        claimed = {sub for sub, _rule, _user in claims}
        waiting = [m for m in waiting if m.sub not in claimed]
    if not claims:
        return 0
    # Only rows still without a sub: a launch claiming the same row at once wins cleanly.
    sql.claim(claims)
    return len(claims)


def _profile_changed(stored: tuple, profile: tuple) -> bool:
    """A field the platform sent that differs from the stored one (a field left out keeps)."""
    if stored == profile:
        return False
    return any(v is not None and s != v for s, v in zip(stored, profile))


def _write_users(sql: PageSql, registration_id: int, members: dict[str, Member], known: dict,
                 user_ids: dict[str, int], now: datetime) -> int:
    """New people inserted, changed ones updated; their ids added to ``user_ids``."""
    rows = []
    for sub, member in members.items():
        row = known.get(sub)
        if row is None or _profile_changed(row[KNOWN_PROFILE], member.profile):
            rows.append((sub, *member.profile))
    if not rows:
        return 0
    written = sql.upsert_users(registration_id, now, rows)
    for user_id, sub in written:
        user_ids[sub] = user_id
    missing = [row[0] for row in rows if row[0] not in user_ids]
    if missing:  # already as sent: another writer (a launch) stored the same values meanwhile
        for row in sql.known(registration_id, 0, missing):
            user_ids[row[1]] = row[0]
    return len(written)


def _same_roles(stored, member: Member) -> bool:
    """Stored roles (JSON text on SQLite, a list on PostgreSQL) equal to the member's."""
    if isinstance(stored, str):
        return stored == member.roles_json or json.loads(stored) == member.roles
    return list(stored or []) == member.roles


def _write_memberships(sql: PageSql, context_id: int, members: dict[str, Member], known: dict,
                       user_ids: dict[str, int], now: datetime, result: PageResult) -> None:
    rows = []
    new_users = set()
    for sub, member in members.items():
        user_id = user_ids.get(sub)
        if user_id is None:
            continue
        row = known.get(sub)
        mid = row[KNOWN_MEMBERSHIP] if row is not None else None
        if mid is None:
            new_users.add(user_id)
            # A new member starts with the platform's status.
            active = member.status == "Active"
            rows.append((user_id, member.roles_json, active, None if active else member.status,
                         None if active else now))
            continue
        roles, is_active, reason, synced_at = row[KNOWN_MEMBERSHIP + 1:]
        result.membership_ids.append(mid)
        status = member.status
        if status == "Active":
            if not is_active:
                result.reactivate.append(mid)
        elif is_active or reason != status:
            result.deactivate.append((mid, status))
        # Written when roles changed, or once when a sync first sees someone who launched; an
        # existing member keeps their own status here (see the module's docstring).
        if synced_at is None or not _same_roles(roles, member):
            rows.append((user_id, member.roles_json, True, None, None))
    if not rows:
        return
    written = sql.upsert_memberships(context_id, now, rows)
    result.rows_written += len(written)
    for mid, user_id in written:
        if user_id in new_users:
            result.membership_ids.append(mid)
            new_users.discard(user_id)
    if new_users:  # stored meanwhile by a launch, already as the platform says
        result.membership_ids += [mid for mid, _user in sql.membership_ids(context_id, list(new_users))]
