"""Finding the tool's person for a platform person (the seed's "LTI-only" workflow, step 3).

Order: ``sub`` first; then a person not yet tied to any ``sub`` (imported before LTI 1.3) by
``lti11_legacy_user_id``, then by ``lis_person_sourcedid`` (unexpanded ``$...`` values are
absent), then by email when the registration allows it. The rule that was used is recorded.
"""
from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ..db import fit, insert_for
from ..models import Registration, User, utcnow
from .pagesql import CLAIM_RULES, PageSql

PROFILE_FIELDS = ("name", "given_name", "family_name", "email", "picture", "lis_person_sourcedid",
                  "lti11_legacy_user_id", "canvas_user_id")


def find_or_create_user(session: Session, registration: Registration, sub: str, profile: dict,
                        *, launched: bool = False) -> User:
    """The user row for (registration, sub), created or claimed; profile fields present are updated."""
    user = session.scalars(select(User).where(User.registration_id == registration.id,
                                              User.sub == sub)).first()
    matched_by = "sub"
    if user is None:
        user, matched_by = _claim(session, registration, profile)
        if user is not None:
            # Only claims a row that still has no sub: two racing launches claim it the same way.
            session.execute(update(User).where(User.id == user.id, User.sub.is_(None))
                            .values(sub=sub, matched_by=matched_by))
            session.refresh(user)
            if user.sub != sub:
                user = None
    if user is None:
        stmt = insert_for(session, User).values(registration_id=registration.id, sub=sub,
                                                matched_by="created", created_at=utcnow())
        session.execute(stmt.on_conflict_do_nothing(index_elements=["registration_id", "sub"]))
        user = session.scalars(select(User).where(User.registration_id == registration.id,
                                                  User.sub == sub)).one()
    profile = fit(User.__table__, {k: v for k, v in profile.items() if k in PROFILE_FIELDS})
    changes = {k: v for k, v in profile.items() if v and getattr(user, k) != v}
    if launched:
        changes["last_launch_at"] = utcnow()
    for key, value in changes.items():
        setattr(user, key, value)
    session.flush()
    return user


def _claim(session: Session, registration: Registration, profile: dict) -> tuple[User | None, str]:
    """The person without a ``sub`` this profile names, by the first rule that finds one (the
    lowest id when several match), with the rule; else (None, "created"). The lookups are the
    roster sync's own (pagesql.py): on SQLite the LTI 1.1 id and SIS id go through their indexes."""
    lookups = [(rule, profile[rule].lower() if rule == "email" else profile[rule])
               for rule in CLAIM_RULES if profile.get(rule)
               and (rule != "email" or registration.matches_by_email)]
    if not lookups:
        return None, "created"
    session.flush()  # the lookups run on the connection: pending rows go first, as a query's would
    statements = PageSql.for_session(session)
    for rule, value in lookups:
        found = statements.claim_candidates(registration.id, rule, [value])
        if found:
            return session.get(User, found[0][0]), rule
    return None, "created"
