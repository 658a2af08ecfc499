"""Guild application commands and their permissions (reference §2.4 #22–#30). Scope: ``guildId`` (G)."""

from __future__ import annotations

import hashlib
import json

from flora_core.errors import OpError, invalid

from .common import application_id, require_dict, snowflake
from .transport import call

# flora's option type strings; anything else (or nothing) is a STRING option (§1.4)
OPTION_TYPES = {"subcommand": 1, "subcommand_group": 2, "string": 3, "integer": 4, "boolean": 5, "number": 10}

COMMANDS = "/applications/{application_id}/guilds/{guild_id}/commands"
COMMAND = COMMANDS + "/{command_id}"


def _option(raw, path: str) -> dict:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise invalid(path, "each option needs a name")
    if not isinstance(raw.get("description"), str) or not raw["description"]:
        raise invalid(path, f"option {raw['name']!r} needs a description")
    out = {"name": raw["name"], "description": raw["description"], "type": OPTION_TYPES.get(raw.get("type"), 3)}
    if raw.get("required") is not None:
        out["required"] = bool(raw["required"])
    if raw.get("options"):
        if not isinstance(raw["options"], list):
            raise invalid(path, "options must be an array")
        out["options"] = [_option(o, f"{path}.options") for o in raw["options"]]
    return out


def build_command(raw, field: str = "commands") -> dict:
    """RawSlashCommand ``{name, description, options?}`` -> a CHAT_INPUT command body."""
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise invalid(field, "each command needs a name")
    if not isinstance(raw.get("description"), str) or not raw["description"]:
        raise OpError("INVALID_INPUT", "Slash command must have a description")
    out = {"name": raw["name"], "description": raw["description"], "type": 1}
    if raw.get("options"):
        if not isinstance(raw["options"], list):
            raise invalid(field, "options must be an array")
        out["options"] = [_option(o, f"{field}[].options" if field == "commands" else f"{field}.options") for o in raw["options"]]
    return out


# guild id -> hash of the last list bulk-overwritten from this worker (flora: per isolate)
_COMMAND_HASHES: dict[str, str] = {}


def _commands_changed(guild_id: str) -> None:
    """A single-command change makes Discord's list differ from the last upsert: the next upsert is sent."""
    _COMMAND_HASHES.pop(guild_id, None)


async def op_upsert_guild_commands(ctx, args):
    args = require_dict(args, "op_upsert_guild_commands")
    guild_id = snowflake(args, "guildId")
    ctx.ensure_guild(guild_id)  # before the dedup check, unlike flora (§9.2 #12)
    commands = args.get("commands")
    if not isinstance(commands, list):
        raise invalid("commands", "expected an array")
    body = [build_command(c) for c in commands]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    if _COMMAND_HASHES.get(guild_id) == digest:
        return None
    app = application_id(ctx, "PUT /applications/{app}/guilds/{g}/commands")
    await call(ctx, "PUT", COMMANDS, application_id=app, guild_id=guild_id, json=body)
    _COMMAND_HASHES[guild_id] = digest
    return None


def _guild(ctx, args, op: str) -> tuple[dict, str]:
    args = require_dict(args, op)
    guild_id = snowflake(args, "guildId")
    return args, guild_id


async def op_create_guild_command(ctx, args):
    args, guild_id = _guild(ctx, args, "op_create_guild_command")
    body = build_command(args.get("command"), "command")
    ctx.ensure_guild(guild_id)
    app = application_id(ctx, "POST /applications/{app}/guilds/{g}/commands")
    result = await call(ctx, "POST", COMMANDS, application_id=app, guild_id=guild_id, json=body)
    _commands_changed(guild_id)
    return result


async def op_edit_guild_command(ctx, args):
    args, guild_id = _guild(ctx, args, "op_edit_guild_command")
    command_id = snowflake(args, "commandId")
    body = build_command(args.get("command"), "command")
    ctx.ensure_guild(guild_id)
    app = application_id(ctx, "PATCH /applications/{app}/guilds/{g}/commands/{id}")
    result = await call(ctx, "PATCH", COMMAND, application_id=app, guild_id=guild_id, command_id=command_id, json=body)
    _commands_changed(guild_id)
    return result


async def op_delete_guild_command(ctx, args):
    args, guild_id = _guild(ctx, args, "op_delete_guild_command")
    command_id = snowflake(args, "commandId")
    ctx.ensure_guild(guild_id)
    app = application_id(ctx, "DELETE /applications/{app}/guilds/{g}/commands/{id}")
    await call(ctx, "DELETE", COMMAND, application_id=app, guild_id=guild_id, command_id=command_id)
    _commands_changed(guild_id)
    return None


async def op_get_guild_commands(ctx, args):
    args, guild_id = _guild(ctx, args, "op_get_guild_commands")
    ctx.ensure_guild(guild_id)
    app = application_id(ctx, "GET /applications/{app}/guilds/{g}/commands")
    return await call(ctx, "GET", COMMANDS, application_id=app, guild_id=guild_id, read_only=True)


async def op_get_guild_command(ctx, args):
    args, guild_id = _guild(ctx, args, "op_get_guild_command")
    command_id = snowflake(args, "commandId")
    ctx.ensure_guild(guild_id)
    app = application_id(ctx, "GET /applications/{app}/guilds/{g}/commands/{id}")
    return await call(ctx, "GET", COMMAND, application_id=app, guild_id=guild_id, command_id=command_id, read_only=True)


def _permissions_body(raw) -> dict:
    """``permissions`` is the raw Discord JSON: the array of permission objects, or ``{permissions: [...]}``."""
    if isinstance(raw, list):
        return {"permissions": raw}
    if isinstance(raw, dict) and isinstance(raw.get("permissions"), list):
        return raw
    raise invalid("permissions", "expected an array of command permissions or {permissions: [...]}")


async def op_edit_guild_command_permissions(ctx, args):
    args, guild_id = _guild(ctx, args, "op_edit_guild_command_permissions")
    command_id = snowflake(args, "commandId")
    body = _permissions_body(args.get("permissions"))
    ctx.ensure_guild(guild_id)
    app = application_id(ctx, "PUT /applications/{app}/guilds/{g}/commands/{id}/permissions")
    return await call(
        ctx, "PUT", COMMAND + "/permissions", application_id=app, guild_id=guild_id, command_id=command_id, json=body
    )


async def op_get_guild_commands_permissions(ctx, args):
    args, guild_id = _guild(ctx, args, "op_get_guild_commands_permissions")
    ctx.ensure_guild(guild_id)
    app = application_id(ctx, "GET /applications/{app}/guilds/{g}/commands/permissions")
    return await call(ctx, "GET", COMMANDS + "/permissions", application_id=app, guild_id=guild_id, read_only=True)


async def op_get_guild_command_permissions(ctx, args):
    args, guild_id = _guild(ctx, args, "op_get_guild_command_permissions")
    command_id = snowflake(args, "commandId")
    ctx.ensure_guild(guild_id)
    app = application_id(ctx, "GET /applications/{app}/guilds/{g}/commands/{id}/permissions")
    return await call(
        ctx, "GET", COMMAND + "/permissions", application_id=app, guild_id=guild_id, command_id=command_id, read_only=True
    )


OPS = [
    op_upsert_guild_commands,
    op_create_guild_command,
    op_edit_guild_command,
    op_delete_guild_command,
    op_get_guild_commands,
    op_get_guild_command,
    op_edit_guild_command_permissions,
    op_get_guild_commands_permissions,
    op_get_guild_command_permissions,
]
