"""flora-hello: an example third-party flora plugin.

It adds one op that guild scripts can call::

    const text = await __floraOp("op_hello", { name: "x" });   // "hello, x!"

and one HTTP route, ``GET /api/hello``. A plugin only needs
``from flora_core import hookimpl`` and functions named after flora's hooks.
"""

from __future__ import annotations

from flora_core import hookimpl

__version__ = "0.3.0"


async def op_hello(ctx, args):
    """``{name}`` -> ``"hello, <name>!"``.

    Ops run in a worker process, on its event loop: ``ctx.guild_id`` is the
    calling guild; blocking work goes through ``await ctx.run_sync(fn, ...)``.
    """
    name = args.get("name") if isinstance(args, dict) else None
    if not isinstance(name, str) or not name:
        name = "world"
    return f"hello, {name}!"


@hookimpl
def flora_register_ops(register):
    register("op_hello", op_hello)


@hookimpl
def flora_register_blueprints(register):
    # Flask is imported here, not at module level: ops run in worker processes
    # that never serve HTTP, and only the API process builds blueprints.
    from flask import Blueprint, jsonify

    bp = Blueprint("flora_hello", __name__, url_prefix="/api")

    @bp.get("/hello")
    def hello():
        return jsonify({"hello": "world", "plugin": "flora-hello"})

    register(bp)
