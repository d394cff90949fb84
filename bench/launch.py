"""Launch benchmark: N complete launches (login + launch + landing page) against the emulator.

Runs the tool as it ships (SQLite by default, or ``--database-url``) and, in the same run and
against an identical emulated Canvas, the same flow done with plain pylti1p3 defaults (its Flask
helpers, a dict ToolConf, launch data in Flask's cookie session, no JWKS cache). Prints launches
per second, median and p90 tool-side time per launch (and the tool's median for each of its three
requests), platform JWKS requests per launch, and the SQL statements and commits of one returning
student's and one instructor's launch (login to landing page). Launches are course navigation launches (the same resource link each time, as a
returning person's are); ``--placement new-link`` makes every launch a link the tool never saw.

    python bench/launch.py                # 300 launches each
    python bench/launch.py --jwks-latency 0.05     # the platform's key set answers in 50 ms
    python bench/launch.py -n 1000 --database-url postgresql://postgres@127.0.0.1:5432/test
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import TimedApp, median_ms, pct

from emulator import INSTRUCTOR, LEARNER, Browser, Platform
from emulator.server import ServerThread


def make_tool(workdir: Path, database_url: str | None):
    from config import Settings
    from tool import create_app
    from tool import platforms
    from tool.db import db
    import logging

    server_app = TimedApp(None)
    server = ServerThread(server_app)
    settings = Settings(base_url=server.url, database_url=database_url or f"sqlite:///{workdir / 'tool.db'}",
                        key_dir=workdir / "keys", secret_key="bench", proxy_hops=0,
                        jobs_path=workdir / "jobs.db")
    app = create_app(settings)
    logging.getLogger().setLevel(logging.WARNING)
    server_app.app = app
    server.start()

    def register(platform: Platform, reg) -> None:
        with app.app_context():
            platforms.add_platform(db.session, platforms.PlatformSpec(
                platform.issuer, reg.client_id, platform.auth_login_url, platform.token_url,
                platform.jwks_url), reg.deployment_ids)
            db.session.remove()

    return server, server_app, register


def make_plain_pylti1p3(workdir: Path):
    """The same flow with pylti1p3 defaults, the way its README and Flask example wire it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from flask import Flask
    from pylti1p3.contrib.flask import FlaskMessageLaunch, FlaskOIDCLogin, FlaskRequest
    from pylti1p3.tool_config import ToolConfDict

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    app = Flask("plain")
    app.secret_key = "bench"
    state = {"conf": None}
    server_app = TimedApp(app)
    server = ServerThread(server_app)
    launch_url = server.url + "/launch"

    @app.route("/login", methods=["GET", "POST"])
    def login():
        oidc = FlaskOIDCLogin(FlaskRequest(), state["conf"])
        return oidc.redirect(launch_url)

    @app.route("/launch", methods=["POST"])
    def launch():
        message = FlaskMessageLaunch(FlaskRequest(), state["conf"])
        data = message.get_launch_data()
        view = "instructor" if message.check_teacher_access() else "student"
        return f"<h1>{view}</h1><p>{data.get('name', '')}</p>"

    def register(platform: Platform, reg) -> None:
        conf = ToolConfDict({platform.issuer: [{
            "default": True, "client_id": reg.client_id, "auth_login_url": platform.auth_login_url,
            "auth_token_url": platform.token_url, "key_set_url": platform.jwks_url,
            "deployment_ids": list(reg.deployment_ids)}]})
        conf.set_private_key(platform.issuer, private_pem, client_id=reg.client_id)
        state["conf"] = conf

    server.start()
    return server, server_app, register, server.url + "/login", launch_url


