"""Assignment and Grade Services as Canvas serves them (facts sheet, section 8; canvas-lms
``Lti::IMS::LineItemsController``), under ``/api/lti/courses/<course_id>/``.

Line items: ``POST line_items`` needs ``label`` and ``scoreMaximum`` (400 otherwise); with
``resourceLinkId`` the line item joins that link's assignment (404 unknown link, 412 when the
link has no assignment with a line item), without it Canvas makes a new assignment (recorded,
origin ``"ags"``). ``GET line_items`` lists the caller's line items, filtered by ``tag``,
``resource_id``, ``resource_link_id``, paged by ``Link`` (``limit`` default 10, max 100). GET,
PUT (label, scoreMaximum, resourceId, tag, dates; renames/re-points the assignment for its
own line item) and DELETE (204; 401 for a coupled line item, made in Canvas or by deep
linking). Another tool's line item answers 412. Scores and results: ``scoring.py``.

Scopes (any one admits): write ``lineitem``; read ``lineitem`` or ``lineitem.readonly``;
scores ``score``; results ``result.readonly``; otherwise 401 "Insufficient permissions".
Faults, latency and the throttle bucket: ``services.serve`` with ``platform.ags_faults``,
``platform.ags_latency`` and ``platform.throttle``.
"""

import json
import math
from urllib.parse import urlencode

from flask import Response, request

from . import constants as C
from .gradebook import Assignment, LineItem, result_json
from .scoring import RESULTS_MEDIA_TYPE, post_score, results_page
from .services import errors, not_found, rails_error, serve

LINEITEM_MEDIA_TYPE = C.LINEITEM_MEDIA_TYPE
CONTAINER_MEDIA_TYPE = C.LINEITEM_CONTAINER_MEDIA_TYPE
SUBMISSION_TYPE_EXT = "https://canvas.instructure.com/lti/submission_type"
READ = (C.SCOPE_LINEITEM, C.SCOPE_LINEITEM_READONLY)
WRITE = (C.SCOPE_LINEITEM,)
PAGE_DEFAULT, PAGE_MAX = 10, 100


def _json(body, status=200, media_type=LINEITEM_MEDIA_TYPE):
    return Response(json.dumps(body), status=status, content_type=media_type)


def _body():
    """The JSON body, parsed only for a JSON media type (as Rails parses params)."""
    ctype = (request.content_type or "").split(";")[0].strip().lower()
    if not (ctype == "application/json" or ctype.endswith("+json")):
        return {}
    try:
        body = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _number(value):
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def paged(rows, base_url, media_type):
    """Canvas ``Api.paginate``: ``page``/``per_page`` (``limit``), a ``Link`` header."""
    args = request.args
    try:
        per_page = int(args.get("limit") or args.get("per_page") or PAGE_DEFAULT)
        page = int(args.get("page") or 1)
    except ValueError:
        return rails_error(400, "limit, per_page and page must be integers")
    per_page, page = max(1, min(per_page, PAGE_MAX)), max(1, page)
    last = max(1, math.ceil(len(rows) / per_page))
    keep = {k: v for k, v in args.items() if k not in ("page", "per_page", "limit")}

    def url(n):
        return base_url + "?" + urlencode(dict(keep, page=n, per_page=per_page))

    links = [(url(page), "current")]
    if page < last:
        links.append((url(page + 1), "next"))
    if page > 1:
        links.append((url(min(page - 1, last)), "prev"))
    links += [(url(1), "first"), (url(last), "last")]
    response = _json(rows[(page - 1) * per_page: page * per_page], media_type=media_type)
    response.headers["Link"] = ",".join(f'<{u}>; rel="{rel}"' for u, rel in links)
    return response


