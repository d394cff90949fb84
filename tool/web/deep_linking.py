"""Adding assessments to Canvas by deep linking (Deep Linking 2.0), and where links land.

- An ``LtiDeepLinkingRequest`` (Canvas's assignment_selection and link_selection placements)
  from staff opens the picker: the course's assessments, a way to create one, Cancel. Picking
  answers with an ``LtiDeepLinkingResponse`` JWT (``tool.lti.deep_linking``), auto-posted by the
  browser to the request's ``deep_link_return_url``: one ``ltiResourceLink`` per assessment, with
  a ``lineItem`` so Canvas makes the gradebook column (§3, LTI resource link). Students are refused.
- Resource link resolvers (``dispatch``): a SpeedGrader launch of a score's ``submission_data``
  (``tool.grading.links``) opens the attempt's review for staff of its course and the result for
  its own student (order 10); a link that names another course's assessment is a course copy
  (``course_copy_views``, order 50).
"""
from __future__ import annotations

import logging

from flask import Blueprint, current_app, g, render_template, request, url_for
from sqlalchemy import select
from werkzeug.routing import BuildError

from ..db import db
from ..errors import AccessDenied, FormInvalid, NotFound
from ..grading import links
from ..grading.lineitems import TAG
from ..lti import deep_linking as dl
from ..models import Assessment, Attempt, Context, Registration
from . import dispatch, sessions

bp = Blueprint("deep_linking", __name__)
log = logging.getLogger("tool.web")

MAX_CHOICES = 100  # more boxes than any course has assessments; bounds the form
CANCEL_MESSAGE = "Nothing was added"


def absolute(endpoint: str, **values) -> str | None:
    """TOOL_BASE_URL + the view's path (never a forwarded host), or None when the view is absent."""
    try:
        path = url_for(endpoint, **values)
    except BuildError:
        log.warning("no view %r to land on", endpoint)
        return None
    root = request.script_root
    if root and path.startswith(root):
        path = path[len(root):]
    return current_app.config["TOOL_BASE_URL"] + path


def relative(endpoint: str, **values) -> str | None:
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


# -- the launch ------------------------------------------------------------------------------

def on_deep_linking_request(landing: dispatch.Landing) -> str:
    """Deep Linking 2.0 §4.4: staff of a course pick; anyone else is refused with the reason."""
    launch = landing.launch
    if not launch.is_staff:
        raise AccessDenied("Only the course's instructors and TAs can add assessments to Canvas.",
                           hint="Open the assessment from its assignment or module item instead.",
                           code="deep_linking_staff_only")
    dl.request_from_settings(launch.deep_linking_settings, launch.deployment_id)
    if landing.context_id is None:
        raise dl.DeepLinkingRefused("Assessments belong to a course, and this request came from "
                                    "outside one.", hint="Add the assessment from a course.",
                                    code="deep_linking_no_course")
    return absolute("deep_linking.picker", t=landing.reference) or landing.home_url


# -- the picker ------------------------------------------------------------------------------

def _picking() -> tuple[sessions.Page, dl.Request, Context]:
    page = sessions.require_instructor()
    wanted = dl.Request.from_record(page.record.deep_linking)
    context = page.context
    if context is None:
        raise dl.DeepLinkingRefused("Assessments belong to a course, and this session has none.",
                                    code="deep_linking_no_course")
    return page, wanted, context


def _choices(context_id: int) -> list[Assessment]:
    """The course's assessments: published first, then unpublished, each by title."""
    return list(db.session.scalars(select(Assessment).where(Assessment.context_id == context_id)
                                   .order_by(Assessment.is_published.desc(), Assessment.title,
                                             Assessment.id)))


def _picker_page(page, wanted: dl.Request, context: Context, *, selected=(), error=None,
                 status=200):
    rows = _choices(context.id)
    return render_template(
        "deep_linking/picker.html", t=page.reference, context=context, rows=rows,
        multiple=wanted.accept_multiple, selected={int(s) for s in selected}, error=error,
        new_url=relative("assessments.new", t=page.reference, next="picker")), status


@bp.get("/lti/deep-linking")
def picker():
    page, wanted, context = _picking()
    chosen = request.args.get("selected", "")
    return _picker_page(page, wanted, context,
                        selected=[chosen] if chosen.isascii() and chosen.isdigit() and len(chosen) <= 9 else [])


def _chosen_ids(form) -> list[int]:
    values = form.getlist("assessment")[:MAX_CHOICES]
    ids = [int(v) for v in values if isinstance(v, str) and v.isascii() and v.isdigit() and len(v) <= 9]
    return list(dict.fromkeys(ids))  # the order picked, each once


