"""The Discord ops end to end: a deployed script calls the ops (through ``rest.*`` and ``__floraOp``), the
real worker runs them through disnake, and the emulator shows what Discord would have received.

One test per op family checks the requests; one per family checks that another guild's channel, thread,
webhook, guild id or interaction token is refused with SCOPE_FORBIDDEN before anything is sent (the only
requests allowed to touch the other guild are the read-only ownership lookups ``GET /channels/{id}`` and
``GET /webhooks/{id}``, which is how the scope is known).
"""

from __future__ import annotations

import json
import re
import time

import pytest
from conftest import bot_replies, deploy_files, emulator_guild, start_flora, stop_flora, wait_for

# Every test script starts with this: step() runs one op and logs its outcome as one line.
HARNESS = r"""
declare const __floraOp: any, on: any, rest: any, embed: any, button: any, label: any, inputText: any,
  textDisplay: any, stringSelect: any;
const op = (name: string, args: any) => __floraOp(name, args);
async function step(n: string, fn: () => Promise<any>, pick: (v: any) => any = (v) => v) {
  try {
    const v = await fn();
    console.log('R ' + JSON.stringify({ n, ok: true, v: v === undefined || v === null ? null : pick(v) }));
    return v;
  } catch (e: any) {
    console.log('R ' + JSON.stringify({ n, ok: false, code: e.code, message: e.message, status: e.status ?? null }));
    return undefined;
  }
}
"""

LOOKUP = re.compile(r"^/channels/\d+$|^/webhooks/\d+(/[^/]+)?$")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One emulator + one `flora serve` for the module; attachment URLs on 127.0.0.1 (the emulator)
    may be downloaded."""
    from flora_dev.emulator import Emulator

    emu = Emulator(token="flora-test-bot-token")
    emu.start()
    server = None
    try:
        server = start_flora(
            emu, tmp_path_factory.mktemp("flora"), FETCH_ALLOWED_PRIVATE_HOSTS="127.0.0.1", RUNTIME_AUTO_DEFER_MS="1000"
        )
        server.emu = emu
        yield server
    finally:
        if server is not None:
            stop_flora(server)
        emu.stop()


def _has_command(emu, guild_id: str, name: str) -> bool:
    return any(
        r["method"] == "PUT"
        and r["path"].endswith(f"/guilds/{guild_id}/commands")
        and r["status"] == 200
        and any(c.get("name") == name for c in (r["json"] or []))
        for r in emu.requests
    )


@pytest.fixture(scope="module")
def victim(stack):
    """Another guild: a channel with a message, a thread, a webhook, and an interaction its own (starter)
    script already answered, whose token stays valid for follow-ups for 15 minutes."""
    emu = stack.emu
    v = emulator_guild(emu, "Victim")
    # the starter registers /hello while loading; events reach it once the load is complete
    stack.wait_log(v["id"], "starter script deployed", 20)
    wait_for(lambda: _has_command(emu, v["id"], "hello"), timeout=20, message="starter commands of the victim")
    v["message"] = emu.user_says(v["channel_id"], v["user_id"], "victim's message")
    v["thread"] = emu.create_thread(v["channel_id"], "victim thread", type=11)
    v["webhook"] = emu.create_webhook(v["channel_id"], "victim hook")
    v["interaction"] = emu.invoke_slash(v["id"], v["channel_id"], v["user_id"], "hello")

    def answered():
        original = emu.interaction(v["interaction"]["id"])["original"]
        return original and original["content"] and not original["flags"] & 128  # answered, not just deferred

    wait_for(answered, message="the victim answered its interaction")
    return v


def deploy(stack, guild_id: str, body: str, **values) -> None:
    # a new guild gets the starter script; deploying while that bootstrap is in flight can lose the deploy
    # (the bootstrap's load lands last), so let it finish first
    stack.wait_log(guild_id, "starter script deployed", 20)
    script = HARNESS + body
    for key, value in values.items():
        script = script.replace(f"@{key}@", json.dumps(value))
    status, out = deploy_files(stack, guild_id, {"src/main.ts": script})
    assert status == 200, out


def results(stack, guild_id: str, tag: str = "go", timeout: float = 15.0) -> dict:
    stack.wait_log(guild_id, f"DONE {tag}", timeout)
    out = {}
    for entry in stack.guild_logs(guild_id):
        if entry["message"].startswith("R "):
            r = json.loads(entry["message"][2:])
            out[r["n"]] = r
    return out


def go(stack, g: dict, tag: str = "go") -> tuple[dict, float]:
    since = time.time()
    trigger = stack.emu.user_says(g["channel_id"], g["user_id"], tag)
    return trigger, since


def assert_ok(res: dict, *names: str) -> None:
    for n in names:
        assert n in res, f"step {n} did not run: {sorted(res)}"
        assert res[n]["ok"], f"step {n} failed: {res[n]}"


def assert_forbidden(res: dict, names: list[str]) -> None:
    for n in names:
        assert n in res, f"step {n} did not run: {sorted(res)}"
        assert res[n]["ok"] is False and res[n]["code"] == "SCOPE_FORBIDDEN", f"{n}: {res[n]}"


def assert_victim_untouched(emu, since: float, victim: dict, *extra_ids: str) -> None:
    ids = [
        victim["id"],
        victim["channel_id"],
        victim["thread"]["id"],
        victim["webhook"]["id"],
        victim["webhook"]["token"],
        victim["message"]["id"],
        victim["interaction"]["id"],
        victim["interaction"]["token"],
        *extra_ids,
    ]
    touched = [r for r in emu.find_requests(None, None, since=since) if any(i in r["path"] for i in ids)]
    bad = [
        (r["method"], r["path"], r["status"], round(r["time"] - since, 3))
        for r in touched
        if not (r["method"] == "GET" and LOOKUP.match(r["path"]))
    ]
    assert not bad, f"requests reached the other guild: {bad}"


def one(emu, method: str, pattern: str, since: float) -> dict:
    found = emu.find_requests(method, pattern, since=since)
    assert len(found) == 1, f"{method} {pattern}: {[(r['method'], r['path'], r['status']) for r in found]}"
    return found[0]


# =====================================================================================
# messages
# =====================================================================================

MESSAGES_SCRIPT = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const c = ctx.msg.channelId;
  const sent = await step('send', () => rest.sendMessage({
    channelId: c, content: 'hello', replyTo: ctx.msg.id, tts: false, flags: 4 | 1024,
    embeds: [embed().setTitle('T').setFooter('f').setImage('').setTimestamp('2024-01-01T00:00:00Z').addField('a', 'b').toJSON()],
    components: [button().setCustomId('b1').setLabel('B')],
    allowedMentions: { parse: ['users', 'bogus'], roles: ['1', 'x'], repliedUser: false },
    attachments: [{ Base64: { data: 'aGVsbG8=', filename: 'hello.txt', description: 'greeting' } },
                  { url: { url: @URL@ } }],
  }), (m) => ({ id: m.id, attachments: m.attachments.map((a: any) => [a.filename, a.size]) }));
  await step('edit', () => rest.editMessage({ channelId: c, messageId: sent.id, content: 'edited' }));
  await step('fetch', () => rest.fetchMessage({ channelId: c, messageId: sent.id }), (m) => m.content);
  await step('fetchMany', () => rest.fetchMessages({ channelId: c, limit: 200, around: sent.id }), (l) => l.length);
  const a = await rest.sendMessage({ channelId: c, content: 'a' });
  const b = await rest.sendMessage({ channelId: c, content: 'b' });
  await step('bulk', () => rest.bulkDeleteMessages({ channelId: c, messageIds: [a.id, b.id] }));
  await step('delete', () => op('op_delete_message', { channelId: c, messageId: sent.id }));
  const news = await rest.sendMessage({ channelId: @NEWS@, content: 'news' });
  await step('crosspost', () => rest.crosspostMessage({ channelId: @NEWS@, messageId: news.id }), (m) => m.flags);
  await step('badSnowflake', () => rest.sendMessage({ channelId: 'abc', content: 'x' }));
  await step('empty', () => rest.sendMessage({ channelId: c, content: '' }));
  await step('privateUrl', () => rest.sendMessage({ channelId: c, attachments: [{ Url: { url: 'http://10.1.2.3/x.png' } }] }));
  await step('badBase64', () => rest.sendMessage({ channelId: c, attachments: [{ Base64: { data: '***', filename: 'x' } }] }));
  await step('twoSelects', () => rest.sendMessage({ channelId: c, components: [{ type: 1, components: [
    { type: 3, custom_id: 's1', options: [{ label: 'a', value: 'a' }] }, { type: 5, custom_id: 's2' }] }] }));
  await step('sectionNull', () => rest.sendMessage({ channelId: c, flags: 32768, components: [
    { type: 9, components: [{ type: 10, content: 'x' }], accessory: null }] }));
  await step('badTimestamp', () => rest.sendMessage({ channelId: c, embeds: [{ title: 't', timestamp: 'yesterday' }] }));
  console.log('DONE go');
});
"""


