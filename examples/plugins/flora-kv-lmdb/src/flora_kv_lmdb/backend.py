"""The ``lmdb`` KV backend: one LMDB environment per guild and store.

Files live at ``$FLORA_DATA_DIR/kv-lmdb/<guild_id>/<store>/`` (``data.mdb`` and ``lock.mdb``); the
layout inside is in ``records.py``. Why one environment per store rather than one per data folder
with a named database per store: LMDB lets one writer at a time into an environment, so separate
environments let writes to different stores (in different worker processes) go at once; a store's
map grows on its own; ``max_dbs`` stays a fixed 3; and dropping a store empties its databases.

Processes. flora's workers, its API and its CLI open the same stores; LMDB coordinates them itself
(a lock file with a reader table and a process-shared, robust writer mutex, so a writer killed with
SIGKILL does not block the others). A write transaction is committed with ``fsync`` before the call
returns. Within a process each environment is opened once, whatever the number of backend instances
(LMDB forbids a second handle on the same files: ``ENVIRONMENTS``), and kept in a bounded LRU of open
environments; an environment is closed only when no thread of this process is inside a transaction on it.

The map. An environment starts with a map of ``KV_LMDB_MAP_SIZE_MB``; when a write finds it full
(``MapFullError``), the transaction is aborted, the map doubled (at most ``KV_LMDB_MAX_MAP_SIZE_MB``)
and the write run again. When another process grew the file past this process's map
(``MapResizedError``), this process adopts the new size. Both happen while no transaction of this
process is open on that environment, as LMDB requires.

Quotas (``atomic_quotas``). A store's size is a record of its ``meta`` database that every write
transaction updates, and LMDB lets one write transaction at a time into an environment, so a write
that reads it in its own transaction and checks before putting cannot be overtaken. The guild quota
spans a guild's environments, so a write with a quota first takes the guild's lock
(``<guild>/.quota.lock``, flora's ``locks.file_lock``: ``flock``, seen by every process on the machine,
let go of when its process dies), reads the guild's other stores' sizes, then writes. Only writes with a
quota make a store grow, and they all hold the lock; deletes and purges do not take it.

Forks. An environment must not be used in a child created by ``fork()``, and closing it there would
release the parent's reader slots. So before a fork the process waits for the transactions in flight,
closes its environments (in the parent, where that is safe) and keeps new ones from opening until the
fork is done; parent and child then open what they use again. (flora itself never forks a process
that holds a backend: its workers are spawned.)
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import lmdb

from flora_plugins.kv.backend import Entry, KvBackend, Quota, check_quota, is_expired, next_counter
from flora_plugins.kv.errors import KvError, unavailable
from flora_plugins.kv.limits import meta_record
from flora_plugins.kv.locks import file_lock

from . import records
from .records import HEAD_BYTES, Record, exp_key, split

MB = 1024 * 1024
SAFE_PART = re.compile(r"^[^/\\\0.][^/\0]*$")
USAGE = b"bytes"
_I64 = struct.Struct(">q")
MAX_ATTEMPTS = 64  # map resizes (or reader-table checks) one call may go through
T = TypeVar("T")
Check = Callable[[Any, "_Store", int, int], None]  # check(txn, store, bytes of the entry now, bytes after the write)


def _no_check(txn: Any, st: _Store, old: int, new: int) -> None:
    return None


class _Store:
    """One store's environment in this process."""

    __slots__ = ("path", "env", "kv", "exp", "meta", "pins", "opening", "resizing", "resizes")

    def __init__(self, path: Path):
        self.path = path
        self.env: Any = None
        self.kv: Any = None
        self.exp: Any = None
        self.meta: Any = None
        self.pins = 0  # calls of this process using the environment (each may hold a transaction)
        self.opening = False
        self.resizing = False
        self.resizes = 0  # how often this process changed the map, to tell whether a retry needs another change


def _meta(text: str | None):
    return None if text is None else json.loads(text)


def entry_size(key: bytes, rec: Record) -> int:
    """flora's entry size (``limits.entry_size``) from bytes: key + value, plus key + metadata record."""
    record = meta_record(rec.expiration, rec.metadata)
    return len(key) + rec.value_len + (0 if record is None else len(key) + len(record.encode("utf-8")))


def _size(key: bytes, rec: Record | None) -> int:
    return 0 if rec is None else entry_size(key, rec)


