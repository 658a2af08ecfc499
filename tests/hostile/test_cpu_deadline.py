"""Scripts that spin where no asyncio deadline can reach them, against a real `flora serve` and the emulator.

Attacker and victim share the only worker (RUNTIME_MAX_WORKERS=1). For every form of loop the attacker's
log must say how it was stopped within the deadline plus a margin, the victim must keep answering, the
worker's CPU must fall back to idle and the attacker's script must answer again once it was rebuilt.

(No conftest.py in this folder: pytest finds the fixtures of tests/conftest.py by walking up, and an empty
conftest.py here would shadow `from conftest import ...` below, which then fails to import.)
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime

import pytest
from conftest import BOT_TOKEN, bot_replies, deploy_files, emulator_guild, http_json, start_flora, stop_flora, wait_for

from flora_core.bus import UnixSocketClient

DEADLINE = 2  # RUNTIME_DISPATCH_TIMEOUT_SECS for this module
STOP_WITHIN = 15.0  # deadline + a generous margin: CI is a busy 2-core machine

VICTIM = """
on('messageCreate', async (ctx) => {
  if (!ctx.msg.author.bot && ctx.msg.content.startsWith('!ping ')) await ctx.reply('pong ' + ctx.msg.content.slice(6));
});
"""

# Each attack runs when the attacker says "!attack"; "!ping N" answers "pong N" (the rebuilt isolate works).
ATTACKER = """
const store = kv.store('hostile');
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot) return;
  if (ctx.msg.content.startsWith('!ping ')) { await ctx.reply('pong ' + ctx.msg.content.slice(6)); return; }
  if (ctx.msg.content !== '!attack') return;
  %s
});
%s
"""

SYNC, ASYNC, IDLE = "in its synchronous code", "in a microtask loop", "while no event was running"
EARLY = "in a microtask loop that started while no event was running"  # an event came while it spun


# name -> (handler body, extra top-level code, where the CPU goes, as the log says it)
CASES = {
    "microtask": ("queueMicrotask(() => { while (true) {} });", "", ASYNC),
    "promise_callback": ("Promise.resolve().then(() => { while (true) {} });", "", ASYNC),
    "after_op": ("console.log('about to spin'); while (true) {}", "", SYNC),
    "op_pending": ("const pending = ctx.reply('pending reply'); await store.get('k'); while (true) {}", "", ASYNC),
    "then_after_return": ("store.get('k').then(() => { while (true) {} }); return;", "", IDLE),
    "second_handler": (
        "await store.get('k');",
        "on('messageCreate', (ctx) => { if (ctx.msg.content === '!attack') { while (true) {} } });",
        ASYNC,
    ),
    "object_keys": ("Object.keys = function () { while (true) {} }; on('guildMemberAdd', () => {});", "", ASYNC),
    "array_push": (
        "await store.get('k'); Array.prototype.push = function () { for (;;) {} }; on('guildMemberAdd', () => {});",
        "",
        ASYNC,
    ),
    "set_timeout": ("setTimeout(() => { while (true) {} }, 10);", "", ASYNC),
    "plain_loop": ("while (true) {}", "", SYNC),
}
STOP_LINE = re.compile(
    rf"dispatch failed: after (?P<cpu>[0-9.]+) s of CPU (?P<where>{EARLY}|{SYNC}|{ASYNC}), messageCreate handler exceeded "
    rf"the {DEADLINE}s dispatch deadline; isolate restarted"
    rf"|spent (?P<idle_cpu>[0-9.]+) s of CPU {IDLE} \(more than the {DEADLINE}s dispatch deadline\); isolate stopped"
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One emulator and one `flora serve` with one worker; the victim guild is deployed once."""
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    victim = emulator_guild(emu, "Victim")
    server = None
    try:
        server = start_flora(
            emu, tmp_path_factory.mktemp("hostile"), RUNTIME_MAX_WORKERS=1, RUNTIME_DISPATCH_TIMEOUT_SECS=DEADLINE
        )
        assert deploy_files(server, victim["id"], {"src/main.ts": VICTIM})[0] == 200
        server.emu, server.victim = emu, victim
        server.control = UnixSocketClient(server.data_dir / "run" / "runtime.sock")
        server.pings = iter(range(1, 10**6))
        yield server
    finally:
        if server is not None:
            stop_flora(server)
        emu.stop()


