"""``flora secrets list|set|delete``: a guild's secrets, in the server's own database.

Like ``flora tokens``, these commands open the database of the server's
configuration (``DATABASE_URL``, ``SECRETS_MASTER_KEY``) directly. ``set``
reads the value from standard input, or asks for it on a terminal: a value
given on the command line would end up in the shell history and in ``ps``.
"""

from __future__ import annotations

import json
import sys

import click

from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import describe_database, open_database

from .store import SecretsError, box_from_config, delete_secret, list_secrets, put_secret

GUILD_OPTION = click.option("--guild-id", "--guild", "guild_id", required=True, metavar="ID", help="The guild.")


def _open(ctx: click.Context):
    obj = ctx.find_root().obj or {}
    config = load_config(obj.get("config_path"))
    plugins = obj.get("plugins") or Plugins()
    db = open_database(config, plugins, must_exist=True)
    click.echo(f"Using the database at {describe_database(config)}", err=True)
    return config, db


def _check_guild(guild_id: str) -> None:
    if not guild_id.isdigit() or len(guild_id) > 20:
        raise click.UsageError(f"invalid guild id {guild_id!r}: expected a Discord snowflake (digits)")


def _read_value() -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        return click.prompt("Value", hide_input=True, confirmation_prompt=True)
    value = sys.stdin.read() if sys.stdin is not None else ""
    if value.endswith("\r\n"):
        value = value[:-2]
    elif value.endswith("\n"):
        value = value[:-1]
    if not value:
        raise click.ClickException("no value on standard input (pipe it in, or run on a terminal to be asked)")
    return value


@click.group("secrets")
def secrets_group():
    """Manage a guild's secrets (values are encrypted with SECRETS_MASTER_KEY and never printed)."""


@secrets_group.command("list")
@GUILD_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def list_command(ctx, guild_id, as_json):
    """List the guild's secret names and allowed hosts."""
    _check_guild(guild_id)
    config, db = _open(ctx)
    try:
        items = list_secrets(db, guild_id)
    finally:
        db.close()
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo(f"No secrets for guild {guild_id}.")
        return
    for item in items:
        click.echo(f"{item['name']}  (allowed hosts: {', '.join(item['allowed_hosts']) or 'any'})")


@secrets_group.command("set")
@click.argument("name")
@GUILD_OPTION
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="HOST",
    help="Host the secret may be sent to (exact, or *.example.com); repeat for several. Default: any host.",
)
@click.pass_context
def set_command(ctx, name, guild_id, allowed_hosts):
    """Create or replace secret NAME (value from standard input, or asked for)."""
    _check_guild(guild_id)
    config, db = _open(ctx)
    try:
        try:
            box = box_from_config(config)
        except SecretsError as exc:
            raise click.ClickException(str(exc)) from None
        existed = any(s["name"] == name for s in list_secrets(db, guild_id))
        value = _read_value()
        put_secret(db, box, guild_id, name, value, list(allowed_hosts))
    finally:
        db.close()
    click.echo(f"Secret {name!r} stored for guild {guild_id} (allowed hosts: {', '.join(allowed_hosts) or 'any'}).")
    if not existed:
        click.echo(
            "Running scripts use it in fetch() at once; secrets.get() knows a new name from the script's next load.", err=True
        )


@secrets_group.command("delete")
@click.argument("name")
@GUILD_OPTION
@click.pass_context
def delete_command(ctx, name, guild_id):
    """Delete secret NAME."""
    _check_guild(guild_id)
    config, db = _open(ctx)
    try:
        removed = delete_secret(db, guild_id, name)
    finally:
        db.close()
    click.echo(f"Deleted secret {name!r} of guild {guild_id}." if removed else f"No secret {name!r} in guild {guild_id}.")
