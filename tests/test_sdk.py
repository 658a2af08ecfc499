"""The JavaScript SDK in a real V8 isolate: the core's events.js, then the SDK (sdk/prelude.js +
sdk/flora.js) and the plugins' extensions of it (kv, secrets, cron, rest), as the plugins register them.

A JS stand-in for the runtime's ``__floraOp`` records every op call (name and
argument object) and answers from per-op mocks, so each test drives
``__floraDispatch`` with flora-shaped payloads and asserts on the ops the SDK
asked for. The starter bot and examples/basic are bundled with the real
bundler and loaded the same way.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest
from py_mini_racer import JSPromiseError, MiniRacer

import flora_sdk
from flora_core.plugins import Plugins
from flora_core.runtime.isolate import EVENTS
from flora_plugins.secrets import placeholders

ROOT = pathlib.Path(__file__).resolve().parent.parent
GUILD = "999000000000000000"

# Stands in for the runtime glue: guild id, op bridge (records calls, answers
# from __mocks), a tiny in-memory KV, and the globals the glue removes.
STUB = r"""
(function (guildId) {
  if (guildId !== null) {
    Object.defineProperty(globalThis, "__floraGuildId", { value: guildId, writable: false });
  }
  for (const name of ["setTimeout", "clearTimeout", "ArrayBuffer", "SharedArrayBuffer", "Uint8Array", "WebAssembly"]) {
    try { delete globalThis[name]; } catch (_) {}
  }
  const kvData = {};
  const kvOps = {
    op_kv_get: (a) => kvData[a.storeName + "/" + a.key] ?? null,
    op_kv_set: (a) => { kvData[a.storeName + "/" + a.key] = a.value; return null; },
    op_kv_delete: (a) => { delete kvData[a.storeName + "/" + a.key]; return null; },
  };
  globalThis.__kvData = kvData;
  globalThis.__calls = [];
  globalThis.__mocks = {};
  globalThis.__floraOp = async function (name, args) {
    __calls.push({ op: name, args: args === undefined ? null : JSON.parse(JSON.stringify(args)) });
    const mock = name in __mocks ? __mocks[name] : kvOps[name];
    const value = typeof mock === "function" ? await mock(args) : mock;
    return value === undefined ? null : value;
  };
})
"""


_SOURCES: list[tuple[str, str]] = []


def sdk_sources() -> list[tuple[str, str]]:
    """The JS sources of the enabled plugins in load order, without the web globals and fetch (tested
    on a real runtime: test_web_globals.py, test_secrets_e2e.py)."""
    if not _SOURCES:
        _SOURCES.extend((n, s) for n, s in Plugins().js_sources() if n not in ("flora:web", "flora:fetch"))
    return _SOURCES


class Sandbox:
    """One isolate with the SDK loaded; helpers to dispatch events and read op calls."""

    def __init__(self, guild_id: str | None = GUILD, sources: list[tuple[str, str]] | None = None):
        self.mr = MiniRacer()
        self.mr.eval(f"({STUB})({json.dumps(guild_id)})")
        self.mr.eval(EVENTS)
        for _, source in sdk_sources() if sources is None else sources:
            self.mr.eval(source)

    def eval(self, code: str):
        return self.mr.eval(code)

    def json(self, expr: str):
        return json.loads(self.mr.eval(f"JSON.stringify({expr})"))

    def run(self, code: str) -> None:
        """Run ``code`` as the body of an async function and wait for it."""
        self.mr.eval(f"(async () => {{ {code} }})()").get(timeout=5)

    def mock(self, op: str, js_value: str) -> None:
        self.mr.eval(f"__mocks[{json.dumps(op)}] = {js_value}")

    def calls(self, op: str | None = None) -> list[dict]:
        calls = self.json("__calls")
        return [c for c in calls if op is None or c["op"] == op]

    def clear(self) -> None:
        self.mr.eval("__calls.length = 0")

    def dispatch(self, event: str, payload: dict) -> list[dict]:
        """Dispatch and return the op calls made by the handlers (logs excluded)."""
        self.clear()
        self.mr.eval(f"__floraDispatch({json.dumps(event)}, {json.dumps(payload)})").get(timeout=5)
        return [c for c in self.calls() if c["op"] != "op_log"]

    def dispatch_error(self, event: str, payload: dict) -> str:
        self.clear()
        with pytest.raises(JSPromiseError) as info:
            self.mr.eval(f"__floraDispatch({json.dumps(event)}, {json.dumps(payload)})").get(timeout=5)
        return str(info.value)

    def logs(self) -> list[dict]:
        return [c["args"] for c in self.calls("op_log")]

    def close(self) -> None:
        self.mr.close()


@pytest.fixture
def sb():
    sandbox = Sandbox()
    yield sandbox
    sandbox.close()


# ---------------------------------------------------------------- payloads


def user(id="200000000000000001", username="alice", bot=False):
    return {"id": id, "username": username, "discriminator": None, "bot": bot}


def member(roles=(), u=None):
    return {
        "user": u or user(),
        "nick": None,
        "avatar": None,
        "roles": list(roles),
        "joinedAt": "2025-01-01T00:00:00+00:00",
        "premiumSince": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "permissions": None,
        "communicationDisabledUntil": None,
    }


def message(content, **over):
    author = over.pop("author", user())
    payload = {
        "id": "300000000000000001",
        "channelId": "400000000000000001",
        "guildId": GUILD,
        "content": content,
        "author": author,
        "member": member(u=author),
    }
    payload.update(over)
    return payload


def interaction(command, options=(), **over):
    payload = {
        "interactionId": "500000000000000001",
        "interactionToken": "tok-1",
        "applicationId": "600000000000000001",
        "guildId": GUILD,
        "channelId": "400000000000000001",
        "user": user(),
        "member": member(),
        "commandName": command,
        "data": {"id": "700000000000000001", "name": command, "type": 1, "options": list(options)},
        "locale": "en-US",
        "guildLocale": "en-US",
    }
    payload.update(over)
    return payload


def opt(name, value, type=3):
    return {"name": name, "type": type, "value": value}


def sub(name, *options, type=1):
    return {"name": name, "type": type, "options": list(options)}


def component(custom_id, **over):
    payload = interaction("", messageId="300000000000000009")
    del payload["commandName"]
    payload["data"] = {"custom_id": custom_id, "component_type": 2}
    payload.update(over)
    return payload


def reaction(**over):
    payload = {
        "userId": "200000000000000001",
        "channelId": "400000000000000001",
        "messageId": "300000000000000005",
        "guildId": GUILD,
        "emoji": {"name": "👍"},
        "burst": False,
    }
    payload.update(over)
    return payload


def only(calls, op):
    assert [c["op"] for c in calls] == [op], calls
    return calls[0]["args"]


# ================================================================ globals

SDK_NAMES = [
    "prefix",
    "slash",
    "createBot",
    "flattenCommands",
    "handleSubcommand",
    "flattenInteractionOptions",
    "hasRole",
    "getSubcommand",
    "getSubcommandGroup",
    "embed",
    "EmbedBuilder",
    "actionRow",
    "button",
    "stringSelect",
    "userSelect",
    "roleSelect",
    "mentionableSelect",
    "channelSelect",
    "inputText",
    "textDisplay",
    "thumbnail",
    "section",
    "mediaGallery",
    "file",
    "separator",
    "container",
    "label",
    "fileUpload",
    "ActionRowBuilder",
    "ButtonBuilder",
    "SelectMenuBuilderBase",
    "StringSelectMenuBuilder",
    "UserSelectMenuBuilder",
    "RoleSelectMenuBuilder",
    "MentionableSelectMenuBuilder",
    "ChannelSelectMenuBuilder",
    "InputTextBuilder",
    "TextDisplayBuilder",
    "ThumbnailBuilder",
    "SectionBuilder",
    "MediaGalleryBuilder",
    "FileBuilder",
    "SeparatorBuilder",
    "ContainerBuilder",
    "LabelBuilder",
    "FileUploadBuilder",
    "ButtonStyle",
    "ButtonStyles",
    "ComponentType",
    "InputTextStyle",
    "InputTextStyles",
    "MessageFlags",
    "kv",
    "store",
    "KvStore",
    "rest",
]


def test_all_56_sdk_names_are_globals_and_flora_members(sb):
    assert len(SDK_NAMES) == 56
    assert sorted(sb.json("Object.keys(flora)")) == sorted(SDK_NAMES)
    same = sb.json(f"{json.dumps(SDK_NAMES)}.filter((n) => globalThis[n] !== undefined && globalThis[n] === flora[n])")
    assert same == SDK_NAMES
    assert sb.eval("ButtonStyles === ButtonStyle && InputTextStyles === InputTextStyle")


def test_prelude_globals(sb):
    for name in ["on", "cron", "registerSlashCommands", "__floraDispatch"]:
        assert sb.eval(f"typeof {name}") == "function", name
    assert sb.eval("typeof secrets.get") == "function"
    assert sb.json("Object.keys(console).sort()") == ["debug", "error", "info", "log", "warn"]
    assert sb.json("__floraHandlers") == {}


def test_sdk_loads_without_guild_id():
    sandbox = Sandbox(guild_id=None)
    try:
        assert sandbox.eval("registerSlashCommands([{name: 'a', description: 'b'}]) === undefined")
        sandbox.eval("createBot({ slashCommands: [slash({ name: 'a', description: 'b', run() {} })] })")
        assert sandbox.calls("op_upsert_guild_commands") == []
    finally:
        sandbox.close()


def test_constants(sb):
    assert sb.json("ButtonStyle") == {"Primary": 1, "Secondary": 2, "Success": 3, "Danger": 4}
    assert sb.json("InputTextStyle") == {"Short": 1, "Paragraph": 2}
    assert sb.json("ComponentType") == {
        "ActionRow": 1,
        "Button": 2,
        "StringSelect": 3,
        "InputText": 4,
        "UserSelect": 5,
        "RoleSelect": 6,
        "MentionableSelect": 7,
        "ChannelSelect": 8,
        "Section": 9,
        "TextDisplay": 10,
        "Thumbnail": 11,
        "MediaGallery": 12,
        "File": 13,
        "Separator": 14,
        "Container": 17,
        "Label": 18,
        "FileUpload": 19,
    }
    assert sb.json("MessageFlags") == {
        "CROSSPOSTED": 1,
        "IS_CROSSPOST": 2,
        "SUPPRESS_EMBEDS": 4,
        "SOURCE_MESSAGE_DELETED": 8,
        "URGENT": 16,
        "HAS_THREAD": 32,
        "EPHEMERAL": 64,
        "LOADING": 128,
        "FAILED_TO_MENTION_SOME_ROLES_IN_THREAD": 256,
        "SUPPRESS_NOTIFICATIONS": 4096,
        "IS_VOICE_MESSAGE": 8192,
        "IS_COMPONENTS_V2": 32768,
    }


# ================================================================ on / dispatch


def test_subs_dirty_is_set_only_for_new_event_names(sb):
    assert sb.eval("__floraSubsDirty") is True
    sb.eval("__floraSubsDirty = false; on('messageCreate', () => {})")
    assert sb.eval("__floraSubsDirty") is True
    sb.eval("__floraSubsDirty = false; on('messageCreate', () => {})")
    assert sb.eval("__floraSubsDirty") is False
    sb.eval("__floraSubsDirty = false; on('reactionAdd', () => {})")
    assert sb.eval("__floraSubsDirty") is True
    assert sorted(sb.json("Object.keys(__floraHandlers)")) == ["messageCreate", "reactionAdd"]
    assert sb.eval("__floraHandlers.messageCreate.length") == 2


def test_handlers_run_in_order_and_a_throw_stops_the_rest(sb):
    sb.eval("""
      globalThis.seen = [];
      on('messageCreate', async () => { seen.push(1) });
      on('messageCreate', () => { seen.push(2); throw new Error('boom') });
      on('messageCreate', () => { seen.push(3) });
    """)
    assert "boom" in sb.dispatch_error("messageCreate", message("hi"))
    assert sb.json("seen") == [1, 2]


def test_handlers_are_awaited_sequentially(sb):
    sb.mock("op_fetch_message", "async () => { seen.push('op'); return {content: 'x'} }")
    sb.eval("""
      globalThis.seen = [];
      on('messageCreate', async () => { seen.push('a1'); await rest.fetchMessage({}); seen.push('a2') });
      on('messageCreate', () => { seen.push('b') });
    """)
    sb.dispatch("messageCreate", message("hi"))
    assert sb.json("seen") == ["a1", "op", "a2", "b"]


def test_dispatch_without_handlers_resolves(sb):
    assert sb.dispatch("messageDelete", {"id": "1", "channelId": "2", "guildId": GUILD}) == []


def test_dispatch_accepts_a_json_string_payload(sb):
    sb.eval("on('messageCreate', (ctx) => ctx.reply(ctx.msg.content))")
    sb.clear()
    sb.eval(f"__floraDispatch('messageCreate', {json.dumps(json.dumps(message('from json')))})").get(timeout=5)
    assert sb.calls("op_send_message")[0]["args"]["content"] == "from json"


def test_ctx_has_msg_reply_edit(sb):
    sb.eval("on('ready', (ctx) => { globalThis.keys = Object.keys(ctx).sort(); globalThis.got = ctx.msg })")
    payload = {"user": user(bot=True), "guildIds": []}
    sb.dispatch("ready", payload)
    assert sb.json("keys") == ["edit", "msg", "reply"]
    assert sb.json("got") == payload


# ================================================================ reply / edit normalisation

REPLY_CASES = [
    # (payload, reply argument (JS), expected op, expected args)
    pytest.param(
        message("hi"),
        "'pong'",
        "op_send_message",
        {"channelId": "400000000000000001", "messageId": "300000000000000001", "content": "pong"},
        id="message-string",
    ),
    pytest.param(
        message("hi"),
        "{content: 'pong', embeds: [{title: 't'}]}",
        "op_send_message",
        {"channelId": "400000000000000001", "messageId": "300000000000000001", "content": "pong", "embeds": [{"title": "t"}]},
        id="message-object-references-trigger",
    ),
    pytest.param(
        message("hi"),
        "{content: 'plain', replyTo: null}",
        "op_send_message",
        {"channelId": "400000000000000001", "content": "plain"},
        id="replyTo-null",
    ),
    pytest.param(
        message("hi"),
        "{content: 'other', replyTo: '42'}",
        "op_send_message",
        {"channelId": "400000000000000001", "content": "other", "messageId": "42"},
        id="replyTo-id",
    ),
    pytest.param(
        message("hi"),
        "{content: 'x', reply_to: '42'}",
        "op_send_message",
        {"channelId": "400000000000000001", "content": "x", "messageId": "300000000000000001"},
        id="reply_to-key-dropped",
    ),
    pytest.param(
        message("hi"),
        "{content: 'x', ephemeral: true}",
        "op_send_message",
        {"channelId": "400000000000000001", "content": "x", "ephemeral": True, "messageId": "300000000000000001"},
        id="ephemeral-passed-to-channel-send",
    ),
    pytest.param(
        message("hi"),
        "42",
        "op_send_message",
        {"channelId": "400000000000000001", "messageId": "300000000000000001", "content": "42"},
        id="number",
    ),
    pytest.param(
        reaction(),
        "'seen'",
        "op_send_message",
        {"channelId": "400000000000000001", "messageId": "300000000000000005", "content": "seen"},
        id="reaction-uses-messageId",
    ),
    pytest.param(
        {"ids": ["1", "2"], "channelId": "400000000000000001", "guildId": GUILD},
        "'bulk'",
        "op_send_message",
        {"channelId": "400000000000000001", "content": "bulk"},
        id="bulk-delete-plain-message",
    ),
    pytest.param(
        interaction("ping"),
        "'pong'",
        "op_send_interaction_response",
        {"interactionId": "500000000000000001", "token": "tok-1", "content": "pong"},
        id="interaction-string",
    ),
    pytest.param(
        interaction("ping"),
        "{content: 'pong', ephemeral: true}",
        "op_send_interaction_response",
        {"interactionId": "500000000000000001", "token": "tok-1", "content": "pong", "ephemeral": True},
        id="interaction-ephemeral",
    ),
    pytest.param(
        {"id": "77", "interactionToken": "tok-2"},
        "'x'",
        "op_send_interaction_response",
        {"interactionId": "77", "token": "tok-2", "content": "x"},
        id="interaction-id-fallback",
    ),
    pytest.param(
        component("btn"),
        "'clicked'",
        "op_send_interaction_response",
        {"interactionId": "500000000000000001", "token": "tok-1", "content": "clicked"},
        id="component-answers-interaction",
    ),
]


@pytest.mark.parametrize("payload, arg, op, expected", REPLY_CASES)
def test_reply_normalisation(sb, payload, arg, op, expected):
    sb.eval(f"on('evt', (ctx) => ctx.reply({arg}))")
    assert only(sb.dispatch("evt", payload), op) == expected


EDIT_CASES = [
    pytest.param(
        message("hi"),
        "'edited'",
        {"channelId": "400000000000000001", "messageId": "300000000000000001", "content": "edited"},
        id="string",
    ),
    pytest.param(
        message("hi"),
        "{flags: MessageFlags.SUPPRESS_EMBEDS}",
        {"channelId": "400000000000000001", "messageId": "300000000000000001", "flags": 4},
        id="object",
    ),
    pytest.param(
        component("btn"),
        "{content: 'done', components: []}",
        {"channelId": "400000000000000001", "messageId": "300000000000000009", "content": "done", "components": []},
        id="component-edits-its-message",
    ),
    pytest.param(
        reaction(), "'r'", {"channelId": "400000000000000001", "messageId": "300000000000000005", "content": "r"}, id="reaction"
    ),
]


@pytest.mark.parametrize("payload, arg, expected", EDIT_CASES)
def test_edit_normalisation(sb, payload, arg, expected):
    sb.eval(f"on('evt', (ctx) => ctx.edit({arg}))")
    assert only(sb.dispatch("evt", payload), "op_edit_message") == expected


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(interaction("ping"), id="interaction"),
        pytest.param({"ids": ["1"], "channelId": "4", "guildId": GUILD}, id="bulk-delete"),
        pytest.param({"user": user(), "guildIds": []}, id="ready"),
    ],
)
def test_edit_without_a_message_throws(sb, payload):
    sb.eval("on('evt', (ctx) => ctx.edit('x'))")
    assert "Message edit requires a message payload" in sb.dispatch_error("evt", payload)
    assert sb.calls("op_edit_message") == []


def test_component_and_modal_payloads_reach_handlers(sb):
    # flora harness: "dispatches component interaction" / "dispatches modal submit"
    sb.eval("""
      on('componentInteraction', (ctx) => ctx.reply(`clicked: ${ctx.msg.data.custom_id}`));
      on('modalSubmit', (ctx) => ctx.reply(`modal: ${ctx.msg.data.custom_id}`));
    """)
    calls = sb.dispatch("componentInteraction", component("btn-confirm"))
    assert reply_text(calls, "op_send_interaction_response") == "clicked: btn-confirm"
    modal = component("feedback-form", messageId=None)
    modal["data"] = {"custom_id": "feedback-form", "components": []}
    calls = sb.dispatch("modalSubmit", modal)
    assert reply_text(calls, "op_send_interaction_response") == "modal: feedback-form"


def test_reply_and_edit_in_one_handler(sb):
    sb.eval("on('messageCreate', async (ctx) => { await ctx.reply('a'); await ctx.edit('b') })")
    calls = sb.dispatch("messageCreate", message("hi"))
    assert [c["op"] for c in calls] == ["op_send_message", "op_edit_message"]


def test_reply_resolves_with_the_op_result_and_rejects_with_its_code(sb):
    sb.mock("op_send_message", "() => ({id: '9', content: 'sent'})")
    sb.eval("on('messageCreate', async (ctx) => { globalThis.sent = await ctx.reply('x') })")
    sb.dispatch("messageCreate", message("hi"))
    assert sb.json("sent") == {"id": "9", "content": "sent"}
    sb.mock(
        "op_send_message",
        "() => { const e = new Error('Forbidden: channel is outside runtime scope'); e.code = 'SCOPE_FORBIDDEN'; throw e }",
    )
    sb.eval("on('reactionAdd', async (ctx) => { try { await ctx.reply('x') } catch (e) { globalThis.code = e.code } })")
    sb.dispatch("reactionAdd", reaction())
    assert sb.eval("code") == "SCOPE_FORBIDDEN"


# ================================================================ createBot: prefix commands

PREFIX_BOT = """
createBot({
  commands: [
    prefix({ name: 'ping', run: (ctx) => ctx.reply('pong') }),
    prefix({ name: 'echo', run: (ctx) => ctx.reply(ctx.args.join(' ')) }),
  ],
})
"""


@pytest.mark.parametrize(
    "content, reply",
    [
        ("!ping", "pong"),
        ("   !ping   ", "pong"),
        ("! ping", "pong"),
        ("!echo hello world", "hello world"),
        ("!echo  hello \n  world ", "hello world"),
        ("!PING", None),
        ("!pingx", None),
        ("ping", None),
        ("hello", None),
        ("!", None),
        ("?ping", None),
    ],
)
def test_prefix_matching(sb, content, reply):
    sb.eval(PREFIX_BOT)
    calls = sb.dispatch("messageCreate", message(content))
    if reply is None:
        assert calls == []
    else:
        assert only(calls, "op_send_message")["content"] == reply


def test_prefix_ignores_bots_and_empty_messages(sb):
    sb.eval(PREFIX_BOT)
    assert sb.dispatch("messageCreate", message("!ping", author=user(bot=True))) == []
    assert sb.dispatch("messageCreate", message("")) == []


def test_prefix_args_are_split_on_whitespace(sb):
    sb.eval("createBot({ prefixCommands: [prefix({ name: 'a', run: (ctx) => { globalThis.args = ctx.args } })] })")
    sb.dispatch("messageCreate", message("!a  one\ttwo   three"))
    assert sb.json("args") == ["one", "two", "three"]
    sb.dispatch("messageCreate", message("!a"))
    assert sb.json("args") == []


@pytest.mark.parametrize(
    "prefix_, content, matches",
    [
        ("?", "?ping", True),
        ("?", "!ping", False),
        (">>", ">> ping", True),
        ("bot ", "bot ping", True),
        ("Bot ", "bot ping", False),
    ],
)
def test_custom_prefix(sb, prefix_, content, matches):
    sb.eval(
        f"createBot({{ prefix: {json.dumps(prefix_)}, commands: [prefix({{ name: 'ping', run: (c) => c.reply('pong') }})] }})"
    )
    assert bool(sb.dispatch("messageCreate", message(content))) is matches


def test_prefix_ctx_keeps_msg_reply_edit(sb):
    sb.eval("createBot({ commands: [prefix({ name: 'x', run: (ctx) => { globalThis.keys = Object.keys(ctx).sort() } })] })")
    sb.dispatch("messageCreate", message("!x"))
    assert sb.json("keys") == ["args", "edit", "msg", "reply"]


def test_create_bot_is_idempotent(sb):
    sb.eval("""
      createBot({ commands: [prefix({ name: 'ping', run: (c) => c.reply('pong') })],
                  slashCommands: [slash({ name: 'a', description: 'A', run() {} })] });
      createBot({ commands: [prefix({ name: 'ping', run: (c) => c.reply('second') })],
                  slashCommands: [slash({ name: 'b', description: 'B', run() {} })] });
    """)
    assert sb.json("[__floraHandlers.messageCreate.length, __floraHandlers.interactionCreate.length]") == [1, 1]
    assert len(sb.calls("op_upsert_guild_commands")) == 1
    assert {
        "level": "info",
        "args": ["[flora/sdk] createBot called multiple times; skipping duplicate registration"],
    } in sb.logs()
    assert only(sb.dispatch("messageCreate", message("!ping")), "op_send_message")["content"] == "pong"


# ================================================================ createBot: slash commands


def test_slash_command_registration_payload(sb):
    # flora: index.register.test "registers slash commands when guild id is present"
    sb.eval("""
      createBot({ slashCommands: [slash({
        name: 'ping', description: 'Reply with pong',
        options: [{ name: 'text', description: 'say something', required: true }],
        run: (ctx) => ctx.reply('pong'),
      })] })
    """)
    assert only(sb.calls(), "op_upsert_guild_commands") == {
        "guildId": GUILD,
        "commands": [
            {
                "name": "ping",
                "description": "Reply with pong",
                "options": [{"name": "text", "description": "say something", "required": True}],
            }
        ],
    }


def test_no_registration_without_slash_commands(sb):
    sb.eval("createBot({ commands: [] })")
    assert sb.calls("op_upsert_guild_commands") == []


def test_registration_failure_is_logged(sb):
    sb.mock("op_upsert_guild_commands", "() => { throw new Error('Slash command must have a description') }")
    sb.eval("createBot({ slashCommands: [slash({ name: 'x', run() {} })] })")
    assert {
        "level": "error",
        "args": ["[flora/sdk] registering slash commands failed: Slash command must have a description"],
    } in sb.logs()


def test_slash_routing_flattens_options(sb):
    # flora: index.test "routes interactionCreate to matching slash command"
    sb.eval("""
      createBot({ slashCommands: [slash({ name: 'ping', description: 'd', run: async (ctx) => {
        globalThis.seen = { commandName: ctx.msg.commandName, options: ctx.options };
        await ctx.reply({ content: 'pong', ephemeral: true });
      } })] })
    """)
    calls = sb.dispatch("interactionCreate", interaction("ping", [opt("text", "hello"), opt("count", 2, type=4)]))
    assert sb.json("seen") == {"commandName": "ping", "options": {"text": "hello", "count": 2}}
    assert only(calls, "op_send_interaction_response") == {
        "interactionId": "500000000000000001",
        "token": "tok-1",
        "content": "pong",
        "ephemeral": True,
    }


def test_slash_unknown_command_is_ignored(sb):
    sb.eval("createBot({ slashCommands: [slash({ name: 'a', description: 'd', run: (c) => c.reply('a') })] })")
    assert sb.dispatch("interactionCreate", interaction("b")) == []


SUBCOMMAND_BOT = """
createBot({ slashCommands: [slash({
  name: 'admin', description: 'Admin tools',
  run: (ctx) => ctx.reply('never: a command with subcommands runs them instead'),
  subcommands: [
    { name: 'ping', description: 'Ping', run: (ctx) => ctx.reply('pong ' + JSON.stringify(ctx.options)) },
    { name: 'user', description: 'User tools', type: 'subcommand_group', subcommands: [
      { name: 'ban', description: 'Ban', options: [{ name: 'who', description: 'Who', type: 'string', required: true }],
        run: (ctx) => ctx.reply('ban ' + ctx.options.who) },
      { name: 'kick', description: 'Kick', run: (ctx) => ctx.reply('kick') },
    ] },
  ],
})] })
"""


def test_subcommand_and_group_registration(sb):
    sb.eval(SUBCOMMAND_BOT)
    assert only(sb.calls(), "op_upsert_guild_commands")["commands"] == [
        {
            "name": "admin",
            "description": "Admin tools",
            "options": [
                {"name": "ping", "description": "Ping", "type": "subcommand"},
                {
                    "name": "user",
                    "description": "User tools",
                    "type": "subcommand_group",
                    "options": [
                        {
                            "name": "ban",
                            "description": "Ban",
                            "type": "subcommand",
                            "options": [{"name": "who", "description": "Who", "type": "string", "required": True}],
                        },
                        {"name": "kick", "description": "Kick", "type": "subcommand"},
                    ],
                },
            ],
        }
    ]


@pytest.mark.parametrize(
    "options, reply",
    [
        ([sub("ping", opt("n", 1, type=4))], 'pong {"n":1}'),
        ([sub("ping")], "pong {}"),
        ([sub("user", sub("ban", opt("who", "bob")), type=2)], "ban bob"),
        ([sub("user", sub("kick"), type=2)], "kick"),
        ([sub("user", sub("nope"), type=2)], None),
        ([sub("nope")], None),
        ([sub("user")], None),  # a group name sent as a subcommand
        ([], None),
    ],
)
def test_subcommand_routing(sb, options, reply):
    sb.eval(SUBCOMMAND_BOT)
    calls = sb.dispatch("interactionCreate", interaction("admin", options))
    if reply is None:
        assert calls == []
    else:
        assert only(calls, "op_send_interaction_response")["content"] == reply


def test_flatten_commands_records_subcommand_handlers(sb):
    result = sb.json("""flattenCommands([
      { name: 'plain', description: 'P', options: [{ name: 'x', description: 'X', type: 'integer' }], run() {} },
      { name: 'counter', description: 'C', subcommands: [
        { name: 'get', description: 'G', run() {} },
        { name: 'add', description: 'A', options: [{ name: 'by', description: 'B', type: 'number' }], run() {} },
      ] },
    ])""")
    assert result == [
        {"name": "plain", "description": "P", "options": [{"name": "x", "description": "X", "type": "integer"}]},
        {
            "name": "counter",
            "description": "C",
            "options": [
                {"name": "get", "description": "G", "type": "subcommand"},
                {
                    "name": "add",
                    "description": "A",
                    "type": "subcommand",
                    "options": [{"name": "by", "description": "B", "type": "number"}],
                },
            ],
        },
    ]
    assert sb.json("Object.keys(__floraSubcommands.counter)") == ["get", "add"]
    assert sb.eval("typeof __floraSubcommands.counter.get") == "function"


def test_handle_subcommand_directly(sb):
    sb.eval("""
      globalThis.cmd = { name: 'c', description: 'd', subcommands: [
        { name: 's', description: 'x', run: (ctx) => { globalThis.got = ctx.options } }] };
      on('interactionCreate', (ctx) => handleSubcommand(ctx, cmd));
    """)
    sb.dispatch("interactionCreate", interaction("c", [sub("s", opt("a", "b"))]))
    assert sb.json("got") == {"a": "b"}


def test_flatten_interaction_options(sb):
    options = [sub("group", sub("inner", opt("a", "x"), opt("b", 2, type=4)), type=2), opt("top", True, type=5)]
    assert sb.json(f"flattenInteractionOptions({json.dumps(options)})") == {"a": "x", "b": 2, "top": True}
    assert sb.json("flattenInteractionOptions([])") == {}


def test_helpers(sb):
    sb.eval("""on('interactionCreate', (ctx) => { globalThis.h = {
      admin: hasRole(ctx, 'r1'), other: hasRole(ctx, 'r9'),
      sub: getSubcommand(ctx) ?? null, group: getSubcommandGroup(ctx) ?? null } })""")
    sb.dispatch("interactionCreate", interaction("c", [sub("g", sub("s"), type=2)], member=member(["r1"])))
    assert sb.json("h") == {"admin": True, "other": False, "sub": "g", "group": "g"}
    sb.dispatch("interactionCreate", interaction("c", [sub("s")], member=None))
    assert sb.json("h") == {"admin": False, "other": False, "sub": "s", "group": None}
    sb.dispatch("interactionCreate", interaction("c", data={"name": "c"}))
    assert sb.json("h")["sub"] is None


# ================================================================ embeds


def test_embed_builder(sb):
    # flora: embed.test "builds embed with fluent setters"
    result = sb.json("""embed()
      .setTitle('Title').setDescription('Desc').setUrl('https://example.com').setColor(0xff0000)
      .setTimestamp('2024-01-01T00:00:00.000Z').setFooter('Footer', 'https://example.com/f.png')
      .setImage('https://example.com/i.png').setThumbnail('https://example.com/t.png')
      .setAuthor('Author', { url: 'https://example.com/a', iconUrl: 'https://example.com/a.png' })
      .addField('F1', 'V1').addField('F2', 'V2', true).toJSON()""")
    assert result == {
        "title": "Title",
        "description": "Desc",
        "url": "https://example.com",
        "color": 0xFF0000,
        "timestamp": "2024-01-01T00:00:00.000Z",
        "footer": {"text": "Footer", "iconUrl": "https://example.com/f.png"},
        "image": {"url": "https://example.com/i.png"},
        "thumbnail": {"url": "https://example.com/t.png"},
        "author": {"name": "Author", "url": "https://example.com/a", "iconUrl": "https://example.com/a.png"},
        "fields": [{"name": "F1", "value": "V1", "inline": False}, {"name": "F2", "value": "V2", "inline": True}],
    }


def test_embed_initial_state_and_field_lists(sb):
    # flora: embed.test "merges initial state"
    assert sb.json("embed({ title: 'Initial' }).setDescription('Added').toJSON()") == {"title": "Initial", "description": "Added"}
    assert sb.json("""(() => { const init = { title: 'a' }; embed(init).setTitle('b'); return init })()""") == {"title": "a"}
    result = sb.json("""new EmbedBuilder().addField('a', '1').addFields([{ name: 'b', value: '2', inline: true }])
      .toJSON().fields""")
    assert result == [{"name": "a", "value": "1", "inline": False}, {"name": "b", "value": "2", "inline": True}]
    assert sb.json("embed().addField('a', '1').setFields([{ name: 'z', value: '9' }]).toJSON().fields") == [
        {"name": "z", "value": "9"}
    ]
    assert sb.json("embed().setFooter('only text').setAuthor().toJSON()") == {"footer": {"text": "only text"}, "author": {}}


# ================================================================ components

COMPONENT_CASES = [
    (
        "button().setCustomId('b1').setLabel('Go').setStyle(ButtonStyle.Success).setEmoji('🔥').setDisabled()",
        {"type": 2, "custom_id": "b1", "label": "Go", "style": 3, "emoji": "🔥", "disabled": True},
    ),
    (
        "button().setUrl('https://x.y').setLabel('Link').setDisabled(false)",
        {"type": 2, "style": 5, "url": "https://x.y", "label": "Link", "disabled": False},
    ),
    ("button().setSkuId('123')", {"type": 2, "style": 6, "sku_id": "123"}),
    (
        "actionRow().addComponents(button().setCustomId('a'), { type: 2, custom_id: 'b', style: 1 })",
        {"type": 1, "components": [{"type": 2, "custom_id": "a"}, {"type": 2, "custom_id": "b", "style": 1}]},
    ),
    (
        "actionRow().addComponents([button().setCustomId('a')]).addComponents(button().setCustomId('b'))",
        {"type": 1, "components": [{"type": 2, "custom_id": "a"}, {"type": 2, "custom_id": "b"}]},
    ),
    (
        "actionRow().addComponents(button()).setComponents([stringSelect('s')])",
        {"type": 1, "components": [{"type": 3, "custom_id": "s"}]},
    ),
    (
        """stringSelect('menu').setPlaceholder('Pick').setMinValues(1).setMaxValues(2).setRequired().setDisabled(false)
        .setOptions([{ label: 'A', value: 'a' }]).addOptions({ label: 'B', value: 'b', default: true, emoji: '✅' })""",
        {
            "type": 3,
            "custom_id": "menu",
            "placeholder": "Pick",
            "min_values": 1,
            "max_values": 2,
            "required": True,
            "disabled": False,
            "options": [{"label": "A", "value": "a"}, {"label": "B", "value": "b", "default": True, "emoji": "✅"}],
        },
    ),
    ("userSelect('u').setDefaultUsers(['1']).addDefaultUser('2')", {"type": 5, "custom_id": "u", "default_users": ["1", "2"]}),
    (
        "roleSelect('r').setDefaultRoles(['1']).addDefaultRole('2').setDefaultValues([{ id: '3', type: 'role' }])",
        {"type": 6, "custom_id": "r", "default_roles": ["1", "2"], "default_values": [{"id": "3", "type": "role"}]},
    ),
    (
        "mentionableSelect('m').addDefaultValue('1', 'user').addDefaultValue('2', 'role')",
        {"type": 7, "custom_id": "m", "default_values": [{"id": "1", "type": "user"}, {"id": "2", "type": "role"}]},
    ),
    (
        "channelSelect('c').setChannelTypes([0, 5]).setDefaultChannels(['9']).addDefaultChannel('8').setCustomId('c2')",
        {"type": 8, "custom_id": "c2", "channel_types": [0, 5], "default_channels": ["9", "8"]},
    ),
    (
        """inputText('t').setStyle(InputTextStyle.Paragraph).setMinLength(1).setMaxLength(500).setRequired(false)
        .setValue('v').setPlaceholder('p').setCustomId('t2')""",
        {
            "type": 4,
            "custom_id": "t2",
            "style": 2,
            "min_length": 1,
            "max_length": 500,
            "required": False,
            "value": "v",
            "placeholder": "p",
        },
    ),
    ("textDisplay('hello').setContent('# hi')", {"type": 10, "content": "# hi"}),
    (
        "thumbnail('https://a/1.png').setDescription('d').setSpoiler()",
        {"type": 11, "media": {"url": "https://a/1.png"}, "description": "d", "spoiler": True},
    ),
    ("thumbnail('x').setUrl('https://a/2.png')", {"type": 11, "media": {"url": "https://a/2.png"}}),
    (
        "section().addComponents(textDisplay('a'), textDisplay('b')).setAccessory(button().setCustomId('s'))",
        {
            "type": 9,
            "components": [{"type": 10, "content": "a"}, {"type": 10, "content": "b"}],
            "accessory": {"type": 2, "custom_id": "s"},
        },
    ),
    ("section().setComponents([textDisplay('a')])", {"type": 9, "components": [{"type": 10, "content": "a"}], "accessory": None}),
    (
        "mediaGallery().addItem('https://a/1.png').addItem('https://a/2.png', { description: 'two', spoiler: true })",
        {
            "type": 12,
            "items": [
                {"media": {"url": "https://a/1.png"}},
                {"media": {"url": "https://a/2.png"}, "description": "two", "spoiler": True},
            ],
        },
    ),
    ("mediaGallery().addItem('x').setItems([{ media: { url: 'y' } }])", {"type": 12, "items": [{"media": {"url": "y"}}]}),
    ("file('attachment://a.txt').setSpoiler()", {"type": 13, "file": {"url": "attachment://a.txt"}, "spoiler": True}),
    ("file('x').setUrl('attachment://b.txt')", {"type": 13, "file": {"url": "attachment://b.txt"}}),
    ("separator()", {"type": 14, "divider": True}),
    ("separator(false).setSpacing('large')", {"type": 14, "divider": False, "spacing": "large"}),
    ("separator().setDivider(false).setSpacing(2)", {"type": 14, "divider": False, "spacing": 2}),
    (
        "container().addComponents(textDisplay('a'), separator()).setAccentColor(0x00ff00).setSpoiler()",
        {
            "type": 17,
            "components": [{"type": 10, "content": "a"}, {"type": 14, "divider": True}],
            "accent_color": 0x00FF00,
            "spoiler": True,
        },
    ),
    ("container()", {"type": 17, "components": []}),
    (
        "label('Your name').setDescription('as shown').setComponent(inputText('name'))",
        {"type": 18, "label": "Your name", "component": {"type": 4, "custom_id": "name"}, "description": "as shown"},
    ),
    ("label('x').setLabel('Files')", {"type": 18, "label": "Files", "component": None}),
    (
        "fileUpload('up').setMinValues(1).setMaxValues(3).setRequired().setCustomId('up2')",
        {"type": 19, "custom_id": "up2", "min_values": 1, "max_values": 3, "required": True},
    ),
]


@pytest.mark.parametrize("expr, expected", COMPONENT_CASES, ids=[c[0].split("(")[0].strip() for c in COMPONENT_CASES])
def test_component_json(sb, expr, expected):
    assert sb.json(f"({expr}).toJSON()") == expected


def test_component_classes_and_factories_agree(sb):
    pairs = {
        "actionRow()": "ActionRowBuilder",
        "button()": "ButtonBuilder",
        "stringSelect('a')": "StringSelectMenuBuilder",
        "userSelect('a')": "UserSelectMenuBuilder",
        "roleSelect('a')": "RoleSelectMenuBuilder",
        "mentionableSelect('a')": "MentionableSelectMenuBuilder",
        "channelSelect('a')": "ChannelSelectMenuBuilder",
        "inputText('a')": "InputTextBuilder",
        "textDisplay('a')": "TextDisplayBuilder",
        "thumbnail('a')": "ThumbnailBuilder",
        "section()": "SectionBuilder",
        "mediaGallery()": "MediaGalleryBuilder",
        "file('a')": "FileBuilder",
        "separator()": "SeparatorBuilder",
        "container()": "ContainerBuilder",
        "label('a')": "LabelBuilder",
        "fileUpload('a')": "FileUploadBuilder",
    }
    for factory, cls in pairs.items():
        assert sb.eval(f"{factory} instanceof {cls}"), factory
    assert sb.eval("stringSelect('a') instanceof SelectMenuBuilderBase && channelSelect('a') instanceof SelectMenuBuilderBase")
    assert sb.json("new StringSelectMenuBuilder('x').toJSON()") == {"type": 3, "custom_id": "x"}
    assert sb.json("stringSelect('x').data") == {"type": 3, "custom_id": "x"}


def test_builders_serialise_inside_replies(sb):
    sb.eval("""on('messageCreate', (ctx) => ctx.reply({
      embeds: [embed().setTitle('t').toJSON()],
      components: [actionRow().addComponents(button().setCustomId('ok').setLabel('OK'))],
    }))""")
    args = only(sb.dispatch("messageCreate", message("x")), "op_send_message")
    assert args["components"] == [{"type": 1, "components": [{"type": 2, "custom_id": "ok", "label": "OK"}]}]
    assert args["embeds"] == [{"title": "t"}]


# ================================================================ console


def test_console_levels(sb):
    sb.eval("console.log('l'); console.info('i'); console.warn('w'); console.error('e'); console.debug('d')")
    assert sb.logs() == [
        {"level": lv, "args": [a]} for lv, a in [("info", "l"), ("info", "i"), ("warn", "w"), ("error", "e"), ("debug", "d")]
    ]


def test_console_formats_values(sb):
    # flora harness: console.log('debug', 42) is captured
    sb.eval("""
      const cyc = { name: 'c' }; cyc.self = cyc;
      const shared = { v: 1 };
      console.log('debug', 42, true, null, undefined, { a: [1, 'x'] }, [1, 2], 10n, { big: 5n }, cyc,
                  { x: shared, y: shared }, function named() {}, Symbol('s'));
    """)
    (entry,) = sb.logs()
    assert entry["level"] == "info"
    assert entry["args"] == [
        "debug",
        "42",
        "true",
        "null",
        "undefined",
        '{"a":[1,"x"]}',
        "[1,2]",
        "10",
        '{"big":"5n"}',
        '{"name":"c","self":"[Circular]"}',
        '{"x":{"v":1},"y":{"v":1}}',
        "[Function: named]",
        "Symbol(s)",
    ]


def test_console_formats_errors(sb):
    sb.eval("console.error(new TypeError('bad thing'))")
    (entry,) = sb.logs()
    assert entry["level"] == "error"
    assert entry["args"][0].startswith("TypeError: bad thing")


def test_console_never_throws(sb):
    sb.mock("op_log", "() => { throw new Error('log sink down') }")
    sb.eval("console.log('a')")
    sb.eval("globalThis.__floraOp = () => { throw new Error('sync failure') }; console.warn('b')")
    assert sb.eval("typeof console.log") == "function"


# ================================================================ cron


@pytest.mark.parametrize(
    "call, message_",
    [
        ("cron('', '* * * * *', () => {})", "cron name must be a non-empty string"),
        ("cron(5, '* * * * *', () => {})", "cron name must be a non-empty string"),
        ("cron('job', '', () => {})", "cron expression must be a non-empty string"),
        ("cron('job', null, () => {})", "cron expression must be a non-empty string"),
        ("cron('job', '* * * * *', 'nope')", "cron handler must be a function"),
    ],
)
def test_cron_validation(sb, call, message_):
    result = sb.json(f"(() => {{ try {{ {call}; return null }} catch (e) {{ return [e.constructor.name, e.message] }} }})()")
    assert result == ["TypeError", message_]
    assert sb.calls("op_register_cron") == []
    assert sb.json("__floraHandlers") == {}


def test_cron_registration(sb):
    # flora harness: "records cron registration op"
    sb.run("await cron('daily', '0 0 * * *', () => {})")
    sb.run("await cron('often', '*/5 * * * *', () => {}, { skipIfRunning: true, catchUp: 'latest' })")
    assert [c["args"] for c in sb.calls("op_register_cron")] == [
        {"name": "daily", "expr": "0 0 * * *", "skipIfRunning": False, "catchUp": "none"},
        {"name": "often", "expr": "*/5 * * * *", "skipIfRunning": True, "catchUp": "latest"},
    ]
    assert sorted(sb.json("Object.keys(__floraHandlers)")) == ["__cron:daily", "__cron:often"]


def test_cron_handler_gets_name_and_scheduled_at_only(sb):
    # flora harness: "triggers cron handler"
    sb.eval("cron('cleanup', '0 * * * *', (ctx) => { globalThis.got = { keys: Object.keys(ctx), ctx, msg: ctx.msg } })")
    payload = {"name": "cleanup", "scheduledAt": "2025-01-01T00:00:00+00:00"}
    assert sb.dispatch("__cron:cleanup", payload) == []
    assert sb.json("got") == {"keys": ["name", "scheduledAt"], "ctx": payload, "msg": payload}


def test_cron_registration_failure_rejects_logs_and_unsubscribes(sb):
    sb.mock("op_register_cron", "() => { throw new Error(\"invalid cron expression 'nope': bad\") }")
    sb.eval("globalThis.p = cron('broken', 'nope', () => {}); p.catch((e) => { globalThis.err = e.message })")
    sb.eval("0")  # let the rejection settle
    assert sb.eval("err") == "invalid cron expression 'nope': bad"
    assert {"level": "error", "args": ["cron 'broken' was not registered: invalid cron expression 'nope': bad"]} in sb.logs()
    assert sb.json("__floraHandlers") == {}


# ================================================================ secrets


def test_secrets_placeholder(sb):
    for name in ["API_KEY", "my key/ä", "a__b_"]:
        token = sb.eval(f"secrets.get({json.dumps(name)})")
        assert token == placeholders.secret_placeholder(name)
        assert placeholders.replace_secret_placeholders(f"Bearer {token}", lambda n: f"<{n}>") == f"Bearer <{name}>"
    assert sb.eval("secrets.get('API_KEY')") == "__FLORA_SECRET_API_KEY__"


def test_secret_placeholders_are_found_in_urls_and_headers():
    text = "https://x/__FLORA_SECRET_A__/y?k=__FLORA_SECRET_B_C__&z=__FLORA_SECRET_UNKNOWN__"
    assert (
        placeholders.replace_secret_placeholders(text, {"A": "1", "B_C": "2"}.get)
        == "https://x/1/y?k=2&z=__FLORA_SECRET_UNKNOWN__"
    )


def test_secrets_validation_and_known_names(sb):
    assert sb.json("(() => { try { secrets.get('') } catch (e) { return [e.constructor.name, e.message] } })()") == [
        "TypeError",
        "secret name must be a non-empty string",
    ]
    sb.eval("globalThis.__floraSecretNames = ['TOKEN']")
    assert sb.eval("secrets.get('TOKEN')") == "__FLORA_SECRET_TOKEN__"
    assert sb.eval("secrets.get('OTHER') === undefined")


# ================================================================ kv


def test_kv_ops_and_argument_shapes(sb):
    sb.mock("op_kv_get_with_metadata", "(a) => a.key === 'k' ? ['v', { expiration: 5, metadata: { tag: 1 } }] : null")
    sb.mock("op_kv_list_keys", "() => ({ keys: [{ name: 'a' }], listComplete: true })")
    sb.mock("op_kv_incr", "() => 3")
    sb.mock("op_kv_cas", "() => true")
    sb.run("""
      const s = kv.store('data');
      globalThis.out = {
        same: store('x') instanceof KvStore && s instanceof KvStore,
        set: await s.set('k', 'v', { expiration: 1700000000n, metadata: { tag: 1 } }),
        plainSet: await s.set('k2', 'v2'),
        get: await s.get('k'),
        missing: await s.get('nope'),
        meta: await s.getWithMetadata('k'),
        noMeta: await s.getWithMetadata('zz'),
        upd: await s.updateMetadata('k', { tag: 2 }),
        list: await s.list({ prefix: 'a', limit: 10n, cursor: 'c' }),
        listAll: await s.list(),
        del: await s.delete('k'),
        incr: await s.incr('n'),
        incr5: await s.incr('n', 5),
        cas: await s.compareAndSet('k', null, 'new', { expiration: 9 }),
      };
    """)
    out = sb.json("out")
    assert out["same"] is True
    assert out["get"] == "v" and out["missing"] is None
    assert out["meta"] == {"value": "v", "metadata": {"tag": 1}}
    assert out["noMeta"] == {"value": None}
    assert out["list"] == {"keys": [{"name": "a"}], "listComplete": True}
    assert out["incr"] == 3 and out["cas"] is True
    assert [(c["op"], c["args"]) for c in sb.calls()] == [
        ("op_kv_set", {"storeName": "data", "key": "k", "value": "v", "expiration": 1700000000, "metadata": {"tag": 1}}),
        ("op_kv_set", {"storeName": "data", "key": "k2", "value": "v2"}),
        ("op_kv_get", {"storeName": "data", "key": "k"}),
        ("op_kv_get", {"storeName": "data", "key": "nope"}),
        ("op_kv_get_with_metadata", {"storeName": "data", "key": "k"}),
        ("op_kv_get_with_metadata", {"storeName": "data", "key": "zz"}),
        ("op_kv_update_metadata", {"storeName": "data", "key": "k", "metadata": {"tag": 2}}),
        ("op_kv_list_keys", {"storeName": "data", "prefix": "a", "limit": 10, "cursor": "c"}),
        ("op_kv_list_keys", {"storeName": "data"}),
        ("op_kv_delete", {"storeName": "data", "key": "k"}),
        ("op_kv_incr", {"storeName": "data", "key": "n", "by": 1}),
        ("op_kv_incr", {"storeName": "data", "key": "n", "by": 5}),
        ("op_kv_cas", {"storeName": "data", "key": "k", "expected": None, "value": "new", "expiration": 9}),
    ]


def test_kv_errors_propagate_with_code(sb):
    sb.mock("op_kv_get", "() => { const e = new Error('store not found'); e.code = 'OP_UNAVAILABLE'; throw e }")
    sb.run("try { await kv.store('s').get('k') } catch (e) { globalThis.err = [e.message, e.code] }")
    assert sb.json("err") == ["store not found", "OP_UNAVAILABLE"]


# ================================================================ rest

REST_METHODS = [
    "sendMessage",
    "editMessage",
    "deleteMessage",
    "bulkDeleteMessages",
    "pinMessage",
    "unpinMessage",
    "crosspostMessage",
    "fetchMessage",
    "fetchMessages",
    "addReaction",
    "removeReaction",
    "clearReactions",
    "sendInteractionResponse",
    "deferInteractionResponse",
    "updateInteractionResponse",
    "editOriginalInteractionResponse",
    "deleteOriginalInteractionResponse",
    "createFollowupMessage",
    "editFollowupMessage",
    "deleteFollowupMessage",
    "upsertGuildCommands",
    "createGuildCommand",
    "editGuildCommand",
    "deleteGuildCommand",
    "getGuildCommands",
    "getGuildCommand",
    "editGuildCommandPermissions",
    "getGuildCommandsPermissions",
    "getGuildCommandPermissions",
    "kickMember",
    "banMember",
    "unbanMember",
    "addMemberRole",
    "removeMemberRole",
    "editMember",
    "editCurrentMember",
    "createChannel",
    "editChannel",
    "deleteChannel",
    "createThread",
    "createThreadFromMessage",
    "joinThread",
    "leaveThread",
    "addThreadMember",
    "removeThreadMember",
    "executeWebhook",
    "editWebhook",
    "deleteWebhook",
] + ["showModal"]  # flora's 48, and showModal beyond flora


def test_rest_has_48_methods_each_one_op(sb):
    assert len(REST_METHODS) == 49
    assert sorted(sb.json("Object.keys(rest)")) == sorted(REST_METHODS)
    for i, method in enumerate(REST_METHODS):
        sb.eval(f"rest.{method}({{ channelId: '1', n: {i}, payload: {{ nick: 'x' }} }})")
    expected = [
        ("op_" + re.sub(r"([A-Z])", r"_\1", m).lower(), {"channelId": "1", "n": i, "payload": {"nick": "x"}})
        for i, m in enumerate(REST_METHODS)
    ]
    assert [(c["op"], c["args"]) for c in sb.calls()] == expected


def test_rest_returns_op_results(sb):
    # flora harness: "returns mocked value for fetch ops" / "supports function mocks"
    sb.mock("op_fetch_message", "(a) => ({ id: a.messageId, content: 'fetched ' + a.messageId })")
    sb.eval("""on('messageCreate', async (ctx) => {
      const m = await rest.fetchMessage({ channelId: ctx.msg.channelId, messageId: '789' });
      await ctx.reply(m.content);
    })""")
    calls = sb.dispatch("messageCreate", message("x"))
    assert [c["op"] for c in calls] == ["op_fetch_message", "op_send_message"]
    assert calls[1]["args"]["content"] == "fetched 789"


# ================================================================ starter and example bots


def bundle(root: pathlib.Path, entry: str, cache: pathlib.Path) -> str:
    from flora_core.bundler import Bundler

    files = [
        {"path": p.relative_to(root).as_posix(), "contents": p.read_text(encoding="utf-8")} for p in sorted(root.rglob("*.ts"))
    ]
    return Bundler(cache).bundle(entry, files)


@pytest.fixture(scope="session")
def bundles():
    # A cache that outlives the session: deno fetches its esbuild into it once.
    cache = pathlib.Path(tempfile.gettempdir()) / "flora-sdk-test-bundles"
    from flora_core.bundler import Bundler

    starter = Bundler(cache).bundle(flora_sdk.STARTER_ENTRY, flora_sdk.starter_files())
    return {"starter": starter, "example": bundle(ROOT / "examples" / "basic", "src/main.ts", cache)}


def load_bot(source: str) -> Sandbox:
    sandbox = Sandbox()
    sandbox.eval(source)
    sandbox.eval("0")  # settle registration promises
    return sandbox


@pytest.fixture
def starter(bundles):
    sandbox = load_bot(bundles["starter"])
    yield sandbox
    sandbox.close()


@pytest.fixture
def example(bundles):
    sandbox = load_bot(bundles["example"])
    yield sandbox
    sandbox.close()


def reply_text(calls, op):
    return only(calls, op)["content"]


def test_starter_registers_its_commands(starter):
    assert sorted(starter.json("Object.keys(__floraHandlers)")) == ["interactionCreate", "messageCreate"]
    assert only(starter.calls(), "op_upsert_guild_commands") == {
        "guildId": GUILD,
        "commands": [
            {
                "name": "hello",
                "description": "Say hello",
                "options": [{"name": "name", "description": "Who to greet", "type": "string", "required": False}],
            },
            {
                "name": "counter",
                "description": "A counter kept in KV storage",
                "options": [
                    {"name": "get", "description": "Show the current count", "type": "subcommand"},
                    {"name": "increment", "description": "Add one to the count", "type": "subcommand"},
                    {"name": "reset", "description": "Set the count back to zero", "type": "subcommand"},
                ],
            },
        ],
    }


def test_starter_ping_and_hello(starter):
    calls = starter.dispatch("messageCreate", message("!ping"))
    assert only(calls, "op_send_message") == {
        "channelId": "400000000000000001",
        "messageId": "300000000000000001",
        "content": "pong",
    }
    assert reply_text(starter.dispatch("messageCreate", message("!ping a  b")), "op_send_message") == "pong (a b)"
    assert starter.dispatch("messageCreate", message("!Ping")) == []
    assert only(starter.dispatch("interactionCreate", interaction("hello")), "op_send_interaction_response") == {
        "interactionId": "500000000000000001",
        "token": "tok-1",
        "content": "Hello, world!",
        "ephemeral": True,
    }
    calls = starter.dispatch("interactionCreate", interaction("hello", [opt("name", "Ann")]))
    assert reply_text(calls, "op_send_interaction_response") == "Hello, Ann!"


def test_starter_counter(starter):
    def counter(action):
        calls = starter.dispatch("interactionCreate", interaction("counter", [sub(action)]))
        return reply_text([c for c in calls if not c["op"].startswith("op_kv_")], "op_send_interaction_response")

    assert counter("get") == "Current count: 0"
    assert counter("increment") == "Count is now: 1"
    assert counter("increment") == "Count is now: 2"
    assert counter("get") == "Current count: 2"
    assert starter.json("__kvData") == {"counters/main": "2"}
    assert counter("reset") == "Counter reset to 0"
    assert starter.json("__kvData") == {"counters/main": "0"}


def test_example_registers_its_commands(example):
    assert sorted(example.json("Object.keys(__floraHandlers)")) == ["componentInteraction", "interactionCreate", "messageCreate"]
    commands = only(example.calls(), "op_upsert_guild_commands")["commands"]
    assert [c["name"] for c in commands] == ["hello", "dice"]
    dice = commands[1]
    assert [(o["name"], o["type"]) for o in dice["options"]] == [
        ("roll", "subcommand"),
        ("flip", "subcommand"),
        ("multi", "subcommand_group"),
    ]
    assert [o["name"] for o in dice["options"][2]["options"]] == ["roll"]


def test_example_prefix_commands(example):
    calls = example.dispatch("messageCreate", message("!ping a b"))
    assert only(calls, "op_send_message") == {
        "channelId": "400000000000000001",
        "messageId": "300000000000000001",
        "content": "pong! args: a b",
    }
    assert reply_text(example.dispatch("messageCreate", message("!ping")), "op_send_message") == "pong!"

    args = only(example.dispatch("messageCreate", message("!info")), "op_send_message")
    (card,) = args["embeds"]
    assert card["title"] == "flora example bot" and card["footer"] == {"text": "Asked by alice"}
    (row,) = args["components"]
    assert row["type"] == 1
    assert row["components"][0] == {"type": 2, "custom_id": "info:about", "label": "About", "style": 1}
    assert row["components"][1]["style"] == 5

    calls = example.dispatch("componentInteraction", component("info:about"))
    assert only(calls, "op_send_interaction_response")["ephemeral"] is True
    assert example.dispatch("componentInteraction", component("something-else")) == []


def test_example_slash_commands(example):
    assert only(
        example.dispatch("interactionCreate", interaction("hello", [opt("name", "x")])), "op_send_interaction_response"
    ) == {"interactionId": "500000000000000001", "token": "tok-1", "content": "Hello, x!", "ephemeral": True}

    def dice(*options):
        return reply_text(
            example.dispatch("interactionCreate", interaction("dice", list(options))), "op_send_interaction_response"
        )

    assert dice(sub("roll", opt("sides", 1, type=4))) == "You rolled 1 (d1)"
    assert re.fullmatch(r"You rolled [1-6] \(d6\)", dice(sub("roll")))
    assert dice(sub("roll", opt("sides", 0, type=4))) == "A die needs 1 to 1000 sides."
    assert dice(sub("flip")) in ("The coin says heads.", "The coin says tails.")
    assert (
        dice(sub("multi", sub("roll", opt("count", 3, type=4), opt("sides", 1, type=4)), type=2))
        == "You rolled 1, 1, 1 (3d1), total 3"
    )


def test_starter_and_example_type_check(tmp_path):
    """The starter and the example compile against the declarations of the enabled plugins (strict, no DOM lib)."""
    from flora_core.declarations import assemble

    try:
        from deno import find_deno_bin

        deno = find_deno_bin()
    except Exception:  # noqa: BLE001 - no deno wheel: nothing to check with
        deno = shutil.which("deno")
    if not deno:
        pytest.skip("deno is not installed")
    shutil.copytree(ROOT / "examples" / "basic" / "src", tmp_path / "example")
    shutil.copytree(ROOT / "sdk" / "starter" / "src", tmp_path / "starter")
    (tmp_path / "deno.json").write_text(
        json.dumps({"compilerOptions": {"lib": ["es2023"], "strict": True}, "unstable": ["sloppy-imports"]})
    )
    (tmp_path / "flora.d.ts").write_text(assemble(Plugins()), encoding="utf-8")
    (tmp_path / "check.ts").write_text(
        '/// <reference path="./flora.d.ts" />\n'
        'import "./example/main.ts";\nimport "./starter/main.ts";\n'
        'import { embed, type EventMessage } from "@uwu/flora-sdk";\n'
        "const m: EventMessage | null = null;\nconsole.warn(embed().toJSON(), m, flora.rest === rest);\n"
    )
    env = dict(os.environ, NO_COLOR="1", DENO_NO_UPDATE_CHECK="1", DENO_DIR=str(tmp_path / "deno"))
    proc = subprocess.run(
        [deno, "check", "--config", "deno.json", "check.ts"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr


# ================================================================ plugins extend the SDK


def sources_without(monkeypatch, disabled: str) -> list[tuple[str, str]]:
    monkeypatch.setenv("FLORA_DISABLE_PLUGINS", disabled)
    return [(n, s) for n, s in Plugins().js_sources() if n not in ("flora:web", "flora:fetch")]


def test_kv_secrets_cron_and_rest_come_from_their_plugins():
    names = [n for n, _ in sdk_sources()]
    assert names == ["flora:prelude", "flora:sdk", "flora:cron", "flora:kv", "flora:rest", "flora:secrets"]
    owners = {p["name"]: p["registered"].get("js_source", []) for p in Plugins().describe()}
    assert owners["kv"] == ["flora:kv"] and owners["cron"] == ["flora:cron"] and owners["discord_ops"] == ["flora:rest"]
    assert owners["secrets"] == ["flora:fetch", "flora:secrets"] and owners["sdk"] == ["flora:prelude", "flora:sdk", "flora:web"]
    sdk_js = flora_sdk.read("flora.js") + flora_sdk.read("prelude.js")
    assert "op_kv_" not in sdk_js and "op_register_cron" not in sdk_js and "op_ban_member" not in sdk_js


@pytest.mark.parametrize(
    "disabled, use, error",
    [
        ("kv", "kv.store('s')", "kv.store is not available: the kv plugin is disabled or not installed"),
        ("kv", "store('s')", "store is not available: the kv plugin is disabled or not installed"),
        ("kv", "new KvStore('s')", "KvStore is not available: the kv plugin is disabled or not installed"),
        ("kv", "flora.kv.store('s')", "kv.store is not available: the kv plugin is disabled or not installed"),
        ("cron", "cron('a', '* * * * *', () => {})", "cron is not available: the cron plugin is disabled or not installed"),
        ("secrets", "secrets.get('A')", "secrets.get is not available: the secrets plugin is disabled or not installed"),
        (
            "discord_ops",
            "rest.sendMessage({})",
            "rest.sendMessage is not available: the discord_ops plugin is disabled or not installed",
        ),
    ],
)
def test_a_disabled_plugins_names_throw_naming_it_and_the_rest_works(monkeypatch, disabled, use, error):
    sandbox = Sandbox(sources=sources_without(monkeypatch, disabled))
    try:
        got = sandbox.json(
            f"(() => {{ try {{ {use}; return null }} catch (e) {{ return [e.constructor.name, e.code, e.message] }} }})()"
        )
        assert got == ["Error", "OP_UNAVAILABLE", error]
        # the same 56 names as ever, and everything else works
        assert sorted(sandbox.json("Object.keys(flora)")) == sorted(SDK_NAMES)
        assert sandbox.json("[JSON.stringify(flora.rest), String(typeof kv), `${[kv]}` === '[object Object]']") == [
            "{}",
            "object",
            True,
        ]
        sandbox.eval("createBot({ commands: [prefix({ name: 'ping', run: (ctx) => ctx.reply('pong') })] })")
        calls = sandbox.dispatch("messageCreate", message("!ping"))
        assert only(calls, "op_send_message")["content"] == "pong"
        if disabled != "kv":
            sandbox.run("globalThis.v = await kv.store('s').get('k')")
        if disabled != "cron":
            sandbox.run("await cron('c', '* * * * *', () => {})")
    finally:
        sandbox.close()


def test_provide_adds_a_name_once_and_never_replaces_one(sb):
    sb.eval("__floraProvide('hello', (n) => `hi ${n}`)")
    assert sb.eval("hello('x') + ' ' + flora.hello('y')") == "hi x hi y"
    sb.eval("__floraProvide('quiet', 1, { member: false })")
    assert sb.json("[quiet, 'quiet' in flora]") == [1, False]

    def refused(code):
        return sb.json(f"(() => {{ try {{ {code}; return null }} catch (e) {{ return [e.constructor.name, e.message] }} }})()")

    assert refused("__floraProvide('hello', 2)") == ["TypeError", "__floraProvide: 'hello' is already provided"]
    assert refused("__floraProvide('kv', {})") == ["TypeError", "__floraProvide: 'kv' is already provided"]
    assert refused("__floraProvide('createBot', 1)") == ["TypeError", "__floraProvide: 'createBot' is already provided"]
    assert refused("__floraProvide('console', 1)") == ["TypeError", "__floraProvide: 'console' is already provided"]
    assert refused("__floraProvide('a b', 1)") == ["TypeError", '__floraProvide: invalid name "a b"']
    assert sb.eval("typeof createBot") == "function"


def test_without_the_sdk_the_plugins_install_nothing_and_the_core_dispatches(monkeypatch):
    sandbox = Sandbox(sources=sources_without(monkeypatch, "sdk"))
    try:
        assert sandbox.json("[typeof on, typeof flora, typeof kv, typeof rest, typeof cron, typeof secrets]") == ["undefined"] * 6
        sandbox.eval(
            "__floraOn('messageCreate', (ctx) => __floraOp('op_send_message', "
            "{ channelId: ctx.msg.channelId, content: Object.keys(ctx).join(',') }))"
        )
        assert only(sandbox.dispatch("messageCreate", message("x")), "op_send_message")["content"] == "msg"
    finally:
        sandbox.close()


def test_the_core_events_api(sb):
    sb.eval("""
      globalThis.seen = [];
      globalThis.h = (ctx) => { seen.push(ctx) };
      __floraOn('custom:a', h);
      __floraDefineContext('custom:', (payload, event) => ({ event, n: payload.n }));
      __floraOn('other', h);
    """)
    sb.dispatch("custom:a", {"n": 1})
    sb.dispatch("other", {"n": 2})
    assert sb.json("seen[0]") == {"event": "custom:a", "n": 1}
    assert sb.json("Object.keys(seen[1]).sort()") == ["edit", "msg", "reply"]  # the SDK's context of every event
    sb.eval("__floraSubsDirty = false")
    assert sb.json("[__floraOff('custom:a', h), __floraOff('custom:a', h), 'custom:a' in __floraHandlers, __floraSubsDirty]") == [
        True,
        False,
        False,
        True,
    ]
    assert (
        sb.json("(() => { try { __floraDefineContext('custom:', () => ({})) } catch (e) { return e.message } })()")
        == '__floraDefineContext: the context of events starting with "custom:" is already defined'
    )