class Routes:
    """The AGS handlers; each runs under ``platform.lock`` once faults and auth passed."""

    def __init__(self, platform):
        self.p = platform

    def _course(self, course_id):
        return self.p.courses.get(course_id)

    def _line_item(self, course_id, item_id, grant):
        """(course, line item, None) or (None, None, error response)."""
        course = self._course(course_id)
        li = self.p.line_item_records.get(item_id)
        if course is None or li is None or li.course_id != course_id or li.deleted \
                or li.assignment.deleted:
            return None, None, not_found()
        if li.client_id != grant["client_id"]:
            return None, None, errors(412, "precondition_failed",
                                      "Tool does not have permission to view line_item")
        return course, li, None

    def create(self, course_id, grant):
        course = self._course(course_id)
        if course is None:
            return not_found()
        body = _body()
        if body is None:
            return rails_error(400, "The request body is not valid JSON")
        label, maximum = body.get("label"), _number(body.get("scoreMaximum"))
        problems = []
        if not isinstance(label, str) or not label.strip():
            problems.append("Label can't be blank")
        if maximum is None or maximum < 0:
            problems.append("Score maximum must be a number greater than or equal to 0")
        ext = body.get(SUBMISSION_TYPE_EXT)
        if ext is not None and (not isinstance(ext, dict)
                                or ext.get("type") not in ("none", "external_tool")):
            problems.append("Invalid submission_type extension")
        if problems:
            return rails_error(400, "Validation failed: " + ", ".join(problems))
        rlid = body.get("resourceLinkId")
        client = grant["client_id"]
        if rlid:
            link = self.p.link_records.get(str(rlid))
            if link is None and str(rlid) in course.links:
                return Response(status=412)  # a launched link with no graded assignment
            if link is None or link.client_id != client or link.course_id != course_id:
                return not_found()
            assignment = link.assignment
            if assignment is None or assignment.deleted or not assignment.active_line_items():
                return Response(status=412)
        else:
            link = None
            assignment = Assignment(
                id=self.p.next_id(), course_id=course_id, client_id=client, title=label,
                points_possible=maximum, origin="ags",
                submission_types=(ext or {}).get("type", "none"))
            self.p.assignment_records[assignment.id] = assignment
        li = LineItem(id=self.p.next_id(), course_id=course_id, client_id=client,
                      assignment=assignment, label=label, score_maximum=maximum,
                      resource_id=_text(body.get("resourceId")), tag=_text(body.get("tag")),
                      link=link, start=body.get("startDateTime"), end=body.get("endDateTime"),
                      coupled=False, extensions={SUBMISSION_TYPE_EXT: ext} if ext else {},
                      base_url=self.p.base_url)
        assignment.line_items.append(li)
        self.p.line_item_records[li.id] = li
        return _json(li.as_json(), status=201)

    def index(self, course_id, grant):
        course = self._course(course_id)
        if course is None:
            return not_found()
        args = request.args
        rows = []
        for li in self.p.line_item_records.values():
            a = li.assignment
            if li.course_id != course_id or li.deleted or a.deleted \
                    or li.client_id != grant["client_id"]:
                continue
            if args.get("tag") and li.tag != args["tag"]:
                continue
            if args.get("resource_id") and li.resource_id != args["resource_id"]:
                continue
            # Canvas matches the link on the assignment: all of its line items are listed.
            if args.get("resource_link_id") and not any(
                    x.link is not None and x.link.id == args["resource_link_id"]
                    for x in a.active_line_items()):
                continue
            rows.append(li.as_json())
        return paged(rows, course.lineitems_url, CONTAINER_MEDIA_TYPE)

    def show(self, course_id, item_id, grant):
        _, li, problem = self._line_item(course_id, item_id, grant)
        return problem or _json(li.as_json())

    def update(self, course_id, item_id, grant):
        _, li, problem = self._line_item(course_id, item_id, grant)
        if problem:
            return problem
        body = _body()
        if body is None:
            return rails_error(400, "The request body is not valid JSON")
        rlid = body.get("resourceLinkId")
        if rlid and (li.link is None or li.link.id != rlid):
            return errors(412, "precondition_failed",
                          "The specified LTI link ID is not associated with the line item.")
        if "scoreMaximum" in body:
            maximum = _number(body["scoreMaximum"])
            if maximum is None or maximum < 0:
                return rails_error(400, "Validation failed: Score maximum must be a number "
                                        "greater than or equal to 0")
            li.score_maximum = maximum
        if "label" in body:
            if not isinstance(body["label"], str) or not body["label"].strip():
                return rails_error(400, "Validation failed: Label can't be blank")
            li.label = body["label"]
        for key, attr in (("resourceId", "resource_id"), ("tag", "tag"),
                          ("startDateTime", "start"), ("endDateTime", "end")):
            if key in body:
                setattr(li, attr, _text(body[key]) if attr in ("resource_id", "tag")
                        else body[key])
        if li.is_assignment_line_item():
            if "label" in body:
                li.assignment.title = li.label
            if "scoreMaximum" in body:
                li.assignment.points_possible = li.score_maximum
        return _json(li.as_json())

    def destroy(self, course_id, item_id, grant):
        _, li, problem = self._line_item(course_id, item_id, grant)
        if problem:
            return problem
        if li.coupled:
            return Response(status=401)
        own = li.is_assignment_line_item()
        li.deleted = True
        if own:  # Canvas deletes a tool-made (uncoupled) assignment with its own line item
            li.assignment.deleted = True
        return Response(status=204)

    def scores(self, course_id, item_id, grant):
        course, li, problem = self._line_item(course_id, item_id, grant)
        return problem or post_score(self.p, course, li, _body())

    def results(self, course_id, item_id, grant):
        course, li, problem = self._line_item(course_id, item_id, grant)
        if problem:
            return problem
        rows = results_page(li, course, self.p, request.args)
        return paged(rows, li.url + "/results", RESULTS_MEDIA_TYPE)

    def result(self, course_id, item_id, result_id, grant):
        _, li, problem = self._line_item(course_id, item_id, grant)
        if problem:
            return problem
        found = next((r for r in li.results.values() if r.id == result_id), None)
        return _json(result_json(li, found), media_type=RESULTS_MEDIA_TYPE) if found \
            else not_found()


