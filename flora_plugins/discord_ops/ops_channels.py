"""Channels and threads (reference §2.4 #38–#46). Scope: ``guildId`` (G) for creation, the channel (C)
for edits, deletes and new threads, the thread (T) for thread membership.

What Discord returns for a created or edited channel goes into the scope cache; a deleted one leaves it.
"""

from __future__ import annotations

from .common import payload, reason, require_dict, snowflake
from .scope import forget_channel, remember_channel
from .transport import call

CHANNEL = "/channels/{channel_id}"


async def op_create_channel(ctx, args):
    args = require_dict(args, "op_create_channel")
    guild_id = snowflake(args, "guildId")
    body = payload(args)
    why = reason(args)
    ctx.ensure_guild(guild_id)
    channel = await call(ctx, "POST", "/guilds/{guild_id}/channels", guild_id=guild_id, json=body, reason=why)
    remember_channel(ctx, channel)
    return channel


async def op_edit_channel(ctx, args):
    args = require_dict(args, "op_edit_channel")
    channel_id = snowflake(args, "channelId")
    body = payload(args)
    why = reason(args)
    await ctx.ensure_channel(channel_id)
    channel = await call(ctx, "PATCH", CHANNEL, channel_id=channel_id, json=body, reason=why)
    remember_channel(ctx, channel)
    return channel


async def op_delete_channel(ctx, args):
    args = require_dict(args, "op_delete_channel")
    channel_id = snowflake(args, "channelId")
    why = reason(args)
    await ctx.ensure_channel(channel_id)
    channel = await call(ctx, "DELETE", CHANNEL, channel_id=channel_id, reason=why)
    forget_channel(ctx, channel_id)
    return channel


async def op_create_thread(ctx, args):
    args = require_dict(args, "op_create_thread")
    channel_id = snowflake(args, "channelId")
    body = payload(args)
    why = reason(args)
    await ctx.ensure_channel(channel_id)
    thread = await call(ctx, "POST", CHANNEL + "/threads", channel_id=channel_id, json=body, reason=why)
    remember_channel(ctx, thread)
    return thread


async def op_create_thread_from_message(ctx, args):
    args = require_dict(args, "op_create_thread_from_message")
    channel_id = snowflake(args, "channelId")
    message_id = snowflake(args, "messageId")
    body = payload(args)
    why = reason(args)
    await ctx.ensure_channel(channel_id)
    thread = await call(
        ctx,
        "POST",
        CHANNEL + "/messages/{message_id}/threads",
        channel_id=channel_id,
        message_id=message_id,
        json=body,
        reason=why,
    )
    remember_channel(ctx, thread)
    return thread


async def _thread_self(ctx, args, op: str, method: str):
    args = require_dict(args, op)
    thread_id = snowflake(args, "threadId")
    await ctx.ensure_channel(thread_id, "thread")
    await call(ctx, method, CHANNEL + "/thread-members/@me", channel_id=thread_id)
    return None


async def op_join_thread(ctx, args):
    return await _thread_self(ctx, args, "op_join_thread", "PUT")


async def op_leave_thread(ctx, args):
    return await _thread_self(ctx, args, "op_leave_thread", "DELETE")


async def _thread_member(ctx, args, op: str, method: str):
    args = require_dict(args, op)
    thread_id = snowflake(args, "threadId")
    user_id = snowflake(args, "userId")
    await ctx.ensure_channel(thread_id, "thread")
    await call(ctx, method, CHANNEL + "/thread-members/{user_id}", channel_id=thread_id, user_id=user_id)
    return None


async def op_add_thread_member(ctx, args):
    return await _thread_member(ctx, args, "op_add_thread_member", "PUT")


async def op_remove_thread_member(ctx, args):
    return await _thread_member(ctx, args, "op_remove_thread_member", "DELETE")


OPS = [
    op_create_channel,
    op_edit_channel,
    op_delete_channel,
    op_create_thread,
    op_create_thread_from_message,
    op_join_thread,
    op_leave_thread,
    op_add_thread_member,
    op_remove_thread_member,
]
