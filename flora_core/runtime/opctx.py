"""What an op sees: the calling guild, Discord REST through disnake, scope checks."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import disnake
from disnake.http import Route

from flora_core.errors import DISCORD_HTTP_ERROR, DISCORD_RATE_LIMITED, OpError, forbidden

log = logging.getLogger("flora.ops")

SCOPE_TTL = 300.0
SCOPE_CAP = 10_000
INTERACTION_TTL = 15 * 60.0  # Discord interaction tokens live 15 minutes


L2_TTL_SECS = 6 * 3600


class ScopeCache:
    """id (channel, thread, webhook) -> guild id, warmed from events and filled from REST on a miss.

    L1 is this process's dict (TTL 300 s, 10 000 entries); with ``REDIS_URL`` set, L2 is Redis
    (``flora:scope:<kind>:<id>``, TTL 6 h), shared by every worker and node, as in flora.
    """

    def __init__(self, kind: str = "ch", redis=None):
        self.kind = kind
        self.redis = redis
        self._channels: dict[str, tuple[str | None, float]] = {}

    async def lookup(self, key: str, fetch) -> str | None:
        """The guild of ``key``: L1, then L2, then ``await fetch()`` (which returns the guild id or None)."""
        known, guild = self.get(key)
        if known:
            return guild
        if self.redis is not None:
            try:
                cached = await self.redis.get(f"flora:scope:{self.kind}:{key}")
            except Exception as exc:  # noqa: BLE001 - the cache is an optimisation; REST still answers
                log.warning("scope cache L2 (Redis) read failed: %s", exc)
                cached = None
            if cached is not None:
                guild = cached.decode() if isinstance(cached, bytes) else str(cached)
                guild = guild or None
                self.remember(key, guild)
                return guild
        guild = await fetch()
        self.remember(key, guild)
        if self.redis is not None:
            try:
                await self.redis.set(f"flora:scope:{self.kind}:{key}", guild or "", ex=L2_TTL_SECS)
            except Exception as exc:  # noqa: BLE001
                log.warning("scope cache L2 (Redis) write failed: %s", exc)
        return guild

    def remember(self, channel_id: str | None, guild_id: str | None) -> None:
        if channel_id:
            if len(self._channels) >= SCOPE_CAP:
                now = time.monotonic()
                for key in [k for k, (_, t) in list(self._channels.items())[:256] if t < now]:
                    self._channels.pop(key, None)
                if len(self._channels) >= SCOPE_CAP:
                    self._channels.pop(next(iter(self._channels)))
            self._channels[channel_id] = (guild_id, time.monotonic() + SCOPE_TTL)

    def forget(self, channel_id: str) -> None:
        self._channels.pop(channel_id, None)

    def get(self, channel_id: str) -> tuple[bool, str | None]:
        hit = self._channels.get(channel_id)
        if hit is None or hit[1] < time.monotonic():
            return False, None
        return True, hit[0]


@dataclass
class InteractionState:
    """What happened to one interaction delivered to a guild's script."""

    token: str
    expires_at: float
    acked: bool = False  # a callback (reply, defer, update, modal) was sent
    auto_deferred: bool = False  # ...by the runtime, because the script had not answered in time
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class WorkerServices:
    """Shared by every op call in one worker process."""

    config: Any
    http: disnake.http.HTTPClient
    application_id: str | None = None
    scope: ScopeCache = field(default_factory=ScopeCache)
    # guild id -> {interaction id: InteractionState}
    interactions: dict[str, dict[str, InteractionState]] = field(default_factory=dict)
    semaphores: dict[str, asyncio.Semaphore] = field(default_factory=dict)
    logger: Any = None  # callable(guild_id, level, target, message)
    db: Any = None  # the relational database (flora_core.storage.Database)
    plugins: Any = None
    resources: dict = field(default_factory=dict)  # per-process state plugins keep (connections, caches)

    def remember_interaction(self, guild_id: str, interaction_id: str, token: str) -> InteractionState:
        table = self.interactions.setdefault(guild_id, {})
        now = time.monotonic()
        if len(table) > 1000:
            for key in [k for k, st in table.items() if st.expires_at < now]:
                del table[key]
        state = table[interaction_id] = InteractionState(token, now + INTERACTION_TTL)
        return state


