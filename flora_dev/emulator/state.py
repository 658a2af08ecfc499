"""In-memory Discord world: users, guilds, roles, channels, members; message, command and
interaction logic lives in mixins (messages.py, commands.py, interactions.py).

All methods run on the emulator's event-loop thread. Objects handed out are treated as
read-only snapshots: messages are replaced, never mutated in place, once stored.
"""

from __future__ import annotations

import copy
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .commands import CommandsMixin
from .interactions import InteractionsMixin
from .messages import MessagesMixin
from .models import (
    ADMINISTRATOR,
    ALL_PERMISSIONS,
    DEFAULT_EVERYONE_PERMISSIONS,
    ApiError,
    channel_obj,
    iso_now,
    role_obj,
    unknown,
    user_obj,
)
from .snowflake import SnowflakeGenerator

Emit = Callable[..., None]  # emit(event_type, data, guild_id=None, *, dm=False)


class GuildRec:
    __slots__ = ("data", "roles", "channel_ids", "members", "commands", "bans")

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.roles: dict[str, dict] = {}
        self.channel_ids: list[str] = []
        self.members: dict[str, dict] = {}  # user_id -> member core (no "user")
        self.commands: dict[str, dict] = {}  # command_id -> command
        self.bans: dict[str, dict] = {}


