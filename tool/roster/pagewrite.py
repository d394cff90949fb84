"""Writing one NRPS page in a few statements, whatever its size (NRPS 2.0 §2.2 member fields).

Per page: one SELECT of the page's known users, at most three SELECTs to match people not yet
tied to a ``sub`` (same order as on launch, ``matching.py``), one multi-row upsert of new and
changed users, one SELECT and one multi-row upsert of memberships. Unchanged rows are not
written. Status changes of existing members are *returned*, not written: the sync applies them
only after its last page, so a failed run changes no one's status.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from ..db import fit, insert_for
from ..lti.claims import ID_MAX, clean
from ..lti.roles import course_roles
from ..models import Membership, Registration, User

USER_FIELDS = ("name", "given_name", "family_name", "email", "picture", "lis_person_sourcedid",
               "lti11_legacy_user_id")
# Claim order for a person the tool knew before their first LTI 1.3 sighting (matching.py).
CLAIM_RULES = ("lti11_legacy_user_id", "lis_person_sourcedid", "email")


@dataclass
class PageResult:
    membership_ids: list[int] = field(default_factory=list)
    reactivate: list[int] = field(default_factory=list)
    deactivate: list[tuple[int, str]] = field(default_factory=list)
    rows_written: int = 0
    members: int = 0


def normalise(member: dict) -> dict | None:
    """A member entry as the tool stores it; None without a ``user_id``."""
    sub = clean(member.get("user_id"))
    if not sub or len(sub) > ID_MAX:  # not an LTI user id (core §5.3.6: at most 255 characters)
        return None
    status = member.get("status") if member.get("status") in ("Active", "Inactive", "Deleted") else "Active"
    roles = member.get("roles")
    profile = fit(User.__table__, {f: clean(member.get(f)) for f in USER_FIELDS})
    return {"sub": str(sub), "status": status,
            "roles": course_roles(roles) if isinstance(roles, list) else [],
            "profile": profile}


def write_page(session: Session, registration: Registration, context_id: int,
               raw_members: list[dict], now: datetime) -> PageResult:
    members: dict[str, dict] = {}
    for raw in raw_members:
        member = normalise(raw)
        if member:
            members[member["sub"]] = member  # a person listed twice: the later entry wins
    result = PageResult(members=len(members))
    if not members:
        return result
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
