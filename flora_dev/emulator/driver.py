"""Emulator: a synchronous, thread-safe driver that runs an EmulatorServer on a private event
loop in a daemon thread. Every call is marshalled onto that loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .server import EmulatorServer, _describe, _request_timeout_message

T = TypeVar("T")
_CALL_TIMEOUT = 30.0


class Emulator:
    """Local Discord API v10 + gateway emulator for tests and ``flora dev``.

    >>> with Emulator(token="emu-token") as emu:
    ...     disnake.http.Route.BASE = emu.api_base
    """

    def __init__(self, token: str = "emu-token", heartbeat_interval_ms: int = 41250, **server_options: Any) -> None:
        self.server = EmulatorServer(token, heartbeat_interval_ms=heartbeat_interval_ms, **server_options)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> Emulator:
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        started: concurrent.futures.Future = concurrent.futures.Future()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.server.start(host, port))
            except BaseException as exc:  # noqa: BLE001 - bind errors and the like go to start()
                started.set_exception(exc)
                loop.close()
                return
            started.set_result(None)
            try:
                loop.run_forever()
            finally:
                try:
                    loop.run_until_complete(self.server.stop())
                    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                    for task in pending:
                        task.cancel()
                    if pending:
                        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                    loop.run_until_complete(loop.shutdown_asyncgens())
                finally:
                    loop.close()

        thread = threading.Thread(target=run, name="flora-emulator", daemon=True)
        thread.start()
        try:
            started.result(timeout=10)
        except BaseException:
            thread.join(5)
            raise
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._loop = self._thread = None
        if loop.is_running():
            asyncio.run_coroutine_threadsafe(self.server.stop(), loop).result(_CALL_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(_CALL_TIMEOUT)

    def __enter__(self) -> Emulator:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = self._loop
        if loop is None:
            raise RuntimeError("emulator is not running; call start() first")
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        fut: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - whatever fn raised is the caller's
                fut.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return fut.result(_CALL_TIMEOUT)

    def in_loop(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the emulator's loop and return its result; use it to
        batch many server calls (``emu.server.user_says`` ...) into one thread hop."""
        return self._call(fn, *args, **kwargs)

    # --- addresses & identity ---------------------------------------------------------
    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_base(self) -> str:
        return self.server.api_base

    @property
    def ws_url(self) -> str:
        return self.server.ws_url

    @property
    def token(self) -> str:
        return self.server.token

    @property
    def bot_user(self) -> dict:
        return self.server.bot_user

    @property
    def application_id(self) -> str:
        return self.server.application_id

    # --- OAuth2 ------------------------------------------------------------------------
    def oauth_login_as(self, user_id: str | None) -> None:
        """The user who approves the next ``GET /oauth2/authorize`` (see emulator/oauth.py)."""
        self._call(self.server.oauth.login_as, user_id)

    def oauth_set_client_secret(self, secret: str | None) -> None:
        """The client secret ``/oauth2/token`` requires (None = any)."""
        self._call(setattr, self.server.oauth, "client_secret", secret)

    def oauth_requests(self, path: str | None = None, *, user_id: str | None = None) -> list[dict]:
        """The Bearer (user) calls the emulator answered so far, oldest first, optionally only those to
        ``path`` (e.g. ``"/users/@me/guilds"``) and of ``user_id``: ``{method, path, user_id, status, time}``."""
        return [
            dict(r)
            for r in self._call(lambda: list(self.server.oauth.requests))
            if (path is None or r["path"] == path) and (user_id is None or r["user_id"] == str(user_id))
        ]

    @property
    def oauth_base(self) -> str:
        """Where ``/oauth2/authorize`` lives (the API base without ``/api/v10``)."""
        return self.server.url

    # --- world -------------------------------------------------------------------------
    def create_guild(
        self, name: str, guild_id: str | None = None, *, owner_id: str | None = None, shard: tuple[int, int] | None = None
    ) -> dict:
        return self._call(self.server.create_guild, name, guild_id, owner_id=owner_id, shard=shard)

    def remove_guild(self, guild_id: str) -> None:
        self._call(self.server.remove_guild, guild_id)

    def create_channel(
        self,
        guild_id: str,
        name: str,
        type: int = 0,
        *,
        parent_id: str | None = None,
        topic: str | None = None,
        position: int | None = None,
        permission_overwrites: list | None = None,
        nsfw: bool = False,
        channel_id: str | None = None,
    ) -> dict:
        return self._call(
            self.server.create_channel,
            guild_id,
            name,
            type,
            parent_id=parent_id,
            topic=topic,
            position=position,
            permission_overwrites=permission_overwrites,
            nsfw=nsfw,
            channel_id=channel_id,
        )

    def create_thread(
        self, channel_id: str, name: str, *, type: int = 11, message_id: str | None = None, owner_id: str | None = None
    ) -> dict:
        return self._call(self.server.create_thread, channel_id, name, type=type, message_id=message_id, owner_id=owner_id)

    def create_role(
        self,
        guild_id: str,
        name: str,
        permissions: str | int = "0",
        *,
        color: int = 0,
        hoist: bool = False,
        mentionable: bool = False,
        role_id: str | None = None,
    ) -> dict:
        return self._call(
            self.server.create_role,
            guild_id,
            name,
            permissions,
            color=color,
            hoist=hoist,
            mentionable=mentionable,
            role_id=role_id,
        )

    def create_webhook(self, channel_id: str, name: str) -> dict:
        """An incoming webhook of a guild channel (``id``, ``token``, ``guild_id``, ``channel_id``)."""
        return self._call(self.server.create_webhook, channel_id, name)

    def create_user(
        self, username: str, bot: bool = False, *, user_id: str | None = None, global_name: str | None = None
    ) -> dict:
        return self._call(self.server.create_user, username, bot, user_id=user_id, global_name=global_name)

    def add_member(self, guild_id: str, user_id: str, roles: list[str] | None = None, nick: str | None = None) -> dict:
        return self._call(self.server.add_member, guild_id, user_id, roles, nick)

    def update_member(self, guild_id: str, user_id: str, **changes: Any) -> dict:
        return self._call(self.server.update_member, guild_id, user_id, **changes)

    def remove_member(self, guild_id: str, user_id: str) -> None:
        self._call(self.server.remove_member, guild_id, user_id)

    # --- users acting -------------------------------------------------------------------
    def user_says(
        self,
        channel_id: str,
        user_id: str,
        content: str = "",
        *,
        reply_to: str | None = None,
        embeds: list | None = None,
        components: list | None = None,
        attachments: list | None = None,
        tts: bool = False,
        nonce: str | None = None,
    ) -> dict:
        return self._call(
            self.server.user_says,
            channel_id,
            user_id,
            content,
            reply_to=reply_to,
            embeds=embeds,
            components=components,
            attachments=attachments,
            tts=tts,
            nonce=nonce,
        )

    def user_edits(self, channel_id: str, message_id: str, user_id: str, content: str) -> dict:
        return self._call(self.server.user_edits, channel_id, message_id, user_id, content)

    def user_deletes(self, channel_id: str, message_id: str) -> None:
        self._call(self.server.user_deletes, channel_id, message_id)

    def react(self, channel_id: str, message_id: str, user_id: str, emoji: str) -> bool:
        return self._call(self.server.react, channel_id, message_id, user_id, emoji)

    def unreact(self, channel_id: str, message_id: str, user_id: str, emoji: str) -> bool:
        return self._call(self.server.unreact, channel_id, message_id, user_id, emoji)

    def invoke_slash(
        self,
        guild_id: str | None,
        channel_id: str,
        user_id: str,
        name: str,
        options: list | None = None,
        *,
        locale: str = "en-US",
    ) -> dict:
        return self._call(self.server.invoke_slash, guild_id, channel_id, user_id, name, options, locale=locale)

    def invoke_command(
        self,
        guild_id: str | None,
        channel_id: str,
        user_id: str,
        name: str,
        options: list | None = None,
        *,
        type: int = 1,
        target_id: str | None = None,
        locale: str = "en-US",
    ) -> dict:
        return self._call(
            self.server.invoke_command,
            guild_id,
            channel_id,
            user_id,
            name,
            options,
            type=type,
            target_id=target_id,
            locale=locale,
        )

    def invoke_autocomplete(self, guild_id: str | None, channel_id: str, user_id: str, name: str, options: list) -> dict:
        return self._call(self.server.invoke_autocomplete, guild_id, channel_id, user_id, name, options)

    def click_component(
        self, channel_id: str, message_id: str, user_id: str, custom_id: str, component_type: int = 2, values: list | None = None
    ) -> dict:
        return self._call(self.server.click_component, channel_id, message_id, user_id, custom_id, component_type, values)

    def submit_modal(
        self,
        guild_id: str | None,
        channel_id: str,
        user_id: str,
        custom_id: str,
        fields: dict | None = None,
        message_id: str | None = None,
        *,
        components: list | None = None,
    ) -> dict:
        return self._call(
            self.server.submit_modal, guild_id, channel_id, user_id, custom_id, fields, message_id, components=components
        )

    # --- gateway control -------------------------------------------------------------------
    def dispatch(self, event_type: str, data: Any, guild_id: str | None = None) -> None:
        self._call(self.server.dispatch, event_type, data, guild_id)

    def send_reconnect(self, shard: int | None = None) -> int:
        return self._call(self.server.send_reconnect, shard)

    def invalidate_session(self, resumable: bool = True, shard: int | None = None) -> int:
        return self._call(self.server.invalidate_session, resumable, shard)

    def drop_connections(self, code: int = 4000, shard: int | None = None) -> int:
        return self._call(self.server.drop_connections, code, shard)

    @property
    def connected_sessions(self) -> list[dict]:
        return self._call(lambda: self.server.connected_sessions)

    @property
    def gateway_log(self) -> list[dict]:
        return self._call(lambda: self.server.gateway_log)

    # --- inspection ----------------------------------------------------------------------
    def messages(self, channel_id: str) -> list[dict]:
        return self._call(self.server.messages, channel_id)

    def get_message(self, message_id: str) -> dict | None:
        return self._call(self.server.get_message, message_id)

    def interaction(self, interaction_id: str) -> dict:
        return self._call(self.server.interaction, interaction_id)

    def commands(self, guild_id: str | None = None) -> list[dict]:
        return self._call(self.server.commands, guild_id)

    def member(self, guild_id: str, user_id: str) -> dict:
        return self._call(self.server.member, guild_id, user_id)

    def channel(self, channel_id: str) -> dict:
        return self._call(self.server.channel, channel_id)

    @property
    def requests(self) -> list[dict]:
        return self._call(lambda: self.server.requests)

    def find_requests(
        self, method: str | None = None, path_regex: str | None = None, *, since: float | None = None
    ) -> list[dict]:
        return self._call(self.server.find_requests, method, path_regex, since=since)

    def clear_requests(self) -> None:
        self._call(self.server.clear_requests)

    @property
    def unknown_routes(self) -> list[dict]:
        return self._call(lambda: self.server.unknown_routes)

    def snapshot(self) -> dict:
        return self._call(self.server.snapshot)

    # --- rate limits ----------------------------------------------------------------------
    def inject_429(
        self, method: str | None, path_regex: str, count: int = 1, retry_after: float = 0.5, is_global: bool = False
    ) -> None:
        self.server.inject_429(method, path_regex, count, retry_after, is_global)

    def set_bucket(self, method: str | None, path_regex: str, limit: int, per_seconds: float) -> None:
        self.server.set_bucket(method, path_regex, limit, per_seconds)

    def inject_status(self, method: str | None, path_regex: str, status: int, count: int = 1) -> None:
        self.server.inject_status(method, path_regex, status, count)

    def clear_rate_limits(self) -> None:
        self.server.clear_rate_limits()

    @property
    def bucket_rejections(self) -> int:
        return self.server.limits.bucket_rejections

    # --- waiting ----------------------------------------------------------------------------
    def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.01) -> T:
        """Poll ``predicate()`` (in the calling thread) until truthy; return its value."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("wait_for would block the emulator loop; use server.wait_for")
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition {_describe(predicate)} not met within {timeout}s")
            time.sleep(interval)

    def wait_for_request(self, method: str | None, path_regex: str, timeout: float = 5.0, *, since: float | None = None) -> dict:
        """First recorded request matching method (None/"*" = any) and ``re.search(path)``;
        paths are relative to /api/v10, e.g. ``/channels/123/messages``."""
        try:
            return self.wait_for(lambda: next(iter(self.find_requests(method, path_regex, since=since)), None), timeout)
        except TimeoutError:
            raise TimeoutError(_request_timeout_message(self.requests, method, path_regex, timeout)) from None


__all__ = ["Emulator"]
