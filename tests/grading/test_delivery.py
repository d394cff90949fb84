"""Scores on their way to the gradebook: the outbox rules, the shared slots, and delivery over
real HTTP to the emulated Canvas (AGS 2.0 §3.4; facts sheet sections 8 and 9)."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from grading.deliverykit import cell, make_course, regrade, submit, wait_for
from roster.rosterkit import consumer, fast_retries  # noqa: F401 (fixtures)

EXT = "https://canvas.instructure.com/lti/submission"


# -- the outbox rules (queue_score) -----------------------------------------------------------

def test_a_first_delivery_makes_a_submission_and_later_ones_do_not(tool, lms, db_session):
    from tool.grading.sender import score_body
    from tool.models import ScoreDelivery
    course = make_course(tool, lms)
    attempt, first = submit(db_session, course, 6.0, needs_grading=True)
    first.status = "sent"  # as if Canvas had taken it
    db_session.commit()
    graded = regrade(db_session, course, attempt.id, 9.0, comment="Nice work")
    body = score_body(db_session.get(ScoreDelivery, first.id), lms.student.sub)
    assert body["userId"] == lms.student.sub
    assert (body["scoreGiven"], body["scoreMaximum"]) == (6.0, 10.0)
    assert (body["activityProgress"], body["gradingProgress"]) == ("Submitted", "PendingManual")
    assert body[EXT]["new_submission"] is True
    assert body[EXT]["submission_type"] == "basic_lti_launch"
    assert body[EXT]["submission_data"] == f"{tool.base_url}/lti/launch?review_attempt={attempt.id}"
    assert body[EXT]["submitted_at"].startswith(attempt.submitted_at.isoformat()[:19])
    later = score_body(graded, lms.student.sub)
    assert later[EXT]["new_submission"] is False
    assert (later["activityProgress"], later["gradingProgress"]) == ("Completed", "FullyGraded")
    assert later["comment"] == "Nice work"
    assert later["timestamp"] > body["timestamp"]


def test_a_newer_score_supersedes_waiting_ones_but_not_one_being_sent(tool, lms, db_session):
    course = make_course(tool, lms)
    attempt, first = submit(db_session, course, 5.0)
    second = regrade(db_session, course, attempt.id, 6.0, reason="override", comment="Fixed key")
    assert (first.status, first.superseded_by_id) == ("superseded", second.id)
    # The first never left: the attempt still owes Canvas its new submission, and the comment.
    assert second.new_submission is True
    second.status = "sending"
    db_session.commit()
    third = regrade(db_session, course, attempt.id, 7.0, reason="regrade")
    assert second.status == "sending"  # left to finish; the third's later timestamp wins
    assert third.new_submission is False  # the one in flight makes the submission
    assert third.comment is None  # and carries the comment
    assert third.timestamp > second.timestamp > first.timestamp


def test_a_comment_already_sent_is_not_sent_again(tool, lms, db_session):
    from tool.grading.delivery import resend
    from tool.models import Assessment
    course = make_course(tool, lms)
    attempt, first = submit(db_session, course, 5.0, comment="See me")
    first.status = "sent"
    db_session.commit()
    again = resend(db_session, db_session.get(Assessment, course.assessment_id), course.student_id)
    db_session.commit()
    assert again.comment is None and again.new_submission is False and again.reason == "resend"
    assert again.score_given == 5.0
    changed = regrade(db_session, course, attempt.id, 8.0, comment="Regraded: question 2")
    assert changed.comment == "Regraded: question 2"


def test_timestamps_strictly_increase_within_one_millisecond(tool, lms, db_session):
    from tool.grading.delivery import next_timestamp
    from tool.models import utcnow
    course = make_course(tool, lms)
    attempt, first = submit(db_session, course, 1.0)
    stamps = [first.timestamp]
    for score in (2.0, 3.0, 4.0, 5.0):
        stamps.append(regrade(db_session, course, attempt.id, score).timestamp)
    assert all(b - a >= timedelta(milliseconds=1) for a, b in zip(stamps, stamps[1:]))
    # A clock that went backwards still yields a later timestamp.
    behind = next_timestamp(db_session, course.assessment_id, course.student_id,
                            utcnow() - timedelta(hours=1))
    assert behind == stamps[-1] + timedelta(milliseconds=1)


def test_a_preview_or_a_person_without_a_platform_id_queues_nothing(tool, lms, db_session):
    from tool.grading.delivery import queue_score
    from tool.models import Assessment, Attempt, User
    course = make_course(tool, lms)
    assessment = db_session.get(Assessment, course.assessment_id)
    preview = Attempt(assessment_id=assessment.id, user_id=course.teacher_id, is_preview=True)
    db_session.add(preview)
    imported = User(registration_id=lms.registration_id, sub=None, name="Imported")
    db_session.add(imported)
    db_session.flush()
    assert queue_score(db_session, assessment=assessment, user_id=course.teacher_id, attempt=preview,
                       score_given=1.0, needs_grading=False, reason="submit") is None
    assert queue_score(db_session, assessment=assessment, user_id=imported.id, attempt=None,
                       score_given=1.0, needs_grading=False, reason="override") is None
    db_session.rollback()


def test_a_retry_after_an_unclear_try_makes_no_second_submission(tool, lms, db_session):
    from tool.grading.sender import score_body
    course = make_course(tool, lms)
    _attempt, row = submit(db_session, course, 5.0, comment="Well done")
    row.tries, row.http_status = 2, 429  # refused outright: Canvas made nothing
    assert score_body(row, "sub")[EXT]["new_submission"] is True
    assert score_body(row, "sub")["comment"] == "Well done"
    row.maybe_applied = True  # an earlier try timed out: Canvas may have applied it
    assert score_body(row, "sub")[EXT]["new_submission"] is False
    assert "comment" not in score_body(row, "sub")  # Canvas adds every comment it is sent
    row.tries, row.http_status = 3, 429  # a later refusal does not undo that uncertainty
    assert score_body(row, "sub")[EXT]["new_submission"] is False
    db_session.rollback()


# -- backoff and what each answer means -------------------------------------------------------

def test_backoff_grows_exponentially_with_jitter_and_a_ceiling():
    from tool.grading.sender import backoff
    low = [backoff(n, 1.0, 3600.0, lambda a, b: a) for n in range(1, 16)]
    high = [backoff(n, 1.0, 3600.0, lambda a, b: b) for n in range(1, 16)]
    assert low[:4] == [0.5, 1.0, 2.0, 4.0] and high[:4] == [1.0, 2.0, 4.0, 8.0]
    assert max(high) == 3600.0 and high[-1] == 3600.0
    spread = {round(backoff(5, 1.0, 3600.0), 6) for _ in range(50)}
    assert len(spread) > 1 and all(8.0 <= value <= 16.0 for value in spread)


@pytest.mark.parametrize("status,message,expected,waiting", [
    (502, "Bad Gateway", "pending", False),
    (429, "Too many", "pending", False),
    (403, "403 Forbidden (Rate Limit Exceeded)", "pending", False),
    (None, "timed out", "pending", False),
    (422, "User not found in course or is not a student", "failed", True),
    (404, "The specified resource does not exist.", "failed", False),
    (400, "Provided timestamp of 2020 before last updated timestamp", "failed", False),
])
def test_each_answer_is_classified(status, message, expected, waiting):
    from pathlib import Path

    from tool.grading.sender import SendSettings, classify
    from tool.lti.errors import PlatformError
    from tool.lti.service_client import ClientSettings
    settings = SendSettings(client=ClientSettings(key_dir=Path(".")), backoff=1.0, max_backoff=60.0)
    retryable = expected == "pending" and status != 429
    exc = PlatformError(f"HTTP {status}", http_status=status, retryable=retryable,
                        retry_after=7.0 if status == 429 else None, platform_message=message)
    outcome = classify(exc, 1, settings)
    assert (outcome.status, outcome.waiting_for_enrollment) == (expected, waiting)
    if expected == "failed":
        assert outcome.message == message
    if status == 429:
        assert outcome.delay >= 7.0  # Retry-After honoured
    if status == 403:
        assert outcome.delay >= 5.0  # one request's worth of Canvas's bucket leaks first


# -- the shared semaphore ----------------------------------------------------------------------

def test_slots_bound_calls_in_flight_and_a_dead_holder_frees_its_slot(tool, lms):
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from tool.db import db
    from tool.grading import slots
    from tool.models import ServiceSlot, utcnow
    reg = lms.registration_id
    with Session(db.engine) as session:
        held = [slots.try_take(session, reg, 3, 30.0) for _ in range(3)]
        assert all(held) and len({slot for slot, _holder in held}) == 3
        assert slots.try_take(session, reg, 3, 30.0) is None
        assert slots.in_use(session, reg) == 3
        slots.release(session, reg, *held[0])
        again = slots.try_take(session, reg, 3, 30.0)
        assert again is not None and again[0] == held[0][0]
        # A holder that died: its lease ends and the slot is free for the next taker.
        session.execute(update(ServiceSlot).where(ServiceSlot.registration_id == reg,
                                                  ServiceSlot.slot == held[1][0])
                        .values(lease_until=utcnow() - timedelta(seconds=1)))
        session.commit()
        taken = slots.try_take(session, reg, 3, 30.0)
        assert taken is not None and taken[0] == held[1][0]
        # The dead holder's late release does not free the new holder's slot.
        slots.release(session, reg, *held[1])
        assert slots.try_take(session, reg, 3, 30.0) is None


def test_slots_hold_their_bound_under_concurrent_takers(tool, lms):
    from sqlalchemy.orm import Session

    from tool.db import db
    from tool.grading import slots
    reg = lms.registration_id
    bound, lock = 4, threading.Lock()
    state = {"now": 0, "peak": 0, "calls": 0}

    def worker():
        for _ in range(5):
            with slots.held(lambda: Session(db.engine), reg, bound, 30.0, wait=20.0) as slot:
                assert slot is not None
                with lock:
                    state["now"] += 1
                    state["calls"] += 1
                    state["peak"] = max(state["peak"], state["now"])
                threading.Event().wait(0.01)
                with lock:
                    state["now"] -= 1

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert state["calls"] == 50
    assert 1 < state["peak"] <= bound


def test_a_row_that_cannot_be_taken_gives_its_slot_back(tool, lms, db_session):
    """The slot and the row are taken in one transaction: a row someone else took (or one not
    due) rolls the slot back with it, and a taken row leaves exactly one slot held."""
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from tool import jobs
    from tool.db import db
    from tool.grading import sender, slots
    from tool.models import ScoreDelivery
    course = make_course(tool, lms)
    _attempt, row = submit(db_session, course, 4.0)
    settings = sender.SendSettings(client=jobs.client_settings(), concurrency=3, slot_wait=0.2)
    with Session(db.engine, expire_on_commit=False) as session:
        job = sender._read(session, row.id)
        session.rollback()
        session.execute(update(ScoreDelivery).where(ScoreDelivery.id == row.id).values(status="sent"))
        session.commit()
        assert sender._take(session, job, settings, force=False) == "skipped"
        assert slots.in_use(session, lms.registration_id) == 0
        session.execute(update(ScoreDelivery).where(ScoreDelivery.id == row.id).values(status="pending"))
        session.commit()
        taken, claim = sender._take(session, job, settings, force=False)
        assert taken.tries == 1 and taken.status == "sending"
        assert slots.in_use(session, lms.registration_id) == 1
        sender._finish(session, taken, claim, sender.Outcome("pending", 503, "busy", delay=60))
        assert slots.in_use(session, lms.registration_id) == 0
        again = session.get(ScoreDelivery, row.id)
        assert (again.status, again.http_status, again.lease_until) == ("pending", 503, None)


def test_the_token_is_kept_in_memory_and_read_again_after_a_401(tool, lms):
    from sqlalchemy import delete
    from sqlalchemy.orm import Session

    from tool import jobs
    from tool.db import db
    from tool.lti import ags
    from tool.lti.service_client import PlatformClient
    from tool.models import AccessToken, Registration
    with tool.app.app_context():
        registration = db.session.get(Registration, lms.registration_id)
        client = PlatformClient(lambda: Session(db.engine), registration, jobs.client_settings())
        db.session.remove()
    scopes = [ags.SCOPE_LINEITEM]
    before = lms.platform.token_requests
    first = client.token(scopes)
    with Session(db.engine) as session:  # the shared copy goes: this client still has its own
        session.execute(delete(AccessToken).where(AccessToken.registration_id == lms.registration_id))
        session.commit()
    assert client.token(scopes) == first
    assert lms.platform.token_requests - before == 1
    lms.platform.revoke_tokens()  # the platform answers 401 to it now
    client.get(lms.course.lineitems_url, scopes=scopes,
               accept="application/vnd.ims.lis.v2.lineitemcontainer+json")
    assert client.token(scopes) != first  # one refresh after the 401, kept in memory again
    assert lms.platform.token_requests - before == 2


# -- delivery over HTTP to the emulated Canvas -------------------------------------------------

def _row(tool, delivery_id):
    from tool.db import db
    from tool.models import ScoreDelivery
    with tool.app.app_context():
        row = db.session.get(ScoreDelivery, delivery_id, populate_existing=True)
        db.session.expunge(row)
        db.session.remove()
    return row


@pytest.fixture
def queue(tool):
    """The grading tasks registered and the tool's queue emptied; a consumer is started by the test."""
    from tool.grading import tasks  # noqa: F401 (registers grading.deliver)
    from tool import jobs
    jobs.huey.flush()
    started = []
    yield lambda: started.append(jobs.start_consumer(workers=2, periodic=False, max_delay=0.1))
    for running in started:
        running.stop(graceful=True)
    jobs.huey.flush()


