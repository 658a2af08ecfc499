"""KV through the real stack: emulator -> flora serve -> worker -> V8 -> kv ops -> backend, and the API.

The durability test SIGKILLs the worker while a script is writing: every key
whose ``ack`` reached Discord must be readable afterwards.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import BOT_TOKEN, bot_replies, deploy_files, emulator_guild, http_json, start_flora, stop_flora, wait_for
from test_kv_conformance import redis_url  # noqa: F401 - the fixture

from flora_core.bus import UnixSocketClient

COUNTERS = """
const counters = kv.store('counters');

on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot) return;
  const c = ctx.msg.content;
  const fail = async (fn) => { try { await fn(); } catch (e) { await ctx.reply(`error: ${e.code}: ${e.message}`); } };
  if (c === '!hit') await fail(async () => ctx.reply(`hits: ${await counters.incr('hits')}`));
  if (c === '!hits') await ctx.reply(`hits now: ${(await counters.get('hits')) ?? 'none'}`);
  if (c.startsWith('!remember ')) {
    await counters.set('note', c.slice(10), { metadata: { by: ctx.msg.author.id } });
    await ctx.reply('noted');
  }
  if (c === '!note') {
    const { value, metadata } = await counters.getWithMetadata('note');
    await ctx.reply(`note: ${value} by ${metadata?.by}`);
  }
  if (c === '!keys') {
    const page = await counters.list({ limit: 10 });
    await ctx.reply(`keys: ${page.keys.map((k) => k.name).join(',')} complete=${page.listComplete}`);
  }
  if (c === '!lock') await ctx.reply(`lock: ${await counters.compareAndSet('lock', null, 'held')}`);
  if (c === '!badkey') await fail(() => counters.set('', 'x'));
});
"""


def say_and_wait(emu, g, content: str, count: int = 1) -> list[str]:
    before = len(bot_replies(emu, g["channel_id"]))
    emu.user_says(g["channel_id"], g["user_id"], content)
    wait_for(lambda: len(bot_replies(emu, g["channel_id"])) >= before + count, message=f"reply to {content!r}")
    return [m["content"] for m in bot_replies(emu, g["channel_id"])[before:]]


def test_a_script_counts_and_answers_from_kv(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Counter Guild")
    status, body = deploy_files(stack, g["id"], {"src/main.ts": COUNTERS})
    assert status == 200, body

    # the store must exist first (flora's rule)
    assert say_and_wait(emu, g, "!hit") == ["error: KV_NOT_FOUND: store not found"]
    status, body = http_json("POST", f"{stack.api}/kv/stores", {"guild_id": g["id"], "store_name": "counters"}, token=stack.token)
    assert status == 200, body

    assert say_and_wait(emu, g, "!hits") == ["hits now: none"]
    assert say_and_wait(emu, g, "!hit") == ["hits: 1"]
    assert say_and_wait(emu, g, "!hit") == ["hits: 2"]
    # the API process writes to the same data
    assert http_json("PUT", f"{stack.api}/kv/{g['id']}/counters/hits", {"value": "40"}, token=stack.token)[0] == 200
    assert say_and_wait(emu, g, "!hit") == ["hits: 41"]

    # concurrent events: every increment counted once
    before = len(bot_replies(emu, g["channel_id"]))
    for _ in range(20):
        emu.user_says(g["channel_id"], g["user_id"], "!hit")
    wait_for(lambda: len(bot_replies(emu, g["channel_id"])) >= before + 20, message="20 hit replies")
    numbers = sorted(int(m["content"].split(": ")[1]) for m in bot_replies(emu, g["channel_id"])[before:])
    assert numbers == list(range(42, 62))
    assert http_json("GET", f"{stack.api}/kv/{g['id']}/counters/hits", token=stack.token)[1] == {"value": "61"}

    assert say_and_wait(emu, g, "!remember buy milk") == ["noted"]
    assert say_and_wait(emu, g, "!note") == [f"note: buy milk by {g['user_id']}"]
    status, listed = http_json("GET", f"{stack.api}/kv/{g['id']}/counters", token=stack.token)
    assert listed == {"keys": [{"name": "hits"}, {"name": "note", "metadata": {"by": g["user_id"]}}], "listComplete": True}
    assert say_and_wait(emu, g, "!keys") == ["keys: hits,note complete=true"]
    assert say_and_wait(emu, g, "!lock") == ["lock: true"]
    assert say_and_wait(emu, g, "!lock") == ["lock: false"]
    assert say_and_wait(emu, g, "!badkey") == ["error: INVALID_INPUT: key cannot be empty"]

    # another guild with a store of the same name sees only its own data
    other = emulator_guild(emu, "Other Counter Guild")
    assert deploy_files(stack, other["id"], {"src/main.ts": COUNTERS})[0] == 200
    assert (
        http_json("POST", f"{stack.api}/kv/stores", {"guild_id": other["id"], "store_name": "counters"}, token=stack.token)[0]
        == 200
    )
    assert say_and_wait(emu, other, "!hits") == ["hits now: none"]
    assert say_and_wait(emu, other, "!hit") == ["hits: 1"]
    assert http_json("GET", f"{stack.api}/kv/{g['id']}/counters/hits", token=stack.token)[1] == {"value": "61"}


WRITER = """
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot) return;
  const m = /^set (\\d+)$/.exec(ctx.msg.content);
  if (!m) return;
  await kv.store('s').set('k' + m[1], 'v' + m[1]);
  await ctx.reply('ack ' + m[1]);
});
"""


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def kv_server_env(request):
    """What selects the backend of a `flora serve` (Postgres and Redis at the test servers, cleaned afterwards)."""
    if request.param == "postgres":
        return {"KV_BACKEND": "postgres", "KV_URL": request.getfixturevalue("postgres_url")}
    if request.param == "redis":
        return {"KV_BACKEND": "redis", "KV_URL": request.getfixturevalue("redis_url")}
    return {}


def test_acked_writes_survive_a_sigkilled_worker(tmp_path, kv_server_env):
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    g = emulator_guild(emu, "Durable Guild")
    server = start_flora(emu, tmp_path, RUNTIME_MAX_WORKERS=1, RUNTIME_SUSPEND_BACKOFF_SECS=1, **kv_server_env)
    try:
        api, token = server.api, server.token
        assert http_json("POST", f"{api}/kv/stores", {"guild_id": g["id"], "store_name": "s"}, token=token)[0] == 200
        assert deploy_files(server, g["id"], {"src/main.ts": WRITER})[0] == 200
        control = UnixSocketClient(server.data_dir / "run" / "runtime.sock")
        worker = control.status()["workers"][0]

        def acks() -> set[int]:
            return {int(m["content"].split()[1]) for m in bot_replies(emu, g["channel_id"]) if m["content"].startswith("ack ")}

        killed_at = None
        for n in range(80):
            emu.user_says(g["channel_id"], g["user_id"], f"set {n}")
            if n == 25:
                wait_for(lambda: len(acks()) >= 5, message="acks flowing")
                os.kill(worker["pid"], signal.SIGKILL)
                killed_at = len(acks())
            time.sleep(0.01)
        wait_for(
            lambda: control.status()["workers"][0]["restarts"] >= 1 and control.status()["workers"][0]["alive"],
            timeout=30,
            message="worker restarted",
        )
        # after its suspension the guild is back and writes again (events during the suspension are dropped)
        deadline = time.monotonic() + 20
        while 1000 not in acks() and time.monotonic() < deadline:
            emu.user_says(g["channel_id"], g["user_id"], "set 1000")
            time.sleep(0.5)
        assert 1000 in acks(), server.logs()[-3000:]

        acked = acks()
        assert killed_at is not None and len(acked) > killed_at > 0
        missing = [
            n for n in sorted(acked) if http_json("GET", f"{api}/kv/{g['id']}/s/k{n}", token=token)[1] != {"value": f"v{n}"}
        ]
        assert not missing, f"acked but lost: {missing}"
        status, page = http_json("GET", f"{api}/kv/{g['id']}/s?limit=1000", token=token)
        assert {k["name"] for k in page["keys"]} >= {f"k{n}" for n in acked}
        http_json("DELETE", f"{api}/kv/stores/{g['id']}/s", token=token)  # leave nothing in Postgres/Redis
    finally:
        stop_flora(server)
        emu.stop()


FLOOD = """
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== '!flood') return;
  const store = kv.store('flood');
  let ok = 0, refused = 0, first = '';
  for (let i = 0; i < 150; i++) {
    try { await store.set('script-' + i, 'v'); ok++; } catch (e) { refused++; if (!first) first = `${e.code}: ${e.message}`; }
  }
  await ctx.reply(`ok=${ok} refused=${refused} ${first}`);
});
"""


@pytest.fixture(params=["sqlite-counter", "redis-counter"])
def counter_env(request):
    """Where the write rate is counted: the data folder's file, or Redis (REDIS_URL, also the runtime bus)."""
    if request.param == "redis-counter":
        url = request.getfixturevalue("redis_url").split("?", 1)[0]
        return {"REDIS_URL": url}
    return {}


