"""Command line: ``flask --app app platform|keys|db ...`` (the README lists every command)."""
from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from . import platforms
from .db import db
from .lti import keys as tool_keys
from .lti.errors import ToolError

platform_cli = AppGroup("platform", help="Register the learning platforms that may launch the tool.")
keys_cli = AppGroup("keys", help="The tool's signing keys (published at /.well-known/jwks.json).")
db_cli = AppGroup("db", help="Database schema.")


def _fail(exc: ToolError) -> None:
    message = exc.reason + (f"\n{exc.hint}" if exc.hint else "") + (f"\n  {exc.command}" if exc.command else "")
    raise click.ClickException(message)


@platform_cli.command("add")
@click.option("--issuer", help="The platform's issuer (iss).")
@click.option("--client-id", required=True, help="The client id (Canvas: the developer key's id).")
@click.option("--auth-login-url", help="OIDC authorization endpoint.")
@click.option("--auth-token-url", help="OAuth2 token endpoint.")
@click.option("--key-set-url", help="The platform's JWKS URL.")
@click.option("--deployment-id", "deployment_ids", multiple=True, help="A deployment id (repeatable).")
@click.option("--canvas", "canvas_url", help="A school's Canvas URL; fills in Canvas's issuer and endpoints.")
@click.option("--canvas-env", type=click.Choice(["prod", "beta", "test"]), default="prod", show_default=True)
@click.option("--name", default="", help="A name to show for this platform.")
@click.option("--any-deployment", is_flag=True, help="Accept and record new deployment ids on first launch.")
@click.option("--match-email", is_flag=True, help="Match a launching person to an imported one by email.")
def platform_add(issuer, client_id, auth_login_url, auth_token_url, key_set_url, deployment_ids,
                 canvas_url, canvas_env, name, any_deployment, match_email):
    """Add (or update) a platform registration and its deployments."""
    try:
        if canvas_url:
            spec = platforms.canvas_spec(canvas_url, client_id, canvas_env)
            spec.issuer = issuer or spec.issuer
            spec.auth_login_url = auth_login_url or spec.auth_login_url
            spec.auth_token_url = auth_token_url or spec.auth_token_url
            spec.key_set_url = key_set_url or spec.key_set_url
        else:
            missing = [flag for flag, value in (("--issuer", issuer), ("--auth-login-url", auth_login_url),
                                                ("--auth-token-url", auth_token_url),
                                                ("--key-set-url", key_set_url)) if not value]
            if missing:
                raise click.UsageError(f"Missing {', '.join(missing)} (or use --canvas URL).")
            spec = platforms.PlatformSpec(issuer, client_id, auth_login_url, auth_token_url, key_set_url)
        spec.name = name or spec.name
        reg = platforms.add_platform(db.session, spec, list(deployment_ids),
                                     any_deployment=any_deployment, match_email=match_email)
    except ToolError as exc:
        _fail(exc)
    click.echo(f"Registered {reg.issuer} client {reg.client_id} with deployments: "
               f"{', '.join(d.deployment_id for d in reg.deployments) or '(none yet)'}")


@platform_cli.command("add-deployment")
@click.option("--issuer", required=True)
@click.option("--client-id", required=True)
@click.option("--deployment-id", "deployment_ids", multiple=True, required=True)
def platform_add_deployment(issuer, client_id, deployment_ids):
    """Allow launches from another deployment of a registered platform."""
    try:
        reg = platforms.get(db.session, issuer, client_id)
        for deployment_id in deployment_ids:
            platforms.add_deployment(db.session, reg, deployment_id)
        db.session.commit()
    except ToolError as exc:
        _fail(exc)
    click.echo(f"Deployments of {issuer} client {client_id}: "
               f"{', '.join(d.deployment_id for d in reg.deployments)}")


@platform_cli.command("list")
def platform_list():
    """Show every registration."""
    regs = platforms.list_platforms(db.session)
    if not regs:
        click.echo("No platforms registered. Add one with `flask --app app platform add`.")
    for reg in regs:
        click.echo(f"{reg.name or reg.issuer}\n  issuer: {reg.issuer}\n  client id: {reg.client_id}\n"
                   f"  auth login: {reg.auth_login_url}\n  token: {reg.auth_token_url}\n"
                   f"  key set: {reg.key_set_url}\n  any deployment: {'yes' if reg.accepts_any_deployment else 'no'}"
                   f"\n  deployments: {', '.join(d.deployment_id for d in reg.deployments) or '(none)'}")


@platform_cli.command("remove")
@click.option("--issuer", required=True)
@click.option("--client-id", required=True)
@click.confirmation_option(prompt="Remove this registration and everything provisioned through it?")
def platform_remove(issuer, client_id):
    """Remove a registration (its users, courses and memberships go with it)."""
    try:
        platforms.remove_platform(db.session, issuer, client_id)
    except ToolError as exc:
        _fail(exc)
    click.echo(f"Removed {issuer} client {client_id}.")


@keys_cli.command("rotate")
def keys_rotate():
    """Make a new signing key; the old ones stay published until retired."""
    key = tool_keys.rotate(db.session, current_app.config["KEY_DIR"])
    click.echo(f"New signing key {key.kid}. Retire the old one after platforms have refetched the "
               f"JWKS (a day is plenty): flask --app app keys retire OLD_KID")


# A kid is a base64url thumbprint and may begin with "-": never read it as an option.
@keys_cli.command("retire", context_settings={"ignore_unknown_options": True})
@click.argument("kid", type=click.UNPROCESSED)
def keys_retire(kid):
    """Stop publishing an old key."""
    try:
        tool_keys.retire(db.session, kid)
    except ToolError as exc:
        _fail(exc)
    click.echo(f"Key {kid} is no longer published.")


@keys_cli.command("list")
def keys_list():
    from sqlalchemy import select
    from .models import ToolKey
    for key in db.session.scalars(select(ToolKey).order_by(ToolKey.id)):
        state = "signing" if key.is_signing else ("published" if key.is_published else "retired")
        click.echo(f"{key.kid}  {state}  created {key.created_at:%Y-%m-%d %H:%M}")


@db_cli.command("upgrade")
def db_upgrade():
    """Apply schema migrations (also done on every start)."""
    from .migrate import current, upgrade
    upgrade(db.engine)
    click.echo(f"Database at revision {current(db.engine)}.")


def register(app: Flask) -> None:
    from .roster.cli import jobs_cli, roster_cli
    for group in (platform_cli, keys_cli, db_cli, roster_cli, jobs_cli):
        app.cli.add_command(group)
