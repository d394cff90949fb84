"""Provisioning on launch: user, course, membership, resource link and service URLs, in one transaction.

Runs after ``lti.validate_launch``; every write is an upsert so two launches of the same new
person at the same moment leave one row of each.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy.orm import Session

from .. import registrations
from ..db import fit, insert_for
from ..lti import Launch, roles
from ..models import Context, Membership, Registration, ResourceLink, User, utcnow
from .matching import find_or_create_user


@dataclass
class Provisioned:
    user: User
    context_id: int | None
    membership_id: int | None
    resource_link_id: int | None


def profile_from_launch(launch: Launch) -> dict:
    return {"name": launch.name, "given_name": launch.given_name, "family_name": launch.family_name,
            "email": launch.email, "picture": launch.picture,
            "lis_person_sourcedid": launch.person_sourcedid,
            "lti11_legacy_user_id": launch.lti11_legacy_user_id,
            "canvas_user_id": launch.custom.get("canvas_user_id")}


def provision_from_launch(session: Session, launch: Launch) -> Provisioned:
    try:
        result = _provision(session, launch)
        session.commit()
        return result
    except Exception:
        session.rollback()
        raise


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


def _context_upsert(session: Session, with_ags: bool):
    def build():
        stmt = insert_for(session, Context.__table__)
        keep = ("label", "title", "canvas_course_id", "memberships_url", "lineitems_url")
        set_ = {col: _keep(stmt, col) for col in keep}
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
        ags = launch.ags
        context_pk = conn.execute(_context_upsert(session, bool(ags)), fit(Context.__table__, {
            "registration_id": registration.id, "deployment_id": deployment_pk,
            "lti_context_id": ctx["id"], "label": ctx["label"], "title": ctx["title"],
            "context_types": ctx["type"], "canvas_course_id": launch.custom.get("canvas_course_id"),
            "memberships_url": launch.memberships_url, "lineitems_url": ags.get("lineitems"),
            "ags_scopes": ags.get("scope", []), "created_at": now, "updated_at": now})).scalar_one()
        membership_pk = conn.execute(_membership_upsert(session), {
            "context_id": context_pk, "user_id": user.id, "roles": roles.course_roles(launch.roles),
            "is_active": True, "first_seen_at": now, "last_launch_at": now}).scalar_one()
    rl = launch.resource_link
    if rl:
        link_pk = conn.execute(_link_upsert(session), fit(ResourceLink.__table__, {
            "registration_id": registration.id, "context_id": context_pk,
            "lti_resource_link_id": rl["id"], "title": rl["title"], "description": rl["description"],
            "placement": launch.placement, "lineitem_url": launch.ags.get("lineitem"),
            "created_at": now, "updated_at": now})).scalar_one()
    return Provisioned(user=user, context_id=context_pk, membership_id=membership_pk,
                       resource_link_id=link_pk)
