"""``flora deploy``: bundle-and-deploy a project through the API."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from flora_core.config import ConfigError

from ..base import CliFailure, _config, _stored, _token


# -- deploy --------------------------------------------------------------------
def _server_data_dirs(ctx) -> tuple[Path, ...]:
    """The local server's data folder, never uploaded (``flora serve`` often runs in the project folder)."""
    try:
        return (_config(ctx).data_path,)
    except ConfigError:
        return (Path("data").resolve(),)


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / (1024 * 1024):.1f} MiB"


@click.command()
@click.argument("entry_arg", metavar="[ENTRY]", required=False)
@click.option("--guild-id", "--guild", "guild_id", metavar="ID", help="Guild to deploy to (or [deploy] guild_id in flora.toml).")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Project folder (default: current folder).",
)
@click.option(
    "--entry", "entry_opt", metavar="PATH", help="Entry file (default: [deploy] entry in flora.toml, else src/main.ts)."
)
@click.option(
    "--api",
    "-a",
    "api_url",
    metavar="URL",
    help="API base URL including /api (default: $FLORA_API_URL, [deploy] api, http://127.0.0.1:3000/api).",
)
@click.option("--token", metavar="TOKEN", help="API token (default: $FLORA_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@click.option("--no-check", "no_check", is_flag=True, help="Deploy even if the project has type errors.")
@click.pass_context
def deploy(ctx, entry_arg, guild_id, root, entry_opt, api_url, token, as_json, no_check):
    """Bundle-and-deploy the project's TypeScript/JavaScript files to a guild."""
    from flora_cli.client import (
        DEFAULT_API_URL,
        SNOWFLAKE,
        ApiClient,
        ClientError,
        collect_files,
        imported_files,
        load_project_config,
        resolve_entry,
    )

    if entry_arg and entry_opt and entry_arg != entry_opt:
        raise click.UsageError("give the entry once, either as ENTRY or with --entry")
    root = (root or Path(".")).resolve()
    client = None
    try:
        project = load_project_config(root)
        guild_id = guild_id or project.get("guild_id")
        if not guild_id:
            raise click.UsageError("Missing option '--guild-id' (or set guild_id under [deploy] in flora.toml)")
        if not SNOWFLAKE.match(guild_id):
            raise click.UsageError(f"invalid guild id {guild_id!r}: expected a Discord snowflake (digits)")
        api_url = api_url or os.environ.get("FLORA_API_URL") or project.get("api") or _stored().get("api") or DEFAULT_API_URL
        token = _token(token)
        entry = resolve_entry(entry_arg or entry_opt or project.get("entry") or "src/main.ts", root)
        files = collect_files(root, exclude=_server_data_dirs(ctx))
        if entry not in {f["path"] for f in files}:
            raise CliFailure(f"Entry {entry} is not among the collected files (ignored, or not a script file)")
        files = imported_files(root, entry, files)
        if not no_check:
            _type_check(ctx, root, entry)
        total = sum(len(f["contents"].encode("utf-8")) for f in files)
        click.echo(f"Collected {len(files)} file{'s' if len(files) != 1 else ''} ({_size(total)}) from {root}", err=True)
        click.echo(f"Deploying {entry} to guild {guild_id} via {api_url}…", err=True)
        client = ApiClient(api_url, token)
        try:
            result = client.deploy(guild_id, entry, files)
        except KeyboardInterrupt:
            # the upload may have reached the server, which then deploys it whatever happens here
            raise CliFailure(
                f"Aborted: the server may have applied this deploy anyway; check with "
                f"`flora deployments history --guild-id {guild_id}`",
                exit_code=130,
            ) from None
    except ClientError as exc:
        if "deployment failed:" in str(exc):  # a failed load is recorded as a revision too
            _print_latest_revision(client, guild_id)
        raise CliFailure(str(exc)) from None
    if not isinstance(result, dict):
        raise CliFailure(f"unexpected answer from {api_url}: {str(result)[:200]}")
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"Deployed guild {result.get('guild_id', guild_id)}")
    click.echo(f"  entry: {result.get('entry', entry)}")
    click.echo(f"  updated: {result.get('updated_at', '?')}")
    _print_latest_revision(client, guild_id)
    _warn_missing_stores(client, guild_id, files)


def _type_check(ctx, root: Path, entry: str) -> None:
    """Refuse a project with type errors (strict, against the enabled plugins' declarations)."""
    from flora_core.declarations import assemble

    from ..base import _plugins
    from ..typecheck import CheckUnavailable, check

    try:
        errors = check(root, entry, assemble(_plugins(ctx)))
    except CheckUnavailable as exc:  # e.g. a syntax error: the server's bundler names it with file:line
        click.echo(f"Warning: {exc}; deploying without a type check", err=True)
        return
    if errors:
        shown = "\n".join(f"  {e}" for e in errors[:20]) + (f"\n  … and {len(errors) - 20} more" if len(errors) > 20 else "")
        raise CliFailure(f"{len(errors)} type error(s), nothing deployed (deploy anyway with --no-check):\n{shown}")


def _warn_missing_stores(client, guild_id: str, files: list[dict]) -> None:
    """A script's ``kv.store('notes')`` fails until the store exists (as in flora); ``flora dev`` creates the
    stores a project names, a deploy does not (the guild's admin decides): say which are missing, and how
    to create them. Best effort: a server without the kv plugin, or an older one, is left alone."""
    from flora_plugins.kv.console import KV_STORE

    named = sorted({n for f in files for n in KV_STORE.findall(f["contents"])})
    if not named:
        return
    try:
        stores = client.request("GET", f"/kv/stores?guild_id={guild_id}")
    except Exception:  # noqa: BLE001 - no kv routes there, or no answer: nothing to say
        return
    have = {s.get("store_name") or s.get("name") for s in stores} if isinstance(stores, list) else set()
    for name in named:
        if name not in have:
            click.echo(
                f"Warning: the script uses the KV store {name!r}, which guild {guild_id} does not have yet; "
                f"create it with `flora kv create --guild-id {guild_id} --store {name}` "
                "(flora dev creates the stores a project names)",
                err=True,
            )


def _print_latest_revision(client, guild_id: str) -> None:
    """The revision the deploy just recorded (success, or failed with its error), best effort."""
    if client is None:
        return
    try:
        rows = client.request("GET", f"/deployments/{guild_id}/history?limit=1")
    except Exception:  # noqa: BLE001 - the deploy's own outcome is what matters
        return
    if isinstance(rows, list) and rows:
        click.echo(f"  revision: {rows[0].get('id')} ({rows[0].get('status')})", err=True)
