"""Helpers for the score delivery tests: a course the tool knows (roster synced, AGS granted), an
assessment, a submitted attempt, and reading the outbox back."""
from __future__ import annotations

from dataclasses import dataclass

from roster.rosterkit import add_course_to_tool, sync
from sqlalchemy import select


@dataclass
class Course:
    context_id: int
    assessment_id: int
    student_id: int  # the tool's user id of lms.student
    teacher_id: int
    assignment: object = None  # the emulated Canvas assignment whose line item the scores go to


def user_id_of(tool, sub: str) -> int:
    from tool.db import db
    from tool.models import User
    with tool.app.app_context():
        found = db.session.scalars(select(User.id).where(User.sub == sub)).one()
        db.session.remove()
    return found


def make_course(tool, lms, *, points=10.0, title="Quiz 1") -> Course:
    """The course as launches and a roster sync leave it: lineitems URL, AGS scopes, members,
    and an assessment whose line item is a Canvas assignment's (the launch carried it)."""
    from tool.db import db
    from tool.models import Assessment, Context
    context_id = add_course_to_tool(lms)
    assignment = lms.platform.add_assignment(lms.course, lms.registration, title=title, points=points)
    with tool.app.app_context():
        context = db.session.get(Context, context_id)
        context.lineitems_url = lms.course.lineitems_url
        context.ags_scopes = [s for s in lms.registration.scopes if "lti-ags" in s]
        assessment = Assessment(context_id=context_id, title=title, points_possible=points,
                                is_published=True,
                                lineitem_url=assignment.default_line_item().url,
                                questions=[{"key": "q1", "kind": "numeric", "prompt": "1+1",
                                            "points": points, "answer": 2, "tolerance": 0}])
        db.session.add(assessment)
        db.session.commit()
        assessment_id = assessment.id
        db.session.remove()
    assert sync(tool, context_id).status == "succeeded"
    return Course(context_id, assessment_id, user_id_of(tool, lms.student.sub),
                  user_id_of(tool, lms.teacher.sub), assignment)


def submit(session, course: Course, score: float, *, user_id=None, needs_grading=False,
           comment=None, reason="submit", number=1):
    """A submitted attempt and its queued score, in one transaction (as the student pages do)."""
    from tool.grading.delivery import queue_score
    from tool.models import Assessment, Attempt, utcnow
    assessment = session.get(Assessment, course.assessment_id)
    attempt = Attempt(assessment_id=assessment.id, user_id=user_id or course.student_id,
                      number=number, status="submitted" if needs_grading else "graded",
                      score=score, needs_grading=needs_grading, submitted_at=utcnow())
    session.add(attempt)
    session.flush()
    row = queue_score(session, assessment=assessment, user_id=attempt.user_id, attempt=attempt,
                      score_given=score, needs_grading=needs_grading, reason=reason, comment=comment)
    session.commit()
    return attempt, row


def regrade(session, course: Course, attempt_id: int, score: float, *, reason="grade",
            comment=None, needs_grading=False):
    from tool.grading.delivery import queue_score
    from tool.models import Assessment, Attempt
    attempt = session.get(Attempt, attempt_id)
    row = queue_score(session, assessment=session.get(Assessment, course.assessment_id),
                      user_id=attempt.user_id, attempt=attempt, score_given=score,
                      needs_grading=needs_grading, reason=reason, comment=comment)
    session.commit()
    return row


def deliveries(tool, assessment_id: int) -> list:
    from tool.db import db
    from tool.models import ScoreDelivery
    with tool.app.app_context():
        rows = list(db.session.scalars(select(ScoreDelivery).where(
            ScoreDelivery.assessment_id == assessment_id).order_by(ScoreDelivery.id)))
        db.session.expunge_all()
        db.session.remove()
    return rows


def wait_for(predicate, timeout=30.0, every=0.1):
    """Poll until ``predicate()`` is truthy; its last value (falsy on timeout)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def cell(lms, course: Course, user=None):
    """What the emulated Canvas gradebook holds for the user (lms.student by default)."""
    return lms.platform.gradebook(lms.course).cell(course.assignment, user or lms.student)
