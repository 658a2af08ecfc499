"""Messages, reactions and pins (mixin of EmulatorState)."""

from __future__ import annotations

from typing import Any

from .models import (
    EPHEMERAL,
    LOADING,
    MENTION_ROLE,
    MENTION_USER,
    ApiError,
    emoji_key,
    empty_message_error,
    has_message_body,
    invalid_form,
    iso_now,
    parse_emoji,
    unknown,
)

# a file uploaded with a request: (form field name, filename, content_type, bytes)
UploadedFile = tuple[str, str, str, bytes]


class MessagesMixin:
    # --- lookup ------------------------------------------------------------------
    def get_message(self, channel_id: str, message_id: str) -> dict:
        cid = str(channel_id)
        if cid not in self.channels:
            raise unknown("Channel")
        msg = self.messages[cid].get(str(message_id))
        if msg is None:
            raise unknown("Message")
        return msg

    def find_message(self, message_id: str | None) -> dict | None:
        """A stored channel message or an ephemeral one, by id only."""
        if message_id is None:
            return None
        mid = str(message_id)
        cid = self.message_channel.get(mid)
        if cid is not None:
            return self.messages[cid].get(mid)
        return self.ephemeral.get(mid)

    def channel_messages(self, channel_id: str) -> list[dict]:
        cid = str(channel_id)
        if cid not in self.messages:
            raise unknown("Channel")
        return list(self.messages[cid].values())

    def _replace_message(self, msg: dict) -> None:
        mid = msg["id"]
        if mid in self.ephemeral:
            self.ephemeral[mid] = msg
        else:
            self.messages[msg["channel_id"]][mid] = msg

    # --- building -----------------------------------------------------------------
    def _attachments_from(
        self, payload: dict, files: list[UploadedFile] | None, existing: list[dict] | None = None
    ) -> list[dict]:
        specs = payload.get("attachments")
        kept: list[dict] = []
        by_index: dict[str, dict] = {}
        if isinstance(specs, list):
            old = {a["id"]: a for a in existing or []}
            for spec in specs:
                sid = str(spec.get("id"))
                if sid in old:
                    kept.append(old[sid])
                else:
                    by_index[sid] = spec
        elif existing:
            kept = list(existing)
        for index, (field, filename, ctype, data) in enumerate(files or []):
            n = field[6:-1] if field.startswith("files[") and field.endswith("]") else str(index)
            spec = by_index.get(n, {})
            kept.append(self.store_attachment(spec.get("filename") or filename, data, ctype, spec.get("description")))
        return kept

    def _mentions(
        self, content: str, guild_id: str | None, allowed: dict | None, replied_author: str | None
    ) -> tuple[list[dict], list[str], bool]:
        parse = allowed.get("parse", []) if allowed is not None else ["users", "roles", "everyone"]
        ok_users = set(map(str, allowed.get("users", []))) if allowed is not None else set()
        ok_roles = set(map(str, allowed.get("roles", []))) if allowed is not None else set()
        uids: list[str] = []
        for uid in MENTION_USER.findall(content):
            if uid in self.users and uid not in uids and ("users" in parse or uid in ok_users):
                uids.append(uid)
        if replied_author and replied_author not in uids and (allowed is None or allowed.get("replied_user", False)):
            uids.append(replied_author)
        guild = self.guilds.get(guild_id) if guild_id else None
        mentions = []
        for uid in uids:
            user = dict(self.public_user(uid))
            if guild is not None and uid in guild.members:
                user["member"] = self.member_payload(guild_id, uid, with_user=False)
            mentions.append(user)
        roles = [
            r
            for r in dict.fromkeys(MENTION_ROLE.findall(content))
            if guild is not None and r in guild.roles and ("roles" in parse or r in ok_roles)
        ]
        everyone = ("@everyone" in content or "@here" in content) and "everyone" in parse
        return mentions, roles, everyone

    def build_message(
        self,
        channel_id: str,
        author_id: str,
        payload: dict,
        files: list[UploadedFile] | None = None,
        *,
        author: dict | None = None,
        webhook_id: str | None = None,
        msg_type: int | None = None,
        extra: dict | None = None,
        allow_empty: bool = False,
    ) -> dict:
        """A new message dict (not stored). Raises ApiError for invalid bodies."""
        ch = self.get_channel(channel_id)
        cid = ch["id"]
        gid = ch.get("guild_id")
        content = payload.get("content")
        content = "" if content is None else str(content)
        if len(content) > 2000:
            raise invalid_form("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        embeds = payload.get("embeds") or []
        if len(embeds) > 10:
            raise invalid_form("embeds", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.")
        embeds = [e if "type" in e else dict(e, type="rich") for e in embeds]
        if not allow_empty and not has_message_body(payload, files):
            raise empty_message_error()
        ref_obj = referenced = None
        ref = payload.get("message_reference")
        if isinstance(ref, dict) and ref.get("message_id"):
            ref_cid = str(ref.get("channel_id") or cid)
            target = self.messages.get(ref_cid, {}).get(str(ref["message_id"]))
            if target is None:
                if ref.get("fail_if_not_exists", True):
                    raise invalid_form("message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message")
            else:
                ref_obj = {
                    "type": ref.get("type", 0),
                    "message_id": target["id"],
                    "channel_id": ref_cid,
                    "guild_id": target.get("guild_id"),
                }
                if ref_obj["guild_id"] is None:
                    del ref_obj["guild_id"]
                referenced = {k: v for k, v in target.items() if k != "referenced_message"}
        mentions, mention_roles, everyone = self._mentions(
            content, gid, payload.get("allowed_mentions"), referenced["author"]["id"] if referenced else None
        )
        if author is None:
            author = self.public_user(author_id)
        msg: dict[str, Any] = {
            "id": self.new_id(),
            "type": msg_type if msg_type is not None else (19 if referenced else 0),
            "content": content,
            "channel_id": cid,
            "author": author,
            "attachments": self._attachments_from(payload, files),
            "embeds": embeds,
            "mentions": mentions,
            "mention_roles": mention_roles,
            "mention_everyone": everyone,
            "pinned": False,
            "tts": bool(payload.get("tts")),
            "timestamp": iso_now(),
            "edited_timestamp": None,
            "flags": int(payload.get("flags") or 0),
            "components": payload.get("components") or [],
            "reactions": [],
        }
        if payload.get("nonce") is not None:
            msg["nonce"] = payload["nonce"]
        if payload.get("poll"):
            msg["poll"] = payload["poll"]
        if gid is not None:
            msg["guild_id"] = gid
            if webhook_id is None and author_id in self.guilds[gid].members:
                msg["member"] = self.member_payload(gid, author_id, with_user=False)
        if webhook_id is not None:
            msg["webhook_id"] = webhook_id
        if ref_obj is not None:
            msg["message_reference"] = ref_obj
            msg["referenced_message"] = referenced
        if extra:
            msg.update(extra)
        return msg

    def store_message(self, msg: dict, *, dispatch: bool = True) -> dict:
        """Store a built message in its channel (ephemeral ones aside) and emit MESSAGE_CREATE."""
        if msg["flags"] & EPHEMERAL:
            self.ephemeral[msg["id"]] = msg
            return msg
        cid = msg["channel_id"]
        box = self.messages[cid]
        box[msg["id"]] = msg
        self.message_channel[msg["id"]] = cid
        if self.max_channel_messages and len(box) > self.max_channel_messages:
            oldest = next(iter(box))  # keep memory bounded under benchmarks
            del box[oldest]
            self.message_channel.pop(oldest, None)
            self.reaction_store.pop(oldest, None)
            self.pins.get(cid, {}).pop(oldest, None)
        ch = self.channels[cid]
        ch["last_message_id"] = msg["id"]
        if "message_count" in ch:
            ch["message_count"] += 1
            ch["total_message_sent"] = ch.get("total_message_sent", 0) + 1
        if dispatch:
            self.emit("MESSAGE_CREATE", msg, msg.get("guild_id"), dm=msg.get("guild_id") is None)
        return msg

    def create_message(
        self, channel_id: str, author_id: str, payload: dict, files: list[UploadedFile] | None = None, **kw: Any
    ) -> dict:
        return self.store_message(self.build_message(channel_id, author_id, payload, files, **kw))

    def user_says(
        self,
        channel_id: str,
        user_id: str,
        content: str = "",
        *,
        reply_to: str | None = None,
        embeds: list | None = None,
        components: list | None = None,
        attachments: list | None = None,
        tts: bool = False,
        nonce: str | None = None,
    ) -> dict:
        """A user posts a message. ``attachments`` items: ``(filename, bytes)`` or dicts."""
        ch = self.get_channel(channel_id)
        uid = str(user_id)
        self.get_user(uid)
        if ch.get("guild_id"):
            self.get_member_core(ch["guild_id"], uid)
        files = [
            (f"files[{i}]", a[0], "application/octet-stream", a[1])
            for i, a in enumerate(attachments or [])
            if isinstance(a, tuple)
        ]
        payload: dict[str, Any] = {"content": content, "embeds": embeds, "components": components, "tts": tts, "nonce": nonce}
        dicts = [a for a in attachments or [] if isinstance(a, dict)]
        if reply_to:
            payload["message_reference"] = {"message_id": str(reply_to), "channel_id": ch["id"]}
        msg = self.build_message(ch["id"], uid, payload, files)
        if dicts:
            msg["attachments"] = msg["attachments"] + dicts
        return self.store_message(msg)

    # --- edit / delete ---------------------------------------------------------
    def edit_message(
        self,
        channel_id: str,
        message_id: str,
        payload: dict,
        files: list[UploadedFile] | None = None,
        *,
        editor_id: str | None = None,
        msg: dict | None = None,
    ) -> dict:
        msg = msg or self.get_message(channel_id, message_id)
        if editor_id is not None and msg["author"]["id"] != str(editor_id) and set(payload) - {"flags"}:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        new = dict(msg)
        if "content" in payload:
            new["content"] = "" if payload["content"] is None else str(payload["content"])
            if len(new["content"]) > 2000:
                raise invalid_form("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
        if "embeds" in payload:
            new["embeds"] = [e if "type" in e else dict(e, type="rich") for e in payload["embeds"] or []]
        if "components" in payload:
            new["components"] = payload["components"] or []
        if "poll" in payload and payload["poll"]:
            new["poll"] = payload["poll"]
        if "attachments" in payload or files:
            new["attachments"] = self._attachments_from(payload, files, msg["attachments"])
        if "content" in payload or "allowed_mentions" in payload:
            ref = msg.get("referenced_message")
            new["mentions"], new["mention_roles"], new["mention_everyone"] = self._mentions(
                new["content"], msg.get("guild_id"), payload.get("allowed_mentions"), ref["author"]["id"] if ref else None
            )
        was_loading = bool(msg["flags"] & LOADING)
        flags = msg["flags"] & ~LOADING
        if payload.get("flags") is not None:
            keep = EPHEMERAL | 1 | 2 | 32  # ephemeral, crossposted, is_crosspost, has_thread
            flags = (flags & keep) | (int(payload["flags"]) & ~(keep | LOADING))
        new["flags"] = flags
        if not has_message_body(new):
            raise empty_message_error()
        if not was_loading:
            new["edited_timestamp"] = iso_now()
        self._replace_message(new)
        if not new["flags"] & EPHEMERAL:
            self.emit("MESSAGE_UPDATE", new, new.get("guild_id"), dm=new.get("guild_id") is None)
        return new

    def delete_message(self, channel_id: str, message_id: str, *, msg: dict | None = None) -> None:
        msg = msg or self.get_message(channel_id, message_id)
        mid = msg["id"]
        if mid in self.ephemeral:
            del self.ephemeral[mid]
            return
        cid = msg["channel_id"]
        del self.messages[cid][mid]
        self.message_channel.pop(mid, None)
        self.reaction_store.pop(mid, None)
        self.pins.get(cid, {}).pop(mid, None)
        data = {"id": mid, "channel_id": cid}
        if msg.get("guild_id"):
            data["guild_id"] = msg["guild_id"]
        self.emit("MESSAGE_DELETE", data, msg.get("guild_id"), dm=msg.get("guild_id") is None)

    def bulk_delete(self, channel_id: str, message_ids: list) -> None:
        ch = self.get_channel(channel_id)
        if not isinstance(message_ids, list) or not 2 <= len(message_ids) <= 100:
            raise invalid_form("messages", "BASE_TYPE_BAD_LENGTH", "Must be between 2 and 100 in length.")
        ids = [str(m) for m in dict.fromkeys(message_ids)]
        for mid in ids:
            self.get_message(ch["id"], mid)
        box = self.messages[ch["id"]]
        for mid in ids:
            del box[mid]
            self.message_channel.pop(mid, None)
            self.reaction_store.pop(mid, None)
        data = {"ids": ids, "channel_id": ch["id"]}
        if ch.get("guild_id"):
            data["guild_id"] = ch["guild_id"]
        self.emit("MESSAGE_DELETE_BULK", data, ch.get("guild_id"))

    def list_messages(
        self, channel_id: str, *, limit: int = 50, before: str | None = None, after: str | None = None, around: str | None = None
    ) -> list[dict]:
        """Newest first, like Discord."""
        msgs = self.channel_messages(channel_id)
        limit = max(1, min(int(limit), 100))
        if around:
            a = int(around)
            older = [m for m in msgs if int(m["id"]) <= a][-(limit // 2 + limit % 2) :] if limit else []
            newer = [m for m in msgs if int(m["id"]) > a][: limit // 2]
            picked = older + newer
        elif after:
            picked = [m for m in msgs if int(m["id"]) > int(after)][:limit]
        else:
            if before:
                msgs = [m for m in msgs if int(m["id"]) < int(before)]
            picked = msgs[-limit:]
        return picked[::-1]

    # --- reactions ---------------------------------------------------------------
    def _reactors(self, message_id: str) -> dict[str, tuple[dict, list[str]]]:
        return self.reaction_store.setdefault(str(message_id), {})

    def _rebuild_reactions(self, msg: dict) -> dict:
        reactors = self._reactors(msg["id"])
        bot = self.bot_id
        new = dict(msg)
        new["reactions"] = [
            {
                "count": len(uids),
                "count_details": {"burst": 0, "normal": len(uids)},
                "me": bot in uids,
                "me_burst": False,
                "burst_me": False,
                "burst_count": 0,
                "emoji": emoji,
                "burst_colors": [],
            }
            for emoji, uids in reactors.values()
            if uids
        ]
        self._replace_message(new)
        return new

    def add_reaction(self, channel_id: str, message_id: str, user_id: str, emoji: str) -> bool:
        msg = self.get_message(channel_id, message_id)
        uid = str(user_id)
        self.get_user(uid)
        em = parse_emoji(emoji)
        reactors = self._reactors(msg["id"])
        entry = reactors.setdefault(emoji_key(em), (em, []))
        if uid in entry[1]:
            return False
        if len(reactors) > 20 and not entry[1]:
            raise ApiError(400, 30010, "Maximum number of reactions reached (20)")
        entry[1].append(uid)
        self._rebuild_reactions(msg)
        gid = msg.get("guild_id")
        data: dict[str, Any] = {
            "user_id": uid,
            "channel_id": msg["channel_id"],
            "message_id": msg["id"],
            "emoji": em,
            "message_author_id": msg["author"]["id"],
            "burst": False,
            "burst_colors": [],
            "type": 0,
        }
        if gid:
            data["guild_id"] = gid
            if uid in self.guilds[gid].members:
                data["member"] = self.member_payload(gid, uid)
        self.emit("MESSAGE_REACTION_ADD", data, gid, dm=gid is None)
        return True

    def remove_reaction(self, channel_id: str, message_id: str, user_id: str, emoji: str) -> bool:
        msg = self.get_message(channel_id, message_id)
        uid = str(user_id)
        em = parse_emoji(emoji)
        entry = self._reactors(msg["id"]).get(emoji_key(em))
        if entry is None or uid not in entry[1]:
            return False
        entry[1].remove(uid)
        if not entry[1]:
            del self._reactors(msg["id"])[emoji_key(em)]
        self._rebuild_reactions(msg)
        gid = msg.get("guild_id")
        data = {
            "user_id": uid,
            "channel_id": msg["channel_id"],
            "message_id": msg["id"],
            "emoji": entry[0],
            "burst": False,
            "type": 0,
        }
        if gid:
            data["guild_id"] = gid
        self.emit("MESSAGE_REACTION_REMOVE", data, gid, dm=gid is None)
        return True

    def clear_reactions(self, channel_id: str, message_id: str, emoji: str | None = None) -> None:
        msg = self.get_message(channel_id, message_id)
        reactors = self._reactors(msg["id"])
        gid = msg.get("guild_id")
        data: dict[str, Any] = {"channel_id": msg["channel_id"], "message_id": msg["id"]}
        if gid:
            data["guild_id"] = gid
        if emoji is None:
            reactors.clear()
            event = "MESSAGE_REACTION_REMOVE_ALL"
        else:
            em = parse_emoji(emoji)
            entry = reactors.pop(emoji_key(em), None)
            data["emoji"] = entry[0] if entry else em
            event = "MESSAGE_REACTION_REMOVE_EMOJI"
        self._rebuild_reactions(msg)
        self.emit(event, data, gid, dm=gid is None)

    def reaction_users(
        self, channel_id: str, message_id: str, emoji: str, *, limit: int = 25, after: str | None = None
    ) -> list[dict]:
        msg = self.get_message(channel_id, message_id)
        entry = self._reactors(msg["id"]).get(emoji_key(parse_emoji(emoji)))
        uids = sorted(entry[1], key=int) if entry else []
        if after:
            uids = [u for u in uids if int(u) > int(after)]
        return [self.public_user(u) for u in uids[: max(1, min(int(limit), 100))]]

    # --- pins / crosspost -------------------------------------------------------------
    def set_pinned(self, channel_id: str, message_id: str, pinned: bool) -> None:
        msg = self.get_message(channel_id, message_id)
        cid = msg["channel_id"]
        pins = self.pins.setdefault(cid, {})
        if pinned and msg["id"] not in pins:
            if len(pins) >= 250:
                raise ApiError(400, 30003, "Maximum number of pins reached (250)")
            pins[msg["id"]] = iso_now()
        elif not pinned and msg["id"] in pins:
            del pins[msg["id"]]
        else:
            return
        new = dict(msg, pinned=pinned)
        self._replace_message(new)
        gid = msg.get("guild_id")
        self.emit("MESSAGE_UPDATE", new, gid, dm=gid is None)
        data = {"channel_id": cid, "last_pin_timestamp": iso_now() if pins else None}
        if gid:
            data["guild_id"] = gid
        self.emit("CHANNEL_PINS_UPDATE", data, gid, dm=gid is None)

    def list_pins(self, channel_id: str) -> list[tuple[str, dict]]:
        """``[(pinned_at, message)]``, most recently pinned first."""
        ch = self.get_channel(channel_id)
        box = self.messages[ch["id"]]
        return [(at, box[m]) for m, at in reversed(self.pins.get(ch["id"], {}).items()) if m in box]

    def crosspost(self, channel_id: str, message_id: str) -> dict:
        ch = self.get_channel(channel_id)
        msg = self.get_message(channel_id, message_id)
        if ch["type"] != 5:
            raise ApiError(403, 50068, "Invalid message type")  # only announcement channels
        new = dict(msg, flags=msg["flags"] | 1)
        self._replace_message(new)
        self.emit("MESSAGE_UPDATE", new, msg.get("guild_id"))
        return new