def test_message_ops_reach_discord_with_flora_shapes(stack):
    emu = stack.emu
    g = emulator_guild(emu, "Messages")
    news = emu.create_channel(g["id"], "news", type=5)
    upload = emu.user_says(g["channel_id"], g["user_id"], "a picture", attachments=[("cat.png", b"\x89PNG" + b"x" * 96)])
    url = upload["attachments"][0]["url"]
    deploy(stack, g["id"], MESSAGES_SCRIPT, URL=url, NEWS=news["id"])
    c = g["channel_id"]
    emu.inject_status("GET", rf"^/channels/{c}/messages/\d+$", 503, count=2)  # the fetch is retried (ReadOnly)
    trigger, since = go(stack, g)
    res = results(stack, g["id"])

    assert_ok(res, "send", "edit", "fetch", "fetchMany", "bulk", "delete", "crosspost")
    assert res["send"]["v"]["attachments"] == [["hello.txt", 5], ["cat.png", 100]]
    post = emu.find_requests("POST", rf"^/channels/{c}/messages$", since=since)[0]
    assert post["headers"]["Content-Type"].startswith("multipart/form-data")
    assert [(f["field"], f["filename"], f["size"]) for f in post["files"]] == [
        ("files[0]", "hello.txt", 5),
        ("files[1]", "cat.png", 100),
    ]
    body = post["json"]
    assert body["content"] == "hello" and body["tts"] is False and body["flags"] == 4  # unknown flag bit dropped
    assert body["attachments"] == [
        {"id": 0, "filename": "hello.txt", "description": "greeting"},
        {"id": 1, "filename": "cat.png"},
    ]
    assert body["embeds"] == [
        {
            "title": "T",
            "footer": {"text": "f"},
            "timestamp": "2024-01-01T00:00:00Z",
            "fields": [{"name": "a", "value": "b", "inline": False}],
        }
    ]
    assert body["components"] == [{"type": 1, "components": [{"type": 2, "style": 1, "custom_id": "b1", "label": "B"}]}]
    assert body["allowed_mentions"] == {"parse": ["users"], "roles": ["1"], "replied_user": False}
    assert body["message_reference"] == {"message_id": trigger["id"], "channel_id": c, "fail_if_not_exists": False}

    sent_id = res["send"]["v"]["id"]
    assert one(emu, "PATCH", rf"^/channels/{c}/messages/{sent_id}$", since)["json"] == {"content": "edited"}
    fetches = emu.find_requests("GET", rf"^/channels/{c}/messages/{sent_id}$", since=since)
    assert [r["status"] for r in fetches] == [503, 503, 200] and res["fetch"]["v"] == "edited"
    many = one(emu, "GET", rf"^/channels/{c}/messages$", since)
    assert many["query"] == {"limit": "100", "around": sent_id}  # u8 accepted, clamped to Discord's 100
    bulk = one(emu, "POST", rf"^/channels/{c}/messages/bulk-delete$", since)["json"]["messages"]
    assert len(bulk) == 2 and all(emu.get_message(m) is None for m in bulk)
    one(emu, "DELETE", rf"^/channels/{c}/messages/{sent_id}$", since)
    assert res["crosspost"]["v"] & 1
    assert emu.get_message(sent_id) is None

    assert res["badSnowflake"]["code"] == "INVALID_INPUT"
    assert res["badSnowflake"]["message"] == "Invalid input for channel_id: invalid snowflake"
    assert (
        res["empty"]["message"] == "Invalid input for message: message must include content, embeds, attachments, or components"
    )
    assert res["privateUrl"]["code"] == "INVALID_INPUT"
    assert res["privateUrl"]["message"].startswith("Invalid input for attachments[].url: ")
    assert res["badBase64"]["message"] == "Invalid input for attachments[].data: invalid base64"
    assert res["twoSelects"]["message"] == "Action row supports only one select menu"
    assert res["sectionNull"]["message"] == "Component missing numeric type"
    assert res["badTimestamp"]["message"] == "Invalid input for embeds[].timestamp: expected an ISO 8601 timestamp"
    # the refused sends never reached the emulator: only the first send, a, b and the news post
    assert len(emu.find_requests("POST", r"^/channels/\d+/messages$", since=since)) == 4


SCOPE_MESSAGES = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const c = @C@, m = @M@;
  await step('send', () => rest.sendMessage({ channelId: c, content: 'pwned',
                                              attachments: [{ Base64: { data: 'aGk=', filename: 'x.txt' } }] }));
  await step('edit', () => rest.editMessage({ channelId: c, messageId: m, content: 'pwned' }));
  await step('delete', () => rest.deleteMessage({ channelId: c, messageId: m }));
  await step('bulk', () => rest.bulkDeleteMessages({ channelId: c, messageIds: [m, '1'] }));
  await step('crosspost', () => rest.crosspostMessage({ channelId: c, messageId: m }));
  await step('fetch', () => rest.fetchMessage({ channelId: c, messageId: m }));
  await step('fetchMany', () => rest.fetchMessages({ channelId: c }));
  await step('thread', () => rest.sendMessage({ channelId: @T@, content: 'pwned' }));
  console.log('DONE go');
});
"""


def test_message_ops_refuse_another_guilds_channel(stack, victim):
    emu = stack.emu
    g = emulator_guild(emu, "Messages attacker")
    deploy(stack, g["id"], SCOPE_MESSAGES, C=victim["channel_id"], M=victim["message"]["id"], T=victim["thread"]["id"])
    _, since = go(stack, g)
    res = results(stack, g["id"])
    assert_forbidden(res, ["send", "edit", "delete", "bulk", "crosspost", "fetch", "fetchMany", "thread"])
    assert res["send"]["message"] == "Forbidden: channel is outside runtime scope"
    assert_victim_untouched(emu, since, victim)
    assert emu.get_message(victim["message"]["id"])["content"] == "victim's message"


# =====================================================================================
# reactions
# =====================================================================================

REACTIONS_SCRIPT = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const c = ctx.msg.channelId, m = @TARGET@;
  await step('add', () => rest.addReaction({ channelId: c, messageId: m, emoji: '👍' }));
  await step('addCustom', () => rest.addReaction({ channelId: c, messageId: m, emoji: '<:blob:123456789012345678>' }));
  await step('addAnimated', () => rest.addReaction({ channelId: c, messageId: m, emoji: '<a:dance:223456789012345678>' }));
  await step('removeOwn', () => rest.removeReaction({ channelId: c, messageId: m, emoji: '👍' }));
  await step('removeUser', () => rest.removeReaction({ channelId: c, messageId: m, emoji: '🔥', userId: @USER@ }));
  await step('clearEmoji', () => rest.clearReactions({ channelId: c, messageId: m, emoji: '<:blob:123456789012345678>' }));
  await step('clearAll', () => rest.clearReactions({ channelId: c, messageId: m }));
  await step('badEmoji', () => rest.addReaction({ channelId: c, messageId: m, emoji: '<:broken>' }));
  await step('noEmoji', () => rest.addReaction({ channelId: c, messageId: m }));
  console.log('DONE go');
});
"""


