"""Discord-shaped payload builders and API constants (intents, permissions, errors)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# --- gateway intents -------------------------------------------------------
GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_MODERATION = 1 << 2
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
GUILD_MESSAGE_TYPING = 1 << 11
DIRECT_MESSAGES = 1 << 12
DIRECT_MESSAGE_REACTIONS = 1 << 13
DIRECT_MESSAGE_TYPING = 1 << 14
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

# event name -> (intent needed for guild events, intent needed for DM events); 0 = always sent
EVENT_INTENTS: dict[str, tuple[int, int]] = {
    "GUILD_CREATE": (GUILDS, GUILDS),
    "GUILD_UPDATE": (GUILDS, GUILDS),
    "GUILD_DELETE": (GUILDS, GUILDS),
    "GUILD_ROLE_CREATE": (GUILDS, GUILDS),
    "GUILD_ROLE_UPDATE": (GUILDS, GUILDS),
    "GUILD_ROLE_DELETE": (GUILDS, GUILDS),
    "CHANNEL_CREATE": (GUILDS, GUILDS),
    "CHANNEL_UPDATE": (GUILDS, GUILDS),
    "CHANNEL_DELETE": (GUILDS, GUILDS),
    "CHANNEL_PINS_UPDATE": (GUILDS, DIRECT_MESSAGES),
    "THREAD_CREATE": (GUILDS, GUILDS),
    "THREAD_UPDATE": (GUILDS, GUILDS),
    "THREAD_DELETE": (GUILDS, GUILDS),
    "THREAD_LIST_SYNC": (GUILDS, GUILDS),
    "THREAD_MEMBER_UPDATE": (GUILDS, GUILDS),
    "THREAD_MEMBERS_UPDATE": (GUILDS | GUILD_MEMBERS, GUILDS | GUILD_MEMBERS),
    "GUILD_MEMBER_ADD": (GUILD_MEMBERS, GUILD_MEMBERS),
    "GUILD_MEMBER_UPDATE": (GUILD_MEMBERS, GUILD_MEMBERS),
    "GUILD_MEMBER_REMOVE": (GUILD_MEMBERS, GUILD_MEMBERS),
    "GUILD_BAN_ADD": (GUILD_MODERATION, GUILD_MODERATION),
    "GUILD_BAN_REMOVE": (GUILD_MODERATION, GUILD_MODERATION),
    "PRESENCE_UPDATE": (GUILD_PRESENCES, GUILD_PRESENCES),
    "MESSAGE_CREATE": (GUILD_MESSAGES, DIRECT_MESSAGES),
    "MESSAGE_UPDATE": (GUILD_MESSAGES, DIRECT_MESSAGES),
    "MESSAGE_DELETE": (GUILD_MESSAGES, DIRECT_MESSAGES),
    "MESSAGE_DELETE_BULK": (GUILD_MESSAGES, DIRECT_MESSAGES),
    "MESSAGE_REACTION_ADD": (GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGE_REACTIONS),
    "MESSAGE_REACTION_REMOVE": (GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGE_REACTIONS),
    "MESSAGE_REACTION_REMOVE_ALL": (GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGE_REACTIONS),
    "MESSAGE_REACTION_REMOVE_EMOJI": (GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGE_REACTIONS),
    "TYPING_START": (GUILD_MESSAGE_TYPING, DIRECT_MESSAGE_TYPING),
}

# --- permissions -------------------------------------------------------------
ADMINISTRATOR = 1 << 3
VIEW_CHANNEL = 1 << 10
ALL_PERMISSIONS = (1 << 51) - 1
DEFAULT_EVERYONE_PERMISSIONS = "2248473465835073"  # Discord's current @everyone default

# --- misc -----------------------------------------------------------------------
EPHEMERAL = 1 << 6
LOADING = 1 << 7
SUPPRESS_EMBEDS = 1 << 2
ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024


def iso_now() -> str:
    return datetime.now(UTC).isoformat()


class ApiError(Exception):
    """A Discord-style JSON error: ``{"message", "code", "errors"?}`` with an HTTP status."""

    def __init__(self, status: int, code: int, message: str, errors: dict | None = None) -> None:
        super().__init__(f"{status} {message} (code {code})")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors:
            body["errors"] = self.errors
        return body


def unknown(kind: str) -> ApiError:
    codes = {
        "Account": 10001,
        "Application": 10002,
        "Channel": 10003,
        "Guild": 10004,
        "Integration": 10005,
        "Invite": 10006,
        "Member": 10007,
        "Message": 10008,
        "Permission Overwrite": 10009,
        "Role": 10011,
        "User": 10013,
        "Emoji": 10014,
        "Webhook": 10015,
        "Ban": 10026,
        "Interaction": 10062,
        "application command": 10063,
    }
    return ApiError(404, codes[kind], f"Unknown {kind}")


def invalid_form(field: str, code: str, message: str) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", {field: {"_errors": [{"code": code, "message": message}]}})


def empty_message_error() -> ApiError:
    return invalid_form(
        "content", "BASE_TYPE_REQUIRED", "Must include content, embeds, components, attachments, sticker_ids or poll"
    )


def user_obj(
    user_id: str,
    username: str,
    *,
    bot: bool = False,
    global_name: str | None = None,
    avatar: str | None = None,
    system: bool = False,
) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": username,
        "discriminator": "0",
        "global_name": global_name,
        "avatar": avatar,
        "bot": bot,
        "system": system,
        "public_flags": 0,
        "flags": 0,
        "banner": None,
        "accent_color": None,
        "avatar_decoration_data": None,
        "primary_guild": None,
    }


def role_obj(
    role_id: str,
    name: str,
    *,
    permissions: str = "0",
    color: int = 0,
    position: int = 0,
    hoist: bool = False,
    managed: bool = False,
    mentionable: bool = False,
    tags: dict | None = None,
) -> dict[str, Any]:
    role: dict[str, Any] = {
        "id": role_id,
        "name": name,
        "color": color,
        "colors": {"primary_color": color, "secondary_color": None, "tertiary_color": None},
        "hoist": hoist,
        "icon": None,
        "unicode_emoji": None,
        "position": position,
        "permissions": str(permissions),
        "managed": managed,
        "mentionable": mentionable,
        "flags": 0,
    }
    if tags is not None:
        role["tags"] = tags
    return role


def channel_obj(
    channel_id: str,
    guild_id: str | None,
    name: str,
    *,
    type: int = 0,
    position: int = 0,
    parent_id: str | None = None,
    topic: str | None = None,
    nsfw: bool = False,
    permission_overwrites: list | None = None,
) -> dict[str, Any]:
    ch: dict[str, Any] = {
        "id": channel_id,
        "type": type,
        "name": name,
        "position": position,
        "permission_overwrites": list(permission_overwrites or []),
        "parent_id": parent_id,
        "flags": 0,
    }
    if guild_id is not None:
        ch["guild_id"] = guild_id
    if type in (0, 5, 15, 16):  # text, announcement, forum, media
        ch.update(
            topic=topic,
            nsfw=nsfw,
            last_message_id=None,
            rate_limit_per_user=0,
            last_pin_timestamp=None,
            default_auto_archive_duration=1440,
            default_thread_rate_limit_per_user=0,
        )
    elif type in (2, 13):  # voice, stage
        ch.update(
            bitrate=64000,
            user_limit=0,
            rtc_region=None,
            video_quality_mode=1,
            nsfw=nsfw,
            rate_limit_per_user=0,
            last_message_id=None,
        )
    return ch


_EMOJI_CUSTOM = re.compile(r"^<?(a)?:?([A-Za-z0-9_~]+):(\d+)>?$")


def parse_emoji(raw: str) -> dict[str, Any]:
    """``👍`` -> ``{id: None, name: "👍"}``; ``name:123`` / ``<a:name:123>`` -> custom emoji."""
    m = _EMOJI_CUSTOM.match(raw)
    if m:
        emoji: dict[str, Any] = {"id": m.group(3), "name": m.group(2)}
        if m.group(1):
            emoji["animated"] = True
        return emoji
    return {"id": None, "name": raw}


def emoji_key(emoji: dict[str, Any]) -> str:
    return emoji["id"] or emoji["name"]


MENTION_USER = re.compile(r"<@!?(\d+)>")
MENTION_ROLE = re.compile(r"<@&(\d+)>")


def has_message_body(payload: dict[str, Any], files: list | None = None) -> bool:
    return bool(
        payload.get("content")
        or payload.get("embeds")
        or payload.get("components")
        or payload.get("attachments")
        or payload.get("sticker_ids")
        or payload.get("poll")
        or files
    )