def bucket_size(head: bytes, bucket: dict[bytes, Record]) -> int:
    return sum(entry_size(head + suffix, rec) for suffix, rec in bucket.items())


class _Environments:
    """The LMDB environments this process has open, shared by every backend instance in it (LMDB, and py-lmdb,
    refuse a second handle on the same files in one process)."""

    def __init__(self, max_open: int = 64):
        self.max_open = max_open
        self._cond = threading.Condition()
        self._stores: collections.OrderedDict[Path, _Store] = collections.OrderedDict()
        self._pauses = 0  # while > 0 (a fork, a close), no call starts

    def open_count(self) -> int:
        with self._cond:
            return sum(1 for st in self._stores.values() if st.env is not None)

    def acquire(self, path: Path, map_size: int) -> _Store:
        """The store's environment, opened if needed, pinned until :meth:`release`."""
        with self._cond:
            while True:
                st = self._stores.get(path)
                if st is None:
                    st = self._stores[path] = _Store(path)
                if not (self._pauses or st.opening or st.resizing):
                    break
                self._cond.wait()
            st.pins += 1
            self._stores.move_to_end(path)
            if st.env is not None:
                return st
            st.opening = True
        try:
            _open(st, map_size)
        except BaseException:
            with self._cond:
                st.opening = False
                st.pins -= 1
                if st.pins == 0 and self._stores.get(path) is st:
                    del self._stores[path]
                self._cond.notify_all()
            raise
        with self._cond:
            st.opening = False
            self._cond.notify_all()
        return st

    def release(self, st: _Store) -> None:
        with self._cond:
            st.pins -= 1
            self._evict_locked()
            self._cond.notify_all()

    def _evict_locked(self) -> None:
        """Close the least recently used idle environments beyond ``max_open`` (under ``_cond``)."""
        excess = len(self._stores) - self.max_open
        if excess <= 0:
            return
        for path, st in list(self._stores.items()):
            if excess <= 0:
                break
            if st.pins == 0 and not st.opening and not st.resizing:
                if st.env is not None:
                    st.env.close()  # under the lock: a new handle on these files must not exist before it is closed
                del self._stores[path]
                excess -= 1

    def _close_all_locked(self) -> None:
        self._cond.wait_for(lambda: all(st.pins == 0 and not st.opening and not st.resizing for st in self._stores.values()))
        for st in self._stores.values():
            if st.env is not None:
                st.env.close()
        self._stores.clear()

    def close_all(self) -> None:
        """Wait for the calls in flight, then close every environment (later calls open them again)."""
        with self._cond:
            self._pauses += 1
            try:
                self._close_all_locked()
            finally:
                self._pauses -= 1
                self._cond.notify_all()

    # fork: see the module's docstring
    def before_fork(self) -> None:
        with self._cond:
            self._pauses += 1  # until the fork is done
            self._close_all_locked()

    def after_fork_in_parent(self) -> None:
        with self._cond:
            self._pauses -= 1
            self._cond.notify_all()

    def after_fork_in_child(self) -> None:
        self._cond = threading.Condition()  # the parent's may have been held by a thread the child does not have
        self._stores = collections.OrderedDict()
        self._pauses = 0

    def fix(self, st: _Store, problem: str, seen: int, where: str, max_map_size: int) -> None:
        """Grow or adopt the map, or clear dead readers, while no call of this process uses the environment."""
        with self._cond:
            self._cond.wait_for(lambda: not (st.resizing or st.opening))
            if self._stores.get(st.path) is not st or st.env is None or st.resizes != seen:
                return  # closed meanwhile (it opens with the file's size), or another thread did it: just retry
            st.resizing = True
            self._cond.wait_for(lambda: st.pins == 0)
        try:
            env = st.env
            if problem == "readers":
                if env.reader_check() == 0:
                    raise unavailable(f"kv backend lmdb failed on {where}: all {env.max_readers()} LMDB reader slots are in use")
            elif problem == "resized":
                env.set_mapsize(0)  # another process grew the file: take its size
            elif env.reader_check() == 0:  # (a dead reader may be what keeps freed pages from being reused)
                before = int(env.info()["map_size"])
                env.set_mapsize(0)  # another process may have grown it already
                if int(env.info()["map_size"]) <= before:
                    if before >= max_map_size:
                        env.set_mapsize(before)
                        raise unavailable(
                            f"kv backend lmdb: store {where} is full (its map is {before // MB} MiB,"
                            f" the most KV_LMDB_MAX_MAP_SIZE_MB allows)"
                        )
                    env.set_mapsize(min(max_map_size, before * 2))
            st.resizes += 1
        except lmdb.Error as exc:
            raise unavailable(f"kv backend lmdb failed on {where}: {exc}") from None
        finally:
            with self._cond:
                st.resizing = False
                self._cond.notify_all()


