"""Built-in plugin: the ops that reach Discord REST for scripts.

Every op validates its input, checks that what it touches belongs to the
calling guild (``SCOPE_FORBIDDEN`` otherwise, and nothing is sent), and
reports failures with flora's codes.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse

from flora_core import hookimpl
from flora_core.errors import OpError, invalid

from .messages import EPHEMERAL, edit_body, message_body, require_dict, snowflake

EMPTY_MESSAGE = "message must include content, embeds, attachments, or components"
EMPTY_RESPONSE = "Response must include content, embeds, attachments, or components"


async def op_send_message(ctx, args):
    args = require_dict(args, "op_send_message")
    channel_id = snowflake(args, "channelId")
    body = message_body(args, empty_message=EMPTY_MESSAGE)
    reply_to = args["replyTo"] if "replyTo" in args else args.get("messageId")
    if reply_to is not None:
        ref = snowflake({"replyTo": reply_to}, "replyTo")
        body["message_reference"] = {"message_id": ref, "channel_id": channel_id, "fail_if_not_exists": False}
    await ctx.ensure_channel(channel_id)
    return await ctx.rest("POST", "/channels/{channel_id}/messages", channel_id=channel_id, json=body)


async def op_edit_message(ctx, args):
    args = require_dict(args, "op_edit_message")
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    body = edit_body(args)
    await ctx.ensure_channel(channel_id)
    await ctx.rest("PATCH", "/channels/{channel_id}/messages/{message_id}", channel_id=channel_id, message_id=message_id, json=body)
    return None


async def op_delete_message(ctx, args):
    args = require_dict(args, "op_delete_message")
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    await ctx.ensure_channel(channel_id)
    await ctx.rest("DELETE", "/channels/{channel_id}/messages/{message_id}", channel_id=channel_id, message_id=message_id)
    return None


def _emoji(raw) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise invalid("emoji", "expected a unicode emoji or <:name:id>")
    text = raw.strip()
    if text.startswith("<") and text.endswith(">"):
        parts = text.strip("<>").split(":")
        if len(parts) != 3 or not parts[2].isdigit():
            raise invalid("emoji", f"invalid custom emoji {raw!r}")
        text = f"{parts[1]}:{parts[2]}"
    return urllib.parse.quote(text, safe=":")


async def op_add_reaction(ctx, args):
    args = require_dict(args, "op_add_reaction")
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    emoji = _emoji(args.get("emoji"))
    await ctx.ensure_channel(channel_id)
    await ctx.rest("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me",
                   channel_id=channel_id, message_id=message_id, emoji=emoji)
    return None


def _interaction(ctx, args) -> tuple[str, str]:
    interaction_id = snowflake(args, "interactionId")
    token = args.get("token")
    if not isinstance(token, str) or not token:
        raise invalid("token", "missing interaction token")
    ctx.ensure_interaction(interaction_id, token)
    return interaction_id, token


async def op_send_interaction_response(ctx, args):
    args = require_dict(args, "op_send_interaction_response")
    interaction_id, token = _interaction(ctx, args)
    data = message_body(args, empty_message=EMPTY_RESPONSE)
    if args.get("ephemeral"):
        data["flags"] = data.get("flags", 0) | EPHEMERAL
    await ctx.rest("POST", "/interactions/{interaction_id}/{interaction_token}/callback",
                   interaction_id=interaction_id, interaction_token=token, json={"type": 4, "data": data})
    return None


async def op_defer_interaction_response(ctx, args):
    args = require_dict(args, "op_defer_interaction_response")
    interaction_id, token = _interaction(ctx, args)
    body: dict = {"type": 5}
    if args.get("ephemeral"):
        body["data"] = {"flags": EPHEMERAL}
    await ctx.rest("POST", "/interactions/{interaction_id}/{interaction_token}/callback",
                   interaction_id=interaction_id, interaction_token=token, json=body)
    return None


OPTION_TYPES = {"subcommand": 1, "subcommand_group": 2, "string": 3, "integer": 4, "boolean": 5, "number": 10}


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


def _command(raw) -> dict:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
        raise invalid("commands", "each command needs a name")
    if not isinstance(raw.get("description"), str) or not raw["description"]:
        raise OpError("INVALID_INPUT", "Slash command must have a description")
    out = {"name": raw["name"], "description": raw["description"], "type": 1}
    if raw.get("options"):
        if not isinstance(raw["options"], list):
            raise invalid("commands", "options must be an array")
        out["options"] = [_option(o, "commands[].options") for o in raw["options"]]
    return out


_COMMAND_HASHES: dict[str, str] = {}


async def op_upsert_guild_commands(ctx, args):
    args = require_dict(args, "op_upsert_guild_commands")
    guild_id = snowflake(args, "guildId")
    ctx.ensure_guild(guild_id)  # before the dedup check, unlike flora
    commands = args.get("commands")
    if not isinstance(commands, list):
        raise invalid("commands", "expected an array")
    body = [_command(c) for c in commands]
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    if _COMMAND_HASHES.get(guild_id) == digest:
        return None
    if not ctx.application_id:
        raise OpError("DISCORD_HTTP_ERROR", "Discord HTTP error (500): application id unknown (route: PUT /applications/{app}/guilds/{g}/commands)")
    await ctx.rest("PUT", "/applications/{application_id}/guilds/{guild_id}/commands",
                   application_id=ctx.application_id, guild_id=guild_id, json=body)
    _COMMAND_HASHES[guild_id] = digest
    return None


@hookimpl
def flora_register_ops(register):
    for fn in (op_send_message, op_edit_message, op_delete_message, op_add_reaction,
               op_send_interaction_response, op_defer_interaction_response, op_upsert_guild_commands):
        register(fn.__name__, fn)