def test_reaction_ops(stack):
    emu = stack.emu
    g = emulator_guild(emu, "Reactions")
    c = g["channel_id"]
    target = emu.user_says(c, g["user_id"], "react to me")
    emu.react(c, target["id"], g["user_id"], "🔥")
    deploy(stack, g["id"], REACTIONS_SCRIPT, TARGET=target["id"], USER=g["user_id"])
    _, since = go(stack, g)
    res = results(stack, g["id"])
    assert_ok(res, "add", "addCustom", "addAnimated", "removeOwn", "removeUser", "clearEmoji", "clearAll")
    base = f"/channels/{c}/messages/{target['id']}/reactions"
    seen = [(r["method"], r["path"]) for r in emu.find_requests(None, "/reactions", since=since)]
    assert seen == [
        ("PUT", f"{base}/👍/@me"),
        ("PUT", f"{base}/blob:123456789012345678/@me"),
        ("PUT", f"{base}/dance:223456789012345678/@me"),
        ("DELETE", f"{base}/👍/@me"),
        ("DELETE", f"{base}/🔥/{g['user_id']}"),
        ("DELETE", f"{base}/blob:123456789012345678"),
        ("DELETE", base),
    ]
    assert all(r["status"] == 204 for r in emu.find_requests(None, "/reactions", since=since))
    assert emu.get_message(target["id"])["reactions"] == []
    assert res["badEmoji"]["code"] == "INVALID_INPUT" and res["badEmoji"]["message"].startswith("Invalid input for emoji:")
    assert res["noEmoji"]["code"] == "INVALID_INPUT"


SCOPE_REACTIONS = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const c = @C@, m = @M@;
  await step('add', () => rest.addReaction({ channelId: c, messageId: m, emoji: '👍' }));
  await step('remove', () => rest.removeReaction({ channelId: c, messageId: m, emoji: '👍', userId: @U@ }));
  await step('clearEmoji', () => rest.clearReactions({ channelId: c, messageId: m, emoji: '👍' }));
  await step('clearAll', () => rest.clearReactions({ channelId: c, messageId: m }));
  console.log('DONE go');
});
"""


def test_reaction_ops_refuse_another_guilds_channel(stack, victim):
    emu = stack.emu
    g = emulator_guild(emu, "Reactions attacker")
    deploy(stack, g["id"], SCOPE_REACTIONS, C=victim["channel_id"], M=victim["message"]["id"], U=victim["user_id"])
    _, since = go(stack, g)
    res = results(stack, g["id"])
    assert_forbidden(res, ["add", "remove", "clearEmoji", "clearAll"])
    assert_victim_untouched(emu, since, victim)


# =====================================================================================
# pins
# =====================================================================================

PINS_SCRIPT = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const c = ctx.msg.channelId;
  await step('pin', () => rest.pinMessage({ channelId: c, messageId: ctx.msg.id }));
  await step('pinned', () => rest.fetchMessage({ channelId: c, messageId: ctx.msg.id }), (m) => m.pinned);
  await step('unpin', () => rest.unpinMessage({ channelId: c, messageId: ctx.msg.id }));
  await step('badId', () => rest.pinMessage({ channelId: c, messageId: '12a' }));
  console.log('DONE go');
});
"""


def test_pin_ops(stack):
    emu = stack.emu
    g = emulator_guild(emu, "Pins")
    deploy(stack, g["id"], PINS_SCRIPT)
    trigger, since = go(stack, g)
    res = results(stack, g["id"])
    assert_ok(res, "pin", "pinned", "unpin")
    assert res["pinned"]["v"] is True
    path = f"^/channels/{g['channel_id']}/pins/{trigger['id']}$"
    assert one(emu, "PUT", path, since)["status"] == 204
    assert one(emu, "DELETE", path, since)["status"] == 204
    assert emu.get_message(trigger["id"])["pinned"] is False
    assert res["badId"]["message"] == "Invalid input for message_id: invalid snowflake"


SCOPE_PINS = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  await step('pin', () => rest.pinMessage({ channelId: @C@, messageId: @M@ }));
  await step('unpin', () => op('op_unpin_message', { channelId: @C@, messageId: @M@ }));
  console.log('DONE go');
});
"""


def test_pin_ops_refuse_another_guilds_channel(stack, victim):
    emu = stack.emu
    g = emulator_guild(emu, "Pins attacker")
    deploy(stack, g["id"], SCOPE_PINS, C=victim["channel_id"], M=victim["message"]["id"])
    _, since = go(stack, g)
    assert_forbidden(results(stack, g["id"]), ["pin", "unpin"])
    assert_victim_untouched(emu, since, victim)
    assert emu.get_message(victim["message"]["id"])["pinned"] is False


# =====================================================================================
# threads
# =====================================================================================

THREADS_SCRIPT = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const c = ctx.msg.channelId;
  const t = await step('create', () => rest.createThread({ channelId: c, payload: { name: 't1', type: 11 }, reason: 'topic' }),
                      (t) => ({ id: t.id, parent: t.parent_id }));
  await step('fromMessage', () => rest.createThreadFromMessage({ channelId: c, messageId: ctx.msg.id,
                                                                  payload: { name: 't2', auto_archive_duration: 60 } }),
             (t) => t.id);
  await step('join', () => rest.joinThread({ threadId: t.id }));
  await step('add', () => rest.addThreadMember({ threadId: t.id, userId: @USER@ }));
  await step('remove', () => rest.removeThreadMember({ threadId: t.id, userId: @USER@ }));
  await step('leave', () => rest.leaveThread({ threadId: t.id }));
  await step('noPayload', () => rest.createThread({ channelId: c }));
  await step('badThread', () => rest.joinThread({ threadId: 'x' }));
  console.log('DONE go');
});
"""


