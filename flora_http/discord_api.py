"""Discord's HTTP API as the API process needs it (OAuth token grants, ``@me``, guild lookups): urllib,
cooperative under gevent, at ``config.discord_api_base``."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .app import state

log = logging.getLogger("flora.api.discord")

HTTP_TIMEOUT = 10.0


def oauth_base(api_base: str) -> str:
    base = api_base.rstrip("/")
    for suffix in ("/api/v10", "/api"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def discord_call(
    method: str, path: str, *, bearer: str | None = None, bot: bool = False, form: dict | None = None
) -> tuple[int, Any]:
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


def token_grant(fields: dict) -> dict | None:
    cfg = state().config
    form = {"client_id": cfg.discord_client_id or "", "client_secret": cfg.discord_client_secret or "", **fields}
    status, body = discord_call("POST", "/oauth2/token", form=form)
    if status != 200 or not isinstance(body, dict) or "access_token" not in body:
        log.warning("OAuth token grant %s failed: %s %s", fields.get("grant_type"), status, body)
        return None
    return body
