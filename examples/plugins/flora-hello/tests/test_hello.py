"""flora-hello against a real flora (flora's test kit: flora_server, flora_guild): the op and its script
API, the config key, the table, the CLI command, the route and the TypeScript declarations."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from importlib import resources

import pytest

SCRIPT = """
on("messageCreate", async (ctx) => {
  if (ctx.msg.author.bot) return;
  if (ctx.msg.content === "hi") await ctx.reply(await hello(ctx.msg.author.username));
  if (ctx.msg.content === "raw") await ctx.reply(await __floraOp("op_hello", { name: "raw" }));
  if (ctx.msg.content === "same") await ctx.reply(`${flora.hello === hello}`);
});
"""


@pytest.fixture
def flora_server_env():
    return {"HELLO_GREETING": "Howdy"}


def test_scripts_are_greeted_with_the_configured_greeting_and_every_greeting_is_counted(flora_server, flora_guild):
    flora_server.deploy(flora_guild.id, {"src/main.ts": SCRIPT})
    username = flora_guild.raw["user"]["username"]
    flora_guild.say("hi")
    assert flora_guild.wait_reply() == f"Howdy, {username}!"
    flora_guild.say("raw")
    assert flora_guild.wait_reply(count=2) == "Howdy, raw!"
    flora_guild.say("same")
    assert flora_guild.wait_reply(count=3) == "true"
    # the table the plugin's migration made, and the CLI command that reads it
    assert flora_server.cli("hello", "counts", "--guild-id", flora_guild.id).stdout == f"{flora_guild.id} 2 (last: raw)\n"
    assert flora_server.cli("hello", "counts", "--guild-id", "1").stdout == "No greetings yet\n"
    conn = sqlite3.connect(flora_server.data_dir / "flora.db")
    try:
        versions = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
    finally:
        conn.close()
    assert "hello/001_hello_counts.sql" in versions
    assert flora_server.api("GET", "/hello") == (200, {"hello": "world", "plugin": "flora-hello"})
    # what it registered, as the CLI sees it (CLI commands exist in the CLI process only)
    mine = next(p for p in json.loads(flora_server.cli("plugins", "--json").stdout) if p["name"] == "hello")
    assert mine["version"] == "0.4.0" and mine["registered"] == {
        "blueprint": ["flora_hello"],
        "command": ["hello"],
        "config_key": ["HELLO_GREETING"],
        "js_source": ["hello"],
        "migrations": ["hello"],
        "op": ["op_hello"],
        "type_declarations": ["hello"],
    }


def test_a_bad_greeting_stops_every_command_with_one_line(tmp_path):
    env = dict(os.environ, HELLO_GREETING="x" * 41, FLORA_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run(
        [sys.executable, "-m", "flora_cli", "hello", "counts"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 2
    assert out.stderr == "Error: invalid HELLO_GREETING: expected one line of at most 40 characters\n"


def test_both_dialects_have_the_table():
    folder = resources.files("flora_hello").joinpath("migrations")
    sqlite_sql = folder.joinpath("sqlite", "001_hello_counts.sql").read_text(encoding="utf-8")
    postgres_sql = folder.joinpath("postgres", "001_hello_counts.sql").read_text(encoding="utf-8")
    assert "CREATE TABLE hello_counts" in sqlite_sql and "CREATE TABLE hello_counts" in postgres_sql


def test_the_declarations_are_assembled_with_flora_s_and_type_check(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "flora_cli", "types", "-o", str(tmp_path / "flora.d.ts")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assembled = (tmp_path / "flora.d.ts").read_text(encoding="utf-8")
    assert "// ---- hello (plugin hello) ----" in assembled and "declare function hello(name?: string)" in assembled
    try:
        from deno import find_deno_bin

        deno = find_deno_bin()
    except Exception:  # noqa: BLE001 - no deno wheel
        deno = shutil.which("deno")
    if not deno:
        pytest.skip("deno is not installed")
    (tmp_path / "deno.json").write_text(json.dumps({"compilerOptions": {"lib": ["es2023"], "strict": True}}))
    env = dict(os.environ, NO_COLOR="1", DENO_NO_UPDATE_CHECK="1", DENO_DIR=str(tmp_path / "deno"))

    def check(code: str) -> subprocess.CompletedProcess:
        (tmp_path / "main.ts").write_text('/// <reference path="./flora.d.ts" />\n' + code, encoding="utf-8")
        return subprocess.run(
            [deno, "check", "--config", "deno.json", "main.ts"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    good = check(
        'import { hello as hi } from "@uwu/flora-sdk";\n'
        'on("messageCreate", async (ctx) => { const t: string = await hello(); await ctx.reply(t + (await flora.hello("x")) + (await hi())); });\n'
    )
    assert good.returncode == 0, good.stderr
    bad = check("const n: number = await hello();\n")
    assert bad.returncode != 0 and "Type 'string' is not assignable to type 'number'" in bad.stderr