def test_thread_ops(stack):
    emu = stack.emu
    g = emulator_guild(emu, "Threads")
    c = g["channel_id"]
    deploy(stack, g["id"], THREADS_SCRIPT, USER=g["user_id"])
    trigger, since = go(stack, g)
    res = results(stack, g["id"])
    assert_ok(res, "create", "fromMessage", "join", "add", "remove", "leave")
    t = res["create"]["v"]["id"]
    assert res["create"]["v"]["parent"] == c and res["fromMessage"]["v"] == trigger["id"]
    create = one(emu, "POST", rf"^/channels/{c}/threads$", since)
    assert create["json"] == {"name": "t1", "type": 11} and create["headers"]["X-Audit-Log-Reason"] == "topic"
    assert one(emu, "POST", rf"^/channels/{c}/messages/{trigger['id']}/threads$", since)["json"] == {
        "name": "t2",
        "auto_archive_duration": 60,
    }
    members = [(r["method"], r["path"]) for r in emu.find_requests(None, "/thread-members/", since=since)]
    assert members == [
        ("PUT", f"/channels/{t}/thread-members/@me"),
        ("PUT", f"/channels/{t}/thread-members/{g['user_id']}"),
        ("DELETE", f"/channels/{t}/thread-members/{g['user_id']}"),
        ("DELETE", f"/channels/{t}/thread-members/@me"),
    ]
    assert not emu.find_requests("GET", rf"^/channels/{t}$", since=since)  # the created thread's guild was remembered
    assert res["noPayload"]["message"] == "Invalid input for payload: expected an object"
    assert res["badThread"]["message"] == "Invalid input for thread_id: invalid snowflake"


SCOPE_THREADS = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const t = @T@;
  await step('join', () => rest.joinThread({ threadId: t }));
  await step('leave', () => rest.leaveThread({ threadId: t }));
  await step('add', () => rest.addThreadMember({ threadId: t, userId: @U@ }));
  await step('remove', () => rest.removeThreadMember({ threadId: t, userId: @U@ }));
  await step('create', () => rest.createThread({ channelId: @C@, payload: { name: 'x', type: 11 } }));
  await step('fromMessage', () => rest.createThreadFromMessage({ channelId: @C@, messageId: @M@, payload: { name: 'x' } }));
  console.log('DONE go');
});
"""


def test_thread_ops_refuse_another_guilds_thread(stack, victim):
    emu = stack.emu
    g = emulator_guild(emu, "Threads attacker")
    deploy(
        stack,
        g["id"],
        SCOPE_THREADS,
        T=victim["thread"]["id"],
        U=victim["user_id"],
        C=victim["channel_id"],
        M=victim["message"]["id"],
    )
    _, since = go(stack, g)
    res = results(stack, g["id"])
    assert_forbidden(res, ["join", "leave", "add", "remove", "create", "fromMessage"])
    assert res["join"]["message"] == "Forbidden: thread is outside runtime scope"
    assert_victim_untouched(emu, since, victim)


# =====================================================================================
# channels
# =====================================================================================

CHANNELS_SCRIPT = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const g = ctx.msg.guildId;
  const ch = await step('create', () => rest.createChannel({ guildId: g, payload: { name: 'made', type: 0, topic: 'first' },
                                                             reason: 'needed a room' }), (c) => ({ id: c.id, guild: c.guild_id }));
  await step('edit', () => rest.editChannel({ channelId: ch.id, payload: { topic: 'second' }, reason: 'retitle' }), (c) => c.topic);
  await step('send', () => rest.sendMessage({ channelId: ch.id, content: 'in the new room' }), (m) => m.channel_id);
  await step('delete', () => rest.deleteChannel({ channelId: ch.id, reason: 'done' }), (c) => c.id);
  await step('afterDelete', () => rest.sendMessage({ channelId: ch.id, content: 'gone' }));
  await step('badPayload', () => rest.editChannel({ channelId: ctx.msg.channelId, payload: 'topic' }));
  await step('longReason', () => rest.deleteChannel({ channelId: ctx.msg.channelId, reason: 'x'.repeat(513) }));
  console.log('DONE go');
});
"""


def test_channel_ops(stack):
    emu = stack.emu
    g = emulator_guild(emu, "Channels")
    deploy(stack, g["id"], CHANNELS_SCRIPT)
    _, since = go(stack, g)
    res = results(stack, g["id"])
    assert_ok(res, "create", "edit", "send", "delete")
    new = res["create"]["v"]["id"]
    assert res["create"]["v"]["guild"] == g["id"]
    create = one(emu, "POST", rf"^/guilds/{g['id']}/channels$", since)
    assert create["json"] == {"name": "made", "type": 0, "topic": "first"}
    assert create["headers"]["X-Audit-Log-Reason"] == "needed a room"
    edit = one(emu, "PATCH", rf"^/channels/{new}$", since)
    assert edit["json"] == {"topic": "second"} and edit["headers"]["X-Audit-Log-Reason"] == "retitle"
    assert res["edit"]["v"] == "second" and res["send"]["v"] == new
    assert one(emu, "DELETE", rf"^/channels/{new}$", since)["headers"]["X-Audit-Log-Reason"] == "done"
    # the new channel's guild came from the create answer: no lookup before the send; after the delete
    # the cache forgot it, so the lookup finds nothing
    lookups = emu.find_requests("GET", rf"^/channels/{new}$", since=since)
    assert [r["status"] for r in lookups] == [404]
    assert res["afterDelete"]["code"] == "DISCORD_HTTP_ERROR" and res["afterDelete"]["status"] == 404
    assert res["badPayload"]["message"] == "Invalid input for payload: expected an object"
    assert res["longReason"]["message"] == "Invalid input for reason: must be 512 or fewer characters"


SCOPE_CHANNELS = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  await step('create', () => rest.createChannel({ guildId: @G@, payload: { name: 'evil' } }));
  await step('edit', () => rest.editChannel({ channelId: @C@, payload: { name: 'evil' } }));
  await step('delete', () => rest.deleteChannel({ channelId: @C@ }));
  await step('deleteThread', () => rest.deleteChannel({ channelId: @T@ }));
  console.log('DONE go');
});
"""


def test_channel_ops_refuse_another_guild(stack, victim):
    emu = stack.emu
    g = emulator_guild(emu, "Channels attacker")
    deploy(stack, g["id"], SCOPE_CHANNELS, G=victim["id"], C=victim["channel_id"], T=victim["thread"]["id"])
    _, since = go(stack, g)
    res = results(stack, g["id"])
    assert_forbidden(res, ["create", "edit", "delete", "deleteThread"])
    assert res["create"]["message"] == "Forbidden: guild is outside runtime scope"
    assert_victim_untouched(emu, since, victim)
    assert emu.channel(victim["channel_id"])["name"] == "general"


# =====================================================================================
# members, roles, bans
# =====================================================================================

MEMBERS_SCRIPT = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const g = ctx.msg.guildId, u = @USER@, r = @ROLE@;
  await step('addRole', () => rest.addMemberRole({ guildId: g, userId: u, roleId: r, reason: 'promote' }));
  await step('removeRole', () => rest.removeMemberRole({ guildId: g, userId: u, roleId: r }));
  await step('addRoleAgain', () => op('op_add_member_role', { guildId: g, userId: u, roleId: r }));
  await step('edit', () => rest.editMember({ guildId: g, userId: u, payload: { nick: 'Ally' }, reason: 'rename' }), (m) => m.nick);
  await step('editMe', () => rest.editCurrentMember({ guildId: g, payload: { nick: 'Botty' } }), (m) => m.nick);
  await step('kick', () => rest.kickMember({ guildId: g, userId: @KICK@, reason: 'bye' }));
  await step('ban', () => rest.banMember({ guildId: g, userId: @BAN@, deleteMessageSeconds: 3600, reason: 'spam' }));
  await step('unban', () => rest.unbanMember({ guildId: g, userId: @BAN@, reason: 'forgiven' }));
  await step('banDefault', () => rest.banMember({ guildId: g, userId: @BAN@ }));
  await step('badSeconds', () => rest.banMember({ guildId: g, userId: @BAN@, deleteMessageSeconds: -1 }));
  await step('badRole', () => rest.addMemberRole({ guildId: g, userId: u, roleId: 'admin' }));
  await step('foreignRole', () => rest.addMemberRole({ guildId: g, userId: u, roleId: @FOREIGN_ROLE@ }));
  console.log('DONE go');
});
"""


