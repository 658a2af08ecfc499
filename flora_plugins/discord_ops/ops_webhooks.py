"""Webhooks (reference §2.4 #47–#49). Scope: the webhook's guild (W), looked up with ``GET /webhooks/{id}``
and cached; ``threadId`` must be a thread of the calling guild too (T). A ``channel_id`` in an edit's
payload (moving the webhook) must be a channel of the calling guild (C)."""

from __future__ import annotations

from flora_core.errors import invalid

from .attachments import attachment_refs, load_attachments
from .common import parse_snowflake, payload, reason, require_dict, snowflake, string
from .messages import EMPTY_WEBHOOK, new_message
from .scope import ensure_webhook, forget_webhook
from .transport import call

WEBHOOK = "/webhooks/{webhook_id}"
WEBHOOK_TOKEN = "/webhooks/{webhook_id}/{webhook_token}"


def _token(args: dict, *, required: bool) -> str | None:
    tok = args.get("token")
    if tok is None or tok == "":
        if required:
            raise invalid("token", "missing webhook token")
        return None
    if not isinstance(tok, str) or len(tok) > 500 or any(c in tok for c in "/?#"):
        raise invalid("token", "invalid webhook token")
    return tok


async def op_execute_webhook(ctx, args):
    args = require_dict(args, "op_execute_webhook")
    webhook_id = snowflake(args, "webhookId")
    tok = _token(args, required=True)
    thread_id = snowflake(args, "threadId", required=False)
    out = new_message(args, ctx.config, empty_message=EMPTY_WEBHOOK)
    for key, wire in (("username", "username"), ("avatarUrl", "avatar_url"), ("threadName", "thread_name")):
        value = string(args, key)
        if value is not None:
            out.body[wire] = value
    wait = bool(args.get("wait", False))
    params = {"wait": "true" if wait else "false", "with_components": "true" if args.get("withComponents") else "false"}
    if thread_id is not None:
        params["thread_id"] = thread_id
    await ensure_webhook(ctx, webhook_id, tok)
    if thread_id is not None:
        await ctx.ensure_channel(thread_id, "thread")
    files = await load_attachments(ctx, out.attachments)
    if files:
        out.body["attachments"] = attachment_refs(files)
    result = await call(
        ctx, "POST", WEBHOOK_TOKEN, webhook_id=webhook_id, webhook_token=tok, json=out.body, files=files, params=params
    )
    return result if wait else None


async def op_edit_webhook(ctx, args):
    args = require_dict(args, "op_edit_webhook")
    webhook_id = snowflake(args, "webhookId")
    tok = _token(args, required=False)
    body = payload(args)
    why = reason(args)
    target_channel = None
    if body.get("channel_id") is not None:
        target_channel = parse_snowflake(body["channel_id"], "payload.channel_id")
    await ensure_webhook(ctx, webhook_id, tok)
    if target_channel is not None:
        await ctx.ensure_channel(target_channel)
    if tok:
        return await call(ctx, "PATCH", WEBHOOK_TOKEN, webhook_id=webhook_id, webhook_token=tok, json=body, reason=why)
    return await call(ctx, "PATCH", WEBHOOK, webhook_id=webhook_id, json=body, reason=why)


async def op_delete_webhook(ctx, args):
    args = require_dict(args, "op_delete_webhook")
    webhook_id = snowflake(args, "webhookId")
    tok = _token(args, required=False)
    why = reason(args)
    await ensure_webhook(ctx, webhook_id, tok)
    if tok:
        await call(ctx, "DELETE", WEBHOOK_TOKEN, webhook_id=webhook_id, webhook_token=tok, reason=why)
    else:
        await call(ctx, "DELETE", WEBHOOK, webhook_id=webhook_id, reason=why)
    forget_webhook(ctx, webhook_id)
    return None


OPS = [op_execute_webhook, op_edit_webhook, op_delete_webhook]