def test_the_api_the_cli_and_the_worker_share_the_write_rate_limit(tmp_path, counter_env):
    """flora's 120 writes a minute per store: 15 from the API and 5 from `flora kv set` leave the script,
    in its worker, exactly 100; then the API and the CLI are refused too."""
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    g = emulator_guild(emu, "Flood Guild")
    server = start_flora(emu, tmp_path, RUNTIME_DISPATCH_TIMEOUT_SECS=60, **counter_env)
    try:
        api, token = server.api, server.token
        assert http_json("POST", f"{api}/kv/stores", {"guild_id": g["id"], "store_name": "flood"}, token=token)[0] == 200
        assert deploy_files(server, g["id"], {"src/main.ts": FLOOD})[0] == 200
        for i in range(15):
            assert http_json("PUT", f"{api}/kv/{g['id']}/flood/api-{i}", {"value": "v"}, token=token)[0] == 200
        for i in range(5):
            server.cli("kv", "set", "--guild-id", g["id"], "--store", "flood", f"cli-{i}", "v")
        assert say_and_wait(emu, g, "!flood") == ["ok=100 refused=50 KV_RATE_LIMITED: kv write rate limit exceeded; retry later"]
        status, body = http_json("PUT", f"{api}/kv/{g['id']}/flood/api-late", {"value": "v"}, token=token)
        assert (status, body) == (429, {"message": "Too many requests: kv write rate limit exceeded; retry later"})
        late = server.cli("kv", "set", "--guild-id", g["id"], "--store", "flood", "cli-late", "v", check=False)
        assert late.returncode == 1 and late.stderr.strip().splitlines()[-1] == "Error: kv write rate limit exceeded; retry later"
        status, page = http_json("GET", f"{api}/kv/{g['id']}/flood?limit=1000", token=token)
        assert len(page["keys"]) == 120
        http_json("DELETE", f"{api}/kv/stores/{g['id']}/flood", token=token)
    finally:
        stop_flora(server)
        emu.stop()
