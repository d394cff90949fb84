"""The sandbox: an emulated Canvas served by the tool itself, to try the tool without a Canvas.

When it is on, the emulator (``emulator/``) is mounted under ``/sandbox`` in the same process: a
demo course with a teacher and 30 students (``emulator/demo.py``), its own issuer
(``TOOL_BASE_URL/sandbox``) and its own key (``keys.py``), registered with the tool like any
platform (``registration.py``, source ``"sandbox"``). The tool then talks to it exactly as to a
Canvas: login and launch through the browser, JWKS, tokens, names and roles and grades over real
HTTP to its own address (the server runs several threads, so a request may call another).

On: ``SANDBOX=1``, or ``TOOL_BASE_URL`` on loopback (``python app.py``) unless ``SANDBOX=0``.
Off loopback it needs ``SANDBOX_PASSWORD`` (``gate.py``): it mints launches.

The course's people and ids are derived from the stored key, so a restart, or another process,
has the same course and the tool's data about it stays valid; what happens in the course
(assignments made, scores received) lives in this process's memory and starts afresh at each
start. Several processes (gunicorn workers) each hold their own copy of that state: the sandbox
is meant for ``python app.py``, one process with threads.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.exc import SQLAlchemyError
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from config import Settings, StartupError, is_loopback, key_dir_error

PREFIX = "/sandbox"
PLATFORM_NAME = "Sandbox School"
log = logging.getLogger(__name__)


def wanted(settings: Settings) -> bool:
    """``SANDBOX`` when set, else on exactly when the tool's address is this machine."""
    if settings.sandbox is not None:
        return settings.sandbox
    return is_loopback(urlsplit(settings.base_url).hostname)


def needs_password(settings: Settings) -> bool:
    return not is_loopback(urlsplit(settings.base_url).hostname) or bool(settings.sandbox_password)


@dataclass
class Sandbox:
    platform: object  # emulator.Platform
    demo: object  # emulator.demo.DemoCourse
    tool: object  # the tool as the emulator knows it (client id, deployment ids)
    locked: bool  # pages ask for SANDBOX_PASSWORD
    registration_id: int | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def course_path(self) -> str:
        """The demo course page, relative to the tool's root."""
        return f"{PREFIX}/courses/{self.demo.course.course_id}"

    @property
    def deployment_id(self) -> str:
        return self.tool.deployment_ids[0]

    def ensure_registered(self) -> int:
        """Register with the tool once per process (under the start-up lock); the registration id."""
        if self.registration_id is not None:
            return self.registration_id
        from ..db import db
        from ..migrate import startup_lock
        from .registration import current, register
        args = (self.platform, self.tool.client_id, self.deployment_id)
        with self._lock:
            try:
                # Most starts find it registered already: only a change waits for the lock.
                self.registration_id = current(db.session, *args)
                if self.registration_id is None:
                    with startup_lock(db.engine):
                        self.registration_id = register(db.session, *args).id
            finally:
                db.session.remove()
        return self.registration_id


def mount(app, settings: Settings) -> Sandbox | None:
    """Serve the sandbox under ``/sandbox`` when it is wanted; ``app.extensions["sandbox"]``."""
    if not wanted(settings):
        return None
    host = urlsplit(settings.base_url).hostname
    if not is_loopback(host):
        if not settings.sandbox_password:
            raise StartupError("SANDBOX_PASSWORD", "is not set, and SANDBOX=1 on an address others "
                               "can reach lets anyone launch the tool as made-up people",
                               "Set SANDBOX_PASSWORD to a password for the people trying the tool, "
                               "or set SANDBOX=0")
        if urlsplit(settings.base_url).scheme != "https":
            raise StartupError("SANDBOX", "needs an https TOOL_BASE_URL off this machine (the "
                               "sandbox is a platform, and platforms must use https)",
                               "Serve the tool over https, or set SANDBOX=0")
    sandbox = _build(settings)
    _serve(app, sandbox, settings)
    app.extensions["sandbox"] = sandbox

    @app.context_processor
    def _sandbox_registration():
        # The tool's own pages, framed in the sandbox's course, say so too (templates/_who.html).
        return {"sandbox_registration_id": sandbox.registration_id}
    if settings.run_migrations:  # else the schema may not be there yet: the first page registers
        from ..locks import LockTimeout
        try:
            sandbox.ensure_registered()
        except SQLAlchemyError as exc:
            from ..startup import database_error
            raise database_error(settings.database_url, exc) from None
        except LockTimeout as exc:
            raise StartupError("DATABASE_URL", f"{exc} (registering the sandbox)",
                               "Let the process holding it finish, or set SANDBOX=0") from None
    return sandbox


def _build(settings: Settings) -> Sandbox:
    from emulator import Platform
    from emulator.demo import demo_tool_ids, seed_demo_course
    from emulator.keys import KeySet

    from . import keys
    base = settings.base_url.rstrip("/")
    try:
        key = keys.load_or_create(Path(settings.key_dir))
    except (OSError, ValueError) as exc:
        if isinstance(exc, OSError):
            raise key_dir_error(Path(settings.key_dir), exc) from None
        raise StartupError("TOOL_KEY_DIR", f"{keys.FILE_NAME} is not a private key",
                           "Delete that file: a new sandbox is made on the next start") from None
    platform = Platform(issuer=base + PREFIX, name=PLATFORM_NAME,
                        keys=KeySet.from_key(key, keys.kid_of(key)))
    platform.base_url = base + PREFIX
    seed = keys.seed_of(key)
    demo = seed_demo_course(platform, seed)
    client_id, deployment_id = demo_tool_ids(seed)
    tool = platform.register_tool(
        client_id=client_id, login_url=base + "/lti/login", redirect_uris=[base + "/lti/launch"],
        target_link_uri=base + "/lti/launch", jwks_url=base + "/.well-known/jwks.json",
        deployment_ids=[deployment_id], title=settings.title)
    return Sandbox(platform=platform, demo=demo, tool=tool, locked=needs_password(settings))


class _SandboxRoot:
    """The emulator's links start at the sandbox's path under ``TOOL_BASE_URL``, whatever prefix
    a proxy did or did not announce: that address is the one the sandbox is registered at."""

    def __init__(self, app, script_name: str) -> None:
        self.app, self.script_name = app, script_name

    def __call__(self, environ, start_response):
        environ["SCRIPT_NAME"] = self.script_name
        return self.app(environ, start_response)


def _serve(app, sandbox: Sandbox, settings: Settings) -> None:
    from ..web.security import BoundedBody
    from . import gate
    emulator = sandbox.platform.app
    base_path = urlsplit(settings.base_url).path.rstrip("/")
    emulator.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes,
                           UI_SANDBOX={"home_url": base_path + "/"})
    if sandbox.locked:
        gate.install(emulator, gate.Gate(settings.sandbox_password, settings.secret_key))

    @emulator.before_request
    def _registered_first():  # a process started without migrating registers on first use
        sandbox.ensure_registered()

    wsgi = BoundedBody(_SandboxRoot(emulator.wsgi_app, base_path + PREFIX), settings.max_body_bytes)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {PREFIX: wsgi})
