"""The emulated Canvas gradebook: assignments, their LTI resource links and line items,
AGS results, submissions with their attempts and comments (facts sheet, section 8).

Records mirror canvas-lms models: ``Assignment`` (a gradebook column), ``LinkRecord``
(``Lti::ResourceLink``: the link a tool launches, with the content item's custom
parameters), ``LineItem`` (``Lti::LineItem``; ``coupled`` when Canvas made it together with
its assignment, in the Canvas UI or from a deep linking response, which AGS may not
delete), ``Result`` (``Lti::Result``, one per user and line item) and ``Submission`` (one
per user and assignment, with every attempt and comment).

Tests read the state through snapshots: ``platform.gradebook(course)`` (a ``GradebookView``),
``platform.line_items(course)``; they are copies, safe to keep while the server runs.
"""

import copy
from dataclasses import dataclass, field


@dataclass(eq=False)
class LinkRecord:
    """A resource link Canvas keeps for an assignment or module item."""

    id: str  # resource_link_uuid: the resource_link.id of launches
    course_id: int
    client_id: str
    url: str  # target_link_uri of its launches (None: the tool's)
    title: str
    custom: dict
    assignment: "Assignment" = None


@dataclass(eq=False)
class Submission:
    user_id: str  # sub
    score: float = None  # what the Canvas gradebook shows, in the assignment's points
    workflow_state: str = "unsubmitted"  # submitted | graded | pending_review
    grading_progress: str = None
    attempts: list = field(default_factory=list)
    comments: list = field(default_factory=list)
    graded_by: str = None  # "tool" (AGS) or "teacher" (grade_in_canvas)


@dataclass(eq=False)
class Assignment:
    id: int
    course_id: int
    client_id: str
    title: str
    points_possible: float
    origin: str  # "canvas" (made in the UI), "deep_linking", "ags" (line item POST)
    link: LinkRecord = None
    line_items: list = field(default_factory=list)
    submissions: dict = field(default_factory=dict)  # sub -> Submission
    submission_types: str = "external_tool"
    deleted: bool = False

    def active_line_items(self):
        return [li for li in self.line_items if not li.deleted]

    def default_line_item(self):
        """The assignment's first line item (Canvas ``assignment_line_item?``)."""
        items = self.active_line_items()
        return items[0] if items else None


@dataclass(eq=False)
class Result:
    id: int
    user_id: str
    result_score: float = None
    result_maximum: float = None
    comment: str = None
    activity_progress: str = None
    grading_progress: str = None
    updated_at: object = None  # aware datetime: the last accepted score's timestamp
    extensions: dict = field(default_factory=dict)
    posts: int = 0  # score posts applied to this result


@dataclass(eq=False)
class LineItem:
    id: int
    course_id: int
    client_id: str
    assignment: Assignment
    label: str
    score_maximum: float
    resource_id: str = None
    tag: str = None
    link: LinkRecord = None
    start: str = None
    end: str = None
    coupled: bool = False
    extensions: dict = field(default_factory=dict)
    results: dict = field(default_factory=dict)  # sub -> Result
    deleted: bool = False
    base_url: str = ""

    @property
    def url(self):
        return f"{self.base_url}/api/lti/courses/{self.course_id}/line_items/{self.id}"

    def is_assignment_line_item(self):
        return self.assignment.default_line_item() is self

    def as_json(self):
        """Canvas ``LineItemsSerializer``: empty fields left out, scoreMaximum a float."""
        body = {"id": self.url, "scoreMaximum": float(self.score_maximum), "label": self.label,
                "resourceId": self.resource_id, "tag": self.tag,
                "resourceLinkId": self.link.id if self.link else None,
                "startDateTime": self.start, "endDateTime": self.end}
        body.update(self.extensions)
        return {k: v for k, v in body.items() if v is not None}


def result_json(line_item, result):
    """Canvas ``ResultsSerializer``."""
    body = {"id": f"{line_item.url}/results/{result.id}", "scoreOf": line_item.url,
            "userId": result.user_id, "resultScore": result.result_score,
            "resultMaximum": result.result_maximum, "comment": result.comment}
    return {k: v for k, v in body.items() if v is not None}


