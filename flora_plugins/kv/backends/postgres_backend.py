"""KV backend ``postgres``: the table ``kv_entries`` in the ``KV_URL`` database (else ``DATABASE_URL``).

One row per ``(guild_id, store, key)`` (the primary key); ``key`` is
``COLLATE "C"`` so the primary-key index is in byte order, which is what
``list`` reads. Values are ``BYTEA`` (UTF-8; a string may hold NUL, which
``TEXT`` refuses). ``incr``, ``cas`` and ``updateMetadata`` lock the row
(``SELECT … FOR UPDATE``; a missing row is created with ``ON CONFLICT DO
NOTHING`` and read again if another writer got there first), so they are
atomic across threads and processes. The backend creates its tables itself,
because ``KV_URL`` may name a database that flora's migrations never touch.

Quotas (``atomic_quotas``). ``kv_store_usage`` holds each store's size,
kept by statement-level triggers on ``kv_entries`` in the transaction of
every change (so ``store_bytes`` reads one row instead of summing a store).
A write with a quota takes the guild's transaction-scoped advisory lock
(``pg_advisory_xact_lock(GUILD_LOCK, hashtext(guild_id))``), reads the sizes
of the guild's stores, locks the entry's row and checks before writing, all
in one transaction: quota writes of one guild, from any process on any
machine, pass one at a time, and only they make a store grow (deletes and
purges, which only shrink stores, do not wait for the lock). Each
transaction changes ``kv_entries`` in one statement at most, so it locks
entry rows before the trigger locks the store's size row, never after: no
two transactions can wait for each other over those locks. The first
process that finds no ``kv_store_usage`` creates it and its triggers and
fills it from ``kv_entries`` while holding a lock that keeps writers out.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from json import loads
from typing import Any

from flora_core import hookimpl

from ..backend import Entry, KvBackend, Quota, check_quota, is_expired, next_counter, scan_live
from ..errors import KvError, unavailable
from ..limits import entry_size, meta_size

SCHEMA = [
    "SELECT pg_advisory_xact_lock(7356021146)",  # two processes creating the table at once would collide
    """CREATE TABLE IF NOT EXISTS kv_entries (
        guild_id TEXT NOT NULL,
        store TEXT NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        value BYTEA NOT NULL,
        expiration BIGINT,
        metadata JSON,
        meta_size INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (guild_id, store, key)
    )""",
    "CREATE INDEX IF NOT EXISTS kv_entries_expiration ON kv_entries (guild_id, store, expiration) WHERE expiration IS NOT NULL",
]
# the store sizes and the triggers that keep them: made once, when the table is missing (see _connect)
SIZE_OF = "octet_length({t}.key) + octet_length({t}.value) + {t}.meta_size"
_ADD_SIZES = """CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO kv_store_usage (guild_id, store, bytes)
    SELECT guild_id, store, SUM(n) FROM ({rows}) AS changed GROUP BY guild_id, store
    ON CONFLICT (guild_id, store) DO UPDATE SET bytes = kv_store_usage.bytes + excluded.bytes;
  RETURN NULL;
