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
    "READY",
    "GUILD_CREATE",
    "MESSAGE_CREATE",
    "MESSAGE_UPDATE",
    "MESSAGE_DELETE",
    "MESSAGE_DELETE_BULK",
    "INTERACTION_CREATE",
    "MESSAGE_REACTION_ADD",
    "MESSAGE_REACTION_REMOVE",
    "MESSAGE_REACTION_REMOVE_EMOJI",
    "MESSAGE_REACTION_REMOVE_ALL",
    "CHANNEL_CREATE",
    "CHANNEL_UPDATE",
    "CHANNEL_DELETE",
    "THREAD_CREATE",
    "THREAD_UPDATE",
    "THREAD_DELETE",
    "GUILD_DELETE",
    "GUILD_MEMBER_ADD",
    "GUILD_MEMBER_UPDATE",
    "GUILD_MEMBER_REMOVE",
    "GUILD_ROLE_CREATE",
    "GUILD_ROLE_UPDATE",
    "GUILD_ROLE_DELETE",
    "VOICE_STATE_UPDATE",
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
        self.client = client
        await client.login(self.config.discord_token)
        gate = IdentifyGate(self.config, await _max_concurrency(client))

        async def before_identify(shard_id, *, initial=False):
            await gate.wait(shard_id or 0)

        client.before_identify_hook = before_identify
        self._gate = gate
        self._task = asyncio.create_task(self._run(client))

    async def _run(self, client: disnake.Client) -> None:
        try:
            await client.connect(reconnect=True)
        except disnake.LoginFailure as exc:
            log.error("Discord rejected the bot token: %s", exc)
        except Exception:  # noqa: BLE001
            log.exception("the Discord gateway stopped")

    async def stop(self) -> None:
        if getattr(self, "_gate", None) is not None:
            await self._gate.close()
        if self.client is not None:
            await self.client.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                pass


async def _max_concurrency(client: disnake.Client) -> int:
    """``session_start_limit.max_concurrency`` of ``GET /gateway/bot`` (1 when it cannot be read)."""
    try:
        data = await client.http.request(disnake.http.Route("GET", "/gateway/bot"))
        return max(1, int(data["session_start_limit"]["max_concurrency"]))
    except Exception as exc:  # noqa: BLE001 - the safe answer is one shard at a time
        log.warning("could not read the bot's identify concurrency (%s); identifying one shard at a time", exc)
        return 1


class IdentifyGate:
    """Discord's identify rate: the shards of one bucket (``shard_id % max_concurrency``) may IDENTIFY
    once per ``DISCORD_IDENTIFY_INTERVAL_MS`` (Discord: 5 s), whatever process they are in. With
    ``REDIS_URL`` the bucket is a key ``<ns>:identify:<bucket>`` set-if-absent with that expiry, shared
    by every runtime node of the bot; without it, a clock per bucket in this process. disnake alone
    waits 5 s before every shard, buckets or not. A local emulator wants no wait unless the interval
    is set explicitly."""

    def __init__(self, config, max_concurrency: int):
        explicit = "identify_interval_ms" in config.sources
        local = _is_local(config.discord_api_base)
        self.interval_ms = int(config.identify_interval_ms) if explicit or not local else 0
        self.max_concurrency = max(1, int(max_concurrency))
        self.namespace = getattr(config, "bus_namespace", "flora")
        self.redis_url = config.redis_url
        self._redis = None
        self._last: dict[int, float] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def wait(self, shard_id: int) -> None:
        if self.interval_ms <= 0:
            return
        bucket = shard_id % self.max_concurrency
        if self.redis_url:
            try:
                await self._wait_shared(bucket)
                return
            except Exception as exc:  # noqa: BLE001 - Redis away: this process's own clock still holds the rate
                log.warning("identify bucket %d: Redis unavailable (%s); pacing within this node only", bucket, exc)
        lock = self._locks.setdefault(bucket, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            delay = self._last.get(bucket, -1e9) + self.interval_ms / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self._last[bucket] = loop.time()

    async def _wait_shared(self, bucket: int) -> None:
        if self._redis is None:
            import redis.asyncio as aioredis

            self._redis = aioredis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)
        key = f"{self.namespace}:identify:{bucket}"
        while not await self._redis.set(key, "1", nx=True, px=self.interval_ms):
            left = await self._redis.pttl(key)
            await asyncio.sleep(max(int(left), 20) / 1000)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None


@hookimpl
def flora_register_config_keys(register):
    from flora_core.config import Key, int_range

    register(
        Key("identify_interval_ms", "discord.identify_interval_ms", "DISCORD_IDENTIFY_INTERVAL_MS", int_range(0, 60_000), 5000)
    )


@hookimpl
def flora_register_event_sources(register):
    register("discord", DiscordGateway)
