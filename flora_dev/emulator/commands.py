"""Application commands, global and per guild (mixin of EmulatorState)."""

from __future__ import annotations

import re
from typing import Any

from .models import ApiError, invalid_form, unknown

_CHAT_INPUT_NAME = re.compile(r"^[-_'\w]{1,32}$")
_ECHOED = (
    "name_localizations",
    "description_localizations",
    "options",
    "default_member_permissions",
    "contexts",
    "integration_types",
    "nsfw",
    "dm_permission",
    "handler",
)


class CommandsMixin:
    def _command_box(self, guild_id: str | None) -> dict[str, dict]:
        if guild_id is None:
            return self.global_commands
        return self.get_guild(guild_id).commands

    def list_commands(self, guild_id: str | None = None) -> list[dict]:
        return list(self._command_box(None if guild_id is None else str(guild_id)).values())

    def get_command(self, guild_id: str | None, command_id: str) -> dict:
        cmd = self._command_box(guild_id).get(str(command_id))
        if cmd is None:
            raise unknown("application command")
        return cmd

    def _validate_command(self, body: Any, where: str) -> None:
        if not isinstance(body, dict):
            raise invalid_form(where, "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        name = body.get("name")
        ctype = int(body.get("type") or 1)
        if not isinstance(name, str) or not 1 <= len(name) <= 32:
            raise invalid_form(f"{where}.name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        if ctype == 1:
            if not _CHAT_INPUT_NAME.match(name) or name != name.lower():
                raise invalid_form(f"{where}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            desc = body.get("description")
            if not isinstance(desc, str) or not 1 <= len(desc) <= 100:
                raise invalid_form(f"{where}.description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")

    def _make_command(self, body: dict, guild_id: str | None, existing: dict | None) -> dict:
        ctype = int(body.get("type") or 1)
        cmd: dict[str, Any] = {
            "id": existing["id"] if existing else self.new_id(),
            "application_id": self.application_id,
            "version": existing["version"] if existing else "",
            "type": ctype,
            "name": body["name"],
            "description": body.get("description") or "",
        }
        for key in _ECHOED:
            if key in body:
                cmd[key] = body[key]
        if "default_member_permissions" in cmd and cmd["default_member_permissions"] is not None:
            cmd["default_member_permissions"] = str(cmd["default_member_permissions"])
        cmd.setdefault("default_member_permissions", None)
        cmd.setdefault("nsfw", False)
        cmd.setdefault("integration_types", [0])
        if guild_id is not None:
            cmd["guild_id"] = guild_id
            cmd.pop("dm_permission", None)
        else:
            cmd.setdefault("dm_permission", True)
        if existing is None or _strip(existing) != _strip(cmd):
            cmd["version"] = self.new_id()
        return cmd

    def bulk_overwrite_commands(self, guild_id: str | None, bodies: Any) -> list[dict]:
        gid = None if guild_id is None else str(guild_id)
        box = self._command_box(gid)
        if not isinstance(bodies, list):
            raise invalid_form("_errors", "LIST_TYPE_CONVERT", "Only iterables may be used in a ListType")
        if len(bodies) > 110:
            raise ApiError(400, 30032, "Maximum number of application commands reached (100)")
        seen: set[tuple[int, str]] = set()
        for i, body in enumerate(bodies):
            self._validate_command(body, str(i))
            key = (int(body.get("type") or 1), body["name"])
            if key in seen:
                raise invalid_form(
                    str(i), "APPLICATION_COMMANDS_DUPLICATE_NAME", f"Application command names must be unique ({body['name']})"
                )
            seen.add(key)
        by_key = {(c["type"], c["name"]): c for c in box.values()}
        new_box: dict[str, dict] = {}
        for body in bodies:
            existing = by_key.get((int(body.get("type") or 1), body["name"]))
            cmd = self._make_command(body, gid, existing)
            new_box[cmd["id"]] = cmd
        box.clear()
        box.update(new_box)
        return list(box.values())

    def upsert_command(self, guild_id: str | None, body: Any) -> tuple[dict, bool]:
        """POST semantics: replaces a same-named command. Returns (command, created)."""
        gid = None if guild_id is None else str(guild_id)
        self._validate_command(body, "_root")
        box = self._command_box(gid)
        ctype = int(body.get("type") or 1)
        existing = next((c for c in box.values() if c["type"] == ctype and c["name"] == body["name"]), None)
        cmd = self._make_command(body, gid, existing)
        box[cmd["id"]] = cmd
        return cmd, existing is None

    def edit_command(self, guild_id: str | None, command_id: str, changes: dict) -> dict:
        gid = None if guild_id is None else str(guild_id)
        old = self.get_command(gid, command_id)
        body = {k: v for k, v in old.items() if k not in ("id", "application_id", "version", "guild_id")}
        body.update(changes or {})
        self._validate_command(body, "_root")
        cmd = self._make_command(body, gid, old)
        self._command_box(gid)[cmd["id"]] = cmd
        return cmd

    def delete_command(self, guild_id: str | None, command_id: str) -> None:
        gid = None if guild_id is None else str(guild_id)
        self.get_command(gid, command_id)
        del self._command_box(gid)[str(command_id)]

    def find_command(self, guild_id: str | None, name: str, type: int = 1) -> dict:
        """The guild's command with that name (falling back to global ones)."""
        boxes = []
        if guild_id is not None:
            boxes.append(self.get_guild(guild_id).commands)
        boxes.append(self.global_commands)
        for box in boxes:
            for cmd in box.values():
                if cmd["name"] == name and cmd["type"] == type:
                    return cmd
        guild_names = sorted(c["name"] for c in boxes[0].values()) if guild_id is not None else []
        global_names = sorted(c["name"] for c in self.global_commands.values())
        raise LookupError(
            f"no application command named {name!r} (type {type}) is registered"
            + (f" for guild {guild_id}" if guild_id is not None else "")
            + f"; guild commands: {guild_names}, global commands: {global_names}."
            " Did the bot sync its commands (PUT /applications/{app}/guilds/{g}/commands)?"
        )


def _strip(cmd: dict) -> dict:
    return {k: v for k, v in cmd.items() if k not in ("id", "version")}
