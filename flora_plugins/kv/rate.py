"""Rolling-window counts shared by every process that writes a guild's KV data.

flora's KV limits that count events (``limits.py``): 120 writes per rolling 60 s per guild and store
(``kv write rate limit exceeded; retry later``), one export per 60 s per guild and per actor
(``export.py``). flora counted them in memory, so every process had its own count: the worker
running a guild's script, the API's processes, ``flora kv`` and, after a restart or a rebalance,
another worker or another node each allowed the whole limit again. Here they are counted where every
process sees the same count, by a :class:`RateCounter`:

* :class:`RedisCounter` when ``REDIS_URL`` is set: a sorted set per scope
  (``<BUS_NAMESPACE>:kv-rate:<scope>``, the runtime bus's namespace, ``flora`` while the ``redis_bus`` plugin
  is disabled; scored by time, expired by Redis after a window), changed by one
  Lua script that drops what left the window, counts, and adds only if every scope has room, so no
  two processes, on any machine, can take the same place; the time is Redis's own (``TIME``), so the
  nodes' clocks do not matter. While Redis fails, the machine's counter below is used (one logged line a
  minute), so the limits still hold per machine.
* :class:`SqliteCounter` otherwise: ``$FLORA_DATA_DIR/cache/kv-rate.sqlite``, one row per event, changed in
  one ``BEGIN IMMEDIATE`` transaction (the same steps as the script), which every process of the data
  folder shares; the time is the machine's wall clock. Runtime nodes on other machines share nothing this
  way, but they need ``REDIS_URL`` anyway (the runtime bus).
* :class:`MemoryCounter`: this process only, for tests and tools that run alone.

A window is rolling, as flora's was: an event counts for ``window`` seconds after it happened. A
counter that cannot count at all (its file unwritable) lets the event through and logs one line a
minute: a broken counter must not stop every KV write.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from pathlib import Path

log = logging.getLogger("flora.kv")

SWEEP_EVERY_SECS = 60.0
BUSY_TIMEOUT_SECS = 10.0


class RateCounter(ABC):
    """Counts of events per scope over a rolling window."""

    name = "?"

    def take(self, scopes: Sequence[str], limit: int, window: float) -> float | None:
        """Count one event in each of ``scopes`` if every one had fewer than ``limit`` in the last ``window``
        seconds, and return None; otherwise count nothing and return how many seconds until they all have
        room again."""
        if limit <= 0:
            return window
        return self._take(list(scopes), limit, window)

    @abstractmethod
    def _take(self, scopes: list[str], limit: int, window: float) -> float | None: ...

    def close(self) -> None:  # noqa: B027 - optional: a counter without resources has nothing to release
        """Release connections and files."""


class MemoryCounter(RateCounter):
    """This process's own counts (what flora had); ``clock`` is injectable."""

    name = "memory"

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._events: dict[str, collections.deque] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()
        self._longest = 0.0  # the longest window counted so far

    def _take(self, scopes, limit, window):
        now = self.clock()
        with self._lock:
            self._longest = max(self._longest, window)
            if now - self._last_sweep >= self._longest:  # forget idle scopes
                self._last_sweep = now
                for scope in [s for s, ev in self._events.items() if not ev or now - ev[-1] >= self._longest]:
                    del self._events[scope]
            wait = None
            for scope in scopes:
                events = self._events.setdefault(scope, collections.deque())
                while events and now - events[0] >= window:
                    events.popleft()
                while events and events[-1] > now:  # from a clock set back
                    events.pop()
                if len(events) >= limit:
                    left = window - (now - events[len(events) - limit])
                    wait = max(wait or 0.0, left, 0.0)
            if wait is None:
                for scope in scopes:
                    self._events[scope].append(now)
            return wait


_warned_at: dict[str, float] = {}
_warned_lock = threading.Lock()


def _warn(what: str, exc: Exception) -> None:
    """One line a minute per kind of failure."""
    now = time.monotonic()
    with _warned_lock:
        if now - _warned_at.get(what, -1e9) < 60:
            return
        _warned_at[what] = now
    log.warning("kv rate counter: %s: %s", what, exc)


