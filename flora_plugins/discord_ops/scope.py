"""Scope checks the ops need beyond ``OpContext`` (reference §2.2): webhooks, and keeping the channel
cache in step with what the ops create and delete."""

from __future__ import annotations

from flora_core.errors import forbidden
from flora_core.runtime.opctx import ScopeCache

_WEBHOOK_CACHE = "discord_ops.webhook_scope"


def webhook_cache(ctx) -> ScopeCache:
    cache = ctx.services.resources.get(_WEBHOOK_CACHE)
    if cache is None:
        cache = ctx.services.resources[_WEBHOOK_CACHE] = ScopeCache("wh", ctx.services.scope.redis)
    return cache


async def ensure_webhook(ctx, webhook_id: str, token: str | None) -> None:
    """The webhook must belong to the calling guild: ``GET /webhooks/{id}`` (``/{id}/{token}`` when the
    script holds the token, which needs no Manage Webhooks permission) -> ``guild_id``, cached like channels.

    The application's own id is the webhook of interaction follow-ups: there, the token must be one of an
    interaction delivered to this guild's script, as for the follow-up ops."""
    if ctx.application_id and webhook_id == str(ctx.application_id):
        if not token:
            raise forbidden("webhook is not owned by a guild")
        ctx.ensure_interaction_token(token)
        return

    async def fetch():
        if token:
            data = await ctx.rest("GET", "/webhooks/{webhook_id}/{webhook_token}", webhook_id=webhook_id, webhook_token=token)
        else:
            data = await ctx.rest("GET", "/webhooks/{webhook_id}", webhook_id=webhook_id)
        found = str(data["guild_id"]) if isinstance(data, dict) and data.get("guild_id") else None
        if isinstance(data, dict) and data.get("channel_id") and found:
            ctx.services.scope.remember(str(data["channel_id"]), found)
        return found

    guild = await webhook_cache(ctx).lookup(webhook_id, fetch)
    if guild is None:
        raise forbidden("webhook is not owned by a guild")
    if guild != ctx.guild_id:
        raise forbidden("webhook is outside runtime scope")


def remember_channel(ctx, channel) -> None:
    """A channel or thread Discord just returned (created / edited): its guild is known."""
    if isinstance(channel, dict) and channel.get("id"):
        guild = channel.get("guild_id")
        ctx.services.scope.remember(str(channel["id"]), str(guild) if guild else None)


def forget_channel(ctx, channel_id: str) -> None:
    ctx.services.scope.forget(channel_id)


def forget_webhook(ctx, webhook_id: str) -> None:
    webhook_cache(ctx).forget(webhook_id)
