"""Roster sync benchmark: a big course served by the emulated Canvas in pages of 50.

    python bench/roster.py [--members 50000] [--small 5000] [--database-url URL] [--skip-plain]
                           [--keep-alive] [--repeat N] [--imported]

The emulator runs in a child process, so this process's CPU time is the tool's alone (HTTP
client, JSON, matching, SQL; every thread of the process counts). Phases, each on the same
emulated course:
  1. bulk sync of a small course (memory baseline), 2. bulk full sync of the big course,
  3. the same again, unchanged: the rows it writes to ``users`` and ``memberships`` are counted
  by database triggers (must be 0), 4. the plain way on a fresh registration: pylti1p3
  ``get_members()`` (every page in one list) then one ORM upsert per member.
With ``--imported``, one more phase on a third registration: a course whose every member was
imported from an LTI 1.1 install (a user row with the member's LTI 1.1 id and no ``sub``) before
the first sync, which must claim each of them by that id.
Peak memory is the highest resident set size above the phase's starting point, sampled every
20 ms. Each line also gives the emulator's own CPU time for the phase (the platform's share of
the wall time). ``--keep-alive`` lets the emulator keep connections open between pages, as
Canvas does (by default it closes each one: a new connection per page). ``--repeat`` runs
phases 2 and 3 again on fresh courses (runs on a busy machine vary).

To compare with another version of the tool, run this same file from that version's checkout
(``git worktree add ../before HEAD~1; cp bench/roster.py ../before/bench/``): it imports the
tool next to it. Prints one line per phase and the plain/bulk ratio. Never part of the test
suite.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path

from _common import ROOT  # noqa: F401  (puts the project on sys.path)


def emulator_process(conn, tool_jwks_url: str, sizes: list[int], keep_alive: bool,
                     imported: bool = False) -> None:
    from emulator import INSTRUCTOR, Platform
    if keep_alive:
        from emulator.server import QuietHandler
        QuietHandler.protocol_version = "HTTP/1.1"  # keep-alive, as Canvas answers
    p = Platform()
    p.start()
    tools = [p.register_tool(login_url="http://x/login", redirect_uris=["http://x/launch"],
                             target_link_uri="http://x/launch", jwks_url=tool_jwks_url) for _ in range(3)]
    courses = []
    for n in sizes:
        course = p.add_course(label=f"C{n}", title=f"Course of {n}")
        teacher = p.add_user(name="Ada Teacher")
        p.enroll(course, teacher, roles=[INSTRUCTOR])
        p.add_many(course, n - 1)
        courses.append({"n": n, "context_id": course.context_id, "url": course.memberships_url,
                        "legacy_ids": [e.user.lti11_legacy_user_id for e in course.enrollments.values()]
                        if imported and len(courses) == 1 else []})
    conn.send({"issuer": p.issuer, "token_url": p.token_url, "auth_url": p.auth_login_url,
               "jwks_url": p.jwks_url, "courses": courses,
               "tools": [(t.client_id, t.deployment_ids[0]) for t in tools]})
    conn.recv()  # until the parent is done
    p.stop()


class PeakRss:
    """Highest RSS (bytes) seen by a 20 ms sampler since ``start()``, above the starting RSS."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self._stop = threading.Event()

    def rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def start(self) -> "PeakRss":
        self.base = self.peak = self.rss()
        self._stop.clear()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.rss())

    def stop(self) -> int:
        self._stop.set()
        self.thread.join()
        self.peak = max(self.peak, self.rss())
        return self.peak - self.base


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of another process, from /proc."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(label: str, n: int, fn, emulator_pid: int | None = None):
    meter = PeakRss().start()
    other0 = cpu_seconds(emulator_pid) if emulator_pid else 0.0
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = fn()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    other = cpu_seconds(emulator_pid) - other0 if emulator_pid else 0.0
    peak = meter.stop()
    print(f"{label:<34} {n:>7} members  wall {wall:7.2f} s  tool CPU {cpu / n * 1e6:6.1f} µs/member  "
          f"peak RSS +{peak / 2**20:6.1f} MiB  emulator CPU {other:5.1f} s  {out}", flush=True)
    return wall


