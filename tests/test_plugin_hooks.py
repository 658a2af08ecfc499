"""Every hook a plugin can implement, used by a third-party plugin the way its author would: installed
next to flora (found through PYTHONPATH, as pip would lay it out) and run by a real ``flora serve``."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest
from conftest import BOT_TOKEN, bot_replies, deploy_files, emulator_guild, start_flora, stop_flora, wait_for

from flora_core import hookimpl
from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import open_database

AUDIT = """
import asyncio, json
from importlib import resources
from flora_core import hookimpl

def _note(config, **entry):
    with open(config.audit_file, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\\n")

@hookimpl
def flora_register_config_keys(register):
    from flora_core.config import Key, int_range, text
    register(Key("audit_file", "audit.file", "AUDIT_FILE", text, "/nonexistent/audit.log"))
    register(Key("audit_every", "audit.every", "AUDIT_EVERY", int_range(1), 10))
    register(Key("audit_guild", "audit.guild", "AUDIT_GUILD", text, ""))

@hookimpl
def flora_register_migrations(register):
    register(resources.files(__name__).joinpath("migrations"))

class Ticks:
    def __init__(self, config):
        self.config, self.task = config, None
    async def start(self, emit):
        async def tick():
            for n in range(600):  # until a script listens: events nobody listens to are dropped
                emit("auditTick", {"guild_id": self.config.audit_guild, "n": n})
                await asyncio.sleep(0.1)
        self.task = asyncio.ensure_future(tick())
    async def stop(self):
        self.task.cancel()

@hookimpl
def flora_register_event_sources(register):
    register("audit_ticks", Ticks)

@hookimpl
def flora_startup(runtime):
    runtime.db.execute("INSERT INTO audit_events (what) VALUES ('startup')")
    _note(runtime.config, hook="startup")

@hookimpl
def flora_script_loaded(runtime, guild_id, load_id, ok):
    _note(runtime.config, hook="script_loaded", guild=guild_id, ok=ok, load=load_id)

@hookimpl
def flora_isolate_built(guild_id, load_id, services):  # in a worker
    _note(services.config, hook="isolate_built", guild=guild_id, load=load_id)

@hookimpl
def flora_deployment_changed(guild_id, revision):
    from flora_core.config import load_config
    _note(load_config(), hook="deployment_changed", guild=guild_id)

@hookimpl
def flora_shutdown(runtime):
    _note(runtime.config, hook="shutdown")
"""


@pytest.fixture
def audit_site(tmp_path):
    site = tmp_path / "site"
    pkg = site / "acme_audit"
    for dialect in ("sqlite", "postgres"):
        (pkg / "migrations" / dialect).mkdir(parents=True)
        (pkg / "migrations" / dialect / "001_audit.sql").write_text(
            "CREATE TABLE audit_events (what TEXT NOT NULL)", encoding="utf-8"
        )
    (pkg / "__init__.py").write_text(AUDIT, encoding="utf-8")
    info = site / "acme_audit-1.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-audit\nVersion: 1.0.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[flora]\nacme_audit = acme_audit\n", encoding="utf-8")
    return site


def test_a_third_party_plugin_uses_every_supervisor_hook(audit_site, tmp_path):
    from flora_dev.emulator import Emulator

    audit = tmp_path / "audit.log"
    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    try:
        g = emulator_guild(emu, "Audited")
        server = start_flora(emu, tmp_path, PYTHONPATH=str(audit_site), AUDIT_FILE=str(audit), AUDIT_GUILD=g["id"])
        try:
            script = (
                "let seen = false;\n"
                "on('auditTick', async (ctx) => { if (!seen) { seen = true; await rest.sendMessage("
                f"{{ channelId: '{g['channel_id']}', content: `tick ${{ctx.msg.n}} for ${{ctx.msg.guild_id}}` }}); }} }});\n"
            )
            assert deploy_files(server, g["id"], {"src/main.ts": script})[0] == 200
            reply = wait_for(lambda: bot_replies(emu, g["channel_id"]), timeout=30, message="the event source's event")
            assert reply[0]["content"].startswith("tick ") and reply[0]["content"].endswith(f"for {g['id']}")
        finally:
            stop_flora(server)
    finally:
        emu.stop()
    entries = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    hooks = [e["hook"] for e in entries]
    assert hooks[0] == "startup" and hooks[-1] == "shutdown"
    loaded = [e for e in entries if e["hook"] == "script_loaded" and e["guild"] == g["id"] and e["ok"]]
    built = [e for e in entries if e["hook"] == "isolate_built" and e["guild"] == g["id"]]
    assert loaded and built and {e["load"] for e in loaded} <= {e["load"] for e in built}
    # the worker's build of a load comes before the supervisor hears that it loaded
    assert entries.index(built[-1]) < entries.index(loaded[-1])
    assert {"hook": "deployment_changed", "guild": g["id"]} in entries
    conn = sqlite3.connect(tmp_path / "data" / "flora.db")
    assert conn.execute("SELECT what FROM audit_events").fetchall() == [("startup",)]
    versions = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    conn.close()
    assert "acme_audit/001_audit.sql" in versions


def test_a_plugins_config_key_is_validated_like_flora_s_own(audit_site, tmp_path):
    import subprocess
    import sys

    (tmp_path / "config.toml").write_text('[audit]\nevery = "many"\n', encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(audit_site), AUDIT_FILE=str(tmp_path / "a.log"))
    out = subprocess.run(
        [sys.executable, "-m", "flora_cli", "tokens", "list"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 2
    assert out.stderr == "Error: invalid audit.every in config.toml: expected an integer, got 'many'\n"


class MemoryKv:
    @hookimpl
    def flora_register_kv_backends(self, register):
        from flora_plugins.kv.backends.sqlite_backend import SqliteBackend

        register("acme_files", lambda config: SqliteBackend(config.data_path / "acme-kv"))


def test_a_kv_backend_from_a_plugin_is_selected_by_kv_backend(tmp_path):
    from flora_plugins.kv.backends import installed_backends, open_backend

    plugins = Plugins()
    plugins.add(MemoryKv(), "acme_kv")
    config = load_config(env={"KV_BACKEND": "acme_files", "FLORA_DATA_DIR": str(tmp_path)}, plugins=plugins)
    backend = open_backend(config, plugins)
    assert "acme_files" in installed_backends(plugins) and type(backend).__name__ == "SqliteBackend"
    assert {p["name"]: p for p in plugins.describe()}["acme_kv"]["registered"] == {"kv_backend": ["acme_files"]}


class AcmeStorage:
    @hookimpl(tryfirst=True)
    def flora_storage_backend(self, url, config):
        if not url.startswith("acme://"):
            return None
        from flora_plugins.storage.sqlite import SQLiteDatabase

        return SQLiteDatabase(url.removeprefix("acme://"))


def test_a_storage_backend_from_a_plugin_serves_its_scheme(tmp_path):
    plugins = Plugins()
    plugins.add(AcmeStorage(), "acme_storage")
    config = load_config(env={"DATABASE_URL": f"acme://{tmp_path / 'acme.db'}", "FLORA_DATA_DIR": str(tmp_path)})
    db = open_database(config, plugins)
    assert db.fetchone("SELECT COUNT(*) AS n FROM deployments") == {"n": 0}
    assert (tmp_path / "acme.db").exists()


def test_plugin_keys_exist_only_while_the_plugin_is_enabled(monkeypatch, tmp_path):
    monkeypatch.setenv("FLORA_DISABLE_PLUGINS", "kv")
    plugins = Plugins()
    config = load_config(env={"FLORA_DATA_DIR": str(tmp_path)}, plugins=plugins)
    assert not hasattr(config, "kv_backend") and hasattr(config, "secrets_master_key")


# A bus of a third party: line-delimited JSON over TCP on 127.0.0.1 (the port in ACME_BUS_PORT), every
# request noted with the process that handled it. ``flora serve`` serves it, its API process uses it.
ACME_BUS = """
import asyncio, json, os, socket
from flora_core import hookimpl
from flora_core.bus import RuntimeUnavailable

def _note(**entry):
    with open(os.environ["ACME_BUS_LOG"], "a", encoding="utf-8") as f:
        f.write(json.dumps(dict(entry, pid=os.getpid())) + "\\n")

class Client:
    def _ask(self, request, timeout):
        _note(side="client", op=request["op"])
        try:
            with socket.create_connection(("127.0.0.1", int(os.environ["ACME_BUS_PORT"])), timeout=timeout) as s:
                s.sendall(json.dumps(request).encode() + b"\\n")
                return json.loads(s.makefile("rb").readline())
        except (OSError, ValueError) as exc:
            raise RuntimeUnavailable(f"acme bus: {exc}") from None

    def load(self, guild_id, bundle, timeout=60.0):
        out = self._ask({"op": "load", "guild": guild_id, "bundle": bundle}, timeout)
        return out["ok"], out["error"]

    def restore(self, guild_id, timeout=60.0):
        self._ask({"op": "restore", "guild": guild_id}, timeout)

    def status(self, timeout=5.0):
        return self._ask({"op": "status"}, timeout)

class AcmeBus:
    server = None

    async def serve(self, node):
        async def handle(reader, writer):
            request = json.loads(await reader.readline())
            _note(side="node", op=request["op"], guild=request.get("guild"))
            if request["op"] == "load":
                ok, error = await node.deploy(request["guild"], request["bundle"])
                out = {"ok": ok, "error": error}
            elif request["op"] == "restore":
                await node.restore(request["guild"])
                out = {"ok": True}
            else:
                out = node.status()
            writer.write(json.dumps(out).encode() + b"\\n")
            await writer.drain()
            writer.close()
        self.server = await asyncio.start_server(handle, "127.0.0.1", int(os.environ["ACME_BUS_PORT"]),
                                                 limit=64 * 1024 * 1024)

    async def close(self):
        self.server.close()
        await self.server.wait_closed()

    def client(self):
        return Client()

@hookimpl
def flora_runtime_bus(config):
    return AcmeBus()
"""


def test_a_bus_from_a_plugin_carries_deploys_from_the_api_to_the_runtime(tmp_path):
    import socket

    from flora_dev.emulator import Emulator

    site = tmp_path / "site"
    (site / "acme_bus").mkdir(parents=True)
    (site / "acme_bus" / "__init__.py").write_text(ACME_BUS, encoding="utf-8")
    info = site / "acme_bus-1.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-bus\nVersion: 1.0.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[flora]\nacme_bus = acme_bus\n", encoding="utf-8")
    bus_log = tmp_path / "bus.log"
    with socket.socket() as s:  # a port that is free now; the runtime binds it at start
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    try:
        g = emulator_guild(emu, "Bussed")
        server = start_flora(emu, tmp_path, PYTHONPATH=str(site), ACME_BUS_PORT=str(port), ACME_BUS_LOG=str(bus_log))
        try:
            script = (
                "on('messageCreate', async (ctx) => { if (ctx.msg.content === '!ping') "
                f"await rest.sendMessage({{ channelId: '{g['channel_id']}', content: 'pong over acme' }}); }});\n"
            )
            status, body = deploy_files(server, g["id"], {"src/main.ts": script})
            assert status == 200, body
            emu.user_says(g["channel_id"], g["user_id"], "!ping")
            assert (
                wait_for(lambda: bot_replies(emu, g["channel_id"]), timeout=30, message="the reply")[0]["content"]
                == "pong over acme"
            )
            assert not (tmp_path / "data" / "run" / "runtime.sock").exists()  # the embedded bus is not served
        finally:
            stop_flora(server)
    finally:
        emu.stop()
    entries = [json.loads(line) for line in bus_log.read_text(encoding="utf-8").splitlines()]
    client = [e for e in entries if e["side"] == "client" and e["op"] == "load"]
    node = [e for e in entries if e["side"] == "node" and e["op"] == "load"]
    assert len(client) == 1 and len(node) == 1 and node[0]["guild"] == g["id"]
    assert client[0]["pid"] != node[0]["pid"]  # the API process asked, the supervisor answered