def _text(value):
    return None if value is None else str(value)


def register(app, platform):
    routes = Routes(platform)
    base = "/api/lti/courses/<int:course_id>/line_items"

    def run(counter, scopes, handler, *args):
        platform.count(counter)

        def locked(grant):
            with platform.lock:
                return handler(*args, grant)
        return serve(platform, service="ags", faults=platform.ags_faults, scopes=scopes,
                     latency=platform.ags_latency, log=platform.ags_requests, handler=locked)

    @app.route(base, methods=["GET", "POST"])
    def line_items(course_id):
        if request.method == "POST":
            return run("line_item_calls", WRITE, routes.create, course_id)
        return run("line_item_calls", READ, routes.index, course_id)

    @app.route(base + "/<int:item_id>", methods=["GET", "PUT", "DELETE"])
    def line_item(course_id, item_id):
        handler, scopes = {"GET": (routes.show, READ), "PUT": (routes.update, WRITE),
                           "DELETE": (routes.destroy, WRITE)}[request.method]
        return run("line_item_calls", scopes, handler, course_id, item_id)

    @app.post(base + "/<int:item_id>/scores")
    def scores(course_id, item_id):
        response = run("score_posts", (C.SCOPE_SCORE,), routes.scores, course_id, item_id)
        try:
            body = json.loads(request.get_data(as_text=True) or "null")
        except ValueError:
            body = None
        entry = {"course_id": course_id, "line_item_id": item_id, "body": body,
                 "content_type": request.content_type, "status": response.status_code,
                 "answer": response.get_data(as_text=True)[:500]}
        with platform.lock:
            platform.scores.append(entry)
        return response

    @app.get(base + "/<int:item_id>/results")
    def results(course_id, item_id):
        return run("result_calls", (C.SCOPE_RESULT_READONLY,), routes.results, course_id,
                   item_id)

    @app.get(base + "/<int:item_id>/results/<int:result_id>")
    def result(course_id, item_id, result_id):
        return run("result_calls", (C.SCOPE_RESULT_READONLY,), routes.result, course_id,
                   item_id, result_id)
