"""``flora dev``'s console reaches plugins only through its own hooks (``flora_dev/console/hookspecs.py``):
the ``kv`` plugin creates the stores a project names and fills the KV view; without it the console runs."""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_dev.console.app import DevSession
from flora_dev.testing import free_port

SCRIPT = """const notes = kv.store('notes')
on('messageCreate', async (ctx) => { if (ctx.msg.content === '!note') await notes.set('first', 'buy milk') })
"""
PLAIN = "on('messageCreate', async (ctx) => { if (ctx.msg.content === '!hi') await ctx.reply('hi') })\n"


def _console(tmp_path, monkeypatch, script: str, disabled: str = "") -> tuple[dict, dict]:
    monkeypatch.setenv("FLORA_DISABLE_PLUGINS", disabled)
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.ts").write_text(script, encoding="utf-8")
    config = load_config(env={"FLORA_DATA_DIR": str(tmp_path / "data")})
    port = free_port()
    session = DevSession(project, config, Plugins(), port=port)

    async def run() -> tuple[dict, dict]:
        await session.start()
        try:
            loop = asyncio.get_running_loop()

            def get() -> dict:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kv", timeout=30) as resp:
                    return json.loads(resp.read())

            view = await loop.run_in_executor(None, get)
            if script is SCRIPT:  # a member asks for the note to be written
                world = session.world
                session.api_say(
                    {
                        "channel_id": world["channels"]["general"]["id"],
                        "user_id": world["users"]["alice"]["id"],
                        "content": "!note",
                    }
                )
            deadline = loop.time() + 30
            while script is SCRIPT and not any(s["entries"] for s in view["stores"]) and loop.time() < deadline:
                await asyncio.sleep(0.1)
                view = await loop.run_in_executor(None, get)
            return session.last_deploy, view
        finally:
            await session.stop()

    return asyncio.run(run())


def test_the_kv_plugin_creates_the_projects_stores_and_shows_them(tmp_path, monkeypatch):
    deploy, view = _console(tmp_path, monkeypatch, SCRIPT)
    assert deploy["ok"], deploy
    assert [s["name"] for s in view["stores"]] == ["notes"]
    assert [(e["name"], e["value"]) for e in view["stores"][0]["entries"]] == [("first", "buy milk")]


@pytest.mark.parametrize("disabled", ["kv"])
def test_the_console_runs_without_the_kv_plugin(tmp_path, monkeypatch, disabled):
    deploy, view = _console(tmp_path, monkeypatch, PLAIN, disabled)
    assert deploy["ok"], deploy
    assert view == {"error": "the kv plugin is not enabled", "stores": []}


def test_flora_dev_keeps_the_emulators_ids_across_restarts_of_a_project(tmp_path, monkeypatch):
    def world_of_one_start() -> dict:
        session = DevSession(project, load_config(env={"FLORA_DATA_DIR": str(tmp_path / "data")}), Plugins(), port=free_port())

        async def run() -> dict:
            await session.start()
            try:
                assert session.last_deploy["ok"], session.last_deploy
                return {
                    "guild": session.guild_id,
                    **{n: c["id"] for n, c in session.world["channels"].items()},
                    **{n: u["id"] for n, u in session.world["users"].items()},
                }
            finally:
                await session.stop()

        return asyncio.run(run())

    monkeypatch.setenv("FLORA_DISABLE_PLUGINS", "")
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.ts").write_text(PLAIN, encoding="utf-8")
    first = world_of_one_start()
    assert set(first) == {"guild", "general", "bot-commands", "random", "alice", "bob"}
    assert (project / ".flora" / "emulator.json").is_file()
    assert world_of_one_start() == first


def test_flora_dev_shows_type_errors_after_a_reload_without_holding_it_back(tmp_path, monkeypatch):
    monkeypatch.setenv("FLORA_DISABLE_PLUGINS", "")
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.ts").write_text("const n: number = 'text'\n" + PLAIN, encoding="utf-8")
    session = DevSession(project, load_config(env={"FLORA_DATA_DIR": str(tmp_path / "data")}), Plugins(), port=free_port())

    async def run() -> tuple[dict, list[dict]]:
        await session.start()
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while loop.time() < deadline and not any(e["target"] == "flora:types" for e in session.logs):
                await asyncio.sleep(0.1)
            return session.last_deploy, [e for e in session.logs if e["target"] == "flora:types"]
        finally:
            await session.stop()

    deploy, lines = asyncio.run(run())
    assert deploy["ok"], deploy  # the script was loaded whatever the checker says
    assert [(e["level"], e["message"]) for e in lines] == [
        ("warn", "src/main.ts:1:7: TS2322 Type 'string' is not assignable to type 'number'.")
    ]
