"""flora's KV semantics over any backend: the store registry, validation, limits, quotas, listing.

Ops, HTTP routes and the CLI all go through :class:`KvService`, so a rule is
written once. Every method is blocking (database and backend calls); ops run
them with ``ctx.run_sync``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import registry
from .backend import Entry, KvBackend, Quota, check_quota, next_counter
from .errors import KV_NOT_FOUND, KV_STORE_EXISTS, KvError, invalid
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
from .rate import MemoryCounter, RateCounter, open_counter


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
    def __init__(
        self,
        db,
        backend: KvBackend,
        limits: Limits | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        counter: RateCounter | None = None,
    ):
        """``counter`` counts the write rate (``rate.py``); without one, this process counts alone with
        ``monotonic`` (tests, tools running by themselves): :func:`service_for` gives the shared one."""
        self.db = db
        self.backend = backend
        self.limits = limits or Limits()
        self.clock = clock
        self.counter = counter or MemoryCounter(monotonic)
        self.rate = WriteRateLimiter(self.limits.writes_per_window, self.limits.window_secs, self.counter)
        self._guild_locks = [threading.Lock() for _ in range(32)]  # a guild's always the same one

    def now(self) -> int:
        return int(self.clock())

    def close(self) -> None:
        """Release the backend's and the counter's connections."""
        self.backend.close()
        self.counter.close()

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

    def list(
        self, guild_id: str, store: str, prefix: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> dict:
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
        entries = self.backend.list(
            guild_id, store, after=cursor, start=None if cursor is not None else prefix, end=end, count=limit, now=self.now()
        )
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
    def _quota(self, guild_id: str, store: str, now: int) -> Quota:
        """The quota of a write to ``store``, once the expired entries of the guild's stores are purged."""
        others = tuple(s["store_name"] for s in registry.list_stores(self.db, guild_id) if s["store_name"] != store)
        for name in (store, *others):
            self.backend.purge_expired(guild_id, name, now)
        return Quota(self.limits.store_bytes, self.limits.guild_bytes, others)

    def _check_before(self, guild_id: str, store: str, key: str, new_size: int, quota: Quota) -> None:
        """The check for backends without ``atomic_quotas``, made just before their write (under ``_guild_lock``)."""
        others = sum(self.backend.store_bytes(guild_id, name) for name in quota.other_stores)
        check_quota(
            quota, self.backend.store_bytes(guild_id, store), self.backend.entry_bytes(guild_id, store, key), new_size, others
        )

    @contextlib.contextmanager
    def _guild_lock(self, guild_id: str) -> Iterator[None]:
        """For backends without ``atomic_quotas``: this process's quota writes of a guild one at a time, so that
        the check made before the write holds among this process's threads (not across processes)."""
        with self._guild_locks[hash(guild_id) % len(self._guild_locks)]:
            yield

    def _prepare_write(
        self, guild_id: str, store: str, key: str, value: str, expiration: int | None, meta: str | None
    ) -> tuple[int, Quota]:
        """flora's order for a set: key, store, value size, rate, entry size, quotas (checked by the write)."""
        validate_key(key)
        self._require_store(guild_id, store)
        validate_value(value)
        self.rate.hit(guild_id, store)
        size = entry_size(key, value, expiration, meta)
        if size > MAX_ENTRY_BYTES:
            raise invalid("kv entry exceeds maximum size of 2MB")
        return size, self._quota(guild_id, store, self.now())

    def set(self, guild_id: str, store: str, key: str, value: str, expiration: int | None = None, metadata: Any = None) -> None:
        key, value, meta = well_formed(key), well_formed(value), metadata_json(metadata)
        size, quota = self._prepare_write(guild_id, store, key, value, expiration, meta)
        if self.backend.atomic_quotas:
            self.backend.set(guild_id, store, key, value, expiration, meta, quota=quota)  # type: ignore[call-arg]
            return
        with self._guild_lock(guild_id):
            self._check_before(guild_id, store, key, size, quota)
            self.backend.set(guild_id, store, key, value, expiration, meta)

    def cas(
        self,
        guild_id: str,
        store: str,
        key: str,
        expected: str | None,
        value: str,
        expiration: int | None = None,
        metadata: Any = None,
    ) -> bool:
        key, value, expected, meta = well_formed(key), well_formed(value), _text(expected), metadata_json(metadata)
        size, quota = self._prepare_write(guild_id, store, key, value, expiration, meta)
        now = self.now()
        if self.backend.atomic_quotas:
            return self.backend.cas(
                guild_id,
                store,
                key,
                expected,
                value,
                expiration,
                meta,
                now,  # type: ignore[call-arg]
                quota=quota,
            )
        with self._guild_lock(guild_id):
            try:
                self._check_before(guild_id, store, key, size, quota)
            except KvError:
                current = self.backend.get(guild_id, store, key, now)
                if (None if current is None else current.value) != expected:
                    return False  # as the atomic backends answer: a cas that would not write is refused by its value
                raise
            return self.backend.cas(guild_id, store, key, expected, value, expiration, meta, now)

    def incr(self, guild_id: str, store: str, key: str, by: int = 1) -> int:
        key = well_formed(key)
        validate_key(key)
        self._require_store(guild_id, store)
        self.rate.hit(guild_id, store)
        now = self.now()
        quota = self._quota(guild_id, store, now)
        if self.backend.atomic_quotas:
            return self.backend.incr(guild_id, store, key, by, now, quota=quota)  # type: ignore[call-arg]
        with self._guild_lock(guild_id):
            entry = self.backend.get(guild_id, store, key, now)
            digits = len(str(next_counter(None if entry is None else entry.value, by)))
            if entry is None:
                size = len(key.encode("utf-8")) + digits
            else:  # the value changes, the rest stays
                size = self.backend.entry_bytes(guild_id, store, key) - len((entry.value or "").encode("utf-8")) + digits
            self._check_before(guild_id, store, key, size, quota)
            return self.backend.incr(guild_id, store, key, by, now)

    def update_metadata(self, guild_id: str, store: str, key: str, metadata: Any = None) -> None:
        key = well_formed(key)
        validate_key(key)
        self._require_store(guild_id, store)
        meta = metadata_json(metadata)
        now = self.now()
        entry = self.backend.get(guild_id, store, key, now)
        if entry is None:
            raise KvError(KV_NOT_FOUND, "key not found")
        size = entry_size(key, entry.value or "", entry.expiration, meta)
        if meta is not None and size > MAX_ENTRY_BYTES:  # flora did not bound metadata updates; an entry stays <= 2 MB
            raise invalid("kv entry exceeds maximum size of 2MB")
        quota = self._quota(guild_id, store, now)
        if self.backend.atomic_quotas:
            updated = self.backend.update_metadata(guild_id, store, key, meta, now, quota=quota)  # type: ignore[call-arg]
        else:
            with self._guild_lock(guild_id):
                self._check_before(guild_id, store, key, size, quota)
                updated = self.backend.update_metadata(guild_id, store, key, meta, now)
        if not updated:
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
    clear message instead of the whole process; a failure is not cached. Its
    write rate is counted where every process sees it (``rate.open_counter``).
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
                backend = open_backend(config, plugins)
                try:
                    counter = open_counter(config)
                except BaseException:
                    backend.close()
                    raise
                service = cache["kv.service"] = KvService(db, backend, counter=counter)
    return service
