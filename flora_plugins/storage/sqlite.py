"""Built-in SQLite backend for ``sqlite:///path`` URLs (the embedded default)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from flora_core import hookimpl
from flora_core.storage import Database, StorageError


class SQLiteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str):
        self.path = path
        if path != ":memory:":
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create the folder for {path}: {exc.strerror}") from None
        self._local = threading.local()
        self._closed = False

    def connection(self):
        conn = getattr(self._local, "conn", None)
        if self._closed:  # each thread's connection is closed by its next use, as close() runs in one thread
            if conn is not None:
                conn.close()
                self._local.conn = None
            raise StorageError(f"the SQLite database {self.path} is closed")
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level="DEFERRED", check_same_thread=False)
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from None
            try:
                _switch_to_wal(conn)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as exc:
                conn.close()
                raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from None
            self._local.conn = conn
        return conn

    def _lock_schema(self, cur) -> None:
        # Take the write lock now (other processes wait up to busy_timeout), and open the transaction
        # explicitly: Python's sqlite3 opens one only before INSERT/UPDATE/DELETE, so CREATE TABLE would
        # otherwise be committed at once and a migration that fails later would stay half applied.
        cur.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        self._closed = True
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _switch_to_wal(conn: sqlite3.Connection, timeout: float = 30.0) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another process holds the file: processes that open a
    new database at the same moment all switch it, and SQLite answers "database is locked" at once,
    without waiting in its busy handler, to those that could deadlock on the switch. Once the file is in
    WAL mode (which persists) the pragma changes nothing and takes no lock."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


@hookimpl(trylast=True)
def flora_storage_backend(url, config):
    if url.startswith("sqlite:///"):
        return SQLiteDatabase(url[len("sqlite:///") :])
    if url == "sqlite://" or url == "sqlite:///:memory:":
        return SQLiteDatabase(":memory:")
    return None