class SqliteCounter(RateCounter):
    """Every process of one data folder: one SQLite file, one transaction per take."""

    name = "sqlite"

    def __init__(self, path: Path, clock: Callable[[], float] = time.time):
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pid = 0
        self._last_sweep = -math.inf

    def _conn(self) -> sqlite3.Connection:
        if self._db is not None and self._pid == os.getpid():
            return self._db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_SECS, isolation_level=None, check_same_thread=False)
        try:
            deadline = time.monotonic() + BUSY_TIMEOUT_SECS
            while True:
                try:  # processes opening a new file at once: SQLite answers "locked" at once to the WAL switch
                    db.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)
            db.execute("PRAGMA synchronous = NORMAL")  # a count lost in a power cut only lets a few writes more through
            db.execute("CREATE TABLE IF NOT EXISTS hits (scope TEXT NOT NULL, at REAL NOT NULL, until REAL NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS hits_scope ON hits (scope, at)")
            db.execute("CREATE INDEX IF NOT EXISTS hits_until ON hits (until)")
            os.chmod(self.path, 0o600)
        except BaseException:
            db.close()
            raise
        self._db, self._pid = db, os.getpid()
        return db

    def _take(self, scopes, limit, window):
        with self._lock:
            try:
                return self._take_locked(scopes, limit, window)
            except (sqlite3.Error, OSError) as exc:
                if self._db is not None:
                    self._db.close()
                self._db = None
                _warn(f"cannot count in {self.path}; the event was let through", exc)
                return None

    def _take_locked(self, scopes: list[str], limit: int, window: float) -> float | None:
        db = self._conn()
        db.execute("BEGIN IMMEDIATE")
        # the clock is read inside the transaction: read before it, another process's later count could
        # look like one "from the future" (a clock set back) and be deleted
        now = self.clock()
        try:
            if now - self._last_sweep >= SWEEP_EVERY_SECS:  # scopes nobody counts in any more
                db.execute("DELETE FROM hits WHERE until <= ? OR at > ?", (now, now))
                self._last_sweep = now
            wait = None
            for scope in scopes:
                # what left the window, and what a clock set back left in the future
                db.execute("DELETE FROM hits WHERE scope = ? AND (at <= ? OR at > ?)", (scope, now - window, now))
                (count,) = db.execute("SELECT COUNT(*) FROM hits WHERE scope = ?", (scope,)).fetchone()
                if count >= limit:
                    (oldest,) = db.execute(
                        "SELECT at FROM hits WHERE scope = ? ORDER BY at LIMIT 1 OFFSET ?", (scope, count - limit)
                    ).fetchone()
                    wait = max(wait or 0.0, oldest + window - now, 0.0)
            if wait is None:
                db.executemany(
                    "INSERT INTO hits (scope, at, until) VALUES (?, ?, ?)", [(scope, now, now + window) for scope in scopes]
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return wait

    def close(self) -> None:
        with self._lock:
            if self._db is not None and self._pid == os.getpid():
                self._db.close()
            self._db = None


# KEYS: one sorted set per scope; ARGV: now ('' = Redis's clock), limit, window (s), a unique member prefix
TAKE = """
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
  now = tonumber(ARGV[1])
end
-- times go to Redis as text with 6 decimals, always, so that a later time never reads as an earlier one
local at = string.format('%.6f', now)
now = tonumber(at)
local limit, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = false
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.6f', now - window))
  redis.call('ZREMRANGEBYSCORE', key, '(' .. at, '+inf')
  local n = redis.call('ZCARD', key)
  if n >= limit then
    local oldest = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    local left = tonumber(oldest[2]) + window - now
    if left < 0 then left = 0 end
    if not wait or left > wait then wait = left end
  end
end
if wait then return tostring(wait) end
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, at, ARGV[4] .. ':' .. i)
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
end
return false
"""


class RedisCounter(RateCounter):
    """Every process on every machine that shares the Redis and the namespace."""

    name = "redis"

    def __init__(
        self, url: str, *, namespace: str = "flora", fallback: RateCounter | None = None, clock: Callable[[], float] | None = None
    ):
        from flora_core.config import REDIS_MISSING

        from .errors import unavailable

        try:
            import redis
        except ImportError:
            raise unavailable(REDIS_MISSING) from None
        try:
            self.client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5)
        except ValueError as exc:
            raise unavailable(f"invalid REDIS_URL: {exc}") from None
        self.prefix = f"{namespace}:kv-rate:"
        self.clock = clock
        self.fallback = fallback
        self._errors = (redis.RedisError, OSError)
        self._script = self.client.register_script(TAKE)

    def _take(self, scopes, limit, window):
        now = "" if self.clock is None else repr(self.clock())
        try:
            left = self._script(
                keys=[self.prefix + scope for scope in scopes], args=[now, limit, repr(float(window)), secrets.token_hex(8)]
            )
        except self._errors as exc:
            if self.fallback is None:
                _warn("Redis failed; the event was let through", exc)
                return None
            _warn(f"Redis failed; counting on this machine only ({self.fallback.name})", exc)
            return self.fallback.take(scopes, limit, window)
        return None if left is None else float(left)

    def close(self) -> None:
        self.client.close()
        if self.fallback is not None:
            self.fallback.close()


def open_counter(config) -> RateCounter:
    """Redis when ``REDIS_URL`` is set (keys under the runtime bus's namespace), else the data folder's file.
    Nothing is connected or created before the first count."""
    local = SqliteCounter(config.data_path / "cache" / "kv-rate.sqlite")
    if config.redis_url:
        return RedisCounter(config.redis_url, namespace=getattr(config, "bus_namespace", None) or "flora", fallback=local)
    return local
