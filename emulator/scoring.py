"""AGS scores and results with Canvas's rules (facts sheet, section 8; canvas-lms
``Lti::IMS::ScoresController`` and ``ResultsController``).

Checks in Canvas's order: the user must be an active student of the course (422 "User not
found in course or is not a student"), ``userId``, ``activityProgress``,
``gradingProgress`` and ``timestamp`` are required (400), the timestamp must parse and not be
older than the result Canvas holds (400; an equal one is applied again), ``scoreGiven``
needs ``scoreMaximum`` (422), ``submitted_at`` must parse and not lie in the future (400).

Then, for the assignment's own line item: with ``new_submission`` true (the default unless
``submission_type`` is ``none``) a new submission attempt is made; the score is set, scaled
to the assignment's points (``scoreGiven * points / scoreMaximum``), or cleared when
``gradingProgress`` is not ``FullyGraded``/``PendingManual`` or ``scoreGiven`` is missing;
a ``comment`` becomes a new submission comment every time. The result keeps what was sent.
"""

import json
from datetime import datetime, timedelta, timezone

from flask import Response

from . import constants as C
from .gradebook import Result, Submission, result_json
from .services import errors, rails_error

SCORE_MEDIA_TYPE = C.SCORE_MEDIA_TYPE
RESULTS_MEDIA_TYPE = C.RESULT_CONTAINER_MEDIA_TYPE
SUBMISSION_EXT = C.SUBMISSION_EXT
REQUIRED = ("userId", "activityProgress", "gradingProgress", "timestamp")
ACCEPT_GIVEN = ("FullyGraded", "PendingManual")
SUBMISSION_TYPES = ("none", "basic_lti_launch", "online_text_entry", "online_url",
                    "external_tool", "online_upload")
FALSE_VALUES = (False, 0, "0", "f", "F", "false", "FALSE", "False", "off", "OFF")
NOT_STUDENT = "User not found in course or is not a student"


