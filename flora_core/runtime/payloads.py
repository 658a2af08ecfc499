"""Raw Discord gateway payloads -> flora's event payloads (reference §1.6–1.7).

Beyond flora's twelve events: member join/leave/update, channel, thread and role
create/update/delete, and voice state updates, in the same conventions.

Keys are camelCase, snowflakes strings, absent optionals ``null``; ``data`` and
``emoji`` stay raw (snake_case), as in flora. Each converter returns
``(event_name, guild_id, payload)`` or ``None`` when flora drops the event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _s(value: Any) -> str | None:
    return None if value is None else str(value)


def user(raw: dict | None) -> dict | None:
    if not raw:
        return None
    disc = raw.get("discriminator")
    try:
        disc_num = int(disc) if disc not in (None, "", "0") else None
    except (TypeError, ValueError):
        disc_num = None
    return {
        "id": _s(raw.get("id")),
        "username": raw.get("username"),
        "discriminator": disc_num,
        "bot": bool(raw.get("bot", False)),
    }


def member(raw: dict | None, author: dict | None = None, *, in_message: bool = False) -> dict | None:
    if not raw:
        return None
    out = {
        "user": user(raw.get("user") or author),
        "nick": raw.get("nick"),
        "avatar": None if in_message else raw.get("avatar"),
        "roles": [str(r) for r in raw.get("roles", [])],
        "joinedAt": raw.get("joined_at"),
        "premiumSince": None if in_message else raw.get("premium_since"),
        "deaf": bool(raw.get("deaf", False)),
        "mute": bool(raw.get("mute", False)),
        "flags": 0 if in_message else int(raw.get("flags") or 0),
        "pending": bool(raw.get("pending", False)),
        "permissions": None if in_message else _s(raw.get("permissions")),
        "communicationDisabledUntil": None if in_message else raw.get("communication_disabled_until"),
    }
    return out


def message(raw: dict) -> dict:
    author = raw.get("author")
    return {
        "id": _s(raw.get("id")),
        "channelId": _s(raw.get("channel_id")),
        "guildId": _s(raw.get("guild_id")),
        "content": raw.get("content", ""),
        "author": user(author),
        "member": member(raw.get("member"), author, in_message=True),
    }


def _message_create(raw: dict):
    return "messageCreate", raw.get("guild_id"), message(raw)


def _message_update(raw: dict):
    new = message(raw) if raw.get("author") else None
    payload = {
        "id": _s(raw.get("id")),
        "channelId": _s(raw.get("channel_id")),
        "guildId": _s(raw.get("guild_id")),
        "content": raw.get("content"),
        "author": user(raw.get("author")),
        "editedTimestamp": raw.get("edited_timestamp"),
        "old": None,
        "new": new,
    }
    return "messageUpdate", raw.get("guild_id"), payload


def _message_delete(raw: dict):
    return (
        "messageDelete",
        raw.get("guild_id"),
        {"id": _s(raw.get("id")), "channelId": _s(raw.get("channel_id")), "guildId": _s(raw.get("guild_id"))},
    )


def _message_delete_bulk(raw: dict):
    payload = {
        "ids": [str(i) for i in raw.get("ids", [])],
        "channelId": _s(raw.get("channel_id")),
        "guildId": _s(raw.get("guild_id")),
    }
    return "messageDeleteBulk", raw.get("guild_id"), payload


def _interaction_base(raw: dict) -> dict:
    mem = raw.get("member")
    return {
        "interactionId": _s(raw.get("id")),
        "interactionToken": raw.get("token"),
        "applicationId": _s(raw.get("application_id")),
        "guildId": _s(raw.get("guild_id")),
        "channelId": _s(raw.get("channel_id") or (raw.get("channel") or {}).get("id")),
        "user": user((mem or {}).get("user") or raw.get("user")),
        "member": member(mem) if mem else None,
    }


def _interaction_create(raw: dict):
    kind = raw.get("type")
    base = _interaction_base(raw)
    data = raw.get("data") or {}
    locale = {"locale": raw.get("locale") or "en-US", "guildLocale": raw.get("guild_locale")}
    if kind == 2:
        return "interactionCreate", raw.get("guild_id"), {**base, "commandName": data.get("name"), "data": data, **locale}
    if kind == 3:
        msg_id = (raw.get("message") or {}).get("id")
        return "componentInteraction", raw.get("guild_id"), {**base, "messageId": _s(msg_id), "data": data, **locale}
    if kind == 5:
        msg_id = (raw.get("message") or {}).get("id")
        return "modalSubmit", raw.get("guild_id"), {**base, "messageId": _s(msg_id), "data": data, **locale}
    return None  # pings and autocomplete are not delivered (flora ignores autocomplete)


def _reaction(name: str):
    def convert(raw: dict):
        payload = {
            "userId": _s(raw.get("user_id")),
            "channelId": _s(raw.get("channel_id")),
            "messageId": _s(raw.get("message_id")),
            "guildId": _s(raw.get("guild_id")),
            "emoji": raw.get("emoji"),
            "burst": bool(raw.get("burst", False)),
        }
        return name, raw.get("guild_id"), payload

    return convert


def _reaction_remove_all(raw: dict):
    payload = {"messageId": _s(raw.get("message_id")), "channelId": _s(raw.get("channel_id")), "guildId": _s(raw.get("guild_id"))}
    return "reactionRemoveAll", raw.get("guild_id"), payload


# -- events flora did not expose (same conventions: camelCase, string ids, null for absent) --
def _member_event(name: str):
    def convert(raw: dict):
        mem = {k: v for k, v in raw.items() if k != "guild_id"}
        return (
            name,
            raw.get("guild_id"),
            {"guildId": _s(raw.get("guild_id")), "user": user(raw.get("user")), "member": member(mem)},
        )

    return convert


def _member_remove(raw: dict):
    return "guildMemberRemove", raw.get("guild_id"), {"guildId": _s(raw.get("guild_id")), "user": user(raw.get("user"))}


def channel(raw: dict) -> dict:
    return {
        "id": _s(raw.get("id")),
        "guildId": _s(raw.get("guild_id")),
        "type": raw.get("type"),
        "name": raw.get("name"),
        "parentId": _s(raw.get("parent_id")),
        "position": raw.get("position"),
        "topic": raw.get("topic"),
        "nsfw": bool(raw.get("nsfw", False)),
        "rateLimitPerUser": raw.get("rate_limit_per_user"),
    }


def thread(raw: dict) -> dict:
    meta = raw.get("thread_metadata") or {}
    return {
        "id": _s(raw.get("id")),
        "guildId": _s(raw.get("guild_id")),
        "parentId": _s(raw.get("parent_id")),
        "type": raw.get("type"),
        "name": raw.get("name"),
        "ownerId": _s(raw.get("owner_id")),
        "archived": bool(meta.get("archived", False)),
        "locked": bool(meta.get("locked", False)),
        "messageCount": raw.get("message_count"),
        "memberCount": raw.get("member_count"),
    }


def _entity(name: str, shape: Callable[[dict], dict]):
    def convert(raw: dict):
        return name, raw.get("guild_id"), shape(raw)

    return convert


def role(raw: dict | None) -> dict | None:
    if not raw:
        return None
    return {
        "id": _s(raw.get("id")),
        "name": raw.get("name"),
        "color": raw.get("color", 0),
        "hoist": bool(raw.get("hoist", False)),
        "position": raw.get("position"),
        "permissions": _s(raw.get("permissions")),
        "managed": bool(raw.get("managed", False)),
        "mentionable": bool(raw.get("mentionable", False)),
    }


def _role_event(name: str):
    def convert(raw: dict):
        return name, raw.get("guild_id"), {"guildId": _s(raw.get("guild_id")), "role": role(raw.get("role"))}

    return convert


def _role_delete(raw: dict):
    return "roleDelete", raw.get("guild_id"), {"guildId": _s(raw.get("guild_id")), "roleId": _s(raw.get("role_id"))}


def _voice_state(raw: dict):
    payload = {
        "guildId": _s(raw.get("guild_id")),
        "channelId": _s(raw.get("channel_id")),
        "userId": _s(raw.get("user_id")),
        "member": member(raw.get("member")) if raw.get("member") else None,
        "sessionId": raw.get("session_id"),
        "deaf": bool(raw.get("deaf", False)),
        "mute": bool(raw.get("mute", False)),
        "selfDeaf": bool(raw.get("self_deaf", False)),
        "selfMute": bool(raw.get("self_mute", False)),
        "selfStream": bool(raw.get("self_stream", False)),
        "selfVideo": bool(raw.get("self_video", False)),
        "suppress": bool(raw.get("suppress", False)),
    }
    return "voiceStateUpdate", raw.get("guild_id"), payload


CONVERTERS: dict[str, Callable[[dict], Any]] = {
    "GUILD_MEMBER_ADD": _member_event("guildMemberAdd"),
    "GUILD_MEMBER_UPDATE": _member_event("guildMemberUpdate"),
    "GUILD_MEMBER_REMOVE": _member_remove,
    "CHANNEL_CREATE": _entity("channelCreate", channel),
    "CHANNEL_UPDATE": _entity("channelUpdate", channel),
    "CHANNEL_DELETE": _entity("channelDelete", channel),
    "THREAD_CREATE": _entity("threadCreate", thread),
    "THREAD_UPDATE": _entity("threadUpdate", thread),
    "THREAD_DELETE": _entity("threadDelete", thread),
    "GUILD_ROLE_CREATE": _role_event("roleCreate"),
    "GUILD_ROLE_UPDATE": _role_event("roleUpdate"),
    "GUILD_ROLE_DELETE": _role_delete,
    "VOICE_STATE_UPDATE": _voice_state,
    "MESSAGE_CREATE": _message_create,
    "MESSAGE_UPDATE": _message_update,
    "MESSAGE_DELETE": _message_delete,
    "MESSAGE_DELETE_BULK": _message_delete_bulk,
    "INTERACTION_CREATE": _interaction_create,
    "MESSAGE_REACTION_ADD": _reaction("reactionAdd"),
    "MESSAGE_REACTION_REMOVE": _reaction("reactionRemove"),
    "MESSAGE_REACTION_REMOVE_EMOJI": _reaction("reactionRemoveEmoji"),
    "MESSAGE_REACTION_REMOVE_ALL": _reaction_remove_all,
}

# Which flora event names each gateway event can produce (to skip conversion when nobody listens).
EVENT_NAMES: dict[str, tuple[str, ...]] = {
    "MESSAGE_CREATE": ("messageCreate",),
    "MESSAGE_UPDATE": ("messageUpdate",),
    "MESSAGE_DELETE": ("messageDelete",),
    "MESSAGE_DELETE_BULK": ("messageDeleteBulk",),
    "INTERACTION_CREATE": ("interactionCreate", "componentInteraction", "modalSubmit"),
    "MESSAGE_REACTION_ADD": ("reactionAdd",),
    "MESSAGE_REACTION_REMOVE": ("reactionRemove",),
    "MESSAGE_REACTION_REMOVE_EMOJI": ("reactionRemoveEmoji",),
    "MESSAGE_REACTION_REMOVE_ALL": ("reactionRemoveAll",),
    "GUILD_MEMBER_ADD": ("guildMemberAdd",),
    "GUILD_MEMBER_UPDATE": ("guildMemberUpdate",),
    "GUILD_MEMBER_REMOVE": ("guildMemberRemove",),
    "CHANNEL_CREATE": ("channelCreate",),
    "CHANNEL_UPDATE": ("channelUpdate",),
    "CHANNEL_DELETE": ("channelDelete",),
    "THREAD_CREATE": ("threadCreate",),
    "THREAD_UPDATE": ("threadUpdate",),
    "THREAD_DELETE": ("threadDelete",),
    "GUILD_ROLE_CREATE": ("roleCreate",),
    "GUILD_ROLE_UPDATE": ("roleUpdate",),
    "GUILD_ROLE_DELETE": ("roleDelete",),
    "VOICE_STATE_UPDATE": ("voiceStateUpdate",),
}


def convert(event_type: str, raw: dict):
    """Return ``(event_name, guild_id, payload)`` or ``None`` if flora drops it."""
    fn = CONVERTERS.get(event_type)
    if fn is None:
        return None
    out = fn(raw)
    if out is None or not out[1]:
        return None  # events without a guild id (DMs) are dropped, as in flora
    name, guild_id, payload = out
    return name, str(guild_id), payload


def ready(raw: dict) -> dict:
    return {"user": user(raw.get("user")), "guildIds": []}