def test_retries_through_5xx_429_throttle_and_timeouts_deliver_the_latest_score_once(tool, lms, db_session, queue):
    from tool.db import db
    course = make_course(tool, lms)
    faults = lms.platform.ags_faults
    faults.hang_seconds = 3.0  # longer than the tool's read timeout (2 s in these tests)
    # Enough faults that the first score is still retrying when the instructor changes it.
    faults.fail_next(*(["timeout", 503, 429, "throttle", 502] * 6))
    # Backoff of about a second between the outbox's tries, so the test can act between them.
    tool.settings.service_backoff = 1.0
    attempt, first = submit(db_session, course, 5.0)
    queue()

    def waiting_again():
        row = _row(tool, first.id)
        return row.status == "pending" and row.tries >= 2
    assert wait_for(waiting_again, timeout=60, every=0.02)
    second = regrade(db_session, course, attempt.id, 8.0, reason="override", comment="Late pass")
    db.session.remove()
    faults.reset()
    faults.hang_seconds = 3.0
    faults.fail_next("throttle", 429, 500, "timeout", 503)
    assert wait_for(lambda: _row(tool, second.id).status == "sent", timeout=90), _row(tool, second.id).last_error
    old = _row(tool, first.id)
    assert old.status == "superseded" and old.superseded_by_id == second.id
    held = cell(lms, course)
    assert held.score == 8.0 and held.result_score == 8.0
    assert held.score_posts == 1  # nothing but the latest score was applied, once
    assert held.comments == ["Late pass"]
    assert _row(tool, second.id).tries >= 2  # it went through the outbox's own retries too
    assert len(held.attempts) <= 1