class RowWrites:
    """Triggers counting every row inserted, updated or deleted in users and memberships."""

    TABLES = ("users", "memberships")

    def __init__(self, engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"

    def __enter__(self) -> "RowWrites":
        with self.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE bench_row_writes (n INTEGER NOT NULL)")
            conn.exec_driver_sql("INSERT INTO bench_row_writes VALUES (0)")
            if not self.sqlite:
                conn.exec_driver_sql(
                    "CREATE FUNCTION bench_count_write() RETURNS trigger AS $$ BEGIN "
                    "UPDATE bench_row_writes SET n = n + 1; RETURN NULL; END $$ LANGUAGE plpgsql")
            for table in self.TABLES:
                for event in ("INSERT", "UPDATE", "DELETE"):
                    name = f"bench_{table}_{event.lower()}"
                    if self.sqlite:
                        conn.exec_driver_sql(f"CREATE TRIGGER {name} AFTER {event} ON {table} "
                                             "BEGIN UPDATE bench_row_writes SET n = n + 1; END")
                    else:
                        conn.exec_driver_sql(f"CREATE TRIGGER {name} AFTER {event} ON {table} "
                                             "FOR EACH ROW EXECUTE FUNCTION bench_count_write()")
        return self

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.exec_driver_sql("SELECT n FROM bench_row_writes").scalar()

    def __exit__(self, *exc_info) -> None:
        with self.engine.begin() as conn:
            for table in self.TABLES:
                for event in ("insert", "update", "delete"):
                    on = "" if self.sqlite else f" ON {table}"
                    conn.exec_driver_sql(f"DROP TRIGGER bench_{table}_{event}{on}")
            if not self.sqlite:
                conn.exec_driver_sql("DROP FUNCTION bench_count_write()")
            conn.exec_driver_sql("DROP TABLE bench_row_writes")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=50_000)
    ap.add_argument("--small", type=int, default=5_000)
    ap.add_argument("--database-url")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--keep-alive", action="store_true",
                    help="the emulator keeps connections open between pages, as Canvas does")
    ap.add_argument("--repeat", type=int, default=1,
                    help="run the big course's full and unchanged syncs this many times")
    ap.add_argument("--imported", action="store_true",
                    help="also sync the big course with every member imported from LTI 1.1 first")
    args = ap.parse_args()

    import logging

    from sqlalchemy import func, select
    from sqlalchemy.orm import Session
    from werkzeug.serving import make_server

    from config import Settings
    from tool import create_app, platforms
    from tool.db import db
    from tool.models import Context, Deployment, Membership, User

    tmp = Path(tempfile.mkdtemp(prefix="bench-roster-"))
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(base_url=f"http://127.0.0.1:{port}", port=port, key_dir=tmp / "keys",
                        database_url=args.database_url or f"sqlite:///{tmp / 'tool.db'}",
                        secret_key="bench", jobs_path=tmp / "jobs.db", proxy_hops=0)
    app = create_app(settings)
    logging.getLogger().setLevel(logging.WARNING)
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(
        target=emulator_process, args=(child, settings.base_url + "/.well-known/jwks.json",
                                       [args.small] + [args.members] * args.repeat,
                                       args.keep_alive, args.imported), daemon=True)
    proc.start()
    env = parent.recv()
    print(f"emulator ready ({'keep-alive' if args.keep_alive else 'a connection per page'}); "
          f"tool DB {settings.database_url.split('?')[0]}", flush=True)

    from tool import jobs
    from tool.lti.nrps import all_members_with_pylti1p3
    from tool.roster.matching import find_or_create_user
    from tool.roster.runs import create_run
    from tool.roster.sync import run_sync

    with app.app_context():
        regs = []
        for client_id, deployment_id in env["tools"]:
            reg = platforms.add_platform(db.session, platforms.PlatformSpec(
                issuer=env["issuer"], client_id=client_id, auth_login_url=env["auth_url"],
                auth_token_url=env["token_url"], key_set_url=env["jwks_url"]), [deployment_id])
            regs.append(reg)

        def context_for(reg, course) -> Context:
            dep = db.session.scalars(select(Deployment).where(Deployment.registration_id == reg.id)).first()
            ctx = Context(registration_id=reg.id, deployment_id=dep.id, lti_context_id=course["context_id"],
                          memberships_url=course["url"], context_types=[], ags_scopes=[])
            db.session.add(ctx)
            db.session.commit()
            return ctx

        def bulk(ctx):
            run = create_run(db.session, ctx, "bench")
            run = run_sync(db.session, run.id, jobs.client_settings(), lambda: Session(db.engine))
            assert run.status == "succeeded", run.error
            return f"{run.pages_fetched} pages, rows written {run.rows_written}"

        small, *bigs = env["courses"]
        big = bigs[0]
        pid = proc.pid
        measure("bulk sync (small course)", small["n"], lambda: bulk(context_for(regs[0], small)), pid)
        walls = []
        for big_course in bigs:
            big_ctx = context_for(regs[0], big_course)
            walls.append(measure("bulk full sync", big["n"], lambda: bulk(big_ctx), pid))
            with RowWrites(db.engine) as writes:
                measure("bulk sync again, unchanged", big["n"],
                        lambda: bulk(big_ctx) + f", rows written seen by triggers {writes.count()}",
                        pid)
            members = db.session.scalar(select(func.count()).select_from(Membership)
                                        .where(Membership.context_id == big_ctx.id))
            assert members == big["n"], members
        bulk_wall = min(walls)

        if args.imported:
            from sqlalchemy import insert
            imported_reg = regs[2]
            for start in range(0, len(big["legacy_ids"]), 5000):
                db.session.execute(insert(User), [
                    {"registration_id": imported_reg.id, "sub": None, "name": f"Imported {i}",
                     "matched_by": "created", "lti11_legacy_user_id": legacy}
                    for i, legacy in enumerate(big["legacy_ids"][start:start + 5000], start)])
            db.session.commit()
            imported_ctx = context_for(imported_reg, big)
            measure("bulk sync, all imported from LTI 1.1", big["n"], lambda: bulk(imported_ctx), pid)
            claimed = db.session.scalar(select(func.count()).select_from(User).where(
                User.registration_id == imported_reg.id, User.matched_by == "lti11_legacy_user_id"))
            assert claimed == big["n"], claimed

        if not args.skip_plain:
            plain_reg, plain_ctx = regs[1], context_for(regs[1], big)

            def plain():
                fetched = all_members_with_pylti1p3(plain_reg, settings.key_dir, big["url"])
                for m in fetched:
                    profile = {k: m.get(k) for k in ("name", "given_name", "family_name", "email",
                                                     "picture", "lis_person_sourcedid",
                                                     "lti11_legacy_user_id")}
                    user = find_or_create_user(db.session, plain_reg, m["user_id"], profile)
                    row = db.session.scalars(select(Membership).where(
                        Membership.context_id == plain_ctx.id, Membership.user_id == user.id)).first()
                    if row is None:
                        db.session.add(Membership(context_id=plain_ctx.id, user_id=user.id,
                                                  roles=m.get("roles", []), is_active=True))
                    else:
                        row.roles = m.get("roles", [])
                    db.session.flush()
                db.session.commit()
                return f"{len(fetched)} members in one list"

            plain_wall = measure("plain: get_members + ORM per member", big["n"], plain, pid)
            users = db.session.scalar(select(func.count()).select_from(User)
                                      .where(User.registration_id == plain_reg.id))
            assert users == big["n"], users
            print(f"plain / bulk wall time: {plain_wall / bulk_wall:.1f}x", flush=True)
    parent.send("done")
    proc.join(10)
    server.shutdown()


if __name__ == "__main__":
    main()
