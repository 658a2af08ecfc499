"""The runtime bus: how the API (any process) asks the runtime for what needs an isolate.

A bus has two ends. The **node** end runs in the supervisor (``flora serve``): ``serve(node)`` starts
answering requests by calling the :class:`BusNode` methods of the runtime. The **client** end runs in
the API process, which never imports V8: ``client()`` returns a :class:`BusClient` whose calls block
(the API runs them in its gevent workers) and raise :class:`RuntimeUnavailable` when no runtime answers.

A plugin provides another bus through the ``flora_runtime_bus`` hook (a Redis bus for runtime nodes on
several machines, say); without one, flora uses :class:`UnixSocketBus`, the embedded bus: a small JSON
API on a Unix socket in the data folder, which only processes of the same user on this machine reach.

Requests (the same for every bus):
  load(guild_id, bundle) -> (ok, error)   load a script; on failure the previous one keeps running
  restore(guild_id)                        reload what storage says is deployed (or unload if nothing is)
  status() -> dict                         workers, guilds, suspended guilds, subscriptions, metrics
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiohttp import web

    from .config import Config
    from .plugins import Plugins


class RuntimeUnavailable(Exception):
    """The runtime is not running or did not answer."""


class NoRuntimeNode(RuntimeUnavailable):
    """No runtime node owns the guild's shard (a bus of several nodes); the message is the API's answer."""


class BusNode(Protocol):
    """What a bus calls in the runtime (the supervisor's :class:`~flora_core.runtime.supervisor.Runtime`)."""

    async def deploy(self, guild_id: str, bundle: str) -> tuple[bool, str | None]: ...

    async def restore(self, guild_id: str) -> None: ...

    def status(self) -> dict: ...


class BusClient(Protocol):
    """The API's end of the bus; every call blocks and raises :class:`RuntimeUnavailable`."""

    def load(self, guild_id: str, bundle: str, timeout: float = 60.0) -> tuple[bool, str | None]: ...

    def restore(self, guild_id: str, timeout: float = 60.0) -> None: ...

    def status(self, timeout: float = 5.0) -> dict: ...


class RuntimeBus(Protocol):
    """What ``flora_runtime_bus`` returns."""

    async def serve(self, node: BusNode) -> None:
        """Start answering requests (supervisor, after the workers are ready and deployments restored)."""

    async def close(self) -> None:
        """Stop answering (supervisor, when the runtime stops)."""

    def client(self) -> BusClient:
        """A client for the API process."""


def open_bus(config: Config, plugins: Plugins) -> RuntimeBus:
    """The bus a plugin provides (``flora_runtime_bus``), else the embedded one."""
    return plugins.runtime_bus(config) or UnixSocketBus(config.control_socket)


# -- the embedded bus ---------------------------------------------------------------------------


class UnixSocketBus:
    """The embedded bus: an aiohttp app on a Unix socket (mode 0600) in the data folder."""

    def __init__(self, socket_path: str | os.PathLike):
        self.socket_path = str(socket_path)
        self._runner: web.AppRunner | None = None

    async def serve(self, node: BusNode) -> None:
        from aiohttp import web

        async def load(request: web.Request) -> web.Response:
            body = await request.json()
            ok, error = await node.deploy(request.match_info["guild_id"], body["bundle"])
            return web.json_response({"ok": ok, "error": error})

        async def restore(request: web.Request) -> web.Response:
            await node.restore(request.match_info["guild_id"])
            return web.json_response({"ok": True})

        async def status(request: web.Request) -> web.Response:
            return web.json_response(node.status())

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/guilds/{guild_id}/load", load)
        app.router.add_post("/guilds/{guild_id}/restore", restore)
        app.router.add_get("/status", status)
        # at the runtime's stop, a request still running gets a second, not aiohttp's default minute
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        Path(self.socket_path).parent.mkdir(parents=True, exist_ok=True)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        await web.UnixSite(self._runner, self.socket_path).start()
        os.chmod(self.socket_path, 0o600)

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    def client(self) -> UnixSocketClient:
        return UnixSocketClient(self.socket_path)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class UnixSocketClient:
    """The API's end of the embedded bus."""

    def __init__(self, socket_path: str | os.PathLike):
        self.socket_path = str(socket_path)

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 60.0) -> Any:
        conn = _UnixHTTPConnection(self.socket_path, timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as exc:
            raise RuntimeUnavailable(f"the runtime is not reachable at {self.socket_path}: {exc}") from None
        finally:
            conn.close()
        try:
            out = json.loads(data)
        except ValueError:
            raise RuntimeUnavailable(f"the runtime answered {resp.status} with a non-JSON body") from None
        if resp.status >= 500:
            raise RuntimeUnavailable((out.get("error") if isinstance(out, dict) else None) or f"runtime error {resp.status}")
        return out

    def load(self, guild_id: str, bundle: str, timeout: float = 60.0) -> tuple[bool, str | None]:
        out = self._call("POST", f"/guilds/{guild_id}/load", {"bundle": bundle}, timeout)
        return bool(out.get("ok")), out.get("error")

    def restore(self, guild_id: str, timeout: float = 60.0) -> None:
        self._call("POST", f"/guilds/{guild_id}/restore", {}, timeout)

    def status(self, timeout: float = 5.0) -> dict:
        return self._call("GET", "/status", None, timeout)
