"""The course roster for instructors: table, sync progress, "Sync now", CSV export.

Every route needs the instructor page session (``sessions.require_instructor``); a student's session
gets 403. The roster panel itself is drawn on the instructor home (``pages.instructor_home``)
from :func:`panel`.
"""
from __future__ import annotations

import csv
import io
import re
from typing import Iterator

from flask import Blueprint, Response, jsonify, redirect, request, stream_with_context

from ..db import db
from ..errors import ToolError
from ..models import Context, ContextSyncState
from ..roster import export, runs, view
from . import sessions
from .display import utc_iso

bp = Blueprint("roster", __name__)
MAX_PAGE = 10**9  # beyond any course; keeps the OFFSET inside every database's integer range


def course_context(page: sessions.Page, what: str = "The roster") -> Context:
    """The launch's course, of the page's own registration; 404 ``no_course`` when there is none."""
    context = db.session.get(Context, page.context_id) if page.context_id else None
    if context is None or context.registration_id != page.registration_id:
        raise ToolError(f"{what} belongs to a course; this launch was not from one.",
                        code="no_course", status=404)
    return context


def page_number(value) -> int:
    """``?page=`` as a number from 1; what is not a plain number is page 1, a huge one is capped.

    The caller clamps it to the last page once the total is known.
    """
    value = value.strip() if isinstance(value, str) else ""
    if not re.fullmatch(r"[0-9]+", value):
        return 1
    # Checked by length first: Python refuses to convert a string of over 4,300 digits.
    return MAX_PAGE if len(value) > 9 else min(max(1, int(value)), MAX_PAGE)


def _filters(args) -> dict:
    role = args.get("role") if args.get("role") in view.ROLE_FILTERS else None
    status = args.get("status") if args.get("status") in view.STATUSES else None
    return {"role": role, "status": status}


def panel(context: Context, args) -> dict:
    """Everything the roster panel on the instructor page shows."""
    filters = _filters(args)
    page_no = page_number(args.get("page"))
    rows, total = view.members(db.session, context.id, page=page_no, **filters)
    last_page = max(1, -(-total // view.PAGE_SIZE))
    if page_no > last_page:  # past the end (an old link, a hand-edited URL): show the last page
        page_no = last_page
        rows, total = view.members(db.session, context.id, page=page_no, **filters)
    state = db.session.get(ContextSyncState, context.id)
    expected = view.expected_members(db.session, context.id)
    return {"rows": rows, "total": total, "page": page_no,
            "pages": max(1, -(-total // view.PAGE_SIZE)), "filters": filters,
            "counts": view.counts(db.session, context.id),
            "run": view.run_dict(view.last_run(db.session, context.id), expected),
            "last_success_at": state.last_success_at if state else None,
            "has_service": bool(context.memberships_url),
            "role_choices": list(view.ROLE_FILTERS), "status_choices": list(view.STATUSES)}


@bp.get("/instructor/roster/progress")
def progress():
    """The last sync's progress and result, polled by the instructor page while it runs."""
    page = sessions.require_instructor()
    context = course_context(page)
    run = view.last_run(db.session, context.id)
    body = {"sync": view.run_dict(run, view.expected_members(db.session, context.id)),
            "counts": view.counts(db.session, context.id)}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/instructor/roster/sync")
def sync_now():
    """"Sync now": queue a sync of this course unless one is already queued or running."""
    page = sessions.require_instructor()
    context = course_context(page)
    if not context.memberships_url:
        raise ToolError("The platform did not offer the roster service for this course.",
                        hint="Ask your administrator to give the tool's developer key the "
                             "Names and Role Provisioning scope.", code="no_memberships_url",
                        status=409)
    run = runs.pending_run(db.session, context.id)
    if run is None:
        run = runs.enqueue_sync(db.session, context, "manual")
    if request.accept_mimetypes.best == "application/json":
        return jsonify({"sync": view.run_dict(run)}), 202
    return redirect(sessions.page_url("instructor", page.reference), code=303)


@bp.get("/instructor/roster.csv")
def export_csv():
    """The roster as CSV, with the page's filters."""
    page = sessions.require_instructor()
    context = course_context(page)
    context_id, filters = context.id, _filters(request.args)

    def lines() -> Iterator[str]:
        # Queried here, in the session of the streaming context (the view's session is gone).
        rows = view.members(db.session, context_id, page_size=None, **filters)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["name", "email", "roles", "status", "status_reason", "first_seen",
                         "last_synced", "matched_by", "user_id"])
        for row in rows:
            writer.writerow([export.cell(value) for value in (
                row.name, row.email, "; ".join(row.roles), row.status, row.status_reason,
                utc_iso(row.first_seen), utc_iso(row.last_synced), row.matched_by, row.sub)])
            if buffer.tell() > 16384:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    filename = f"roster-{export.file_label(context.label, context.lti_context_id)}.csv"
    # The rows stream from the database while the response is written: keep the request context.
    return Response(stream_with_context(lines()), mimetype="text/csv",
                    headers={"Content-Disposition": export.content_disposition(filename),
                             "Cache-Control": "no-store"})
