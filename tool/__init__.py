"""The LTI 1.3 Advantage tool: ``create_app()`` wires settings, database, keys, blueprints and CLI."""
from __future__ import annotations

import logging

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from config import Settings

from .db import db


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        TOOL_BASE_URL=settings.base_url.rstrip("/"),
        DATABASE_URL=settings.database_url,
        KEY_DIR=settings.key_dir,
        TOOL_TITLE=settings.title,
        TOOL_DESCRIPTION=settings.description,
        JWT_LEEWAY=settings.jwt_leeway,
        LOGIN_STATE_TTL=settings.login_state_ttl,
        PAGE_TOKEN_TTL=settings.page_token_ttl,
        SETTINGS=settings,
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # quiet "no migration to run" on every start
    if settings.proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_hops, x_proto=settings.proxy_hops,
                                x_host=settings.proxy_hops, x_port=settings.proxy_hops,
                                x_prefix=settings.proxy_hops)

    if settings.database_url.startswith("sqlite:///"):
        from pathlib import Path
        Path(settings.database_url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    db.init_app(app)
    if settings.run_migrations:
        from .migrate import upgrade
        upgrade(db.engine)
        from .lti import keys
        keys.ensure_signing_key(db.session, settings.key_dir)
        db.session.remove()

    from .lti import PlatformKeyCache
    app.extensions["platform_keys"] = PlatformKeyCache(
        ttl=settings.jwks_cache_ttl, refetch_interval=settings.jwks_refetch_interval,
        timeout=(settings.http_connect_timeout, settings.http_read_timeout))
    app.extensions["after_launch"] = lambda launch, result: None

    from . import jobs
    jobs.init_app(app)
    # An instructor launch with the NRPS claim queues a roster sync (issue 3).
    app.extensions["after_launch"] = jobs.after_launch

    from .web import errors, lti, pages, roster
    app.register_blueprint(lti.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(roster.bp)
    errors.register(app)

    @app.after_request
    def _security_headers(response):
        # Page tokens ride in URLs: never hand them to another site in a Referer.
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    from . import cli
    cli.register(app)
    return app
