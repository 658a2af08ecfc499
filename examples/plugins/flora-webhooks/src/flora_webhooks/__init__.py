"""flora-webhooks: inbound webhooks as an event source, a third-party flora plugin.

A guild admin creates a webhook (``flora webhooks create --guild-id G github``) and gets a URL and a
secret; ``POST /api/hooks/{guild_id}/{name}`` with that secret (header ``X-Flora-Webhook-Secret`` or
``?secret=`` in the URL, which GitHub's payload URL allows) becomes a ``webhook`` event in that guild's
script, so a guild can react to GitHub, a form or a monitor without polling::

    on("webhook", async (ctx) => {
      if (ctx.msg.name === "github") await rest.sendMessage({ channelId: "…", content: `push to ${ctx.msg.body.ref}` });
    });

How it works: the API process checks the secret, the size cap (``WEBHOOKS_MAX_BODY_BYTES``) and the rate
limit (``WEBHOOKS_PER_MINUTE`` per webhook, counted in the database so it holds across API workers), and
writes the call to the ``webhook_deliveries`` table; the event source in the supervisor drains that table
(an outbox: a call that arrives while flora restarts is delivered when it is back) and emits the events.
Hooks used: config keys, migrations, type declarations, a blueprint, an event source, a CLI group.
"""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources

from flora_core import hookimpl

__version__ = "0.1.0"
log = logging.getLogger("flora.webhooks")

HEADERS_KEPT = ("content-type", "user-agent", "x-github-event", "x-github-delivery", "x-gitlab-event", "x-request-id")
POLL_SECS = 0.2
KEEP_MS = 10 * 60 * 1000


@hookimpl
def flora_register_config_keys(register):
    from flora_core.config import Key, int_range

    register(
        Key("webhooks_max_body_bytes", "webhooks.max_body_bytes", "WEBHOOKS_MAX_BODY_BYTES", int_range(16, 1 << 20), 64 * 1024)
    )
    register(Key("webhooks_per_minute", "webhooks.per_minute", "WEBHOOKS_PER_MINUTE", int_range(1, 10_000), 60))


@hookimpl
def flora_register_migrations(register):
    register(resources.files(__name__).joinpath("migrations"))


@hookimpl
def flora_register_type_declarations(register):
    # the `webhook` event's payload, and `on("webhook", …)` typed (it extends the SDK's FloraEventMap)
    register("webhooks", resources.files(__name__).joinpath("webhooks.d.ts"), requires=["flora:sdk"])


# -- the route (API process) -------------------------------------------------------------------------
@hookimpl
def flora_register_blueprints(register):
    from flask import Blueprint, jsonify, request

    from flora_http.app import state
    from flora_http.errors import ApiError

    from . import store

    bp = Blueprint("flora_webhooks", __name__, url_prefix="/api/hooks")

    @bp.post("/<guild_id>/<name>")
    def receive(guild_id: str, name: str):
        st = state()
        try:
            store.check_names(guild_id, name)
        except store.WebhookError as exc:
            raise ApiError(400, str(exc)) from None
        secret = request.headers.get("X-Flora-Webhook-Secret") or request.args.get("secret")
        if not store.verify(st.db, guild_id, name, secret):
            raise ApiError(401, "invalid webhook secret (or no such webhook)")
        limit = st.config.webhooks_max_body_bytes
        if (request.content_length or 0) > limit:
            raise ApiError(413, f"webhook body larger than {limit} bytes")
        raw = request.get_data(cache=False)
        if len(raw) > limit:
            raise ApiError(413, f"webhook body larger than {limit} bytes")
        if store.recent_calls(st.db, guild_id, name, 60) >= st.config.webhooks_per_minute:
            raise ApiError(
                429, f"more than {st.config.webhooks_per_minute} calls per minute to this webhook", headers={"Retry-After": "60"}
            )
        text = raw.decode("utf-8", errors="replace")
        body = text
        if request.mimetype == "application/json":
            try:
                body = json.loads(text) if text else None
            except ValueError:
                raise ApiError(400, "the body is not valid JSON (Content-Type says it is)") from None
        headers = {k: request.headers[k] for k in HEADERS_KEPT if k in request.headers}
        delivery = store.enqueue(st.db, guild_id, name, body, headers)
        return jsonify(id=delivery), 202

    register(bp)


