"""Raw Discord gateway payloads -> flora's event payloads (reference §1.6–1.7).

Keys are camelCase, snowflakes strings, absent optionals ``null``; ``data`` and
``emoji`` stay raw (snake_case), as in flora. Each converter returns
``(event_name, guild_id, payload)`` or ``None`` when flora drops the event.
"""

from __future__ import annotations

from typing import Any, Callable


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
    return {"id": _s(raw.get("id")), "username": raw.get("username"), "discriminator": disc_num, "bot": bool(raw.get("bot", False))}


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
    return "messageDelete", raw.get("guild_id"), {"id": _s(raw.get("id")), "channelId": _s(raw.get("channel_id")), "guildId": _s(raw.get("guild_id"))}


def _message_delete_bulk(raw: dict):
    payload = {"ids": [str(i) for i in raw.get("ids", [])], "channelId": _s(raw.get("channel_id")), "guildId": _s(raw.get("guild_id"))}
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


CONVERTERS: dict[str, Callable[[dict], Any]] = {
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