def test_a_refusal_for_someone_not_enrolled_is_kept_and_sent_after_the_roster_shows_them(tool, lms, db_session, queue):
    from roster.rosterkit import sync
    course = make_course(tool, lms)
    lms.platform.set_status(lms.course, lms.student, "Inactive")  # Canvas: not a student now
    queue()
    _attempt, row = submit(db_session, course, 7.0)
    assert wait_for(lambda: _row(tool, row.id).status == "failed", timeout=30)
    refused = _row(tool, row.id)
    assert refused.waiting_for_enrollment and refused.http_status == 422
    assert "not a student" in refused.last_error
    assert cell(lms, course).score is None
    lms.platform.set_status(lms.course, lms.student, "Active")
    assert sync(tool, course.context_id).status == "succeeded"
    assert wait_for(lambda: _row(tool, row.id).status == "sent", timeout=30)
    assert cell(lms, course).score == 7.0


def test_one_token_serves_many_scores(tool, lms, db_session, queue):
    from roster.rosterkit import sync
    from tool.models import Attempt
    course = make_course(tool, lms)
    others = lms.platform.add_many(lms.course, 30)
    assert sync(tool, course.context_id).status == "succeeded"
    before = lms.platform.token_requests
    ids = []
    for n, person in enumerate([lms.student] + others):
        from grading.deliverykit import user_id_of
        _attempt, row = submit(db_session, course, float(n % 10), user_id=user_id_of(tool, person.sub))
        ids.append(row.id)
    queue()
    assert wait_for(lambda: all(_row(tool, i).status == "sent" for i in ids), timeout=60)
    assert lms.platform.token_requests - before == 1
    book = lms.platform.gradebook(lms.course)
    assert [book.cell(course.assignment, p).score for p in [lms.student] + others] == \
        [float(n % 10) for n in range(31)]
    assert db_session.query(Attempt).count() >= 31


