"""The LTI 1.3 Advantage tool: ``create_app()`` wires settings, database, keys, blueprints and CLI."""
from __future__ import annotations

import logging

from flask import Flask

from config import Settings

from . import startup


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        TOOL_BASE_URL=settings.base_url.rstrip("/"),
        DATABASE_URL=settings.database_url,
        DATABASE_PREPARED_STATEMENTS=settings.database_prepared_statements,
        KEY_DIR=settings.key_dir,
        TOOL_TITLE=settings.title,
        TOOL_DESCRIPTION=settings.description,
        JWT_LEEWAY=settings.jwt_leeway,
        LOGIN_STATE_TTL=settings.login_state_ttl,
        SESSION_LIFETIME=settings.session_lifetime,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        SETTINGS=settings,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # quiet "no migration to run" on every start
    from .web import security
    # Forwarded headers change nothing unless PROXY_HOPS proxies are configured in front.
    security.wrap_proxies(app, settings.proxy_hops, settings.trust_forwarded_prefix)

    # Setting mistakes raise config.StartupError (one line for the operator, see tool/startup.py).
    for warning in settings.warnings:
        logging.getLogger("tool.startup").warning("%s", warning)
    startup.open_database(app, settings)
    if settings.run_migrations:
        startup.migrate_and_key(settings)

    from .lti import PlatformKeyCache
    app.extensions["platform_keys"] = PlatformKeyCache(
        ttl=settings.jwks_cache_ttl, refetch_interval=settings.jwks_refetch_interval,
        timeout=(settings.http_connect_timeout, settings.http_read_timeout))
    app.extensions["after_launch"] = lambda launch, result: None

    from .roster import runs
    startup.open_job_queue(app, settings)
    # An instructor launch with the NRPS claim queues a roster sync.
    app.extensions["after_launch"] = runs.after_launch

    from .web import errors, home, lti, pages, roster
    app.register_blueprint(home.bp)
    app.register_blueprint(lti.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(roster.bp)
    from .web import deep_linking; app.register_blueprint(deep_linking.bp)  # noqa: E702
    from .web import assessments; app.register_blueprint(assessments.bp)  # noqa: E702
    from .web import student; app.register_blueprint(student.bp)  # noqa: E702
    from .web import gradebook; app.register_blueprint(gradebook.bp)  # noqa: E702
    from .web import register; app.register_blueprint(register.bp)  # noqa: E702
    errors.register(app)

    # CSP with frame-ancestors, nosniff, Referrer-Policy, bounded Location: on every answer.
    security.register(app)
    from .web import display
    display.register(app)  # template filters: times in UTC, named

    from . import cli
    cli.register(app)
    from . import sandbox; sandbox.mount(app, settings)  # noqa: E702  emulated LMS under /sandbox
    return app