class EmulatorState(MessagesMixin, CommandsMixin, InteractionsMixin):
    def __init__(
        self,
        token: str,
        *,
        application_id: str | None = None,
        bot_name: str = "flora-bot",
        interaction_ack_timeout: float | None = 3.0,
        max_recorded_requests: int = 20_000,
        max_channel_messages: int | None = 10_000,
    ) -> None:
        self.snowflakes = SnowflakeGenerator()
        self.token = token
        self.application_id = application_id or self.snowflakes.next()
        self.emit: Emit = lambda *a, **kw: None
        self.public_url = "http://127.0.0.1"
        self.users: dict[str, dict] = {}
        self.guilds: dict[str, GuildRec] = {}
        self.channels: dict[str, dict] = {}
        self.dm_channels: dict[str, str] = {}  # user_id -> channel_id
        self.messages: dict[str, dict[str, dict]] = {}  # channel_id -> {message_id: message}
        self.message_channel: dict[str, str] = {}  # message_id -> channel_id
        self.ephemeral: dict[str, dict] = {}  # message_id -> ephemeral message
        self.pins: dict[str, dict[str, str]] = {}  # channel_id -> {message_id: pinned_at}
        self.reaction_store: dict[str, dict] = {}  # message_id -> {emoji_key: (emoji, [user ids])}
        self.attachments: dict[str, tuple[str, str, bytes]] = {}
        self.webhooks: dict[str, dict] = {}
        self.global_commands: dict[str, dict] = {}
        self.interactions: dict[str, Any] = {}
        self.interaction_tokens: dict[str, str] = {}
        self.interaction_ack_timeout = interaction_ack_timeout
        self.max_channel_messages = max_channel_messages
        self.requests: deque[dict] = deque(maxlen=max_recorded_requests)
        self.unknown_routes: list[dict] = []
        self.bot_user = self.create_user(bot_name, bot=True, user_id=self.application_id)
        self.bot_user.update(verified=True, mfa_enabled=False, email=None, locale="en-US", premium_type=0)
        self.owner_user = self.create_user("emu-owner")

    # --- ids -----------------------------------------------------------------
    def new_id(self) -> str:
        return self.snowflakes.next()

    @property
    def bot_id(self) -> str:
        return self.bot_user["id"]

    # --- users -----------------------------------------------------------------
    def create_user(
        self,
        username: str,
        bot: bool = False,
        *,
        user_id: str | None = None,
        global_name: str | None = None,
        avatar: str | None = None,
    ) -> dict:
        uid = str(user_id) if user_id is not None else self.new_id()
        user = user_obj(uid, username, bot=bot, global_name=global_name, avatar=avatar)
        self.users[uid] = user
        return user

    def get_user(self, user_id: str) -> dict:
        try:
            return self.users[str(user_id)]
        except KeyError:
            raise unknown("User") from None

    def public_user(self, user_id: str) -> dict:
        user = self.get_user(user_id)
        if user_id == self.bot_id:
            return {k: v for k, v in user.items() if k not in ("verified", "mfa_enabled", "email", "locale", "premium_type")}
        return user

    # --- guilds ----------------------------------------------------------------
    def get_guild(self, guild_id: str) -> GuildRec:
        try:
            return self.guilds[str(guild_id)]
        except KeyError:
            raise unknown("Guild") from None

    def create_guild(
        self, name: str, guild_id: str | None = None, *, owner_id: str | None = None, shard: tuple[int, int] | None = None
    ) -> dict:
        """Create a guild the bot is in. ``shard=(i, n)`` picks an id owned by shard i of n."""
        if guild_id is not None:
            gid = str(guild_id)
        elif shard is not None:
            gid = self.snowflakes.next_for_shard(*shard)
        else:
            gid = self.new_id()
        if gid in self.guilds:
            raise ValueError(f"guild {gid} already exists")
        owner = str(owner_id) if owner_id is not None else self.bot_id
        data = {
            "id": gid,
            "name": name,
            "icon": None,
            "icon_hash": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": owner,
            "afk_channel_id": None,
            "afk_timeout": 300,
            "widget_enabled": False,
            "widget_channel_id": None,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "features": [],
            "mfa_level": 0,
            "application_id": None,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "max_presences": None,
            "max_members": 500000,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": "en-US",
            "public_updates_channel_id": None,
            "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50,
            "nsfw_level": 0,
            "nsfw": False,
            "premium_progress_bar_enabled": False,
            "safety_alerts_channel_id": None,
            "incidents_data": None,
            "region": "deprecated",
            "hub_type": None,
        }
        g = GuildRec(data)
        self.guilds[gid] = g
        g.roles[gid] = role_obj(gid, "@everyone", permissions=DEFAULT_EVERYONE_PERMISSIONS)
        bot_role = role_obj(
            self.new_id(),
            self.bot_user["username"],
            permissions=str(ADMINISTRATOR),
            position=1,
            managed=True,
            tags={"bot_id": self.bot_id},
        )
        g.roles[bot_role["id"]] = bot_role
        g.members[self.bot_id] = self._member_core(self.bot_id, [bot_role["id"]], None)
        if owner != self.bot_id and owner in self.users:
            g.members[owner] = self._member_core(owner, [], None)
        self.emit("GUILD_CREATE", self.guild_create_payload(gid), gid)
        return self.guild_payload(gid)

    def guild_payload(self, guild_id: str, *, with_counts: bool = False) -> dict:
        g = self.get_guild(guild_id)
        d = dict(g.data)
        d["roles"] = list(g.roles.values())
        d["emojis"] = []
        d["stickers"] = []
        if with_counts:
            d["approximate_member_count"] = len(g.members)
            d["approximate_presence_count"] = 0
        return d

    def guild_create_payload(self, guild_id: str) -> dict:
        """GUILD_CREATE body. Like real Discord without GUILD_PRESENCES, only the bot's own
        member is included; disnake chunks the rest with op 8 when it has GUILD_MEMBERS."""
        g = self.get_guild(guild_id)
        d = self.guild_payload(guild_id)
        bot_member = g.members.get(self.bot_id)
        d.update(
            joined_at=bot_member["joined_at"] if bot_member else iso_now(),
            large=len(g.members) >= 250,
            unavailable=False,
            member_count=len(g.members),
            members=[self.member_payload(guild_id, self.bot_id)] if bot_member else [],
            channels=[self.channels[c] for c in g.channel_ids if self.channels[c]["type"] not in (10, 11, 12)],
            threads=[self.channels[c] for c in g.channel_ids if self.channels[c]["type"] in (10, 11, 12)],
            voice_states=[],
            presences=[],
            stage_instances=[],
            guild_scheduled_events=[],
            soundboard_sounds=[],
            embedded_activities=[],
        )
        return d

    def remove_guild(self, guild_id: str) -> None:
        gid = str(guild_id)
        g = self.get_guild(gid)
        for cid in list(g.channel_ids):
            self.channels.pop(cid, None)
            for mid in self.messages.pop(cid, {}):
                self.message_channel.pop(mid, None)
        del self.guilds[gid]
        self.emit("GUILD_DELETE", {"id": gid, "unavailable": False}, gid)

    # --- roles -----------------------------------------------------------------
    def create_role(
        self,
        guild_id: str,
        name: str,
        permissions: str | int = "0",
        *,
        color: int = 0,
        hoist: bool = False,
        mentionable: bool = False,
        role_id: str | None = None,
    ) -> dict:
        gid = str(guild_id)
        g = self.get_guild(gid)
        rid = str(role_id) if role_id is not None else self.new_id()
        role = role_obj(
            rid, name, permissions=str(permissions), color=color, position=len(g.roles), hoist=hoist, mentionable=mentionable
        )
        g.roles[rid] = role
        self.emit("GUILD_ROLE_CREATE", {"guild_id": gid, "role": role}, gid)
        return role

    def get_role(self, guild_id: str, role_id: str) -> dict:
        try:
            return self.get_guild(guild_id).roles[str(role_id)]
        except KeyError:
            raise unknown("Role") from None

    def edit_role(self, guild_id: str, role_id: str, changes: dict) -> dict:
        gid = str(guild_id)
        role = dict(self.get_role(gid, role_id))
        for key in ("name", "hoist", "mentionable", "unicode_emoji", "icon"):
            if key in changes:
                role[key] = changes[key]
        if "permissions" in changes and changes["permissions"] is not None:
            role["permissions"] = str(changes["permissions"])
        color = changes.get("color", changes.get("colour"))
        colors = changes.get("colors")
        if color is not None:
            role["color"] = color
            role["colors"] = {"primary_color": color, "secondary_color": None, "tertiary_color": None}
        if isinstance(colors, dict):
            role["colors"] = {
                "primary_color": colors.get("primary_color", 0),
                "secondary_color": colors.get("secondary_color"),
                "tertiary_color": colors.get("tertiary_color"),
            }
            role["color"] = role["colors"]["primary_color"]
        self.guilds[gid].roles[role["id"]] = role
        self.emit("GUILD_ROLE_UPDATE", {"guild_id": gid, "role": role}, gid)
        return role

    def delete_role(self, guild_id: str, role_id: str) -> None:
        gid, rid = str(guild_id), str(role_id)
        g = self.get_guild(gid)
        self.get_role(gid, rid)
        if rid == gid:
            raise ApiError(400, 50028, "Invalid Role")
        del g.roles[rid]
        for member in g.members.values():
            if rid in member["roles"]:
                member["roles"] = [r for r in member["roles"] if r != rid]
        self.emit("GUILD_ROLE_DELETE", {"guild_id": gid, "role_id": rid}, gid)

    # --- channels --------------------------------------------------------------
    def create_channel(
        self,
        guild_id: str,
        name: str,
        type: int = 0,
        *,
        parent_id: str | None = None,
        topic: str | None = None,
        position: int | None = None,
        permission_overwrites: list | None = None,
        nsfw: bool = False,
        channel_id: str | None = None,
    ) -> dict:
        gid = str(guild_id)
        g = self.get_guild(gid)
        cid = str(channel_id) if channel_id is not None else self.new_id()
        if position is None:
            position = sum(1 for c in g.channel_ids if self.channels[c]["type"] == type)
        ch = channel_obj(
            cid,
            gid,
            name,
            type=type,
            position=position,
            parent_id=str(parent_id) if parent_id else None,
            topic=topic,
            nsfw=nsfw,
            permission_overwrites=permission_overwrites,
        )
        self.channels[cid] = ch
        self.messages[cid] = {}
        g.channel_ids.append(cid)
        if g.data["system_channel_id"] is None and type == 0:
            g.data["system_channel_id"] = cid
        self.emit("CHANNEL_CREATE", ch, gid)
        return ch

    def create_thread(
        self,
        channel_id: str,
        name: str,
        *,
        type: int = 11,
        message_id: str | None = None,
        owner_id: str | None = None,
        auto_archive_duration: int = 1440,
    ) -> dict:
        parent = self.get_channel(channel_id)
        gid = parent.get("guild_id")
        if gid is None:
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        owner = str(owner_id) if owner_id else self.bot_id
        tid = str(message_id) if message_id else self.new_id()
        if tid in self.channels:
            raise ApiError(400, 160004, "A thread has already been created for this message")
        thread = {
            "id": tid,
            "type": type,
            "guild_id": gid,
            "parent_id": parent["id"],
            "name": name,
            "owner_id": owner,
            "last_message_id": None,
            "rate_limit_per_user": 0,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "flags": 0,
            "position": 0,
            "permission_overwrites": [],
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": auto_archive_duration,
                "archive_timestamp": iso_now(),
                "locked": False,
                "invitable": type == 12,
                "create_timestamp": iso_now(),
            },
            "member": {"id": tid, "user_id": owner, "join_timestamp": iso_now(), "flags": 0},
        }
        self.channels[tid] = thread
        self.messages[tid] = {}
        self.get_guild(gid).channel_ids.append(tid)
        if message_id:
            msg = self.get_message(parent["id"], message_id)
            self._replace_message(dict(msg, thread=thread, flags=msg["flags"] | 32))
        self.emit("THREAD_CREATE", dict(thread, newly_created=True), gid)
        return thread

    def get_channel(self, channel_id: str) -> dict:
        try:
            return self.channels[str(channel_id)]
        except KeyError:
            raise unknown("Channel") from None

    def edit_channel(self, channel_id: str, changes: dict) -> dict:
        ch = dict(self.get_channel(channel_id))
        for key in (
            "name",
            "topic",
            "nsfw",
            "position",
            "parent_id",
            "rate_limit_per_user",
            "permission_overwrites",
            "default_auto_archive_duration",
            "flags",
        ):
            if key in changes:
                ch[key] = changes[key]
        if "archived" in changes or "locked" in changes:
            meta = dict(ch.get("thread_metadata") or {})
            meta.update({k: changes[k] for k in ("archived", "locked") if k in changes})
            ch["thread_metadata"] = meta
        self.channels[ch["id"]] = ch
        is_thread = ch["type"] in (10, 11, 12)
        self.emit("THREAD_UPDATE" if is_thread else "CHANNEL_UPDATE", ch, ch.get("guild_id"))
        return ch

    def delete_channel(self, channel_id: str) -> dict:
        ch = self.get_channel(channel_id)
        cid = ch["id"]
        del self.channels[cid]
        for mid in self.messages.pop(cid, {}):
            self.message_channel.pop(mid, None)
        gid = ch.get("guild_id")
        if gid and gid in self.guilds:
            self.guilds[gid].channel_ids.remove(cid)
        is_thread = ch["type"] in (10, 11, 12)
        self.emit(
            "THREAD_DELETE" if is_thread else "CHANNEL_DELETE",
            {k: ch[k] for k in ("id", "guild_id", "parent_id", "type")} if is_thread else ch,
            gid,
        )
        return ch

    def open_dm(self, user_id: str) -> dict:
        uid = str(user_id)
        user = self.get_user(uid)
        cid = self.dm_channels.get(uid)
        if cid is None:
            cid = self.new_id()
            self.channels[cid] = {"id": cid, "type": 1, "last_message_id": None, "flags": 0, "recipients": [user]}
            self.messages[cid] = {}
            self.dm_channels[uid] = cid
        return self.channels[cid]

    def channel_with_permissions(self, channel_id: str, user_id: str) -> dict:
        ch = self.get_channel(channel_id)
        if ch.get("guild_id") is None:
            return dict(ch)
        return dict(ch, permissions=str(self.channel_permissions(ch["id"], user_id)))

    # --- members ---------------------------------------------------------------
    def _member_core(self, user_id: str, roles: list[str], nick: str | None, joined_at: str | None = None) -> dict:
        return {
            "user_id": user_id,
            "nick": nick,
            "roles": list(roles),
            "avatar": None,
            "banner": None,
            "joined_at": joined_at or iso_now(),
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "communication_disabled_until": None,
        }

    def add_member(
        self,
        guild_id: str,
        user_id: str,
        roles: list[str] | None = None,
        nick: str | None = None,
        *,
        joined_at: str | None = None,
    ) -> dict:
        gid, uid = str(guild_id), str(user_id)
        g = self.get_guild(gid)
        self.get_user(uid)
        for rid in roles or []:
            self.get_role(gid, rid)
        g.members[uid] = self._member_core(uid, [str(r) for r in roles or []], nick, joined_at)
        payload = self.member_payload(gid, uid)
        self.emit("GUILD_MEMBER_ADD", dict(payload, guild_id=gid), gid)
        return payload

    def get_member_core(self, guild_id: str, user_id: str) -> dict:
        try:
            return self.get_guild(guild_id).members[str(user_id)]
        except KeyError:
            raise unknown("Member") from None

    def member_payload(self, guild_id: str, user_id: str, *, with_user: bool = True, permissions: bool = False) -> dict:
        core = self.get_member_core(guild_id, user_id)
        d = {k: v for k, v in core.items() if k != "user_id"}
        if with_user:
            d["user"] = self.public_user(core["user_id"])
        if permissions:
            d["permissions"] = str(self.base_permissions(guild_id, user_id))
        return d

    def update_member(self, guild_id: str, user_id: str, changes: dict) -> dict:
        gid, uid = str(guild_id), str(user_id)
        core = self.get_member_core(gid, uid)
        if "roles" in changes and changes["roles"] is not None:
            for rid in changes["roles"]:
                self.get_role(gid, rid)
            core["roles"] = [str(r) for r in changes["roles"]]
        for key in ("nick", "mute", "deaf", "communication_disabled_until", "flags", "avatar"):
            if key in changes:
                core[key] = changes[key]
        payload = self.member_payload(gid, uid)
        self.emit("GUILD_MEMBER_UPDATE", dict(payload, guild_id=gid), gid)
        return payload

    def add_member_role(self, guild_id: str, user_id: str, role_id: str) -> None:
        core = self.get_member_core(guild_id, user_id)
        self.get_role(guild_id, role_id)
        if str(role_id) not in core["roles"]:
            self.update_member(guild_id, user_id, {"roles": core["roles"] + [str(role_id)]})

    def remove_member_role(self, guild_id: str, user_id: str, role_id: str) -> None:
        core = self.get_member_core(guild_id, user_id)
        self.get_role(guild_id, role_id)
        if str(role_id) in core["roles"]:
            self.update_member(guild_id, user_id, {"roles": [r for r in core["roles"] if r != str(role_id)]})

    def remove_member(self, guild_id: str, user_id: str) -> None:
        gid, uid = str(guild_id), str(user_id)
        self.get_member_core(gid, uid)
        del self.guilds[gid].members[uid]
        self.emit("GUILD_MEMBER_REMOVE", {"guild_id": gid, "user": self.public_user(uid)}, gid)

    def ban_member(self, guild_id: str, user_id: str, reason: str | None = None) -> None:
        gid, uid = str(guild_id), str(user_id)
        g = self.get_guild(gid)
        user = self.public_user(uid)
        g.bans[uid] = {"user": user, "reason": reason}
        if uid in g.members:
            self.remove_member(gid, uid)
        self.emit("GUILD_BAN_ADD", {"guild_id": gid, "user": user}, gid)

    def unban_member(self, guild_id: str, user_id: str) -> None:
        gid, uid = str(guild_id), str(user_id)
        g = self.get_guild(gid)
        ban = g.bans.pop(uid, None)
        if ban is None:
            raise unknown("Ban")
        self.emit("GUILD_BAN_REMOVE", {"guild_id": gid, "user": ban["user"]}, gid)

    def query_members(
        self, guild_id: str, *, query: str = "", limit: int = 0, user_ids: list[str] | None = None
    ) -> tuple[list[dict], list[str]]:
        g = self.get_guild(guild_id)
        not_found: list[str] = []
        if user_ids:
            uids = []
            for u in user_ids:
                (uids if str(u) in g.members else not_found).append(str(u))
        else:
            q = query.lower()
            uids = [
                u
                for u, core in g.members.items()
                if not q or self.users[u]["username"].lower().startswith(q) or (core["nick"] or "").lower().startswith(q)
            ]
            if limit:
                uids = uids[:limit]
        return [self.member_payload(guild_id, u) for u in uids], not_found

    # --- permissions -----------------------------------------------------------
    def base_permissions(self, guild_id: str, user_id: str) -> int:
        g = self.get_guild(guild_id)
        if str(user_id) == g.data["owner_id"]:
            return ALL_PERMISSIONS
        perms = int(g.roles[g.data["id"]]["permissions"])
        core = g.members.get(str(user_id))
        for rid in core["roles"] if core else ():
            role = g.roles.get(rid)
            if role:
                perms |= int(role["permissions"])
        return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms

    def channel_permissions(self, channel_id: str, user_id: str) -> int:
        ch = self.get_channel(channel_id)
        gid = ch.get("guild_id")
        if gid is None:
            return ALL_PERMISSIONS
        perms = self.base_permissions(gid, user_id)
        if perms == ALL_PERMISSIONS:
            return perms
        if ch["type"] in (10, 11, 12) and ch.get("parent_id") in self.channels:
            ch = self.channels[ch["parent_id"]]
        overwrites = {o["id"]: o for o in ch.get("permission_overwrites") or []}
        core = self.guilds[gid].members.get(str(user_id))
        everyone = overwrites.get(gid)
        if everyone:
            perms = (perms & ~int(everyone["deny"])) | int(everyone["allow"])
        allow = deny = 0
        for rid in core["roles"] if core else ():
            o = overwrites.get(rid)
            if o:
                allow |= int(o["allow"])
                deny |= int(o["deny"])
        perms = (perms & ~deny) | allow
        mine = overwrites.get(str(user_id))
        if mine:
            perms = (perms & ~int(mine["deny"])) | int(mine["allow"])
        return perms

    # --- attachments -----------------------------------------------------------
    def store_attachment(
        self, filename: str, data: bytes, content_type: str | None = None, description: str | None = None
    ) -> dict:
        aid = self.new_id()
        ctype = content_type or "application/octet-stream"
        self.attachments[aid] = (filename, ctype, data)
        url = f"{self.public_url}/attachments/{aid}/{filename}"
        att = {
            "id": aid,
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": ctype,
            "ephemeral": False,
        }
        if description:
            att["description"] = description
        return att

    # --- webhooks (channel webhooks, not interaction tokens) ---------------------
    def create_webhook(self, channel_id: str, name: str) -> dict:
        ch = self.get_channel(channel_id)
        wid = self.new_id()
        hook = {
            "id": wid,
            "type": 1,
            "guild_id": ch.get("guild_id"),
            "channel_id": ch["id"],
            "name": name,
            "avatar": None,
            "token": secrets.token_urlsafe(48),
            "application_id": self.application_id,
            "user": self.public_user(self.bot_id),
        }
        self.webhooks[wid] = hook
        return hook

    def get_webhook(self, webhook_id: str, token: str | None = None) -> dict:
        hook = self.webhooks.get(str(webhook_id))
        if hook is None:
            raise unknown("Webhook")
        if token is not None and token != hook["token"]:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return hook

    # --- snapshots ---------------------------------------------------------------
    def snapshot(self) -> dict:
        """A JSON-able summary of the world (for /_emu/state)."""
        return {
            "application_id": self.application_id,
            "bot_user": self.bot_user,
            "users": list(self.users.values()),
            "guilds": [
                dict(
                    self.guild_payload(gid),
                    channels=[self.channels[c] for c in g.channel_ids],
                    members=[self.member_payload(gid, u) for u in g.members],
                    commands=list(g.commands.values()),
                )
                for gid, g in self.guilds.items()
            ],
            "global_commands": list(self.global_commands.values()),
            "message_counts": {cid: len(m) for cid, m in self.messages.items()},
            "interactions": len(self.interactions),
            "requests": len(self.requests),
            "unknown_routes": list(self.unknown_routes),
        }

    @staticmethod
    def copy(obj: Any) -> Any:
        return copy.deepcopy(obj)

    @staticmethod
    def now() -> float:
        return time.monotonic()
