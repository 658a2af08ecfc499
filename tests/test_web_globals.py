"""The web globals scripts get (setTimeout, URL, TextEncoder, atob, structuredClone,
crypto.randomUUID), and that none of them escapes the memory limit or the deadline."""

from __future__ import annotations

import json
import re

from conftest import bot_replies, deploy_files, emulator_guild, wait_for

PROBE = r"""
const out = {};
const u = new URL('https://User:pw@Example.COM:8080/a/b/../c?x=1&y=two%20words#frag');
out.url = [u.protocol, u.username, u.hostname, u.port, u.host, u.pathname, u.search, u.hash, u.origin, u.searchParams.get('y')];
u.searchParams.set('x', '2'); u.searchParams.append('z', 'a&b');
out.href = u.href;
out.relative = new URL('../d?q', 'https://h.io/a/b/c').href;
out.defaultPort = new URL('https://h.io:443/').href;
try { new URL('not a url'); out.bad = 'parsed'; } catch (e) { out.bad = e instanceof TypeError; }
const bytes = new TextEncoder().encode('héllo 👋');
out.bytes = [Array.isArray(bytes), bytes.length, new TextDecoder().decode(bytes)];
out.b64 = [btoa('hello'), atob('aGVsbG8='), atob(btoa('\u00ff\u0001'))];
const cyc = { d: new Date(0), m: new Map([['k', 1]]), s: new Set([1, 2]) }; cyc.self = cyc;
const c = structuredClone(cyc);
out.clone = [c !== cyc, c.self === c, c.d.getTime(), c.m.get('k'), c.s.has(2)];
const ids = [crypto.randomUUID(), crypto.randomUUID()];
out.uuid = ids;
out.hidden = [typeof ArrayBuffer, typeof Uint8Array, typeof SharedArrayBuffer, typeof WebAssembly, typeof DataView];
console.log('PROBE ' + JSON.stringify(out));

on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot) return;
  const m = ctx.msg.content;
  if (m === 'timer') { setTimeout(() => ctx.reply('timer fired'), 50); }
  if (m === 'cleared') { const t = setTimeout(() => ctx.reply('should not'), 10); clearTimeout(t); setTimeout(() => ctx.reply('cleared ok'), 30); }
  if (m === 'too long') { try { setTimeout(() => {}, 60000); } catch (e) { await ctx.reply(e.name + ': ' + e.message); } }
  if (m === 'spin later') { setTimeout(() => { while (true) {} }, 10); }
  if (m === 'uuid') { await ctx.reply(crypto.randomUUID()); }
});
"""


def test_web_globals_behave(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Web globals")
    assert deploy_files(stack, g["id"], {"src/main.ts": PROBE})[0] == 200
    out = json.loads(stack.wait_log(g["id"], "PROBE ")["message"][6:])
    assert out["url"] == [
        "https:",
        "User",
        "example.com",
        "8080",
        "example.com:8080",
        "/a/c",
        "?x=1&y=two%20words",
        "#frag",
        "https://example.com:8080",
        "two words",
    ]
    assert out["href"] == "https://User:pw@example.com:8080/a/c?x=2&y=two+words&z=a%26b#frag"
    assert out["relative"] == "https://h.io/a/d?q"
    assert out["defaultPort"] == "https://h.io/"
    assert out["bad"] is True
    assert out["bytes"] == [True, 11, "héllo 👋"]
    assert out["b64"] == ["aGVsbG8=", "hello", "\u00ff\u0001"]
    assert out["clone"] == [True, True, 0, 1, True]
    uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(uuid.match(x) for x in out["uuid"]) and out["uuid"][0] != out["uuid"][1]
    assert out["hidden"] == ["undefined"] * 5

    for text in ("timer", "cleared", "too long", "uuid", "uuid"):
        emu.user_says(g["channel_id"], g["user_id"], text)
    wait_for(lambda: len(bot_replies(emu, g["channel_id"])) >= 5, message="timer replies")
    got = [m["content"] for m in bot_replies(emu, g["channel_id"])]
    assert "timer fired" in got and "cleared ok" in got and "should not" not in got
    assert "RangeError: setTimeout delay 60000ms exceeds the 3000ms dispatch deadline" in got
    uuids = [x for x in got if uuid.match(x)]
    assert len(uuids) == 2 and uuids[0] != uuids[1] and not set(uuids) & set(out["uuid"])


def test_a_timer_that_spins_is_bounded_by_the_deadline(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Spinning timer")
    assert deploy_files(stack, g["id"], {"src/main.ts": PROBE})[0] == 200
    emu.user_says(g["channel_id"], g["user_id"], "spin later")
    stack.wait_log(g["id"], "messageCreate handler exceeded the 3s dispatch deadline")
    stack.wait_log(g["id"], "isolate restarted after a dispatch timeout")
    emu.user_says(g["channel_id"], g["user_id"], "timer")
    wait_for(
        lambda: [m for m in bot_replies(emu, g["channel_id"]) if m["content"] == "timer fired"], message="works after restart"
    )
