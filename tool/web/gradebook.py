"""The instructor's gradebook: every active student, each assessment's score, whether it reached the
platform's gradebook, and what that gradebook holds now (AGS 2.0 §3.5 results, read by a job).

Opening the page queues a read of the results (never read inside the request); the page then
follows the read and any deliveries still on their way (``static/gradebook.js`` polls
``gradebook.status``) and updates the cells in place. "Send again" queues the latest score once
more (``delivery.resend``). Instructors only: a student's session gets 403.
"""
from __future__ import annotations

import logging
from datetime import datetime

from urllib.parse import urlencode

from flask import Blueprint, current_app, jsonify, redirect, request, url_for
from werkzeug.routing import BuildError

from ..db import db
from ..errors import NotFound, ToolError
from ..grading import book, delivery, lineitems
from ..grading.links import row_id
from ..models import Assessment, Context, Membership, utcnow
from . import pages, sessions
from .display import utc_iso
from .roster import course_context, page_number

log = logging.getLogger("tool.web")
bp = Blueprint("gradebook", __name__)


def _id(value) -> int | None:
    """A row id from a form or query (spaces around it allowed), or None."""
    return row_id(value.strip() if isinstance(value, str) else "")


def _assessment(context: Context, raw, *, required: bool = False) -> Assessment | None:
    assessment_id = _id(raw)
    if assessment_id is None:
        if required or raw:
            raise NotFound("There is no such assessment in this course.", code="no_assessment")
        return None
    assessment = db.session.get(Assessment, assessment_id)
    if assessment is None or assessment.context_id != context.id:
        raise NotFound("There is no such assessment in this course.", code="no_assessment")
    return assessment


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """``just now``, ``4 min ago``, ``3 h ago``, ``2 days ago``."""
    if moment is None:
        return ""
    seconds = max(0, int(((now or utcnow()) - moment).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _queue_refreshes(assessments: list[Assessment]) -> bool:
    """Queue a results read per assessment (skipped when fresh); True if any was queued."""
    from ..grading import results
    queued = False
    for assessment in assessments:
        try:
            queued = results.queue_refresh(assessment.id) or queued
        except Exception:  # the page shows what it has; a queue fault must not hide it
            log.exception("could not queue a results read for assessment %r", assessment.id)
    return queued


def _cell_json(cell: book.Cell) -> dict:
    out = cell.as_dict()
    out["canvas_age"] = age(cell.canvas_read_at)
    out["canvas_read_at"] = utc_iso(cell.canvas_read_at) or None
    return out


def _create_url(page: sessions.Page) -> str | None:
    try:
        return url_for("assessments.new", t=page.reference)
    except BuildError:  # the assessments pages are not part of this app
        return None


def _read(page: sessions.Page) -> tuple[Context, Assessment | None, book.Book]:
    """The course, the ``?assessment=`` it is narrowed to, and the ``?page=`` of the gradebook."""
    context = course_context(page, "The gradebook")
    only = _assessment(context, request.args.get("assessment"))
    gradebook = book.read(db.session, context.id, assessment_id=only.id if only else None,
                          page=page_number(request.args.get("page")))
    return context, only, gradebook


@bp.get("/instructor/gradebook")
def index():
    page = sessions.require_instructor()
    context, only, gradebook = _read(page)
    refreshing = _queue_refreshes(gradebook.assessments)
    all_assessments = book.assessments_of(db.session, context.id)
    return pages._render("gradebook/index.html", page, gradebook=gradebook, only=only,
                         all_assessments=all_assessments, refreshing=refreshing,
                         since=utc_iso(utcnow()), age=age, create_url=_create_url(page),
                         capabilities=lineitems.capability_words(context))


@bp.get("/instructor/gradebook/status")
def status():
    """The cells of the page as JSON, polled while deliveries or a results read are under way."""
    page = sessions.require_instructor()
    _course, only, gradebook = _read(page)
    since = request.args.get("since") or ""
    reads = {a.id: utc_iso(a.results_read_at) or None for a in gradebook.assessments}
    refreshing = bool(since) and any(read is None or read < since for read in reads.values())
    response = jsonify({"busy": gradebook.busy, "refreshing": refreshing, "results_read_at": reads,
                        "cells": [_cell_json(c) for s in gradebook.students for c in s.cells]})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/instructor/gradebook/resend")
def resend():
    """"Send again": the student's latest score for the assessment goes to the platform again."""
    page = sessions.require_instructor()
    context = course_context(page, "The gradebook")
    assessment = _assessment(context, request.form.get("assessment_id"), required=True)
    user_id = _id(request.form.get("user_id"))
    member = None
    if user_id is not None:
        member = db.session.query(Membership).filter_by(context_id=context.id, user_id=user_id).first()
    if member is None:
        raise NotFound("That student is not in this course.", code="no_student")
    row = delivery.resend(db.session, assessment, user_id)
    if row is None:
        raise ToolError("There is no score to send for this student yet.", code="nothing_to_send",
                        status=409)
    db.session.commit()
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"delivery_id": row.id, "state": "pending"}), 202
    back = {"t": page.reference}
    if request.form.get("only") and _id(request.form.get("only")):
        back["assessment"] = request.form.get("only")
    if _id(request.form.get("page")):
        back["page"] = request.form.get("page")
    # Built from TOOL_BASE_URL only: request headers never choose where a redirect goes.
    return redirect(f"{current_app.config['TOOL_BASE_URL']}/instructor/gradebook?{urlencode(back)}",
                    code=303)
