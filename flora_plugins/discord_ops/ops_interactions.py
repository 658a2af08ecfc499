"""Interaction responses, the original response, follow-ups and modals (reference §2.4 #14–#21, plus
``op_show_modal``).

Scope: only interactions delivered to this guild's script. The callbacks need the interaction id and its
token (``ctx.ensure_interaction``); the token routes (original response, follow-ups) need a token of such
an interaction (``ctx.ensure_interaction_token``). flora checked neither the token routes (§9.2 #11) nor
which guild an interaction came from.
"""

from __future__ import annotations

import contextlib

from flora_core.errors import DISCORD_HTTP_ERROR, OpError, invalid

from .attachments import attachment_refs, load_attachments
from .common import application_id, require_dict, snowflake, string, token
from .components import build_modal_components
from .messages import (
    EMPTY_EDIT_RESPONSE,
    EMPTY_FOLLOWUP,
    EMPTY_RESPONSE,
    EPHEMERAL,
    edited_message,
    new_message,
)
from .transport import call

CALLBACK = "/interactions/{interaction_id}/{interaction_token}/callback"
WEBHOOK = "/webhooks/{webhook_id}/{webhook_token}"
ORIGINAL = WEBHOOK + "/messages/@original"
FOLLOWUP = WEBHOOK + "/messages/{message_id}"


def _interaction(ctx, args):
    """(interaction id, token, its state) of an interaction delivered to this guild's script."""
    interaction_id = snowflake(args, "interactionId")
    tok = token(args)
    state = ctx.ensure_interaction(interaction_id, tok)
    return interaction_id, tok, state


def _token(ctx, args) -> str:
    tok = token(args)
    ctx.ensure_interaction_token(tok)
    return tok


async def _with_files(ctx, out):
    files = await load_attachments(ctx, out.attachments)
    if files:
        out.body["attachments"] = attachment_refs(files)
    return files


async def _answer(ctx, interaction_id: str, tok: str, state, rtype: int, data: dict | None, files=None):
    """Send callback ``rtype`` and mark the interaction answered, so the runtime's automatic defer
    (``RUNTIME_AUTO_DEFER_MS``) does not fire too. Both hold the interaction's lock, so exactly one of
    them answers first. If the runtime already deferred it, the answer becomes what Discord allows
    after a defer: the reply or update edits the deferred response, a defer is a no-op, a modal fails."""
    lock = getattr(state, "lock", None)
    async with lock if lock is not None else contextlib.nullcontext():
        if getattr(state, "auto_deferred", False):
            return await _after_auto_defer(ctx, tok, rtype, data, files)
        body: dict = {"type": rtype}
        if data is not None:
            body["data"] = data
        await call(ctx, "POST", CALLBACK, interaction_id=interaction_id, interaction_token=tok, json=body, files=files)
        if state is not None:
            state.acked = True
    return None


async def _after_auto_defer(ctx, tok: str, rtype: int, data: dict | None, files):
    if rtype == 5:
        return None
    if rtype == 9:
        after = getattr(ctx.config, "auto_defer_ms", None)
        raise OpError(
            DISCORD_HTTP_ERROR,
            "Discord HTTP error (400): Interaction has already been acknowledged (the runtime deferred it "
            f"automatically after {after} ms; a modal must be the first answer) "
            "(route: POST /interactions/{interaction_id}/{interaction_token}/callback)",
            status=400,
            discord_code=40060,
        )
    app = application_id(ctx, "PATCH /webhooks/{app}/{token}/messages/@original")
    if rtype == 4 and (data or {}).get("flags", 0) & EPHEMERAL:
        # The defer was public and ephemerality cannot be edited: remove the public "thinking"
        # message and answer with an ephemeral follow-up, so only the user sees the reply.
        await call(ctx, "DELETE", ORIGINAL, webhook_id=app, webhook_token=tok)
        await call(ctx, "POST", WEBHOOK, webhook_id=app, webhook_token=tok, json=dict(data), files=files)
        return None
    edit = dict(data or {})
    edit.pop("tts", None)
    if "flags" in edit:  # ephemerality is fixed by the defer; only display flags can be edited
        edit["flags"] &= ~EPHEMERAL
        if not edit["flags"]:
            del edit["flags"]
    await call(ctx, "PATCH", ORIGINAL, webhook_id=app, webhook_token=tok, json=edit, files=files)
    return None


async def op_send_interaction_response(ctx, args):
    """Callback type 4 (CHANNEL_MESSAGE_WITH_SOURCE); ``ephemeral`` sets flag 64."""
    args = require_dict(args, "op_send_interaction_response")
    interaction_id, tok, state = _interaction(ctx, args)
    out = new_message(args, ctx.config, empty_message=EMPTY_RESPONSE, extra_flags=EPHEMERAL if args.get("ephemeral") else 0)
    files = await _with_files(ctx, out)
    await _answer(ctx, interaction_id, tok, state, 4, out.body, files)
    return None


