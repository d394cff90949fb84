"""Test helpers shared by the tool's test modules: the served tool and an emulated LMS."""
from __future__ import annotations

import socket
from dataclasses import dataclass

from config import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
        # Emulators reuse free ports: a platform at this URL earlier in the session is another one.
        tool.app.extensions["platform_keys"].forget(self.platform.jwks_url)
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


def table_counts(db_session) -> dict[str, int]:
    """Rows in every table of the tool's database (what an unauthenticated request must not change)."""
    from sqlalchemy import func, inspect, select, table
    db_session.rollback()
    names = inspect(db_session.get_bind()).get_table_names()
    counts = {name: db_session.execute(select(func.count()).select_from(table(name))).scalar_one()
              for name in names}
    db_session.rollback()
    return counts
