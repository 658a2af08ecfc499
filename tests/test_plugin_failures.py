"""A broken third-party plugin installed next to flora: the host starts in normal time without it and
says so in one line; with FLORA_STRICT_PLUGINS=1 the same line is fatal (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import free_port

DUPLICATE = """
from flora_core import hookimpl

async def op_send_message(ctx, args):
    return "hijacked"

@hookimpl
def flora_register_ops(register):
    register("op_send_message", op_send_message)
"""
LINE = "plugin acme_dup was disabled: its op 'op_send_message' is already registered by discord_ops"


@pytest.fixture
def installed(tmp_path):
    """A distribution laid out as pip would, found through PYTHONPATH."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "acme_dup.py").write_text(DUPLICATE, encoding="utf-8")
    info = site / "acme_dup-1.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-dup\nVersion: 1.0.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text("[flora]\nacme_dup = acme_dup\n", encoding="utf-8")
    return site


def _env(tmp_path, site, strict: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FLORA_PLUGIN_PROBLEMS_REPORTED")}
    env.update(
        PYTHONPATH=str(site),
        FLORA_STRICT_PLUGINS=strict,
        FLORA_DATA_DIR=str(tmp_path / "data"),
        API_PORT=str(free_port()),
        API_ADDRESS="127.0.0.1",
        RUNTIME_MAX_WORKERS="2",
    )
    return env


def test_serve_starts_without_the_clashing_plugin_and_says_so_once(installed, tmp_path):
    env = _env(tmp_path, installed, "0")
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flora_cli", "serve", "--emulator", "--emulator-port", str(free_port())],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,
        )
    try:
        started = time.monotonic()
        deadline = started + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{env['API_PORT']}/api/health", timeout=2) as resp:
                    if resp.status == 200 and "flora is running" in log_path.read_text():
                        break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(f"flora serve did not come up within 60 s:\n{log_path.read_text()}")
        text = log_path.read_text()
        assert text.count(LINE) == 1, text  # not once per worker or API process
        assert "Traceback" not in text
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_strict_mode_makes_the_same_line_fatal_exit_2(installed, tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "flora_cli", "serve", "--emulator", "--emulator-port", str(free_port())],
        env=_env(tmp_path, installed, "1"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == f"Error: {LINE}"


def test_flora_runs_scripts_with_kv_secrets_and_cron_disabled_and_has_none_of_their_tables(tmp_path):
    import sqlite3

    from conftest import BOT_TOKEN, bot_replies, deploy_files, emulator_guild, start_flora, stop_flora, wait_for

    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    try:
        g = emulator_guild(emu, "Plain")
        server = start_flora(emu, tmp_path, FLORA_DISABLE_PLUGINS="kv,secrets,cron")
        try:
            script = """
on('messageCreate', async (ctx) => {
  if (ctx.msg.content === '!hi') await ctx.reply('hi without plugins');
  if (ctx.msg.content !== '!missing') return;
  const errors = [];
  for (const use of [() => kv.store('s'), () => secrets.get('A'), () => cron('c', '* * * * *', () => {})]) {
    try { use(); } catch (e) { errors.push(`${e.code}: ${e.message}`); }
  }
  setTimeout(() => rest.sendMessage({ channelId: ctx.msg.channelId, content: errors.join(' | ') }), 1);
});
"""
            assert deploy_files(server, g["id"], {"src/main.ts": script})[0] == 200
            emu.user_says(g["channel_id"], g["user_id"], "!hi")
            wait_for(
                lambda: [m for m in bot_replies(emu, g["channel_id"]) if m["content"] == "hi without plugins"],
                timeout=30,
                message="a reply with kv, secrets and cron disabled",
            )
            emu.user_says(g["channel_id"], g["user_id"], "!missing")
            reply = wait_for(
                lambda: [m for m in bot_replies(emu, g["channel_id"]) if m["content"].startswith("OP_")],
                timeout=30,
                message="the errors of the disabled plugins' names",
            )[0]
            assert reply["content"] == " | ".join(
                f"OP_UNAVAILABLE: {what} is not available: the {plugin} plugin is disabled or not installed"
                for what, plugin in (("kv.store", "kv"), ("secrets.get", "secrets"), ("cron", "cron"))
            )
        finally:
            stop_flora(server)
        conn = sqlite3.connect(tmp_path / "data" / "flora.db")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        conn.close()
        assert "deployments" in tables and not tables & {"kv_stores", "guild_secrets", "cron_jobs", "cron_loads"}
    finally:
        emu.stop()


RAW_CORE_SCRIPT = """
__floraOn('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'raw?') return;
  const seen = [typeof on, typeof flora, typeof kv, typeof rest, typeof setTimeout, Object.keys(ctx).join(',')];
  await __floraOp('op_send_message', { channelId: ctx.msg.channelId, content: `raw ${seen.join(' ')} ${__floraGuildId}` });
});
"""


def test_a_script_using_only_the_core_api_runs_with_the_sdk_disabled(tmp_path):
    """glue.js and events.js are the core's: without the sdk plugin there is no SDK, no console and no
    starter script, and a script written against __floraOn/__floraOp loads and handles its events."""
    from conftest import BOT_TOKEN, bot_replies, deploy_files, emulator_guild, start_flora, stop_flora, wait_for

    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    try:
        g = emulator_guild(emu, "Core only")
        server = start_flora(emu, tmp_path, FLORA_DISABLE_PLUGINS="sdk")
        try:
            status, body = deploy_files(server, g["id"], {"src/main.ts": RAW_CORE_SCRIPT})
            assert status == 200, body
            emu.user_says(g["channel_id"], g["user_id"], "raw?")
            reply = wait_for(lambda: bot_replies(emu, g["channel_id"]), timeout=30, message="the raw script's reply")[0]
            assert reply["content"] == f"raw undefined undefined undefined undefined undefined msg {g['id']}"
        finally:
            stop_flora(server)
    finally:
        emu.stop()
