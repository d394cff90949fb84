"""The emulated Canvas's pages people click: a course with the tool in its navigation, the tool
framed on the course page, assignments added from the tool, a gradebook (facts sheet sections 2,
3 and 8, from the browser's side).

The tool is always opened the way Canvas opens it: the course page holds an iframe whose page
form-POSTs the login initiation parameters (section 2) to the tool's login URL; from there the
usual flow runs inside the frame (tool -> ``/api/lti/authorize_redirect`` -> the tool's launch
URL). The course page also holds Canvas's ``post_message_forwarding`` frame (LTI Platform
Storage, section 10). Assignments come from an ``assignment_selection`` deep linking launch
whose answer returns here, to :func:`deep_linking_done`, which applies it as Canvas does.

Who is looking is the ``as`` query parameter (a Canvas user id; the course's first teacher by
default): this is an emulator, the "view as" switcher is its whole login. Every link is built
with ``url_for`` so the pages work under a path prefix (``SCRIPT_NAME``). ``UI_SANDBOX`` in the
app's config (a dict with ``home_url``) marks every page as a sandbox.
"""

import unicodedata
from urllib.parse import urlsplit

from flask import Blueprint, current_app, render_template, request, url_for

from . import constants as C
from .deeplink import check_response

bp = Blueprint("ui", __name__, template_folder="templates", static_folder="static",
               static_url_path="/ui-static")
PLACEMENTS = ("course_navigation", "assignment_selection")
MAX_PARAM = 100  # longest query value read (ids are short; anything longer is not ours)
ROLE_NAMES = ((C.INSTRUCTOR, "Teacher"), (C.TA, "TA"), (C.LEARNER, "Student"))


def register(app, platform):
    app.extensions["emulator_platform"] = platform
    app.register_blueprint(bp)

    @app.errorhandler(404)
    def _not_found(exc):
        """A person who mistyped an address gets a page; API callers keep the plain 404."""
        if request.accept_mimetypes.best != "text/html":
            return exc
        return render_template("ui/error.html", title="Page not found", platform=platform,
                               message="There is no page at this address. Start from the "
                               "course list."), 404


def _platform():
    return current_app.extensions["emulator_platform"]


def _param(name):
    value = request.args.get(name, "")
    return value if len(value) <= MAX_PARAM else ""


class Page(Exception):
    """A page that cannot be shown: status, heading and what to do."""

    def __init__(self, status, title, message):
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


@bp.errorhandler(Page)
def _page_error(exc):
    return render_template("ui/error.html", title=exc.title, message=exc.message,
                           platform=_platform()), exc.status


def role_name(roles):
    return next((name for uri, name in ROLE_NAMES if uri in roles), "Observer")


def _course(course_id):
    course = _platform().courses.get(course_id)
    if course is None:
        raise Page(404, "Course not found", "There is no course with this number. "
                   "Open the course list to pick one.")
    return course


def sortable_name(user):
    """Canvas lists people by "Family, Given", accents aside (Álvarez among the A's)."""
    name = f"{user.family_name}, {user.given_name}"
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()


def _people(course):
    """[(user, role name)] of the course's active enrollments: teachers first, then by name."""
    rows = [(e.user, role_name(e.roles)) for e in list(course.enrollments.values())
            if e.status == "Active"]
    order = {name: n for n, (_, name) in enumerate(ROLE_NAMES)}
    return sorted(rows, key=lambda r: (order.get(r[1], 9), sortable_name(r[0])))


def _viewer(course):
    """(user, role name) of who is looking: ``?as=<Canvas user id>``, else the first teacher."""
    people = _people(course)
    if not people:
        raise Page(404, "Nobody in this course", "Enroll someone in the course first.")
    wanted = _param("as")
    if not wanted:
        return people[0]
    for user, role in people:
        if user.canvas_user_id == wanted:
            return user, role
    raise Page(404, "Person not found", "Nobody with this id is enrolled in the course. "
               "Pick someone with the \u201cView as\u201d switcher on the course page.")


