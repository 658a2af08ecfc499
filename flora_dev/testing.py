"""What flora's tests and a plugin author's tests need: a real ``flora serve`` against the project's
Discord emulator, guilds with a member to act as, deploys, the API, bounded waits.

The pytest fixtures built on these are in :mod:`flora_dev.pytest_plugin` (loaded automatically by pytest
once flora is installed). Everything here talks to real processes and sockets; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

BOT_TOKEN = "flora-test-bot-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(method: str, url: str, body=None, token: str | None = None, headers: dict | None = None, timeout: float = 60):
    """Returns (status, parsed JSON or text)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw = exc.read().decode()
        status = exc.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


class FloraServer:
    def __init__(self, env: dict, data_dir: Path, api: str, proc: subprocess.Popen, log_path: Path):
        self.env = env
        self.data_dir = data_dir
        self.api = api
        self.proc = proc
        self.log_path = log_path
        self.token = None
        self.own_bus_namespace = False  # start_flora made one for this server alone (stop_flora tidies it)

    def cli(
        self, *args: str, check: bool = True, input: str | None = None, cwd: str | None = None
    ) -> subprocess.CompletedProcess:
        out = subprocess.run(
            [sys.executable, "-m", "flora_cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            input=input,
            cwd=cwd,
        )
        if check and out.returncode != 0:
            raise AssertionError(f"flora {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def guild_logs(self, guild_id: str) -> list[dict]:
        status, body = http_json("GET", f"{self.api}/logs/{guild_id}?limit=1000", token=self.token)
        assert status == 200, body
        return body

    def wait_log(self, guild_id: str, needle: str, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for entry in self.guild_logs(guild_id):
                if needle in entry["message"]:
                    return entry
            time.sleep(0.1)
        raise AssertionError(f"no log line containing {needle!r} for guild {guild_id}; got {self.guild_logs(guild_id)}")

    def deploy_dir(self, guild_id: str, root: Path | str, *extra: str, check: bool = True):
        return self.cli(
            "deploy",
            "--guild-id",
            str(guild_id),
            "--root",
            str(root),
            "--api",
            self.api,
            "--token",
            self.token,
            *extra,
            check=check,
        )


def start_flora(emulator, tmp_path: Path, **env_overrides) -> FloraServer:
    data_dir = tmp_path / "data"
    port = int(env_overrides.get("API_PORT") or free_port())  # given when the test must know it in advance
    env = dict(os.environ)
    env.update(
        {
            "DISCORD_TOKEN": BOT_TOKEN,
            "FLORA_DISCORD_API_BASE": emulator.api_base,
            "FLORA_DATA_DIR": str(data_dir),
            "API_PORT": str(port),
            "API_ADDRESS": "127.0.0.1",
            "RUNTIME_MAX_WORKERS": "2",
            "FLORA_LOG_LEVEL": "info",
            # with REDIS_URL the bus is Redis: a namespace of its own, so servers of other tests never meet
            "BUS_NAMESPACE": f"flora-test-{uuid.uuid4().hex[:12]}",
        }
    )
    env.pop("DATABASE_URL", None)
    env.update({k: str(v) for k, v in env_overrides.items()})
    log_path = tmp_path / "flora-serve.log"
    log_file = open(log_path, "w")  # noqa: SIM115 - the server writes to it for its whole life
    proc = subprocess.Popen(
        [sys.executable, "-m", "flora_cli", "serve"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        start_new_session=True,
    )
    server = FloraServer(env, data_dir, f"http://127.0.0.1:{port}/api", proc, log_path)
    server.own_bus_namespace = "BUS_NAMESPACE" not in env_overrides
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"flora serve exited with {proc.returncode}:\n{server.logs()}")
        try:
            status, _ = http_json("GET", f"{server.api}/health", timeout=2)
            if status == 200 and emulator.connected_sessions:
                break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        stop_flora(server)
        raise AssertionError(f"flora serve did not come up:\n{server.logs()}")
    server.token = server.cli("tokens", "create", "--label", "tests").stdout.strip().splitlines()[-1]
    return server


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _forget_bus(server: FloraServer) -> None:
    """The Redis keys of the server's bus namespace (streams outlive a node on purpose)."""
    url, namespace = server.env.get("REDIS_URL"), server.env.get("BUS_NAMESPACE", "")
    if not url or not server.own_bus_namespace:
        return
    try:
        import redis

        r = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        for key in r.scan_iter(match=f"{namespace}:*", count=500):
            r.delete(key)
    except Exception:  # noqa: BLE001 - only tidying
        pass


def stop_flora(server: FloraServer) -> None:
    try:
        _stop(server)
    finally:
        _forget_bus(server)


def _stop(server: FloraServer) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)
            raise AssertionError(f"flora serve did not stop on SIGTERM:\n{server.logs()}") from None
    # nothing of the process group may be left running (zombies are dead already; PID 1 here may not reap them)
    deadline = time.monotonic() + 5
    while True:
        out = subprocess.run(["ps", "-o", "pid=,stat=,cmd=", "-g", str(server.proc.pid)], capture_output=True, text=True).stdout
        alive = [line for line in out.splitlines() if line.split() and not line.split()[1].startswith("Z")]
        if not alive:
            return
        if time.monotonic() > deadline:
            try:
                os.killpg(server.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            raise AssertionError("processes left behind by flora serve:\n" + "\n".join(alive))
        time.sleep(0.2)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def emulator_guild(emu, name: str = "Guild") -> dict:
    g = emu.create_guild(name)
    ch = emu.create_channel(g["id"], "general")
    user = emu.create_user(f"user-{g['id'][-5:]}")
    emu.add_member(g["id"], user["id"])
    return {"guild": g, "channel": ch, "user": user, "id": g["id"], "channel_id": ch["id"], "user_id": user["id"]}


def deploy_files(server, guild_id: str, files: dict[str, str], entry: str = "src/main.ts"):
    body = {"entry": entry, "files": [{"path": p, "contents": c} for p, c in files.items()]}
    return http_json("POST", f"{server.api}/deployments/{guild_id}", body, token=server.token)


def bot_replies(emu, channel_id: str) -> list[dict]:
    return [m for m in emu.messages(channel_id) if m["author"].get("bot")]
