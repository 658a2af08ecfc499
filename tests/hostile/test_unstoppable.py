"""A script that V8 cannot stop: `unshift` on an array of length 2**32-2 runs for minutes in one builtin that
never checks for termination, so closing its isolate does not return. The worker gives the isolate's threads
up after RUNTIME_CLOSE_GRACE_SECS and asks to be replaced; the supervisor kills it, a fresh worker takes the
other guilds, and the guild that could not be stopped is suspended like one that crashed its worker."""

from __future__ import annotations

import os
import time

import pytest
from conftest import BOT_TOKEN, bot_replies, deploy_files, emulator_guild, start_flora, stop_flora, wait_for

from flora_core.bus import UnixSocketClient

UNSTOPPABLE = """
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot) return;
  if (ctx.msg.content === '!ping') { await ctx.reply('pong A'); return; }
  if (ctx.msg.content === '!unshift') Promise.resolve().then(() => { const a = []; a.length = 2 ** 32 - 2; a.unshift(1); });
});
"""
NICE = (
    "on('messageCreate', async (ctx) => { if (!ctx.msg.author.bot && ctx.msg.content === '!ping') await ctx.reply('pong B'); });"
)


@pytest.fixture
def unstoppable(tmp_path):
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    a, b = emulator_guild(emu, "Unstoppable"), emulator_guild(emu, "Bystander")
    server = start_flora(
        emu,
        tmp_path,
        RUNTIME_MAX_WORKERS=1,
        RUNTIME_DISPATCH_TIMEOUT_SECS=2,
        RUNTIME_CLOSE_GRACE_SECS=2,
        RUNTIME_SUSPEND_BACKOFF_SECS=2,
    )
    try:
        yield server, emu, a, b
    finally:
        stop_flora(server)
        emu.stop()


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_an_isolate_that_cannot_be_closed_gets_its_worker_replaced(unstoppable):
    server, emu, a, b = unstoppable
    assert deploy_files(server, a["id"], {"src/main.ts": UNSTOPPABLE})[0] == 200
    assert deploy_files(server, b["id"], {"src/main.ts": NICE})[0] == 200
    control = UnixSocketClient(server.data_dir / "run" / "runtime.sock")
    old_pid = control.status()["workers"][0]["pid"]

    started = time.monotonic()
    emu.user_says(a["channel_id"], a["user_id"], "!unshift")
    stopped = server.wait_log(a["id"], "dispatch failed: ", timeout=15)
    assert stopped["message"].endswith(
        "in a microtask loop, messageCreate handler exceeded the 2s dispatch deadline; isolate restarted"
    ), stopped
    server.wait_log(
        a["id"],
        "the isolate did not stop within 2s of being closed (V8 is inside an operation that cannot "
        "be interrupted), so its worker is being replaced",
        timeout=15,
    )
    server.wait_log(
        a["id"],
        "the worker running this guild's script was replaced because this script's isolate could "
        "not be stopped; script suspended for 2s",
        timeout=15,
    )
    took = time.monotonic() - started
    print(f"\nworker replaced {took:.1f} s after the script started spinning")
    assert took < 25

    status = wait_for(
        lambda: (s := control.status())["workers"][0]["alive"] and s["workers"][0]["pid"] != old_pid and s,
        timeout=15,
        message="a fresh worker",
    )
    assert status["workers"][0]["restarts"] == 1
    wait_for(lambda: _gone(old_pid), timeout=10, message="the old worker process gone")

    # the bystander moved to the fresh worker and answers; that worker is idle
    emu.user_says(b["channel_id"], b["user_id"], "!ping")
    wait_for(
        lambda: [m for m in bot_replies(emu, b["channel_id"]) if m["content"] == "pong B"],
        timeout=15,
        message="the bystander answers",
    )
    new_pid = status["workers"][0]["pid"]
    shares: list[float] = []

    def idle() -> bool:
        c0, t0 = _cpu(new_pid), time.monotonic()
        time.sleep(2)
        shares.append((_cpu(new_pid) - c0) / (time.monotonic() - t0))
        return shares[-1] < 0.5

    wait_for(idle, timeout=20, interval=0, message="the fresh worker idle")

    # the suspended script comes back by itself
    server.wait_log(a["id"], "script resumed after suspension", timeout=15)
    emu.user_says(a["channel_id"], a["user_id"], "!ping")
    wait_for(
        lambda: [m for m in bot_replies(emu, a["channel_id"]) if m["content"] == "pong A"],
        timeout=15,
        message="the replaced guild answers again",
    )
