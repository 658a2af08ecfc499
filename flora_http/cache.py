"""The API's caches, shared by every API process of one data folder (the gunicorn workers of
``flora api -w N`` and the API of ``flora serve``), so a user's ``GET /users/@me/guilds`` is asked
of Discord once per TTL and not once per worker, and every worker sees the same answer.

Two backends behind one small interface (:class:`Cache`):

* :class:`RedisCache` when ``REDIS_URL`` is set (redis-py, the ``redis`` extra, imported only then):
  ``SET key value PX ttl [NX]``, ``GET``, ``DEL``; keys under ``flora:api:``; Redis expires them.
* :class:`SqliteCache` otherwise: ``<data>/cache/api.sqlite`` through sqlitedict (table ``api``,
  WAL, autocommit), values encoded with ``json.dumps``/``json.loads``, never pickle (sqlitedict's
  default, CVE-2024-35515). Each record is ``{"v": value, "e": expiry}`` in wall-clock seconds
  (the clock is injectable); an expired record reads as missing and is deleted then, and every
  process purges all expired records at most once a minute when it writes.

Values are JSON only: anything that does not come back from JSON equal to what was stored (a set,
bytes, a tuple, a dict with non-string keys, NaN) is refused with :class:`CacheValueError`, and so is
``None`` (``get`` answers ``None`` for a missing key). A backend that fails (Redis unreachable, the
SQLite file locked) raises :class:`CacheError`; :func:`get_or_fill`, what the API uses, then goes
to the source directly and logs one line (at most once a minute per process).

sqlitedict under gevent: it runs each connection on its own ``threading.Thread`` and talks to it
through ``queue.Queue``; in the API both are gevent's after monkey-patching, so the connection runs
in a greenlet and callers wait cooperatively. SQLite's own calls do not yield: they are short (a
row read or written, ``synchronous=OFF`` as sqlitedict sets it, a cache needs no fsync), and a lock
held by another process is waited for at most :data:`BUSY_TIMEOUT_MS` before the call fails with
:class:`CacheError`. Each process opens its own connection (checked by pid, so a fork never uses its
parent's).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flora_core.config import REDIS_MISSING, Config, ConfigError

log = logging.getLogger("flora.api.cache")

REDIS_PREFIX = "flora:api:"
MAX_KEY_LENGTH = 512
MAX_TTL_SECS = 30 * 24 * 3600
BUSY_TIMEOUT_MS = 1000
PURGE_EVERY_SECS = 60.0
FILL_LOCK_TTL_SECS = 12.0  # longer than one Discord call may take (discord_api.HTTP_TIMEOUT)
FILL_POLL_SECS = 0.05


class CacheError(Exception):
    """The cache's backend failed (one line)."""


class CacheValueError(ValueError):
    """A key, value or TTL the cache refuses (one line)."""


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def encode_value(value: Any) -> str:
    """``value`` as JSON text, or :class:`CacheValueError` if JSON cannot carry it unchanged."""
    if value is None:
        raise CacheValueError("cannot cache None: get() answers None for a missing key")
    try:
        text = _dumps(value)
    except (TypeError, ValueError) as exc:
        raise CacheValueError(f"cache values must be JSON: {exc}") from None
    if json.loads(text) != value:
        raise CacheValueError(
            f"cache values must be JSON: this {type(value).__name__} would not come back equal "
            "(tuples become lists, non-string keys become strings)"
        )
    return text


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise CacheValueError(f"cache keys must be non-empty strings, got {type(key).__name__} {key!r:.40}")
    if len(key) > MAX_KEY_LENGTH:
        raise CacheValueError(f"cache keys must be at most {MAX_KEY_LENGTH} characters, got {len(key)}")
    return key


def check_ttl(ttl: Any) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl) or not 0 < ttl <= MAX_TTL_SECS:
        raise CacheValueError(f"cache TTLs must be seconds, more than 0 and at most {MAX_TTL_SECS}, got {ttl!r}")
    return float(ttl)


def hashed(secret: str) -> str:
    """What a cache key may hold of a credential (an OAuth token): its SHA-256, never the token."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class Cache(ABC):
    """Shared, JSON-only key-value cache with a TTL on every entry."""

    backend: str

    @abstractmethod
    def get(self, key: str) -> Any | None:
        """The live value of ``key``, or ``None`` (missing or expired)."""

    @abstractmethod
    def set(self, key: str, value: Any, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing what is there."""

    @abstractmethod
    def add(self, key: str, value: Any, ttl: float) -> bool:
        """Store ``value`` for ``ttl`` seconds only if ``key`` has no live value; True if this call stored it.
        Atomic across processes: of N concurrent ``add`` of one key, one wins."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key`` (nothing happens if it is missing)."""

    @abstractmethod
    def close(self) -> None:
        """Release this process's connection (the next call opens a new one)."""


