"""Discord login (flora §6.14), web sessions and user-owned API tokens (§6.15).

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

import base64
import hashlib
import hmac
import json
import logging
import re
import secrets
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from flask import Blueprint, jsonify, make_response, redirect, request

from flora_core.storage import repo

from . import errors
from .app import state

log = logging.getLogger("flora.api.oauth")

STATE_COOKIE = "flora_oauth_state"
SESSION_COOKIE = "flora_session"
STATE_TTL = 600
OAUTH_SCOPE = "identify guilds guilds.members.read"
MIN_SECRET_LEN = 32
_ALNUM = string.ascii_letters + string.digits
_SID = re.compile(r"^[A-Za-z0-9]{24}$")
HTTP_TIMEOUT = 10.0


# -- Discord over HTTP -------------------------------------------------------------
def oauth_base(api_base: str) -> str:
    base = api_base.rstrip("/")
    for suffix in ("/api/v10", "/api"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def discord_call(method: str, path: str, *, bearer: str | None = None, bot: bool = False,
                 form: dict | None = None) -> tuple[int, Any]:
    """One Discord API call; returns (status, parsed JSON or text). Status 0 = unreachable."""
    cfg = state().config
    url = cfg.discord_api_base.rstrip("/") + path
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("User-Agent", "DiscordBot (flora, 1.0)")
    if form is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    if bearer is not None:
        req.add_header("Authorization", f"Bearer {bearer}")
    elif bot:
        req.add_header("Authorization", f"Bot {cfg.discord_token}")
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    except OSError as exc:
        return 0, str(exc)
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def _token_grant(fields: dict) -> dict | None:
    cfg = state().config
    form = {"client_id": cfg.discord_client_id or "", "client_secret": cfg.discord_client_secret or "", **fields}
    status, body = discord_call("POST", "/oauth2/token", form=form)
    if status != 200 or not isinstance(body, dict) or "access_token" not in body:
        log.warning("OAuth token grant %s failed: %s %s", fields.get("grant_type"), status, body)
        return None
    return body


# -- session cookie ----------------------------------------------------------------
def _secret() -> bytes:
    secret = state().config.api_secret
    if not secret or len(secret) < MIN_SECRET_LEN:
        log.warning("API_SECRET must be set and at least %d characters to use Discord login", MIN_SECRET_LEN)
        raise errors.forbidden(f"Discord login is not configured: API_SECRET must be at least {MIN_SECRET_LEN} characters")
    return secret.encode("utf-8")


def sign(sid: str) -> str:
    digest = hmac.new(_secret(), sid.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def session_id_from_cookie() -> str | None:
    """The verified session id of the request's cookie, or None (no/forged cookie)."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw or "." not in raw:
        return None
    sid, _, sig = raw.partition(".")
    if not _SID.match(sid):
        return None
    try:
        expected = sign(sid)
    except errors.ApiError:
        return None
    return sid if hmac.compare_digest(expected, sig) else None


def load_session() -> dict | None:
    """The live session for the request's cookie (refreshing its OAuth token when needed)."""
    sid = session_id_from_cookie()
    if sid is None:
        return None
    db = state().db
    row = repo.get_session(db, sid)
    now = int(time.time())
    if row is None:
        return None
    if int(row["session_expires_at"]) <= now:
        repo.delete_session(db, sid)
        return None
    if int(row["expires_at"]) <= now:
        grant = _token_grant({"grant_type": "refresh_token", "refresh_token": row["refresh_token"]}) if row["refresh_token"] else None
        if grant is None:
            repo.delete_session(db, sid)
            return None
        expires_at = now + int(grant.get("expires_in", 604800)) - 30
        session_exp = now + state().config.api_cookie_ttl_secs
        repo.update_session_tokens(db, sid, grant["access_token"], grant.get("refresh_token"), expires_at, session_exp)
        row = repo.get_session(db, sid)
    return row


def _cookie_kwargs() -> dict:
    return {"httponly": True, "samesite": "Lax", "path": "/", "secure": bool(state().config.api_cookie_secure)}


# -- routes -------------------------------------------------------------------------
def register_routes(bp: Blueprint) -> None:
    from .auth import require_identity, require_session, user_admin_guilds

    @bp.get("/auth/login")
    def auth_login():
        cfg = state().config
        _secret()  # fail clearly before sending anyone to Discord
        if not cfg.discord_client_id or not cfg.discord_client_secret:
            raise errors.forbidden("Discord login is not configured: DISCORD_CLIENT_ID and DISCORD_CLIENT_SECRET are required")
        oauth_state = "".join(secrets.choice(_ALNUM) for _ in range(24))
        repo.create_oauth_state(state().db, oauth_state, STATE_TTL)
        query = urllib.parse.urlencode({
            "client_id": cfg.discord_client_id, "response_type": "code",
            "redirect_uri": cfg.discord_redirect_uri, "scope": OAUTH_SCOPE,
            "state": oauth_state, "prompt": "consent",
        }, quote_via=urllib.parse.quote)
        resp = redirect(f"{oauth_base(cfg.discord_api_base)}/oauth2/authorize?{query}", code=302)
        resp.set_cookie(STATE_COOKIE, oauth_state, max_age=STATE_TTL, **_cookie_kwargs())
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
        _secret()
        grant = _token_grant({"grant_type": "authorization_code", "code": request.args["code"],
                              "redirect_uri": cfg.discord_redirect_uri})
        if grant is None:
            raise errors.unauthorized("OAuth code exchange failed")
        status, user = discord_call("GET", "/users/@me", bearer=grant["access_token"])
        if status != 200 or not isinstance(user, dict) or "id" not in user:
            raise errors.unauthorized("Failed to fetch Discord user")
        now = int(time.time())
        sid = "".join(secrets.choice(_ALNUM) for _ in range(24))
        ttl = cfg.api_cookie_ttl_secs
        repo.create_session(state().db, sid, user, grant["access_token"], grant.get("refresh_token"),
                            now + int(grant.get("expires_in", 604800)) - 30, now + ttl)
        resp = redirect("/", code=302)
        resp.set_cookie(SESSION_COOKIE, f"{sid}.{sign(sid)}", max_age=ttl, **_cookie_kwargs())
        resp.set_cookie(STATE_COOKIE, "", max_age=0, **_cookie_kwargs())
        return resp

    @bp.get("/auth/me")
    def auth_me():
        identity = require_identity()
        if identity.kind == "session":
            s = identity.session
            return jsonify({"user": {"id": s["user_id"], "username": s["username"],
                                     "global_name": s["global_name"], "avatar": s["avatar"]}})
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
        return jsonify([
            {"token_id": r["token_id"], "label": r["label"], "created_at": r["created_at"], "last_used_at": r["last_used_at"]}
            for r in repo.list_user_tokens(state().db, identity.user_id)
        ])

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
