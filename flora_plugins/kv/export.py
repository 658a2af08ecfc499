"""``POST /api/kv/export/{guild_id}`` (flora's route 27): a server-side backup of a guild's KV data.

flora took a RocksDB checkpoint; here every store of the guild is read through the configured
backend and written as one JSON file, ``$FLORA_DATA_DIR/kv-backups/<guild>/<backup_id>.json``,
so it works the same on SQLite, PostgreSQL and Redis. flora's limits: one export per 60 s per
guild (and per actor), counted across processes like the write rate (``rate.py``), the newest 5
backups kept. Nothing is downloadable, as in flora.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from .errors import KV_RATE_LIMITED, KvError
from .limits import validate_guild_id

EXPORT_INTERVAL_SECS = 60
BACKUPS_KEPT = 5


def _check_rate(service, guild_id: str, actor: str | None) -> None:
    """flora's export limit, counted where every process sees it (the service's counter, ``rate.py``)."""
    wait = service.counter.take([f"export:{guild_id}", f"export-actor:{guild_id}:{actor or '-'}"], 1, EXPORT_INTERVAL_SECS)
    if wait is not None:
        wait_ms = int(wait * 1000)
        raise KvError(KV_RATE_LIMITED, f"kv export rate limit exceeded; retry in {wait_ms}ms", retry_after=wait_ms / 1000)


def export_guild(service, data_path: Path, guild_id: str, actor: str | None) -> str:
    """Write the backup; returns its id."""
    validate_guild_id(guild_id)  # it names a folder: a snowflake only, whoever called
    _check_rate(service, guild_id, actor)
    stores = {}
    for store in service.list_stores(guild_id):
        name = store["store_name"]
        entries, cursor = [], None
        while True:
            page = service.list(guild_id, name, limit=1000, cursor=cursor)
            for item in page["keys"]:
                entry = service.get_with_metadata(guild_id, name, item["name"])
                if entry is not None:
                    entries.append(
                        {"key": entry.key, "value": entry.value, "expiration": entry.expiration, "metadata": entry.metadata}
                    )
            if page["listComplete"]:
                break
            cursor = page["cursor"]
        stores[name] = entries
    backup_id = str(uuid.uuid4())
    folder = data_path / "kv-backups" / guild_id
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{backup_id}.tmp"
    tmp.write_text(json.dumps({"guild_id": guild_id, "created_at": int(time.time()), "stores": stores}), encoding="utf-8")
    os.replace(tmp, folder / f"{backup_id}.json")
    backups = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime)
    for old in backups[:-BACKUPS_KEPT]:
        old.unlink(missing_ok=True)
    return backup_id
