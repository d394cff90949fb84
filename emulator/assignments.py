"""Assignments and their launches, as Canvas makes them (facts sheet, sections 3 and 8).

Mixed into ``Platform``:
- ``add_assignment``: an assignment made in the Canvas UI with the tool as its submission
  type: a resource link and a coupled line item (label = title, scoreMaximum = points).
- ``apply_deep_link``: what Canvas does with a valid deep linking response: every
  ``ltiResourceLink`` becomes a resource link keeping the item's ``url``, ``title`` and
  ``custom``; one with a ``lineItem`` (or any item of the ``assignment_selection``
  placement) also becomes an assignment with a coupled line item (label, scoreMaximum,
  resourceId, tag).
- ``assignment_launch``: the ``LtiResourceLinkRequest`` Canvas sends from an assignment:
  ``resource_link.id`` = the link's id, placement null, ``target_link_uri`` = the item's url,
  the item's custom parameters over the tool's, and the AGS claim with ``lineitem`` when
  the assignment has exactly one line item.
- ``speedgrader_launch``: SpeedGrader opening a ``basic_lti_launch`` submission: the same
  launch for a grader, with ``target_link_uri`` = the attempt's ``submission_data`` URL.
- ``delete_assignment``, ``grade_in_canvas``: a teacher's actions in Canvas.
"""

import uuid

from .gradebook import Assignment, LineItem, LinkRecord, Submission


class AssignmentsMixin:
    def _new_link(self, course, tool, url, title, custom):
        link = LinkRecord(id=str(uuid.uuid4()), course_id=course.course_id,
                          client_id=tool.client_id, url=url, title=title,
                          custom=dict(custom or {}))
        self.link_records[link.id] = link
        course.links.setdefault(link.id, None)
        return link

    def _new_assignment(self, course, tool, title, points, origin, link, line_item):
        """An assignment with its coupled line item (``line_item``: label, resourceId, tag)."""
        assignment = Assignment(id=self.next_id(), course_id=course.course_id,
                                client_id=tool.client_id, title=title,
                                points_possible=float(points), origin=origin, link=link)
        li = LineItem(id=self.next_id(), course_id=course.course_id, client_id=tool.client_id,
                      assignment=assignment, label=line_item.get("label") or title,
                      score_maximum=float(points), resource_id=line_item.get("resourceId"),
                      tag=line_item.get("tag"), link=link, coupled=True,
                      start=line_item.get("startDateTime"), end=line_item.get("endDateTime"),
                      base_url=self.base_url)
        assignment.line_items.append(li)
        if link is not None:
            link.assignment = assignment
        self.assignment_records[assignment.id] = assignment
        self.line_item_records[li.id] = li
        return assignment

    def add_assignment(self, course, tool, title="Assignment", points=100, url=None,
                       custom=None):
        """An assignment made in the Canvas UI (submission type: this external tool)."""
        with self.lock:
            link = self._new_link(course, tool, url, title, custom)
            return self._new_assignment(course, tool, title, points, "canvas", link, {})

    def delete_assignment(self, assignment):
        """A teacher deletes the assignment: its line items answer 404 from now on."""
        with self.lock:
            assignment.deleted = True

    def grade_in_canvas(self, assignment, user, score):
        """A teacher grades in SpeedGrader: the gradebook score changes and Canvas copies it
        into the existing AGS result of the assignment's own line item."""
        with self.lock:
            submission = assignment.submissions.get(user.sub)
            if submission is None:
                submission = assignment.submissions[user.sub] = Submission(user.sub)
            submission.score = None if score is None else float(score)
            submission.workflow_state = "graded"
            submission.graded_by = "teacher"
            li = assignment.default_line_item()
            result = li.results.get(user.sub) if li else None
            if result is not None:
                result.result_score = submission.score
                result.result_maximum = float(assignment.points_possible)

    def apply_deep_link(self, record, course, tool):
        """Make the links and assignments a valid deep linking response asks for."""
        placement = record.get("placement")
        with self.lock:
            for item in record["content_items"]:
                if not isinstance(item, dict) or item.get("type") != "ltiResourceLink":
                    continue
                line_item = item.get("lineItem") if isinstance(item.get("lineItem"), dict) \
                    else None
                title = item.get("title") or (line_item or {}).get("label") or tool.title
                link = self._new_link(course, tool, item.get("url"), title, item.get("custom"))
                record["links"].append(link)
                if line_item is not None or placement == "assignment_selection":
                    points = (line_item or {}).get("scoreMaximum") or 0
                    record["assignments"].append(self._new_assignment(
                        course, tool, title, points, "deep_linking", link, line_item or {}))

    def link_launch(self, tool, user, course, link, **kw):
        """A launch of a deep-linked module item (no assignment): its id, url and custom."""
        kw.setdefault("target_link_uri", link.url)
        kw.setdefault("custom", link.custom)
        kw.setdefault("resource_link", {"id": link.id, "title": link.title, "description": None})
        return self.resource_link_launch(tool, user, course, **kw)

    def assignment_launch(self, tool, user, course, assignment, **kw):
        """The launch Canvas sends when ``user`` opens ``assignment`` (see module doc)."""
        link = assignment.link
        if link is None:
            raise ValueError("this assignment has no resource link (made through AGS)")
        items = assignment.active_line_items()
        if len(items) == 1:
            kw.setdefault("lineitem", items[0].url)
        kw.setdefault("resource_link", {"id": link.id, "title": assignment.title,
                                        "description": "<p>Emulated assignment</p>"})
        return self.link_launch(tool, user, course, link, **kw)

    def speedgrader_launch(self, tool, grader, course, assignment, student, attempt=None, **kw):
        """SpeedGrader launching ``student``'s attempt (the latest by default) as ``grader``."""
        with self.lock:
            submission = assignment.submissions.get(student.sub)
            attempts = list(submission.attempts) if submission else []
        chosen = [a for a in attempts if attempt is None or a["attempt"] == attempt]
        if not chosen or not chosen[-1].get("submission_data"):
            raise ValueError(f"no attempt with submission_data for {student.name!r}")
        return self.assignment_launch(tool, grader, course, assignment,
                                      target_link_uri=chosen[-1]["submission_data"], **kw)


def content_item_errors(items, settings):
    """Problems Canvas reports for content items (Deep Linking 2.0 §3.1, §3.3)."""
    problems = []
    targets = settings.get("accept_presentation_document_targets") or []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"content item {n} is not an object")
            continue
        custom = item.get("custom")
        if custom is not None and (not isinstance(custom, dict) or not all(
                isinstance(v, str) for v in custom.values())):
            problems.append(f"content item {n}: custom must map names to strings")
        url = item.get("url")
        if url is not None and not (isinstance(url, str) and url.startswith(("http://",
                                                                            "https://"))):
            problems.append(f"content item {n}: url must be an absolute http(s) URL")
        line_item = item.get("lineItem")
        if line_item is not None:
            maximum = line_item.get("scoreMaximum") if isinstance(line_item, dict) else None
            if isinstance(maximum, bool) or not isinstance(maximum, (int, float)) or maximum < 0:
                problems.append(f"content item {n}: lineItem.scoreMaximum must be a number >= 0")
        for target in ("iframe", "window"):
            if target in item and targets and target not in targets:
                problems.append(f"content item {n}: presentation target {target} not accepted")
    return problems

