"""The Discord gateway as an event source (built-in plugin).

disnake keeps the connection (identify, heartbeats, resume, sharding); flora
takes each raw dispatch as Discord sent it and hands it to the runtime. No
tenant code ever runs in this process, so a script cannot stall heartbeats.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse

import disnake

from flora_core import hookimpl

log = logging.getLogger("flora.gateway")


def _not_the_voice_warning(record: logging.LogRecord) -> bool:
    # disnake warns at every client start that voice is unsupported without PyNaCl; flora has no voice ops
    return not str(record.msg).startswith("PyNaCl")


logging.getLogger("disnake.client").addFilter(_not_the_voice_warning)

FORWARDED = {
    "READY", "GUILD_CREATE", "MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE", "MESSAGE_DELETE_BULK",
    "INTERACTION_CREATE", "MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE", "MESSAGE_REACTION_REMOVE_EMOJI",
    "MESSAGE_REACTION_REMOVE_ALL", "CHANNEL_CREATE", "CHANNEL_UPDATE", "CHANNEL_DELETE", "THREAD_CREATE",
    "THREAD_UPDATE", "THREAD_DELETE", "GUILD_DELETE", "GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE",
    "GUILD_ROLE_CREATE", "GUILD_ROLE_UPDATE", "GUILD_ROLE_DELETE", "VOICE_STATE_UPDATE",
}


def _is_local(api_base: str) -> bool:
    host = urllib.parse.urlsplit(api_base).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def intents() -> disnake.Intents:
    i = disnake.Intents.default()
    i.message_content = True
    i.members = True
    return i


class DiscordGateway:
    def __init__(self, config):
        self.config = config
        self.client: disnake.Client | None = None
        self._task: asyncio.Task | None = None

    async def start(self, emit) -> None:
        disnake.http.Route.BASE = self.config.discord_api_base
        kwargs = dict(intents=intents(), enable_debug_events=True, max_messages=None, chunk_guilds_at_startup=False)
        if self.config.shard_count:
            ids = self.config.shard_ids or list(range(self.config.shard_count))
            client = disnake.AutoShardedClient(shard_ids=ids, shard_count=self.config.shard_count, **kwargs)
        else:
            client = disnake.Client(**kwargs)

        async def on_socket_raw_receive(raw: str) -> None:
            if '"op":0' not in raw and '"op": 0' not in raw:
                return
            msg = json.loads(raw)
            event = msg.get("t")
            if event in FORWARDED:
                try:
                    emit(event, msg.get("d") or {})
                except Exception:  # noqa: BLE001 - never let routing kill the gateway
                    log.exception("routing %s failed", event)

        client.event(on_socket_raw_receive)
        if _is_local(self.config.discord_api_base):
            # Discord wants 5 s between IDENTIFYs of one bot; a local emulator does not.
            async def no_wait(shard_id, *, initial=False):
                return None

            client.before_identify_hook = no_wait
        self.client = client
        await client.login(self.config.discord_token)
        self._task = asyncio.create_task(self._run(client))

    async def _run(self, client: disnake.Client) -> None:
        try:
            await client.connect(reconnect=True)
        except disnake.LoginFailure as exc:
            log.error("Discord rejected the bot token: %s", exc)
        except Exception:  # noqa: BLE001
            log.exception("the Discord gateway stopped")

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                pass


@hookimpl
def flora_register_event_sources(register):
    register("discord", DiscordGateway)