class OpContext:
    """Passed to every op as ``ctx``; one per call."""

    def __init__(self, guild_id: str, services: WorkerServices, load_id: str = ""):
        self.guild_id = guild_id
        self.services = services
        self.config = services.config
        self.load_id = load_id

    @property
    def db(self):
        return self.services.db

    async def run_sync(self, fn, *args):
        """Run blocking work (database, files) off the worker's event loop."""
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    @property
    def application_id(self) -> str | None:
        return self.services.application_id

    def log(self, level: str, message: str, target: str = "flora:js") -> None:
        if self.services.logger:
            self.services.logger(self.guild_id, level, target, message)

    # -- scope checks (reference §2.2) -----------------------------------
    def ensure_guild(self, guild_id: str) -> None:
        if str(guild_id) != self.guild_id:
            raise forbidden("guild is outside runtime scope")

    async def ensure_channel(self, channel_id: str, kind: str = "channel") -> None:
        async def fetch():
            data = await self.rest("GET", "/channels/{channel_id}", channel_id=channel_id)
            return str(data["guild_id"]) if isinstance(data, dict) and data.get("guild_id") else None

        guild = await self.services.scope.lookup(channel_id, fetch)
        if guild is None:
            raise forbidden(f"{kind} is not a guild {kind}")
        if guild != self.guild_id:
            raise forbidden(f"{kind} is outside runtime scope")

    def ensure_interaction(self, interaction_id: str, token: str) -> InteractionState:
        """Only interactions delivered to this guild's script may be answered by it."""
        state = self.services.interactions.get(self.guild_id, {}).get(str(interaction_id))
        if state is None or state.token != token or state.expires_at < time.monotonic():
            raise forbidden("interaction is outside runtime scope")
        return state

    def ensure_interaction_token(self, token: str) -> InteractionState:
        table = self.services.interactions.get(self.guild_id, {})
        now = time.monotonic()
        for state in table.values():
            if state.token == token and state.expires_at >= now:
                return state
        raise forbidden("interaction is outside runtime scope")

    # -- Discord REST ----------------------------------------------------
    async def rest(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        reason: str | None = None,
        params: dict | None = None,
        files: list | None = None,
        form: list | None = None,
        **route_params,
    ) -> Any:
        """One Discord REST call through disnake (its buckets and 429 handling), bounded per guild.

        ``files``/``form`` are disnake's multipart arguments (``disnake.File`` objects and their form parts)."""
        sem = self.services.semaphores.get(self.guild_id)
        if sem is None:
            sem = self.services.semaphores[self.guild_id] = asyncio.Semaphore(self.config.guild_concurrency)
        route = Route(method, path, **route_params)
        kwargs: dict[str, Any] = {}
        if json is not None:
            kwargs["json"] = json
        if reason:
            kwargs["reason"] = reason
        if params:
            kwargs["params"] = params
        if files:
            kwargs["files"] = files
            kwargs["form"] = form
            kwargs.pop("json", None)  # the JSON body travels as the form's payload_json
        timeout = self.config.rest_timeout_ms / 1000
        async with sem:
            try:
                return await asyncio.wait_for(self.services.http.request(route, **kwargs), timeout)
            except TimeoutError:
                raise OpError(
                    DISCORD_RATE_LIMITED,
                    f"Discord rate limited for {method} {path}",
                    retry_after_ms=self.config.rest_timeout_ms,
                    **{"global": False},
                ) from None
            except disnake.HTTPException as exc:
                message = exc.text or getattr(exc.response, "reason", "") or "error"
                raise OpError(
                    DISCORD_HTTP_ERROR,
                    f"Discord HTTP error ({exc.status}): {message} (route: {method} {path})",
                    status=exc.status,
                    discord_code=exc.code,
                ) from None
            except (OSError, disnake.DiscordException) as exc:
                raise OpError(
                    DISCORD_HTTP_ERROR,
                    f"Discord HTTP error (500): {exc.__class__.__name__} (route: {method} {path})",
                    status=500,
                    discord_code=0,
                ) from None