def test_member_role_and_ban_ops(stack, victim):
    emu = stack.emu
    g = emulator_guild(emu, "Members")
    role = emu.create_role(g["id"], "helper")
    foreign_role = emu.create_role(victim["id"], "victim role")
    kick = emu.create_user("kickme")
    ban = emu.create_user("banme")
    emu.add_member(g["id"], kick["id"])
    emu.add_member(g["id"], ban["id"])
    deploy(
        stack,
        g["id"],
        MEMBERS_SCRIPT,
        USER=g["user_id"],
        ROLE=role["id"],
        KICK=kick["id"],
        BAN=ban["id"],
        FOREIGN_ROLE=foreign_role["id"],
    )
    _, since = go(stack, g)
    res = results(stack, g["id"])
    assert_ok(res, "addRole", "removeRole", "addRoleAgain", "edit", "editMe", "kick", "ban", "unban", "banDefault")
    gid, uid = g["id"], g["user_id"]
    roles = emu.find_requests(None, rf"^/guilds/{gid}/members/{uid}/roles/{role['id']}$", since=since)
    assert [(r["method"], r["headers"].get("X-Audit-Log-Reason")) for r in roles] == [
        ("PUT", "promote"),
        ("DELETE", None),
        ("PUT", None),
    ]
    edit = one(emu, "PATCH", rf"^/guilds/{gid}/members/{uid}$", since)
    assert edit["json"] == {"nick": "Ally"} and edit["headers"]["X-Audit-Log-Reason"] == "rename"
    assert one(emu, "PATCH", rf"^/guilds/{gid}/members/@me$", since)["json"] == {"nick": "Botty"}
    assert res["edit"]["v"] == "Ally" and res["editMe"]["v"] == "Botty"
    assert one(emu, "DELETE", rf"^/guilds/{gid}/members/{kick['id']}$", since)["headers"]["X-Audit-Log-Reason"] == "bye"
    bans = emu.find_requests("PUT", rf"^/guilds/{gid}/bans/{ban['id']}$", since=since)
    assert [(r["json"], r["headers"].get("X-Audit-Log-Reason")) for r in bans] == [
        ({"delete_message_seconds": 3600}, "spam"),
        ({"delete_message_seconds": 0}, None),
    ]
    assert one(emu, "DELETE", rf"^/guilds/{gid}/bans/{ban['id']}$", since)["headers"]["X-Audit-Log-Reason"] == "forgiven"
    member = emu.member(gid, uid)
    assert role["id"] in member["roles"] and member["nick"] == "Ally"
    assert (
        res["badSeconds"]["message"] == "Invalid input for delete_message_seconds: expected an integer between 0 and 4294967295"
    )
    assert res["badRole"]["message"] == "Invalid input for role_id: invalid snowflake"
    # a role of another guild is resolved by Discord inside this guild: Unknown Role, nothing happens there
    assert res["foreignRole"]["code"] == "DISCORD_HTTP_ERROR" and res["foreignRole"]["status"] == 404
    assert foreign_role["id"] not in emu.member(gid, uid)["roles"]


SCOPE_MEMBERS = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const g = @G@, u = @U@;
  await step('kick', () => rest.kickMember({ guildId: g, userId: u }));
  await step('ban', () => rest.banMember({ guildId: g, userId: u }));
  await step('unban', () => rest.unbanMember({ guildId: g, userId: u }));
  await step('addRole', () => rest.addMemberRole({ guildId: g, userId: u, roleId: g }));
  await step('removeRole', () => rest.removeMemberRole({ guildId: g, userId: u, roleId: g }));
  await step('edit', () => rest.editMember({ guildId: g, userId: u, payload: { nick: 'pwned' } }));
  await step('editMe', () => rest.editCurrentMember({ guildId: g, payload: { nick: 'pwned' } }));
  console.log('DONE go');
});
"""


def test_member_ops_refuse_another_guild(stack, victim):
    emu = stack.emu
    g = emulator_guild(emu, "Members attacker")
    deploy(stack, g["id"], SCOPE_MEMBERS, G=victim["id"], U=victim["user_id"])
    _, since = go(stack, g)
    assert_forbidden(results(stack, g["id"]), ["kick", "ban", "unban", "addRole", "removeRole", "edit", "editMe"])
    assert_victim_untouched(emu, since, victim)
    assert emu.member(victim["id"], victim["user_id"])["nick"] is None


# =====================================================================================
# guild commands and permissions
# =====================================================================================

COMMANDS_SCRIPT = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const g = ctx.msg.guildId;
  const list = [{ name: 'alpha', description: 'first' }];
  await step('upsert1', () => rest.upsertGuildCommands({ guildId: g, commands: list }));
  await step('upsert2', () => rest.upsertGuildCommands({ guildId: g, commands: list }));
  const cmd = await step('create', () => rest.createGuildCommand({ guildId: g, command: { name: 'beta', description: 'second',
    options: [{ name: 'n', description: 'a number', type: 'integer', required: true }, { name: 's', description: 'text' }] } }),
    (c) => ({ id: c.id, options: c.options.map((o: any) => [o.name, o.type]) }));
  await step('list', () => rest.getGuildCommands({ guildId: g }), (l) => l.map((c: any) => c.name).sort());
  await step('get', () => rest.getGuildCommand({ guildId: g, commandId: cmd.id }), (c) => c.name);
  await step('edit', () => rest.editGuildCommand({ guildId: g, commandId: cmd.id, command: { name: 'beta', description: 'changed' } }),
             (c) => c.description);
  await step('editPerms', () => rest.editGuildCommandPermissions({ guildId: g, commandId: cmd.id,
                                                                    permissions: [{ id: g, type: 1, permission: true }] }));
  await step('allPerms', () => rest.getGuildCommandsPermissions({ guildId: g }));
  await step('perms', () => rest.getGuildCommandPermissions({ guildId: g, commandId: cmd.id }));
  await step('delete', () => rest.deleteGuildCommand({ guildId: g, commandId: cmd.id }));
  await step('upsert3', () => rest.upsertGuildCommands({ guildId: g, commands: list }));
  await step('noDescription', () => rest.createGuildCommand({ guildId: g, command: { name: 'x' } }));
  await step('badCommandId', () => rest.getGuildCommand({ guildId: g, commandId: '-1' }));
  console.log('DONE go');
});
"""


