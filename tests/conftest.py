"""Fixtures: the tool served over real HTTP on SQLite (and PostgreSQL when one is reachable),
and a Canvas-faithful platform emulator per test, registered with the tool.

Every tool-backed test runs once per database backend: ``test_x[sqlite]`` and
``test_x[postgresql]``. The PostgreSQL pass uses a throw-away schema in the database named by
``TEST_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``) and is skipped,
with the reason shown, when no server answers.
"""
from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from config import Settings

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


@dataclass
class ToolServer:
    app: object
    base_url: str
    settings: Settings

    @property
    def login_url(self) -> str:
        return self.base_url + "/lti/login"

    @property
    def launch_url(self) -> str:
        return self.base_url + "/lti/launch"

    @property
    def jwks_url(self) -> str:
        return self.base_url + "/.well-known/jwks.json"


def make_settings(database_url: str, tmp: Path, port: int) -> Settings:
    return Settings(base_url=f"http://127.0.0.1:{port}", database_url=database_url,
                    key_dir=tmp / "keys", secret_key="test-secret-" + uuid.uuid4().hex, port=port,
                    jobs_path=tmp / "jobs.db", jwks_refetch_interval=2, proxy_hops=0)


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


class Lms:
    """A platform emulator registered with the tool, plus a course with a teacher and a student."""

    def __init__(self, tool: ToolServer, **register) -> None:
        from emulator import INSTRUCTOR, LEARNER, Platform
        from tool import platforms
        from tool.db import db
        self.tool = tool
        self.platform = Platform(issuer="https://canvas.instructure.com")
        self.platform.start()
        self.registration = self.platform.register_tool(
            login_url=tool.login_url, redirect_uris=[tool.launch_url], target_link_uri=tool.launch_url,
            jwks_url=tool.jwks_url, **register)
        self.deployment_id = self.registration.deployment_ids[0]
        with tool.app.app_context():
            reg = platforms.add_platform(db.session, platforms.PlatformSpec(
                issuer=self.platform.issuer, client_id=self.registration.client_id,
                auth_login_url=self.platform.auth_login_url, auth_token_url=self.platform.token_url,
                key_set_url=self.platform.jwks_url, name="Emulated Canvas"), [self.deployment_id])
            self.registration_id = reg.id
            db.session.remove()
        self.course = self.platform.add_course(label="BIO101", title="Biology")
        self.teacher = self.platform.add_user(name="Ada Teacher")
        self.student = self.platform.add_user(name="Sam Student")
        self.platform.enroll(self.course, self.teacher, roles=[INSTRUCTOR])
        self.platform.enroll(self.course, self.student, roles=[LEARNER])

    def launch(self, user=None, course=None, *, browser=None, method="POST", tamper_form=None, **options):
        """One complete launch as a browser does it; returns the final HTTP response."""
        from emulator import Browser
        browser = browser or Browser()
        pending = self.platform.resource_link_launch(self.registration, user or self.teacher,
                                                     course or self.course, **options)
        return browser.launch(self.tool.login_url, pending, method=method, tamper_form=tamper_form)

    def stop(self) -> None:
        self.platform.stop()


@pytest.fixture
def lms(tool):
    env = Lms(tool)
    yield env
    env.stop()
