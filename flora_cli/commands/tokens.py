"""``flora tokens``: the server's API tokens (stored hashed)."""

from __future__ import annotations

import json

import click

from ..base import CliFailure, _open_db


# -- tokens --------------------------------------------------------------------
@click.group()
def tokens():
    """Manage API tokens in the server's own database (operator tokens: every guild)."""


@tokens.command("create")
@click.option("--label", help="A note to recognise the token by.")
@click.pass_context
def tokens_create(ctx, label):
    """Create a token; only the token is printed on stdout (it is not stored in clear)."""
    from flora_core.storage import repo

    db = _open_db(ctx)
    try:
        token, row = repo.create_token(db, label=label)
    finally:
        db.close()
    click.echo(token)
    click.echo(f"Created token {row['token_id']}{f' ({label})' if label else ''}. It is shown only once; "
               "use it with `flora deploy --token …` or FLORA_TOKEN.", err=True)


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
    items = [{"token_id": r["token_id"], "label": r["label"], "created_at": r["created_at"], "last_used_at": r["last_used_at"]} for r in rows]
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("No tokens.")
        return
    width = max(len(i["label"] or "-") for i in items)
    click.echo(f"{'TOKEN ID':<12}  {'LABEL':<{width}}  {'CREATED':<32}  LAST USED")
    for i in items:
        click.echo(f"{i['token_id']:<12}  {i['label'] or '-':<{width}}  {i['created_at']:<32}  {i['last_used_at'] or 'never'}")


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