@dataclass
class Cell:
    """One user's state for one line item, as Canvas holds it (a snapshot)."""

    user_id: str
    line_item_id: int
    assignment_id: int
    score: float  # the gradebook score (scaled to the assignment's points); None if none
    points_possible: float
    workflow_state: str
    grading_progress: str
    activity_progress: str
    result_score: float
    result_maximum: float
    comment: str  # the result's comment (the last score's)
    timestamp: str  # ISO 8601 of the last accepted score
    attempts: list  # [{"attempt", "submitted_at", "submission_type", "submission_data", ...}]
    comments: list  # every submission comment, oldest first (str)
    score_posts: int  # score posts Canvas applied for this user and line item


def _sub(user):
    return user if isinstance(user, str) else user.sub


class GradebookView:
    """A copy of one course's gradebook taken under the platform lock."""

    def __init__(self, course_id, assignments, line_items):
        self.course_id = course_id
        self.assignments = assignments  # [dict]
        self.line_items = line_items  # [dict] with "record" (a deep copy of the LineItem)

    def _item(self, ref):
        if isinstance(ref, dict):  # a row of platform.line_items() or AGS JSON
            ref = ref.get("id")
        for li in self.line_items:
            rec = li["record"]
            if ref in (rec.id, str(rec.id), rec.url) or ref is rec or (
                    getattr(ref, "id", None) == rec.id and isinstance(ref, LineItem)) or (
                    isinstance(ref, Assignment) and ref.id == rec.assignment.id
                    and rec.is_assignment_line_item()):
                return rec
        if isinstance(ref, str):  # an assignment title or line item label
            for li in self.line_items:
                if ref in (li["record"].label, li["record"].assignment.title):
                    return li["record"]
        raise KeyError(f"no line item {ref!r} in course {self.course_id}")

    def cell(self, line_item, user):
        """The ``Cell`` of ``user`` (User or sub) for ``line_item`` (LineItem, id, URL, AGS
        JSON, Assignment, label or title); empty fields when nothing was ever sent."""
        li = self._item(line_item)
        sub = _sub(user)
        result = li.results.get(sub) or Result(id=0, user_id=sub)
        submission = (li.assignment.submissions.get(sub) or Submission(sub)) \
            if li.is_assignment_line_item() else Submission(sub)
        return Cell(
            user_id=sub, line_item_id=li.id, assignment_id=li.assignment.id,
            score=submission.score, points_possible=li.assignment.points_possible,
            workflow_state=submission.workflow_state,
            grading_progress=result.grading_progress, activity_progress=result.activity_progress,
            result_score=result.result_score, result_maximum=result.result_maximum,
            comment=result.comment,
            timestamp=result.updated_at.isoformat() if result.updated_at else None,
            attempts=copy.deepcopy(submission.attempts),
            comments=[c["comment"] for c in submission.comments], score_posts=result.posts)

    def scores(self, line_item):
        """{sub: gradebook score} for everyone with a result or submission."""
        li = self._item(line_item)
        subs = set(li.results) | (set(li.assignment.submissions)
                                  if li.is_assignment_line_item() else set())
        return {s: self.cell(li, s).score for s in subs}


class GradebookMixin:
    """Inspection calls on ``Platform``."""

    def line_items(self, course, include_deleted=False):
        """Every line item of ``course`` as AGS JSON plus ``assignment_id``, ``coupled``,
        ``client_id``, ``origin`` and ``deleted``."""
        with self.lock:
            return [dict(li.as_json(), assignment_id=li.assignment.id, coupled=li.coupled,
                         client_id=li.client_id, origin=li.assignment.origin,
                         deleted=li.deleted)
                    for li in self.line_item_records.values()
                    if li.course_id == course.course_id and (include_deleted or not li.deleted)]

    def assignments(self, course, include_deleted=False):
        """The course's assignments (live records: pass them to ``assignment_launch``)."""
        with self.lock:
            return [a for a in self.assignment_records.values()
                    if a.course_id == course.course_id and (include_deleted or not a.deleted)]

    def gradebook(self, course):
        """A ``GradebookView`` snapshot of ``course``."""
        with self.lock:
            items = [li for li in self.line_item_records.values()
                     if li.course_id == course.course_id and not li.deleted
                     and not li.assignment.deleted]
            snapshot = copy.deepcopy(items)
            assignments = [{"id": a.id, "title": a.title, "points_possible": a.points_possible,
                            "origin": a.origin, "link_id": a.link.id if a.link else None}
                           for a in self.assignment_records.values()
                           if a.course_id == course.course_id and not a.deleted]
        return GradebookView(course.course_id, assignments,
                             [{"id": li.id, "label": li.label, "record": li} for li in snapshot])