def _tool(client_id):
    tool = _platform().tools.get(client_id)
    if tool is None:
        raise Page(404, "Tool not found", "No tool with this client id is installed. "
                   "Open the course page to see the installed tools.")
    return tool


def _assignment(course, assignment_id):
    found = _platform().assignment_records.get(assignment_id)
    if found is None or found.deleted or found.course_id != course.course_id:
        raise Page(404, "Assignment not found", "This assignment does not exist or was deleted. "
                   "Open the course page for the current list.")
    return found


def _context(course, active, **extra):
    """What every course page shows: the course, who looks, the navigation, the switcher."""
    user, role = _viewer(course)
    platform = _platform()
    return dict(platform=platform, course=course, viewer=user, viewer_role=role,
                people=_people(course), tools=list(platform.tools.values()), active=active,
                is_teacher=role in ("Teacher", "TA"), **extra)


def absolute(endpoint, **values):
    """An absolute URL of this emulator for a tool to use (the platform's configured base)."""
    path = url_for(endpoint, **values)
    return _platform().base_url + path[len(request.script_root):]


@bp.after_request
def _headers(response):
    """The pages frame the tool and post to its login URL; nothing else runs or loads."""
    platform = _platform()
    # The tools' origins, and this platform's configured one: a browser may have opened these
    # pages under another name (localhost for 127.0.0.1), and the launch returns through it.
    origins = {_origin(t.login_url) for t in list(platform.tools.values()) if t.login_url}
    try:
        origins.add(_origin(platform.base_url))
    except RuntimeError:  # served without a base URL (a test client): 'self' covers it
        pass
    tools = " ".join(sorted(origins))
    response.headers.setdefault("Content-Security-Policy", "; ".join([
        "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self'",
        f"frame-src 'self' {tools}".strip(), f"form-action 'self' {tools}".strip(),
        "base-uri 'none'", "frame-ancestors 'self'"]))
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@bp.get("/")
def index():
    platform = _platform()
    return render_template("ui/index.html", platform=platform,
                           courses=list(platform.courses.values()))


@bp.get("/courses/<int:course_id>")
def course_home(course_id):
    course = _course(course_id)
    return render_template("ui/course.html", **_context(
        course, "home", assignments=_platform().assignments(course)))


@bp.get("/courses/<int:course_id>/people")
def people(course_id):
    return render_template("ui/people.html", **_context(_course(course_id), "people"))


@bp.get("/courses/<int:course_id>/external_tools/<client_id>")
def tool_page(course_id, client_id):
    """The tool in the course navigation: the course page with the tool framed in it."""
    course, tool = _course(course_id), _tool(client_id)
    ctx = _context(course, client_id, tool=tool)
    frame = url_for("ui.launch_frame", course_id=course_id, client_id=client_id,
                    placement="course_navigation", **{"as": ctx["viewer"].canvas_user_id})
    return render_template("ui/tool.html", frame_url=frame, heading=tool.title, **ctx)


@bp.get("/courses/<int:course_id>/assignments/new")
def new_assignment(course_id):
    """Add an assignment whose content the tool picks (``assignment_selection``)."""
    course = _course(course_id)
    tools = list(_platform().tools.values())
    if not tools:
        raise Page(404, "No tool installed", "Install a tool before adding an assignment from it.")
    tool = _tool(_param("tool")) if _param("tool") else tools[0]
    ctx = _context(course, "home", tool=tool)
    if not ctx["is_teacher"]:
        raise Page(403, "Teachers only", "Only a teacher adds assignments. Switch to the "
                   "teacher with \u201cView as\u201d on the course page.")
    frame = url_for("ui.launch_frame", course_id=course_id, client_id=tool.client_id,
                    placement="assignment_selection", **{"as": ctx["viewer"].canvas_user_id})
    return render_template("ui/tool.html", frame_url=frame,
                           heading=f"New assignment from {tool.title}", **ctx)


