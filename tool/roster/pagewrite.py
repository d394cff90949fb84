"""Writing one NRPS page in a few statements, whatever its size (NRPS 2.0 §2.2 member fields).

Per page: one SELECT of the page's known users, at most three SELECTs to match people not yet
tied to a ``sub`` (same order as on launch, ``matching.py``), one multi-row upsert of new and
changed users, one SELECT and one multi-row upsert of memberships. Unchanged rows are not
written. Status changes of existing members are *returned*, not written: the sync applies them
only after its last page, so a failed run changes no one's status.

A member the database still refuses after cleaning (a value it cannot hold) must not stop the
course: when a page's write fails with a data error, the page's writes are undone and it is
written again member by member, each in its own SAVEPOINT; a member that fails alone is skipped
and named in the result (``PageResult.skipped``), everyone else is stored. The caller commits
after every page that wrote rows or skipped someone, so a page's writes are all its
transaction holds when it starts.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.orm import Session

from ..db import fit, insert_for
from ..lti.claims import ID_MAX, clean
from ..lti.roles import course_roles
from ..models import Membership, Registration, User

log = logging.getLogger(__name__)
USER_FIELDS = ("name", "given_name", "family_name", "email", "picture", "lis_person_sourcedid",
               "lti11_legacy_user_id")
# Claim order for a person the tool knew before their first LTI 1.3 sighting (matching.py).
CLAIM_RULES = ("lti11_legacy_user_id", "lis_person_sourcedid", "email")
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


def normalise(member: dict) -> dict | None:
    """A member entry as the tool stores it; None without a usable ``user_id``.

    The user_id is checked as sent: one with control characters is no LTI user id (core
    §5.3.6, at most 255 characters; a launch refuses such a ``sub``), and cleaning it would
    store someone under an id no launch can carry.
    """
    raw = member.get("user_id")
    sub = clean(raw)
    if not sub or len(sub) > ID_MAX or (isinstance(raw, str) and UNSTORABLE.search(raw)):
        return None
    status = member.get("status") if member.get("status") in ("Active", "Inactive", "Deleted") else "Active"
    roles = member.get("roles")
    roles = [r for r in (text(x) for x in roles[:MAX_ROLES]) if r and len(r) <= ROLE_MAX] \
        if isinstance(roles, list) else []
    profile = fit(User.__table__, {f: text(member.get(f)) for f in USER_FIELDS})
    return {"sub": str(sub), "status": status, "roles": course_roles(roles), "profile": profile}


def write_page(session: Session, registration: Registration, context_id: int,
               raw_members: list[dict], now: datetime) -> PageResult:
    """Store one page; a member that cannot be stored is skipped and named, never fatal."""
    members: dict[str, dict] = {}
    result = PageResult()
    for raw in raw_members:
        member = normalise(raw)
        if member:
            members[member["sub"]] = member  # a person listed twice: the later entry wins
        else:
            result.skipped.append(label(raw.get("user_id")))
    result.members = len(members) + len(result.skipped)
    if not members:
        return result
    sqlite = session.get_bind().dialect.name == "sqlite"
    try:
        if sqlite:  # no SAVEPOINT here: see _restart_for_savepoints
            result.add(_write(session, registration, context_id, members, now))
        else:
            with session.begin_nested():
                result.add(_write(session, registration, context_id, members, now))
    except Exception as exc:
        if not refused_data(exc):
            raise
        log.warning("roster page of context %r refused by the database (%s); writing it member "
                    "by member", context_id, exc.__class__.__name__)
        if sqlite:
            _restart_for_savepoints(session)
        _write_one_by_one(session, registration, context_id, members, now, result)
    return result


def _restart_for_savepoints(session: Session) -> None:
    """SQLite: undo the page's partial writes and take the write lock before any SAVEPOINT.

    The Python driver begins a transaction only before a write, so a SAVEPOINT issued first
    would begin a deferred one that reads and must then upgrade to write; another writer's
    commit in between fails that upgrade at once (SQLITE_BUSY_SNAPSHOT, no busy timeout). For
    that reason an ordinary page takes no SAVEPOINT on SQLite. ``BEGIN IMMEDIATE`` waits for
    the lock like any write; the caller's commit after this page ends it.
    """
    session.rollback()  # only this page's writes: the caller committed everything before
    session.connection().exec_driver_sql("BEGIN IMMEDIATE")


def refused_data(exc: BaseException) -> bool:
    """The database (or its driver) refused a value, as opposed to being unreachable or broken."""
    if isinstance(exc, (DataError, IntegrityError, UnicodeError)):
        return True
    # A bind value the driver could not convert is wrapped before it reaches the database.
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def _write_one_by_one(session: Session, registration: Registration, context_id: int,
                      members: dict[str, dict], now: datetime, result: PageResult) -> None:
    """Each member in its own SAVEPOINT: the ones refused are skipped, the others stored.

    A skipped member keeps what the tool already held for them and still counts as listed, so
    the run does not mark them absent. When every member of a page fails on its own, the fault
    is not in one member's data: the first error is raised and the run fails.
    """
    failures: list[BaseException] = []
    for sub, member in members.items():
        try:
            with session.begin_nested():
                part = _write(session, registration, context_id, {sub: member}, now)
        except Exception as exc:
            if not refused_data(exc):
                raise
            failures.append(exc)
            result.skipped.append(label(sub))
            log.warning("roster member %r of context %r could not be stored; skipped", sub,
                        context_id, exc_info=True)
            known = session.scalar(select(Membership.id).join(User, User.id == Membership.user_id)
                                   .where(Membership.context_id == context_id,
                                          User.registration_id == registration.id, User.sub == sub))
            if known is not None:
                result.membership_ids.append(known)
            continue
        result.add(part)
    if len(members) > 1 and len(failures) == len(members):
        raise failures[0]


def _write(session: Session, registration: Registration, context_id: int,
           members: dict[str, dict], now: datetime) -> PageResult:
    result = PageResult()
    user_ids, written = _write_users(session, registration, members, now)
    result.rows_written += written
    _write_memberships(session, context_id, members, user_ids, now, result)
    return result


def _write_users(session: Session, registration: Registration, members: dict[str, dict],
                 now: datetime) -> tuple[dict[str, int], int]:
    cols = [User.id, User.sub] + [getattr(User, f) for f in USER_FIELDS]
    known = {row.sub: row for row in session.execute(select(*cols).where(
        User.registration_id == registration.id, User.sub.in_(list(members))))}
    written = _claim(session, registration, members, known)
    if written:
        known = {row.sub: row for row in session.execute(select(*cols).where(
            User.registration_id == registration.id, User.sub.in_(list(members))))}
    rows = []
    for sub, member in members.items():
        profile = member["profile"]
        row = known.get(sub)
        if row is not None and not any(v and getattr(row, f) != v for f, v in profile.items()):
            continue
        rows.append({"registration_id": registration.id, "sub": sub, "matched_by": "created",
                     "created_at": now, **profile})
    ids = {sub: row.id for sub, row in known.items()}
    if rows:
        table = User.__table__
        stmt = insert_for(session, table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["registration_id", "sub"],
            # Fields the platform left out (privacy level, facts section 3) keep their value.
            set_={f: func.coalesce(getattr(stmt.excluded, f), table.c[f]) for f in USER_FIELDS})
        # executemany of one cached statement: SQLAlchemy sends it as multi-row INSERTs
        # ("insertmanyvalues") without compiling a new statement for every page.
        for user_id, sub in session.connection().execute(stmt.returning(table.c.id, table.c.sub), rows):
            ids[sub] = user_id
        written += len(rows)
    return ids, written


def _claim(session: Session, registration: Registration, members: dict[str, dict],
           known: dict) -> int:
    """Tie people imported without a ``sub`` to their platform identity, in bulk."""
    waiting = [m for sub, m in members.items() if sub not in known]
    if not waiting:
        return 0
    claims: list[dict] = []
    taken: set[int] = set()
    for rule in CLAIM_RULES:
        if rule == "email" and not registration.matches_by_email:
            continue
        values = {m["profile"][rule]: m for m in waiting if m["profile"].get(rule)}
        if rule == "email":
            values = {k.lower(): m for k, m in values.items()}
        if not values:
            continue
        column = func.lower(User.email) if rule == "email" else getattr(User, rule)
        found = session.execute(select(User.id, column.label("value")).where(
            User.registration_id == registration.id, User.sub.is_(None),
            column.in_(list(values))).order_by(User.id))
        for user_id, value in found:
            member = values.pop(value, None)
            if member is None or user_id in taken:
                continue
            taken.add(user_id)
            claims.append({"uid": user_id, "new_sub": member["sub"], "rule": rule})
        waiting = [m for m in waiting if all(c["new_sub"] != m["sub"] for c in claims)]
    if not claims:
        return 0
    # Only rows still without a sub: a launch claiming the same row at once wins cleanly.
    stmt = (update(User.__table__).where(User.__table__.c.id == bindparam("uid"),
                                         User.__table__.c.sub.is_(None))
            .values(sub=bindparam("new_sub"), matched_by=bindparam("rule")))
    session.connection().execute(stmt, claims)
    return len(claims)


def _write_memberships(session: Session, context_id: int, members: dict[str, dict],
                       user_ids: dict[str, int], now: datetime, result: PageResult) -> None:
    by_user = {user_ids[sub]: m for sub, m in members.items() if sub in user_ids}
    existing = session.execute(
        select(Membership.id, Membership.user_id, Membership.roles, Membership.is_active,
               Membership.status_reason, Membership.last_synced_at)
        .where(Membership.context_id == context_id, Membership.user_id.in_(list(by_user))))
    rows = []
    seen_users = set()
    for mid, user_id, roles, is_active, reason, synced_at in existing:
        member = by_user[user_id]
        seen_users.add(user_id)
        result.membership_ids.append(mid)
        status = member["status"]
        if status == "Active" and not is_active:
            result.reactivate.append(mid)
        elif status != "Active" and (is_active or reason != status):
            result.deactivate.append((mid, status))
        # Written when roles changed, or once when a sync first sees someone who launched.
        if list(roles or []) != member["roles"] or synced_at is None:
            rows.append(_membership_row(context_id, user_id, member, now, new=False))
    for user_id, member in by_user.items():
        if user_id not in seen_users:
            rows.append(_membership_row(context_id, user_id, member, now, new=True))
    if not rows:
        return
    table = Membership.__table__
    stmt = insert_for(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["context_id", "user_id"],
        set_={"roles": stmt.excluded.roles, "last_synced_at": stmt.excluded.last_synced_at})
    for mid, user_id in session.connection().execute(stmt.returning(table.c.id, table.c.user_id), rows):
        if user_id not in seen_users:
            result.membership_ids.append(mid)
    result.rows_written += len(rows)


def _membership_row(context_id: int, user_id: int, member: dict, now: datetime, *, new: bool) -> dict:
    """A new member starts with the platform's status; an existing one keeps its own here."""
    active = member["status"] == "Active" or not new
    return {"context_id": context_id, "user_id": user_id, "roles": member["roles"],
            "is_active": active, "status_reason": None if active else member["status"],
            "inactive_at": None if active else now, "first_seen_at": now, "last_synced_at": now}
