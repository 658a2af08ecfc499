"""Relational storage: deployments and revisions, API tokens, guild logs.

The core's schema (deployments, revisions, tokens, logs, sessions) with plain SQL migrations per
dialect (``migrations/<dialect>``); plugins add their own tables the same way
(``flora_register_migrations``).
Which database serves ``DATABASE_URL`` is chosen by the
``flora_storage_backend`` hook; SQLite is the built-in fallback.
Queries are written with ``?`` placeholders; backends translate them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger("flora.storage")


class StorageError(Exception):
    """The database could not be opened or a migration failed."""


def utcnow() -> str:
    """RFC 3339 timestamp with microseconds; sorts as text."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


class Database:
    """A small DB-API wrapper; subclasses set ``dialect`` and implement ``connection()``, ``release()``,
    ``close()`` and ``_lock_schema()`` (``_sql()`` too if their placeholder is not ``?``). What flora
    expects of them is checked by ``flora_plugins.storage.conformance``."""

    dialect = "sqlite"

    def connection(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self.connection()
        try:
            cur = conn.cursor()
            yield _Cursor(cur, self)
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            self.release(conn)

    def unavailable(self, exc: BaseException) -> str | None:
        """If ``exc`` means the database cannot be reached now (not a bad query), one line saying so; the
        API answers it with 503. Backends override it for their driver's errors."""
        if isinstance(exc, StorageError):
            return str(exc)
        return None

    def release(self, conn) -> None:
        pass

    def execute(self, sql: str, params: tuple = ()) -> int:
        with self.transaction() as cur:
            cur.execute(sql, params)
            return cur.rowcount

    def fetchone(self, sql: str, params: tuple = ()) -> dict | None:
        with self.transaction() as cur:
            cur.execute(sql, params)
            return cur.fetchone()

    def fetchall(self, sql: str, params: tuple = ()) -> list[dict]:
        with self.transaction() as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    def migrate(self, plugin_migrations: Sequence[tuple[str, Any]] = ()) -> None:
        """Apply the core's migrations, then each plugin's (``[(plugin, folder)]``, a folder holding
        ``<dialect>/NNN_name.sql``), each once; a plugin's are recorded as ``<plugin>/NNN_name.sql``, so
        its tables exist only once it is enabled, and enabling it later creates them.

        Each migration is one transaction that begins with :meth:`_lock_schema`, so a migration that
        fails leaves nothing behind, and processes that start together on a new database (``flora serve``,
        ``flora api -w N``) apply each migration once, one after the other."""
        with self.transaction() as cur:
            self._lock_schema(cur)
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {r["version"] for r in self.fetchall("SELECT version FROM schema_migrations")}
        folders = [("", resources.files("flora_core.storage").joinpath("migrations")), *plugin_migrations]
        for owner, folder in folders:
            dialect = folder.joinpath(self.dialect)
            if not dialect.is_dir():
                if owner:
                    raise StorageError(f"plugin {owner} has no migrations for {self.dialect}")
                continue
            for item in sorted(dialect.iterdir(), key=lambda p: p.name):
                version = f"{owner}/{item.name}" if owner else item.name
                if not item.name.endswith(".sql") or version in done:
                    continue
                self._apply(version, item.read_text(encoding="utf-8"))

    def _apply(self, version: str, script: str) -> None:
        try:
            with self.transaction() as cur:
                self._lock_schema(cur)
                cur.execute("SELECT version FROM schema_migrations WHERE version = ?", (version,))
                if cur.fetchone() is not None:
                    return  # another process applied it while this one waited for the lock
                for statement in (s.strip() for s in script.split(";")):
                    if statement:
                        cur.execute(statement)
                cur.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (version, utcnow()))
        except Exception as exc:
            raise StorageError(f"migration {version} failed: {exc}") from exc
        log.info("applied migration %s", version)

    def _lock_schema(self, cur) -> None:
        """Called first in every transaction that changes the schema. A backend makes the transaction
        hold a lock until it ends, so that other processes' migrations wait for it, and makes sure its DDL
        is part of it (undone on error). Doing nothing, the default, is right only for a database that
        one process opens and whose DDL is transactional."""

    def close(self) -> None:
        pass


class _Cursor:
    """Cursor that takes ``?`` placeholders and returns rows as dicts."""

    def __init__(self, cur, db: Database):
        self._cur = cur
        self._db = db

    def execute(self, sql: str, params: tuple = ()) -> None:
        self._cur.execute(self._db._sql(sql), tuple(params))

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def _row(self, row) -> dict | None:
        if row is None:
            return None
        cols = [c[0] for c in self._cur.description]
        return dict(zip(cols, row, strict=True))

    def fetchone(self) -> dict | None:
        return self._row(self._cur.fetchone())

    def fetchall(self) -> list[dict]:
        cols = [c[0] for c in self._cur.description]
        return [dict(zip(cols, row, strict=True)) for row in self._cur.fetchall()]


def describe_database(config) -> str:
    """Where ``config``'s database is, for messages (a PostgreSQL URL without its password)."""
    from flora_core.config import redacted

    url = config.db_url
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :]
    return redacted(url)


def open_database(config, plugins, *, must_exist: bool = False) -> Database:
    """Open and migrate the database for ``config.db_url``. With ``must_exist`` (the CLI's commands that
    manage a server's data) an embedded database that is not there yet is an error, never created: the
    command runs in another folder than the server, or before it ever started."""
    url = config.db_url
    if must_exist and url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        raise StorageError(
            f"no flora database at {describe_database(config)}: run this where `flora serve` runs, "
            "or point FLORA_DATA_DIR (or --config) at the server's data folder"
        )
    db = plugins.storage_backend(url, config)
    if db is None:
        scheme = url.split(":", 1)[0]
        raise StorageError(f"no storage backend serves DATABASE_URL scheme {scheme!r} (is the plugin installed?)")
    db.migrate(plugins.migrations())
    return db
