"""Members, roles and bans (reference §2.4 #31–#37). Scope: ``guildId`` (G).

``roleId`` and ``userId`` are not looked up: the routes are ``/guilds/{guildId}/...``, so Discord resolves
the role and the member inside the calling guild and answers 404 (Unknown Role / Unknown Member) for an
id of another guild; nothing can reach another guild through them. Checking them first would cost a
REST call per op and add nothing.
"""

from __future__ import annotations

from .common import integer, payload, reason, require_dict, snowflake
from .transport import call

MEMBER = "/guilds/{guild_id}/members/{user_id}"


def _member(ctx, args, op: str) -> tuple[dict, str, str]:
    args = require_dict(args, op)
    guild_id = snowflake(args, "guildId")
    user_id = snowflake(args, "userId")
    return args, guild_id, user_id


async def op_kick_member(ctx, args):
    args, guild_id, user_id = _member(ctx, args, "op_kick_member")
    why = reason(args)
    ctx.ensure_guild(guild_id)
    await call(ctx, "DELETE", MEMBER, guild_id=guild_id, user_id=user_id, reason=why)
    return None


async def op_ban_member(ctx, args):
    args, guild_id, user_id = _member(ctx, args, "op_ban_member")
    seconds = integer(args, "deleteMessageSeconds", minimum=0, maximum=2**32 - 1, default=0)  # flora: u32
    why = reason(args)
    ctx.ensure_guild(guild_id)
    await call(
        ctx,
        "PUT",
        "/guilds/{guild_id}/bans/{user_id}",
        guild_id=guild_id,
        user_id=user_id,
        json={"delete_message_seconds": seconds},
        reason=why,
    )
    return None


async def op_unban_member(ctx, args):
    args, guild_id, user_id = _member(ctx, args, "op_unban_member")
    why = reason(args)
    ctx.ensure_guild(guild_id)
    await call(ctx, "DELETE", "/guilds/{guild_id}/bans/{user_id}", guild_id=guild_id, user_id=user_id, reason=why)
    return None


async def _member_role(ctx, args, op: str, method: str):
    args, guild_id, user_id = _member(ctx, args, op)
    role_id = snowflake(args, "roleId")
    why = reason(args)
    ctx.ensure_guild(guild_id)
    await call(ctx, method, MEMBER + "/roles/{role_id}", guild_id=guild_id, user_id=user_id, role_id=role_id, reason=why)
    return None


async def op_add_member_role(ctx, args):
    return await _member_role(ctx, args, "op_add_member_role", "PUT")


async def op_remove_member_role(ctx, args):
    return await _member_role(ctx, args, "op_remove_member_role", "DELETE")


async def op_edit_member(ctx, args):
    args, guild_id, user_id = _member(ctx, args, "op_edit_member")
    body = payload(args)
    why = reason(args)
    ctx.ensure_guild(guild_id)
    return await call(ctx, "PATCH", MEMBER, guild_id=guild_id, user_id=user_id, json=body, reason=why)


async def op_edit_current_member(ctx, args):
    args = require_dict(args, "op_edit_current_member")
    guild_id = snowflake(args, "guildId")
    body = payload(args)
    why = reason(args)
    ctx.ensure_guild(guild_id)
    return await call(ctx, "PATCH", "/guilds/{guild_id}/members/@me", guild_id=guild_id, json=body, reason=why)


OPS = [
    op_kick_member,
    op_ban_member,
    op_unban_member,
    op_add_member_role,
    op_remove_member_role,
    op_edit_member,
    op_edit_current_member,
]
