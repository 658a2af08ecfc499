"""``flora tokens``: the server's API tokens (stored hashed)."""

from __future__ import annotations

import json

import click

from ..base import CliFailure, _open_db
from ..client import SNOWFLAKE


# -- tokens --------------------------------------------------------------------
@click.group()
def tokens():
    """Manage API tokens in the server's own database (operator tokens: every guild)."""


@tokens.command("create")
@click.option("--label", help="A note to recognise the token by.")
@click.option(
    "--guild-id",
    "--guild",
    "guild_ids",
    multiple=True,
    metavar="ID",
    help="Only this guild (repeat for several); default: every guild.",
)
@click.option(
    "--scope",
    type=click.Choice(["read", "deploy", "admin"]),
    default="admin",
    show_default=True,
    help="read: look only; deploy: also deploy and roll back; admin: also KV, secrets and plugins' routes.",
)
@click.pass_context
def tokens_create(ctx, label, guild_ids, scope):
    """Create a token; only the token is printed on stdout (it is not stored in clear)."""
    from flora_core.storage import repo

    for guild_id in guild_ids:
        if not SNOWFLAKE.match(guild_id):
            raise click.BadParameter(f"{guild_id!r} is not a Discord snowflake (digits)", param_hint="'--guild-id'")
    db = _open_db(ctx)
    try:
        token, row = repo.create_token(db, label=label, scope=scope, guild_ids=guild_ids or None)
    finally:
        db.close()
    click.echo(token)
    reach = f"guild(s) {', '.join(row['guild_ids'])}" if row["guild_ids"] else "every guild"
    click.echo(
        f"Created token {row['token_id']}{f' ({label})' if label else ''}: scope {scope}, {reach}. "
        "It is shown only once; use it with `flora deploy --token …` or FLORA_TOKEN.",
        err=True,
    )


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def tokens_list(ctx, as_json):
    """List tokens (never their secret)."""
    from flora_core.storage import repo

    db = _open_db(ctx)
    try:
        rows = repo.list_tokens(db)
    finally:
        db.close()
    items = [
        {
            "token_id": r["token_id"],
            "label": r["label"],
            "scope": r["scope"],
            "guild_ids": r["guild_ids"],
            "created_at": r["created_at"],
            "last_used_at": r["last_used_at"],
        }
        for r in rows
    ]
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("No tokens.")
        return
    rows_out = [
        (
            i["token_id"],
            i["label"] or "-",
            i["scope"],
            ",".join(i["guild_ids"]) if i["guild_ids"] else "all",
            i["created_at"],
            i["last_used_at"] or "never",
        )
        for i in items
    ]
    header = ("TOKEN ID", "LABEL", "SCOPE", "GUILDS", "CREATED", "LAST USED")
    widths = [max(len(r[c]) for r in [header, *rows_out]) for c in range(len(header) - 1)]
    for r in [header, *rows_out]:
        click.echo("  ".join(f"{v:<{w}}" for v, w in zip(r, widths, strict=False)) + "  " + r[-1])


@tokens.command("revoke")
@click.argument("token_id")
@click.pass_context
def tokens_revoke(ctx, token_id):
    """Delete a token by its id (the part before the dot)."""
    from flora_core.storage import repo

    db = _open_db(ctx)
    try:
        removed = repo.revoke_token(db, token_id.split(".", 1)[0])
    finally:
        db.close()
    if not removed:
        raise CliFailure(f"Token not found: {token_id}")
    click.echo(f"Revoked token {token_id}")