def _check_choice(wanted: dl.Request, context: Context, ids: list[int]) -> list[Assessment]:
    """The chosen assessments of this course, or FormInvalid with the reason for the page."""
    if not ids:
        raise FormInvalid("Choose an assessment to add.", errors={"assessment": "Choose an "
                          "assessment to add, or Cancel to go back without adding anything."})
    if len(ids) > 1 and not wanted.accept_multiple:
        raise FormInvalid("Canvas takes one assessment here.",
                          errors={"assessment": "Canvas takes one assessment here: choose one."})
    found = {a.id: a for a in db.session.scalars(select(Assessment).where(
        Assessment.id.in_(ids), Assessment.context_id == context.id))}
    missing = [i for i in ids if i not in found]
    if missing:
        raise FormInvalid("An assessment you chose is no longer in this course.",
                          errors={"assessment": "An assessment you chose is no longer in this "
                                  "course (deleted meanwhile?). Choose again."})
    chosen = [found[i] for i in ids]
    pointless = [a.title for a in chosen if not (a.points_possible or 0) > 0]
    if pointless:
        raise FormInvalid("An assessment without points cannot become a graded assignment.",
                          errors={"assessment": f"“{pointless[0]}” has no points yet: add "
                                  "questions with points to it, then add it."})
    return chosen


def content_item(wanted: dl.Request, assessment: Assessment) -> dict:
    """One ``ltiResourceLink`` naming the assessment, with its gradebook column (§3 ``lineItem``)."""
    return dl.resource_link_item(
        wanted, title=assessment.title, url=links.launch_url(),
        custom={links.ASSESSMENT_CUSTOM: str(assessment.id)},
        line_item={"scoreMaximum": float(assessment.points_possible), "label": assessment.title,
                   "resourceId": str(assessment.id), "tag": TAG})


def _answer(page, wanted: dl.Request, context: Context, items: list[dict], *, msg=None,
            heading: str, message: str):
    """The page whose form the browser posts at once to the platform's return URL (§4.5)."""
    target = sessions.origin(wanted.return_url)
    if target is None:  # checked at launch; a session is never trusted blindly
        raise dl.DeepLinkingRefused("The platform's return address cannot be used.",
                                    code="deep_link_return_url")
    registration = db.session.get(Registration, page.registration_id)
    token = dl.response_jwt(db.session, current_app.config["KEY_DIR"],
                            client_id=registration.client_id, issuer=registration.issuer,
                            request=wanted, items=items, msg=msg)
    g.form_action = [target]  # CSP form-action: this page alone may post to the platform
    log.info("deep linking answer for context %r: %d item(s) to %r", context.id, len(items),
             target)
    return render_template("deep_linking/respond.html", context=context, return_url=wanted.return_url,
                           jwt=token, heading=heading, message=message)


@bp.post("/lti/deep-linking/respond")
def respond():
    page, wanted, context = _picking()
    ids = _chosen_ids(request.form)
    try:
        chosen = _check_choice(wanted, context, ids)
    except FormInvalid as exc:
        return _picker_page(page, wanted, context, selected=ids, error=exc.errors["assessment"],
                            status=exc.status)
    items = [content_item(wanted, a) for a in chosen]
    names = ", ".join(f"“{a.title}”" for a in chosen)
    return _answer(page, wanted, context, items, heading="Adding to Canvas",
                   message=f"Sending {names} to Canvas.")


@bp.post("/lti/deep-linking/cancel")
def cancel():
    """§4.5: an empty answer with a message; the platform closes its dialog."""
    page, wanted, context = _picking()
    return _answer(page, wanted, context, [], msg=CANCEL_MESSAGE, heading="Going back to Canvas",
                   message="Nothing was added.")


# -- SpeedGrader: a score's submission_data, launched again ------------------------------------

def review_resolver(landing: dispatch.Landing) -> str | None:
    """Canvas launches a score's ``submission_data`` from SpeedGrader (facts sheet section 8).

    Staff of the attempt's course get its review; the attempt's own student gets their result;
    anyone else is refused with the reason. Not a page-session link: the URL lives for good.
    """
    attempt_id = links.review_attempt_id(landing.launch.target_link_uri)
    if attempt_id is None:
        return None
    attempt = db.session.get(Attempt, attempt_id)
    assessment = db.session.get(Assessment, attempt.assessment_id) if attempt else None
    if assessment is None:
        raise NotFound("The attempt this link reviews no longer exists.",
                       hint="Its assessment or attempt was deleted in the tool.",
                       code="review_attempt_gone")
    if landing.launch.is_staff and landing.context_id == assessment.context_id:
        url = absolute("assessments.attempt", attempt_id=attempt.id, t=landing.reference)
    elif attempt.user_id == landing.user_id:
        url = absolute("student.attempt", attempt_id=attempt.id, t=landing.reference)
    else:
        raise AccessDenied("This review belongs to another person's work in a course you are not "
                           "teaching.", hint="Open your own work from your course.",
                           code="review_not_yours")
    return url or landing.home_url


dispatch.register_message(dl.REQUEST, on_deep_linking_request)
dispatch.register_resource_link(review_resolver, order=10)

from . import course_copy_views  # noqa: E402,F401 -- its routes join this blueprint