END
$$"""
USAGE_SCHEMA = [
    "CREATE TABLE kv_store_usage (guild_id TEXT NOT NULL, store TEXT NOT NULL, bytes BIGINT NOT NULL,"
    " PRIMARY KEY (guild_id, store))",
    "LOCK TABLE kv_entries IN SHARE ROW EXCLUSIVE MODE",  # no write between the triggers and the sums below
    _ADD_SIZES.format(name="kv_usage_insert", rows=f"SELECT guild_id, store, {SIZE_OF.format(t='n')} AS n FROM new_rows n"),
    _ADD_SIZES.format(
        name="kv_usage_update",
        rows=f"SELECT guild_id, store, {SIZE_OF.format(t='n')} AS n FROM new_rows n"
        f" UNION ALL SELECT guild_id, store, -({SIZE_OF.format(t='o')}) FROM old_rows o",
    ),
    _ADD_SIZES.format(name="kv_usage_delete", rows=f"SELECT guild_id, store, -({SIZE_OF.format(t='o')}) AS n FROM old_rows o"),
    "CREATE TRIGGER kv_usage_insert AFTER INSERT ON kv_entries REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION kv_usage_insert()",
    "CREATE TRIGGER kv_usage_update AFTER UPDATE ON kv_entries REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION kv_usage_update()",
    "CREATE TRIGGER kv_usage_delete AFTER DELETE ON kv_entries REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION kv_usage_delete()",
    f"INSERT INTO kv_store_usage (guild_id, store, bytes) SELECT guild_id, store, SUM({SIZE_OF.format(t='e')})"
    " FROM kv_entries e GROUP BY guild_id, store",
]
GUILD_LOCK = 1802919790  # the first key of the guild locks (pg_advisory_xact_lock(int, int)): b"kv_n" as an int
WHERE_KEY = "guild_id = %s AND store = %s AND key = %s"
UPSERT = (
    "INSERT INTO kv_entries (guild_id, store, key, value, expiration, metadata, meta_size)"
    " VALUES (%s, %s, %s, %s, %s, %s::json, %s) ON CONFLICT (guild_id, store, key) DO UPDATE"
    " SET value = excluded.value, expiration = excluded.expiration, metadata = excluded.metadata,"
    " meta_size = excluded.meta_size"
)
INSERT_NEW = (
    "INSERT INTO kv_entries (guild_id, store, key, value, expiration, metadata, meta_size)"
    " VALUES (%s, %s, %s, %s, %s, %s::json, %s) ON CONFLICT (guild_id, store, key) DO NOTHING"
)
PURGE_KEY = f"DELETE FROM kv_entries WHERE {WHERE_KEY} AND expiration <= %s"
SIZE = "octet_length(key) + octet_length(value) + meta_size"


Check = Callable[[int, int], None]  # check(bytes of the entry now, bytes after the write)


def _no_check(old: int, new: int) -> None:
    return None


def _text(raw) -> str:
    return bytes(raw).decode("utf-8")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PostgresBackend(KvBackend):
    name = "postgres"
    atomic_quotas = True

    def __init__(self, url: str, max_connections: int = 8, connect_timeout: int = 5):
        try:
            import psycopg2
        except ImportError:
            raise unavailable("KV_BACKEND=postgres needs psycopg2: pip install 'flora-runtime[postgres]'") from None
        self._pg = psycopg2
        self.url = url
        self.connect_timeout = connect_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._idle: list = []
        self._lock = threading.Lock()
        self._schema_ready = False

    # -- connections -----------------------------------------------------------------
    def _connect(self):
        try:
            conn = self._pg.connect(self.url, connect_timeout=self.connect_timeout)
        except self._pg.Error as exc:
            raise unavailable(f"kv backend postgres: cannot connect: {_first_line(exc)}") from None
        if not self._schema_ready:
            try:
                with conn.cursor() as cur:
                    for statement in SCHEMA:
                        cur.execute(statement)
                    cur.execute("SELECT to_regclass('kv_store_usage') IS NULL")
                    if cur.fetchone()[0]:  # under SCHEMA's lock: one process makes it
                        for statement in USAGE_SCHEMA:
                            cur.execute(statement)
                conn.commit()
            except BaseException:
                conn.close()
                raise
            self._schema_ready = True
        return conn

    @contextlib.contextmanager
    def _cursor(self) -> Iterator:
        """A cursor in a transaction that commits on success and rolls back on any error."""
        if not self._slots.acquire(timeout=30):
            raise unavailable("kv backend postgres: no free connection after 30s")
        conn = None
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None or conn.closed:
                conn = self._connect()
            try:
                with conn.cursor() as cur:
                    yield cur
                conn.commit()
            except KvError:
                conn.rollback()
                raise
            except (self._pg.OperationalError, self._pg.InterfaceError) as exc:
                conn.close()  # the server went away (or restarted): drop every pooled connection
                self.close()
                raise unavailable(f"kv backend postgres: {_first_line(exc)}") from None
            except BaseException:
                if not conn.closed:
                    conn.rollback()
                raise
        except self._pg.Error as exc:
            raise unavailable(f"kv backend postgres failed: {_first_line(exc)}") from None
        finally:
            if conn is not None and not conn.closed:
                with self._lock:
                    self._idle.append(conn)
            self._slots.release()

    @contextlib.contextmanager
    def _writing(self, guild_id: str, store: str, quota: Quota | None) -> Iterator[tuple[Any, Check]]:
        """A cursor in a transaction and ``check(old, new)`` for ``quota`` (none: no check). With a quota the
        guild's lock is taken first and held to the end of the transaction, so the sizes read here stay valid
        (they can only shrink meanwhile)."""
        with self._cursor() as cur:
            if quota is None:
                yield cur, _no_check
                return
            cur.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (GUILD_LOCK, guild_id))
            cur.execute(
                "SELECT store, bytes FROM kv_store_usage WHERE guild_id = %s AND store = ANY(%s)",
                (guild_id, [store, *quota.other_stores]),
            )
            sizes = {name: int(n) for name, n in cur.fetchall()}
            used = sizes.pop(store, 0)
            others = sum(sizes.values())
            yield cur, lambda old, new: check_quota(quota, used, old, new, others)

    def close(self) -> None:
        with self._lock:
            conns, self._idle = self._idle, []
        for conn in conns:
            conn.close()

    # -- the interface -------------------------------------------------------------------
    def get(self, guild_id, store, key, now):
        with self._cursor() as cur:
            cur.execute(f"SELECT value, expiration, metadata::text FROM kv_entries WHERE {WHERE_KEY}", (guild_id, store, key))
            row = cur.fetchone()
            if row is None:
                return None
            if is_expired(row[1], now):
                cur.execute(PURGE_KEY, (guild_id, store, key, now))
                return None
            return Entry(key, _text(row[0]), row[1], None if row[2] is None else loads(row[2]))

    def set(self, guild_id, store, key, value, expiration, metadata_json, *, quota=None):
        with self._writing(guild_id, store, quota) as (cur, check):
            if quota is not None:
                row = self._locked(cur, guild_id, store, key)
                check(0 if row is None else row[3], entry_size(key, value, expiration, metadata_json))
            cur.execute(
                UPSERT,
                (
                    guild_id,
                    store,
                    key,
                    value.encode("utf-8"),
                    expiration,
                    metadata_json,
                    meta_size(key, expiration, metadata_json),
                ),
            )

    def _locked(self, cur, guild_id, store, key):
        """(value, expiration, meta_size, size) of the row, locked until the transaction ends; None if absent."""
        cur.execute(
            f"SELECT value, expiration, meta_size, {SIZE} FROM kv_entries WHERE {WHERE_KEY} FOR UPDATE", (guild_id, store, key)
        )
        return cur.fetchone()

    def update_metadata(self, guild_id, store, key, metadata_json, now, *, quota=None):
        with self._writing(guild_id, store, quota) as (cur, check):
            row = self._locked(cur, guild_id, store, key)
            if row is None:
                return False
            if is_expired(row[1], now):
                cur.execute(PURGE_KEY, (guild_id, store, key, now))
                return False
            size = meta_size(key, row[1], metadata_json)
            check(row[3], row[3] - row[2] + size)
            cur.execute(
                f"UPDATE kv_entries SET metadata = %s::json, meta_size = %s WHERE {WHERE_KEY}",
                (metadata_json, size, guild_id, store, key),
            )
            return True

    def delete(self, guild_id, store, key):
        with self._cursor() as cur:
            cur.execute(f"DELETE FROM kv_entries WHERE {WHERE_KEY}", (guild_id, store, key))

    def list(self, guild_id, store, *, after, start, end, count, now):
        with self._cursor() as cur:

            def fetch(lower, end, want):
                sql = "SELECT key, expiration, metadata::text FROM kv_entries WHERE guild_id = %s AND store = %s"
                params: list = [guild_id, store]
                if lower is not None:
                    sql += f" AND key {lower[0]} %s"
                    params.append(lower[1])
                if end is not None:
                    sql += " AND key < %s"
                    params.append(end)
                cur.execute(sql + " ORDER BY key LIMIT %s", (*params, want))
                return cur.fetchall()

            live, expired = scan_live(fetch, after=after, start=start, end=end, count=count, now=now)
            if expired:  # one statement: its rows are locked before the trigger locks the store's size row
                cur.execute(
                    "DELETE FROM kv_entries WHERE guild_id = %s AND store = %s AND key = ANY(%s) AND expiration <= %s",
                    (guild_id, store, expired, now),
                )
        return live

    def incr(self, guild_id, store, key, by, now, *, quota=None):
        with self._writing(guild_id, store, quota) as (cur, check):
            while True:
                row = self._locked(cur, guild_id, store, key)
                live = row is not None and not is_expired(row[1], now)
                result = next_counter(_text(row[0]) if live else None, by)
                value = str(result).encode()
                fresh = entry_size(key, str(result), None, None)
                if live:
                    check(row[3], fresh + row[2])
                    cur.execute(f"UPDATE kv_entries SET value = %s WHERE {WHERE_KEY}", (value, guild_id, store, key))
                    return result
                check(0 if row is None else row[3], fresh)
                if row is not None:  # expired: a fresh counter without the old expiration and metadata
                    cur.execute(UPSERT, (guild_id, store, key, value, None, None, 0))
                    return result
                cur.execute(INSERT_NEW, (guild_id, store, key, value, None, None, 0))
                if cur.rowcount == 1:
                    return result
                # another writer inserted it since our SELECT: lock and read that row

    def cas(self, guild_id, store, key, expected, value, expiration, metadata_json, now, *, quota=None):
        params = (
            guild_id,
            store,
            key,
            value.encode("utf-8"),
            expiration,
            metadata_json,
            meta_size(key, expiration, metadata_json),
        )
        with self._writing(guild_id, store, quota) as (cur, check):
            while True:
                row = self._locked(cur, guild_id, store, key)
                current = _text(row[0]) if row is not None and not is_expired(row[1], now) else None
                if current != expected:
                    return False
                check(0 if row is None else row[3], entry_size(key, value, expiration, metadata_json))
                if row is not None:
                    cur.execute(UPSERT, params)
                    return True
                cur.execute(INSERT_NEW, params)
                if cur.rowcount == 1:
                    return True

    def entry_bytes(self, guild_id, store, key):
        with self._cursor() as cur:
            cur.execute(f"SELECT {SIZE} FROM kv_entries WHERE {WHERE_KEY}", (guild_id, store, key))
            row = cur.fetchone()
            return 0 if row is None else int(row[0])

    def store_bytes(self, guild_id, store):
        with self._cursor() as cur:
            cur.execute("SELECT bytes FROM kv_store_usage WHERE guild_id = %s AND store = %s", (guild_id, store))
            row = cur.fetchone()
            return 0 if row is None else int(row[0])

    def purge_expired(self, guild_id, store, now):
        with self._cursor() as cur:
            cur.execute("DELETE FROM kv_entries WHERE guild_id = %s AND store = %s AND expiration <= %s", (guild_id, store, now))
            return cur.rowcount

    def drop_store(self, guild_id, store):
        with self._cursor() as cur:
            cur.execute("DELETE FROM kv_entries WHERE guild_id = %s AND store = %s", (guild_id, store))
            cur.execute("DELETE FROM kv_store_usage WHERE guild_id = %s AND store = %s AND bytes = 0", (guild_id, store))


def _green_psycopg() -> None:
    """In the API process (gevent), make psycopg2 yield to other greenlets while it waits."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("socket"):
        try:
            from psycogreen.gevent import patch_psycopg
        except ImportError:
            return
        patch_psycopg()


def factory(config) -> PostgresBackend:
    url = config.kv_url or config.database_url
    if not url or not url.startswith(("postgres://", "postgresql://")):
        raise unavailable("KV_BACKEND=postgres needs KV_URL (or DATABASE_URL) to be a postgresql:// URL")
    _green_psycopg()
    return PostgresBackend(url, max_connections=max(8, getattr(config, "database_max_connections", 5)))


# optionalhook: the kv plugin declares this hook (kv/hookspecs.py); while it is disabled this plugin idles
@hookimpl(optionalhook=True)
def flora_register_kv_backends(register):
    register("postgres", factory)
