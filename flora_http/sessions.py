"""Web sessions of Discord login: the signed cookie ``flora_session=<sid>.<sig>``
(``sig = base64url-no-pad(HMAC-SHA256(API_SECRET, sid))``) and the server-side row it names, whose OAuth
token is refreshed when it expires."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time

from flask import request

from flora_core.storage import repo

from . import errors
from .app import state
from .discord_api import token_grant

log = logging.getLogger("flora.api.sessions")

SESSION_COOKIE = "flora_session"
MIN_SECRET_LEN = 32
_SID = re.compile(r"^[A-Za-z0-9]{24}$")


def secret() -> bytes:
    secret = state().config.api_secret
    if not secret or len(secret) < MIN_SECRET_LEN:
        log.warning("API_SECRET must be set and at least %d characters to use Discord login", MIN_SECRET_LEN)
        raise errors.forbidden(f"Discord login is not configured: API_SECRET must be at least {MIN_SECRET_LEN} characters")
    return secret.encode("utf-8")


def sign(sid: str) -> str:
    digest = hmac.new(secret(), sid.encode("utf-8"), hashlib.sha256).digest()
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
        grant = (
            token_grant({"grant_type": "refresh_token", "refresh_token": row["refresh_token"]}) if row["refresh_token"] else None
        )
        if grant is None:
            repo.delete_session(db, sid)
            return None
        expires_at = now + int(grant.get("expires_in", 604800)) - 30
        session_exp = now + state().config.api_cookie_ttl_secs
        repo.update_session_tokens(db, sid, grant["access_token"], grant.get("refresh_token"), expires_at, session_exp)
        row = repo.get_session(db, sid)
    return row


def cookie_kwargs() -> dict:
    return {"httponly": True, "samesite": "Lax", "path": "/", "secure": bool(state().config.api_cookie_secure)}
