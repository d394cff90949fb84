"""Provisioning on launch: user, course, membership, resource link and service URLs, in one transaction.

Runs after ``lti.validate_launch``, in the launch's transaction (the web layer commits once).
Every write is an upsert, so two launches of the same new person at the same moment leave one
row of each. A returning person costs one read: the user, course, membership and link are read
together and compared with the launch, and only what differs is written. "Last launched" times
are kept to the hour (``TOUCH_EVERY``), except that a launch during a roster sync of the course
always records itself: the sync must not drop someone who launched while it read the roster.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func
from sqlalchemy.orm import Session

from .. import registrations
from ..db import fit, insert_for
from ..driver import Statement, driver, read_json, read_time
from ..lti import Launch, roles
from ..models import Context, Membership, Registration, ResourceLink, User, utcnow
from .matching import PROFILE_FIELDS, find_or_create_user

TOUCH_EVERY = timedelta(hours=1)
UNKNOWN = object()


@dataclass
class Provisioned:
    user_id: int
    context_id: int | None
    membership_id: int | None
    resource_link_id: int | None
    # The assessment the resource link opens, as read with it (None: none), or UNKNOWN when the
    # link was written here and not read: the landing step then looks at the link itself.
    link_assessment_id: object = field(default=None, compare=False)


def profile_from_launch(launch: Launch) -> dict:
    return {"name": launch.name, "given_name": launch.given_name, "family_name": launch.family_name,
            "email": launch.email, "picture": launch.picture,
            "lis_person_sourcedid": launch.person_sourcedid,
            "lti11_legacy_user_id": launch.lti11_legacy_user_id,
            "canvas_user_id": launch.custom.get("canvas_user_id")}


def provision_from_launch(session: Session, launch: Launch) -> Provisioned:
    """Write what the launch says about its person, course and link; the caller commits."""
    known = _returning(session, launch)
    if known is None:
        return _provision(session, launch)
    return _update_returning(session, launch, *known)


_CONTEXT_KEEP = ("label", "title", "canvas_course_id", "memberships_url", "lineitems_url")
_LINK_KEEP = ("title", "description", "context_id", "placement", "lineitem_url")

# The returning person, their course, membership and link, and whether a roster sync holds the
# course: one statement on the driver, reading only the columns compared below.
_USER_COLUMNS = ("id", *PROFILE_FIELDS, "last_launch_at")
_CONTEXT_COLUMNS = ("id", "deployment_id", "context_types", "ags_scopes", *_CONTEXT_KEEP)
_MEMBERSHIP_COLUMNS = ("id", "roles", "is_active", "inactive_at", "status_reason", "last_launch_at")
_LINK_COLUMNS = ("id", "updated_at", "assessment_id", *_LINK_KEEP)
_SYNC_COLUMNS = ("running_sync_id", "lease_until")
_TIMES = {"last_launch_at", "inactive_at", "updated_at", "lease_until"}
_JSONS = {"context_types", "ags_scopes", "roles"}
_RETURNING = Statement(
    "SELECT " + ", ".join([*(f"u.{c}" for c in _USER_COLUMNS), *(f"c.{c}" for c in _CONTEXT_COLUMNS),
                           *(f"m.{c}" for c in _MEMBERSHIP_COLUMNS), *(f"l.{c}" for c in _LINK_COLUMNS),
                           *(f"s.{c}" for c in _SYNC_COLUMNS)]) +
    " FROM users u"
    " LEFT JOIN contexts c ON c.registration_id = :registration_id AND c.lti_context_id = :context_id"
    " LEFT JOIN memberships m ON m.context_id = c.id AND m.user_id = u.id"
    " LEFT JOIN context_sync_states s ON s.context_id = c.id"
    " LEFT JOIN resource_links l ON l.registration_id = :registration_id"
    " AND l.lti_resource_link_id = :link_id"
    " WHERE u.registration_id = :registration_id AND u.sub = :sub")


class _Row:
    """Some columns of one row, as attributes (``None`` for a row the outer join did not find)."""

    def __init__(self, names: tuple[str, ...], values) -> None:
        for name, value in zip(names, values):
            if value is not None:
                if name in _TIMES:
                    value = read_time(value)
                elif name in _JSONS:
                    value = read_json(value)
                elif name == "is_active":
                    value = bool(value)
            setattr(self, name, value)

    @staticmethod
    def split(row) -> tuple:
        out, at = [], 0
        for names in (_USER_COLUMNS, _CONTEXT_COLUMNS, _MEMBERSHIP_COLUMNS, _LINK_COLUMNS):
            part = row[at:at + len(names)]
            at += len(names)
            out.append(_Row(names, part) if part[0] is not None else None)
        return (*out, row[at], read_time(row[at + 1]))


def _returning(session: Session, launch: Launch):
    ctx, link = launch.context, launch.resource_link
    row = driver(session).first(_RETURNING, {
        "registration_id": launch.registration_id, "sub": launch.sub,
        "context_id": ctx["id"] if ctx else None, "link_id": link["id"] if link else None})
    return _Row.split(row) if row is not None else None


def _stale(stamp, now) -> bool:
    return stamp is None or stamp < now - TOUCH_EVERY


def _differs(row, values: dict, keep: tuple[str, ...], replace: tuple[str, ...]) -> bool:
    """Would the upsert change ``row``? ``keep`` columns change only when a value was sent."""
    for name in keep:
        value = values.get(name)
        if value is not None and getattr(row, name) != value:
            return True
    return any(getattr(row, name) != values.get(name) for name in replace)


_TOUCH_USER = Statement("UPDATE users SET " + ", ".join(f"{f} = :{f}" for f in PROFILE_FIELDS) +
                        ", last_launch_at = :last_launch_at WHERE id = :id")


def _update_returning(session: Session, launch: Launch, user: _Row, context, membership, link,
                      sync_holder, lease_until) -> Provisioned:
    now = utcnow()
    run = driver(session)
    profile = fit(User.__table__, {k: v for k, v in profile_from_launch(launch).items()
                                   if k in PROFILE_FIELDS})
    # A profile field changes only when the launch sent a value for it (Canvas leaves out what
    # the privacy level hides); "last launched" is kept to the hour.
    changed = {key: value for key, value in profile.items() if value and getattr(user, key) != value}
    if changed or _stale(user.last_launch_at, now):
        values = {key: getattr(user, key) for key in PROFILE_FIELDS}
        values.update(changed)
        values["id"] = user.id
        values["last_launch_at"] = run.time(now if _stale(user.last_launch_at, now) else user.last_launch_at)
        run.execute(_TOUCH_USER, values)
    conn = session.connection()
    ctx = launch.context
    context_pk = membership_pk = link_pk = None
    if ctx:
        values = _context_values(launch, now)
        with_ags = bool(launch.ags)
        replace = ("deployment_id", "context_types") + (("ags_scopes",) if with_ags else ())
        if context is None or _differs(context, values, _CONTEXT_KEEP, replace):
            context_pk = conn.execute(_context_upsert(session, with_ags), values).scalar_one()
        else:
            context_pk = context.id
        course_roles = roles.course_roles(launch.roles)
        syncing = sync_holder is not None and lease_until is not None and lease_until >= now
        if (membership is None or membership.roles != course_roles or not membership.is_active
                or membership.inactive_at is not None or membership.status_reason is not None
                or syncing or _stale(membership.last_launch_at, now)):
            membership_pk = conn.execute(_membership_upsert(session), {
                "context_id": context_pk, "user_id": user.id, "roles": course_roles,
                "is_active": True, "first_seen_at": now, "last_launch_at": now}).scalar_one()
        else:
            membership_pk = membership.id
    rl = launch.resource_link
    link_assessment = None
    if rl:
        values = _link_values(launch, context_pk, now)
        if link is None or _stale(link.updated_at, now) or _differs(link, values, _LINK_KEEP, ()):
            link_pk = conn.execute(_link_upsert(session), values).scalar_one()
            link_assessment = UNKNOWN
        else:
            link_pk = link.id
            link_assessment = link.assessment_id
    return Provisioned(user_id=user.id, context_id=context_pk, membership_id=membership_pk,
                       resource_link_id=link_pk, link_assessment_id=link_assessment)


_STATEMENTS: dict[tuple[str, str], object] = {}


def _statement(session: Session, name: str, build):
    """Upserts are built once per dialect and reused: building them costs more than running them."""
    key = (session.get_bind().dialect.name, name)
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


def _keep(stmt, column: str):
    """ON CONFLICT: take the new value when one was sent, else keep what is stored."""
    return func.coalesce(getattr(stmt.excluded, column), getattr(stmt.table.c, column))




def _context_values(launch: Launch, now) -> dict:
    ctx, ags = launch.context, launch.ags
    return fit(Context.__table__, {
        "registration_id": launch.registration_id, "deployment_id": launch.deployment_pk,
        "lti_context_id": ctx["id"], "label": ctx["label"], "title": ctx["title"],
        "context_types": ctx["type"], "canvas_course_id": launch.custom.get("canvas_course_id"),
        "memberships_url": launch.memberships_url, "lineitems_url": ags.get("lineitems"),
        "ags_scopes": ags.get("scope", []), "created_at": now, "updated_at": now})


def _link_values(launch: Launch, context_pk: int | None, now) -> dict:
    rl = launch.resource_link
    return fit(ResourceLink.__table__, {
        "registration_id": launch.registration_id, "context_id": context_pk,
        "lti_resource_link_id": rl["id"], "title": rl["title"], "description": rl["description"],
        "placement": launch.placement, "lineitem_url": launch.ags.get("lineitem"),
        "created_at": now, "updated_at": now})


def _context_upsert(session: Session, with_ags: bool):
    def build():
        stmt = insert_for(session, Context.__table__)
        set_ = {col: _keep(stmt, col) for col in _CONTEXT_KEEP}
        set_.update(deployment_id=stmt.excluded.deployment_id, updated_at=stmt.excluded.updated_at,
                    context_types=stmt.excluded.context_types)
        if with_ags:  # a launch without the AGS claim says nothing about the course's scopes
            set_["ags_scopes"] = stmt.excluded.ags_scopes
        return stmt.on_conflict_do_update(index_elements=["registration_id", "lti_context_id"],
                                          set_=set_).returning(Context.__table__.c.id)
    return _statement(session, f"context-{with_ags}", build)


def _membership_upsert(session: Session):
    def build():
        stmt = insert_for(session, Membership.__table__)
        return stmt.on_conflict_do_update(
            index_elements=["context_id", "user_id"],
            set_={"roles": stmt.excluded.roles, "is_active": True, "inactive_at": None,
                  "status_reason": None, "last_launch_at": stmt.excluded.last_launch_at},
        ).returning(Membership.__table__.c.id)
    return _statement(session, "membership", build)


def _link_upsert(session: Session):
    def build():
        stmt = insert_for(session, ResourceLink.__table__)
        return stmt.on_conflict_do_update(
            index_elements=["registration_id", "lti_resource_link_id"],
            set_={"title": _keep(stmt, "title"), "description": _keep(stmt, "description"),
                  "context_id": _keep(stmt, "context_id"), "placement": _keep(stmt, "placement"),
                  "lineitem_url": _keep(stmt, "lineitem_url"), "updated_at": stmt.excluded.updated_at},
        ).returning(ResourceLink.__table__.c.id)
    return _statement(session, "link", build)


def _provision(session: Session, launch: Launch) -> Provisioned:
    registration = launch.registration or session.get(Registration, launch.registration_id)
    deployment_pk = launch.deployment_pk or registrations.ensure_deployment(
        session, registration, launch.deployment_id).id
    user = find_or_create_user(session, registration, launch.sub, profile_from_launch(launch),
                               launched=True)
    conn = session.connection()
    now = utcnow()
    context_pk = membership_pk = link_pk = None
    ctx = launch.context
    if ctx:
        values = _context_values(launch, now)
        values["deployment_id"] = deployment_pk
        context_pk = conn.execute(_context_upsert(session, bool(launch.ags)), values).scalar_one()
        membership_pk = conn.execute(_membership_upsert(session), {
            "context_id": context_pk, "user_id": user.id, "roles": roles.course_roles(launch.roles),
            "is_active": True, "first_seen_at": now, "last_launch_at": now}).scalar_one()
    rl = launch.resource_link
    if rl:
        link_pk = conn.execute(_link_upsert(session), _link_values(launch, context_pk, now)).scalar_one()
    return Provisioned(user_id=user.id, context_id=context_pk, membership_id=membership_pk,
                       resource_link_id=link_pk, link_assessment_id=UNKNOWN)