def test_guild_command_ops(stack):
    emu = stack.emu
    g = emulator_guild(emu, "Commands")
    deploy(stack, g["id"], COMMANDS_SCRIPT)
    _, since = go(stack, g)
    res = results(stack, g["id"])
    assert_ok(res, "upsert1", "upsert2", "create", "list", "get", "edit", "allPerms", "delete", "upsert3")
    base = rf"^/applications/{emu.application_id}/guilds/{g['id']}/commands"
    puts = emu.find_requests("PUT", base + "$", since=since)
    # the identical second upsert is skipped; after single-command changes the next one is sent again
    assert [r["json"] for r in puts] == [[{"name": "alpha", "description": "first", "type": 1}]] * 2
    cid = res["create"]["v"]["id"]
    assert one(emu, "POST", base + "$", since)["json"] == {
        "name": "beta",
        "description": "second",
        "type": 1,
        "options": [
            {"name": "n", "description": "a number", "type": 4, "required": True},
            {"name": "s", "description": "text", "type": 3},
        ],
    }
    assert res["create"]["v"]["options"] == [["n", 4], ["s", 3]]
    assert res["list"]["v"] == ["alpha", "beta"] and res["get"]["v"] == "beta" and res["edit"]["v"] == "changed"
    assert one(emu, "PATCH", base + f"/{cid}$", since)["json"] == {"name": "beta", "description": "changed", "type": 1}
    perms = one(emu, "PUT", base + f"/{cid}/permissions$", since)
    assert perms["json"] == {"permissions": [{"id": g["id"], "type": 1, "permission": True}]}
    # bots cannot edit command permissions (Discord wants a user Bearer token): flora's error, with the status
    assert res["editPerms"]["code"] == "DISCORD_HTTP_ERROR" and res["editPerms"]["status"] == 403
    assert res["allPerms"]["v"] == []
    assert res["perms"]["code"] == "DISCORD_HTTP_ERROR" and res["perms"]["status"] == 404
    assert len(emu.find_requests("GET", base + f"/{cid}/permissions$", since=since)) == 1  # 4xx: no retry
    one(emu, "DELETE", base + f"/{cid}$", since)
    assert [c["name"] for c in emu.commands(g["id"])] == ["alpha"]
    assert res["noDescription"]["message"] == "Slash command must have a description"
    assert res["badCommandId"]["message"] == "Invalid input for command_id: invalid snowflake"


SCOPE_COMMANDS = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const g = @G@, c = '123456789012345678', command = { name: 'evil', description: 'evil' };
  await step('upsert', () => rest.upsertGuildCommands({ guildId: g, commands: [command] }));
  await step('create', () => rest.createGuildCommand({ guildId: g, command }));
  await step('edit', () => rest.editGuildCommand({ guildId: g, commandId: c, command }));
  await step('delete', () => rest.deleteGuildCommand({ guildId: g, commandId: c }));
  await step('list', () => rest.getGuildCommands({ guildId: g }));
  await step('get', () => rest.getGuildCommand({ guildId: g, commandId: c }));
  await step('editPerms', () => rest.editGuildCommandPermissions({ guildId: g, commandId: c, permissions: [] }));
  await step('allPerms', () => rest.getGuildCommandsPermissions({ guildId: g }));
  await step('perms', () => rest.getGuildCommandPermissions({ guildId: g, commandId: c }));
  console.log('DONE go');
});
"""


def test_guild_command_ops_refuse_another_guild(stack, victim):
    emu = stack.emu
    g = emulator_guild(emu, "Commands attacker")
    deploy(stack, g["id"], SCOPE_COMMANDS, G=victim["id"])
    _, since = go(stack, g)
    res = results(stack, g["id"])
    assert_forbidden(res, ["upsert", "create", "edit", "delete", "list", "get", "editPerms", "allPerms", "perms"])
    assert_victim_untouched(emu, since, victim)
    assert "evil" not in [c["name"] for c in emu.commands(victim["id"])]


# =====================================================================================
# interactions: responses, the original, follow-ups, modal, update
# =====================================================================================

INTERACTIONS_SCRIPT = r"""
op('op_upsert_guild_commands', { guildId: @GUILD@, commands: [
  { name: 'flow', description: 'defer and follow up' }, { name: 'form', description: 'open a modal' },
  { name: 'slow', description: 'answers after the automatic defer' }] });

function busy(ms: number) { const end = Date.now() + ms; while (Date.now() < end) { /* no timers in the isolate */ } }

on('interactionCreate', async (ctx) => {
  const p = ctx.msg, token = p.interactionToken, id = p.interactionId;
  if (p.commandName === 'flow') {
    await step('defer', () => rest.deferInteractionResponse({ interactionId: id, token }));
    await step('editOriginal', () => rest.editOriginalInteractionResponse({ token, content: 'done thinking',
      attachments: [{ base64: { data: 'cmVwb3J0', filename: 'report.txt' } }] }), (m) => m.attachments.length);
    const f = await step('followup', () => rest.createFollowupMessage({ token, content: 'more', ephemeral: true }), (m) => m.id);
    await step('editFollowup', () => rest.editFollowupMessage({ token, messageId: f.id, content: 'more!' }), (m) => m.content);
    await step('noMessageId', () => rest.editFollowupMessage({ token, content: 'x' }));
    await step('emptyFollowup', () => rest.createFollowupMessage({ token }));
    await step('deleteFollowup', () => rest.deleteFollowupMessage({ token, messageId: f.id }));
    await step('deleteOriginal', () => rest.deleteOriginalInteractionResponse({ token }));
    await step('again', () => rest.sendInteractionResponse({ interactionId: id, token, content: 'twice' }));
    console.log('DONE flow');
  } else if (p.commandName === 'slow') {
    busy(1400);  // RUNTIME_AUTO_DEFER_MS=1000 in this module: the runtime defers meanwhile
    await step('lateReply', () => rest.sendInteractionResponse({ interactionId: id, token, content: 'late but here', ephemeral: true }));
    await step('lateDefer', () => rest.deferInteractionResponse({ interactionId: id, token }));
    await step('lateModal', () => op('op_show_modal', { interactionId: id, token, customId: 'm', title: 'M',
                                                         components: [label('x').setComponent(inputText('x'))] }));
    console.log('DONE slow');
  } else if (p.commandName === 'form') {
    await step('badModal', () => op('op_show_modal', { interactionId: id, token, customId: 'f', title: 'T',
                                                        components: [button().setCustomId('x')] }));
    await step('modal', () => op('op_show_modal', { interactionId: id, token, customId: 'feedback', title: 'Feedback',
      components: [textDisplay('Tell us'), label('Your name').setComponent(inputText('name').setRequired(true)),
                   label('Colour').setDescription('pick one').setComponent(stringSelect('colour').addOptions({ label: 'Red', value: 'red' })),
                   inputText('legacy').setStyle(2)] }));
    console.log('DONE form');
  }
});

on('modalSubmit', async (ctx) => {
  const p = ctx.msg;
  await step('modalReply', () => rest.sendInteractionResponse({ interactionId: p.interactionId, token: p.interactionToken,
                                                               content: 'thanks ' + p.data.custom_id, ephemeral: true }));
  console.log('DONE submit');
});

on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'buttons') return;
  await step('buttons', () => rest.sendMessage({ channelId: ctx.msg.channelId, content: 'pick',
                                                 components: [button().setCustomId('yes').setLabel('Yes')] }), (m) => m.id);
  console.log('DONE buttons');
});

