"""KV backend ``sqlite`` (the default; ``sqlitedict``, its earlier name, is accepted too): one SQLite file per
guild and store, nothing to run.

Files live at ``$FLORA_DATA_DIR/kv/<guild_id>/<store>.sqlite`` (flora had one
RocksDB per guild and store under ``./data/kv/<guild_id>/<store>/``). The table
``kv`` keeps sqlitedict's layout, ``key TEXT PRIMARY KEY, value BLOB``, plus
expiration and metadata columns, so ``SqliteDict(path, tablename="kv",
flag="r", decode=str, journal_mode="WAL")`` opens a store for inspection.

Writes do not go through sqlitedict itself: it commits from a background
thread (a ``set`` could resolve before it is on disk), cannot scan keys in
byte order, and has no write transaction for an atomic read-modify-write
across processes. Each call takes a plain ``sqlite3`` connection instead:
WAL with ``synchronous=FULL`` (a write is on disk when the call returns),
``BEGIN IMMEDIATE`` around incr/cas/updateMetadata (SQLite's file lock makes
them atomic across threads and processes), and no background thread, so it
runs unchanged in the API process under gevent.

Quotas (``atomic_quotas``). A store's size is the ``kv_usage`` row that
triggers keep in the same transaction as every change, so a write that
checks it inside its ``BEGIN IMMEDIATE`` transaction cannot be overtaken by
another writer of that file. The guild quota spans several files, so a write
with a quota first takes the guild's lock, ``<guild>/.quota.lock``
(``locks.file_lock``: ``flock``, which every process on the machine sees; a
process that dies lets go of it), reads the guild's other stores' sizes,
then checks and writes. Only writes with a quota make a store grow, and they
all hold that lock; deletes and purges, which only shrink stores, do not
take it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from flora_core import hookimpl

from ..backend import Entry, KvBackend, Quota, check_quota, is_expired, next_counter, scan_live
from ..errors import unavailable
from ..limits import entry_size, meta_size
from ..locks import file_lock

SCHEMA_VERSION = 1
SIZE = "length(CAST({t}.key AS BLOB)) + COALESCE(length(CAST({t}.value AS BLOB)), 0) + COALESCE({t}.meta_size, 0)"
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB, expiration INTEGER, metadata TEXT,"
    " meta_size INTEGER NOT NULL DEFAULT 0)",
    "CREATE INDEX IF NOT EXISTS kv_expiration ON kv (expiration) WHERE expiration IS NOT NULL",
    # the store's size for quotas, kept by triggers so a write does not scan the store
    "CREATE TABLE IF NOT EXISTS kv_usage (id INTEGER PRIMARY KEY CHECK (id = 0), bytes INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO kv_usage (id, bytes) VALUES (0, 0)",
    f"CREATE TRIGGER IF NOT EXISTS kv_usage_insert AFTER INSERT ON kv BEGIN"
    f" UPDATE kv_usage SET bytes = bytes + {SIZE.format(t='NEW')} WHERE id = 0; END",
    f"CREATE TRIGGER IF NOT EXISTS kv_usage_update AFTER UPDATE ON kv BEGIN"
    f" UPDATE kv_usage SET bytes = bytes - ({SIZE.format(t='OLD')}) + {SIZE.format(t='NEW')} WHERE id = 0; END",
    f"CREATE TRIGGER IF NOT EXISTS kv_usage_delete AFTER DELETE ON kv BEGIN"
    f" UPDATE kv_usage SET bytes = bytes - ({SIZE.format(t='OLD')}) WHERE id = 0; END",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
]
UPSERT = (
    "INSERT INTO kv (key, value, expiration, metadata, meta_size) VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE"
    " SET value = excluded.value, expiration = excluded.expiration, metadata = excluded.metadata,"
    " meta_size = excluded.meta_size"
)
PURGE_KEY = "DELETE FROM kv WHERE key = ? AND expiration <= ?"
ROW = f"SELECT value, expiration, meta_size, {SIZE.format(t='kv')} FROM kv WHERE key = ?"
LOCK_TIMEOUT_SECS = 30.0
Check = Callable[[int, int], None]  # check(bytes of the entry now, bytes after the write)


def _no_check(old: int, new: int) -> None:
    return None


SAFE_PART = re.compile(r"^[^/\\\0.][^/\0]*$")


def _meta(text: str | None):
    return None if text is None else json.loads(text)


class SqliteBackend(KvBackend):
    name = "sqlite"
    atomic_quotas = True

    def __init__(self, root: Path, max_files: int = 64, per_file: int = 4):
        self.root = Path(root)
        self.max_files = max_files
        self.per_file = per_file
        self._idle: collections.OrderedDict[Path, list[sqlite3.Connection]] = collections.OrderedDict()
        self._lock = threading.Lock()

    # -- files and connections ---------------------------------------------------------
    def path(self, guild_id: str, store: str) -> Path:
        """The store's file; names that could leave the data folder are refused (they never pass validation)."""
        if not SAFE_PART.match(guild_id) or not SAFE_PART.match(store):
            raise unavailable(f"kv backend sqlite: unsafe store path {guild_id!r}/{store!r}")
        return self.root / guild_id / f"{store}.sqlite"

    def _open(self, path: Path) -> sqlite3.Connection:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            _while_locked(db, lambda: _prepare(db))
        except BaseException:
            db.close()
            raise
        return db

    @contextlib.contextmanager
    def _conn(self, guild_id: str, store: str) -> Iterator[sqlite3.Connection]:
        path = self.path(guild_id, store)
        with self._lock:
            idle = self._idle.get(path)
            db = idle.pop() if idle else None
        try:
            if db is None:
                db = self._open(path)
            yield db
        except sqlite3.Error as exc:
            if db is not None:
                db.close()
                db = None
            raise unavailable(f"kv backend sqlite failed on {guild_id}/{store}: {exc}") from None
        except OSError as exc:
            raise unavailable(f"kv backend sqlite cannot open {path}: {exc.strerror or exc}") from None
        finally:
            if db is not None:
                self._give_back(path, db)

    def _give_back(self, path: Path, db: sqlite3.Connection) -> None:
        if db.in_transaction:  # an exception left a transaction open
            db.close()
            return
        evicted: list[sqlite3.Connection] = []
        with self._lock:
            idle = self._idle.setdefault(path, [])
            self._idle.move_to_end(path)
            if len(idle) < self.per_file:
                idle.append(db)
                db = None
            while len(self._idle) > self.max_files:
                evicted.extend(self._idle.popitem(last=False)[1])
        for conn in evicted + ([db] if db is not None else []):
            conn.close()

    def _guild_lock(self, guild_id: str):
        """The guild's quota lock, shared by every process on this machine (``locks.file_lock``)."""
        folder = self.path(guild_id, "x").parent
        return file_lock(folder / ".quota.lock", timeout=LOCK_TIMEOUT_SECS, what="kv backend sqlite: the guild's quota lock")

    def _bytes_if_any(self, guild_id: str, store: str) -> int:
        """``store_bytes`` without creating the file of a store nobody wrote to."""
        return self.store_bytes(guild_id, store) if self.path(guild_id, store).exists() else 0

    @contextlib.contextmanager
    def _writing(self, guild_id: str, store: str, quota: Quota | None) -> Iterator[tuple[sqlite3.Connection, Check]]:
        """A write transaction on the store's file and ``check(old, new)`` for ``quota`` (none: no check).

        With a quota, the guild's lock is held until the transaction is over: the other stores' sizes read
        first stay valid (they can only shrink meanwhile), and the store's own is read inside the transaction.
        """
        if quota is None:
            with self._conn(guild_id, store) as db, _write(db):
                yield db, _no_check
            return
        with self._guild_lock(guild_id):
            others = sum(self._bytes_if_any(guild_id, name) for name in quota.other_stores)
            with self._conn(guild_id, store) as db, _write(db):
                used = int(db.execute("SELECT bytes FROM kv_usage WHERE id = 0").fetchone()[0])
                yield db, lambda old, new: check_quota(quota, used, old, new, others)

    def close(self) -> None:
        with self._lock:
            conns = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for conn in conns:
            conn.close()

    # -- the interface -------------------------------------------------------------------
    def get(self, guild_id, store, key, now):
        with self._conn(guild_id, store) as db:
            row = db.execute("SELECT value, expiration, metadata FROM kv WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            if is_expired(row[1], now):
                db.execute(PURGE_KEY, (key, now))
                return None
            return Entry(key, row[0], row[1], _meta(row[2]))

    def set(self, guild_id, store, key, value, expiration, metadata_json, *, quota=None):
        row = (key, value, expiration, metadata_json, meta_size(key, expiration, metadata_json))
        if quota is None:
            with self._conn(guild_id, store) as db:
                db.execute(UPSERT, row)
            return
        with self._writing(guild_id, store, quota) as (db, check):
            old = db.execute(ROW, (key,)).fetchone()
            check(0 if old is None else int(old[3]), entry_size(key, value, expiration, metadata_json))
            db.execute(UPSERT, row)

    def update_metadata(self, guild_id, store, key, metadata_json, now, *, quota=None):
        with self._writing(guild_id, store, quota) as (db, check):
            row = db.execute(ROW, (key,)).fetchone()
            if row is None:
                return False
            if is_expired(row[1], now):
                db.execute(PURGE_KEY, (key, now))
                return False
            size = meta_size(key, row[1], metadata_json)
            check(int(row[3]), int(row[3]) - int(row[2]) + size)
            db.execute("UPDATE kv SET metadata = ?, meta_size = ? WHERE key = ?", (metadata_json, size, key))
            return True

    def delete(self, guild_id, store, key):
        with self._conn(guild_id, store) as db:
            db.execute("DELETE FROM kv WHERE key = ?", (key,))

    def list(self, guild_id, store, *, after, start, end, count, now):
        with self._conn(guild_id, store) as db:

            def fetch(lower, end, want):
                where = [f"key {lower[0]} ?"] if lower else []
                params = [lower[1]] if lower else []
                if end is not None:
                    where.append("key < ?")
                    params.append(end)
                sql = "SELECT key, expiration, metadata FROM kv" + (" WHERE " + " AND ".join(where) if where else "")
                return db.execute(sql + " ORDER BY key LIMIT ?", (*params, want)).fetchall()

            live, expired = scan_live(fetch, after=after, start=start, end=end, count=count, now=now)
            for key in expired:
                db.execute(PURGE_KEY, (key, now))
        return live

    def incr(self, guild_id, store, key, by, now, *, quota=None):
        with self._writing(guild_id, store, quota) as (db, check):
            row = db.execute(ROW, (key,)).fetchone()
            live = row is not None and not is_expired(row[1], now)
            result = next_counter(row[0] if live else None, by)
            value = str(result)
            old = 0 if row is None else int(row[3])
            if live:
                check(old, entry_size(key, value, None, None) + int(row[2]))
                db.execute("UPDATE kv SET value = ? WHERE key = ?", (value, key))
            else:
                check(old, entry_size(key, value, None, None))
                db.execute(UPSERT, (key, value, None, None, 0))
            return result

    def cas(self, guild_id, store, key, expected, value, expiration, metadata_json, now, *, quota=None):
        with self._writing(guild_id, store, quota) as (db, check):
            row = db.execute(ROW, (key,)).fetchone()
            current = row[0] if row is not None and not is_expired(row[1], now) else None
            if current != expected:
                if row is not None and current is None:
                    db.execute(PURGE_KEY, (key, now))
                return False
            check(0 if row is None else int(row[3]), entry_size(key, value, expiration, metadata_json))
            db.execute(UPSERT, (key, value, expiration, metadata_json, meta_size(key, expiration, metadata_json)))
            return True

    def entry_bytes(self, guild_id, store, key):
        with self._conn(guild_id, store) as db:
            row = db.execute(f"SELECT {SIZE.format(t='kv')} FROM kv WHERE key = ?", (key,)).fetchone()
            return 0 if row is None else int(row[0])

    def store_bytes(self, guild_id, store):
        with self._conn(guild_id, store) as db:
            return int(db.execute("SELECT bytes FROM kv_usage WHERE id = 0").fetchone()[0])

    def purge_expired(self, guild_id, store, now):
        with self._conn(guild_id, store) as db:
            # look first: a DELETE would take the write lock even when nothing has expired
            if db.execute("SELECT 1 FROM kv WHERE expiration <= ? LIMIT 1", (now,)).fetchone() is None:
                return 0
            return db.execute("DELETE FROM kv WHERE expiration <= ?", (now,)).rowcount

    def drop_store(self, guild_id, store):
        """Delete every row (overwritten on disk) and empty the WAL; the file stays, so connections
        that other processes hold on it stay valid and see an empty store."""
        if not self.path(guild_id, store).exists():
            return
        with self._conn(guild_id, store) as db:
            with _write(db):
                db.execute("DELETE FROM kv")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _prepare(db: sqlite3.Connection) -> None:
    db.execute("PRAGMA journal_mode = WAL")  # persistent; a no-op once the file is in WAL mode
    db.execute("PRAGMA synchronous = FULL")
    db.execute("PRAGMA secure_delete = ON")  # deleted values are overwritten, not left in free pages
    if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        with _write(db):
            for statement in SCHEMA:
                db.execute(statement)


def _while_locked(db: sqlite3.Connection, step, timeout: float = 30.0) -> None:
    """Retry ``step`` while another process holds the file.

    Processes that open a new store file at the same moment all switch it to
    WAL; SQLite answers "database is locked" at once (without its busy
    handler) to the ones that would otherwise deadlock on that switch.
    """
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            step()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                raise
            if db.in_transaction:
                db.execute("ROLLBACK")
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


@contextlib.contextmanager
def _write(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction taken up front: other writers (threads or processes) wait for it."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def factory(config) -> SqliteBackend:
    return SqliteBackend(config.data_path / "kv")


# optionalhook: the kv plugin declares this hook (kv/hookspecs.py); while it is disabled this plugin idles
@hookimpl(optionalhook=True)
def flora_register_kv_backends(register):
    register("sqlite", factory)
