"""``/_emu/*``: JSON HTTP routes mirroring the driver API, for a web console or for benchmarks
driving the emulator from another process. No auth; the server only listens on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .models import ApiError

if TYPE_CHECKING:
    from .server import EmulatorServer

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(data).encode(), status=status, content_type="application/json")


def register_control(app: web.Application, srv: EmulatorServer) -> None:
    def action(fn: Callable[[dict], Any], status: int = 200):
        async def handler(request: web.Request) -> web.Response:
            body: dict = {}
            if request.body_exists:
                try:
                    body = await request.json()
                except ValueError:
                    return _json({"error": "invalid JSON body"}, 400)
                if not isinstance(body, dict):
                    return _json({"error": "body must be a JSON object"}, 400)
            body.update({k: v for k, v in request.match_info.items()})
            try:
                result = fn(body)
            except ApiError as exc:
                return _json({"error": exc.message, "code": exc.code}, exc.status)
            except LookupError as exc:
                return _json({"error": str(exc)}, 404)
            except (TypeError, ValueError) as exc:
                return _json({"error": str(exc)}, 400)
            return _json(result if result is not None else {"ok": True}, status)

        return handler

    def q(request_body: dict, key: str, default: Any = None) -> Any:
        return request_body.get(key, default)

    routes: list[tuple[str, str, Callable[[dict], Any], int]] = [
        ("GET", "/_emu/state", lambda b: srv.snapshot(), 200),
        ("GET", "/_emu/sessions", lambda b: srv.connected_sessions, 200),
        ("GET", "/_emu/gateway_log", lambda b: srv.gateway_log, 200),
        ("GET", "/_emu/unknown_routes", lambda b: srv.unknown_routes, 200),
        ("GET", "/_emu/messages/{channel_id}", lambda b: srv.messages(b["channel_id"]), 200),
        ("GET", "/_emu/interactions/{interaction_id}", lambda b: srv.interaction(b["interaction_id"]), 200),
        ("GET", "/_emu/commands", lambda b: srv.commands(None), 200),
        ("GET", "/_emu/commands/{guild_id}", lambda b: srv.commands(b["guild_id"]), 200),
        ("DELETE", "/_emu/requests", lambda b: srv.clear_requests(), 200),
        ("POST", "/_emu/guilds", lambda b: srv.create_guild(**b), 201),
        ("POST", "/_emu/channels", lambda b: srv.create_channel(**b), 201),
        ("POST", "/_emu/roles", lambda b: srv.create_role(**b), 201),
        ("POST", "/_emu/users", lambda b: srv.create_user(**b), 201),
        ("POST", "/_emu/members", lambda b: srv.add_member(**b), 201),
        ("POST", "/_emu/say", lambda b: srv.user_says(**b), 201),
        ("POST", "/_emu/say_many", lambda b: _say_many(srv, b), 201),
        ("POST", "/_emu/slash", lambda b: srv.invoke_slash(**b), 201),
        ("POST", "/_emu/click", lambda b: srv.click_component(**b), 201),
        ("POST", "/_emu/modal", lambda b: srv.submit_modal(**b), 201),
        ("POST", "/_emu/react", lambda b: {"added": srv.react(**b)}, 200),
        ("POST", "/_emu/dispatch", lambda b: srv.dispatch(b["event"], b.get("data"), b.get("guild_id")), 200),
        ("POST", "/_emu/reconnect", lambda b: {"sessions": srv.send_reconnect(q(b, "shard"))}, 200),
        ("POST", "/_emu/invalidate", lambda b: {"sessions": srv.invalidate_session(q(b, "resumable", True), q(b, "shard"))}, 200),
        ("POST", "/_emu/drop", lambda b: {"sessions": srv.drop_connections(q(b, "code", 4000), q(b, "shard"))}, 200),
        ("POST", "/_emu/inject_429", lambda b: srv.inject_429(**b), 200),
        ("POST", "/_emu/inject_status", lambda b: srv.inject_status(**b), 200),
        ("POST", "/_emu/set_bucket", lambda b: srv.set_bucket(**b), 200),
        ("POST", "/_emu/clear_rate_limits", lambda b: srv.clear_rate_limits(), 200),
    ]
    for method, path, fn, status in routes:
        app.router.add_route(method, path, action(fn, status))
    app.router.add_get("/_emu/requests", _requests_handler(srv))


def _say_many(srv: EmulatorServer, b: dict) -> dict:
    """Benchmark helper: ``{channel_id, user_id, content, count}`` -> that many messages."""
    count = int(b.get("count", 1))
    first = last = None
    for _ in range(count):
        msg = srv.user_says(b["channel_id"], b["user_id"], b.get("content", ""))
        first = first or msg["id"]
        last = msg["id"]
    return {"count": count, "first_id": first, "last_id": last}


def _requests_handler(srv: EmulatorServer):
    async def handler(request: web.Request) -> web.Response:
        """``?method=&path=<regex>&since=<epoch>&limit=`` filters; headers are left out."""
        qs = request.query
        try:
            since = float(qs["since"]) if "since" in qs else None
            found = srv.find_requests(qs.get("method"), qs.get("path"), since=since)
            limit = int(qs.get("limit", 0))
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        if limit:
            found = found[-limit:]
        return _json([{k: v for k, v in r.items() if k != "headers"} for r in found])

    return handler