@bp.get("/courses/<int:course_id>/assignments/<int:assignment_id>")
def assignment_page(course_id, assignment_id):
    course = _course(course_id)
    assignment = _assignment(course, assignment_id)
    ctx = _context(course, "home", assignment=assignment)
    frame = url_for("ui.assignment_frame", course_id=course_id, assignment_id=assignment_id,
                    **{"as": ctx["viewer"].canvas_user_id})
    return render_template("ui/assignment.html", frame_url=frame, **ctx)


@bp.get("/courses/<int:course_id>/gradebook")
def gradebook(course_id):
    course = _course(course_id)
    ctx = _context(course, "grades")
    view = _platform().gradebook(course)
    students = [u for u, role in ctx["people"] if role == "Student"]
    if not ctx["is_teacher"]:
        students = [ctx["viewer"]]
    rows = []
    for student in students:
        cells = []
        for a in view.assignments:
            try:
                cells.append(view.cell(_by_id(view, a["id"]), student).score)
            except KeyError:  # an assignment whose line items were all deleted
                cells.append(None)
        rows.append((student, cells))
    return render_template("ui/gradebook.html", columns=view.assignments, rows=rows, **ctx)


def _by_id(view, assignment_id):
    for item in view.line_items:
        record = item["record"]
        if record.assignment.id == assignment_id and record.is_assignment_line_item():
            return record.id
    raise KeyError(assignment_id)


# -- frames: what the iframe loads --------------------------------------------------------

def _login_form(launch, heading):
    """The auto-submitting login initiation form (section 2), POSTed to the tool."""
    return render_template("ui/launch.html", action=launch.tool.login_url,
                           fields=launch.login_params, heading=heading, platform=_platform())


@bp.get("/courses/<int:course_id>/external_tools/<client_id>/launch")
def launch_frame(course_id, client_id):
    course, tool = _course(course_id), _tool(client_id)
    user, role = _viewer(course)
    placement = _param("placement") or "course_navigation"
    if placement not in PLACEMENTS:
        raise Page(400, "Unknown placement", f"Use one of: {', '.join(PLACEMENTS)}.")
    platform = _platform()
    if placement == "assignment_selection":
        if role not in ("Teacher", "TA"):
            raise Page(403, "Teachers only", "Only a teacher adds assignments.")
        launch = platform.deep_linking_launch(tool, user, course, placement=placement)
        # The answer comes back to this UI, which applies it and says what was added.
        launch.claims[C.DL_SETTINGS]["deep_link_return_url"] = absolute(
            "ui.deep_linking_done", course_id=course_id, **{"as": user.canvas_user_id})
    else:
        launch = platform.resource_link_launch(tool, user, course, placement=placement)
    return _login_form(launch, f"Opening {tool.title}")


@bp.get("/courses/<int:course_id>/assignments/<int:assignment_id>/launch")
def assignment_frame(course_id, assignment_id):
    course = _course(course_id)
    assignment = _assignment(course, assignment_id)
    user, _ = _viewer(course)
    tool = _tool(assignment.client_id)
    launch = _platform().assignment_launch(tool, user, course, assignment)
    return _login_form(launch, f"Opening {assignment.title}")


@bp.post("/courses/<int:course_id>/assignments/deep_linking_response")
def deep_linking_done(course_id):
    """The tool's deep linking response (Deep Linking 2.0 section 4.2), applied as Canvas does."""
    platform = _platform()
    course = _course(course_id)
    record = check_response(platform, request.form.get("JWT"), "assignment_selection")
    record["course_id"] = course_id
    launch = record["launch"]
    if launch is not None and launch.course is not course:
        record["errors"].append("the response does not belong to this course")
    if not record["errors"]:
        platform.apply_deep_link(record, course, record["tool"])
    with platform.lock:
        platform.deep_link_responses.append(record)
    user = launch.user if launch is not None else None
    return render_template(
        "ui/deep_link_done.html", platform=platform, course=course, record=record,
        viewer_id=user.canvas_user_id if user else None,
        message=str(record.get("msg") or "")[:500], errors=record["errors"],
    ), (400 if record["errors"] else 200)