def worker_pid(server) -> int:
    pid = server.control.status()["workers"][0]["pid"]
    with open(f"/proc/{pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    assert ppid == server.proc.pid, "the worker is not a child of flora serve"
    return pid


def process_cpu(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_share(pid: int, window: float = 2.0) -> float:
    """Cores the process used over ``window`` seconds of wall time."""
    c0, t0 = process_cpu(pid), time.monotonic()
    time.sleep(window)
    return (process_cpu(pid) - c0) / (time.monotonic() - t0)


def ping(server, guild: dict, timeout: float = STOP_WITHIN) -> None:
    n = next(server.pings)
    server.emu.user_says(guild["channel_id"], guild["user_id"], f"!ping {n}")
    wait_for(
        lambda: any(m["content"] == f"pong {n}" for m in bot_replies(server.emu, guild["channel_id"])),
        timeout=timeout,
        message=f"pong {n} in {guild['guild']['name']}",
    )


def stop_line(server, guild_id: str) -> dict | None:
    for entry in server.guild_logs(guild_id):
        if entry["target"] == "flora:runtime" and entry["level"] == "error":
            return entry
    return None


@pytest.mark.parametrize("case", list(CASES))
def test_a_spinning_script_is_stopped_and_its_worker_recovers(hostile, case):
    server, emu, victim = hostile, hostile.emu, hostile.victim
    body, extra, where = CASES[case]
    attacker = emulator_guild(emu, f"Attacker {case}")
    status, reply = http_json(
        "POST", f"{server.api}/kv/stores", {"guild_id": attacker["id"], "store_name": "hostile"}, token=server.token
    )
    assert status == 200, reply
    status, reply = deploy_files(server, attacker["id"], {"src/main.ts": ATTACKER % (body, extra)})
    assert status == 200, reply
    ping(server, attacker)
    pid = worker_pid(server)

    started = time.time()
    emu.user_says(attacker["channel_id"], attacker["user_id"], "!attack")
    for _ in range(2 if where != IDLE else 0):  # events for the spinning isolate must not stay pending
        emu.user_says(attacker["channel_id"], attacker["user_id"], f"!ping queued-{next(server.pings)}")
    ping(server, victim)  # while the attacker spins (loosely: it may be answered just after the stop)
    entry = wait_for(lambda: stop_line(server, attacker["id"]), timeout=STOP_WITHIN, message=f"the stop line of {case}")
    took = entry["timestamp"] / 1000 - started
    text = entry["message"]
    print(f"\n{case}: stopped after {took:.2f} s: {text}")
    assert took < STOP_WITHIN

    match = STOP_LINE.fullmatch(text)
    assert match, text
    # the watchdog and the wall-clock deadline on the isolate's loop describe it the same way
    assert (match["where"] or IDLE) == where, text
    assert float(match["cpu"] or match["idle_cpu"]) >= 0.2, text  # it did burn CPU (a share of a busy machine)

    ping(server, victim)
    server.wait_log(attacker["id"], "isolate restarted after", timeout=STOP_WITHIN)
    wait_for(
        lambda: server.control.status()["workers"][0]["inflight"] == 0,
        timeout=STOP_WITHIN,
        message="every dispatch to the stopped isolate answered",
    )
    ping(server, attacker)

    # the worker is idle again (same process: nothing was recycled)
    assert worker_pid(server) == pid
    shares: list[float] = []
    wait_for(
        lambda: shares.append(cpu_share(pid)) or shares[-1] < 0.5, timeout=20, interval=0, message="the worker's CPU back to idle"
    )
    print(f"{case}: worker CPU afterwards {shares[-1]:.2f} core(s)")

    # nothing the stopped isolate had queued was sent after it was stopped
    for m in bot_replies(emu, attacker["channel_id"]):
        if not m["content"].startswith("pong "):
            sent = datetime.fromisoformat(m["timestamp"]).timestamp()
            assert sent <= entry["timestamp"] / 1000, f"{m['content']!r} was sent after the isolate was stopped"


REDEPLOYED = "on('messageCreate', async (ctx) => { if (!ctx.msg.author.bot) await ctx.reply('v2: ' + ctx.msg.content); });"


def worker_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_a_redeploy_stops_a_spinning_script_without_leaking_its_threads(hostile):
    server, emu = hostile, hostile.emu
    attacker = emulator_guild(emu, "Redeployed while spinning")
    body = "queueMicrotask(() => { while (true) {} });"
    assert deploy_files(server, attacker["id"], {"src/main.ts": ATTACKER % (body, "")})[0] == 200
    ping(server, attacker)
    pid = worker_pid(server)
    threads = worker_threads(pid)
    emu.user_says(attacker["channel_id"], attacker["user_id"], "!attack")
    wait_for(lambda: server.control.status()["workers"][0]["inflight"] >= 1, message="the attack in flight")
    status, reply = deploy_files(server, attacker["id"], {"src/main.ts": REDEPLOYED})  # well inside the deadline
    assert status == 200, reply
    # the stuck dispatch was answered (with an error), the old isolate's two threads are gone
    wait_for(lambda: server.control.status()["workers"][0]["inflight"] == 0, message="the stuck dispatch answered")
    wait_for(lambda: worker_threads(pid) == threads, message=f"{threads} threads in the worker again")
    server.wait_log(attacker["id"], "1 event(s) still running in the previous script were stopped by the deploy")
    emu.user_says(attacker["channel_id"], attacker["user_id"], "hello")
    wait_for(
        lambda: any(m["content"] == "v2: hello" for m in bot_replies(emu, attacker["channel_id"])),
        message="the new script answers",
    )
    assert not [e for e in server.guild_logs(attacker["id"]) if "dispatch deadline" in e["message"]]
    shares: list[float] = []
    wait_for(
        lambda: shares.append(cpu_share(pid)) or shares[-1] < 0.5, timeout=20, interval=0, message="the worker's CPU back to idle"
    )


def test_an_event_that_arrives_during_a_detached_loop_is_not_blamed_for_it(hostile):
    server, emu = hostile, hostile.emu
    attacker = emulator_guild(emu, "Detached loop, then an event")
    status, reply = http_json(
        "POST", f"{server.api}/kv/stores", {"guild_id": attacker["id"], "store_name": "hostile"}, token=server.token
    )
    assert status == 200, reply
    body = "store.get('k').then(() => { while (true) {} }); return;"
    assert deploy_files(server, attacker["id"], {"src/main.ts": ATTACKER % (body, "")})[0] == 200
    ping(server, attacker)
    pid = worker_pid(server)
    cpu = process_cpu(pid)
    emu.user_says(attacker["channel_id"], attacker["user_id"], "!attack")
    wait_for(lambda: process_cpu(pid) - cpu > 0.4, timeout=STOP_WITHIN, message="the detached loop")
    emu.user_says(attacker["channel_id"], attacker["user_id"], "!ping late")  # queued behind the loop
    entry = wait_for(lambda: stop_line(server, attacker["id"]), timeout=STOP_WITHIN, message="the stop line")
    match = STOP_LINE.fullmatch(entry["message"])
    assert match and (match["where"] or IDLE) in (EARLY, IDLE), entry["message"]
    server.wait_log(attacker["id"], "isolate restarted after", timeout=STOP_WITHIN)
    wait_for(
        lambda: server.control.status()["workers"][0]["inflight"] == 0, timeout=STOP_WITHIN, message="the late event answered"
    )
    ping(server, attacker)