def run(name: str, platform: Platform, login_url: str, reg, users, course, timed: TimedApp, n: int,
        warmup: int, placement: str | None) -> dict:
    jwks_before = platform.jwks_requests  # the warm-up counts: a cold cache's first fetch is real

    def pending(i: int):
        return platform.resource_link_launch(reg, users[i % len(users)], course, placement=placement)

    for i in range(warmup):
        Browser().launch(login_url, pending(i))
    timed.take()
    per_launch: list[float] = []
    cpu_per_launch: list[float] = []
    per_step: dict[str, list[float]] = {}
    began = time.perf_counter()
    failures = 0
    for i in range(n):
        resp = Browser().launch(login_url, pending(i))
        if resp.status_code != 200:
            failures += 1
        samples = timed.take()
        per_launch.append(sum(wall for _path, wall, _cpu in samples))
        cpu_per_launch.append(sum(cpu for _path, _wall, cpu in samples))
        for path, wall, _cpu in samples:
            per_step.setdefault(_step(path), []).append(wall)
    wall = time.perf_counter() - began
    return {"name": name, "n": n, "failures": failures, "per_s": n / wall,
            "median_ms": median_ms(per_launch), "p90_ms": pct(per_launch, 0.9),
            "cpu_ms": median_ms(cpu_per_launch),
            "steps": {step: median_ms(walls) for step, walls in per_step.items()},
            "jwks_per_launch": (platform.jwks_requests - jwks_before) / (n + warmup)}


def _step(path: str) -> str:
    """Which request of a launch a path is: the login, the launch, or the page it lands on."""
    if path.endswith("/login"):
        return "login"
    if path.endswith("/launch"):
        return "launch"
    return "landing page"


def count_statements(login_url: str, platform: Platform, reg, course, users, placement) -> dict:
    """SQL statements and commits of one returning student's and one instructor's launch."""
    from sqlalchemy import event
    from tool.db import db
    seen = {"statements": 0, "commits": 0}

    def statement(*_args) -> None:
        seen["statements"] += 1

    def commit(*_args) -> None:
        seen["commits"] += 1

    out = {}
    student = next(u for i, u in enumerate(users) if i % 10)
    for who, user in (("student", student), ("instructor", users[0])):
        Browser().launch(login_url, platform.resource_link_launch(reg, user, course, placement=placement))
        event.listen(db.engine, "before_cursor_execute", statement)
        event.listen(db.engine, "commit", commit)
        seen.update(statements=0, commits=0)
        Browser().launch(login_url, platform.resource_link_launch(reg, user, course, placement=placement))
        event.remove(db.engine, "before_cursor_execute", statement)
        event.remove(db.engine, "commit", commit)
        out[who] = dict(seen)
    return out


