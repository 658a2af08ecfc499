"""``flora deployments`` and ``flora logs``: revisions, rollback and a guild's log, through the API."""

from __future__ import annotations

import json

import click

from ..base import _API_OPTION, _JSON_OPTION, _TOKEN_OPTION, CliFailure, _api_client, _call, _guild_option, _print_json


@click.group()
def deployments():
    """Inspect deployments and their revisions; roll back."""


@deployments.command("list")
@_API_OPTION
@_TOKEN_OPTION
@_JSON_OPTION
def deployments_list(api_url, token, as_json):
    """Guilds with a deployment (those the token may manage)."""
    api = _api_client(api_url, token)
    rows = _call(api.request, "GET", "deployments")
    if as_json:
        _print_json(rows)
        return
    if not rows:
        click.echo("No deployments found.")
    for row in rows:
        click.echo(f"{row['guild_id']}  {row['entry']}  updated {row['updated_at']}")


@deployments.command("history")
@_guild_option()
@click.option("--limit", "-n", type=click.IntRange(1, 100), default=25, show_default=True, help="Revisions per page.")
@click.option("--all", "all_pages", is_flag=True, help="Follow the cursor through every page.")
@_API_OPTION
@_TOKEN_OPTION
@_JSON_OPTION
def deployments_history(guild_id, limit, all_pages, api_url, token, as_json):
    """A guild's deployment revisions, newest first."""
    from flora_cli.remote import format_revision, history

    api = _api_client(api_url, token, guild_id)
    revs, cursor = [], None
    while True:
        page = _call(history, api, guild_id, limit, cursor)
        revs += page
        if not all_pages or len(page) < limit:
            break
        cursor = (page[-1]["deployed_at"], page[-1]["id"])
    if as_json:
        _print_json(revs)
        return
    if not revs:
        click.echo(f"No deployment revisions for guild {guild_id}")
    for rev in revs:
        click.echo(format_revision(rev))


@deployments.command("show")
@click.argument("revision_id", required=False)
@_guild_option()
@_API_OPTION
@_TOKEN_OPTION
@_JSON_OPTION
def deployments_show(revision_id, guild_id, api_url, token, as_json):
    """One revision, or the guild's current deployment without REVISION_ID."""
    from flora_cli.remote import describe_revision

    api = _api_client(api_url, token, guild_id)
    if revision_id:
        rev = _call(api.request, "GET", f"deployments/{guild_id}/revisions/{revision_id}")
        lines = describe_revision(rev)
    else:
        rev = _call(api.request, "GET", f"deployments/{guild_id}")
        lines = [
            f"Guild {rev['guild_id']}",
            f"  entry: {rev['entry']}",
            f"  created: {rev['created_at']}",
            f"  updated: {rev['updated_at']}",
        ]
        if rev.get("files"):
            lines.append(f"  files: {', '.join(f['path'] for f in rev['files'])}")
    if as_json:
        _print_json(rev)
        return
    for line in lines:
        click.echo(line)


@deployments.command("rollback")
@click.argument("revision_id")
@_guild_option()
@_API_OPTION
@_TOKEN_OPTION
@_JSON_OPTION
def deployments_rollback(revision_id, guild_id, api_url, token, as_json):
    """Redeploy a successful earlier revision (recorded as a new revision)."""
    api = _api_client(api_url, token, guild_id)
    rev = _call(api.request, "POST", f"deployments/{guild_id}/rollback/{revision_id}", None, {"x-flora-deploy-source": "cli"})
    if as_json:
        _print_json(rev)
        return
    click.echo(f"Rolled back guild {guild_id} to {revision_id}")
    click.echo(f"  new revision: {rev['id']}")
    click.echo(f"  entry: {rev['entry']}")


@click.command("logs")
@_guild_option()
@click.option("--limit", "-n", type=click.IntRange(0, 1000), default=100, show_default=True, help="Recent entries to print.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries as they are written (Ctrl-C stops).")
@_API_OPTION
@_TOKEN_OPTION
@_JSON_OPTION
def logs_command(guild_id, limit, follow, api_url, token, as_json):
    """A guild's recent script and runtime log entries."""
    from flora_cli.remote import format_log, stream_logs

    api = _api_client(api_url, token, guild_id)
    entries = _call(api.request, "GET", f"logs/{guild_id}?limit={limit}") if limit else []
    show = (lambda e: click.echo(json.dumps(e))) if as_json else (lambda e: click.echo(format_log(e)))
    if not entries and not follow and not as_json:
        click.echo("No logs found")
    for entry in entries:
        show(entry)
    if follow:

        def opened():
            click.echo(f"Following the log of guild {guild_id} (Ctrl-C stops)", err=True)

        try:
            stream = _call(stream_logs, api, guild_id, opened)
            while True:
                entry = _call(next, stream, None)
                if entry is None:
                    raise CliFailure("the server closed the log stream")
                show(entry)
        except KeyboardInterrupt:  # how one stops following: not an error
            return
