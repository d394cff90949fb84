"""Each assessment's one gradebook column: its AGS line item (AGS 2.0 §3.2; facts section 8).

Where the URL comes from, in order: the one stored on the assessment (stored once, reused for
every score, never searched again); the ``lineitem`` an assignment launch carried for the
assessment's own resource link (AGS 2.0 §3.1); the course's line item whose ``resourceId`` is
the assessment's id; else one created through AGS. Only what the platform granted is used
(the launch claim's ``scope``): without the ``lineitem`` scope nothing is created, without
``lineitem.readonly`` nothing is listed either, and the launch-carried URL is the only way.

Calls reach the platform through a ``PlatformClient`` that stores its token with its own
database session: call these with no write of yours pending (SQLite allows one writer).
"""
from __future__ import annotations

import logging

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, object_session

from ..errors import Conflict, ToolError
from ..lti import ags
from ..lti.errors import PlatformError
from ..lti.service_client import PlatformClient
from ..models import Assessment, Context, Registration, ResourceLink

log = logging.getLogger(__name__)

TAG = "roster-grades"
NAVIGATION = "course_navigation"
# Canvas's largest page of line items (facts section 8): fewer calls for big courses.
PAGE_SIZE = 100


class GradebookUnavailable(Conflict):
    """The platform's granted scopes (or the course's state) leave no way to a gradebook column."""

    title = "The gradebook column is not available"


def platform_name(context: Context) -> str:
    session = object_session(context)
    registration = session.get(Registration, context.registration_id) if session else None
    issuer = (registration.issuer if registration else "") or ""
    return "Canvas" if "instructure.com" in issuer else "The platform"


# A person waits on the page while these run: retry for seconds, not minutes.
INTERACTIVE_BUDGET = 10.0


def client_for(session: Session, context: Context, *,
               retry_budget: float | None = None) -> PlatformClient:
    """A client for the course's platform with the tool's service settings."""
    from .. import jobs
    registration = session.get(Registration, context.registration_id)
    bind = session.get_bind()
    settings = jobs.client_settings()
    if retry_budget is not None:
        settings.retry_budget = min(settings.retry_budget, retry_budget)
    return PlatformClient(lambda: Session(bind), registration, settings)


def own_links(session: Session, assessment: Assessment) -> list[ResourceLink]:
    """The assessment's own resource links (never the course navigation link), best first.

    An assignment's link (one that carried a ``lineitem``) comes first, then the newest.
    """
    links = session.scalars(select(ResourceLink).where(
        ResourceLink.assessment_id == assessment.id, ResourceLink.context_id == assessment.context_id,
        or_(ResourceLink.placement.is_(None), ResourceLink.placement != NAVIGATION))).all()
    return sorted(links, key=lambda link: (link.lineitem_url is None,
                                           -(link.updated_at.timestamp() if link.updated_at else 0)))


def _only_from_launch(context: Context) -> GradebookUnavailable:
    name = platform_name(context)
    where = "its Canvas assignment" if name == "Canvas" else "its gradebook activity"
    return GradebookUnavailable(
        f"This course's platform lets the tool send scores only to the assignment it was launched "
        f"from; open the assessment from {where} once.", code="lineitem_launch_only")


def _store(session: Session, assessment: Assessment, url: str, *, created: bool,
           label: str | None, maximum: float | None) -> bool:
    """Store the URL unless another worker stored one first (then False; theirs stands)."""
    result = session.execute(
        update(Assessment).where(Assessment.id == assessment.id, Assessment.lineitem_url.is_(None))
        .values(lineitem_url=url, lineitem_created_by_tool=created, lineitem_label=label,
                lineitem_score_maximum=maximum, lineitem_error=None)
        .execution_options(synchronize_session=False))
    session.commit()
    session.refresh(assessment)
    return result.rowcount == 1


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def ensure_lineitem(session: Session, assessment: Assessment, *,
                    client: PlatformClient | None = None) -> str:
    """The assessment's line item URL: stored, launch-carried, found by resourceId, or created.

    Commits what it stores. Raises ``GradebookUnavailable`` when the granted scopes allow no
    way, ``PlatformError`` when the platform refuses or cannot be reached.
    """
    if assessment.lineitem_url:
        return assessment.lineitem_url
    context = session.get(Context, assessment.context_id)
    for link in own_links(session, assessment):
        if link.lineitem_url:
            _store(session, assessment, link.lineitem_url, created=False, label=None, maximum=None)
            return assessment.lineitem_url
    caps = ags.capabilities(context.ags_scopes)
    if not context.lineitems_url or not caps.can_read_lineitems:
        if caps.can_send_scores:
            raise _only_from_launch(context)
        raise GradebookUnavailable(
            f"{platform_name(context)} has not granted the tool its gradebook services in this "
            "course; launch the tool from the course once, or ask the platform's administrator "
            "to enable Assignment and Grade Services for it.", code="no_ags")
    session.commit()  # no read transaction stays open across the platform calls
    client = client or client_for(session, context)
    found = find_lineitem(session, client, context, assessment)
    if found is not None:
        if not _store(session, assessment, found["id"], created=False, label=found.get("label"),
                      maximum=_number(found.get("scoreMaximum"))):
            log.info("assessment %r: another worker stored its line item first", assessment.id)
        return assessment.lineitem_url
    if not caps.can_create_lineitems:
        raise _only_from_launch(context)
    body = {"label": assessment.title, "scoreMaximum": assessment.points_possible,
            "resourceId": str(assessment.id), "tag": TAG}
    links = own_links(session, assessment)
    if links:
        body["resourceLinkId"] = links[0].lti_resource_link_id
    made = ags.create_lineitem(client, context.lineitems_url, body, scopes=[ags.SCOPE_LINEITEM])
    if not _store(session, assessment, made["id"], created=True, label=assessment.title,
                  maximum=float(assessment.points_possible)):
        # Two workers created one each at once: keep the stored one, take ours back.
        log.info("assessment %r: dropping duplicate line item %r", assessment.id, made["id"])
        try:
            ags.delete_lineitem(client, made["id"])
        except PlatformError as exc:
            log.warning("could not delete duplicate line item %r: %r", made["id"], exc.reason)
    log.info("assessment %r uses line item %r", assessment.id, assessment.lineitem_url)
    return assessment.lineitem_url


