"""A script that kills its worker process: the worker comes back, the other guilds
on it are restored, and the guild that was running is suspended with back-off."""

from __future__ import annotations

import time

import pytest
from conftest import BOT_TOKEN, bot_replies, deploy_files, emulator_guild, start_flora, stop_flora, wait_for

from flora_core.bus import UnixSocketClient

BOMB = """
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot) return;
  if (ctx.msg.content === '!bomb') { const a = []; a.length = 2 ** 32 - 1; a.fill(0); }
  if (ctx.msg.content === '!ping') await ctx.reply('pong A');
});
"""
NICE = (
    "on('messageCreate', async (ctx) => { if (!ctx.msg.author.bot && ctx.msg.content === '!ping') await ctx.reply('pong B'); });"
)


@pytest.fixture
def crash_stack(tmp_path):
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    a, b = emulator_guild(emu, "Bomber"), emulator_guild(emu, "Bystander")
    # The bomb needs many seconds of CPU to reach V8's fatal OOM (more on a busy machine): the dispatch
    # deadline must not win that race, or the isolate is restarted instead of the worker dying.
    server = start_flora(emu, tmp_path, RUNTIME_MAX_WORKERS=1, RUNTIME_SUSPEND_BACKOFF_SECS=3, RUNTIME_DISPATCH_TIMEOUT_SECS=120)
    try:
        yield server, emu, a, b
    finally:
        stop_flora(server)
        emu.stop()


@pytest.mark.timeout(300)
def test_fatal_v8_oom_kills_only_the_worker(crash_stack):
    server, emu, a, b = crash_stack
    assert deploy_files(server, a["id"], {"src/main.ts": BOMB})[0] == 200
    assert deploy_files(server, b["id"], {"src/main.ts": NICE})[0] == 200
    control = UnixSocketClient(server.data_dir / "run" / "runtime.sock")

    emu.user_says(a["channel_id"], a["user_id"], "!bomb")
    entry = server.wait_log(a["id"], "suspended for", timeout=150)
    assert "killed by SIGTRAP" in entry["message"] and "while handling messageCreate" in entry["message"]
    assert "script suspended for 3s" in entry["message"]
    status = control.status()
    assert status["workers"][0]["restarts"] == 1 and a["id"] in status["suspended"]

    # the bystander on the same worker was restored and answers
    emu.user_says(b["channel_id"], b["user_id"], "!ping")
    wait_for(lambda: [m for m in bot_replies(emu, b["channel_id"]) if m["content"] == "pong B"], message="bystander reply")

    # while suspended, the bomber's events are dropped
    emu.user_says(a["channel_id"], a["user_id"], "!ping")
    time.sleep(0.5)
    assert not bot_replies(emu, a["channel_id"])

    server.wait_log(a["id"], "script resumed after suspension", timeout=10)
    emu.user_says(a["channel_id"], a["user_id"], "!ping")
    wait_for(lambda: [m for m in bot_replies(emu, a["channel_id"]) if m["content"] == "pong A"], message="bomber back")