def _open(st: _Store, map_size: int) -> None:
    st.path.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(st.path), map_size=map_size, subdir=True, max_dbs=3, lock=True, sync=True, metasync=True)
    try:
        if env.max_key_size() < HEAD_BYTES:
            raise unavailable(
                f"kv backend lmdb: this LMDB build takes keys of at most {env.max_key_size()} bytes;"
                f" flora-kv-lmdb needs {HEAD_BYTES}"
            )
        env.reader_check()  # reader slots left by processes that died (a SIGKILLed worker)
        for attempt in range(MAX_ATTEMPTS):
            try:
                kv, exp, meta, fmt = _open_databases(env)
                break
            except lmdb.MapResizedError:  # another process wrote past the map since it was opened
                if attempt == MAX_ATTEMPTS - 1:
                    raise
                env.set_mapsize(0)  # no other thread has this environment yet
        if fmt != records.FORMAT:
            raise unavailable(
                f"kv backend lmdb: {st.path} holds data of format {fmt.decode(errors='replace')!r};"
                f" this flora-kv-lmdb reads format {records.FORMAT.decode()!r}"
            )
    except BaseException:
        env.close()
        raise
    st.env, st.kv, st.exp, st.meta = env, kv, exp, meta


def _open_databases(env) -> tuple[Any, Any, Any, bytes]:
    # a write transaction even for an existing store: handles that py-lmdb opens in a read transaction
    # are dropped with it (it keeps the transaction for reuse instead of committing it)
    with env.begin(write=True) as txn:
        kv = env.open_db(b"kv", txn=txn)
        exp = env.open_db(b"exp", txn=txn, dupsort=True)
        meta = env.open_db(b"meta", txn=txn)
        fmt = txn.get(b"format", db=meta)
        if fmt is None:
            txn.put(b"format", records.FORMAT, db=meta)
            txn.put(USAGE, _I64.pack(0), db=meta)
            fmt = records.FORMAT
    return kv, exp, meta, fmt


ENVIRONMENTS = _Environments()
os.register_at_fork(
    before=ENVIRONMENTS.before_fork,
    after_in_parent=ENVIRONMENTS.after_fork_in_parent,
    after_in_child=ENVIRONMENTS.after_fork_in_child,
)


