"""Interactions: creating them (slash, components, modals) and the callback / webhook-token
routes a bot answers them with (mixin of EmulatorState)."""

from __future__ import annotations

import secrets
import time
from typing import Any

from .models import (
    ATTACHMENT_SIZE_LIMIT,
    EPHEMERAL,
    LOADING,
    ApiError,
    empty_message_error,
    has_message_body,
    invalid_form,
    unknown,
)

TOKEN_LIFETIME = 15 * 60.0
# interaction type -> callback types it accepts
_ALLOWED_CALLBACKS = {1: {1}, 2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}


class InteractionRec:
    __slots__ = (
        "id",
        "token",
        "type",
        "guild_id",
        "channel_id",
        "user_id",
        "payload",
        "message_id",
        "created",
        "acknowledged",
        "response_type",
        "responses",
        "original_id",
        "followup_ids",
        "modal",
        "choices",
    )

    def __init__(self, payload: dict, user_id: str, message_id: str | None) -> None:
        self.id: str = payload["id"]
        self.token: str = payload["token"]
        self.type: int = payload["type"]
        self.guild_id: str | None = payload.get("guild_id")
        self.channel_id: str = payload["channel_id"]
        self.user_id = user_id
        self.payload = payload
        self.message_id = message_id
        self.created = time.monotonic()
        self.acknowledged = False
        self.response_type: int | None = None
        self.responses: list[dict] = []
        self.original_id: str | None = None
        self.followup_ids: list[str] = []
        self.modal: dict | None = None
        self.choices: list | None = None


def _find_custom_ids(node: Any, out: set[str]) -> set[str]:
    if isinstance(node, dict):
        if "custom_id" in node:
            out.add(node["custom_id"])
        for value in node.values():
            if isinstance(value, (dict, list)):
                _find_custom_ids(value, out)
    elif isinstance(node, list):
        for value in node:
            _find_custom_ids(value, out)
    return out


