"""Shared fixtures: the Discord emulator, a real `flora serve`, real databases."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOT_TOKEN = "flora-test-bot-token"
IN_CI = os.environ.get("CI", "").lower() == "true"

os.environ.setdefault("FLORA_STRICT_PLUGINS", "1")
# `flora login` stores credentials under the user's config folder: tests get their own, empty one
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="flora-test-config-")


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


@pytest.fixture
def emulator():
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def guild(emulator):
    """A guild with one text channel and a member, before the bot connects."""
    g = emulator.create_guild("Test Guild")
    ch = emulator.create_channel(g["id"], "general")
    user = emulator.create_user("alice")
    emulator.add_member(g["id"], user["id"])
    return {"guild": g, "channel": ch, "user": user, "id": g["id"]}


class FloraServer:
    def __init__(self, env: dict, data_dir: Path, api: str, proc: subprocess.Popen, log_path: Path):
        self.env = env
        self.data_dir = data_dir
        self.api = api
        self.proc = proc
        self.log_path = log_path
        self.token = None

    def cli(self, *args: str, check: bool = True, input: str | None = None, cwd: str | None = None) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-m", "flora_cli", *args], env=self.env, capture_output=True, text=True,
                             timeout=120, input=input, cwd=cwd)
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
        return self.cli("deploy", "--guild-id", str(guild_id), "--root", str(root), "--api", self.api, "--token", self.token,
                        *extra, check=check)


def start_flora(emulator, tmp_path: Path, **env_overrides) -> FloraServer:
    data_dir = tmp_path / "data"
    port = free_port()
    env = dict(os.environ)
    env.update({
        "DISCORD_TOKEN": BOT_TOKEN,
        "FLORA_DISCORD_API_BASE": emulator.api_base,
        "FLORA_DATA_DIR": str(data_dir),
        "API_PORT": str(port),
        "API_ADDRESS": "127.0.0.1",
        "RUNTIME_MAX_WORKERS": "2",
        "FLORA_LOG_LEVEL": "info",
    })
    env.pop("DATABASE_URL", None)
    env.update({k: str(v) for k, v in env_overrides.items()})
    log_path = tmp_path / "flora-serve.log"
    log_file = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "flora_cli", "serve"], env=env, stdout=log_file, stderr=subprocess.STDOUT,
                            cwd=tmp_path, start_new_session=True)
    server = FloraServer(env, data_dir, f"http://127.0.0.1:{port}/api", proc, log_path)
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


def stop_flora(server: FloraServer) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait(timeout=10)
            raise AssertionError(f"flora serve did not stop on SIGTERM:\n{server.logs()}")
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


@pytest.fixture
def flora(emulator, guild, tmp_path):
    server = start_flora(emulator, tmp_path)
    try:
        yield server
    finally:
        stop_flora(server)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture
def postgres_url():
    url = os.environ.get("FLORA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg2

        conn = psycopg2.connect(url, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but is not reachable at {url}: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    schema = f"flora_test_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    conn.close()
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{schema}"
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA {schema} CASCADE")
    conn.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One emulator + one `flora serve` shared by a test module; tests make their own guilds."""
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    base = emulator_guild(emu, "Base Guild")
    server = None
    try:
        server = start_flora(emu, tmp_path_factory.mktemp("flora"))
        server.emu = emu
        server.base = base
        yield server
    finally:
        if server is not None:
            stop_flora(server)
        emu.stop()


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
