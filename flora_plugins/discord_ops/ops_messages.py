"""Channel messages, pins and reactions (reference §2.4 #2–#13). Scope: the channel (C)."""

from __future__ import annotations

from flora_core.errors import invalid

from .attachments import attachment_refs, load_attachments
from .common import integer, parse_snowflake, require_dict, snowflake, snowflake_list
from .messages import EMPTY_EDIT, EMPTY_MESSAGE, edited_message, new_message
from .transport import call

MESSAGES = "/channels/{channel_id}/messages"
MESSAGE = "/channels/{channel_id}/messages/{message_id}"


async def op_send_message(ctx, args):
    args = require_dict(args, "op_send_message")
    channel_id = snowflake(args, "channelId")
    out = new_message(args, ctx.config, empty_message=EMPTY_MESSAGE)
    reply_to = args["replyTo"] if "replyTo" in args else args.get("messageId")
    if reply_to is not None and reply_to != "":
        ref = parse_snowflake(reply_to, "reply_to")
        out.body["message_reference"] = {"message_id": ref, "channel_id": channel_id, "fail_if_not_exists": False}
    await ctx.ensure_channel(channel_id)
    files = await load_attachments(ctx, out.attachments)
    if files:
        out.body["attachments"] = attachment_refs(files)
    return await call(ctx, "POST", MESSAGES, channel_id=channel_id, json=out.body, files=files)


async def op_edit_message(ctx, args):
    args = require_dict(args, "op_edit_message")
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    out = edited_message(args, ctx.config, attachments=False, empty_message=EMPTY_EDIT)
    await ctx.ensure_channel(channel_id)
    await call(ctx, "PATCH", MESSAGE, channel_id=channel_id, message_id=message_id, json=out.body)
    return None


async def op_delete_message(ctx, args):
    args = require_dict(args, "op_delete_message")
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    await ctx.ensure_channel(channel_id)
    await call(ctx, "DELETE", MESSAGE, channel_id=channel_id, message_id=message_id)
    return None


async def op_bulk_delete_messages(ctx, args):
    args = require_dict(args, "op_bulk_delete_messages")
    channel_id = snowflake(args, "channelId")
    ids = list(dict.fromkeys(snowflake_list(args, "messageIds")))
    if not 2 <= len(ids) <= 100:
        raise invalid("message_ids", "between 2 and 100 distinct message ids are required")
    await ctx.ensure_channel(channel_id)
    await call(ctx, "POST", "/channels/{channel_id}/messages/bulk-delete", channel_id=channel_id, json={"messages": ids})
    return None


async def _pin(ctx, args, op: str, method: str):
    args = require_dict(args, op)
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    await ctx.ensure_channel(channel_id)
    await call(ctx, method, "/channels/{channel_id}/pins/{message_id}", channel_id=channel_id, message_id=message_id)
    return None


async def op_pin_message(ctx, args):
    return await _pin(ctx, args, "op_pin_message", "PUT")


async def op_unpin_message(ctx, args):
    return await _pin(ctx, args, "op_unpin_message", "DELETE")


async def op_crosspost_message(ctx, args):
    args = require_dict(args, "op_crosspost_message")
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    await ctx.ensure_channel(channel_id)
    return await call(ctx, "POST", MESSAGE + "/crosspost", channel_id=channel_id, message_id=message_id)


async def op_fetch_message(ctx, args):
    args = require_dict(args, "op_fetch_message")
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    await ctx.ensure_channel(channel_id)
    return await call(ctx, "GET", MESSAGE, channel_id=channel_id, message_id=message_id, read_only=True)


async def op_fetch_messages(ctx, args):
    args = require_dict(args, "op_fetch_messages")
    channel_id = snowflake(args, "channelId")
    limit = integer(args, "limit", minimum=0, maximum=255)  # flora: u8
    params: dict[str, str] = {}
    if limit is not None:
        params["limit"] = str(max(1, min(limit, 100)))
    # one anchor only, the last one set wins as in serenity's builder (before, after, around)
    for key in ("around", "after", "before"):
        anchor = snowflake(args, key, required=False)
        if anchor is not None:
            params[key] = anchor
            break
    await ctx.ensure_channel(channel_id)
    return await call(ctx, "GET", MESSAGES, channel_id=channel_id, params=params or None, read_only=True)


# -- reactions ---------------------------------------------------------------------------
def reaction_emoji(raw) -> str:
    """Path form of a reaction emoji: the unicode emoji itself, or ``name:id`` for ``<:name:id>`` /
    ``<a:name:id>`` (disnake's Route percent-encodes it once)."""
    if not isinstance(raw, str) or not raw.strip():
        raise invalid("emoji", "expected a unicode emoji or <:name:id>")
    text = raw.strip()
    if text.startswith("<") and text.endswith(">"):
        parts = text[1:-1].split(":")
        if len(parts) != 3 or parts[0] not in ("", "a") or not parts[1] or not parts[2].isdigit():
            raise invalid("emoji", f"invalid custom emoji {raw!r}")
        return f"{parts[1]}:{parts[2]}"
    if "/" in text or "?" in text or "#" in text:
        raise invalid("emoji", f"invalid emoji {raw!r}")
    return text


REACTIONS = MESSAGE + "/reactions"


async def op_add_reaction(ctx, args):
    args = require_dict(args, "op_add_reaction")
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    emoji = reaction_emoji(args.get("emoji"))
    await ctx.ensure_channel(channel_id)
    await call(ctx, "PUT", REACTIONS + "/{emoji}/@me", channel_id=channel_id, message_id=message_id, emoji=emoji)
    return None


async def op_remove_reaction(ctx, args):
    args = require_dict(args, "op_remove_reaction")
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    emoji = reaction_emoji(args.get("emoji"))
    user_id = snowflake(args, "userId", required=False)
    await ctx.ensure_channel(channel_id)
    if user_id is None:
        await call(ctx, "DELETE", REACTIONS + "/{emoji}/@me", channel_id=channel_id, message_id=message_id, emoji=emoji)
    else:
        await call(
            ctx,
            "DELETE",
            REACTIONS + "/{emoji}/{user_id}",
            channel_id=channel_id,
            message_id=message_id,
            emoji=emoji,
            user_id=user_id,
        )
    return None


async def op_clear_reactions(ctx, args):
    args = require_dict(args, "op_clear_reactions")
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    emoji = reaction_emoji(args["emoji"]) if args.get("emoji") not in (None, "") else None
    await ctx.ensure_channel(channel_id)
    if emoji is None:
        await call(ctx, "DELETE", REACTIONS, channel_id=channel_id, message_id=message_id)
    else:
        await call(ctx, "DELETE", REACTIONS + "/{emoji}", channel_id=channel_id, message_id=message_id, emoji=emoji)
    return None


OPS = [
    op_send_message,
    op_edit_message,
    op_delete_message,
    op_bulk_delete_messages,
    op_pin_message,
    op_unpin_message,
    op_crosspost_message,
    op_fetch_message,
    op_fetch_messages,
    op_add_reaction,
    op_remove_reaction,
    op_clear_reactions,
]
