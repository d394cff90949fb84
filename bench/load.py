"""Load benchmark: the tool under gunicorn, with the platform in its own process and the load from
several client processes, each doing complete launches as a browser does.

For each number of web workers and each database, the tool is served by ``gunicorn`` with the
repository's ``gunicorn.conf.py`` (gthread workers, the app preloaded, job threads off) on a
socket this script binds on a free port. The emulated Canvas runs in a child process with one
course of returning students: every student has launched once before the measured launches
(warm-up, not counted). Client processes then launch students over and over, each launch being
what a browser does: login initiation, the platform's auth endpoint, the id_token form post,
the landing page. Student launches queue no background job, so no job worker runs.

The same flow done with plain pylti1p3 defaults (as in ``bench/launch.py``: its Flask helpers,
a dict ToolConf, the launch in Flask's cookie session, no key set cache) is served by gunicorn
with the same configuration and workers in the same run, as the baseline.

Reported per configuration: launches per second, p50/p90/p99 of a complete launch as a client
sees it, errors (any error makes the script exit non-zero), and CPU per launch of the tool's
gunicorn processes (master and workers, from /proc) and of the platform's process.

    python bench/load.py                                  # 2 and 4 workers, SQLite and PostgreSQL
    python bench/load.py --workers 4 --db sqlite --clients 6 --duration 30
    python bench/load.py --launches 1000 --json           # a fixed count; JSON into bench/results/
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform as host
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

from _common import ROOT, median_ms, pct

PYTHON_BIN = Path(sys.executable).parent
GUNICORN = str(PYTHON_BIN / "gunicorn")
FLASK = str(PYTHON_BIN / "flask")
CONF = ROOT / "gunicorn.conf.py"
PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TIMEOUT = 10  # seconds, every HTTP call
START_WAIT = 60  # seconds for gunicorn to serve, for clients to finish their warm-up
TICKS = os.sysconf("SC_CLK_TCK")
# Settings of the calling shell that would change what is measured.
DROPPED_ENV = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "JOBS_IMMEDIATE", "JOBS_DB", "TOOL_KEY_DIR",
               "TOOL_BASE_URL", "WEB_CONCURRENCY", "WEB_THREADS", "HOST", "PORT", "GUNICORN_CMD_ARGS",
               "SANDBOX", "SANDBOX_PASSWORD", "PROXY_HOPS")


# -- processes ------------------------------------------------------------------------------------

def die_with_parent() -> None:
    """Linux: this process gets SIGTERM when the benchmark dies, even by SIGKILL. Ctrl-C is the
    benchmark's to handle: it stops every child itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of ``pid`` (all its threads) from /proc; with ``children``, plus the time of
    children it has reaped (a gunicorn worker recycled during the run still counts)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / TICKS


