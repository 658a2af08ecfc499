"""Every event a script can subscribe to arrives with flora's payload shape (reference §1.7),
plus the events flora did not expose. The emulator emits Discord-shaped objects; the script logs
what it received; the test checks each payload key by key."""

from __future__ import annotations

import json

import pytest
from conftest import deploy_files, emulator_guild, wait_for

STR, NUM, BOOL, OBJ, LIST = str, (int, float), bool, dict, list
N = type(None)

USER = {"id": STR, "username": STR, "discriminator": (int, N), "bot": BOOL}
MEMBER = {
    "user": (OBJ, N),
    "nick": (STR, N),
    "avatar": (STR, N),
    "roles": LIST,
    "joinedAt": (STR, N),
    "premiumSince": (STR, N),
    "deaf": BOOL,
    "mute": BOOL,
    "flags": NUM,
    "pending": BOOL,
    "permissions": (STR, N),
    "communicationDisabledUntil": (STR, N),
}
MESSAGE = {"id": STR, "channelId": STR, "guildId": STR, "content": STR, "author": OBJ, "member": (OBJ, N)}
INTERACTION = {
    "interactionId": STR,
    "interactionToken": STR,
    "applicationId": STR,
    "guildId": STR,
    "channelId": STR,
    "user": OBJ,
    "member": (OBJ, N),
    "data": OBJ,
    "locale": STR,
    "guildLocale": (STR, N),
}
REACTION = {"userId": (STR, N), "channelId": STR, "messageId": STR, "guildId": STR, "emoji": OBJ, "burst": BOOL}
CHANNEL = {
    "id": STR,
    "guildId": STR,
    "type": NUM,
    "name": (STR, N),
    "parentId": (STR, N),
    "position": (NUM, N),
    "topic": (STR, N),
    "nsfw": BOOL,
    "rateLimitPerUser": (NUM, N),
}
THREAD = {
    "id": STR,
    "guildId": STR,
    "parentId": (STR, N),
    "type": NUM,
    "name": (STR, N),
    "ownerId": (STR, N),
    "archived": BOOL,
    "locked": BOOL,
    "messageCount": (NUM, N),
    "memberCount": (NUM, N),
}
ROLE = {
    "id": STR,
    "name": STR,
    "color": NUM,
    "hoist": BOOL,
    "position": (NUM, N),
    "permissions": (STR, N),
    "managed": BOOL,
    "mentionable": BOOL,
}

SHAPES = {
    "messageCreate": MESSAGE,
    "messageUpdate": {
        "id": STR,
        "channelId": STR,
        "guildId": STR,
        "content": (STR, N),
        "author": (OBJ, N),
        "editedTimestamp": (STR, N),
        "old": (OBJ, N),
        "new": (OBJ, N),
    },
    "messageDelete": {"id": STR, "channelId": STR, "guildId": STR},
    "messageDeleteBulk": {"ids": LIST, "channelId": STR, "guildId": STR},
    "interactionCreate": {**INTERACTION, "commandName": STR},
    "componentInteraction": {**INTERACTION, "messageId": STR},
    "modalSubmit": {**INTERACTION, "messageId": (STR, N)},
    "reactionAdd": REACTION,
    "reactionRemove": REACTION,
    "reactionRemoveEmoji": REACTION,
    "reactionRemoveAll": {"messageId": STR, "channelId": STR, "guildId": STR},
    "guildMemberAdd": {"guildId": STR, "user": OBJ, "member": OBJ},
    "guildMemberUpdate": {"guildId": STR, "user": OBJ, "member": OBJ},
    "guildMemberRemove": {"guildId": STR, "user": OBJ},
    "channelCreate": CHANNEL,
    "channelUpdate": CHANNEL,
    "channelDelete": CHANNEL,
    "threadCreate": THREAD,
    "threadUpdate": THREAD,
    "threadDelete": THREAD,
    "roleCreate": {"guildId": STR, "role": OBJ},
    "roleUpdate": {"guildId": STR, "role": OBJ},
    "roleDelete": {"guildId": STR, "roleId": STR},
    "voiceStateUpdate": {
        "guildId": STR,
        "channelId": (STR, N),
        "userId": STR,
        "member": (OBJ, N),
        "sessionId": (STR, N),
        "deaf": BOOL,
        "mute": BOOL,
        "selfDeaf": BOOL,
        "selfMute": BOOL,
        "selfStream": BOOL,
        "selfVideo": BOOL,
        "suppress": BOOL,
    },
}
NESTED = {"author": USER, "user": USER, "member": MEMBER, "role": ROLE}

SCRIPT = """
const events = %s;
for (const name of events) on(name, (ctx) => { console.log('EVT ' + name + ' ' + JSON.stringify(ctx.msg)); });
on('messageCreate', async (ctx) => {
  if (ctx.msg.content === 'buttons please') {
    await ctx.reply({ content: 'here', components: [actionRow().addComponents(button().setCustomId('b1').setLabel('B'))] });
  }
});
registerSlashCommands([{ name: 'probe', description: 'probe', options: [{ name: 'x', description: 'x', type: 'string' }] }]);
""" % json.dumps(sorted(SHAPES))