def _worker(tool):
    """``flask --app app jobs worker`` in its own process, on the test's database and queue."""
    import os
    import subprocess
    import sys
    from pathlib import Path
    settings = tool.settings
    env = {**os.environ, "DATABASE_URL": settings.database_url, "JOBS_DB": str(settings.jobs_path),
           "TOOL_KEY_DIR": str(settings.key_dir), "SECRET_KEY": settings.secret_key,
           "TOOL_BASE_URL": settings.base_url, "REDIS_URL": ""}
    return subprocess.Popen([sys.executable, "-m", "flask", "--app", "app", "jobs", "worker",
                             "--workers", "1", "--no-periodic"], cwd=Path(__file__).resolve().parents[2],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _in_another_process(code: str) -> str:
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()


def test_jobs_queued_after_the_queue_is_bound_again_still_reach_worker_processes(tool):
    """A second app in one process binds the queue again (tests do; so could any caller of
    ``create_app``). The SQLite queue this process holds open must stay one that other
    processes see: a worker starting (it opens and closes the file to make huey's tables) must
    not find it unlocked and delete the WAL this process goes on writing into."""
    from huey.storage import SqliteStorage

    from tool import jobs
    storage = jobs.huey.storage
    if not isinstance(storage, SqliteStorage):
        pytest.skip("the queue is not on SQLite here")
    path = str(tool.settings.jobs_path)
    count = (f"import sqlite3; c = sqlite3.connect({path!r}); "
             "print(c.execute('select count(*) from task').fetchone()[0]); c.close()")
    jobs.huey.flush()  # this process has the queue open, as a web process does
    try:
        jobs.init_app(tool.app)  # what a second create_app() in this process does
        assert jobs.huey.pending_count() == 0  # and it goes on using the queue
        assert _in_another_process(count) == "0"  # a worker starting: open, read, close
        jobs.huey.storage.enqueue(b"probe")
        assert jobs.huey.pending_count() == 1
        assert _in_another_process(count) == "1"  # a worker sees what this process queued
    finally:
        jobs.huey.flush()


def test_a_worker_killed_mid_delivery_loses_nothing_and_makes_no_second_submission(tool, lms, db_session):
    import signal

    from sqlalchemy import update

    from tool import jobs
    from tool.db import db
    from tool.grading import tasks
    from tool.models import ScoreDelivery, utcnow
    course = make_course(tool, lms)
    jobs.huey.flush()
    lms.platform.ags_latency = 6.0  # the score is in flight long enough to kill its worker
    _attempt, row = submit(db_session, course, 9.0, comment="Good")
    db.session.remove()
    first = _worker(tool)
    outputs = []
    try:
        if not wait_for(lambda: _row(tool, row.id).status == "sending", timeout=30, every=0.05):
            first.kill()
            pytest.fail(first.communicate(timeout=15)[0].decode(errors="replace")[-3000:])
        wait_for(lambda: False, timeout=1.0)  # the POST is on the wire now
        first.send_signal(signal.SIGKILL)
        outputs.append(first.communicate(timeout=15)[0].decode(errors="replace"))
        assert first.returncode == -signal.SIGKILL
        lost = _row(tool, row.id)
        assert lost.status == "sending" and lost.tries == 1  # stranded until its lease ends
        lms.platform.ags_latency = 0.0
        # The lease is about 30 s with the default timeouts; move it instead of waiting.
        with tool.app.app_context():
            db.session.execute(update(ScoreDelivery).where(ScoreDelivery.id == row.id)
                               .values(lease_until=utcnow() - timedelta(seconds=1)))
            db.session.commit()
            db.session.remove()
        assert tasks.sweep_now() == [row.id]  # what the worker's minute sweep does
        second = _worker(tool)
        try:
            sent = wait_for(lambda: _row(tool, row.id).status == "sent", timeout=30)
        finally:
            second.terminate()
            outputs.append(second.communicate(timeout=15)[0].decode(errors="replace"))
        assert sent, (_row(tool, row.id).last_error, outputs[-1][-3000:])
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate(timeout=15)
        jobs.huey.flush()
    # The killed worker's request still lands after its latency: wait it out, then look.
    assert wait_for(lambda: cell(lms, course).score_posts >= 2, timeout=15), outputs
    held = cell(lms, course)
    assert held.score == 9.0
    assert len(held.attempts) == 1  # the resend said new_submission: false
    assert _row(tool, row.id).tries == 2


def test_slot_rows_are_made_again_when_their_registration_was_replaced(tool, db_session):
    """A registration removed and added again may get the same id on SQLite: the slot rows this
    process remembers making are gone, and taking a slot must not wait for them forever."""
    from sqlalchemy import delete

    from tool.grading import slots
    from tool.models import ServiceSlot
    from support import Lms

    env = Lms(tool)
    try:
        reg = env.registration_id
        got = slots.try_take(db_session, reg, 3, 30)
        assert got is not None
        slots.release(db_session, reg, got[0], got[1])
        db_session.execute(delete(ServiceSlot).where(ServiceSlot.registration_id == reg))
        db_session.commit()
        again = slots.try_take(db_session, reg, 3, 30)
        assert again is not None
        slots.release(db_session, reg, again[0], again[1])
    finally:
        env.stop()


def test_a_timeout_after_canvas_applied_then_a_throttle_makes_one_submission_and_one_comment(
        tool, lms, db_session, queue):
    """Canvas stores the score, the answer never comes back (a timeout), the next try is
    throttled, the one after succeeds: Canvas must hold one submission and one comment."""
    course = make_course(tool, lms)
    faults = lms.platform.ags_faults
    faults.hang_seconds = 3.0  # longer than the tool's read timeout (2 s in these tests)
    faults.fail_next("timeout_after_apply", 429, "throttle")
    tool.settings.service_backoff = 0.2
    _attempt, row = submit(db_session, course, 7.0, comment="Well done")
    queue()
    assert wait_for(lambda: _row(tool, row.id).status == "sent", timeout=60), _row(tool, row.id).last_error
    held = cell(lms, course)
    assert held.score == 7.0
    assert len(held.attempts) == 1 and held.comments == ["Well done"]
    assert _row(tool, row.id).maybe_applied and _row(tool, row.id).tries >= 2


def test_a_5xx_on_a_score_is_not_retried_inside_the_call(tool, lms, db_session, queue):
    """A 5xx may come after Canvas stored the score: the next try must come from the outbox,
    marked as possibly applied (no second submission), not repeated blindly by the client."""
    course = make_course(tool, lms)
    lms.platform.ags_faults.fail_next(503)
    tool.settings.service_backoff = 0.2
    _attempt, row = submit(db_session, course, 6.0, comment="Good")
    queue()
    assert wait_for(lambda: _row(tool, row.id).status == "sent", timeout=60), _row(tool, row.id).last_error
    sent = _row(tool, row.id)
    assert sent.tries == 2 and sent.maybe_applied
