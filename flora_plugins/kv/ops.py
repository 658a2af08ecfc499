"""The KV ops scripts call through ``kv.store(name)`` (sdk/flora.js), always for the calling guild.

The guild comes from ``ctx.guild_id``, never from the arguments: a script can
only name stores of its own guild. Arguments are the objects the SDK sends;
results are what the SDK expects (flora's shapes).
"""

from __future__ import annotations

import functools
from typing import Any

from flora_core.errors import OpError

from .errors import KvError, invalid
from .limits import parse_expiration, parse_integer
from .service import KvService, service_for


def kv_op(fn):
    """KV errors (validation included) reach the script as an ``Error`` with their code and flora's message."""

    @functools.wraps(fn)
    async def op(ctx, args):
        try:
            return await fn(ctx, args)
        except KvError as exc:
            raise OpError(exc.code, exc.message) from None

    return op


def _args(args: Any, op: str) -> dict:
    if not isinstance(args, dict):
        raise invalid(f"Invalid input for {op}: expected an object")
    return args


def _string(args: dict, field: str, *, optional: bool = False) -> str | None:
    value = args.get(field)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid input for {field}: expected a string")
    return value


def _store_key(args: dict, op: str) -> tuple[dict, str, str]:
    args = _args(args, op)
    return args, _string(args, "storeName"), _string(args, "key")


async def _call(ctx, fn, *args):
    """Run ``fn(service, calling guild, *args)`` off the event loop."""
    service = service_for(ctx.services.resources, ctx.db, ctx.config, ctx.services.plugins)
    return await ctx.run_sync(fn, service, ctx.guild_id, *args)


@kv_op
async def op_kv_get(ctx, args):
    _, store, key = _store_key(args, "op_kv_get")
    return await _call(ctx, KvService.get, store, key)


@kv_op
async def op_kv_get_with_metadata(ctx, args):
    """``[value, {expiration, metadata} | null] | null``, as flora returned it."""
    _, store, key = _store_key(args, "op_kv_get_with_metadata")
    entry = await _call(ctx, KvService.get_with_metadata, store, key)
    if entry is None:
        return None
    meta = None
    if entry.expiration is not None or entry.metadata is not None:
        meta = {"expiration": entry.expiration, "metadata": entry.metadata}
    return [entry.value, meta]


@kv_op
async def op_kv_set(ctx, args):
    args, store, key = _store_key(args, "op_kv_set")
    value = _string(args, "value")
    expiration = parse_expiration(args.get("expiration"))
    await _call(ctx, KvService.set, store, key, value, expiration, args.get("metadata"))
    return None


@kv_op
async def op_kv_update_metadata(ctx, args):
    args, store, key = _store_key(args, "op_kv_update_metadata")
    await _call(ctx, KvService.update_metadata, store, key, args.get("metadata"))
    return None


@kv_op
async def op_kv_delete(ctx, args):
    _, store, key = _store_key(args, "op_kv_delete")
    await _call(ctx, KvService.delete, store, key)
    return None


@kv_op
async def op_kv_list_keys(ctx, args):
    """``{keys: [{name, expiration?, metadata?}], listComplete, cursor?}``."""
    args = _args(args, "op_kv_list_keys")
    store = _string(args, "storeName")
    prefix = _string(args, "prefix", optional=True)
    cursor = _string(args, "cursor", optional=True)
    limit = args.get("limit")
    if limit is not None:
        limit = parse_integer("limit", limit)
        if limit < 0:
            raise invalid("Invalid input for limit: expected a non-negative integer")
    return await _call(ctx, KvService.list, store, prefix, limit, cursor)


@kv_op
async def op_kv_incr(ctx, args):
    """Not in flora: add ``by`` (default 1) atomically; resolves with the new number."""
    args, store, key = _store_key(args, "op_kv_incr")
    by = 1 if args.get("by") is None else parse_integer("by", args["by"])
    return await _call(ctx, KvService.incr, store, key, by)


@kv_op
async def op_kv_cas(ctx, args):
    """Not in flora: set only if the value is ``expected`` (null: absent); resolves true if it was set."""
    args, store, key = _store_key(args, "op_kv_cas")
    expected = _string(args, "expected", optional=True)
    value = _string(args, "value")
    expiration = parse_expiration(args.get("expiration"))
    return await _call(ctx, KvService.cas, store, key, expected, value, expiration, args.get("metadata"))


OPS = {
    fn.__name__: fn
    for fn in (
        op_kv_get,
        op_kv_get_with_metadata,
        op_kv_set,
        op_kv_update_metadata,
        op_kv_delete,
        op_kv_list_keys,
        op_kv_incr,
        op_kv_cas,
    )
}
