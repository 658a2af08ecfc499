"""PostgreSQL backend (psycopg2) for ``postgres://`` and ``postgresql://`` URLs."""

from __future__ import annotations

import threading

from flora_core import hookimpl
from flora_core.storage import Database, StorageError

CONNECTION_WAIT_SECS = 30


class PostgresDatabase(Database):
    dialect = "postgres"

    def __init__(self, url: str, max_connections: int = 5):
        try:
            import psycopg2.pool
        except ImportError:
            raise StorageError(
                "DATABASE_URL is a PostgreSQL URL but psycopg2 is not installed: pip install 'flora-runtime[postgres]'"
            ) from None
        self._psycopg2 = psycopg2
        try:
            self._pool = psycopg2.pool.ThreadedConnectionPool(1, max_connections, url)
        except psycopg2.Error as exc:
            raise StorageError(f"cannot connect to PostgreSQL: {str(exc).strip().splitlines()[0]}") from None
        # psycopg2's pool raises "connection pool exhausted" when every connection is in use: a caller
        # waits for one instead (the API's greenlets and the runtime's executor threads outnumber them).
        self._slots = threading.BoundedSemaphore(max_connections)
        self.max_connections = max_connections
        # BYTEA comes back as bytes, as a BLOB does from SQLite (psycopg2 gives a memoryview)
        binary = psycopg2.BINARY
        self._bytes = psycopg2.extensions.new_type(
            binary.values, "FLORA_BYTES", lambda value, cur: None if value is None else bytes(binary(value, cur))
        )

    def _sql(self, sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _lock_schema(self, cur) -> None:
        # A transaction-scoped advisory lock, per schema: concurrent CREATE TABLE (even IF NOT EXISTS)
        # of the same table fails in one of the transactions, so migrations wait for each other.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('flora schema_migrations ' || coalesce(current_schema(), '')))")

    def connection(self):
        if self._pool.closed:
            raise StorageError("the PostgreSQL database is closed")
        if not self._slots.acquire(timeout=CONNECTION_WAIT_SECS):
            raise StorageError(
                f"no free PostgreSQL connection after {CONNECTION_WAIT_SECS}s "
                f"(all {self.max_connections} of DATABASE_MAX_CONNECTIONS in use)"
            )
        try:
            conn = self._pool.getconn()
            self._psycopg2.extensions.register_type(self._bytes, conn)
            return conn
        except self._psycopg2.pool.PoolError:
            self._slots.release()
            if self._pool.closed:  # closed while this caller waited
                raise StorageError("the PostgreSQL database is closed") from None
            raise
        except BaseException:
            self._slots.release()
            raise

    def unavailable(self, exc: BaseException) -> str | None:
        errors = self._psycopg2
        if isinstance(exc, errors.OperationalError | errors.InterfaceError):
            return f"PostgreSQL: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}"
        return super().unavailable(exc)

    def release(self, conn) -> None:
        try:
            if self._pool.closed:  # closed during the transaction: its connection is closed already
                conn.close()
            else:
                # a connection the server dropped (restart, network) is not given to the next caller
                self._pool.putconn(conn, close=bool(conn.closed))
        finally:
            self._slots.release()

    def close(self) -> None:
        if not self._pool.closed:
            self._pool.closeall()


@hookimpl
def flora_storage_backend(url, config):
    if url.startswith(("postgres://", "postgresql://")):
        return PostgresDatabase(url, getattr(config, "database_max_connections", 5))
    return None