def parse_time(value):
    """An aware datetime from ISO 8601 text, or None (naive times are taken as UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def find_user(platform, user_id):
    """Canvas looks the user up by LTI id (``sub``) or by Canvas numeric id."""
    if not isinstance(user_id, str) or not user_id:
        return None
    user = platform.users.get(user_id)
    if user is None and user_id.isdigit():
        user = next((u for u in platform.users.values() if u.canvas_user_id == user_id), None)
    return user


def is_student(course, user):
    enrollment = course.enrollments.get(user.sub) if user is not None else None
    return bool(enrollment and enrollment.status == "Active" and C.LEARNER in enrollment.roles)


def _number(value):
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def post_score(platform, course, line_item, body):
    """Apply one score POST; the Flask response Canvas would give."""
    if not isinstance(body, dict):
        body = {}
    user = find_user(platform, body.get("userId"))
    if not is_student(course, user):
        return errors(422, "unprocessable_entity", NOT_STUDENT)
    for name in REQUIRED:
        if body.get(name) in (None, ""):
            return rails_error(400, f"param is missing or the value is empty: {name}")
    raw_ts = body["timestamp"]
    timestamp = parse_time(raw_ts)
    if timestamp is None:
        return errors(400, "bad_request", f"Provided timestamp of {raw_ts} not a valid timestamp")
    result = line_item.results.get(user.sub)
    if result is not None and result.updated_at is not None and result.updated_at > timestamp:
        return errors(400, "bad_request",
                      f"Provided timestamp of {raw_ts} before last updated timestamp of "
                      f"{result.updated_at.isoformat(timespec='milliseconds')}")
    given, maximum = body.get("scoreGiven"), body.get("scoreMaximum")
    ignore = body["gradingProgress"] not in ACCEPT_GIVEN or given is None
    if not ignore:
        if maximum is None:
            return errors(422, "unprocessable_entity",
                          "ScoreMaximum not supplied when ScoreGiven present.")
        if _number(maximum) is None or _number(maximum) < 0:
            return errors(422, "unprocessable_entity",
                          "ScoreMaximum must be greater than or equal to 0")
        if _number(given) is None:
            return errors(400, "bad_request", f"scoreGiven of {given!r} is not a number")
    ext = body.get(SUBMISSION_EXT)
    ext = dict(ext) if isinstance(ext, dict) else {}
    raw_submitted = ext.get("submitted_at")
    submitted_at = parse_time(raw_submitted) if raw_submitted else None
    if raw_submitted and submitted_at is None:
        return errors(400, "bad_request",
                      f"Provided submitted_at timestamp of {raw_submitted} not a valid timestamp")
    now = datetime.now(timezone.utc)
    if submitted_at is not None and submitted_at > now + timedelta(minutes=1):
        return errors(400, "bad_request",
                      f"Provided submitted_at timestamp of {raw_submitted} in the future")
    kind = ext.get("submission_type") or "external_tool"
    if kind == "online_upload" and not ext.get("content_items"):
        return errors(422, "unprocessable_entity",
                      "Content items must be provided with submission type 'online_upload'")
    _apply(platform, line_item, user, body, ext, kind, ignore, timestamp, submitted_at or now)
    result = line_item.results[user.sub]
    answer = {"resultUrl": f"{line_item.url}/results/{result.id}"}
    return Response(json.dumps(answer), status=200, content_type=SCORE_MEDIA_TYPE)


def _apply(platform, line_item, user, body, ext, kind, ignore, timestamp, submitted_at):
    given, maximum = body.get("scoreGiven"), body.get("scoreMaximum")
    comment = body.get("comment")
    if line_item.is_assignment_line_item():
        assignment = line_item.assignment
        submission = assignment.submissions.get(user.sub)
        if submission is None:
            submission = assignment.submissions[user.sub] = Submission(user.sub)
        new_flag = ext.get("new_submission")
        new_submission = (new_flag is None or new_flag not in FALSE_VALUES) and kind != "none"
        if new_submission:
            submission.attempts.append({
                "attempt": len(submission.attempts) + 1,
                "submitted_at": submitted_at.isoformat(),
                "submission_type": kind if kind in SUBMISSION_TYPES else "external_tool",
                "submission_data": ext.get("submission_data"),
                "extension": dict(ext),
                "timestamp": body["timestamp"],
            })
            if submission.workflow_state == "unsubmitted":
                submission.workflow_state = "submitted"
        if ignore:
            submission.score = None
            submission.workflow_state = "submitted" if submission.attempts else "unsubmitted"
        else:
            scale = 1.0
            if abs(float(maximum)) > 1e-12:
                scale = float(assignment.points_possible) / float(maximum)
            submission.score = float(given) * scale
            submission.workflow_state = "pending_review" \
                if body["gradingProgress"] == "PendingManual" else "graded"
            submission.graded_by = "tool"
        submission.grading_progress = body["gradingProgress"]
        if comment not in (None, ""):
            submission.comments.append({"comment": str(comment), "attempt": len(
                submission.attempts), "timestamp": body["timestamp"]})
    result = line_item.results.get(user.sub)
    if result is None:
        result = line_item.results[user.sub] = Result(id=platform.next_id(), user_id=user.sub)
    result.result_score = _number(given)
    result.result_maximum = _number(maximum)
    result.comment = comment
    result.activity_progress = body.get("activityProgress")
    result.grading_progress = body.get("gradingProgress")
    result.updated_at = timestamp
    result.extensions = {SUBMISSION_EXT: dict(ext)} if ext else {}
    result.posts += 1


def results_page(line_item, course, platform, args):
    """(rows, error response) for ``GET results``: every result, or the ``user_id``'s."""
    rows = [r for _, r in sorted(line_item.results.items(), key=lambda kv: kv[1].id)]
    if "user_id" in args:
        user = find_user(platform, args.get("user_id"))
        if user is not None and not is_student(course, user):
            return []
        rows = [r for r in rows if user is not None and r.user_id == user.sub]
    return [result_json(line_item, r) for r in rows]