# -- the event source (supervisor) -------------------------------------------------------------------
class WebhookSource:
    def __init__(self, config):
        self.config = config
        self.db = None
        self.task: asyncio.Task | None = None

    async def start(self, emit) -> None:
        from flora_core.plugins import Plugins
        from flora_core.storage import open_database

        loop = asyncio.get_running_loop()
        self.db = await loop.run_in_executor(None, open_database, self.config, Plugins())
        self.task = asyncio.ensure_future(self._drain(emit))

    async def _drain(self, emit) -> None:
        from . import store

        loop = asyncio.get_running_loop()
        since_prune = 0.0
        while True:
            try:
                rows = await loop.run_in_executor(None, store.take_pending, self.db)
                for row in rows:
                    emit(
                        "webhook",
                        {
                            "guild_id": row["guild_id"],
                            "name": row["name"],
                            "body": json.loads(row["body"]),
                            "headers": json.loads(row["headers"]),
                            "id": row["id"],
                            "receivedAt": row["received_at"],
                        },
                    )
                since_prune += POLL_SECS
                if since_prune > 60:
                    since_prune = 0.0
                    await loop.run_in_executor(None, store.prune, self.db, KEEP_MS)
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not end the source
                log.error("webhook deliveries could not be read: %s", exc)
            await asyncio.sleep(POLL_SECS)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()


@hookimpl
def flora_register_event_sources(register):
    register("webhooks", WebhookSource)


# -- the CLI ------------------------------------------------------------------------------------------
@hookimpl
def flora_register_commands(cli):
    import click

    from flora_cli import CliFailure

    from . import store

    def database(ctx):
        from flora_core.config import load_config
        from flora_core.plugins import Plugins
        from flora_core.storage import open_database

        obj = ctx.find_root().obj or {}
        config = load_config(obj.get("config_path"))
        return config, open_database(config, obj.get("plugins") or Plugins())

    @cli.group("webhooks")
    def webhooks():
        """Inbound webhooks: URLs that become `webhook` events in a guild's script."""

    @webhooks.command("create")
    @click.option("--guild-id", required=True, help="The guild whose script gets the events.")
    @click.argument("name")
    @click.pass_context
    def create(ctx, guild_id, name):
        """Create webhook NAME (or give it a new secret); prints its URL and secret once."""
        config, db = database(ctx)
        try:
            secret = store.create(db, guild_id, name)
        except store.WebhookError as exc:
            raise CliFailure(str(exc)) from None
        click.echo(f"POST http://{config.api_address}:{config.api_port}/api/hooks/{guild_id}/{name}")
        click.echo(f"secret: {secret}   (header X-Flora-Webhook-Secret, or ?secret= in the URL)")

    @webhooks.command("list")
    @click.option("--guild-id", required=True)
    @click.pass_context
    def list_(ctx, guild_id):
        """The guild's webhooks."""
        _, db = database(ctx)
        rows = store.list_hooks(db, guild_id)
        if not rows:
            click.echo("No webhooks")
        for row in rows:
            click.echo(row["name"])

    @webhooks.command("delete")
    @click.option("--guild-id", required=True)
    @click.argument("name")
    @click.pass_context
    def delete(ctx, guild_id, name):
        """Delete webhook NAME; its URL answers 401 from now on."""
        _, db = database(ctx)
        if not store.delete(db, guild_id, name):
            raise CliFailure(f"no webhook {name!r} in guild {guild_id}")
        click.echo(f"Deleted webhook {name}")
