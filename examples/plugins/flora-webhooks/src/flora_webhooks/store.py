"""The two tables: endpoints (a guild's named webhooks, secrets hashed) and deliveries (the outbox the
supervisor drains into the guild's script)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")


class WebhookError(Exception):
    """A bad name or guild id; the message is for the user."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_names(guild_id: str, name: str) -> None:
    if not SNOWFLAKE.match(guild_id or ""):
        raise WebhookError(f"invalid guild id {guild_id!r}")
    if not NAME.match(name or ""):
        raise WebhookError(f"invalid webhook name {name!r}: lower-case letters, digits, - and _, at most 64")


def create(db, guild_id: str, name: str) -> str:
    """A new webhook (or a new secret for an existing one); returns the secret, shown once."""
    check_names(guild_id, name)
    secret = secrets.token_urlsafe(24)
    with db.transaction() as cur:
        cur.execute("DELETE FROM webhook_endpoints WHERE guild_id = ? AND name = ?", (guild_id, name))
        cur.execute(
            "INSERT INTO webhook_endpoints (guild_id, name, secret_hash, created_at) VALUES (?, ?, ?, ?)",
            (guild_id, name, _hash(secret), int(time.time())),
        )
    return secret


def list_hooks(db, guild_id: str) -> list[dict]:
    return db.fetchall("SELECT name, created_at FROM webhook_endpoints WHERE guild_id = ? ORDER BY name", (guild_id,))


def delete(db, guild_id: str, name: str) -> bool:
    with db.transaction() as cur:
        cur.execute("DELETE FROM webhook_endpoints WHERE guild_id = ? AND name = ?", (guild_id, name))
        return cur.rowcount > 0


def verify(db, guild_id: str, name: str, secret: str | None) -> bool:
    row = db.fetchone("SELECT secret_hash FROM webhook_endpoints WHERE guild_id = ? AND name = ?", (guild_id, name))
    return bool(row and secret and hmac.compare_digest(row["secret_hash"], _hash(secret)))


def recent_calls(db, guild_id: str, name: str, seconds: int) -> int:
    since = int(time.time() * 1000) - seconds * 1000
    row = db.fetchone(
        "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE guild_id = ? AND name = ? AND received_at > ?",
        (guild_id, name, since),
    )
    return int(row["n"]) if row else 0


def enqueue(db, guild_id: str, name: str, body, headers: dict) -> int:
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO webhook_deliveries (guild_id, name, body, headers, received_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
            (guild_id, name, json.dumps(body), json.dumps(headers), int(time.time() * 1000)),
        )
        return int(cur.fetchone()["id"])


def take_pending(db, limit: int = 100) -> list[dict]:
    """Deliveries not yet handed over, oldest first, marked delivered in the same transaction."""
    now = int(time.time() * 1000)
    with db.transaction() as cur:
        cur.execute("SELECT * FROM webhook_deliveries WHERE delivered_at IS NULL ORDER BY id LIMIT ?", (limit,))
        rows = cur.fetchall()
        for row in rows:
            cur.execute("UPDATE webhook_deliveries SET delivered_at = ? WHERE id = ?", (now, row["id"]))
    return rows


def prune(db, keep_ms: int) -> None:
    """Delivered rows older than ``keep_ms`` (kept that long only for the rate limit)."""
    with db.transaction() as cur:
        cur.execute(
            "DELETE FROM webhook_deliveries WHERE delivered_at IS NOT NULL AND received_at < ?",
            (int(time.time() * 1000) - keep_ms,),
        )
