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

from sqlalchemy import and_, bindparam, func, select
from sqlalchemy.orm import Session, outerjoin

from .. import registrations
from ..db import fit, insert_for
from ..lti import Launch, roles
from ..models import Context, ContextSyncState, Membership, Registration, ResourceLink, User, utcnow
from .matching import PROFILE_FIELDS, find_or_create_user

TOUCH_EVERY = timedelta(hours=1)


@dataclass
class Provisioned:
    user_id: int
    context_id: int | None
    membership_id: int | None
    resource_link_id: int | None
    # The rows read for a returning person, kept referenced for the rest of the request: the
    # session holds rows weakly, and the landing step looks the link and course up again.
    rows: tuple = field(default=(), repr=False, compare=False)


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


# The returning person, their course, membership and link, and whether a roster sync holds the
# course: one statement, built once. The rows land in the session, so the landing step's
# lookups of the link and course cost no statement.
_RETURNING = (
    select(User, Context, Membership, ResourceLink, ContextSyncState.running_sync_id,
           ContextSyncState.lease_until)
    .select_from(
        outerjoin(User, Context, and_(Context.registration_id == bindparam("registration_id"),
                                      Context.lti_context_id == bindparam("context_id")))
        .outerjoin(Membership, and_(Membership.context_id == Context.id,
                                    Membership.user_id == User.id))
        .outerjoin(ContextSyncState, ContextSyncState.context_id == Context.id)
        .outerjoin(ResourceLink, and_(ResourceLink.registration_id == bindparam("registration_id"),
                                      ResourceLink.lti_resource_link_id == bindparam("link_id"))))
    .where(User.registration_id == bindparam("registration_id"), User.sub == bindparam("sub")))


def _returning(session: Session, launch: Launch):
    ctx, link = launch.context, launch.resource_link
    return session.execute(_RETURNING, {
        "registration_id": launch.registration_id, "sub": launch.sub,
        "context_id": ctx["id"] if ctx else None, "link_id": link["id"] if link else None}).first()


def _stale(stamp, now) -> bool:
    return stamp is None or stamp < now - TOUCH_EVERY


def _differs(row, values: dict, keep: tuple[str, ...], replace: tuple[str, ...]) -> bool:
    """Would the upsert change ``row``? ``keep`` columns change only when a value was sent."""
    for name in keep:
        value = values.get(name)
        if value is not None and getattr(row, name) != value:
            return True
    return any(getattr(row, name) != values.get(name) for name in replace)


def _update_returning(session: Session, launch: Launch, user: User, context, membership, link,
                      sync_holder, lease_until) -> Provisioned:
    now = utcnow()
    profile = fit(User.__table__, {k: v for k, v in profile_from_launch(launch).items()
                                   if k in PROFILE_FIELDS})
    for key, value in profile.items():
        if value and getattr(user, key) != value:
            setattr(user, key, value)
    if _stale(user.last_launch_at, now):
        user.last_launch_at = now
    conn = session.connection()
    ctx = launch.context
    context_pk = membership_pk = link_pk = None
    if ctx:
        values = _context_values(launch, now)
        with_ags = bool(launch.ags)
        replace = ("deployment_id", "context_types") + (("ags_scopes",) if with_ags else ())
        if context is None or _differs(context, values, _CONTEXT_KEEP, replace):
            context_pk = conn.execute(_context_upsert(session, with_ags), values).scalar_one()
            if context is not None:
                session.expire(context)
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
            if membership is not None:
                session.expire(membership)
        else:
            membership_pk = membership.id
    rl = launch.resource_link
    if rl:
        values = _link_values(launch, context_pk, now)
        if link is None or _stale(link.updated_at, now) or _differs(link, values, _LINK_KEEP, ()):
            link_pk = conn.execute(_link_upsert(session), values).scalar_one()
            if link is not None:
                session.expire(link)
        else:
            link_pk = link.id
    session.flush()  # the user's changed fields, if any
    return Provisioned(user_id=user.id, context_id=context_pk, membership_id=membership_pk,
                       resource_link_id=link_pk, rows=(user, context, membership, link))


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


_CONTEXT_KEEP = ("label", "title", "canvas_course_id", "memberships_url", "lineitems_url")
_LINK_KEEP = ("title", "description", "context_id", "placement", "lineitem_url")


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
                       resource_link_id=link_pk)