def find_lineitem(session: Session, client: PlatformClient, context: Context,
                  assessment: Assessment) -> dict | None:
    """The course's line item for this assessment (``resourceId``), every page read; or None."""
    caps = ags.capabilities(context.ags_scopes)
    items = ags.list_lineitems(client, context.lineitems_url, resource_id=str(assessment.id),
                               limit=PAGE_SIZE, scopes=caps.lineitem_read_scopes)
    # A platform may ignore the filter: check it here too.
    mine = [item for item in items if str(item.get("resourceId") or "") == str(assessment.id)
            and isinstance(item.get("id"), str) and item["id"]]
    if not mine:
        return None
    link_ids = {link.lti_resource_link_id for link in own_links(session, assessment)}
    # Prefer the assignment's own column, then the one the tool tagged.
    mine.sort(key=lambda item: (item.get("resourceLinkId") not in link_ids, item.get("tag") != TAG))
    return mine[0]


def lineitem_for_launch(session: Session, assessment: Assessment, launch) -> str | None:
    """Adopt the ``lineitem`` an assignment launch carried (AGS 2.0 §3.1) for this assessment.

    Only a launch of the assessment's own resource link counts, never the course navigation
    link. A URL already stored stays (scores keep going to one column); the caller commits.
    """
    url = (launch.ags or {}).get("lineitem")
    link = launch.resource_link
    if assessment.lineitem_url:
        return assessment.lineitem_url
    # A URL longer than the column is not one to cut short: the search or creation takes over.
    if not url or len(url) > 1000 or not link or launch.placement == NAVIGATION:
        return None
    own = session.scalars(select(ResourceLink).where(
        ResourceLink.lti_resource_link_id == link["id"], ResourceLink.assessment_id == assessment.id,
        ResourceLink.context_id == assessment.context_id)).first()
    if own is None or own.placement == NAVIGATION:
        return None
    assessment.lineitem_url = url
    assessment.lineitem_created_by_tool = False
    assessment.lineitem_error = None
    return url


def needs_update(assessment: Assessment) -> bool:
    """True when the column's label or points differ from (or were never checked against) ours."""
    return bool(assessment.lineitem_url) and (
        assessment.lineitem_label != assessment.title
        or assessment.lineitem_score_maximum != float(assessment.points_possible))


def update_after_edit(session: Session, assessment: Assessment) -> bool:
    """Queue the line item update when the title or points changed; True when queued.

    Call it after committing the edit: the job reads the assessment as stored.
    """
    if not needs_update(assessment):
        return False
    from .tasks import update_lineitem_task
    update_lineitem_task(assessment.id)
    return True