on('componentInteraction', async (ctx) => {
  const p = ctx.msg;
  await step('update', () => rest.updateInteractionResponse({ interactionId: p.interactionId, token: p.interactionToken,
                                                             content: 'picked ' + p.data.custom_id, components: [] }));
  console.log('DONE click');
});
"""


def test_interaction_ops_followups_modal_and_update(stack):
    emu = stack.emu
    g = emulator_guild(emu, "Interactions")
    deploy(stack, g["id"], INTERACTIONS_SCRIPT, GUILD=g["id"])
    wait_for(lambda: _has_command(emu, g["id"], "form"), message="commands registered")
    app = emu.application_id

    since = time.time()
    flow = emu.invoke_slash(g["id"], g["channel_id"], g["user_id"], "flow")
    res = results(stack, g["id"], "flow")
    assert_ok(res, "defer", "editOriginal", "followup", "editFollowup", "deleteFollowup", "deleteOriginal")
    view = emu.interaction(flow["id"])
    assert [r["type"] for r in view["responses"]] == [5]
    # the script answered in time: the runtime's automatic defer stays quiet (one callback only)
    time.sleep(1.1)
    assert len(emu.find_requests("POST", rf"^/interactions/{flow['id']}/", since=since)) == 2  # defer + 'again' (400)
    tok = flow["token"]
    edit = one(emu, "PATCH", rf"^/webhooks/{app}/{re.escape(tok)}/messages/@original$", since)
    assert edit["json"] == {"content": "done thinking", "attachments": [{"id": 0, "filename": "report.txt"}]}
    assert [f["filename"] for f in edit["files"]] == ["report.txt"] and res["editOriginal"]["v"] == 1
    post = one(emu, "POST", rf"^/webhooks/{app}/{re.escape(tok)}$", since)
    assert post["json"] == {"content": "more", "flags": 64} and post["query"] == {"wait": "true"}
    fid = res["followup"]["v"]
    assert one(emu, "PATCH", rf"^/webhooks/{app}/{re.escape(tok)}/messages/{fid}$", since)["json"] == {"content": "more!"}
    one(emu, "DELETE", rf"^/webhooks/{app}/{re.escape(tok)}/messages/{fid}$", since)
    one(emu, "DELETE", rf"^/webhooks/{app}/{re.escape(tok)}/messages/@original$", since)
    assert res["noMessageId"]["message"] == "message_id required to edit followup"
    assert res["emptyFollowup"]["message"] == "Followup must include content, embeds, attachments, or components"
    assert res["again"]["code"] == "DISCORD_HTTP_ERROR" and res["again"]["status"] == 400  # already acknowledged

    # a script slower than RUNTIME_AUTO_DEFER_MS: the runtime deferred, the reply edits the deferred response
    since = time.time()
    slow = emu.invoke_slash(g["id"], g["channel_id"], g["user_id"], "slow")
    res = results(stack, g["id"], "slow")
    assert_ok(res, "lateReply", "lateDefer")
    view = emu.interaction(slow["id"])
    assert [r["type"] for r in view["responses"]] == [5]
    # the reply asked to be ephemeral, but the runtime's defer was public: the public "thinking" message
    # is removed and the reply goes out as an ephemeral follow-up
    assert view["original"] is None
    one(emu, "DELETE", rf"^/webhooks/{app}/{re.escape(slow['token'])}/messages/@original$", since)
    late = one(emu, "POST", rf"^/webhooks/{app}/{re.escape(slow['token'])}$", since)
    assert late["json"]["content"] == "late but here" and late["json"]["flags"] & 64
    assert len(emu.find_requests("POST", rf"^/interactions/{slow['id']}/", since=since)) == 1  # only the runtime's defer
    assert res["lateModal"]["code"] == "DISCORD_HTTP_ERROR" and res["lateModal"]["status"] == 400
    stack.wait_log(g["id"], f"interaction {slow['id']} deferred automatically")

    form = emu.invoke_slash(g["id"], g["channel_id"], g["user_id"], "form")
    res = results(stack, g["id"], "form")
    assert_ok(res, "modal")
    assert res["badModal"]["message"] == "Unsupported modal component type 2"
    modal = emu.interaction(form["id"])["modal"]
    assert modal == {
        "custom_id": "feedback",
        "title": "Feedback",
        "components": [
            {"type": 10, "content": "Tell us"},
            {"type": 18, "label": "Your name", "component": {"type": 4, "custom_id": "name", "style": 1, "required": True}},
            {
                "type": 18,
                "label": "Colour",
                "description": "pick one",
                "component": {"type": 3, "custom_id": "colour", "options": [{"label": "Red", "value": "red"}]},
            },
            {"type": 1, "components": [{"type": 4, "custom_id": "legacy", "style": 2}]},
        ],
    }
    assert emu.interaction(form["id"])["response_type"] == 9

    submit = emu.submit_modal(g["id"], g["channel_id"], g["user_id"], "feedback", {"name": "Ann"})
    res = results(stack, g["id"], "submit")
    assert_ok(res, "modalReply")
    reply = emu.interaction(submit["id"])["responses"][0]
    assert reply == {"type": 4, "data": {"content": "thanks feedback", "flags": 64}}

    emu.user_says(g["channel_id"], g["user_id"], "buttons")
    res = results(stack, g["id"], "buttons")
    msg_id = res["buttons"]["v"]
    click = emu.click_component(g["channel_id"], msg_id, g["user_id"], "yes")
    res = results(stack, g["id"], "click")
    assert_ok(res, "update")
    assert emu.interaction(click["id"])["responses"] == [{"type": 7, "data": {"content": "picked yes", "components": []}}]
    updated = emu.get_message(msg_id)
    assert updated["content"] == "picked yes" and updated["components"] == []


SCOPE_INTERACTIONS = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const id = @ID@, token = @TOKEN@;
  await step('respond', () => rest.sendInteractionResponse({ interactionId: id, token, content: 'pwned' }));
  await step('defer', () => rest.deferInteractionResponse({ interactionId: id, token }));
  await step('update', () => rest.updateInteractionResponse({ interactionId: id, token, content: 'pwned' }));
  await step('modal', () => op('op_show_modal', { interactionId: id, token, customId: 'x', title: 'x',
                                                   components: [label('x').setComponent(inputText('x'))] }));
  await step('editOriginal', () => rest.editOriginalInteractionResponse({ token, content: 'pwned' }));
  await step('deleteOriginal', () => rest.deleteOriginalInteractionResponse({ token }));
  await step('followup', () => rest.createFollowupMessage({ token, content: 'pwned' }));
  await step('editFollowup', () => rest.editFollowupMessage({ token, messageId: '1', content: 'pwned' }));
  await step('deleteFollowup', () => rest.deleteFollowupMessage({ token, messageId: '1' }));
  await step('asWebhook', () => rest.executeWebhook({ webhookId: @APP@, token, content: 'pwned', wait: true }));
  await step('ownIdOtherToken', () => rest.sendInteractionResponse({ interactionId: @ID@, token: 'made-up', content: 'x' }));
  console.log('DONE go');
});
"""


