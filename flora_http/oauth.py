"""Discord login (flora §6.14), web sessions and user-owned API tokens (§6.15): the routes. The Discord
client is ``discord_api.py``, the signed session cookie ``sessions.py``.

* ``GET /api/auth/login`` → 302 to Discord's authorize page with a one-shot state
  (DB table ``oauth_states``, 600 s, cookie ``flora_oauth_state``).
* ``GET /api/auth/callback`` checks the state, exchanges the code, fetches ``@me`` and stores a
  server-side session (table ``sessions``); the cookie is ``flora_session=<sid>.<sig>`` with
  ``sig = base64url-no-pad(HMAC-SHA256(API_SECRET, sid))``.
* ``/api/tokens*`` and ``/api/guilds`` need a session; ``/api/auth/me`` takes any identity.

Discord is reached with urllib (cooperative under gevent) at ``config.discord_api_base``; the
authorize page lives at that base without its ``/api/v10`` (or ``/api``) suffix.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import string
import time
import urllib.parse

from flask import Blueprint, jsonify, make_response, redirect, request

from flora_core.storage import repo

from . import errors
from .app import state
from .auth import require_identity, require_session, user_admin_guilds
from .discord_api import discord_call, oauth_base, token_grant
from .sessions import SESSION_COOKIE, cookie_kwargs, secret, sign

log = logging.getLogger("flora.api.oauth")

STATE_COOKIE = "flora_oauth_state"
STATE_TTL = 600
OAUTH_SCOPE = "identify guilds guilds.members.read"
_ALNUM = string.ascii_letters + string.digits


def register_routes(bp: Blueprint) -> None:
    @bp.get("/auth/login")
    def auth_login():
        cfg = state().config
        secret()  # fail clearly before sending anyone to Discord
        if not cfg.discord_client_id or not cfg.discord_client_secret:
            raise errors.forbidden("Discord login is not configured: DISCORD_CLIENT_ID and DISCORD_CLIENT_SECRET are required")
        oauth_state = "".join(secrets.choice(_ALNUM) for _ in range(24))
        repo.create_oauth_state(state().db, oauth_state, STATE_TTL)
        query = urllib.parse.urlencode(
            {
                "client_id": cfg.discord_client_id,
                "response_type": "code",
                "redirect_uri": cfg.discord_redirect_uri,
                "scope": OAUTH_SCOPE,
                "state": oauth_state,
                "prompt": "consent",
            },
            quote_via=urllib.parse.quote,
        )
        resp = redirect(f"{oauth_base(cfg.discord_api_base)}/oauth2/authorize?{query}", code=302)
        resp.set_cookie(STATE_COOKIE, oauth_state, max_age=STATE_TTL, **cookie_kwargs())
        return resp

    @bp.get("/auth/callback")
    def auth_callback():
        cfg = state().config
        for name in ("code", "state"):
            if not request.args.get(name):
                raise errors.bad_request(f"Failed to deserialize query string: missing field `{name}`")
        cookie_state = request.cookies.get(STATE_COOKIE)
        if not cookie_state:
            raise errors.unauthorized("Missing OAuth state")
        if not hmac.compare_digest(cookie_state, request.args["state"]):
            raise errors.unauthorized("OAuth state mismatch")
        if not repo.consume_oauth_state(state().db, cookie_state):
            raise errors.unauthorized("Expired OAuth state")
        secret()
        grant = token_grant(
            {"grant_type": "authorization_code", "code": request.args["code"], "redirect_uri": cfg.discord_redirect_uri}
        )
        if grant is None:
            raise errors.unauthorized("OAuth code exchange failed")
        status, user = discord_call("GET", "/users/@me", bearer=grant["access_token"])
        if status != 200 or not isinstance(user, dict) or "id" not in user:
            raise errors.unauthorized("Failed to fetch Discord user")
        now = int(time.time())
        sid = "".join(secrets.choice(_ALNUM) for _ in range(24))
        ttl = cfg.api_cookie_ttl_secs
        repo.create_session(
            state().db,
            sid,
            user,
            grant["access_token"],
            grant.get("refresh_token"),
            now + int(grant.get("expires_in", 604800)) - 30,
            now + ttl,
        )
        resp = redirect("/", code=302)
        resp.set_cookie(SESSION_COOKIE, f"{sid}.{sign(sid)}", max_age=ttl, **cookie_kwargs())
        resp.set_cookie(STATE_COOKIE, "", max_age=0, **cookie_kwargs())
        return resp

    @bp.get("/auth/me")
    def auth_me():
        identity = require_identity()
        if identity.kind == "session":
            s = identity.session
            return jsonify(
                {"user": {"id": s["user_id"], "username": s["username"], "global_name": s["global_name"], "avatar": s["avatar"]}}
            )
        return jsonify({"user": {"id": identity.user_id, "username": "", "global_name": None, "avatar": None}})

    @bp.post("/tokens")
    def create_token():
        identity = require_session()
        body = request.get_json(silent=True) or {}
        label = body.get("label") if isinstance(body, dict) else None
        if label is not None and not isinstance(label, str):
            raise errors.unprocessable("label: invalid type: expected a string")
        token, _ = repo.create_token(state().db, label, identity.user_id)
        return jsonify({"token": token})

    @bp.get("/tokens")
    def list_tokens():
        identity = require_session()
        return jsonify(
            [
                {"token_id": r["token_id"], "label": r["label"], "created_at": r["created_at"], "last_used_at": r["last_used_at"]}
                for r in repo.list_user_tokens(state().db, identity.user_id)
            ]
        )

    @bp.delete("/tokens/<token_id>")
    def delete_token(token_id: str):
        identity = require_session()
        if not repo.revoke_user_token(state().db, token_id, identity.user_id):
            raise errors.not_found("Token not found")
        return make_response("null", 200, {"Content-Type": "application/json"})

    @bp.get("/guilds")
    def list_guilds():
        identity = require_identity()
        if identity.kind != "session":
            raise errors.forbidden("User session required for guild listing")
        return jsonify(user_admin_guilds(identity))
