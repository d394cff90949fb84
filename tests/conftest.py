"""Fixtures: the tool served over real HTTP on SQLite (and PostgreSQL when one is reachable),
and a Canvas-faithful platform emulator per test, registered with the tool.

Every tool-backed test runs once per database backend: ``test_x[sqlite]`` and
``test_x[postgresql]``. The PostgreSQL pass uses a throw-away schema in the database named by
``TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and is skipped,
with the reason shown, when no server answers.
"""
from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from config import Settings
from support import Lms, ToolServer, free_port

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_reason() -> str | None:
    """None when PostgreSQL answers, else why the PostgreSQL pass is skipped."""
    try:
        import psycopg
        with psycopg.connect(PG_URL, connect_timeout=2):
            return None
    except Exception as exc:  # no server, no driver, no database: all mean "skip"
        return f"PostgreSQL not reachable at {PG_URL}: {exc.__class__.__name__}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request, tmp_path_factory):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'tool.db'}"
        return
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    import psycopg
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    from tool.db import db
    db.session.remove()
    if db.engine is not None:
        db.engine.dispose()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def make_settings(database_url: str, tmp: Path, port: int) -> Settings:
    return Settings(base_url=f"http://127.0.0.1:{port}", database_url=database_url,
                    key_dir=tmp / "keys", secret_key="test-secret-" + uuid.uuid4().hex, port=port,
                    jobs_path=tmp / "jobs.db", jwks_refetch_interval=2, proxy_hops=0,
                    sandbox=False)  # tests/test_sandbox.py serves its own tool with the sandbox


@pytest.fixture(scope="session")
def tool(database_url, tmp_path_factory):
    """The tool, served by a real threaded HTTP server on 127.0.0.1."""
    from tool import create_app
    port = free_port()
    settings = make_settings(database_url, tmp_path_factory.mktemp("tool"), port)
    app = create_app(settings)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ToolServer(app=app, base_url=settings.base_url, settings=settings)
    server.shutdown()


@pytest.fixture
def db_session(tool):
    from tool.db import db
    with tool.app.app_context():
        yield db.session
        db.session.rollback()


@pytest.fixture
def lms(tool):
    env = Lms(tool)
    yield env
    env.stop()
