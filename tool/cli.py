"""Command line: ``flask --app app platform|keys|db ...`` (the README lists every command).

Every failure a person can cause ends in one line (``click.ClickException``) and exit status 1,
never a traceback: refusals from ``tool/`` (``ToolError``), a database that stopped answering
(``DATABASE_URL``) and a key folder that cannot be written (``TOOL_KEY_DIR``).
"""
from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, ScriptInfo
from sqlalchemy.exc import SQLAlchemyError

from config import StartupError, key_dir_error

from . import invites, platforms, registrations
from .db import db
from .errors import ToolError
from .lti import keys as tool_keys
from .startup import database_error


def _message(exc: ToolError) -> str:
    """Reason and hint on one line; a command to run, if any, on its own line to copy."""
    return exc.reason + (f" {exc.hint}" if exc.hint else "") + (f"\n  {exc.command}" if exc.command else "")


def _fail(exc: ToolError) -> None:
    raise click.ClickException(_message(exc))


class ToolGroup(AppGroup):
    """A command group whose commands fail with one line, whatever went wrong underneath."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ToolError as exc:
            raise click.ClickException(_message(exc)) from None
        except StartupError as exc:
            raise click.ClickException(str(exc)) from None
        except SQLAlchemyError as exc:
            db.session.rollback()
            # The command's app context has ended here; the script info still holds the app.
            url = ctx.ensure_object(ScriptInfo).load_app().config["DATABASE_URL"]
            raise click.ClickException(str(database_error(url, exc))) from None
        except OSError as exc:
            raise click.ClickException(f"{exc.strerror or exc.__class__.__name__}: {exc.filename or exc}") from None


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 page``, ``2 pages``, ``0 retries``."""
    return f"{n} {word if n == 1 else (words or word + 's')}"


platform_cli = ToolGroup("platform", help="Register the learning platforms that may launch the tool.")
keys_cli = ToolGroup("keys", help="The tool's signing keys (published at /.well-known/jwks.json).")
db_cli = ToolGroup("db", help="Database schema.")


@platform_cli.command("add")
@click.option("--issuer", help="The platform's issuer (iss).")
@click.option("--client-id", required=True, help="The client id (Canvas: the developer key's id).")
@click.option("--auth-login-url", help="OIDC authorization endpoint.")
@click.option("--auth-token-url", help="OAuth2 token endpoint.")
@click.option("--key-set-url", help="The platform's JWKS URL.")
@click.option("--deployment-id", "deployment_ids", multiple=True, help="A deployment id (repeatable).")
@click.option("--canvas", "canvas_url",
              help="A school's Canvas address (https://school.instructure.com); fills in Canvas's "
                   "issuer and endpoints.")
@click.option("--canvas-env", type=click.Choice(["prod", "beta", "test"]), default=None,
              help="Canvas environment; by default read from the address (*.beta.instructure.com, "
                   "*.test.instructure.com), else prod.")
@click.option("--platform-url", help="Without --canvas: the school's platform address (pages may be "
                                     "framed by it).")
@click.option("--name", default="", help="A name to show for this platform.")
@click.option("--any-deployment", is_flag=True, help="Accept and record new deployment ids on first launch.")
@click.option("--match-email", is_flag=True, help="Match a launching person to an imported one by email.")
def platform_add(issuer, client_id, auth_login_url, auth_token_url, key_set_url, deployment_ids,
                 canvas_url, canvas_env, platform_url, name, any_deployment, match_email):
    """Add (or update) a platform registration and its deployments."""
    if canvas_url:
        if issuer:
            raise click.ClickException("--canvas sets Canvas's issuer itself: give --canvas or --issuer, not both.")
        if platform_url:
            raise click.ClickException("--canvas is the platform URL: give --canvas or --platform-url, not both.")
        spec = platforms.canvas_spec(canvas_url, client_id, canvas_env)
        # Explicit endpoints still win (a self-hosted Canvas, a proxy in between).
        spec.auth_login_url = auth_login_url or spec.auth_login_url
        spec.auth_token_url = auth_token_url or spec.auth_token_url
        spec.key_set_url = key_set_url or spec.key_set_url
    else:
        if canvas_env:
            raise click.ClickException("--canvas-env only applies with --canvas.")
        missing = [flag for flag, value in (("--issuer", issuer), ("--auth-login-url", auth_login_url),
                                            ("--auth-token-url", auth_token_url),
                                            ("--key-set-url", key_set_url)) if not value]
        if missing:
            raise click.ClickException(f"Missing {', '.join(missing)} (or use --canvas URL).")
        spec = platforms.PlatformSpec(issuer.strip(), client_id, auth_login_url, auth_token_url, key_set_url)
        if platform_url:
            spec.platform_url = platforms.platform_origin(platform_url, "Platform URL", "--platform-url")
    spec.name = name
    saved = platforms.save_platform(db.session, spec, list(deployment_ids),
                                    any_deployment=any_deployment, match_email=match_email)
    reg = saved.registration
    who = f"{reg.issuer} client {reg.client_id}"
    if saved.created:
        click.echo(f"Registered {who} ({reg.name}) with deployments: "
                   f"{', '.join(d.deployment_id for d in reg.deployments) or '(none yet)'}")
        if canvas_url:
            how = "as asked" if canvas_env else "from the address"
            click.echo(f"  Canvas {platforms.canvas_environment_of(spec.issuer)} environment ({how}); "
                       f"token URL {reg.auth_token_url}")
    elif saved.changes:
        click.echo(f"Updated {who}: {'; '.join(saved.changes)}.")
    else:
        click.echo(f"Unchanged: {who} is already registered with these settings.")