def child_pids(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent:
            found.append(int(entry))
    return found


def tree_cpu(master: int) -> float:
    """CPU seconds of a gunicorn master, its live workers and the workers it has reaped."""
    return cpu_seconds(master, children=True) + sum(cpu_seconds(pid) for pid in child_pids(master))


def bound_socket() -> socket.socket:
    """A listening socket on a free loopback port, handed to gunicorn as ``fd://``: no race for
    the port, and the same address for every configuration."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class Gunicorn:
    """``gunicorn -c gunicorn.conf.py`` on an inherited socket, in its own process group."""

    def __init__(self, app_spec: str, sock: socket.socket, env: dict, workers: int, log: Path,
                 extra: tuple[str, ...] = ()) -> None:
        self.url = "http://127.0.0.1:%d" % sock.getsockname()[1]
        self.workers = workers
        self.log = log
        env = dict(env, WEB_CONCURRENCY=str(workers))
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                # No control socket: it would replace the one of a gunicorn already running as
                # this user ($HOME/.gunicorn/gunicorn.ctl).
                [GUNICORN, "-c", str(CONF), "--bind", f"fd://{sock.fileno()}", "--no-control-socket",
                 *extra, app_spec],
                cwd=ROOT, env=env, pass_fds=(sock.fileno(),), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)

    def wait_ready(self) -> None:
        import requests
        deadline = time.monotonic() + START_WAIT
        with requests.Session() as http:
            http.trust_env = False
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SetupError(f"gunicorn exited with status {self.proc.returncode}", self.log)
                try:
                    if http.get(self.url + "/", timeout=2).status_code == 200 and \
                            len(child_pids(self.proc.pid)) >= self.workers:
                        return
                except requests.RequestException:
                    pass
                time.sleep(0.1)
        raise SetupError(f"gunicorn did not serve {self.url}/ with {self.workers} workers "
                         f"within {START_WAIT} s", self.log)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
            except ProcessLookupError:
                pass
        # Workers are in the same group: none may outlive the master.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class SetupError(Exception):
    def __init__(self, message: str, log: Path | None = None) -> None:
        if log is not None and log.exists():
            tail = log.read_text(errors="replace").splitlines()[-25:]
            message += "\n  last lines of %s:\n    %s" % (log, "\n    ".join(tail))
        super().__init__(message)


# -- the platform, in its own process -------------------------------------------------------------

def serve_platform(conn, tools: dict, students: int, jwks_latency: float) -> None:
    """Child process: the emulated Canvas with one course of ``students`` and a registration per
    tool in ``tools`` ({name: base URL with its login, launch and key set paths}). A launch is made
    per request to ``POST /_bench/launch`` (the page Canvas renders when a link is clicked), so
    every client process gets fresh launches from this process."""
    die_with_parent()
    from flask import jsonify, request

    from emulator import LEARNER, Platform

    platform = Platform()
    regs = {name: platform.register_tool(login_url=urls["login"], redirect_uris=[urls["launch"]],
                                         target_link_uri=urls["launch"], jwks_url=urls["jwks"])
            for name, urls in tools.items()}
    course = platform.add_course(label="LOAD101", title="Load course")
    users = platform.add_many(course, students, role=LEARNER)
    recent: deque[str] = deque()
    platform.jwks_delay = jwks_latency

    @platform.app.post("/_bench/launch")
    def _bench_launch():
        pending = platform.resource_link_launch(regs[request.form["tool"]],
                                                users[int(request.form["user"]) % len(users)], course)
        with platform.lock:  # keep memory flat over thousands of launches
            recent.append(pending.id)
            while len(recent) > 5000:
                platform.launches.pop(recent.popleft(), None)
        return jsonify(login_params=pending.login_params, auth_url=pending.auth_url)

    platform.start()
    try:
        conn.send({"issuer": platform.issuer, "base_url": platform.base_url,
                   "auth_login_url": platform.auth_login_url, "token_url": platform.token_url,
                   "jwks_url": platform.jwks_url,
                   "regs": {name: {"client_id": reg.client_id, "deployment_ids": list(reg.deployment_ids)}
                            for name, reg in regs.items()}})
        conn.recv()  # "stop", or EOFError when the benchmark has gone
    except (EOFError, OSError, KeyboardInterrupt):
        pass
    finally:
        platform.stop()


# -- the plain pylti1p3 flow, served by gunicorn as ``load:plain_app()`` --------------------------

def plain_app():
    """The plain flow of ``bench/launch.py`` (pylti1p3's Flask helpers and defaults), configured
    from the JSON file named by ``LOAD_PLAIN_CONF``."""
    from flask import Flask
    from pylti1p3.contrib.flask import FlaskMessageLaunch, FlaskOIDCLogin, FlaskRequest
    from pylti1p3.tool_config import ToolConfDict

    spec = json.loads(Path(os.environ["LOAD_PLAIN_CONF"]).read_text())
    conf = ToolConfDict({spec["issuer"]: [{
        "default": True, "client_id": spec["client_id"], "auth_login_url": spec["auth_login_url"],
        "auth_token_url": spec["token_url"], "key_set_url": spec["jwks_url"],
        "deployment_ids": spec["deployment_ids"]}]})
    conf.set_private_key(spec["issuer"], Path(spec["private_key"]).read_text(), client_id=spec["client_id"])
    app = Flask("plain")
    app.secret_key = spec["secret"]
    launch_url = spec["base_url"] + "/launch"

    @app.get("/")
    def index():
        return "plain pylti1p3"

    @app.route("/login", methods=["GET", "POST"])
    def login():
        return FlaskOIDCLogin(FlaskRequest(), conf).redirect(launch_url)

    @app.route("/launch", methods=["POST"])
    def launch():
        message = FlaskMessageLaunch(FlaskRequest(), conf)
        data = message.get_launch_data()
        view = "instructor" if message.check_teacher_access() else "student"
        return f"<h1>{view}</h1><p>{data.get('name', '')}</p>"

    return app


# -- client processes -----------------------------------------------------------------------------

@dataclass
class Plan:
    flow: str  # "tool" or "plain": the platform registration and what a good landing looks like
    platform_url: str
    login_url: str
    students: int
    launches: int | None  # a count for all clients together, else until the deadline
    warmup: int = 0  # uncounted launches per client
    warm_users: list[int] = field(default_factory=list)  # this client's uncounted launches


def landing_problem(flow: str, resp) -> str | None:
    """None when the launch landed where a student lands, else what went wrong."""
    if flow == "tool":
        if resp.status_code == 200 and urlsplit(resp.url).path == "/student":
            return None
    elif resp.status_code == 200 and "<h1>student</h1>" in resp.text:
        return None
    # The page's words (its title and message), not its markup.
    words = " ".join(re.sub(r"<script.*?</script>|<style.*?</style>|<[^>]*>", " ", resp.text, flags=re.S).split())
    return f"{resp.request.method} {urlsplit(resp.url).path} answered {resp.status_code}: {words[:200]!r}"


def run_client(plan: Plan, counter, deadline, go, out) -> None:
    """Child process: warm-up launches, then launches until the count or the deadline."""
    die_with_parent()
    import requests

    from emulator import Browser

    control = requests.Session()
    control.trust_env = False

    def one(user: int) -> tuple[float, str | None]:
        try:
            made = control.post(plan.platform_url + "/_bench/launch",
                                data={"tool": plan.flow, "user": user}, timeout=TIMEOUT)
            made.raise_for_status()
            pending = SimpleNamespace(**made.json())
        except (requests.RequestException, ValueError) as exc:
            return 0.0, f"platform could not make a launch: {exc.__class__.__name__}: {exc}"
        began = time.monotonic()
        try:
            with Browser(timeout=TIMEOUT) as browser:
                resp = browser.launch(plan.login_url, pending)
            problem = landing_problem(plan.flow, resp)
        except Exception as exc:  # a broken answer is an error to count, not the end of the run
            problem = f"{exc.__class__.__name__}: {exc}"
        return time.monotonic() - began, problem

    warm_errors = [p for p in (one(u)[1] for u in plan.warm_users) if p]
    out.put(("ready", warm_errors))
    if not go.wait(START_WAIT * 5):
        return
    cpu_before = sum(os.times()[:2])
    latencies: list[float] = []
    errors: list[str] = []
    last_end = time.monotonic()
    while True:
        with counter.get_lock():
            ticket = counter.value
            counter.value += 1
        if plan.launches is not None and ticket >= plan.launches:
            break
        if plan.launches is None and time.monotonic() >= deadline.value:
            break
        seconds, problem = one(ticket % plan.students)
        last_end = time.monotonic()
        if problem:
            errors.append(problem)
        else:
            latencies.append(seconds)
    out.put(("done", {"latencies": latencies, "errors": errors, "last_end": last_end,
                      "cpu": sum(os.times()[:2]) - cpu_before}))


# -- one configuration ----------------------------------------------------------------------------

@dataclass
class Outcome:
    flow: str
    db: str
    workers: int
    launches: int = 0
    wall: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warm_errors: list[str] = field(default_factory=list)
    tool_cpu: float = 0.0
    platform_cpu: float = 0.0
    client_cpu: float = 0.0

    @property
    def per_s(self) -> float:
        return self.launches / self.wall if self.wall else 0.0

    def per_launch_ms(self, seconds: float) -> float:
        return seconds * 1000 / self.launches if self.launches else float("nan")

    def row(self) -> dict:
        return {"flow": self.flow, "db": self.db, "workers": self.workers, "launches": self.launches,
                "wall_s": round(self.wall, 3), "per_s": round(self.per_s, 2),
                "p50_ms": round(median_ms(self.latencies), 2), "p90_ms": round(pct(self.latencies, 0.9), 2),
                "p99_ms": round(pct(self.latencies, 0.99), 2), "errors": len(self.errors) + len(self.warm_errors),
                "tool_cpu_ms": round(self.per_launch_ms(self.tool_cpu), 2),
                "platform_cpu_ms": round(self.per_launch_ms(self.platform_cpu), 2),
                "client_cpu_ms": round(self.per_launch_ms(self.client_cpu), 2)}


def measure(outcome: Outcome, server: Gunicorn, plan: Plan, clients: int, duration: float,
            platform_pid: int, seed_users: int) -> Outcome:
    import multiprocessing
    ctx = multiprocessing.get_context("fork")  # the benchmark process runs no thread of its own
    counter = ctx.Value("q", 0)
    deadline = ctx.Value("d", 0.0)
    go = ctx.Event()
    out = ctx.Queue()
    procs = []
    try:
        for index in range(clients):
            # The first configuration on a database launches every student once (they return
            # in the measured launches); later ones only wake each worker up.
            warm = list(range(index, seed_users, clients)) + [index + clients * k for k in range(plan.warmup)]
            client_plan = Plan(plan.flow, plan.platform_url, plan.login_url, plan.students, plan.launches,
                               warm_users=warm)
            proc = ctx.Process(target=run_client, args=(client_plan, counter, deadline, go, out),
                               name=f"load-client-{index}", daemon=True)
            proc.start()
            procs.append(proc)
        for _ in procs:
            _, warm_errors = take(out, START_WAIT * 5, procs, "a client's warm-up")
            outcome.warm_errors.extend(warm_errors)
        tool_before, platform_before = tree_cpu(server.proc.pid), cpu_seconds(platform_pid)
        began = time.monotonic()
        deadline.value = began + duration
        go.set()
        limit = (duration if plan.launches is None else 600) + START_WAIT
        results = [take(out, limit, procs, "a client's launches")[1] for _ in procs]
        outcome.tool_cpu = tree_cpu(server.proc.pid) - tool_before
        outcome.platform_cpu = cpu_seconds(platform_pid) - platform_before
    finally:
        # Normally every client has finished; when interrupted, tell them to stop at once.
        deadline.value = 0.0
        with counter.get_lock():
            counter.value = 1 << 62
        go.set()
        for proc in procs:
            proc.join(timeout=3)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
    for result in results:
        outcome.latencies.extend(result["latencies"])
        outcome.errors.extend(result["errors"])
        outcome.client_cpu += result["cpu"]
    outcome.launches = len(outcome.latencies)
    outcome.wall = max(r["last_end"] for r in results) - began
    return outcome


def take(out, timeout: float, procs, what: str):
    import queue
    deadline = time.monotonic() + timeout
    while True:
        try:
            return out.get(timeout=1)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise SetupError(f"timed out waiting for {what}")
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead:
                raise SetupError(f"{dead[0].name} exited with status {dead[0].exitcode} during {what}")


# -- databases ------------------------------------------------------------------------------------

def postgres_reason(url: str) -> str | None:
    try:
        import psycopg
        with psycopg.connect(url, connect_timeout=2):
            return None
    except Exception as exc:  # no server, no driver, no database: all mean "skip it"
        return f"{exc.__class__.__name__}: {' '.join(str(exc).split())[:160]}"


@dataclass
class Database:
    name: str
    url: str
    workdir: Path
    schema: str | None = None
    seeded: bool = False

    def env(self, base: dict, tool_url: str) -> dict:
        return dict(base, DATABASE_URL=self.url, TOOL_BASE_URL=tool_url, TOOL_KEY_DIR=str(self.workdir / "keys"),
                    JOBS_DB=str(self.workdir / "jobs.db"), SECRET_KEY="load-bench-" + self.name,
                    SANDBOX="0")  # as in production: no built-in practice platform


def make_database(name: str, tmp: Path, stack: ExitStack) -> Database:
    workdir = tmp / name
    workdir.mkdir()
    if name == "sqlite":
        return Database(name, f"sqlite:///{workdir / 'tool.db'}", workdir)
    import psycopg
    schema = f"load_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')

    def drop() -> None:
        try:
            with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        except Exception as exc:
            print(f"could not drop schema {schema}: {exc}", file=sys.stderr)

    stack.callback(drop)
    sep = "&" if "?" in PG_URL else "?"
    return Database(name, f"{PG_URL}{sep}options=-csearch_path%3D{schema}", workdir, schema)


def queued_jobs(db: "Database") -> int:
    """Jobs waiting in the tool's SQLite queue: student launches must queue none."""
    import sqlite3
    path = db.workdir / "jobs.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'task'").fetchone():
            return 0
        return conn.execute("SELECT count(*) FROM task").fetchone()[0]


def register_platform(db: Database, env: dict, info: dict) -> None:
    """What a school does: ``flask --app app platform add`` against the tool's database."""
    reg = info["regs"]["tool"]
    cmd = [FLASK, "--app", "app", "platform", "add", "--issuer", info["issuer"],
           "--client-id", reg["client_id"], "--auth-login-url", info["auth_login_url"],
           "--auth-token-url", info["token_url"], "--key-set-url", info["jwks_url"],
           "--name", "Load platform"]
    for deployment in reg["deployment_ids"]:
        cmd += ["--deployment-id", deployment]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SetupError(f"flask platform add failed on {db.name}: {(done.stderr or done.stdout).strip()}")


# -- main -----------------------------------------------------------------------------------------

def parse_list(raw: str, allowed=None, cast=str) -> list:
    values = [cast(v.strip()) for v in raw.split(",") if v.strip()]
    if allowed is not None:
        wrong = [v for v in values if v not in allowed]
        if wrong:
            raise argparse.ArgumentTypeError(f"{', '.join(map(str, wrong))}: choose from {', '.join(allowed)}")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="2,4", type=lambda s: parse_list(s, cast=int),
                        help="gunicorn worker counts, comma-separated (default 2,4)")
    parser.add_argument("--db", default="sqlite,postgresql",
                        type=lambda s: parse_list(s, ("sqlite", "postgresql")),
                        help="databases, comma-separated (default sqlite,postgresql); PostgreSQL uses a "
                             "throw-away schema in TEST_POSTGRES_URL (default %s)" % PG_URL)
    parser.add_argument("--clients", type=int, default=4, help="client processes launching at once (default 4)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of measured launches per configuration (default 10)")
    parser.add_argument("--launches", type=int, default=None,
                        help="measured launches per configuration instead of --duration")
    parser.add_argument("--students", type=int, default=100,
                        help="students in the course; each launches once before the measured launches")
    parser.add_argument("--warmup", type=int, default=3,
                        help="uncounted launches per client at the start of every configuration (default 3)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the whole matrix this many times; medians of the rounds are printed")
    parser.add_argument("--jwks-latency", type=float, default=0.0,
                        help="seconds the platform's key set takes to answer (a real Canvas: about 0.05)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain pylti1p3 flow")
    parser.add_argument("--json", action="store_true", help="also write the figures to bench/results/")
    parser.add_argument("--logs", type=Path, default=None,
                        help="keep gunicorn's logs (access log, app log) in this folder")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]  # other programs' share of the machine, before any of ours
    if args.clients < 1 or args.students < args.clients or min(args.workers, default=0) < 1:
        parser.error("--clients and --workers must be at least 1, --students at least --clients")

    dbs = list(args.db)
    if "postgresql" in dbs:
        reason = postgres_reason(PG_URL)
        if reason:
            print(f"PostgreSQL not reachable at {PG_URL} ({reason}): skipping postgresql")
            dbs.remove("postgresql")
    if not dbs and args.no_baseline:
        print("nothing to run")
        return 2

    def stop_on_term(*_):
        raise SystemExit(143)
    signal.signal(signal.SIGTERM, stop_on_term)

    import multiprocessing

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    base_env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    base_env["PYTHONUNBUFFERED"] = "1"
    rows: list[Outcome] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-load-")))
        logs = args.logs or tmp
        logs.mkdir(parents=True, exist_ok=True)
        tool_sock, plain_sock = bound_socket(), bound_socket()
        stack.callback(tool_sock.close)
        stack.callback(plain_sock.close)
        tool_url = "http://127.0.0.1:%d" % tool_sock.getsockname()[1]
        plain_url = "http://127.0.0.1:%d" % plain_sock.getsockname()[1]

        ctx = multiprocessing.get_context("fork")
        ours, theirs = ctx.Pipe()
        platform_proc = ctx.Process(target=serve_platform, name="load-platform", daemon=True, args=(
            theirs, {"tool": {"login": tool_url + "/lti/login", "launch": tool_url + "/lti/launch",
                              "jwks": tool_url + "/.well-known/jwks.json"},
                     "plain": {"login": plain_url + "/login", "launch": plain_url + "/launch",
                               "jwks": plain_url + "/jwks"}},
            args.students, args.jwks_latency))
        platform_proc.start()

        def stop_platform() -> None:
            try:
                ours.send("stop")
            except OSError:
                pass
            platform_proc.join(timeout=10)
            if platform_proc.is_alive():
                platform_proc.terminate()
                platform_proc.join(timeout=5)
        stack.callback(stop_platform)
        if not ours.poll(START_WAIT):
            raise SetupError("the platform process did not start")
        info = ours.recv()

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (tmp / "plain.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        plain_conf = tmp / "plain.json"
        plain_conf.write_text(json.dumps({
            "issuer": info["issuer"], "auth_login_url": info["auth_login_url"],
            "token_url": info["token_url"], "jwks_url": info["jwks_url"],
            "client_id": info["regs"]["plain"]["client_id"],
            "deployment_ids": info["regs"]["plain"]["deployment_ids"],
            "private_key": str(tmp / "plain.pem"), "secret": uuid.uuid4().hex, "base_url": plain_url}))

        databases = {}
        for name in dbs:
            databases[name] = make_database(name, tmp, stack)
            register_platform(databases[name], databases[name].env(base_env, tool_url), info)

        print(f"load benchmark: gunicorn {gunicorn_version()} with gunicorn.conf.py, {args.clients} client "
              f"processes, {args.students} returning students, "
              + (f"{args.launches} launches" if args.launches else f"{args.duration:g} s")
              + f" per configuration, {args.rounds} round(s), key set latency {args.jwks_latency * 1000:.0f} ms, "
              f"{os.cpu_count()} CPUs ({host.machine()}, load average {load_before:.1f} before the start); "
              f"the platform and the clients share the machine", flush=True)
        python = Path(sys.executable)
        shown = python.relative_to(ROOT) if python.is_relative_to(ROOT) else python.name
        print("command: " + " ".join([str(shown), *sys.argv]), flush=True)

        def run_one(flow: str, db: Database | None, workers: int) -> Outcome:
            label = f"{flow}-{db.name if db else 'none'}-w{workers}"
            if flow == "tool":
                server = Gunicorn("app:app", tool_sock, db.env(base_env, tool_url), workers,
                                  logs / f"{label}.log")
            else:
                server = Gunicorn("load:plain_app()", plain_sock,
                                  dict(base_env, LOAD_PLAIN_CONF=str(plain_conf)), workers,
                                  logs / f"{label}.log", extra=("--pythonpath", str(ROOT / "bench")))
            try:
                server.wait_ready()
                login = server.url + ("/lti/login" if flow == "tool" else "/login")
                plan = Plan(flow, info["base_url"], login, args.students, args.launches, args.warmup)
                seed = 0
                if db is not None and not db.seeded:
                    # One student alone first: the course, its link and deployment rows exist
                    # before students arrive together.
                    problem = seed_first(Plan(flow, info["base_url"], login, args.students, None))
                    if problem:
                        raise SetupError(f"the first launch on {db.name} failed: {problem}", server.log)
                    seed, db.seeded = args.students, True
                outcome = measure(Outcome(flow, db.name if db else "-", workers), server, plan,
                                  args.clients, args.duration, platform_proc.pid, seed)
            finally:
                server.stop()
            problems = Counter(outcome.warm_errors + outcome.errors)
            for problem, times in problems.most_common(8):
                print(f"  error ({label}, {times}x): {problem}", file=sys.stderr)
            if len(problems) > 8:
                print(f"  ... and {len(problems) - 8} other errors", file=sys.stderr)
            if outcome.warm_errors or outcome.errors:
                kept = "" if args.logs else " (removed at exit: keep it with --logs DIR)"
                print(f"  gunicorn log: {server.log}{kept}", file=sys.stderr)
            r = outcome.row()
            jobs = f", {queued_jobs(db)} jobs queued (no job worker runs)" if db is not None else ""
            print(f"  {label}: {r['launches']} launches in {r['wall_s']:.1f} s, {r['per_s']:.1f}/s, "
                  f"p50 {r['p50_ms']:.1f} ms, tool CPU {r['tool_cpu_ms']:.2f} ms/launch, "
                  f"{r['errors']} errors{jobs}", flush=True)
            return outcome

        for _ in range(args.rounds):
            for workers in args.workers:
                if not args.no_baseline:
                    rows.append(run_one("plain", None, workers))
                for name in dbs:
                    rows.append(run_one("tool", databases[name], workers))

    table = summarise(rows, args)
    if args.json:
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / time.strftime("load-%Y%m%d-%H%M%S.json", time.gmtime())
        path.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "command": sys.argv,
                                    "load_average_before": load_before, "cpus": os.cpu_count(),
                                    "rows": table, "rounds": [o.row() for o in rows]}, indent=2, default=str))
        print(f"figures written to {path.relative_to(ROOT)}")
    errors = sum(len(o.errors) + len(o.warm_errors) for o in rows)
    if errors:
        print(f"FAILED: {errors} launches went wrong (listed above); a launch must never fail under load",
              file=sys.stderr)
        return 1
    return 0


