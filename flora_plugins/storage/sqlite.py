"""Built-in SQLite backend for ``sqlite:///path`` URLs (the embedded default)."""

from __future__ import annotations

import sqlite3
import threading
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

    def connection(self):
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30, isolation_level="DEFERRED", check_same_thread=False)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as exc:
                raise StorageError(f"cannot open SQLite database {self.path}: {exc}") from None
            self._local.conn = conn
        return conn

    def _lock_schema(self, cur) -> None:
        # Take the write lock now (other processes wait up to busy_timeout), and open the transaction
        # explicitly: Python's sqlite3 opens one only before INSERT/UPDATE/DELETE, so CREATE TABLE would
        # otherwise be committed at once and a migration that fails later would stay half applied.
        cur.execute("BEGIN IMMEDIATE")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


@hookimpl(trylast=True)
def flora_storage_backend(url, config):
    if url.startswith("sqlite:///"):
        return SQLiteDatabase(url[len("sqlite:///"):])
    if url == "sqlite://" or url == "sqlite:///:memory:":
        return SQLiteDatabase(":memory:")
    return None
