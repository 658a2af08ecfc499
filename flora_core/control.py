"""The embedded bus: the API process asks the runtime to load scripts.

The supervisor serves a tiny HTTP API on a Unix socket in the data folder
(only processes of the same user on this machine can reach it). The API
process never imports V8; it calls :class:`RuntimeClient` instead.

Routes (JSON):
  POST /guilds/{guild_id}/load   {"bundle": str}  -> {"ok": true} | {"ok": false, "error": str}
  POST /guilds/{guild_id}/restore                  -> reload the stored deployment
  GET  /status                                     -> {"workers": [...], "guilds": int}
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path


class RuntimeUnavailable(Exception):
    """The runtime is not running or did not answer."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class RuntimeClient:
    def __init__(self, socket_path: str | Path):
        self.socket_path = str(socket_path)

    def _call(self, method: str, path: str, body: dict | None = None, timeout: float = 60.0) -> dict:
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
            raise RuntimeUnavailable(out.get("error") or f"runtime error {resp.status}")
        return out

    def load(self, guild_id: str, bundle: str, timeout: float = 60.0) -> tuple[bool, str | None]:
        """Load ``bundle`` into the guild's isolate; the previous script keeps running on failure."""
        out = self._call("POST", f"/guilds/{guild_id}/load", {"bundle": bundle}, timeout)
        return bool(out.get("ok")), out.get("error")

    def restore(self, guild_id: str, timeout: float = 60.0) -> None:
        self._call("POST", f"/guilds/{guild_id}/restore", {}, timeout)

    def status(self, timeout: float = 5.0) -> dict:
        return self._call("GET", "/status", None, timeout)
