"""REST API v10: the request middleware (auth, rate limits, recording) and route handlers."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .models import ApiError, invalid_form, unknown

if TYPE_CHECKING:
    from .server import EmulatorServer

log = logging.getLogger(__name__)
API_PREFIX = "/api/v10"
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_MAJOR_KEYS = ("channel_id", "guild_id", "webhook_id", "interaction_id")
PAYLOAD_KEY = web.RequestKey("emu_payload", object)
FILES_KEY = web.RequestKey("emu_files", list)


def json_response(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    # body= (not text=) so Content-Type is exactly "application/json", as disnake requires
    return web.Response(body=_dumps(data).encode(), status=status, content_type="application/json", headers=headers)


def no_content() -> web.Response:
    return web.Response(status=204)


def _truthy(value: str | None) -> bool:
    return str(value).lower() in ("1", "true", "yes")


async def read_payload(request: web.Request) -> tuple[Any, list]:
    """JSON body, or multipart ``payload_json`` + ``files[n]``; files as (field, name, type, bytes)."""
    if not request.body_exists:
        return None, []
    if request.content_type.startswith("multipart/"):
        payload: Any = None
        files: list = []
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            data = await part.read(decode=True)
            if part.name == "payload_json":
                try:
                    payload = json.loads(data)
                except ValueError:
                    raise ApiError(400, 50109, "The request body contains invalid JSON.") from None
            elif part.filename is not None or (part.name or "").startswith("file"):
                files.append(
                    (
                        part.name or "",
                        part.filename or part.name or "file",
                        part.headers.get("Content-Type", "application/octet-stream"),
                        bytes(data),
                    )
                )
        return payload if payload is not None else {}, files
    raw = await request.read()
    if not raw:
        return None, []
    try:
        return json.loads(raw), []
    except ValueError:
        raise ApiError(400, 50109, "The request body contains invalid JSON.") from None


def _auth_exempt(method: str, rel: str) -> bool:
    if rel.startswith("/interactions/") or rel == "/gateway":
        return True
    parts = rel.split("/")
    return len(parts) >= 4 and parts[1] == "webhooks"  # /webhooks/{id}/{token}...


def make_middleware(srv: EmulatorServer):
    state, limiter = srv.state, srv.limits
    bot_auth = f"Bot {state.token}"

    @web.middleware
    async def api_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        path = request.path
        if not path.startswith(API_PREFIX):
            return await handler(request)
        oauth = getattr(srv, "oauth", None)  # OAuth2 token exchange and Bearer user routes
        if oauth is not None and (oauth_resp := await oauth.handle_api(request)) is not None:
            return oauth_resp
        rel = path[len(API_PREFIX) :] or "/"
        method = request.method
        record: dict[str, Any] = {
            "method": method,
            "path": rel,
            "query": dict(request.query),
            "json": None,
            "headers": dict(request.headers),
            "time": time.time(),
            "status": None,
        }
        rl_headers: dict[str, str] = {}
        try:
            body_error = None
            try:
                payload, files = await read_payload(request)
            except ApiError as exc:
                payload, files, body_error = None, [], exc
            record["json"] = payload
            if files:
                record["files"] = [{"field": f[0], "filename": f[1], "content_type": f[2], "size": len(f[3])} for f in files]
            request[PAYLOAD_KEY] = payload
            request[FILES_KEY] = files
            if not _auth_exempt(method, rel) and request.headers.get("Authorization") != bot_auth:
                raise ApiError(401, 0, "401: Unauthorized")
            match = request.match_info
            route = match.route.resource.canonical if match.route.resource else rel
            major = ":".join(match.get(k, "") for k in _MAJOR_KEYS)
            status, body, rl_headers = limiter.evaluate(method, rel, f"{method} {route}", major)
            if status is not None:
                resp = json_response(body, status)
            else:
                if body_error is not None:
                    raise body_error
                resp = await handler(request)
        except ApiError as exc:
            resp = json_response(exc.body(), exc.status)
        except Exception:
            log.exception("emulator: error handling %s %s", method, rel)
            resp = json_response({"message": "500: Internal Server Error", "code": 0}, 500)
        resp.headers.update(rl_headers)
        record["status"] = resp.status
        state.requests.append(record)
        return resp

    return api_middleware


class RestApi:
    """Route handlers. Each reads ``request[PAYLOAD_KEY]`` / ``[FILES_KEY]`` parsed by the
    middleware and calls into EmulatorState; ApiErrors become Discord JSON errors."""

    def __init__(self, srv: EmulatorServer) -> None:
        self.srv = srv
        self.st = srv.state

    def register(self, app: web.Application) -> None:
        routes: list[tuple[str, str, Callable]] = [
            # bootstrap
            ("GET", "/users/@me", self.get_me),
            ("GET", "/users/@me/guilds", self.my_guilds),
            ("POST", "/users/@me/channels", self.open_dm),
            ("GET", "/users/{user_id}", self.get_user),
            ("GET", "/gateway", self.get_gateway),
            ("GET", "/gateway/bot", self.get_gateway_bot),
            ("GET", "/oauth2/applications/@me", self.app_info),
            ("GET", "/applications/@me", self.app_info),
            # application commands
            ("GET", "/applications/{app_id}/commands", self.list_commands),
            ("PUT", "/applications/{app_id}/commands", self.put_commands),
            ("POST", "/applications/{app_id}/commands", self.post_command),
            ("GET", "/applications/{app_id}/commands/{command_id}", self.get_command),
            ("PATCH", "/applications/{app_id}/commands/{command_id}", self.patch_command),
            ("DELETE", "/applications/{app_id}/commands/{command_id}", self.delete_command),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands", self.list_commands),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands", self.put_commands),
            ("POST", "/applications/{app_id}/guilds/{guild_id}/commands", self.post_command),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands/permissions", self.all_command_permissions),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}", self.get_command),
            ("PATCH", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}", self.patch_command),
            ("DELETE", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}", self.delete_command),
            ("GET", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}/permissions", self.command_permissions),
            ("PUT", "/applications/{app_id}/guilds/{guild_id}/commands/{command_id}/permissions", self.put_command_permissions),
            # channels & messages
            ("GET", "/channels/{channel_id}", self.get_channel),
            ("PATCH", "/channels/{channel_id}", self.patch_channel),
            ("DELETE", "/channels/{channel_id}", self.delete_channel),
            ("POST", "/channels/{channel_id}/typing", self.typing),
            ("GET", "/channels/{channel_id}/messages/pins", self.list_pins_v2),
            ("PUT", "/channels/{channel_id}/messages/pins/{message_id}", self.pin),
            ("DELETE", "/channels/{channel_id}/messages/pins/{message_id}", self.unpin),
            ("GET", "/channels/{channel_id}/pins", self.list_pins),
            ("PUT", "/channels/{channel_id}/pins/{message_id}", self.pin),
            ("DELETE", "/channels/{channel_id}/pins/{message_id}", self.unpin),
            ("POST", "/channels/{channel_id}/messages/bulk-delete", self.bulk_delete),
            ("GET", "/channels/{channel_id}/messages", self.list_messages),
            ("POST", "/channels/{channel_id}/messages", self.create_message),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self.get_message),
            ("PATCH", "/channels/{channel_id}/messages/{message_id}", self.edit_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}", self.delete_message),
            ("POST", "/channels/{channel_id}/messages/{message_id}/crosspost", self.crosspost),
            ("POST", "/channels/{channel_id}/messages/{message_id}/threads", self.thread_from_message),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions", self.clear_reactions),
            ("GET", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}", self.reaction_users),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}", self.clear_emoji),
            ("PUT", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self.add_reaction),
            ("DELETE", "/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/{user_id}", self.remove_reaction),
            ("POST", "/channels/{channel_id}/threads", self.create_thread),
            ("PUT", "/channels/{channel_id}/thread-members/{user_id}", self.thread_member),
            ("DELETE", "/channels/{channel_id}/thread-members/{user_id}", self.thread_member),
            ("GET", "/channels/{channel_id}/webhooks", self.list_webhooks),
            ("POST", "/channels/{channel_id}/webhooks", self.create_webhook),
            # guilds
            ("GET", "/guilds/{guild_id}", self.get_guild),
            ("GET", "/guilds/{guild_id}/channels", self.guild_channels),
            ("POST", "/guilds/{guild_id}/channels", self.create_channel),
            ("GET", "/guilds/{guild_id}/roles", self.guild_roles),
            ("POST", "/guilds/{guild_id}/roles", self.create_role),
            ("PATCH", "/guilds/{guild_id}/roles/{role_id}", self.edit_role),
            ("DELETE", "/guilds/{guild_id}/roles/{role_id}", self.delete_role),
            ("GET", "/guilds/{guild_id}/members", self.list_members),
            ("GET", "/guilds/{guild_id}/members/search", self.search_members),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self.get_member),
            ("PATCH", "/guilds/{guild_id}/members/{user_id}", self.edit_member),
            ("DELETE", "/guilds/{guild_id}/members/{user_id}", self.kick_member),
            ("PUT", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self.add_member_role),
            ("DELETE", "/guilds/{guild_id}/members/{user_id}/roles/{role_id}", self.remove_member_role),
            ("GET", "/guilds/{guild_id}/bans", self.list_bans),
            ("GET", "/guilds/{guild_id}/bans/{user_id}", self.get_ban),
            ("PUT", "/guilds/{guild_id}/bans/{user_id}", self.ban),
            ("DELETE", "/guilds/{guild_id}/bans/{user_id}", self.unban),
            # interactions & webhooks
            ("POST", "/interactions/{interaction_id}/{token}/callback", self.interaction_callback),
            ("GET", "/webhooks/{webhook_id}/{token}/messages/{message_id}", self.webhook_get_message),
            ("PATCH", "/webhooks/{webhook_id}/{token}/messages/{message_id}", self.webhook_edit_message),
            ("DELETE", "/webhooks/{webhook_id}/{token}/messages/{message_id}", self.webhook_delete_message),
            ("POST", "/webhooks/{webhook_id}/{token}", self.webhook_execute),
            ("GET", "/webhooks/{webhook_id}/{token}", self.get_webhook),
            ("PATCH", "/webhooks/{webhook_id}/{token}", self.edit_webhook),
            ("DELETE", "/webhooks/{webhook_id}/{token}", self.delete_webhook),
            ("GET", "/webhooks/{webhook_id}", self.get_webhook),
            ("PATCH", "/webhooks/{webhook_id}", self.edit_webhook),
            ("DELETE", "/webhooks/{webhook_id}", self.delete_webhook),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, API_PREFIX + path, handler)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self.unknown_route)
        app.router.add_route("GET", "/attachments/{attachment_id}/{filename}", self.attachment)

    # --- helpers -------------------------------------------------------------
    @staticmethod
    def _body(request: web.Request) -> dict:
        payload = request.get(PAYLOAD_KEY)
        if payload is None:
            return {}
        if not isinstance(payload, dict):
            raise invalid_form("_errors", "DICT_TYPE_CONVERT", "Only dictionaries may be used in a DictType")
        return payload

    def _app(self, request: web.Request) -> None:
        if request.match_info["app_id"] != self.st.application_id:
            raise unknown("Application")

    def _guild_scope(self, request: web.Request) -> str | None:
        self._app(request)
        gid = request.match_info.get("guild_id")
        if gid is not None:
            self.st.get_guild(gid)
        return gid

    async def unknown_route(self, request: web.Request) -> web.Response:
        rel = request.path[len(API_PREFIX) :]
        self.st.unknown_routes.append({"method": request.method, "path": rel, "time": time.time()})
        log.debug("emulator: unknown route %s %s", request.method, rel)
        return json_response({"message": "404: Not Found", "code": 0}, 404)

    async def attachment(self, request: web.Request) -> web.Response:
        found = self.st.attachments.get(request.match_info["attachment_id"])
        if found is None:
            return json_response({"message": "404: Not Found", "code": 0}, 404)
        return web.Response(body=found[2], content_type=found[1])

    # --- bootstrap -------------------------------------------------------------
    async def get_me(self, request: web.Request) -> web.Response:
        return json_response(self.st.bot_user)

    async def get_user(self, request: web.Request) -> web.Response:
        return json_response(self.st.public_user(request.match_info["user_id"]))

    async def my_guilds(self, request: web.Request) -> web.Response:
        st = self.st
        return json_response(
            [
                {
                    "id": gid,
                    "name": g.data["name"],
                    "icon": None,
                    "banner": None,
                    "owner": g.data["owner_id"] == st.bot_id,
                    "features": [],
                    "permissions": str(st.base_permissions(gid, st.bot_id)),
                }
                for gid, g in st.guilds.items()
            ]
        )

    async def open_dm(self, request: web.Request) -> web.Response:
        rid = self._body(request).get("recipient_id")
        if rid is None:
            raise invalid_form("recipient_id", "BASE_TYPE_REQUIRED", "This field is required")
        return json_response(self.st.open_dm(str(rid)))

    async def get_gateway(self, request: web.Request) -> web.Response:
        return json_response({"url": self.srv.ws_url})

    async def get_gateway_bot(self, request: web.Request) -> web.Response:
        return json_response(
            {
                "url": self.srv.ws_url,
                "shards": self.srv.recommended_shards,
                "session_start_limit": {
                    "total": 1000,
                    "remaining": 1000,
                    "reset_after": 86_400_000,
                    "max_concurrency": self.srv.max_concurrency,
                },
            }
        )

    async def app_info(self, request: web.Request) -> web.Response:
        st = self.st
        return json_response(
            {
                "id": st.application_id,
                "name": st.bot_user["username"],
                "icon": None,
                "description": "flora local emulator application",
                "summary": "",
                "type": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "verify_key": "0" * 64,
                "owner": st.owner_user,
                "team": None,
                "flags": self.srv.application_flags,
                "bot": st.public_user(st.bot_id),
                "rpc_origins": [],
                "hook": True,
                "redirect_uris": [],
                "interactions_endpoint_url": None,
                "approximate_guild_count": len(st.guilds),
                "integration_types_config": {"0": {}},
            }
        )

    # --- commands ----------------------------------------------------------------
    async def list_commands(self, request: web.Request) -> web.Response:
        return json_response(self.st.list_commands(self._guild_scope(request)))

    async def put_commands(self, request: web.Request) -> web.Response:
        gid = self._guild_scope(request)
        payload = request.get(PAYLOAD_KEY)
        return json_response(self.st.bulk_overwrite_commands(gid, payload if payload is not None else []))

    async def post_command(self, request: web.Request) -> web.Response:
        cmd, created = self.st.upsert_command(self._guild_scope(request), self._body(request))
        return json_response(cmd, 201 if created else 200)

    async def get_command(self, request: web.Request) -> web.Response:
        return json_response(self.st.get_command(self._guild_scope(request), request.match_info["command_id"]))

    async def patch_command(self, request: web.Request) -> web.Response:
        return json_response(
            self.st.edit_command(self._guild_scope(request), request.match_info["command_id"], self._body(request))
        )

    async def delete_command(self, request: web.Request) -> web.Response:
        self.st.delete_command(self._guild_scope(request), request.match_info["command_id"])
        return no_content()

    async def all_command_permissions(self, request: web.Request) -> web.Response:
        self._guild_scope(request)
        return json_response([])

    async def command_permissions(self, request: web.Request) -> web.Response:
        gid = self._guild_scope(request)
        self.st.get_command(gid, request.match_info["command_id"])
        raise ApiError(404, 10066, "Unknown application command permissions")

    async def put_command_permissions(self, request: web.Request) -> web.Response:
        raise ApiError(403, 50001, "Missing Access")  # needs a user Bearer token on real Discord

    # --- channels ------------------------------------------------------------
    async def get_channel(self, request: web.Request) -> web.Response:
        return json_response(self.st.get_channel(request.match_info["channel_id"]))

    async def patch_channel(self, request: web.Request) -> web.Response:
        return json_response(self.st.edit_channel(request.match_info["channel_id"], self._body(request)))

    async def delete_channel(self, request: web.Request) -> web.Response:
        return json_response(self.st.delete_channel(request.match_info["channel_id"]))

    async def typing(self, request: web.Request) -> web.Response:
        self.st.get_channel(request.match_info["channel_id"])
        return no_content()

    async def list_pins(self, request: web.Request) -> web.Response:
        return json_response([m for _, m in self.st.list_pins(request.match_info["channel_id"])])

    async def list_pins_v2(self, request: web.Request) -> web.Response:
        pins = self.st.list_pins(request.match_info["channel_id"])
        before = request.query.get("before")
        if before:
            pins = [(at, m) for at, m in pins if at < before]
        limit = max(1, min(int(request.query.get("limit", 50)), 50))
        return json_response(
            {"items": [{"pinned_at": at, "message": m} for at, m in pins[:limit]], "has_more": len(pins) > limit}
        )

    async def pin(self, request: web.Request) -> web.Response:
        self.st.set_pinned(request.match_info["channel_id"], request.match_info["message_id"], True)
        return no_content()

    async def unpin(self, request: web.Request) -> web.Response:
        self.st.set_pinned(request.match_info["channel_id"], request.match_info["message_id"], False)
        return no_content()

    async def list_messages(self, request: web.Request) -> web.Response:
        q = request.query
        return json_response(
            self.st.list_messages(
                request.match_info["channel_id"],
                limit=int(q.get("limit", 50)),
                before=q.get("before"),
                after=q.get("after"),
                around=q.get("around"),
            )
        )

    async def create_message(self, request: web.Request) -> web.Response:
        body = dict(self._body(request))
        if body.get("flags"):
            body["flags"] = int(body["flags"]) & ~64  # ephemeral only exists for interactions
        msg = self.st.create_message(request.match_info["channel_id"], self.st.bot_id, body, request[FILES_KEY])
        return json_response(msg)

    async def get_message(self, request: web.Request) -> web.Response:
        return json_response(self.st.get_message(request.match_info["channel_id"], request.match_info["message_id"]))

    async def edit_message(self, request: web.Request) -> web.Response:
        return json_response(
            self.st.edit_message(
                request.match_info["channel_id"],
                request.match_info["message_id"],
                self._body(request),
                request[FILES_KEY],
                editor_id=self.st.bot_id,
            )
        )

    async def delete_message(self, request: web.Request) -> web.Response:
        self.st.delete_message(request.match_info["channel_id"], request.match_info["message_id"])
        return no_content()

    async def bulk_delete(self, request: web.Request) -> web.Response:
        self.st.bulk_delete(request.match_info["channel_id"], self._body(request).get("messages"))
        return no_content()

    async def crosspost(self, request: web.Request) -> web.Response:
        return json_response(self.st.crosspost(request.match_info["channel_id"], request.match_info["message_id"]))

    async def add_reaction(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.st.add_reaction(m["channel_id"], m["message_id"], self.st.bot_id, m["emoji"])
        return no_content()

    async def remove_reaction(self, request: web.Request) -> web.Response:
        m = request.match_info
        uid = self.st.bot_id if m["user_id"] == "@me" else m["user_id"]
        self.st.remove_reaction(m["channel_id"], m["message_id"], uid, m["emoji"])
        return no_content()

    async def clear_emoji(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.st.clear_reactions(m["channel_id"], m["message_id"], m["emoji"])
        return no_content()

    async def clear_reactions(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.st.clear_reactions(m["channel_id"], m["message_id"])
        return no_content()

    async def reaction_users(self, request: web.Request) -> web.Response:
        m, q = request.match_info, request.query
        return json_response(
            self.st.reaction_users(
                m["channel_id"], m["message_id"], m["emoji"], limit=int(q.get("limit", 25)), after=q.get("after")
            )
        )

    async def create_thread(self, request: web.Request) -> web.Response:
        body = self._body(request)
        if not body.get("name"):
            raise invalid_form("name", "BASE_TYPE_REQUIRED", "This field is required")
        thread = self.st.create_thread(
            request.match_info["channel_id"],
            body["name"],
            type=int(body.get("type") or 12),
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
        )
        return json_response(thread, 201)

    async def thread_from_message(self, request: web.Request) -> web.Response:
        body = self._body(request)
        if not body.get("name"):
            raise invalid_form("name", "BASE_TYPE_REQUIRED", "This field is required")
        m = request.match_info
        thread = self.st.create_thread(
            m["channel_id"],
            body["name"],
            type=11,
            message_id=m["message_id"],
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
        )
        return json_response(thread, 201)

    async def thread_member(self, request: web.Request) -> web.Response:
        ch = self.st.get_channel(request.match_info["channel_id"])
        if ch["type"] not in (10, 11, 12):
            raise ApiError(400, 50024, "Cannot execute action on this channel type")
        return no_content()

    async def list_webhooks(self, request: web.Request) -> web.Response:
        cid = self.st.get_channel(request.match_info["channel_id"])["id"]
        return json_response([h for h in self.st.webhooks.values() if h["channel_id"] == cid])

    async def create_webhook(self, request: web.Request) -> web.Response:
        name = self._body(request).get("name")
        if not name:
            raise invalid_form("name", "BASE_TYPE_REQUIRED", "This field is required")
        return json_response(self.st.create_webhook(request.match_info["channel_id"], name))

    # --- guilds ----------------------------------------------------------------
    async def get_guild(self, request: web.Request) -> web.Response:
        return json_response(
            self.st.guild_payload(request.match_info["guild_id"], with_counts=_truthy(request.query.get("with_counts")))
        )

    async def guild_channels(self, request: web.Request) -> web.Response:
        g = self.st.get_guild(request.match_info["guild_id"])
        return json_response([self.st.channels[c] for c in g.channel_ids if self.st.channels[c]["type"] not in (10, 11, 12)])

    async def create_channel(self, request: web.Request) -> web.Response:
        body = self._body(request)
        if not body.get("name"):
            raise invalid_form("name", "BASE_TYPE_REQUIRED", "This field is required")
        ch = self.st.create_channel(
            request.match_info["guild_id"],
            body["name"],
            int(body.get("type") or 0),
            parent_id=body.get("parent_id"),
            topic=body.get("topic"),
            position=body.get("position"),
            permission_overwrites=body.get("permission_overwrites"),
            nsfw=bool(body.get("nsfw")),
        )
        return json_response(ch, 201)

    async def guild_roles(self, request: web.Request) -> web.Response:
        return json_response(list(self.st.get_guild(request.match_info["guild_id"]).roles.values()))

    async def create_role(self, request: web.Request) -> web.Response:
        body = self._body(request)
        role = self.st.create_role(
            request.match_info["guild_id"],
            body.get("name") or "new role",
            body.get("permissions") or "0",
            color=int(body.get("color") or 0),
            hoist=bool(body.get("hoist")),
            mentionable=bool(body.get("mentionable")),
        )
        return json_response(role)

    async def edit_role(self, request: web.Request) -> web.Response:
        m = request.match_info
        return json_response(self.st.edit_role(m["guild_id"], m["role_id"], self._body(request)))

    async def delete_role(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.st.delete_role(m["guild_id"], m["role_id"])
        return no_content()

    async def list_members(self, request: web.Request) -> web.Response:
        g = self.st.get_guild(request.match_info["guild_id"])
        limit = max(1, min(int(request.query.get("limit", 1)), 1000))
        after = int(request.query.get("after", 0))
        uids = sorted((u for u in g.members if int(u) > after), key=int)[:limit]
        return json_response([self.st.member_payload(g.data["id"], u) for u in uids])

    async def search_members(self, request: web.Request) -> web.Response:
        limit = max(1, min(int(request.query.get("limit", 1)), 1000))
        members, _ = self.st.query_members(request.match_info["guild_id"], query=request.query.get("query", ""), limit=limit)
        return json_response(members)

    def _member_id(self, request: web.Request) -> str:
        uid = request.match_info["user_id"]
        return self.st.bot_id if uid == "@me" else uid

    async def get_member(self, request: web.Request) -> web.Response:
        return json_response(self.st.member_payload(request.match_info["guild_id"], self._member_id(request)))

    async def edit_member(self, request: web.Request) -> web.Response:
        return json_response(self.st.update_member(request.match_info["guild_id"], self._member_id(request), self._body(request)))

    async def kick_member(self, request: web.Request) -> web.Response:
        self.st.remove_member(request.match_info["guild_id"], self._member_id(request))
        return no_content()

    async def add_member_role(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.st.add_member_role(m["guild_id"], self._member_id(request), m["role_id"])
        return no_content()

    async def remove_member_role(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.st.remove_member_role(m["guild_id"], self._member_id(request), m["role_id"])
        return no_content()

    async def list_bans(self, request: web.Request) -> web.Response:
        return json_response(list(self.st.get_guild(request.match_info["guild_id"]).bans.values()))

    async def get_ban(self, request: web.Request) -> web.Response:
        ban = self.st.get_guild(request.match_info["guild_id"]).bans.get(request.match_info["user_id"])
        if ban is None:
            raise unknown("Ban")
        return json_response(ban)

    async def ban(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.st.ban_member(m["guild_id"], m["user_id"], request.headers.get("X-Audit-Log-Reason"))
        return no_content()

    async def unban(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.st.unban_member(m["guild_id"], m["user_id"])
        return no_content()

    # --- interactions & webhooks ----------------------------------------------------
    async def interaction_callback(self, request: web.Request) -> web.Response:
        m = request.match_info
        result = self.st.interaction_callback(
            m["interaction_id"],
            m["token"],
            request.get(PAYLOAD_KEY),
            request[FILES_KEY],
            with_response=_truthy(request.query.get("with_response")),
        )
        return no_content() if result is None else json_response(result)

    async def webhook_get_message(self, request: web.Request) -> web.Response:
        m = request.match_info
        return json_response(self.st.webhook_get_message(m["webhook_id"], m["token"], m["message_id"]))

    async def webhook_edit_message(self, request: web.Request) -> web.Response:
        m = request.match_info
        return json_response(
            self.st.webhook_edit_message(m["webhook_id"], m["token"], m["message_id"], self._body(request), request[FILES_KEY])
        )

    async def webhook_delete_message(self, request: web.Request) -> web.Response:
        m = request.match_info
        self.st.webhook_delete_message(m["webhook_id"], m["token"], m["message_id"])
        return no_content()

    async def webhook_execute(self, request: web.Request) -> web.Response:
        m = request.match_info
        msg = self.st.webhook_execute(
            m["webhook_id"], m["token"], self._body(request), request[FILES_KEY], thread_id=request.query.get("thread_id")
        )
        return json_response(msg) if _truthy(request.query.get("wait")) else no_content()

    async def get_webhook(self, request: web.Request) -> web.Response:
        m = request.match_info
        if m.get("token") and self.st.interaction_by_token(m["webhook_id"], m["token"]):
            raise unknown("Webhook")
        return json_response(self.st.get_webhook(m["webhook_id"], m.get("token")))

    async def edit_webhook(self, request: web.Request) -> web.Response:
        m = request.match_info
        hook = self.st.get_webhook(m["webhook_id"], m.get("token"))
        body = self._body(request)
        if "name" in body and body["name"]:
            hook["name"] = body["name"]
        if "avatar" in body:
            hook["avatar"] = None if body["avatar"] is None else "emu-avatar"
        if body.get("channel_id") and not m.get("token"):
            hook["channel_id"] = self.st.get_channel(body["channel_id"])["id"]
        return json_response(hook)

    async def delete_webhook(self, request: web.Request) -> web.Response:
        m = request.match_info
        hook = self.st.get_webhook(m["webhook_id"], m.get("token"))
        del self.st.webhooks[hook["id"]]
        return no_content()