def check_shape(name: str, payload: dict, shape: dict) -> None:
    assert set(payload) == set(shape), f"{name}: keys {sorted(payload)} != {sorted(shape)}"
    for key, kind in shape.items():
        assert isinstance(payload[key], kind) and not (kind is NUM and isinstance(payload[key], bool)), (
            f"{name}.{key} = {payload[key]!r} is not {kind}"
        )
        if key in NESTED and isinstance(payload[key], dict):
            check_shape(f"{name}.{key}", payload[key], NESTED[key])
    for key in ("id", "channelId", "guildId", "messageId", "userId", "interactionId", "applicationId"):
        if isinstance(payload.get(key), str):
            assert payload[key].isdigit(), f"{name}.{key} is not a string snowflake"


def test_every_event_payload_has_floras_shape(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Events")
    gid, ch, uid = g["id"], g["channel_id"], g["user_id"]
    assert deploy_files(stack, gid, {"src/main.ts": SCRIPT})[0] == 200
    wait_for(lambda: any(c["name"] == "probe" for c in emu.commands(gid)), message="probe registered")

    msg = emu.user_says(ch, uid, "buttons please")
    emu.user_edits(ch, msg["id"], uid, "edited")
    emu.react(ch, msg["id"], uid, "👍")
    emu.unreact(ch, msg["id"], uid, "👍")
    emu.dispatch(
        "MESSAGE_REACTION_REMOVE_EMOJI",
        {"guild_id": gid, "channel_id": ch, "message_id": msg["id"], "emoji": {"name": "👍", "id": None}},
        gid,
    )
    emu.dispatch("MESSAGE_REACTION_REMOVE_ALL", {"guild_id": gid, "channel_id": ch, "message_id": msg["id"]}, gid)
    emu.user_deletes(ch, msg["id"])
    emu.dispatch("MESSAGE_DELETE_BULK", {"guild_id": gid, "channel_id": ch, "ids": ["1", "2"]}, gid)
    emu.invoke_slash(gid, ch, uid, "probe", options=[{"name": "x", "type": 3, "value": "y"}])
    bot_msg = wait_for(
        lambda: [m for m in emu.messages(ch) if m["author"].get("bot") and m["content"] == "here"], message="button message"
    )[0]
    emu.click_component(ch, bot_msg["id"], uid, "b1")
    emu.submit_modal(gid, ch, uid, "m1", fields={"f": "v"})
    newbie = emu.create_user("newbie")
    emu.add_member(gid, newbie["id"])
    emu.update_member(gid, newbie["id"], nick="nick")
    emu.remove_member(gid, newbie["id"])
    chan = emu.create_channel(gid, "new-channel")
    emu.dispatch("CHANNEL_UPDATE", dict(emu.channel(chan["id"]), name="renamed"), gid)
    emu.dispatch("CHANNEL_DELETE", emu.channel(chan["id"]), gid)
    thread = emu.create_thread(ch, "a thread")
    emu.dispatch("THREAD_UPDATE", dict(emu.channel(thread["id"]), name="renamed thread"), gid)
    emu.dispatch("THREAD_DELETE", {"id": thread["id"], "guild_id": gid, "parent_id": ch, "type": 11}, gid)
    role = emu.create_role(gid, "Helper", permissions="0")
    emu.dispatch("GUILD_ROLE_UPDATE", {"guild_id": gid, "role": dict(role, name="Helpers")}, gid)
    emu.dispatch("GUILD_ROLE_DELETE", {"guild_id": gid, "role_id": role["id"]}, gid)
    emu.dispatch(
        "VOICE_STATE_UPDATE",
        {
            "guild_id": gid,
            "channel_id": None,
            "user_id": uid,
            "session_id": "s",
            "deaf": False,
            "mute": False,
            "self_deaf": True,
            "self_mute": False,
            "self_video": False,
            "suppress": False,
            "request_to_speak_timestamp": None,
        },
        gid,
    )

    def seen():
        out = {}
        for e in stack.guild_logs(gid):
            if e["message"].startswith("EVT "):
                _, name, body = e["message"].split(" ", 2)
                out.setdefault(name, json.loads(body))
        return out if set(out) >= set(SHAPES) else None

    try:
        got = wait_for(seen, timeout=20, message="every event")
    except AssertionError:
        missing = set(SHAPES) - {e["message"].split(" ")[1] for e in stack.guild_logs(gid) if e["message"].startswith("EVT ")}
        pytest.fail(f"events never delivered: {sorted(missing)}")
    for name, shape in SHAPES.items():
        check_shape(name, got[name], shape)
    assert got["interactionCreate"]["commandName"] == "probe"
    assert got["interactionCreate"]["data"]["options"][0] == {"name": "x", "type": 3, "value": "y"}
    assert got["componentInteraction"]["data"]["custom_id"] == "b1"  # raw data stays snake_case, as in flora
    assert got["messageUpdate"]["content"] == "edited"
    assert got["guildMemberUpdate"]["member"]["nick"] == "nick"
    assert got["voiceStateUpdate"]["selfDeaf"] is True and got["voiceStateUpdate"]["channelId"] is None


def test_ready_is_broadcast_to_subscribed_scripts(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Ready")
    script = "on('ready', (ctx) => console.log('READY ' + JSON.stringify(ctx.msg)));"
    assert deploy_files(stack, g["id"], {"src/main.ts": script})[0] == 200
    emu.invalidate_session(resumable=False)  # the bot identifies again and gets a new READY
    entry = stack.wait_log(g["id"], "READY ")
    payload = json.loads(entry["message"][len("READY ") :])
    assert set(payload) == {"user", "guildIds"} and payload["guildIds"] == []  # flora sends an empty list, on purpose
    check_shape("ready.user", payload["user"], USER)
    assert payload["user"]["bot"] is True