async def op_defer_interaction_response(ctx, args):
    """Callback type 5 (DEFERRED_CHANNEL_MESSAGE_WITH_SOURCE)."""
    args = require_dict(args, "op_defer_interaction_response")
    interaction_id, tok, state = _interaction(ctx, args)
    await _answer(ctx, interaction_id, tok, state, 5, {"flags": EPHEMERAL} if args.get("ephemeral") else None)
    return None


async def op_update_interaction_response(ctx, args):
    """Callback type 7 (UPDATE_MESSAGE): edits the message carrying the component. ``components: []``
    counts as a change (it removes the components)."""
    args = require_dict(args, "op_update_interaction_response")
    interaction_id, tok, state = _interaction(ctx, args)
    out = new_message(args, ctx.config, empty_message=EMPTY_RESPONSE, components_may_be_empty=True)
    files = await _with_files(ctx, out)
    await _answer(ctx, interaction_id, tok, state, 7, out.body, files)
    return None


async def op_show_modal(ctx, args):
    """Callback type 9 (MODAL): ``{interactionId, token, customId, title, components}``; components are
    labels (wrapping an inputText, a select or a fileUpload), text displays, or legacy action rows holding
    one inputText. flora had no op for this (§9.2 #6)."""
    args = require_dict(args, "op_show_modal")
    interaction_id = snowflake(args, "interactionId")
    tok = token(args)
    custom_id = string(args, "customId", required=True)
    if len(custom_id) > 100:
        raise invalid("custom_id", "must be 100 or fewer characters")
    title = string(args, "title", required=True)
    if len(title) > 45:
        raise invalid("title", "must be 45 or fewer characters")
    components = build_modal_components(args.get("components"))
    state = ctx.ensure_interaction(interaction_id, tok)
    await _answer(ctx, interaction_id, tok, state, 9, {"custom_id": custom_id, "title": title, "components": components})
    return None


async def op_edit_original_interaction_response(ctx, args):
    args = require_dict(args, "op_edit_original_interaction_response")
    tok = token(args)
    out = edited_message(args, ctx.config, attachments=True, empty_message=EMPTY_EDIT_RESPONSE)
    ctx.ensure_interaction_token(tok)
    app = application_id(ctx, "PATCH /webhooks/{app}/{token}/messages/@original")
    files = await _with_files(ctx, out)
    return await call(ctx, "PATCH", ORIGINAL, webhook_id=app, webhook_token=tok, json=out.body, files=files)


async def op_delete_original_interaction_response(ctx, args):
    args = require_dict(args, "op_delete_original_interaction_response")
    tok = _token(ctx, args)
    app = application_id(ctx, "DELETE /webhooks/{app}/{token}/messages/@original")
    await call(ctx, "DELETE", ORIGINAL, webhook_id=app, webhook_token=tok)
    return None


async def op_create_followup_message(ctx, args):
    args = require_dict(args, "op_create_followup_message")
    tok = token(args)
    out = new_message(
        args,
        ctx.config,
        empty_message=EMPTY_FOLLOWUP,
        plain_empty_error=True,
        extra_flags=EPHEMERAL if args.get("ephemeral") else 0,
    )
    ctx.ensure_interaction_token(tok)
    app = application_id(ctx, "POST /webhooks/{app}/{token}")
    files = await _with_files(ctx, out)
    return await call(
        ctx, "POST", WEBHOOK, webhook_id=app, webhook_token=tok, json=out.body, files=files, params={"wait": "true"}
    )


async def op_edit_followup_message(ctx, args):
    args = require_dict(args, "op_edit_followup_message")
    tok = token(args)
    if args.get("messageId") in (None, ""):
        raise OpError("INVALID_INPUT", "message_id required to edit followup")
    message_id = snowflake(args, "messageId")
    out = edited_message(args, ctx.config, attachments=True, empty_message=EMPTY_EDIT_RESPONSE)
    ctx.ensure_interaction_token(tok)
    app = application_id(ctx, "PATCH /webhooks/{app}/{token}/messages/{message_id}")
    files = await _with_files(ctx, out)
    return await call(
        ctx, "PATCH", FOLLOWUP, webhook_id=app, webhook_token=tok, message_id=message_id, json=out.body, files=files
    )


async def op_delete_followup_message(ctx, args):
    args = require_dict(args, "op_delete_followup_message")
    tok = token(args)
    message_id = snowflake(args, "messageId")
    ctx.ensure_interaction_token(tok)
    app = application_id(ctx, "DELETE /webhooks/{app}/{token}/messages/{message_id}")
    await call(ctx, "DELETE", FOLLOWUP, webhook_id=app, webhook_token=tok, message_id=message_id)
    return None


OPS = [
    op_send_interaction_response,
    op_defer_interaction_response,
    op_update_interaction_response,
    op_show_modal,
    op_edit_original_interaction_response,
    op_delete_original_interaction_response,
    op_create_followup_message,
    op_edit_followup_message,
    op_delete_followup_message,
]
