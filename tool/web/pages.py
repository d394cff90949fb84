"""The pages people see after a launch: the instructor's and the student's home."""
from __future__ import annotations

from flask import Blueprint, render_template, request
from sqlalchemy import select

from ..db import db
from ..lti import roles
from ..lti.errors import SessionExpired
from ..models import Context, Membership, User
from . import tokens
from .roster import panel

bp = Blueprint("pages", __name__)


def _load(page: tokens.PageSession) -> tuple[User, Context | None, Membership | None]:
    user = db.session.get(User, page.user_id)
    if user is None or user.registration_id != page.registration_id:
        raise SessionExpired("Your account in the tool no longer exists.",
                             hint="Launch the tool again from your course.", code="user_gone")
    context = db.session.get(Context, page.context_id) if page.context_id else None
    membership = None
    if context is not None:
        membership = db.session.scalars(select(Membership).where(
            Membership.context_id == context.id, Membership.user_id == user.id)).first()
    return user, context, membership


def _role_words(membership: Membership | None) -> str:
    words = roles.in_words(membership.roles if membership else [])
    return ", ".join(words) if words else "No course role"


@bp.route("/instructor")
def instructor_home():
    page = tokens.require_instructor()
    user, context, membership = _load(page)
    return render_template("instructor.html", user=user, context=context, membership=membership,
                           role_words=_role_words(membership), t=tokens.issue(page), page=page,
                           roster=panel(context, request.args) if context else None)


@bp.route("/student")
def student_home():
    page = tokens.current()
    user, context, membership = _load(page)
    return render_template("student.html", user=user, context=context, membership=membership,
                           role_words=_role_words(membership), t=tokens.issue(page), page=page)
