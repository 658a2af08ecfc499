"""KV backend ``postgres``: the table ``kv_entries`` in the ``KV_URL`` database (else ``DATABASE_URL``).

One row per ``(guild_id, store, key)`` (the primary key); ``key`` is
``COLLATE "C"`` so the primary-key index is in byte order, which is what
``list`` reads. Values are ``BYTEA`` (UTF-8; a string may hold NUL, which
``TEXT`` refuses). ``incr``, ``cas`` and ``updateMetadata`` lock the row
(``SELECT … FOR UPDATE``; a missing row is created with ``ON CONFLICT DO
NOTHING`` and read again if another writer got there first), so they are
atomic across threads and processes. The backend creates its table itself,
because ``KV_URL`` may name a database that flora's migrations never touch.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from json import loads

from flora_core import hookimpl

from ..backend import Entry, KvBackend, is_expired, next_counter, scan_live
from ..errors import KvError, unavailable
from ..limits import meta_size

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
WHERE_KEY = "guild_id = %s AND store = %s AND key = %s"
UPSERT = ("INSERT INTO kv_entries (guild_id, store, key, value, expiration, metadata, meta_size)"
          " VALUES (%s, %s, %s, %s, %s, %s::json, %s) ON CONFLICT (guild_id, store, key) DO UPDATE"
          " SET value = excluded.value, expiration = excluded.expiration, metadata = excluded.metadata,"
          " meta_size = excluded.meta_size")
INSERT_NEW = ("INSERT INTO kv_entries (guild_id, store, key, value, expiration, metadata, meta_size)"
              " VALUES (%s, %s, %s, %s, %s, %s::json, %s) ON CONFLICT (guild_id, store, key) DO NOTHING")
PURGE_KEY = f"DELETE FROM kv_entries WHERE {WHERE_KEY} AND expiration <= %s"
SIZE = "octet_length(key) + octet_length(value) + meta_size"


def _text(raw) -> str:
    return bytes(raw).decode("utf-8")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


class PostgresBackend(KvBackend):
    name = "postgres"

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

    def set(self, guild_id, store, key, value, expiration, metadata_json):
        with self._cursor() as cur:
            cur.execute(UPSERT, (guild_id, store, key, value.encode("utf-8"), expiration, metadata_json,
                                 meta_size(key, expiration, metadata_json)))

    def _locked(self, cur, guild_id, store, key):
        cur.execute(f"SELECT value, expiration FROM kv_entries WHERE {WHERE_KEY} FOR UPDATE", (guild_id, store, key))
        return cur.fetchone()

    def update_metadata(self, guild_id, store, key, metadata_json, now):
        with self._cursor() as cur:
            row = self._locked(cur, guild_id, store, key)
            if row is None:
                return False
            if is_expired(row[1], now):
                cur.execute(PURGE_KEY, (guild_id, store, key, now))
                return False
            cur.execute(f"UPDATE kv_entries SET metadata = %s::json, meta_size = %s WHERE {WHERE_KEY}",
                        (metadata_json, meta_size(key, row[1], metadata_json), guild_id, store, key))
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
            for key in expired:
                cur.execute(PURGE_KEY, (guild_id, store, key, now))
        return live

    def incr(self, guild_id, store, key, by, now):
        with self._cursor() as cur:
            while True:
                row = self._locked(cur, guild_id, store, key)
                live = row is not None and not is_expired(row[1], now)
                result = next_counter(_text(row[0]) if live else None, by)
                value = str(result).encode()
                if live:
                    cur.execute(f"UPDATE kv_entries SET value = %s WHERE {WHERE_KEY}", (value, guild_id, store, key))
                    return result
                if row is not None:  # expired: a fresh counter without the old expiration and metadata
                    cur.execute(UPSERT, (guild_id, store, key, value, None, None, 0))
                    return result
                cur.execute(INSERT_NEW, (guild_id, store, key, value, None, None, 0))
                if cur.rowcount == 1:
                    return result
                # another writer inserted it since our SELECT: lock and read that row

    def cas(self, guild_id, store, key, expected, value, expiration, metadata_json, now):
        params = (guild_id, store, key, value.encode("utf-8"), expiration, metadata_json, meta_size(key, expiration, metadata_json))
        with self._cursor() as cur:
            while True:
                row = self._locked(cur, guild_id, store, key)
                current = _text(row[0]) if row is not None and not is_expired(row[1], now) else None
                if current != expected:
                    return False
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
            cur.execute(f"SELECT COALESCE(SUM({SIZE}), 0) FROM kv_entries WHERE guild_id = %s AND store = %s", (guild_id, store))
            return int(cur.fetchone()[0])

    def purge_expired(self, guild_id, store, now):
        with self._cursor() as cur:
            cur.execute("DELETE FROM kv_entries WHERE guild_id = %s AND store = %s AND expiration <= %s", (guild_id, store, now))
            return cur.rowcount

    def drop_store(self, guild_id, store):
        with self._cursor() as cur:
            cur.execute("DELETE FROM kv_entries WHERE guild_id = %s AND store = %s", (guild_id, store))


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
