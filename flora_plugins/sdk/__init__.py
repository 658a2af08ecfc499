"""Built-in plugin ``sdk``: the SDK and web globals loaded into every isolate, the starter script, ``op_log`` and ``op_sleep``.

The SDK (``sdk/flora.js``) is what other plugins extend with ``__floraProvide(name, value)``: kv, rest,
cron and secrets come from their plugins (sdk/README.md).
"""

from __future__ import annotations

import asyncio

from flora_core import hookimpl

LEVELS = {"info", "warn", "error", "debug", "log"}
MAX_LOG_LINE = 4000


@hookimpl
def flora_register_js_sources(register):
    from importlib import resources

    import flora_sdk

    register("flora:web", resources.files(__name__).joinpath("web.js").read_text(encoding="utf-8"), order=5)
    register("flora:prelude", flora_sdk.read("prelude.js"), order=10)
    register("flora:sdk", flora_sdk.read("flora.js"), order=20)


@hookimpl
def flora_register_type_declarations(register):
    from importlib import resources

    sdk = resources.files("flora_sdk")
    register("flora:web", sdk.joinpath("web.d.ts"))
    register("flora:sdk", sdk.joinpath("index.d.ts"))


@hookimpl
def flora_starter_files():
    import flora_sdk

    return flora_sdk.starter_files()


async def op_log(ctx, args):
    """``console.*`` lines: ``{level, args: [str]}`` -> the guild's log."""
    if not isinstance(args, dict):
        return None
    level = args.get("level") if args.get("level") in LEVELS else "info"
    parts = args.get("args") or []
    if not isinstance(parts, list):
        parts = [parts]
    line = " ".join(p if isinstance(p, str) else str(p) for p in parts)
    if len(line) > MAX_LOG_LINE:
        line = line[:MAX_LOG_LINE] + f"… ({len(line) - MAX_LOG_LINE} more characters)"
    ctx.log("info" if level == "log" else level, line)
    return None


async def op_sleep(ctx, args):
    """What ``setTimeout`` waits on; never longer than a dispatch may last."""
    try:
        ms = float((args or {}).get("ms", 0))
    except (TypeError, ValueError, AttributeError):
        ms = 0.0
    limit = ctx.config.dispatch_timeout_secs * 1000 or 60_000
    await asyncio.sleep(min(max(ms, 0.0), limit) / 1000)
    return None


@hookimpl
def flora_register_ops(register):
    register("op_log", op_log)
    register("op_sleep", op_sleep)
