"""Score delivery benchmark: a class's scores sent to the emulated Canvas through the outbox.

    python bench/grades.py [--scores 10000] [--plain 500] [--workers 12] [--database-url URL]

The emulator runs in a child process (its CPU is not the tool's). Phases, each with its own
assignment (line item) and fresh outbox rows for every student:
  1. instant answers; 2. 100 ms per AGS call with Canvas's throttle bucket on (facts sheet
  section 9: 600 units, 10/s leak, 50 per request in flight); 3. the plain way under the same
  conditions: pylti1p3 ``AssignmentsGradesService.put_grade`` one score after another.
Scores are queued in one transaction (``queue_score``, as a regrade does) while a huey consumer
in this process (``--workers`` threads, started first as a school's worker would be) sends them,
bounded by the shared slots (DELIVERY_CONCURRENCY, 10). 12 threads by default: the 10 a
registration may have in flight plus 2, which hold their next row ready at the slots' gate.
The time runs from the first ``queue_score`` to the last row sent. Prints scores/s, token
requests, deliveries retried, throttle refusals, peak memory, and the outbox/plain ratio.
Never part of the test suite.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import socket
import tempfile
import threading
import time
from pathlib import Path

from _common import ROOT  # noqa: F401  (puts the project on sys.path)
from roster import PeakRss


def emulator_process(conn, tool_jwks_url: str, students: int) -> None:
    from emulator import Platform
    p = Platform()
    p.start()
    tool = p.register_tool(login_url="http://x/login", redirect_uris=["http://x/launch"],
                           target_link_uri="http://x/launch", jwks_url=tool_jwks_url)
    course = p.add_course(label="BIG", title="Big course")
    users = p.add_many(course, students)
    conn.send({"issuer": p.issuer, "token_url": p.token_url, "auth_url": p.auth_login_url,
               "jwks_url": p.jwks_url, "client_id": tool.client_id,
               "deployment_id": tool.deployment_ids[0], "context_id": course.context_id,
               "lineitems_url": course.lineitems_url, "subs": [u.sub for u in users],
               "scopes": [s for s in tool.scopes if "lti-ags" in s]})
    while True:
        command, arg = conn.recv()
        if command == "done":
            break
        if command == "assignment":
            a = p.add_assignment(course, tool, title=arg, points=10)
            conn.send(a.default_line_item().url)
        elif command == "conditions":
            p.ags_latency, p.throttle.enabled = arg
            p.throttle.reset()
            conn.send(None)
        elif command == "stats":
            with p.lock:
                posts = sum(r.posts for li in p.line_item_records.values() if li.url == arg
                            for r in li.results.values())
            conn.send({"tokens": p.token_requests, "refusals": p.throttle.refusals,
                       "peak_in_flight": p.throttle.peak_in_flight, "posts": posts})
    p.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scores", type=int, default=10_000)
    ap.add_argument("--plain", type=int, default=500)
    ap.add_argument("--workers", type=int, default=12)
    ap.add_argument("--database-url")
    args = ap.parse_args()

    import logging

    from sqlalchemy import func, select
    from werkzeug.serving import make_server

    from config import Settings
    from tool import create_app, jobs, platforms
    from tool.db import db
    from tool.grading import sender, tasks  # noqa: F401 (registers grading.deliver)
    from tool.grading.delivery import queue_score
    from tool.models import (Assessment, Attempt, Context, Deployment, Membership, ScoreDelivery,
                             User, utcnow)

    tmp = Path(tempfile.mkdtemp(prefix="bench-grades-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(base_url=f"http://127.0.0.1:{port}", port=port, key_dir=tmp / "keys",
                        database_url=args.database_url or f"sqlite:///{tmp / 'tool.db'}",
                        secret_key="bench", jobs_path=tmp / "jobs.db", proxy_hops=0)
    app = create_app(settings)
    logging.getLogger().setLevel(logging.ERROR)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=emulator_process, daemon=True, args=(
        child, settings.base_url + "/.well-known/jwks.json", args.scores))
    proc.start()
    env = parent.recv()

    def ask(command, arg=None):
        parent.send((command, arg))
        return parent.recv()

    with app.app_context():
        reg = platforms.add_platform(db.session, platforms.PlatformSpec(
            issuer=env["issuer"], client_id=env["client_id"], auth_login_url=env["auth_url"],
            auth_token_url=env["token_url"], key_set_url=env["jwks_url"]), [env["deployment_id"]])
        dep = db.session.scalars(select(Deployment).where(Deployment.registration_id == reg.id)).first()
        ctx = Context(registration_id=reg.id, deployment_id=dep.id, lti_context_id=env["context_id"],
                      lineitems_url=env["lineitems_url"], ags_scopes=env["scopes"], context_types=[])
        db.session.add(ctx)
        db.session.flush()
        users = [User(registration_id=reg.id, sub=sub, name=f"Student {n}")
                 for n, sub in enumerate(env["subs"])]
        db.session.add_all(users)
        db.session.flush()
        db.session.add_all([Membership(context_id=ctx.id, user_id=u.id, is_active=True,
                                       roles=["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"])
                            for u in users])
        db.session.commit()
        user_ids = [u.id for u in users]
        print(f"emulator ready: {len(user_ids)} students; tool DB {settings.database_url.split('?')[0]}",
              flush=True)

        def outbox_phase(label: str, latency: float, throttle: bool) -> float:
            url = ask("assignment", label)
            ask("conditions", (latency, throttle))
            assessment = Assessment(context_id=ctx.id, title=label, points_possible=10.0,
                                    lineitem_url=url, is_published=True)
            db.session.add(assessment)
            db.session.flush()
            now = utcnow()
            attempts = [Attempt(assessment_id=assessment.id, user_id=u, status="graded", score=n % 11,
                                submitted_at=now) for n, u in enumerate(user_ids)]
            db.session.add_all(attempts)
            db.session.flush()
            before = ask("stats", url)
            stats0 = sender.client_stats()
            jobs.huey.flush()
            # Workers run before the scores are written, as at a school: sending starts while
            # the ids of the committed rows are still being handed to the queue.
            consumer = jobs.start_consumer(workers=args.workers, periodic=False, max_delay=0.05)
            meter = PeakRss().start()
            started = time.perf_counter()
            for attempt in attempts:
                queue_score(db.session, assessment=assessment, user_id=attempt.user_id, attempt=attempt,
                            score_given=float(attempt.score), needs_grading=False, reason="submit")
            written = time.perf_counter() - started
            db.session.commit()  # the ids go to the queue now
            queued = time.perf_counter() - started
            try:
                # Asked on a connection of its own: rolling back db.session would expire the
                # 10,000 attempts it holds every time (most of a core at this rate).
                unsent = select(func.count()).select_from(ScoreDelivery).where(
                    ScoreDelivery.assessment_id == assessment.id, ScoreDelivery.status != "sent")
                while True:
                    with db.engine.connect() as conn:
                        left = conn.scalar(unsent)
                    if not left:
                        break
                    time.sleep(0.2)
                wall = time.perf_counter() - started
            finally:
                consumer.stop(graceful=True)
            peak = meter.stop()
            after = ask("stats", url)
            stats1 = sender.client_stats()
            retried = db.session.scalar(select(func.count()).select_from(ScoreDelivery).where(
                ScoreDelivery.assessment_id == assessment.id, ScoreDelivery.tries > 1))
            n = len(attempts)
            print(f"{label:<40} {n:>6} scores  {n / wall:7.1f} scores/s  wall {wall:6.1f} s  "
                  f"(rows written in {written:4.1f} s, every id on the queue at {queued:4.1f} s)  "
                  f"token requests {after['tokens'] - before['tokens']}  "
                  f"deliveries retried {retried} (in-call retries {stats1['retries'] - stats0['retries']})  "
                  f"throttle refusals {after['refusals'] - before['refusals']}  "
                  f"peak in flight {after['peak_in_flight']}  posts {after['posts']}  "
                  f"peak RSS +{peak / 2**20:.1f} MiB", flush=True)
            return n / wall

        outbox_phase("outbox, instant answers", 0.0, False)
        rate = outbox_phase("outbox, 100 ms latency, throttle bucket on", 0.1, True)

        # The plain way: pylti1p3's put_grade, one score after another, same conditions.
        from pylti1p3.assignments_grades import AssignmentsGradesService
        from pylti1p3.grade import Grade
        from pylti1p3.service_connector import ServiceConnector

        from tool.lti import http, keys
        from tool.lti.toolconf import to_library_registration
        url = ask("assignment", "plain")
        ask("conditions", (0.1, True))
        lib_reg = to_library_registration(db.session, reg, settings.key_dir)
        kid, _pem = keys.signing_key(db.session, settings.key_dir)
        lib_reg.get_kid = lambda: kid
        service = AssignmentsGradesService(ServiceConnector(lib_reg, requests_session=http.session()),
                                           {"scope": env["scopes"], "lineitem": url})
        before = ask("stats", url)
        sample = env["subs"][:args.plain]
        started = time.perf_counter()
        for n, sub in enumerate(sample):
            grade = (Grade().set_score_given(float(n % 11)).set_score_maximum(10.0)
                     .set_timestamp(utcnow().isoformat() + "Z").set_activity_progress("Completed")
                     .set_grading_progress("FullyGraded").set_user_id(sub))
            service.put_grade(grade)
        wall = time.perf_counter() - started
        after = ask("stats", url)
        plain_rate = len(sample) / wall
        print(f"{'plain: pylti1p3 put_grade, one by one':<40} {len(sample):>6} scores  "
              f"{plain_rate:7.1f} scores/s  wall {wall:6.1f} s  token requests "
              f"{after['tokens'] - before['tokens']}  throttle refusals "
              f"{after['refusals'] - before['refusals']}", flush=True)
        print(f"outbox / plain at 100 ms: {rate / plain_rate:.1f}x", flush=True)
    parent.send(("done", None))
    proc.join(10)
    server.shutdown()


if __name__ == "__main__":
    main()
