"""EmulatorServer: the asyncio-native emulator (aiohttp app + state + gateway hub).

Every method except ``start``/``stop``/``wait_for*`` is synchronous and must be called on the
loop the server runs on; ``driver.Emulator`` wraps it for use from other threads.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .control import register_control
from .gateway import GatewayHub
from .oauth import OAuthProvider
from .ratelimit import RateLimiter
from .rest import API_PREFIX, RestApi, make_middleware
from .state import EmulatorState

# GATEWAY_PRESENCE | GATEWAY_GUILD_MEMBERS | GATEWAY_MESSAGE_CONTENT (privileged intents enabled)
DEFAULT_APPLICATION_FLAGS = (1 << 12) | (1 << 14) | (1 << 18)


class EmulatorServer:
    """Options: ``heartbeat_interval_ms`` (HELLO), ``application_id`` (default: a new snowflake,
    also the bot user's id), ``recommended_shards`` (``/gateway/bot``), ``required_shards``
    (IDENTIFY with fewer closes 4011), ``allowed_intents`` (privileged intents outside it close
    4014; None = all allowed), ``interaction_ack_timeout`` (seconds before an unanswered
    interaction becomes "Unknown interaction"; None = never), ``gateway_compression`` (honour
    ``compress=zlib-stream``; False = always plain text frames), ``replay_buffer`` (dispatches
    kept per session for RESUME), ``max_recorded_requests``, ``max_channel_messages`` (oldest
    messages are dropped beyond it; None = unbounded)."""

    def __init__(
        self,
        token: str = "emu-token",
        *,
        heartbeat_interval_ms: int = 41250,
        application_id: str | None = None,
        bot_name: str = "flora-bot",
        recommended_shards: int = 1,
        required_shards: int = 1,
        allowed_intents: int | None = None,
        application_flags: int = DEFAULT_APPLICATION_FLAGS,
        interaction_ack_timeout: float | None = 3.0,
        gateway_compression: bool = True,
        replay_buffer: int = 10_000,
        max_recorded_requests: int = 20_000,
        max_channel_messages: int | None = 10_000,
        oauth_client_secret: str | None = None,
        max_concurrency: int = 1,
    ) -> None:
        self.heartbeat_interval_ms = int(heartbeat_interval_ms)
        self.max_concurrency = int(max_concurrency)  # session_start_limit.max_concurrency of /gateway/bot
        self.recommended_shards = int(recommended_shards)
        self.required_shards = int(required_shards)
        self.allowed_intents = allowed_intents
        self.application_flags = int(application_flags)
        self.gateway_compression = gateway_compression
        self.replay_buffer = int(replay_buffer)
        self.state = EmulatorState(
            token,
            application_id=application_id,
            bot_name=bot_name,
            interaction_ack_timeout=interaction_ack_timeout,
            max_recorded_requests=max_recorded_requests,
            max_channel_messages=max_channel_messages,
        )
        self.limits = RateLimiter()
        self.hub = GatewayHub(self)
        # listeners(event_type, data, guild_id) see every dispatch after the gateway (e.g. the dev console)
        self.listeners: list[Callable[[str, Any, str | None], None]] = []
        self.state.emit = self._emit
        self.app = web.Application(middlewares=[make_middleware(self)], client_max_size=64 * 1024 * 1024)
        self.app.router.add_get("/gateway", self.hub.handle)
        RestApi(self).register(self.app)
        self.oauth = OAuthProvider(self, oauth_client_secret)
        self.oauth.register(self.app)
        register_control(self.app, self)
        self.host = "127.0.0.1"
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def _emit(self, event: str, data: Any, guild_id: Any = None, **kw: Any) -> None:
        self.hub.dispatch(event, data, guild_id, **kw)
        for listener in list(self.listeners):
            try:
                listener(event, data, guild_id)
            except Exception:  # noqa: BLE001 - a listener must never break the emulator
                pass

    # --- lifecycle ---------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        if self._runner is not None:
            raise RuntimeError("emulator already started")
        self.loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
            sock.listen(512)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.host, self.port = host, sock.getsockname()[1]
        self.state.public_url = self.url
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            await web.SockSite(runner, sock, shutdown_timeout=2.0).start()
        except BaseException:
            await runner.cleanup()
            sock.close()
            raise
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        await self.hub.close_all()
        await runner.cleanup()

    async def __aenter__(self) -> EmulatorServer:
        if self._runner is None:
            await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_base(self) -> str:
        return self.url + API_PREFIX

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway"

    # --- world ----------------------------------------------------------------------
    @property
    def bot_user(self) -> dict:
        return self.state.bot_user

    @property
    def application_id(self) -> str:
        return self.state.application_id

    @property
    def token(self) -> str:
        return self.state.token

    def create_guild(
        self, name: str, guild_id: str | None = None, *, owner_id: str | None = None, shard: tuple[int, int] | None = None
    ) -> dict:
        return self.state.create_guild(name, guild_id, owner_id=owner_id, shard=tuple(shard) if shard is not None else None)

    def remove_guild(self, guild_id: str) -> None:
        self.state.remove_guild(guild_id)

    def create_channel(self, guild_id: str, name: str, type: int = 0, **kw: Any) -> dict:
        return self.state.create_channel(guild_id, name, type, **kw)

    def create_thread(self, channel_id: str, name: str, **kw: Any) -> dict:
        return self.state.create_thread(channel_id, name, **kw)

    def create_role(self, guild_id: str, name: str, permissions: str | int = "0", **kw: Any) -> dict:
        return self.state.create_role(guild_id, name, permissions, **kw)

    def create_webhook(self, channel_id: str, name: str) -> dict:
        return self.state.create_webhook(channel_id, name)

    def create_user(self, username: str, bot: bool = False, **kw: Any) -> dict:
        return self.state.create_user(username, bot, **kw)

    def add_member(self, guild_id: str, user_id: str, roles: list[str] | None = None, nick: str | None = None, **kw: Any) -> dict:
        return self.state.add_member(guild_id, user_id, roles, nick, **kw)

    def update_member(self, guild_id: str, user_id: str, **changes: Any) -> dict:
        return self.state.update_member(guild_id, user_id, changes)

    def remove_member(self, guild_id: str, user_id: str) -> None:
        self.state.remove_member(guild_id, user_id)

    # --- users acting ---------------------------------------------------------------
    def user_says(self, channel_id: str, user_id: str, content: str = "", **kw: Any) -> dict:
        return self.state.user_says(channel_id, user_id, content, **kw)

    def user_edits(self, channel_id: str, message_id: str, user_id: str, content: str) -> dict:
        return self.state.edit_message(channel_id, message_id, {"content": content}, editor_id=str(user_id))

    def user_deletes(self, channel_id: str, message_id: str) -> None:
        self.state.delete_message(channel_id, message_id)

    def react(self, channel_id: str, message_id: str, user_id: str, emoji: str) -> bool:
        return self.state.add_reaction(channel_id, message_id, user_id, emoji)

    def unreact(self, channel_id: str, message_id: str, user_id: str, emoji: str) -> bool:
        return self.state.remove_reaction(channel_id, message_id, user_id, emoji)

    def invoke_slash(
        self, guild_id: str | None, channel_id: str, user_id: str, name: str, options: list | None = None, **kw: Any
    ) -> dict:
        return self.state.invoke_slash(guild_id, channel_id, user_id, name, options, **kw)

    def invoke_command(
        self, guild_id: str | None, channel_id: str, user_id: str, name: str, options: list | None = None, **kw: Any
    ) -> dict:
        return self.state.invoke_command(guild_id, channel_id, user_id, name, options, **kw)

    def invoke_autocomplete(self, guild_id: str | None, channel_id: str, user_id: str, name: str, options: list) -> dict:
        return self.state.invoke_autocomplete(guild_id, channel_id, user_id, name, options)

    def click_component(
        self, channel_id: str, message_id: str, user_id: str, custom_id: str, component_type: int = 2, values: list | None = None
    ) -> dict:
        return self.state.click_component(channel_id, message_id, user_id, custom_id, component_type, values)

    def submit_modal(
        self,
        guild_id: str | None,
        channel_id: str,
        user_id: str,
        custom_id: str,
        fields: dict | None = None,
        message_id: str | None = None,
        **kw: Any,
    ) -> dict:
        return self.state.submit_modal(guild_id, channel_id, user_id, custom_id, fields, message_id, **kw)

    # --- gateway control ----------------------------------------------------------
    def dispatch(self, event_type: str, data: Any, guild_id: str | None = None) -> None:
        self.hub.dispatch(event_type, data, guild_id)

    def send_reconnect(self, shard: int | None = None) -> int:
        return self.hub.send_reconnect(shard)

    def invalidate_session(self, resumable: bool = True, shard: int | None = None) -> int:
        return self.hub.invalidate_session(resumable, shard)

    def drop_connections(self, code: int = 4000, shard: int | None = None) -> int:
        return self.hub.drop_connections(code, shard)

    @property
    def connected_sessions(self) -> list[dict]:
        return self.hub.connected_sessions()

    @property
    def gateway_log(self) -> list[dict]:
        return list(self.hub.log)

    # --- inspection -----------------------------------------------------------------
    def messages(self, channel_id: str) -> list[dict]:
        return self.state.channel_messages(channel_id)

    def get_message(self, message_id: str) -> dict | None:
        return self.state.find_message(message_id)

    def interaction(self, interaction_id: str) -> dict:
        return self.state.interaction_view(interaction_id)

    def commands(self, guild_id: str | None = None) -> list[dict]:
        return self.state.list_commands(guild_id)

    def member(self, guild_id: str, user_id: str) -> dict:
        return self.state.member_payload(guild_id, user_id)

    def channel(self, channel_id: str) -> dict:
        return self.state.get_channel(channel_id)

    @property
    def requests(self) -> list[dict]:
        return list(self.state.requests)

    def clear_requests(self) -> None:
        self.state.requests.clear()

    def find_requests(
        self, method: str | None = None, path_regex: str | None = None, *, since: float | None = None
    ) -> list[dict]:
        return _filter_requests(self.state.requests, method, path_regex, since)

    @property
    def unknown_routes(self) -> list[dict]:
        return list(self.state.unknown_routes)

    def snapshot(self) -> dict:
        snap = self.state.snapshot()
        snap["sessions"] = self.connected_sessions
        snap["url"], snap["api_base"], snap["ws_url"] = self.url, self.api_base, self.ws_url
        return snap

    # --- rate limits -----------------------------------------------------------------
    def inject_429(
        self, method: str | None, path_regex: str, count: int = 1, retry_after: float = 0.5, is_global: bool = False
    ) -> None:
        self.limits.inject_429(method, path_regex, count, retry_after, is_global)

    def set_bucket(self, method: str | None, path_regex: str, limit: int, per_seconds: float) -> None:
        self.limits.set_bucket(method, path_regex, limit, per_seconds)

    def inject_status(self, method: str | None, path_regex: str, status: int, count: int = 1) -> None:
        self.limits.inject_status(method, path_regex, status, count)

    def clear_rate_limits(self) -> None:
        self.limits.clear()

    # --- waiting (async; for code running on the server's loop) -------------------------
    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition {_describe(predicate)} not met within {timeout}s")
            await asyncio.sleep(interval)

    async def wait_for_request(
        self, method: str | None, path_regex: str, timeout: float = 5.0, *, since: float | None = None
    ) -> dict:
        """First recorded request matching (made at or after ``since``, epoch seconds)."""
        try:
            return await self.wait_for(
                lambda: next(iter(_filter_requests(self.state.requests, method, path_regex, since)), None), timeout
            )
        except TimeoutError:
            raise TimeoutError(_request_timeout_message(self.state.requests, method, path_regex, timeout)) from None


def _filter_requests(requests: Any, method: str | None, path_regex: str | None, since: float | None = None) -> list[dict]:
    pattern = re.compile(path_regex) if path_regex else None
    m = None if method in (None, "*") else method.upper()
    return [
        r
        for r in list(requests)
        if (m is None or r["method"] == m)
        and (pattern is None or pattern.search(r["path"]))
        and (since is None or r["time"] >= since)
    ]


def _describe(predicate: Callable) -> str:
    name = getattr(predicate, "__qualname__", repr(predicate))
    code = getattr(predicate, "__code__", None)
    where = f" ({code.co_filename.rsplit('/', 1)[-1]}:{code.co_firstlineno})" if code else ""
    return name + where


def _request_timeout_message(requests: Any, method: str | None, path_regex: str, timeout: float) -> str:
    recent = [f"{r['method']} {r['path']} -> {r['status']}" for r in list(requests)[-10:]]
    return f"no {method or '*'} request matching {path_regex!r} within {timeout}s; last requests: {recent or 'none'}"
