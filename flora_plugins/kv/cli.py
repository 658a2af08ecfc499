"""``flora kv …``: the server's own KV data, read and written locally (config + database + backend).

Like ``flora tokens``, these commands do not go through the HTTP API: they
open the same database and KV backend as the server, with the same rules
(flora's CLI called the API; its commands were ``create-store``,
``list-stores``, ``delete-store``, ``set``, ``get``, ``delete``, ``list-keys``).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator

import click

from flora_cli.main import CliFailure
from flora_core.config import load_config
from flora_core.storage import describe_database, open_database

from .errors import KV_NOT_FOUND, KvError
from .service import KvService, service_for

SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")


def _guild(_ctx, _param, value: str) -> str:
    if not SNOWFLAKE.match(value):
        raise click.BadParameter(f"{value!r} is not a Discord snowflake (digits)")
    return value


guild_option = click.option(
    "--guild-id", "--guild", "guild_id", required=True, metavar="ID", callback=_guild, help="The guild that owns the store."
)
store_option = click.option("--store", "--name", "store", required=True, metavar="NAME", help="The store's name.")


@contextlib.contextmanager
def kv_service(ctx: click.Context) -> Iterator[KvService]:
    """The service over the server's database and KV backend; KV errors become one ``Error:`` line."""
    obj = ctx.find_root().ensure_object(dict)
    config = load_config(obj.get("config_path"))
    plugins = obj.get("plugins")
    if plugins is None:
        from flora_core.plugins import Plugins

        plugins = obj["plugins"] = Plugins()
    db = open_database(config, plugins, must_exist=True)
    click.echo(f"Using the database at {describe_database(config)}", err=True)
    service = None
    try:
        service = service_for({}, db, config, plugins)
        yield service
    except KvError as exc:
        hint = " (create it with `flora kv create`)" if exc.code == KV_NOT_FOUND and exc.message == "store not found" else ""
        raise CliFailure(exc.message + hint) from None
    finally:
        if service is not None:
            service.close()
        db.close()


@click.group("kv")
def kv_group():
    """Read and write KV stores in the server's own data."""


@kv_group.command("stores")
@guild_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def stores(ctx, guild_id, as_json):
    """List a guild's stores."""
    with kv_service(ctx) as kv:
        rows = kv.list_stores(guild_id)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"No KV stores found for guild {guild_id}")
    else:
        for row in rows:
            click.echo(f"{row['store_name']}  (created {row['created_at']})")


@kv_group.command("create")
@guild_option
@store_option
@click.pass_context
def create(ctx, guild_id, store):
    """Create a store (scripts can only use stores that exist)."""
    with kv_service(ctx) as kv:
        kv.create_store(guild_id, store)
    click.echo(f"Created KV store '{store}' for guild {guild_id}")


@kv_group.command("delete-store")
@guild_option
@store_option
@click.pass_context
def delete_store(ctx, guild_id, store):
    """Delete a store and every key in it."""
    with kv_service(ctx) as kv:
        kv.delete_store(guild_id, store)
    click.echo(f"Deleted KV store '{store}' for guild {guild_id}")


@kv_group.command("get")
@guild_option
@store_option
@click.argument("key")
@click.pass_context
def get(ctx, guild_id, store, key):
    """Print a key's value (exit 1 if it does not exist)."""
    with kv_service(ctx) as kv:
        value = kv.get(guild_id, store, key)
    if value is None:
        raise CliFailure(f"Key '{key}' not found")
    click.echo(value)


@kv_group.command("set")
@guild_option
@store_option
@click.argument("key")
@click.argument("value")
@click.option("--expiration", type=int, metavar="UNIX_SECONDS", help="When the key expires.")
@click.option("--metadata", metavar="JSON", help="JSON metadata stored with the key.")
@click.pass_context
def set_(ctx, guild_id, store, key, value, expiration, metadata):
    """Set a key (replaces its value, expiration and metadata)."""
    meta = None
    if metadata is not None:
        try:
            meta = json.loads(metadata)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="'--metadata'") from None
    with kv_service(ctx) as kv:
        kv.set(guild_id, store, key, value, expiration, meta)
    click.echo(f"Set {key}={value} in store '{store}'")


@kv_group.command("delete")
@guild_option
@store_option
@click.argument("key")
@click.pass_context
def delete(ctx, guild_id, store, key):
    """Delete a key (no error if it does not exist)."""
    with kv_service(ctx) as kv:
        kv.delete(guild_id, store, key)
    click.echo(f"Deleted key '{key}' from store '{store}'")


@kv_group.command("list")
@guild_option
@store_option
@click.option("--prefix", help="Only keys starting with this.")
@click.option("--limit", type=click.IntRange(0), help="At most this many keys (default 100, max 1000).")
@click.option("--cursor", help="Continue after this key (the cursor of the previous page).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON ({keys, listComplete, cursor?}).")
@click.pass_context
def list_(ctx, guild_id, store, prefix, limit, cursor, as_json):
    """List keys in byte order, a page at a time."""
    with kv_service(ctx) as kv:
        result = kv.list(guild_id, store, prefix, limit, cursor)
    if as_json:
        click.echo(json.dumps(result, indent=2, ensure_ascii=False))
        return
    if not result["keys"]:
        click.echo(f"No keys found in store '{store}'")
    for item in result["keys"]:
        line = f"  - {item['name']}"
        if "expiration" in item:
            line += f" (expires: {item['expiration']})"
        if "metadata" in item:
            line += f" [metadata: {json.dumps(item['metadata'], ensure_ascii=False)}]"
        click.echo(line)
    if not result["listComplete"]:
        click.echo(f"More keys available. Use --cursor {result['cursor']}")
