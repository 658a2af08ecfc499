"""flora's KV semantics over any backend: the store registry, validation, limits, quotas, listing.

Ops, HTTP routes and the CLI all go through :class:`KvService`, so a rule is
written once. Every method is blocking (database and backend calls); ops run
them with ``ctx.run_sync``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

from . import registry
from .backend import Entry, KvBackend
from .errors import KV_NOT_FOUND, KV_QUOTA_EXCEEDED, KV_STORE_EXISTS, KvError, invalid
from .limits import (
    MAX_ENTRY_BYTES,
    Limits,
    WriteRateLimiter,
    entry_size,
    list_limit,
    validate_guild_id,
    validate_key,
    validate_prefix,
    validate_store_name,
    validate_value,
    well_formed,
)

COUNTER_MAX_CHARS = 17  # len("-9007199254740991"): the most an incr can add to an entry


def metadata_json(metadata: Any) -> str | None:
    """Compact JSON as flora stored it; JSON ``null`` means no metadata."""
    if metadata is None:
        return None
    try:
        return well_formed(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
    except (TypeError, ValueError):
        raise invalid("Invalid input for metadata: expected a JSON value") from None


def _text(value: str | None) -> str | None:
    return None if value is None else well_formed(value)


def prefix_end(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix`` (None: there is none)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:
            code = 0xE000  # surrogates are not characters
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


class KvService:
    def __init__(self, db, backend: KvBackend, limits: Limits | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic):
        self.db = db
        self.backend = backend
        self.limits = limits or Limits()
        self.clock = clock
        self.rate = WriteRateLimiter(self.limits.writes_per_window, self.limits.window_secs, monotonic)

    def now(self) -> int:
        return int(self.clock())

    # -- stores ------------------------------------------------------------------
    def create_store(self, guild_id: str, store_name: str) -> dict:
        store_name = well_formed(store_name)
        validate_guild_id(guild_id)
        validate_store_name(store_name)
        if registry.exists(self.db, guild_id, store_name):
            raise KvError(KV_STORE_EXISTS, "store already exists")
        self.backend.drop_store(guild_id, store_name)  # leftovers of an interrupted delete must not reappear
        return registry.create(self.db, guild_id, store_name)

    def list_stores(self, guild_id: str) -> list[dict]:
        validate_guild_id(guild_id)
        return registry.list_stores(self.db, guild_id)

    def delete_store(self, guild_id: str, store_name: str) -> None:
        store_name = well_formed(store_name)
        validate_guild_id(guild_id)
        validate_store_name(store_name)
        if not registry.delete(self.db, guild_id, store_name):  # first: scripts stop reaching it
            raise KvError(KV_NOT_FOUND, "store not found")
        self.backend.drop_store(guild_id, store_name)

    def _require_store(self, guild_id: str, store: str) -> None:
        validate_guild_id(guild_id)
        if well_formed(store) != store or not registry.exists(self.db, guild_id, store):
            raise KvError(KV_NOT_FOUND, "store not found")

    # -- reads -------------------------------------------------------------------
    def get(self, guild_id: str, store: str, key: str) -> str | None:
        entry = self.get_with_metadata(guild_id, store, key)
        return None if entry is None else entry.value

    def get_with_metadata(self, guild_id: str, store: str, key: str) -> Entry | None:
        key = well_formed(key)
        validate_key(key)
        self._require_store(guild_id, store)
        return self.backend.get(guild_id, store, key, self.now())

    def list(self, guild_id: str, store: str, prefix: str | None = None, limit: int | None = None,
             cursor: str | None = None) -> dict:
        """flora's algorithm: from ``cursor`` (exclusive) or ``prefix``, in byte order, while keys start with ``prefix``."""
        prefix, cursor = _text(prefix), _text(cursor)
        if prefix is not None:
            validate_prefix(prefix)
        if cursor is not None:
            validate_key(cursor)
        self._require_store(guild_id, store)
        limit = list_limit(limit)
        if limit <= 0:
            return {"keys": [], "listComplete": True}
        end = prefix_end(prefix) if prefix else None
        entries = self.backend.list(guild_id, store, after=cursor, start=None if cursor is not None else prefix,
                                    end=end, count=limit, now=self.now())
        keys = []
        for entry in entries:
            if prefix and not entry.key.startswith(prefix):
                break  # only when the cursor lies before the prefix, as in flora
            item: dict[str, Any] = {"name": entry.key}
            if entry.expiration is not None:
                item["expiration"] = entry.expiration
            if entry.metadata is not None:
                item["metadata"] = entry.metadata
            keys.append(item)
        out: dict[str, Any] = {"keys": keys, "listComplete": len(keys) < limit}
        if not out["listComplete"]:
            out["cursor"] = keys[-1]["name"]
        return out

    # -- writes ------------------------------------------------------------------
    def _check_quota(self, guild_id: str, store: str, key: str, new_size: int, now: int) -> None:
        self.backend.purge_expired(guild_id, store, now)
        projected = self.backend.store_bytes(guild_id, store) - self.backend.entry_bytes(guild_id, store, key) + new_size
        if projected > self.limits.store_bytes:
            raise KvError(KV_QUOTA_EXCEEDED, "kv store storage quota exceeded")
        for other in registry.list_stores(self.db, guild_id):
            if other["store_name"] == store:
                continue
            self.backend.purge_expired(guild_id, other["store_name"], now)
            projected += self.backend.store_bytes(guild_id, other["store_name"])
            if projected > self.limits.guild_bytes:
                raise KvError(KV_QUOTA_EXCEEDED, "kv guild storage quota exceeded")

    def _prepare_write(self, guild_id: str, store: str, key: str, value: str, expiration: int | None,
                       meta: str | None) -> None:
        """flora's order for a set: key, store, value size, rate, entry size, quotas."""
        validate_key(key)
        self._require_store(guild_id, store)
        validate_value(value)
        self.rate.hit(guild_id, store)
        size = entry_size(key, value, expiration, meta)
        if size > MAX_ENTRY_BYTES:
            raise invalid("kv entry exceeds maximum size of 2MB")
        self._check_quota(guild_id, store, key, size, self.now())

    def set(self, guild_id: str, store: str, key: str, value: str, expiration: int | None = None,
            metadata: Any = None) -> None:
        key, value, meta = well_formed(key), well_formed(value), metadata_json(metadata)
        self._prepare_write(guild_id, store, key, value, expiration, meta)
        self.backend.set(guild_id, store, key, value, expiration, meta)

    def cas(self, guild_id: str, store: str, key: str, expected: str | None, value: str,
            expiration: int | None = None, metadata: Any = None) -> bool:
        key, value, expected, meta = well_formed(key), well_formed(value), _text(expected), metadata_json(metadata)
        self._prepare_write(guild_id, store, key, value, expiration, meta)
        return self.backend.cas(guild_id, store, key, expected, value, expiration, meta, self.now())

    def incr(self, guild_id: str, store: str, key: str, by: int = 1) -> int:
        key = well_formed(key)
        validate_key(key)
        self._require_store(guild_id, store)
        self.rate.hit(guild_id, store)
        now = self.now()
        # an upper bound of the entry after the incr: the key and the longest counter
        growth = len(key.encode("utf-8")) + COUNTER_MAX_CHARS
        self._check_quota(guild_id, store, key, self.backend.entry_bytes(guild_id, store, key) + growth, now)
        return self.backend.incr(guild_id, store, key, by, now)

    def update_metadata(self, guild_id: str, store: str, key: str, metadata: Any = None) -> None:
        key = well_formed(key)
        validate_key(key)
        self._require_store(guild_id, store)
        meta = metadata_json(metadata)
        now = self.now()
        entry = self.backend.get(guild_id, store, key, now)
        if entry is not None and meta is not None:  # flora did not bound metadata updates; an entry stays <= 2 MB
            size = entry_size(key, entry.value, entry.expiration, meta)
            if size > MAX_ENTRY_BYTES:
                raise invalid("kv entry exceeds maximum size of 2MB")
            self._check_quota(guild_id, store, key, size, now)
        if entry is None or not self.backend.update_metadata(guild_id, store, key, meta, now):
            raise KvError(KV_NOT_FOUND, "key not found")

    def delete(self, guild_id: str, store: str, key: str) -> None:
        key = well_formed(key)
        validate_key(key)
        self._require_store(guild_id, store)
        self.backend.delete(guild_id, store, key)


_CREATING = threading.Lock()


def service_for(cache: dict, db, config, plugins) -> KvService:
    """The process's KV service, kept in ``cache`` (a worker's ``services.resources``, the app's extensions).

    Built on first use, so a misconfigured backend fails the KV calls with one
    clear message instead of the whole process; a failure is not cached.
    """
    service = cache.get("kv.service")
    if service is None:
        with _CREATING:
            service = cache.get("kv.service")
            if service is None:
                from .backends import open_backend

                if plugins is None:
                    from flora_core.plugins import Plugins

                    plugins = Plugins()
                service = cache["kv.service"] = KvService(db, open_backend(config, plugins))
    return service
