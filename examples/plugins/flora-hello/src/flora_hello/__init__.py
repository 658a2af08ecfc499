"""flora-hello: an example third-party flora plugin.

It adds, each through one of flora's hooks:

* an op, ``op_hello`` (``{name}`` -> ``"<greeting>, <name>!"``), and ``hello(name)`` for scripts, a JS
  source that extends the SDK (``hello.js``) with its TypeScript declarations (``hello.d.ts``)::

      await ctx.reply(await hello("x"));                 // "hello, x!"
      await __floraOp("op_hello", { name: "x" });        // the same, without the SDK

* a config key, ``HELLO_GREETING`` (``[hello] greeting`` in config.toml; default ``hello``);
* a table, ``hello_counts``: how many greetings each guild got (sqlite and postgres migrations);
* a CLI command, ``flora hello counts [--guild-id G]``;
* an HTTP route, ``GET /api/hello``.

A plugin only needs ``from flora_core import hookimpl`` and functions named after flora's hooks.
"""

from __future__ import annotations

from importlib import resources

from flora_core import hookimpl

__version__ = "0.4.0"

MAX_GREETING = 40


def greeting(raw) -> str:
    """HELLO_GREETING: a short word or phrase on one line."""
    text = str(raw).strip()
    if not text:
        raise ValueError("expected a greeting, got an empty value")
    if len(text) > MAX_GREETING or "\n" in text:
        raise ValueError(f"expected one line of at most {MAX_GREETING} characters")
    return text


def count(db, guild_id: str, name: str) -> None:
    """One more greeting for ``guild_id`` (the same statement works on SQLite and PostgreSQL)."""
    db.execute(
        "INSERT INTO hello_counts (guild_id, greetings, last_name) VALUES (?, 1, ?) "
        "ON CONFLICT (guild_id) DO UPDATE SET greetings = hello_counts.greetings + 1, last_name = excluded.last_name",
        (guild_id, name),
    )


def counts(db, guild_id: str | None = None) -> list[dict]:
    if guild_id is None:
        return db.fetchall("SELECT guild_id, greetings, last_name FROM hello_counts ORDER BY guild_id")
    return db.fetchall("SELECT guild_id, greetings, last_name FROM hello_counts WHERE guild_id = ?", (guild_id,))


async def op_hello(ctx, args):
    """``{name}`` -> ``"<greeting>, <name>!"``.

    Ops run in a worker process, on its event loop: ``ctx.guild_id`` is the
    calling guild, ``ctx.config`` holds the plugin's key; blocking work (the
    database) goes through ``await ctx.run_sync(fn, ...)``.
    """
    name = args.get("name") if isinstance(args, dict) else None
    if not isinstance(name, str) or not name:
        name = "world"
    await ctx.run_sync(count, ctx.db, ctx.guild_id, name)
    return f"{ctx.config.hello_greeting}, {name}!"


@hookimpl
def flora_register_ops(register):
    register("op_hello", op_hello)


@hookimpl
def flora_register_config_keys(register):
    from flora_core.config import Key

    register(Key("hello_greeting", "hello.greeting", "HELLO_GREETING", greeting, "hello"))


@hookimpl
def flora_register_migrations(register):
    register(resources.files(__name__).joinpath("migrations"))  # table hello_counts


@hookimpl
def flora_register_js_sources(register):
    # after the SDK (order 20), which hello.js extends
    register("hello", resources.files(__name__).joinpath("hello.js").read_text(encoding="utf-8"), order=50)


@hookimpl
def flora_register_type_declarations(register):
    # builds on the SDK's declarations (the `flora` object, the "@uwu/flora-sdk" module)
    register("hello", resources.files(__name__).joinpath("hello.d.ts"), requires=["flora:sdk"])


@hookimpl
def flora_register_blueprints(register):
    # Flask is imported here, not at module level: ops run in worker processes
    # that never serve HTTP, and only the API process builds blueprints.
    from flask import Blueprint, jsonify

    bp = Blueprint("flora_hello", __name__, url_prefix="/api")

    @bp.get("/hello")
    def hello():
        return jsonify({"hello": "world", "plugin": "flora-hello"})

    register(bp)


@hookimpl
def flora_register_commands(cli):
    # click, like Flask, only where it is needed: the CLI process
    import click

    @cli.group("hello")
    def hello_group():
        """flora-hello: greetings given to the guilds' scripts."""

    @hello_group.command("counts")
    @click.option("--guild-id", help="Only this guild.")
    @click.pass_context
    def counts_command(ctx, guild_id):
        """How many greetings each guild's script got from op_hello."""
        from flora_core.config import load_config
        from flora_core.plugins import Plugins
        from flora_core.storage import open_database

        obj = ctx.find_root().obj or {}
        config = load_config(obj.get("config_path"))
        db = open_database(config, obj.get("plugins") or Plugins())
        try:
            rows = counts(db, guild_id)
        finally:
            db.close()
        if not rows:
            click.echo("No greetings yet")
        for row in rows:
            click.echo(f"{row['guild_id']} {row['greetings']} (last: {row['last_name']})")