def emulated_canvas(login_url: str, launch_url: str, jwks_url: str, people: int):
    platform = Platform()
    platform.start()
    reg = platform.register_tool(login_url=login_url, redirect_uris=[launch_url],
                                 target_link_uri=launch_url, jwks_url=jwks_url)
    course = platform.add_course(label="BENCH", title="Benchmark course")
    users = []
    for i in range(people):
        user = platform.add_user(name=f"Person {i}")
        platform.enroll(course, user, roles=[INSTRUCTOR if i % 10 == 0 else LEARNER])
        users.append(user)
    return platform, reg, course, users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=300, help="launches per flow (default 300)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--people", type=int, default=50, help="distinct users launching")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--jwks-latency", type=float, default=0.0,
                        help="seconds the platform's key set takes to answer (a real Canvas: about 0.05)")
    parser.add_argument("--placement", choices=["course_navigation", "new-link"],
                        default="course_navigation",
                        help="course_navigation: the same link every launch; new-link: a new one each time")
    args = parser.parse_args()
    placement = None if args.placement == "new-link" else args.placement

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        tool_server, tool_timed, register_tool = make_tool(workdir, args.database_url)
        plain_server, plain_timed, register_plain, plain_login, plain_launch = make_plain_pylti1p3(workdir)
        ours_platform, ours_reg, ours_course, ours_users = emulated_canvas(
            tool_server.url + "/lti/login", tool_server.url + "/lti/launch",
            tool_server.url + "/.well-known/jwks.json", args.people)
        register_tool(ours_platform, ours_reg)
        plain_platform, plain_reg, plain_course, plain_users = emulated_canvas(
            plain_login, plain_launch, plain_server.url + "/jwks", args.people)
        register_plain(plain_platform, plain_reg)
        # The emulator's key set answers this slowly, as a real Canvas across the internet does.
        ours_platform.jwks_delay = plain_platform.jwks_delay = args.jwks_latency

        results = []
        # Alternate the two flows in rounds so machine noise hits both alike.
        rounds = 3
        per_round = max(1, args.n // rounds)
        totals = {"tool": [], "plain": []}
        for r in range(rounds):
            totals["tool"].append(run("tool", ours_platform, tool_server.url + "/lti/login", ours_reg,
                                      ours_users, ours_course, tool_timed, per_round,
                                      args.warmup if r == 0 else 0, placement))
            totals["plain"].append(run("plain pylti1p3", plain_platform, plain_login, plain_reg,
                                       plain_users, plain_course, plain_timed, per_round,
                                       args.warmup if r == 0 else 0, placement))
        for key, label in (("tool", "this tool"), ("plain", "plain pylti1p3 defaults")):
            rows = totals[key]
            results.append({
                "name": label, "n": sum(r["n"] for r in rows), "failures": sum(r["failures"] for r in rows),
                "per_s": sorted(r["per_s"] for r in rows)[len(rows) // 2],
                "median_ms": sorted(r["median_ms"] for r in rows)[len(rows) // 2],
                "p90_ms": sorted(r["p90_ms"] for r in rows)[len(rows) // 2],
                "cpu_ms": sorted(r["cpu_ms"] for r in rows)[len(rows) // 2],
                "jwks_per_launch": sum(r["jwks_per_launch"] * r["n"] for r in rows) / sum(r["n"] for r in rows),
            })
        db = args.database_url.split(":", 1)[0] if args.database_url else "sqlite"
        counts = count_statements(tool_server.url + "/lti/login", ours_platform, ours_reg, ours_course,
                                  ours_users, placement)
        print(f"launch benchmark: {results[0]['n']} launches per flow in {rounds} alternating rounds, "
              f"database {db}, {args.people} people, key set latency {args.jwks_latency * 1000:.0f} ms, "
              f"{args.placement} launches")
        print(f"{'flow':<26}{'launches/s':>11}{'median ms':>11}{'p90 ms':>9}{'CPU ms':>9}"
              f"{'JWKS req/launch':>17}{'failed':>8}")
        for row in results:
            print(f"{row['name']:<26}{row['per_s']:>11.1f}{row['median_ms']:>11.2f}{row['p90_ms']:>9.2f}"
                  f"{row['cpu_ms']:>9.2f}{row['jwks_per_launch']:>17.3f}{row['failures']:>8}")
        ours, plain = results
        print(f"plain / tool: median tool-side time x{plain['median_ms'] / ours['median_ms']:.2f} "
              f"(tool CPU x{plain['cpu_ms'] / ours['cpu_ms']:.2f}), "
              f"throughput x{ours['per_s'] / plain['per_s']:.2f}")
        steps = {}
        for row in totals["tool"]:
            for step, ms in row["steps"].items():
                steps.setdefault(step, []).append(ms)
        print("this tool, median ms per request: " + ", ".join(
            f"{step} {sorted(v)[len(v) // 2]:.2f}" for step, v in steps.items()))
        print("tool-side time = server time for the login, launch and landing requests of one launch; "
              "CPU = the serving threads' CPU time for them (median over launches; medians of 3 rounds)")
        print("SQL per returning launch, login to landing page: " + ", ".join(
            f"{who} {c['statements']} statements / {c['commits']} commit{'s' if c['commits'] != 1 else ''}"
            for who, c in counts.items()))
        for server in (tool_server, plain_server):
            server.stop()
        ours_platform.stop()
        plain_platform.stop()


if __name__ == "__main__":
    main()