class InteractionsMixin:
    # --- creating interactions ------------------------------------------------------
    def _new_interaction(
        self,
        itype: int,
        guild_id: str | None,
        channel_id: str,
        user_id: str,
        data: dict,
        *,
        message: dict | None = None,
        locale: str = "en-US",
    ) -> dict:
        ch = self.get_channel(channel_id)
        uid = str(user_id)
        self.get_user(uid)
        gid = str(guild_id) if guild_id is not None else ch.get("guild_id")
        if gid is not None and ch.get("guild_id") != gid:
            raise ValueError(f"channel {ch['id']} is not in guild {gid}")
        iid = self.new_id()
        payload: dict[str, Any] = {
            "id": iid,
            "application_id": self.application_id,
            "type": itype,
            "data": data,
            "channel": self.channel_with_permissions(ch["id"], uid),
            "channel_id": ch["id"],
            "token": f"emu.{iid}.{secrets.token_urlsafe(24)}",
            "version": 1,
            "locale": locale,
            "app_permissions": str(self.channel_permissions(ch["id"], self.bot_id)),
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        }
        if gid is not None:
            self.get_member_core(gid, uid)
            payload.update(
                guild_id=gid,
                guild={
                    "id": gid,
                    "locale": self.guilds[gid].data["preferred_locale"],
                    "features": self.guilds[gid].data["features"],
                },
                guild_locale=self.guilds[gid].data["preferred_locale"],
                member=dict(self.member_payload(gid, uid), permissions=str(self.channel_permissions(ch["id"], uid))),
                authorizing_integration_owners={"0": gid},
                context=0,
            )
        else:
            payload.update(user=self.public_user(uid), authorizing_integration_owners={"1": uid}, context=1)
        if message is not None:
            payload["message"] = message
        rec = InteractionRec(payload, uid, message["id"] if message else None)
        self.interactions[iid] = rec
        self.interaction_tokens[payload["token"]] = iid
        self.emit("INTERACTION_CREATE", payload, gid, dm=gid is None)
        return payload

    def _resolve_options(self, guild_id: str | None, options: list, resolved: dict) -> list:
        out = []
        for opt in options or []:
            opt = dict(opt)
            otype = opt.get("type")
            if otype in (1, 2):
                opt["options"] = self._resolve_options(guild_id, opt.get("options") or [], resolved)
            elif otype == 11 and isinstance(opt.get("value"), dict):
                spec = opt["value"]
                data = spec.get("content", b"")
                att = self.store_attachment(
                    spec.get("filename", "file.bin"), data.encode() if isinstance(data, str) else data, spec.get("content_type")
                )
                opt["value"] = att["id"]
                resolved.setdefault("attachments", {})[att["id"]] = att
            elif otype in (6, 7, 8, 9) and opt.get("value") is not None:
                self._resolve_id(guild_id, str(opt["value"]), otype, resolved)
                opt["value"] = str(opt["value"])
            out.append(opt)
        return out

    def _resolve_id(self, guild_id: str | None, oid: str, otype: int, resolved: dict) -> None:
        if otype in (6, 9) and oid in self.users:
            resolved.setdefault("users", {})[oid] = self.public_user(oid)
            if guild_id is not None and oid in self.guilds[guild_id].members:
                resolved.setdefault("members", {})[oid] = self.member_payload(guild_id, oid, with_user=False, permissions=True)
        elif otype in (8, 9) and guild_id is not None and oid in self.guilds[guild_id].roles:
            resolved.setdefault("roles", {})[oid] = self.guilds[guild_id].roles[oid]
        elif otype == 7 and oid in self.channels:
            ch = self.channels[oid]
            entry = {k: ch[k] for k in ("id", "name", "type", "parent_id", "thread_metadata") if k in ch}
            entry["permissions"] = str(self.channel_permissions(oid, self.bot_id))
            resolved.setdefault("channels", {})[oid] = entry

    def invoke_command(
        self,
        guild_id: str | None,
        channel_id: str,
        user_id: str,
        name: str,
        options: list | None = None,
        *,
        type: int = 1,
        target_id: str | None = None,
        locale: str = "en-US",
    ) -> dict:
        """Run a registered application command (slash = type 1, user = 2, message = 3)."""
        gid = str(guild_id) if guild_id is not None else None
        cmd = self.find_command(gid, name, type)
        resolved: dict[str, Any] = {}
        data: dict[str, Any] = {"id": cmd["id"], "name": cmd["name"], "type": type}
        if options:
            data["options"] = self._resolve_options(gid, options, resolved)
        if target_id is not None:
            tid = str(target_id)
            data["target_id"] = tid
            if type == 3:
                resolved.setdefault("messages", {})[tid] = self.get_message(channel_id, tid)
            else:
                self._resolve_id(gid, tid, 6, resolved)
        if resolved:
            data["resolved"] = resolved
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return self._new_interaction(2, gid, channel_id, user_id, data, locale=locale)

    def invoke_slash(
        self, guild_id: str | None, channel_id: str, user_id: str, name: str, options: list | None = None, **kw: Any
    ) -> dict:
        return self.invoke_command(guild_id, channel_id, user_id, name, options, type=1, **kw)

    def invoke_autocomplete(self, guild_id: str | None, channel_id: str, user_id: str, name: str, options: list) -> dict:
        """``options`` must include one with ``"focused": True``."""
        gid = str(guild_id) if guild_id is not None else None
        cmd = self.find_command(gid, name, 1)
        data = {"id": cmd["id"], "name": cmd["name"], "type": 1, "options": options}
        if cmd.get("guild_id"):
            data["guild_id"] = cmd["guild_id"]
        return self._new_interaction(4, gid, channel_id, user_id, data)

    def click_component(
        self, channel_id: str, message_id: str, user_id: str, custom_id: str, component_type: int = 2, values: list | None = None
    ) -> dict:
        msg = self.find_message(message_id)
        if msg is None or msg["channel_id"] != str(channel_id):
            raise LookupError(f"message {message_id} not found in channel {channel_id}")
        ids = _find_custom_ids(msg.get("components") or [], set())
        if custom_id not in ids:
            raise LookupError(f"message {message_id} has no component with custom_id {custom_id!r}; it has {sorted(ids)}")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component_type}
        if values is not None or component_type in (3, 5, 6, 7, 8):
            data["values"] = [str(v) for v in values or []]
            resolved: dict[str, Any] = {}
            kind = {5: 6, 6: 8, 7: 9, 8: 7}.get(component_type)
            if kind:
                for v in data["values"]:
                    self._resolve_id(msg.get("guild_id"), v, kind, resolved)
            if resolved:
                data["resolved"] = resolved
        return self._new_interaction(3, msg.get("guild_id"), channel_id, user_id, data, message=msg)

    def submit_modal(
        self,
        guild_id: str | None,
        channel_id: str,
        user_id: str,
        custom_id: str,
        fields: dict[str, Any] | None = None,
        message_id: str | None = None,
        components: list | None = None,
    ) -> dict:
        """``fields``: ``{custom_id: "text"}`` (text input) or ``{custom_id: [values]}`` (select)."""
        if components is None:
            components = []
            for fid, value in (fields or {}).items():
                inner = (
                    {"type": 3, "custom_id": fid, "values": [str(v) for v in value]}
                    if isinstance(value, (list, tuple))
                    else {"type": 4, "custom_id": fid, "value": str(value)}
                )
                components.append({"type": 1, "components": [inner]})
        message = None
        if message_id is not None:
            message = self.find_message(message_id)
            if message is None:
                raise LookupError(f"message {message_id} not found")
        data = {"custom_id": custom_id, "components": components}
        return self._new_interaction(5, guild_id, channel_id, user_id, data, message=message)

    # --- answering -------------------------------------------------------------
    def _response_extra(self, rec: InteractionRec) -> dict:
        user = self.public_user(rec.user_id)
        meta: dict[str, Any] = {
            "id": rec.id,
            "type": rec.type,
            "user": user,
            "authorizing_integration_owners": rec.payload["authorizing_integration_owners"],
        }
        extra: dict[str, Any] = {"application_id": self.application_id, "interaction_metadata": meta}
        if rec.type == 2:
            data = rec.payload["data"]
            meta["name"] = data["name"]
            meta["command_type"] = data["type"]
            extra["interaction"] = {"id": rec.id, "type": rec.type, "name": data["name"], "user": user}
        elif rec.message_id:
            meta["interacted_message_id"] = rec.message_id
        return extra

    def _bot_webhook_message(
        self, rec: InteractionRec, payload: dict, files: list | None, msg_type: int, *, allow_empty: bool = False
    ) -> dict:
        msg = self.build_message(
            rec.channel_id,
            self.bot_id,
            payload,
            files,
            webhook_id=self.application_id,
            msg_type=msg_type,
            extra=self._response_extra(rec),
            allow_empty=allow_empty,
        )
        return self.store_message(msg)

    def interaction_callback(
        self, interaction_id: str, token: str, body: Any, files: list | None = None, *, with_response: bool = False
    ) -> dict | None:
        rec = self.interactions.get(str(interaction_id))
        if rec is None or rec.token != token:
            raise unknown("Interaction")
        if rec.acknowledged:
            raise ApiError(400, 40060, "Interaction has already been acknowledged")
        timeout = self.interaction_ack_timeout
        if timeout is not None and time.monotonic() - rec.created > timeout:
            raise unknown("Interaction")
        if not isinstance(body, dict):
            raise invalid_form("type", "BASE_TYPE_REQUIRED", "This field is required")
        rtype = body.get("type")
        if rtype not in _ALLOWED_CALLBACKS[rec.type] or (rec.type == 5 and rtype in (6, 7) and rec.message_id is None):
            raise invalid_form(
                "type",
                "INTERACTION_RESPONSE_TYPE_INVALID",
                f"Interaction response type {rtype} is not valid for this interaction",
            )
        data = body.get("data") or {}
        msg: dict | None = None
        if rtype == 4:
            msg = self._bot_webhook_message(rec, data, files, 20 if rec.type == 2 else 0)
            rec.original_id = msg["id"]
        elif rtype == 5:
            flags = LOADING | (int(data.get("flags") or 0) & EPHEMERAL)
            msg = self._bot_webhook_message(rec, {"flags": flags}, None, 20 if rec.type == 2 else 0, allow_empty=True)
            rec.original_id = msg["id"]
        elif rtype == 6:
            msg = self.find_message(rec.message_id)
        elif rtype == 7:
            target = self.find_message(rec.message_id)
            if target is None:
                raise unknown("Message")
            msg = self.edit_message(target["channel_id"], target["id"], data, files, msg=target)
        elif rtype == 8:
            rec.choices = data.get("choices") or []
        elif rtype == 9:
            for key in ("custom_id", "title", "components"):
                if not data.get(key):
                    raise invalid_form(f"data.{key}", "BASE_TYPE_REQUIRED", "This field is required")
            rec.modal = data
        rec.responses.append(body)
        rec.acknowledged = True
        rec.response_type = rtype
        if not with_response:
            return None
        resource: dict[str, Any] = {"type": rtype}
        if msg is not None and rtype in (4, 7):
            resource["message"] = msg
        return {
            "interaction": {
                "id": rec.id,
                "type": rec.type,
                "activity_instance_id": None,
                "response_message_id": msg["id"] if msg else None,
                "response_message_loading": rtype == 5,
                "response_message_ephemeral": bool(msg and msg["flags"] & EPHEMERAL),
            },
            "resource": resource,
        }

    # --- webhook-token routes ----------------------------------------------------
    def interaction_by_token(self, app_id: str, token: str) -> InteractionRec | None:
        iid = self.interaction_tokens.get(token)
        if iid is None or str(app_id) != self.application_id:
            return None
        rec = self.interactions[iid]
        if time.monotonic() - rec.created > TOKEN_LIFETIME:
            raise ApiError(401, 50027, "Invalid Webhook Token")
        return rec

    def _webhook_target(self, webhook_id: str, token: str, message_id: str) -> dict:
        rec = self.interaction_by_token(webhook_id, token)
        if rec is None:
            hook = self.get_webhook(webhook_id, token)
            msg = self.find_message(message_id)
            if msg is None or msg.get("webhook_id") != hook["id"]:
                raise unknown("Message")
            return msg
        if message_id == "@original":
            mid = rec.original_id or (rec.message_id if rec.response_type in (6, 7) else None)
        elif message_id in rec.followup_ids or message_id in (rec.original_id, rec.message_id):
            mid = message_id
        else:
            mid = None
        msg = self.find_message(mid)
        if msg is None:
            raise unknown("Message")
        return msg

    def webhook_get_message(self, webhook_id: str, token: str, message_id: str) -> dict:
        return self._webhook_target(webhook_id, token, message_id)

    def webhook_edit_message(
        self, webhook_id: str, token: str, message_id: str, payload: dict, files: list | None = None
    ) -> dict:
        msg = self._webhook_target(webhook_id, token, message_id)
        return self.edit_message(msg["channel_id"], msg["id"], payload, files, msg=msg)

    def webhook_delete_message(self, webhook_id: str, token: str, message_id: str) -> None:
        msg = self._webhook_target(webhook_id, token, message_id)
        self.delete_message(msg["channel_id"], msg["id"], msg=msg)

    def webhook_execute(
        self, webhook_id: str, token: str, payload: dict, files: list | None = None, *, thread_id: str | None = None
    ) -> dict:
        rec = self.interaction_by_token(webhook_id, token)
        if rec is None:
            hook = self.get_webhook(webhook_id, token)
            author = {
                "id": hook["id"],
                "username": payload.get("username") or hook["name"],
                "avatar": None,
                "discriminator": "0000",
                "global_name": None,
                "bot": True,
            }
            if not has_message_body(payload, files):
                raise empty_message_error()
            target = hook["channel_id"]
            if thread_id:  # ?thread_id=: a thread of the webhook's channel, else Unknown Channel
                thread = self.channels.get(str(thread_id))
                if thread is None or thread["type"] not in (10, 11, 12) or thread.get("parent_id") != hook["channel_id"]:
                    raise unknown("Channel")
                target = thread["id"]
            body = {k: v for k, v in payload.items() if k != "flags"}
            return self.create_message(target, hook["id"], body, files, author=author, webhook_id=hook["id"])
        if not rec.acknowledged:
            raise unknown("Webhook")
        original = self.find_message(rec.original_id)
        if rec.response_type == 5 and original is not None and original["flags"] & LOADING:
            if not has_message_body(payload, files):
                raise empty_message_error()
            body = {k: v for k, v in payload.items() if k != "flags"}
            msg = self.edit_message(original["channel_id"], original["id"], body, files, msg=original)
        else:
            msg = self._bot_webhook_message(rec, payload, files, 0)
        rec.followup_ids.append(msg["id"])
        return msg

    # --- inspection --------------------------------------------------------------
    def interaction_view(self, interaction_id: str) -> dict:
        rec = self.interactions.get(str(interaction_id))
        if rec is None:
            raise LookupError(f"unknown interaction {interaction_id}")
        original_id = rec.original_id or (rec.message_id if rec.response_type in (6, 7) else None)
        return {
            "id": rec.id,
            "token": rec.token,
            "type": rec.type,
            "guild_id": rec.guild_id,
            "channel_id": rec.channel_id,
            "user_id": rec.user_id,
            "data": rec.payload["data"],
            "acknowledged": rec.acknowledged,
            "response_type": rec.response_type,
            "responses": list(rec.responses),
            "original": self.find_message(original_id),
            "followups": [m for m in map(self.find_message, rec.followup_ids) if m is not None],
            "modal": rec.modal,
            "choices": rec.choices,
        }