class LmdbBackend(KvBackend):
    name = "lmdb"
    atomic_quotas = True

    def __init__(self, root: Path, map_size: int = 64 * MB, max_map_size: int = 16384 * MB):
        self.root = Path(root)
        self.map_size = map_size
        self.max_map_size = max_map_size

    def path(self, guild_id: str, store: str) -> Path:
        """The store's environment folder; names that could leave the data folder are refused (they never pass validation)."""
        if not SAFE_PART.match(guild_id) or not SAFE_PART.match(store):
            raise unavailable(f"kv backend lmdb: unsafe store path {guild_id!r}/{store!r}")
        return self.root / guild_id / store

    def map_size_of(self, guild_id: str, store: str) -> int:
        """The map size this process uses for the store now, in bytes."""
        return self._run(guild_id, store, lambda st: int(st.env.info()["map_size"]))

    @contextlib.contextmanager
    def _quota(self, guild_id: str, quota: Quota | None) -> Iterator[Check]:
        """``check(txn, st, old, new)`` for ``quota``, to call inside the write transaction (none: no check). With a
        quota the guild's lock is held around the whole write, so the other stores' sizes read first stay valid
        (they can only shrink meanwhile); the store's own is read in the transaction."""
        if quota is None:
            yield _no_check
            return
        with file_lock(self.root / guild_id / ".quota.lock", what="kv backend lmdb: the guild's quota lock"):
            others = sum(self.store_bytes(guild_id, name) for name in quota.other_stores if self.path(guild_id, name).exists())

            def check(txn, st: _Store, old: int, new: int) -> None:
                (used,) = _I64.unpack(txn.get(USAGE, db=st.meta))
                check_quota(quota, used, old, new, others)

            yield check

    def close(self) -> None:
        """Close the process's environments once the calls in flight are done (another backend instance of this
        process that uses one of them opens it again)."""
        ENVIRONMENTS.close_all()

    def _run(self, guild_id: str, store: str, fn: Callable[[_Store], T]) -> T:
        """``fn(store)`` with the environment open, again after growing or adopting the map if it had to."""
        path = Path(os.path.realpath(self.path(guild_id, store)))
        where = f"{guild_id}/{store}"
        for _ in range(MAX_ATTEMPTS):
            try:
                st = ENVIRONMENTS.acquire(path, self.map_size)
            except KvError:
                raise
            except lmdb.Error as exc:
                raise unavailable(f"kv backend lmdb cannot open {path}: {exc}") from None
            except OSError as exc:
                raise unavailable(f"kv backend lmdb cannot open {path}: {exc.strerror or exc}") from None
            seen = st.resizes
            try:
                return fn(st)
            except lmdb.MapFullError:
                problem = "full"
            except lmdb.MapResizedError:
                problem = "resized"
            except lmdb.ReadersFullError:
                problem = "readers"
            except KvError:
                raise
            except records.CorruptRecord as exc:
                raise unavailable(f"kv backend lmdb: {path} holds a record this flora-kv-lmdb cannot read ({exc})") from None
            except lmdb.Error as exc:
                raise unavailable(f"kv backend lmdb failed on {where}: {exc}") from None
            finally:
                ENVIRONMENTS.release(st)
            ENVIRONMENTS.fix(st, problem, seen, where, self.max_map_size)
        raise unavailable(f"kv backend lmdb failed on {where}: the map kept changing ({MAX_ATTEMPTS} attempts)")

    # -- inside transactions -------------------------------------------------------------------
    @staticmethod
    def _bucket(txn, st: _Store, head: bytes) -> dict[bytes, Record]:
        raw = txn.get(head, db=st.kv)
        return {} if raw is None else records.decode(raw)

    @staticmethod
    def _put(txn, st: _Store, head: bytes, old: dict[bytes, Record], new: dict[bytes, Record]) -> None:
        """Write ``new`` over ``old`` under ``head``, with the expiry index and the store's size."""
        old_exps = {r.expiration for r in old.values() if r.expiration is not None}
        new_exps = {r.expiration for r in new.values() if r.expiration is not None}
        for expiration in old_exps - new_exps:
            txn.delete(exp_key(expiration), head, db=st.exp)
        for expiration in new_exps - old_exps:
            txn.put(exp_key(expiration), head, db=st.exp)
        if new:
            txn.put(head, records.encode(new), db=st.kv)
        else:
            txn.delete(head, db=st.kv)
        delta = bucket_size(head, new) - bucket_size(head, old)
        if delta:
            (used,) = _I64.unpack(txn.get(USAGE, db=st.meta))
            txn.put(USAGE, _I64.pack(used + delta), db=st.meta)

    def _purge(self, guild_id: str, store: str, keys: list[bytes], now: int) -> int:
        """Delete those of ``keys`` that are still expired (a concurrent ``set`` is never undone)."""
        by_head: dict[bytes, list[bytes]] = {}
        for key in keys:
            head, suffix = split(key)
            by_head.setdefault(head, []).append(suffix)

        def purge(st: _Store) -> int:
            removed = 0
            with st.env.begin(write=True) as txn:
                for head, suffixes in by_head.items():
                    old = self._bucket(txn, st, head)
                    new = dict(old)
                    for suffix in suffixes:
                        rec = new.get(suffix)
                        if rec is not None and is_expired(rec.expiration, now):
                            del new[suffix]
                    if len(new) != len(old):
                        removed += len(old) - len(new)
                        self._put(txn, st, head, old, new)
            return removed

        return self._run(guild_id, store, purge)

    # -- the interface -------------------------------------------------------------------------
    def get(self, guild_id, store, key, now):
        kb = key.encode("utf-8")
        head, suffix = split(kb)

        def read(st: _Store) -> Record | None:
            with st.env.begin(buffers=True) as txn:  # the bucket is read in the map, not copied
                raw = txn.get(head, db=st.kv)
                return None if raw is None else records.decode(raw).get(suffix)

        rec = self._run(guild_id, store, read)
        if rec is None:
            return None
        if is_expired(rec.expiration, now):
            self._purge(guild_id, store, [kb], now)
            return None
        assert rec.value is not None
        return Entry(key, rec.value.decode("utf-8"), rec.expiration, _meta(rec.metadata))

    def set(self, guild_id, store, key, value, expiration, metadata_json, *, quota=None):
        kb = key.encode("utf-8")
        head, suffix = split(kb)
        data = value.encode("utf-8")
        rec = Record(expiration, metadata_json, data, len(data))

        with self._quota(guild_id, quota) as check:

            def write(st: _Store) -> None:
                with st.env.begin(write=True) as txn:
                    old = self._bucket(txn, st, head)
                    check(txn, st, _size(kb, old.get(suffix)), entry_size(kb, rec))  # a KvError aborts the transaction
                    self._put(txn, st, head, old, {**old, suffix: rec})

            self._run(guild_id, store, write)

    def update_metadata(self, guild_id, store, key, metadata_json, now, *, quota=None):
        kb = key.encode("utf-8")
        head, suffix = split(kb)

        with self._quota(guild_id, quota) as check:

            def write(st: _Store) -> bool:
                with st.env.begin(write=True) as txn:
                    old = self._bucket(txn, st, head)
                    rec = old.get(suffix)
                    if rec is None:
                        return False
                    new = dict(old)
                    if is_expired(rec.expiration, now):
                        del new[suffix]
                        self._put(txn, st, head, old, new)
                        return False
                    new[suffix] = Record(rec.expiration, metadata_json, rec.value, rec.value_len)
                    check(txn, st, entry_size(kb, rec), entry_size(kb, new[suffix]))
                    self._put(txn, st, head, old, new)
                    return True

            return self._run(guild_id, store, write)

    def delete(self, guild_id, store, key):
        head, suffix = split(key.encode("utf-8"))

        def write(st: _Store) -> None:
            with st.env.begin(write=True) as txn:
                old = self._bucket(txn, st, head)
                if suffix in old:
                    self._put(txn, st, head, old, {s: r for s, r in old.items() if s != suffix})

        self._run(guild_id, store, write)

    def list(self, guild_id, store, *, after, start, end, count, now):
        if count <= 0:
            return []
        lower = after if after is not None else start
        strict = after is not None
        low = None if lower is None or lower == "" else lower.encode("utf-8")
        high = None if end is None else end.encode("utf-8")

        def scan(st: _Store) -> tuple[list[Entry], list[bytes]]:
            live: list[Entry] = []
            expired: list[bytes] = []
            with st.env.begin(buffers=True) as txn:
                cursor = txn.cursor(db=st.kv)
                found = cursor.set_range(low[:HEAD_BYTES]) if low is not None else cursor.first()
                while found:
                    head = bytes(cursor.key())
                    if high is not None and head >= high:
                        break  # every key of this bucket and the next ones is >= head
                    for suffix, rec in records.decode(cursor.value(), with_values=False).items():
                        key = head + suffix
                        if low is not None and (key < low or (strict and key == low)):
                            continue
                        if high is not None and key >= high:
                            return live, expired
                        if is_expired(rec.expiration, now):
                            expired.append(key)
                        else:
                            live.append(Entry(key.decode("utf-8"), None, rec.expiration, _meta(rec.metadata)))
                            if len(live) == count:
                                return live, expired
                    found = cursor.next()
            return live, expired

        live, expired = self._run(guild_id, store, scan)
        if expired:
            self._purge(guild_id, store, expired, now)
        return live

    def incr(self, guild_id, store, key, by, now, *, quota=None):
        kb = key.encode("utf-8")
        head, suffix = split(kb)

        with self._quota(guild_id, quota) as check:

            def write(st: _Store) -> int:
                with st.env.begin(write=True) as txn:
                    old = self._bucket(txn, st, head)
                    rec = old.get(suffix)
                    live = rec is not None and not is_expired(rec.expiration, now)
                    current = rec.value.decode("utf-8") if live and rec is not None and rec.value is not None else None
                    result = next_counter(current, by)  # a KvError aborts the transaction
                    data = str(result).encode("ascii")
                    if live and rec is not None:
                        updated = Record(rec.expiration, rec.metadata, data, len(data))
                    else:
                        updated = Record(None, None, data, len(data))
                    check(txn, st, _size(kb, rec), entry_size(kb, updated))
                    self._put(txn, st, head, old, {**old, suffix: updated})
                    return result

            return self._run(guild_id, store, write)

    def cas(self, guild_id, store, key, expected, value, expiration, metadata_json, now, *, quota=None):
        kb = key.encode("utf-8")
        head, suffix = split(kb)
        data = value.encode("utf-8")
        new_rec = Record(expiration, metadata_json, data, len(data))

        with self._quota(guild_id, quota) as check:

            def write(st: _Store) -> bool:
                with st.env.begin(write=True) as txn:
                    old = self._bucket(txn, st, head)
                    rec = old.get(suffix)
                    live = rec is not None and not is_expired(rec.expiration, now)
                    current = rec.value.decode("utf-8") if live and rec is not None and rec.value is not None else None
                    if current != expected:
                        if rec is not None and not live:  # met an expired entry: purge it
                            self._put(txn, st, head, old, {s: r for s, r in old.items() if s != suffix})
                        return False
                    check(txn, st, _size(kb, rec), entry_size(kb, new_rec))
                    self._put(txn, st, head, old, {**old, suffix: new_rec})
                    return True

            return self._run(guild_id, store, write)

    def entry_bytes(self, guild_id, store, key):
        kb = key.encode("utf-8")
        head, suffix = split(kb)

        def read(st: _Store) -> int:
            with st.env.begin(buffers=True) as txn:
                raw = txn.get(head, db=st.kv)
                rec = None if raw is None else records.decode(raw, with_values=False).get(suffix)
                return 0 if rec is None else entry_size(kb, rec)

        return self._run(guild_id, store, read)

    def store_bytes(self, guild_id, store):
        def read(st: _Store) -> int:
            with st.env.begin() as txn:
                return _I64.unpack(txn.get(USAGE, db=st.meta))[0]

        return self._run(guild_id, store, read)

    def purge_expired(self, guild_id, store, now):
        limit = exp_key(now)

        def anything_expired(st: _Store) -> bool:
            with st.env.begin(buffers=True) as txn:  # look first: a write transaction would wait for other writers
                cursor = txn.cursor(db=st.exp)
                return bool(cursor.first()) and bytes(cursor.key()) <= limit

        if not self._run(guild_id, store, anything_expired):
            return 0

        def purge(st: _Store) -> int:
            removed = 0
            with st.env.begin(write=True) as txn:
                heads: dict[bytes, None] = {}
                cursor = txn.cursor(db=st.exp)
                found = cursor.first()
                while found and cursor.key() <= limit:
                    heads[cursor.value()] = None
                    found = cursor.next()  # every (expiration, head) pair, duplicates included
                cursor.close()
                for head in heads:
                    old = self._bucket(txn, st, head)
                    new = {s: r for s, r in old.items() if not is_expired(r.expiration, now)}
                    if len(new) != len(old):
                        removed += len(old) - len(new)
                        self._put(txn, st, head, old, new)
            return removed

        return self._run(guild_id, store, purge)

    def drop_store(self, guild_id, store):
        """Empty the store's databases; the files stay, so environments other processes hold on them stay
        valid and see an empty store. LMDB reuses the freed pages; until then they keep the old bytes."""
        if not self.path(guild_id, store).exists():
            return

        def drop(st: _Store) -> None:
            with st.env.begin(write=True) as txn:
                txn.drop(st.kv, delete=False)
                txn.drop(st.exp, delete=False)
                txn.put(USAGE, _I64.pack(0), db=st.meta)

        self._run(guild_id, store, drop)


def read_entries(path: str | os.PathLike) -> dict[str, dict]:
    """Every entry of the store at ``path`` as ``{key: {"value", "expiration", "metadata"}}``, expired ones too,
    read in its own read-only environment (for inspection, from a process that does not use the backend)."""
    env = lmdb.open(str(path), readonly=True, max_dbs=3, subdir=True, create=False)
    try:
        kv = env.open_db(b"kv", create=False)
        out: dict[str, dict] = {}
        with env.begin() as txn:
            for head, raw in txn.cursor(db=kv):
                for suffix, rec in records.decode(raw).items():
                    assert rec.value is not None
                    out[(head + suffix).decode("utf-8")] = {
                        "value": rec.value.decode("utf-8"),
                        "expiration": rec.expiration,
                        "metadata": _meta(rec.metadata),
                    }
        return out
    finally:
        env.close()