def run_update(session: Session, assessment_id: int, *, client: PlatformClient | None = None) -> str:
    """The job: PUT the line item as read with our label and points; records a refusal.

    Runs twice safely: a column already matching is left alone. Without the ``lineitem``
    scope the column is only compared (``lineitem.readonly``) and a difference is recorded for
    the instructor to fix in the platform. Returns what happened.
    """
    assessment = session.get(Assessment, assessment_id)
    if assessment is None or not needs_update(assessment):
        return "unchanged"
    context = session.get(Context, assessment.context_id)
    name = platform_name(context)
    caps = ags.capabilities(context.ags_scopes)
    title, points = assessment.title, float(assessment.points_possible)
    url = assessment.lineitem_url
    cannot_change = (f"{name} does not let the tool change gradebook columns: change the title "
                     f"and points of the assignment in {name} too.")
    if not caps.can_read_lineitems:
        if assessment.lineitem_label is None:  # never known (launch-carried): take ours as its
            return _record(session, assessment_id, url, title, points, None, "unchecked")
        return _record(session, assessment_id, url, None, None, cannot_change, "refused")
    session.commit()  # no transaction stays open across the platform calls
    client = client or client_for(session, context)
    try:
        current = ags.get_lineitem(client, url, scopes=caps.lineitem_read_scopes)
        if current.get("label") == title and _number(current.get("scoreMaximum")) == points:
            return _record(session, assessment_id, url, title, points, None, "unchanged")
        if not caps.can_create_lineitems:
            return _record(session, assessment_id, url, None, None, cannot_change, "refused")
        # A PUT replaces the whole line item: send it back as read, with our two changes.
        ags.update_lineitem(client, url, {**current, "label": title, "scoreMaximum": points},
                            scopes=[ags.SCOPE_LINEITEM])
    except PlatformError as exc:
        if exc.retryable:
            raise
        log.warning("line item update for assessment %r refused: %r", assessment_id, exc.reason)
        return _record(session, assessment_id, url, None, None,
                       f"{name} refused to update the gradebook column: "
                       f"{exc.platform_message or exc.reason}", "refused")
    except ToolError as exc:
        return _record(session, assessment_id, url, None, None,
                       f"The gradebook column was not updated: {exc.reason}", "refused")
    return _record(session, assessment_id, url, title, points, None, "updated")


def _record(session: Session, assessment_id: int, url: str, label: str | None,
            maximum: float | None, error: str | None, outcome: str) -> str:
    """Store the column's label and points (when known) and the error, if the URL still stands."""
    values = {"lineitem_error": error}
    if label is not None:
        values.update(lineitem_label=label, lineitem_score_maximum=maximum)
    session.execute(update(Assessment).where(Assessment.id == assessment_id,
                                             Assessment.lineitem_url == url)
                    .values(**values).execution_options(synchronize_session=False))
    session.commit()
    return outcome


CANVAS_KEEPS = "Canvas keeps this column: remove the assignment in Canvas."


def delete_column(session: Session, assessment: Assessment) -> str:
    """Delete the gradebook column the tool made; the outcome in words (never raises for it).

    Canvas refuses (401) to delete an assignment's own line item (facts section 8). The
    caller deletes the assessment and commits.
    """
    url = assessment.lineitem_url
    if not url:
        return "There was no gradebook column to delete."
    context = session.get(Context, assessment.context_id)
    name = platform_name(context)
    keeps = CANVAS_KEEPS if name == "Canvas" else \
        "The platform keeps this column: remove it in the platform's gradebook."
    if not assessment.lineitem_created_by_tool:
        return keeps
    if not ags.capabilities(context.ags_scopes).can_create_lineitems:
        return f"{name} does not let the tool delete gradebook columns: remove it in {name}."
    client = client_for(session, context, retry_budget=INTERACTIVE_BUDGET)
    try:
        ags.delete_lineitem(client, url, scopes=[ags.SCOPE_LINEITEM])
    except PlatformError as exc:
        log.info("deleting line item %r refused: %r", url, exc.reason)
        if exc.http_status == 401:
            return keeps
        if exc.http_status == 404:
            outcome = "The gradebook column was already gone."
        else:
            return (f"The gradebook column could not be deleted ({exc.platform_message or exc.reason}); "
                    f"remove it in {name}.")
    else:
        outcome = "The gradebook column was deleted."
    assessment.lineitem_url = None
    assessment.lineitem_created_by_tool = False
    return outcome


def capability_words(context: Context) -> list[str]:
    """Short sentences for the instructor: what the platform allows and what that means."""
    name = platform_name(context)
    caps = ags.capabilities(context.ags_scopes)
    can = []
    if caps.can_create_lineitems:
        can.append("create gradebook columns")
    elif caps.can_read_lineitems:
        can.append("find gradebook columns")
    if caps.can_send_scores:
        can.append("send scores")
    if caps.can_read_results:
        can.append("read the gradebook")
    if not can:
        return [f"{name} has not granted the tool its gradebook services in this course: scores "
                "stay in the tool. Ask the platform's administrator to enable Assignment and "
                "Grade Services for the tool, then launch it from the course again."]
    listed = can[0] if len(can) == 1 else ", ".join(can[:-1]) + " and " + can[-1]
    words = [f"{name} lets the tool {listed}."]
    where = "its Canvas assignment" if name == "Canvas" else "its gradebook activity"
    if caps.can_send_scores and not caps.can_create_lineitems:
        words.append(f"The tool cannot create gradebook columns here: an assessment's scores go "
                     f"to the assignment it is launched from, so open each assessment from "
                     f"{where} once before its scores can be sent.")
    if not caps.can_send_scores:
        words.append("The tool cannot send scores here: grades stay in the tool.")
    if not caps.can_read_results:
        words.append(f"The tool cannot read the gradebook here, so it cannot show what {name} "
                     "holds for each student.")
    return words