@platform_cli.command("add-deployment")
@click.option("--issuer", required=True)
@click.option("--client-id", required=True)
@click.option("--deployment-id", "deployment_ids", multiple=True, required=True)
def platform_add_deployment(issuer, client_id, deployment_ids):
    """Allow launches from another deployment of a registered platform."""
    try:
        reg = registrations.get(db.session, issuer, client_id)
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
    regs = registrations.list_all(db.session)
    if not regs:
        click.echo("No platforms registered. Add one with `flask --app app platform add`.")
    for reg in regs:
        click.echo(f"{reg.name or reg.issuer}\n  issuer: {reg.issuer}\n  client id: {reg.client_id}\n"
                   f"  auth login: {reg.auth_login_url}\n  token: {reg.auth_token_url}\n"
                   f"  key set: {reg.key_set_url}\n  platform URL: {reg.platform_url or '(none)'}\n"
                   f"  any deployment: {'yes' if reg.accepts_any_deployment else 'no'}"
                   f"\n  added by: {'dynamic registration' if reg.source == 'dynamic' else reg.source}"
                   f"\n  deployments: {', '.join(d.deployment_id for d in reg.deployments) or '(none)'}")


@platform_cli.command("invite")
@click.option("--note", default="", help="Who or what the invite is for (shown by `platform invites`).")
@click.option("--expires-in", type=click.IntRange(min=60), default=None,
              help="Seconds the code stays usable; default REGISTRATION_INVITE_SECONDS (a day).")
def platform_invite(note, expires_in):
    """Print a one-time registration URL to paste into a platform (LTI Dynamic Registration)."""
    ttl = expires_in or current_app.config["SETTINGS"].registration_invite_ttl
    new = invites.create(db.session, ttl, note)
    url = f"{current_app.config['TOOL_BASE_URL']}/lti/register?invite={new.code}"
    click.echo(f"Registration URL (usable once, until {new.invite.expires_at:%Y-%m-%d %H:%M} UTC):\n"
               f"  {url}\n"
               f"Paste it into the platform. Canvas: Admin > Developer Keys > + Developer Key > "
               f"LTI Registration.")


@platform_cli.command("invites")
def platform_invites():
    """Show registration invites that can still be used."""
    found = invites.open_invites(db.session)
    if not found:
        click.echo(f"No open invites. Make one with `{invites.INVITE_COMMAND}`.")
    for invite in found:
        click.echo(f"invite {invite.id}: created {invite.created_at:%Y-%m-%d %H:%M}, expires "
                   f"{invite.expires_at:%Y-%m-%d %H:%M} UTC" + (f" - {invite.note}" if invite.note else ""))


@platform_cli.command("remove")
@click.option("--issuer", required=True)
@click.option("--client-id", required=True)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def platform_remove(issuer, client_id, yes):
    """Remove a registration (its users, courses and memberships go with it)."""
    # Say first whether it exists: a typo should not be met with a question.
    reg = registrations.get(db.session, issuer, client_id)
    counts = platforms.provisioned(db.session, reg)
    click.echo(f"{reg.name or reg.issuer} ({issuer} client {client_id}): removing it also removes "
               f"{plural(counts['deployment'], 'deployment')}, {plural(counts['user'], 'user')} and "
               f"{plural(counts['course'], 'course')}, with their memberships, roster history and "
               f"open page sessions.")
    if not yes:
        click.confirm("Remove this registration?", abort=True)
    platforms.remove_platform(db.session, issuer, client_id)
    click.echo(f"Removed {issuer} client {client_id}.")


@keys_cli.command("rotate")
def keys_rotate():
    """Make a new signing key; the old ones stay published until retired."""
    key_dir = Path(current_app.config["KEY_DIR"])
    try:
        key = tool_keys.rotate(db.session, key_dir)
    except OSError as exc:
        db.session.rollback()
        raise click.ClickException(str(key_dir_error(key_dir, exc))) from None
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
    from .jobs.cli import jobs_cli
    from .roster.cli import roster_cli
    for group in (platform_cli, keys_cli, db_cli, roster_cli, jobs_cli):
        app.cli.add_command(group)
    from .grading.cli import grades_cli; app.cli.add_command(grades_cli)  # noqa: E702
