"""Discord OAuth2 (authorization-code grant) for the emulator.

``GET /oauth2/authorize`` approves as the user chosen with :meth:`OAuthProvider.login_as`
(``Emulator.oauth_login_as``) and answers 302 to ``redirect_uri?code=…&state=…``.
``POST /api/v10/oauth2/token`` (also ``/api/oauth2/token``) exchanges a code or refresh token;
any ``client_id`` is accepted, the ``client_secret`` must equal the configured one (when set).
``GET /api/v10/users/@me[/guilds]`` with ``Authorization: Bearer <access_token>`` answer for
that user: the guilds they are a member of, ``permissions`` as a string computed from roles.
Every such Bearer call is recorded in :attr:`OAuthProvider.requests` (``Emulator.oauth_requests``),
so a test can count how often a client asked Discord (``/users/@me/guilds`` is rate limited to about
once a second per token on the real one).
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from .rest import API_PREFIX, json_response

if TYPE_CHECKING:
    from .server import EmulatorServer

TOKEN_TTL = 604800
BEARER_PATHS = {"/users/@me", "/users/@me/guilds"}
TOKEN_PATHS = {API_PREFIX + "/oauth2/token", "/api/oauth2/token"}


def _invalid_grant() -> web.Response:
    return json_response({"error": "invalid_grant", "error_description": 'Invalid "code" in request.'}, 400)


class OAuthProvider:
    def __init__(self, srv: EmulatorServer, client_secret: str | None = None) -> None:
        self.srv = srv
        self.client_secret = client_secret
        self.next_user: str | None = None
        self.codes: dict[str, dict] = {}  # code -> {user_id, redirect_uri, scope}
        self.access: dict[str, dict] = {}  # access_token -> {user_id, expires, scope}
        self.refresh: dict[str, dict] = {}  # refresh_token -> {user_id, scope}
        self.token_ttl = TOKEN_TTL
        # every Bearer call to BEARER_PATHS: {"method", "path", "user_id" (None for an unknown token), "status", "time"}
        self.requests: deque[dict] = deque(maxlen=20_000)

    # --- driver-side --------------------------------------------------------------------
    def login_as(self, user_id: str | None) -> None:
        self.next_user = str(user_id) if user_id is not None else None

    def issue(self, user_id: str, scope: str = "identify guilds") -> dict:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.access[access] = {"user_id": user_id, "expires": time.time() + self.token_ttl, "scope": scope}
        self.refresh[refresh] = {"user_id": user_id, "scope": scope}
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.token_ttl,
            "refresh_token": refresh,
            "scope": scope,
        }

    # --- HTTP -----------------------------------------------------------------------------
    def register(self, app: web.Application) -> None:
        app.router.add_get("/oauth2/authorize", self.authorize)
        app.router.add_get("/api/oauth2/authorize", self.authorize)
        app.router.add_post("/api/oauth2/token", self.token)

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        redirect_uri = q.get("redirect_uri")
        if not q.get("client_id") or not redirect_uri:
            return json_response({"message": "Invalid OAuth2 request", "code": 50035}, 400)
        if self.next_user is None or self.next_user not in self.srv.state.users:
            return json_response({"message": "No user selected to approve (Emulator.oauth_login_as)", "code": 0}, 400)
        code = secrets.token_urlsafe(18)
        self.codes[code] = {"user_id": self.next_user, "redirect_uri": redirect_uri, "scope": q.get("scope", "identify")}
        params = {"code": code}
        if "state" in q:
            params["state"] = q["state"]
        sep = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(redirect_uri + sep + urlencode(params))

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if self.client_secret is not None and form.get("client_secret") != self.client_secret:
            return _invalid_grant()
        grant = form.get("grant_type")
        if grant == "authorization_code":
            rec = self.codes.pop(str(form.get("code", "")), None)
            if rec is None or rec["redirect_uri"] != form.get("redirect_uri"):
                return _invalid_grant()
            return json_response(self.issue(rec["user_id"], rec["scope"]))
        if grant == "refresh_token":
            rec = self.refresh.pop(str(form.get("refresh_token", "")), None)
            if rec is None:
                return _invalid_grant()
            return json_response(self.issue(rec["user_id"], rec["scope"]))
        return json_response({"error": "unsupported_grant_type"}, 400)

    def bearer_user(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        rec = self.access.get(header[len("Bearer ") :])
        if rec is None or rec["expires"] <= time.time():
            return ""
        return rec["user_id"]

    async def handle_api(self, request: web.Request) -> web.Response | None:
        """Answer OAuth-authenticated /api/v10 requests; None lets the bot middleware go on."""
        if request.path in TOKEN_PATHS and request.method == "POST":
            return await self.token(request)
        rel = request.path[len(API_PREFIX) :]
        if rel not in BEARER_PATHS or request.method != "GET":
            return None
        user_id = self.bearer_user(request)
        if user_id is None:
            return None
        resp = self._bearer_response(rel, user_id)
        self.requests.append(
            {"method": request.method, "path": rel, "user_id": user_id or None, "status": resp.status, "time": time.time()}
        )
        return resp

    def _bearer_response(self, rel: str, user_id: str) -> web.Response:
        if not user_id:
            return json_response({"message": "401: Unauthorized", "code": 0}, 401)
        st = self.srv.state
        if rel == "/users/@me":
            return json_response(st.get_user(user_id))
        return json_response(
            [
                {
                    "id": gid,
                    "name": g.data["name"],
                    "icon": g.data.get("icon"),
                    "banner": None,
                    "owner": g.data["owner_id"] == user_id,
                    "features": [],
                    "permissions": str(st.base_permissions(gid, user_id)),
                }
                for gid, g in st.guilds.items()
                if user_id in g.members
            ]
        )