# -- sqlitedict --------------------------------------------------------------------------------
def _expired(column: str) -> str:
    """SQL: the record in ``column`` has expired by the time bound to ``?``, or is not one of ours (not JSON)."""
    return f"CASE WHEN json_valid({column}) THEN coalesce(json_extract({column}, '$.e'), 0) <= ? ELSE 1 END"


class SqliteCache(Cache):
    """The embedded backend: one SQLite file through sqlitedict, shared by the processes that open it."""

    backend = "sqlite"
    TABLE = "api"

    def __init__(self, path: str | os.PathLike, *, clock: Callable[[], float] = time.time, purge_every: float = PURGE_EVERY_SECS):
        self.path = Path(path)
        self.clock = clock
        self.purge_every = purge_every
        self._lock = threading.Lock()
        self._db: Any = None
        self._pid: int | None = None
        self._next_purge = 0.0

    # sqlitedict's connection, one per process
    def _dict(self):
        with self._lock:
            if self._db is None or self._pid != os.getpid():
                self._db = None  # a parent's connection: its thread did not survive the fork
                self._db = self._open()
                self._pid = os.getpid()
            return self._db

    def _open(self):
        from sqlitedict import SqliteDict

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if not self.path.exists():  # readable by this user only, like the rest of the data folder should be
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            db = SqliteDict(
                str(self.path),
                tablename=self.TABLE,
                autocommit=True,
                journal_mode="WAL",
                encode=_dumps,
                decode=json.loads,
                encode_key=str,
                decode_key=str,
                outer_stack=False,
            )
            db.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.commit()  # waits for the two statements above, and raises what they raised
        except (OSError, RuntimeError, sqlite3.Error) as exc:
            raise CacheError(f"cannot open the API cache {self.path}: {exc}") from None
        return db

    def _run(self, what: str, fn: Callable[[Any], Any]) -> Any:
        try:
            return fn(self._dict())
        except (RuntimeError, sqlite3.Error) as exc:
            raise CacheError(f"API cache {self.path}: {what} failed: {exc}") from None

    def _live(self, record: Any, now: float) -> bool:
        return isinstance(record, dict) and isinstance(record.get("e"), int | float) and record["e"] > now and "v" in record

    def _sql(self, db, statement: str, args: tuple) -> None:
        db.conn.execute(statement, args)
        db.commit()  # blocking: the statement has run (and its error, if any, is raised here)

    def get(self, key: str) -> Any | None:
        key = check_key(key)
        try:
            record = self._run("get", lambda db: db.get(key))
        except ValueError:  # not JSON, so not written here (sqlitedict's default is pickle): never decoded otherwise
            record = False
        if record is None:
            return None
        now = self.clock()
        if self._live(record, now):
            return record["v"]
        # only if still expired: another process may have stored a fresh value since we read
        self._run(
            "delete", lambda db: self._sql(db, f'DELETE FROM "{self.TABLE}" WHERE key = ? AND {_expired("value")}', (key, now))
        )
        return None

    def set(self, key: str, value: Any, ttl: float) -> None:
        key, ttl = check_key(key), check_ttl(ttl)
        encode_value(value)
        now = self.clock()

        def write(db):
            db[key] = {"v": value, "e": now + ttl}
            if now >= self._next_purge:
                self._next_purge = now + self.purge_every
                self._purge(db, now)

        self._run("set", write)

    def add(self, key: str, value: Any, ttl: float) -> bool:
        key, ttl = check_key(key), check_ttl(ttl)
        encode_value(value)
        now = self.clock()
        nonce = secrets.token_hex(8)
        record = {"v": value, "e": now + ttl, "n": nonce}
        # sqlitedict has no conditional write: one UPSERT (atomic in SQLite) on its connection, which
        # replaces the row only when it has expired; the read-back tells whether ours is the row now
        current = f'"{self.TABLE}".value'
        upsert = (
            f'INSERT INTO "{self.TABLE}" (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE '
            f"SET value = excluded.value WHERE {_expired(current)}"
        )

        def attempt(db):
            self._sql(db, upsert, (key, _dumps(record), now))
            return db.get(key)

        stored = self._run("add", attempt)
        return isinstance(stored, dict) and stored.get("n") == nonce

    def delete(self, key: str) -> None:
        key = check_key(key)

        def remove(db):
            try:
                del db[key]
            except KeyError:
                pass

        self._run("delete", remove)

    def _purge(self, db, now: float) -> None:
        self._sql(db, f'DELETE FROM "{self.TABLE}" WHERE {_expired("value")}', (now,))

    def purge(self) -> None:
        """Delete every expired record now (``set`` does it at most every ``purge_every`` seconds)."""
        now = self.clock()
        self._run("purge", lambda db: self._purge(db, now))

    def close(self) -> None:
        with self._lock:
            db, self._db = self._db, None
            if db is not None and self._pid == os.getpid():
                try:
                    db.close()
                except (RuntimeError, sqlite3.Error) as exc:
                    log.warning("closing the API cache %s: %s", self.path, exc)


