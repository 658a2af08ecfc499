"""Which stores exist: the ``kv_stores`` table of the relational database (SQLite or PostgreSQL).

A key operation on a store that is not listed here fails with ``store not found``.
"""

from __future__ import annotations

import datetime as dt
import uuid

from .errors import KV_STORE_EXISTS, KvError

COLUMNS = "id, guild_id, store_name, created_at, updated_at"


def _now() -> str:
    """RFC 3339 in UTC with a ``Z``, like flora's chrono timestamps."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def exists(db, guild_id: str, store_name: str) -> bool:
    return db.fetchone("SELECT 1 AS one FROM kv_stores WHERE guild_id = ? AND store_name = ?", (guild_id, store_name)) is not None


def get(db, guild_id: str, store_name: str) -> dict | None:
    return db.fetchone(f"SELECT {COLUMNS} FROM kv_stores WHERE guild_id = ? AND store_name = ?", (guild_id, store_name))


def list_stores(db, guild_id: str) -> list[dict]:
    return db.fetchall(f"SELECT {COLUMNS} FROM kv_stores WHERE guild_id = ? ORDER BY store_name", (guild_id,))


def create(db, guild_id: str, store_name: str) -> dict:
    """Insert the store; the unique constraint decides between two concurrent creators."""
    now = _now()
    row = {"id": str(uuid.uuid4()), "guild_id": guild_id, "store_name": store_name, "created_at": now, "updated_at": now}
    with db.transaction() as cur:
        cur.execute(
            f"INSERT INTO kv_stores ({COLUMNS}) VALUES (?, ?, ?, ?, ?) ON CONFLICT (guild_id, store_name) DO NOTHING",
            tuple(row.values()),
        )
        if cur.rowcount != 1:
            raise KvError(KV_STORE_EXISTS, "store already exists")
    return row


def delete(db, guild_id: str, store_name: str) -> bool:
    return db.execute("DELETE FROM kv_stores WHERE guild_id = ? AND store_name = ?", (guild_id, store_name)) == 1