def seed_first(plan: Plan) -> str | None:
    """One launch from this process (student 0), before any client starts."""
    import requests

    from emulator import Browser
    try:
        with requests.Session() as control:
            control.trust_env = False
            made = control.post(plan.platform_url + "/_bench/launch", data={"tool": plan.flow, "user": 0},
                                timeout=TIMEOUT)
            made.raise_for_status()
            with Browser(timeout=TIMEOUT) as browser:
                return landing_problem(plan.flow, browser.launch(plan.login_url, SimpleNamespace(**made.json())))
    except (requests.RequestException, ValueError) as exc:
        return f"{exc.__class__.__name__}: {exc}"


def gunicorn_version() -> str:
    try:
        from importlib.metadata import version
        return version("gunicorn")
    except Exception:
        return "?"


def summarise(rows: list[Outcome], args) -> list[dict]:
    """Print the table (medians over rounds) and the tool / plain ratios; return the rows."""
    keys = []
    for o in rows:
        if (o.flow, o.db, o.workers) not in keys:
            keys.append((o.flow, o.db, o.workers))
    table = []
    for key in keys:
        rounds = [o.row() for o in rows if (o.flow, o.db, o.workers) == key]
        merged = {"flow": key[0], "db": key[1], "workers": key[2],
                  "launches": sum(r["launches"] for r in rounds), "errors": sum(r["errors"] for r in rounds)}
        for column in ("per_s", "p50_ms", "p90_ms", "p99_ms", "tool_cpu_ms", "platform_cpu_ms", "client_cpu_ms"):
            merged[column] = statistics.median(r[column] for r in rounds)
        table.append(merged)
    names = {"tool": "this tool", "plain": "plain pylti1p3"}
    print()
    print(f"{'flow':<16}{'database':<12}{'workers':>8}{'launches':>10}{'launches/s':>12}{'p50 ms':>9}"
          f"{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}{'tool CPU ms':>13}{'platform CPU ms':>17}")
    for r in table:
        print(f"{names[r['flow']]:<16}{r['db']:<12}{r['workers']:>8}{r['launches']:>10}{r['per_s']:>12.1f}"
              f"{r['p50_ms']:>9.1f}{r['p90_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8}"
              f"{r['tool_cpu_ms']:>13.2f}{r['platform_cpu_ms']:>17.2f}")
    print("latency: a complete launch as the client sees it (login, platform auth, launch, landing page); "
          "CPU: per measured launch, tool = gunicorn master + workers, platform = the emulator's process")
    plain = {r["workers"]: r for r in table if r["flow"] == "plain"}
    lines = []
    for r in table:
        base = plain.get(r["workers"])
        if r["flow"] != "tool" or base is None or not r["per_s"] or not r["tool_cpu_ms"]:
            continue
        lines.append(f"  {r['db']}, {r['workers']} workers: launches/s x{r['per_s'] / base['per_s']:.2f}, "
                     f"p50 x{r['p50_ms'] / base['p50_ms']:.2f}, tool CPU per launch x{r['tool_cpu_ms'] / base['tool_cpu_ms']:.2f}")
    if lines:
        print("ratios, this tool / plain pylti1p3 with the same workers (above 1 for launches/s, below 1 "
              "for p50 and CPU is better):")
        print("\n".join(lines))
    return table


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SetupError as exc:
        print(f"load benchmark could not run: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