def test_interaction_ops_refuse_another_guilds_interaction(stack, victim):
    """flora let any script answer any interaction whose token it held, follow-ups included."""
    emu = stack.emu
    g = emulator_guild(emu, "Interactions attacker")
    inter = victim["interaction"]
    deploy(stack, g["id"], SCOPE_INTERACTIONS, ID=inter["id"], TOKEN=inter["token"], APP=emu.application_id)
    _, since = go(stack, g)
    res = results(stack, g["id"])
    names = [
        "respond",
        "defer",
        "update",
        "modal",
        "editOriginal",
        "deleteOriginal",
        "followup",
        "editFollowup",
        "deleteFollowup",
        "asWebhook",
        "ownIdOtherToken",
    ]
    assert_forbidden(res, names)
    assert res["followup"]["message"] == "Forbidden: interaction is outside runtime scope"
    assert_victim_untouched(emu, since, victim)
    view = emu.interaction(inter["id"])
    assert view["followups"] == [] and len(view["responses"]) == 1


# =====================================================================================
# webhooks
# =====================================================================================

WEBHOOKS_SCRIPT = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const w = @HOOK@, token = @TOKEN@;
  await step('execute', () => rest.executeWebhook({ webhookId: w, token, content: 'via hook', username: 'Hooky',
    avatarUrl: 'https://example.com/a.png', wait: true, embeds: [{ title: 'e', footer: { iconUrl: 'x' } }] }),
    (m) => ({ id: m.id, channel: m.channel_id, author: m.author.username }));
  await step('thread', () => rest.executeWebhook({ webhookId: w, token, threadId: @THREAD@, content: 'in thread',
    attachments: [{ Base64: { data: 'aGk=', filename: 'hi.txt' } }] }));
  await step('empty', () => rest.executeWebhook({ webhookId: w, token }));
  await step('editWithToken', () => rest.editWebhook({ webhookId: w, token, payload: { name: 'renamed' } }), (h) => h.name);
  await step('edit', () => rest.editWebhook({ webhookId: w, payload: { name: 'again' }, reason: 'tidy' }), (h) => h.name);
  await step('delete', () => rest.deleteWebhook({ webhookId: w, token, reason: 'cleanup' }));
  await step('afterDelete', () => rest.executeWebhook({ webhookId: w, token, content: 'gone' }));
  await step('noToken', () => rest.executeWebhook({ webhookId: w, content: 'x' }));
  console.log('DONE go');
});
"""


def test_webhook_ops(stack):
    emu = stack.emu
    g = emulator_guild(emu, "Webhooks")
    c = g["channel_id"]
    hook = emu.create_webhook(c, "hook")
    thread = emu.create_thread(c, "hook thread", type=11)
    deploy(stack, g["id"], WEBHOOKS_SCRIPT, HOOK=hook["id"], TOKEN=hook["token"], THREAD=thread["id"])
    _, since = go(stack, g)
    res = results(stack, g["id"])
    assert_ok(res, "execute", "thread", "editWithToken", "edit", "delete")
    w, tok = hook["id"], re.escape(hook["token"])
    assert res["execute"]["v"] == {"id": res["execute"]["v"]["id"], "channel": c, "author": "Hooky"}
    assert res["thread"]["v"] is None  # wait: false -> null
    posts = emu.find_requests("POST", rf"^/webhooks/{w}/{tok}$", since=since)
    assert [r["query"] for r in posts[:2]] == [
        {"wait": "true", "with_components": "false"},
        {"wait": "false", "with_components": "false", "thread_id": thread["id"]},
    ]
    assert posts[0]["json"] == {
        "content": "via hook",
        "embeds": [{"title": "e"}],
        "username": "Hooky",
        "avatar_url": "https://example.com/a.png",
    }
    assert posts[1]["json"] == {"content": "in thread", "attachments": [{"id": 0, "filename": "hi.txt"}]}
    assert [f["filename"] for f in posts[1]["files"]] == ["hi.txt"]
    assert [m["content"] for m in emu.messages(thread["id"])] == ["in thread"]
    # the webhook's guild was looked up once (with its token) and then cached
    assert [(r["method"], r["path"]) for r in emu.find_requests("GET", rf"^/webhooks/{w}", since=since)][:1] == [
        ("GET", f"/webhooks/{w}/{hook['token']}")
    ]
    assert res["editWithToken"]["v"] == "renamed" and res["edit"]["v"] == "again"
    assert one(emu, "PATCH", rf"^/webhooks/{w}$", since)["headers"]["X-Audit-Log-Reason"] == "tidy"
    assert one(emu, "DELETE", rf"^/webhooks/{w}/{tok}$", since)["headers"]["X-Audit-Log-Reason"] == "cleanup"
    assert res["afterDelete"]["code"] == "DISCORD_HTTP_ERROR" and res["afterDelete"]["status"] == 404
    assert (
        res["empty"]["message"] == "Invalid input for message: webhook must include content, embeds, attachments, or components"
    )
    assert res["noToken"]["message"] == "Invalid input for token: missing webhook token"


SCOPE_WEBHOOKS = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'go') return;
  const w = @HOOK@, token = @TOKEN@;
  await step('execute', () => rest.executeWebhook({ webhookId: w, token, content: 'pwned', wait: true }));
  await step('edit', () => rest.editWebhook({ webhookId: w, token, payload: { name: 'pwned' } }));
  await step('editNoToken', () => rest.editWebhook({ webhookId: w, payload: { name: 'pwned' } }));
  await step('delete', () => rest.deleteWebhook({ webhookId: w, token }));
  await step('deleteNoToken', () => rest.deleteWebhook({ webhookId: w }));
  await step('ownHookOtherThread', () => rest.executeWebhook({ webhookId: @OWN@, token: @OWN_TOKEN@, threadId: @THREAD@, content: 'pwned' }));
  await step('moveOwnHookThere', () => rest.editWebhook({ webhookId: @OWN@, payload: { channel_id: @CHANNEL@ } }));
  console.log('DONE go');
});
"""


def test_webhook_ops_refuse_another_guilds_webhook(stack, victim):
    emu = stack.emu
    g = emulator_guild(emu, "Webhooks attacker")
    own = emu.create_webhook(g["channel_id"], "own")
    hook = victim["webhook"]
    deploy(
        stack,
        g["id"],
        SCOPE_WEBHOOKS,
        HOOK=hook["id"],
        TOKEN=hook["token"],
        OWN=own["id"],
        OWN_TOKEN=own["token"],
        THREAD=victim["thread"]["id"],
        CHANNEL=victim["channel_id"],
    )
    _, since = go(stack, g)
    res = results(stack, g["id"])
    assert_forbidden(res, ["execute", "edit", "editNoToken", "delete", "deleteNoToken", "ownHookOtherThread", "moveOwnHookThere"])
    assert res["execute"]["message"] == "Forbidden: webhook is outside runtime scope"
    assert res["ownHookOtherThread"]["message"] == "Forbidden: thread is outside runtime scope"
    assert_victim_untouched(emu, since, victim)
    # the own webhook was only looked up: refused before its execute / edit was sent
    assert {r["method"] for r in emu.find_requests(None, rf"^/webhooks/{own['id']}", since=since)} == {"GET"}
    assert emu.in_loop(lambda: emu.server.state.webhooks[hook["id"]]["name"]) == "victim hook"
    assert not bot_replies(emu, victim["channel_id"])


def test_every_op_request_hit_a_route_the_emulator_knows(stack):
    """Runs last in this module: nothing the ops sent fell through to the emulator's unknown-route 404."""
    assert stack.emu.unknown_routes == []