# -- Redis ---------------------------------------------------------------------------------------
def _import_redis():
    try:
        import redis
    except ImportError:
        raise ConfigError(REDIS_MISSING) from None
    return redis


class RedisCache(Cache):
    """The shared backend when ``REDIS_URL`` is set: every key under ``prefix``, expired by Redis."""

    backend = "redis"

    def __init__(self, url: str, *, prefix: str = REDIS_PREFIX):
        redis = _import_redis()
        self.prefix = prefix
        try:
            self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=2, socket_connect_timeout=2)
        except ValueError as exc:
            raise ConfigError(f"invalid REDIS_URL: {exc}") from None
        self._errors = (redis.RedisError, OSError)

    def _run(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except self._errors as exc:
            raise CacheError(f"API cache (Redis): {what} failed: {exc}") from None

    @staticmethod
    def _ms(ttl: float) -> int:
        return max(1, math.ceil(ttl * 1000))

    def get(self, key: str) -> Any | None:
        text = self._run("get", lambda: self.client.get(self.prefix + check_key(key)))
        if text is None:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None  # not written by this class

    def set(self, key: str, value: Any, ttl: float) -> None:
        key, text, ms = check_key(key), encode_value(value), self._ms(check_ttl(ttl))
        self._run("set", lambda: self.client.set(self.prefix + key, text, px=ms))

    def add(self, key: str, value: Any, ttl: float) -> bool:
        key, text, ms = check_key(key), encode_value(value), self._ms(check_ttl(ttl))
        return bool(self._run("add", lambda: self.client.set(self.prefix + key, text, px=ms, nx=True)))

    def delete(self, key: str) -> None:
        key = check_key(key)
        self._run("delete", lambda: self.client.delete(self.prefix + key))

    def close(self) -> None:
        self.client.close()


def open_api_cache(config: Config) -> Cache:
    """Redis when ``REDIS_URL`` is set (:class:`ConfigError` if redis-py is missing), else the data folder's file.
    Nothing is connected or created until the first call."""
    if config.redis_url:
        return RedisCache(config.redis_url)
    return SqliteCache(config.data_path / "cache" / "api.sqlite")


# -- fill once, for every process ------------------------------------------------------------------
_last_warning = 0.0
_warning_lock = threading.Lock()


def _degraded(exc: CacheError) -> None:
    global _last_warning
    with _warning_lock:
        now = time.monotonic()
        if now - _last_warning < 60:
            return
        _last_warning = now
    log.warning("%s; going to the source without the cache (said at most once a minute)", exc)


def get_or_fill(
    cache: Cache,
    key: str,
    ttl: float,
    fetch: Callable[[], tuple[Any, bool]],
    *,
    lock_ttl: float = FILL_LOCK_TTL_SECS,
    poll: float = FILL_POLL_SECS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """The cached value of ``key``; on a miss, ``fetch()`` → ``(value, keep)``, stored for ``ttl`` when ``keep``.

    One process at a time fetches a key: it holds ``<key>#fill`` (taken with :meth:`Cache.add`, for at
    most ``lock_ttl`` seconds); the others poll for the value it stores, or take the lock over when it is
    released without a value (its fetch failed or was not to be kept). After ``lock_ttl`` of waiting a
    caller fetches by itself. An exception of ``fetch`` reaches the caller, the lock released. A failing
    cache is logged and bypassed: the value is fetched, as if there were no cache.
    """
    lock = f"{key}#fill"
    try:
        hit = cache.get(key)
        if hit is not None:
            return hit
        deadline = clock() + lock_ttl
        while not cache.add(lock, os.getpid(), lock_ttl):
            while True:
                if clock() >= deadline:
                    return fetch()[0]
                sleep(poll)
                hit = cache.get(key)
                if hit is not None:
                    return hit
                if cache.get(lock) is None:
                    break  # released without a value: try to take it
    except CacheError as exc:
        _degraded(exc)
        return fetch()[0]
    try:
        value, keep = fetch()
        if keep:
            try:
                cache.set(key, value, ttl)
            except CacheError as exc:
                _degraded(exc)
        return value
    finally:
        try:
            cache.delete(lock)
        except CacheError as exc:
            _degraded(exc)
