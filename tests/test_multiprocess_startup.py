"""Several processes starting together on an empty database all serve, and start-up work runs once.

gunicorn starts its workers at the same moment, and a school starts web and job processes on
several machines at once: the migrations, the first signing key and the generated secret must
each happen exactly once, and a forked process must never talk on its parent's connections.
These tests start real processes (gunicorn, ``python -c``) against SQLite and PostgreSQL.
"""
from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from conftest import PG_URL, postgres_reason

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
WAIT = 40  # seconds: the bound on every wait below


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request, tmp_path):
    """(DATABASE_URL, plain SQLAlchemy URL to inspect it) of a database with no tables."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'tool.db'}"
        yield url, url
        return
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    import psycopg
    schema = f"mp_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    yield url, url.replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _env(tmp_path: Path, database_url: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "REDIS_URL", "JOBS_IMMEDIATE")}
    env.update(DATABASE_URL=database_url, TOOL_KEY_DIR=str(tmp_path / "keys"),
               JOBS_DB=str(tmp_path / "jobs.db"), PYTHONUNBUFFERED="1", **extra)
    return env


def _started_once(inspect_url: str, key_dir: Path) -> None:
    """One signing key (row and file), one secret, the schema at the newest migration."""
    from tool.migrate import alembic_config
    from alembic.script import ScriptDirectory
    engine = create_engine(inspect_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM tool_keys")) == 1
            revision = conn.scalar(text("SELECT version_num FROM alembic_version"))
    finally:
        engine.dispose()
    assert revision == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert len(list(key_dir.glob("tool-*.pem"))) == 1
    secret = key_dir / "secret_key"
    if secret.exists():
        assert secret.read_text().strip()
    assert not list(key_dir.glob(".secret_key.*")), "a temporary secret file was left behind"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _get(url: str) -> int | str:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError as exc:
        return type(exc).__name__


def test_four_gunicorn_workers_start_together_and_all_serve(empty_database, tmp_path):
    database_url, inspect_url = empty_database
    no_config = tmp_path / "plain.conf.py"  # gunicorn's defaults: no preload, so every worker starts the app
    no_config.write_text("")
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [GUNICORN, "-c", str(no_config), "-w", "4", "-b", f"127.0.0.1:{port}", "--access-logfile", "-",
             "--access-logformat", "served-by %(p)s %(s)s", "app:app"],
            cwd=ROOT, env=_env(tmp_path, database_url), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + WAIT
        pids: set[str] = set()
        while len(pids) < 4 and time.monotonic() < deadline and proc.poll() is None:
            with ThreadPoolExecutor(8) as pool:  # concurrent requests reach every worker
                list(pool.map(_get, [f"http://127.0.0.1:{port}/"] * 16))
            pids = {line.split()[1].strip("<>") for line in log.read_text().splitlines()
                    if line.startswith("served-by") and line.split()[2] == "200"}
        output = log.read_text()
        assert proc.poll() is None, output
        assert len(pids) == 4, output
        assert "Cannot start" not in output and "Traceback" not in output, output
        assert "exited with code" not in output, output
        assert all(_get(f"http://127.0.0.1:{port}/") == 200 for _ in range(4))
    finally:
        _stop(proc)
    _started_once(inspect_url, tmp_path / "keys")


STARTER = """
import sys, time
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))  # every starter begins at one moment
from app import app
from tool.lti.keys import jwks
from tool.db import db
with app.app_context():
    assert app.test_client().get("/").status_code == 200
    print(app.config["SECRET_KEY"], jwks(db.session)["keys"][0]["kid"])
"""


def test_four_starters_with_no_secret_agree_on_one_secret_and_one_key(empty_database, tmp_path):
    database_url, inspect_url = empty_database
    env = _env(tmp_path, database_url, JOBS_IMMEDIATE="1")
    at = time.time() + 2.5  # after every interpreter has loaded
    procs = [subprocess.Popen([PYTHON, "-c", STARTER, str(at)], cwd=ROOT, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    try:
        results = [p.communicate(timeout=WAIT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
    answers = {out.strip() for out, _ in results}
    assert len(answers) == 1, answers  # one secret and one signing key for all
    secret_file = tmp_path / "keys" / "secret_key"
    assert answers.pop().split()[0] == secret_file.read_text().strip()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    _started_once(inspect_url, tmp_path / "keys")


SECRET_ONLY = """
import sys, time
import config
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
print(config.Settings.from_env().secret_key)
"""


def test_the_generated_secret_is_made_once_however_many_start(tmp_path):
    """Only the settings, so many rounds fit in a second or two: the race is a narrow one."""
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    for round_ in range(6):
        env["TOOL_KEY_DIR"] = str(tmp_path / f"keys{round_}")
        at = time.time() + 0.5
        procs = [subprocess.Popen([PYTHON, "-c", SECRET_ONLY, str(at)], cwd=ROOT, env=env, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
        results = [p.communicate(timeout=WAIT) for p in procs]
        assert [p.returncode for p in procs] == [0] * 4, [err for _, err in results]
        secrets = {out.strip() for out, _ in results}
        assert len(secrets) == 1 and "" not in secrets, secrets


def _child_sees(engine, probe: str) -> tuple[int, str]:
    """Fork; in the child report (idle connections in the inherited pool, ``probe``'s answer)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe and leave without running any cleanup
        try:
            idle = engine.pool.checkedin()
            with engine.connect() as conn:
                answer = str(conn.scalar(text(probe)))
            os.write(write, f"{idle} {answer}".encode())
        finally:
            os._exit(0)
    os.close(write)
    try:
        with os.fdopen(read) as pipe:
            idle, answer = pipe.read().split(" ", 1)
    finally:
        os.waitpid(pid, 0)
    return int(idle), answer


def test_a_forked_child_gets_fresh_database_connections(empty_database):
    from tool.db import make_engine
    database_url, _ = empty_database
    engine = make_engine(database_url)
    try:
        postgres = engine.dialect.name == "postgresql"
        probe = "SELECT pg_backend_pid()" if postgres else "SELECT 1"
        with engine.connect() as conn:
            parent_answer = str(conn.scalar(text(probe)))
        assert engine.pool.checkedin() == 1  # the parent keeps an idle connection a child could take
        idle, child_answer = _child_sees(engine, probe)
        assert idle == 0
        if postgres:  # a different server process: a connection of its own
            assert child_answer != parent_answer
        with engine.connect() as conn:  # the parent's connection still works after the fork
            assert str(conn.scalar(text(probe))) == parent_answer
    finally:
        engine.dispose()


def test_the_instructor_page_says_when_no_job_worker_runs(tool, lms):
    import threading
    from tool.db import db
    from tool.jobs import heartbeat
    from tool.models import JobWorker
    warning = "No job worker is running"
    with tool.app.app_context():
        db.session.query(JobWorker).delete()
        db.session.commit()
        db.session.remove()
    heartbeat._cache["at"] = 0.0
    assert warning in lms.launch(lms.teacher).text

    stop = threading.Event()
    beat = heartbeat.Heartbeat(stop, periodic=True, interval=0.1)
    beat.start()
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            heartbeat._cache["at"] = 0.0
            if not heartbeat.worker_missing(tool.app):
                break
            time.sleep(0.05)
        heartbeat._cache["at"] = 0.0
        assert warning not in lms.launch(lms.teacher).text
    finally:
        stop.set()
        beat.join(timeout=10)
    with tool.app.app_context():  # a worker that stops cleanly takes its row with it
        assert db.session.scalar(select(func.count()).select_from(JobWorker)) == 0
        db.session.remove()
    heartbeat._cache["at"] = 0.0
