"""flora's relational storage conformance suite, importable by the authors of third-party storage backends.

It checks what flora asks of the database behind ``DATABASE_URL``, end to end through the public API
(``open_database``, ``Database`` and ``flora_core.storage.repo``): migrations from an empty database,
once each, with the plugins' own; deployments, revisions, tokens, sessions and logs as the API and the
runtime use them (ordering, keyset paging, JSON, NULLs, unicode, large values, timestamps that come back
as the text that was stored); ``?`` placeholders; transactions that commit together or not at all;
errors that leave the connection usable; writers in several threads and processes that lose nothing;
a closed database that says so. flora's own backends (SQLite, PostgreSQL) pass it in
``tests/test_storage_conformance.py``; a third-party backend, installed with its ``flora`` entry point
(``flora_storage_backend``), passes it like this::

    # tests/test_conformance.py of your package
    import pytest
    from flora_plugins.storage.conformance import *  # noqa: F403 - the suite's tests and fixtures

    @pytest.fixture
    def storage_env(tmp_path):
        url = create_empty_database()  # yours: a fresh, empty database for every test
        yield {"DATABASE_URL": url, "FLORA_DATA_DIR": str(tmp_path / "data")}
        drop_database(url)

``storage_env`` is the environment that selects your backend: ``DATABASE_URL`` names a fresh, **empty**
database (no tables) that your backend serves, plus any keys your backend reads. It is rebuilt in child
processes for the cross-process test, so it must hold everything needed to reach that database.
The suite opens it through the ``flora_storage_backend`` hook of the installed plugins, as flora does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path

import pytest

from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import Database, StorageError, open_database, repo

GUILD = "111111111111111111"
OTHER = "222222222222222222"
MS = 1_700_000_000_123  # a timestamp in milliseconds, beyond 32 bits
PLUGIN = "conformance"  # the suite registers migrations of its own, as a plugin does

# The suite's own tables, created through the plugin migrations path (``<plugin>/NNN_name.sql``).
SCHEMA = {
    "sqlite": {
        "001_conformance.sql": (
            "-- the suite's own tables: a text/binary/integer table with a unique name, and counters\n"
            "CREATE TABLE IF NOT EXISTS conf_items (\n"
            "    id INTEGER PRIMARY KEY AUTOINCREMENT,\n"
            "    name TEXT NOT NULL UNIQUE,\n"
            "    body TEXT,\n"
            "    data BLOB,\n"
            "    big BIGINT,\n"
            "    at TEXT\n"
            ");\n"
            "CREATE TABLE IF NOT EXISTS conf_counters (\n"
            "    name TEXT PRIMARY KEY,\n"
            "    n BIGINT NOT NULL DEFAULT 0,\n"
            "    version INTEGER NOT NULL DEFAULT 0\n"
            ")\n"
        ),
        "002_conformance_index.sql": "CREATE INDEX IF NOT EXISTS conf_items_big ON conf_items (big)\n",
    },
    "postgres": {
        "001_conformance.sql": (
            "-- the suite's own tables: a text/binary/integer table with a unique name, and counters\n"
            "CREATE TABLE IF NOT EXISTS conf_items (\n"
            "    id BIGSERIAL PRIMARY KEY,\n"
            "    name TEXT NOT NULL UNIQUE,\n"
            "    body TEXT,\n"
            "    data BYTEA,\n"
            "    big BIGINT,\n"
            "    at TEXT\n"
            ");\n"
            "CREATE TABLE IF NOT EXISTS conf_counters (\n"
            "    name TEXT PRIMARY KEY,\n"
            "    n BIGINT NOT NULL DEFAULT 0,\n"
            "    version INTEGER NOT NULL DEFAULT 0\n"
            ")\n"
        ),
        "002_conformance_index.sql": "CREATE INDEX IF NOT EXISTS conf_items_big ON conf_items (big)\n",
    },
}


def write_migrations(folder: Path, files: dict[str, dict[str, str]] | None = None) -> Path:
    """A plugin's migrations folder (``<dialect>/NNN_name.sql``) holding ``files`` (default: :data:`SCHEMA`)."""
    for dialect, scripts in (files or SCHEMA).items():
        (folder / dialect).mkdir(parents=True, exist_ok=True)
        for name, text in scripts.items():
            (folder / dialect / name).write_text(text, encoding="utf-8")
    return folder


def _stamp(i: int) -> str:
    """The i-th microsecond after a fixed instant, in the form flora stores (``repo.utcnow``)."""
    return (dt.datetime(2024, 2, 29, 23, 59, 59, tzinfo=dt.UTC) + dt.timedelta(microseconds=i)).isoformat(timespec="microseconds")


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="session")
def storage_plugins() -> Plugins:
    return Plugins()


@pytest.fixture
def storage_full_env(storage_env, tmp_path) -> dict[str, str]:
    """``storage_env`` with a data folder of the test's own when it names none."""
    return {"FLORA_DATA_DIR": str(tmp_path / "data"), **storage_env}


@pytest.fixture
def storage_config(storage_full_env):
    return load_config(env=storage_full_env)


@pytest.fixture
def conformance_migrations(tmp_path) -> Path:
    return write_migrations(tmp_path / "conformance-migrations")


@pytest.fixture
def fresh_db(storage_config, storage_plugins) -> Iterator[Database]:
    """The backend's ``Database`` for ``DATABASE_URL``, as the hook returns it: not migrated yet."""
    db = storage_plugins.storage_backend(storage_config.db_url, storage_config)
    assert db is not None, f"no installed storage backend serves {storage_config.db_url!r} (flora_storage_backend)"
    assert isinstance(db, Database)
    yield db
    db.close()


@pytest.fixture
def storage_open(storage_config, storage_plugins, conformance_migrations) -> Iterator[Callable[[], Database]]:
    """``storage_open()`` -> another ``Database`` on the same URL (its own connections, like another
    process), migrated with flora's, the plugins' and the suite's migrations; closed afterwards."""
    opened: list[Database] = []

    def open_() -> Database:
        db = open_database(storage_config, storage_plugins)
        opened.append(db)
        db.migrate([(PLUGIN, conformance_migrations)])
        return db

    yield open_
    for db in opened:
        db.close()


@pytest.fixture
def storage_db(storage_open) -> Database:
    """The database as every flora process opens it, with the suite's tables too."""
    return storage_open()


def threads(n: int, target: Callable[[int], object], timeout: float = 60) -> list:
    """Run ``target(i)`` in ``n`` threads released together; their results, or the first exception raised."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout)
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout)
    assert not any(w.is_alive() for w in workers), f"threads still running after {timeout}s"
    if errors:
        raise errors[0]
    return results


def versions(db: Database) -> dict[str, str]:
    return {r["version"]: r["applied_at"] for r in db.fetchall("SELECT version, applied_at FROM schema_migrations")}


def shipped_versions(dialect: str, plugin_migrations) -> set[str]:
    core = {
        p.name for p in resources.files("flora_core.storage").joinpath("migrations", dialect).iterdir() if p.name.endswith(".sql")
    }
    plugins = {
        f"{owner}/{p.name}"
        for owner, folder in plugin_migrations
        for p in folder.joinpath(dialect).iterdir()
        if p.name.endswith(".sql")
    }
    return core | plugins


def table_exists(db: Database, table: str) -> bool:
    """Whether ``table`` can be queried (an error otherwise, which must leave ``db`` usable)."""
    try:
        db.fetchone(f"SELECT COUNT(*) AS n FROM {table}")
    except StorageError:
        raise
    except Exception:  # noqa: BLE001 - whatever the driver raises for a missing table
        return False
    return True


def item(db: Database, name: str) -> dict | None:
    return db.fetchone("SELECT name, body, data, big, at FROM conf_items WHERE name = ?", (name,))


def add_item(db: Database, name: str, body=None, data=None, big=None, at=None) -> int:
    return db.execute("INSERT INTO conf_items (name, body, data, big, at) VALUES (?, ?, ?, ?, ?)", (name, body, data, big, at))


# -- migrations --------------------------------------------------------------------------
def test_migrations_apply_to_an_empty_database_and_record_each_version(fresh_db, storage_plugins):
    assert fresh_db.dialect in ("sqlite", "postgres"), "the dialect picks the migrations: sqlite or postgres"
    assert not table_exists(fresh_db, "schema_migrations"), "storage_env must name an empty database"
    plugin_migrations = storage_plugins.migrations()
    fresh_db.migrate(plugin_migrations)
    recorded = versions(fresh_db)
    assert set(recorded) == shipped_versions(fresh_db.dialect, plugin_migrations)
    assert {"001_init.sql", "kv/001_kv_stores.sql"} <= set(recorded)
    for applied_at in recorded.values():
        assert isinstance(applied_at, str) and dt.datetime.fromisoformat(applied_at).tzinfo is not None
    # every core table is there and empty
    assert repo.list_deployments(fresh_db) == [] and repo.list_tokens(fresh_db) == []
    assert repo.recent_logs(fresh_db, GUILD) == [] and repo.last_log_id(fresh_db) == 0
    assert repo.get_session(fresh_db, "nope") is None and repo.consume_oauth_state(fresh_db, "nope") is False
    assert repo.count_revisions_by_status(fresh_db) == {}


def test_a_second_migration_run_changes_nothing(fresh_db, storage_plugins, storage_config):
    plugin_migrations = storage_plugins.migrations()
    fresh_db.migrate(plugin_migrations)
    before = versions(fresh_db)
    fresh_db.migrate(plugin_migrations)
    reopened = open_database(storage_config, storage_plugins)  # what every later process does
    try:
        assert versions(reopened) == before
    finally:
        reopened.close()
    assert versions(fresh_db) == before


def test_plugin_migrations_apply_in_name_order_once_each_and_later_ones_too(fresh_db, tmp_path):
    folder = tmp_path / "acme"
    steps = {
        d: {
            "002_b.sql": "INSERT INTO acme_steps (step) VALUES ('002')",
            "001_a.sql": "-- a comment, without semicolons\nCREATE TABLE acme_steps (step TEXT NOT NULL);\n"
            "INSERT INTO acme_steps (step) VALUES ('001')",
            "README.txt": "not a migration",
        }
        for d in ("sqlite", "postgres")
    }
    write_migrations(folder, steps)
    fresh_db.migrate([("acme", folder)])
    fresh_db.migrate([("acme", folder)])
    assert [r["step"] for r in fresh_db.fetchall("SELECT step FROM acme_steps ORDER BY step")] == ["001", "002"]
    assert {"acme/001_a.sql", "acme/002_b.sql"} <= set(versions(fresh_db))
    assert "acme/README.txt" not in versions(fresh_db)

    write_migrations(folder, {d: {"010_c.sql": "INSERT INTO acme_steps (step) VALUES ('010')"} for d in ("sqlite", "postgres")})
    fresh_db.migrate([("acme", folder)])  # a plugin's next release: only the new one runs
    assert [r["step"] for r in fresh_db.fetchall("SELECT step FROM acme_steps ORDER BY step")] == ["001", "002", "010"]


def test_a_failing_migration_is_a_storage_error_and_leaves_nothing_behind(fresh_db, tmp_path):
    """A migration is one transaction: a statement that fails undoes the ones before it (DDL too), so
    the next start runs it again from the beginning instead of failing on a half-made schema."""
    folder = write_migrations(
        tmp_path / "acme",
        {
            d: {
                "001_ok.sql": "CREATE TABLE acme_ok (x INTEGER)",
                "002_broken.sql": "CREATE TABLE acme_half (x INTEGER);\nINSERT INTO acme_ok (x) VALUES (2);\nCREATE TABLE acme_broken (",
            }
            for d in ("sqlite", "postgres")
        },
    )
    with pytest.raises(StorageError) as info:
        fresh_db.migrate([("acme", folder)])
    assert str(info.value).startswith("migration acme/002_broken.sql failed: ")
    assert "acme/001_ok.sql" in versions(fresh_db) and "acme/002_broken.sql" not in versions(fresh_db)
    assert not table_exists(fresh_db, "acme_half"), "the failed migration's first statement was kept"
    assert fresh_db.fetchall("SELECT x FROM acme_ok") == []

    write_migrations(
        folder,
        {
            d: {"002_broken.sql": "CREATE TABLE acme_half (x INTEGER);\nINSERT INTO acme_ok (x) VALUES (2)"}
            for d in ("sqlite", "postgres")
        },
    )
    fresh_db.migrate([("acme", folder)])  # fixed: it applies from the start
    assert fresh_db.fetchall("SELECT x FROM acme_ok") == [{"x": 2}] and table_exists(fresh_db, "acme_half")


def test_a_plugin_without_migrations_for_the_dialect_is_a_storage_error(fresh_db, tmp_path):
    folder = write_migrations(tmp_path / "acme", {"mysql": {"001_a.sql": "CREATE TABLE acme_a (x INTEGER)"}})
    with pytest.raises(StorageError, match=f"^plugin acme has no migrations for {fresh_db.dialect}$"):
        fresh_db.migrate([("acme", folder)])


def test_several_openers_migrate_an_empty_database_at_once(storage_config, storage_plugins, conformance_migrations):
    """Every process migrates at start (``flora api -w 4`` next to ``flora serve`` on a new database)."""
    dbs = [storage_plugins.storage_backend(storage_config.db_url, storage_config) for _ in range(4)]
    try:
        migrations = [*storage_plugins.migrations(), (PLUGIN, conformance_migrations)]
        threads(len(dbs), lambda i: dbs[i].migrate(migrations))
        recorded = [versions(db) for db in dbs]
        assert all(r == recorded[0] for r in recorded)
        assert set(recorded[0]) == shipped_versions(dbs[0].dialect, migrations)
        assert add_item(dbs[1], "after") == 1 and item(dbs[2], "after")["name"] == "after"
    finally:
        for db in dbs:
            db.close()


# -- deployments and revisions --------------------------------------------------------------
def test_a_successful_revision_becomes_the_deployment_and_a_failed_one_does_not(storage_db, monkeypatch):
    stamps = iter(range(100))
    monkeypatch.setattr(repo, "utcnow", lambda: _stamp(next(stamps)))
    failed = repo.record_revision(storage_db, GUILD, entry="src/main.ts", status="failed", bundle="x()", error_message="boom")
    assert repo.get_deployment(storage_db, GUILD) is None and repo.latest_success(storage_db, GUILD) is None
    assert failed["status"] == "failed" and failed["error_message"] == "boom"

    first = repo.record_revision(
        storage_db,
        GUILD,
        entry="src/main.ts",
        status="success",
        bundle="a()",
        deploy_source="cli",
        actor_type="token",
        bundler_version=repo.TRUSTED_BUNDLER_VERSION,
    )
    dep = repo.get_deployment(storage_db, GUILD)
    assert dep == {
        "guild_id": GUILD,
        "entry": "src/main.ts",
        "revision_id": first["id"],
        "created_at": first["deployed_at"],
        "updated_at": first["deployed_at"],
    }
    second = repo.record_revision(
        storage_db,
        GUILD,
        entry="src/other.ts",
        status="success",
        bundle="b()",
        base_revision_id=first["id"],
        bundler_version=repo.TRUSTED_BUNDLER_VERSION,
    )
    repo.record_revision(storage_db, GUILD, entry="src/main.ts", status="failed", bundle="c()", error_message="later")
    dep = repo.get_deployment(storage_db, GUILD)
    assert (dep["revision_id"], dep["entry"], dep["created_at"], dep["updated_at"]) == (
        second["id"],
        "src/other.ts",
        first["deployed_at"],
        second["deployed_at"],
    )
    assert repo.latest_success(storage_db, GUILD)["id"] == second["id"]
    assert repo.get_revision(storage_db, GUILD, second["id"])["base_revision_id"] == first["id"]
    assert repo.get_revision(storage_db, OTHER, second["id"]) is None  # a revision belongs to its guild
    assert repo.current_bundle(storage_db, GUILD) == "b()" and repo.current_bundle(storage_db, OTHER) is None

    repo.record_revision(
        storage_db, OTHER, entry="src/main.ts", status="success", bundle="o()", bundler_version=repo.TRUSTED_BUNDLER_VERSION
    )
    repo.record_revision(
        storage_db, "9", entry="src/main.ts", status="success", bundle="n()", bundler_version=repo.TRUSTED_BUNDLER_VERSION
    )
    assert [d["guild_id"] for d in repo.list_deployments(storage_db)] == sorted([GUILD, OTHER, "9"])
    assert set(repo.list_deployments(storage_db)[0]) == {"guild_id", "entry", "created_at", "updated_at"}
    assert repo.current_bundles(storage_db) == {GUILD: "b()", OTHER: "o()", "9": "n()"}
    assert repo.count_revisions_by_status(storage_db) == {"success": 4, "failed": 2}


def test_revision_fields_round_trip_with_nulls_json_unicode_and_large_values(storage_db):
    bundle = ("const s = 'héllo wörld 😀 中文 עברית';\n" * 120_000)[: 4 * 1024 * 1024]  # about 4 MiB of text
    files = [
        {"path": "src/main.ts", "contents": "console.log('✨');\n" * 50_000},
        {"path": "src/é.ts", "contents": "\x00\t\r\n'\"\\"},
    ]
    summary = {"added_files": ["src/é.ts"], "removed_files": [], "modified_files": ["src/main.ts"]}
    source_map = {"version": 3, "sources": ["src/main.ts"], "mappings": "AAAA;" * 10_000}
    rev = repo.record_revision(
        storage_db,
        GUILD,
        entry="src/main.ts",
        status="success",
        bundle=bundle,
        deploy_source="webui",
        actor_type="user",
        actor_user_id="42",
        actor_username="zoë 🌸",
        files=files,
        source_map=source_map,
        change_summary=summary,
        bundler_version=repo.TRUSTED_BUNDLER_VERSION,
    )
    got = repo.get_revision(storage_db, GUILD, rev["id"])
    assert got == rev
    assert got["bundle"] == bundle and got["files"] == files and got["source_map"] == source_map
    assert got["change_summary"] == summary and got["actor_username"] == "zoë 🌸" and got["bundler_version"] == 2
    assert (got["error_message"], got["base_revision_id"]) == (None, None)
    assert repo.current_bundle(storage_db, GUILD) == bundle

    bare = repo.record_revision(storage_db, GUILD, entry="src/main.ts", status="failed", bundle=None)
    got = repo.get_revision(storage_db, GUILD, bare["id"])
    for key in (
        "bundle",
        "files",
        "source_map",
        "change_summary",
        "actor_user_id",
        "actor_username",
        "error_message",
        "bundler_version",
    ):
        assert got[key] is None, key


def test_timestamps_come_back_as_the_text_that_was_stored(storage_db):
    """The API pages history with the ``deployed_at`` it served, normalised to the stored form
    (``flora_http.revisions``), and compares it as text: it must come back exactly as written."""
    rev = repo.record_revision(storage_db, GUILD, entry="src/main.ts", status="success", bundle="a()")
    repo.create_token(storage_db)
    for value in (
        rev["deployed_at"],
        repo.get_deployment(storage_db, GUILD)["created_at"],
        repo.list_tokens(storage_db)[0]["created_at"],
    ):
        assert isinstance(value, str)
        parsed = dt.datetime.fromisoformat(value)
        assert parsed.utcoffset() == dt.timedelta(0) and parsed.astimezone(dt.UTC).isoformat(timespec="microseconds") == value
    assert repo.get_revision(storage_db, GUILD, rev["id"])["deployed_at"] == rev["deployed_at"]
    for at in ("2024-02-29T23:59:59.999999Z", "2024-02-29T23:59:59.999999+00:00", "1970-01-01T00:00:00.000000+00:00"):
        add_item(storage_db, at, at=at)
        assert item(storage_db, at)["at"] == at


def test_history_is_newest_first_and_keyset_pages_cover_every_revision_once(storage_db, monkeypatch):
    # several revisions share a timestamp (one microsecond is not unique under load): the id breaks the tie
    stamps = iter([_stamp(i // 3) for i in range(30)])
    monkeypatch.setattr(repo, "utcnow", lambda: next(stamps))
    made = [
        repo.record_revision(
            storage_db,
            GUILD if i % 5 else OTHER,
            entry="src/main.ts",
            status="failed" if i % 4 == 0 else "success",
            bundle=f"b{i}",
        )
        for i in range(30)
    ]
    mine = sorted((r for r in made if r["guild_id"] == GUILD), key=lambda r: (r["deployed_at"], r["id"]), reverse=True)
    seen: list[dict] = []
    cursor = None
    while True:
        page = repo.revision_history(storage_db, GUILD, 5, cursor)
        seen += page
        if len(page) < 5:
            break
        cursor = (page[-1]["deployed_at"], page[-1]["id"])
    assert [r["id"] for r in seen] == [r["id"] for r in mine]
    assert repo.revision_history(storage_db, GUILD, 100) == seen
    best = max(
        (r for r in made if r["guild_id"] == GUILD and r["status"] == "success"), key=lambda r: (r["deployed_at"], r["id"])
    )
    assert repo.latest_success(storage_db, GUILD)["id"] == best["id"]


def test_revisions_from_an_older_bundler_are_told_apart_by_null(storage_db):
    old = repo.record_revision(
        storage_db,
        GUILD,
        entry="src/main.ts",
        status="success",
        bundle="old()",
        files=[{"path": "src/main.ts", "contents": "x"}],
        bundler_version=None,
    )
    repo.record_revision(
        storage_db, OTHER, entry="src/main.ts", status="success", bundle="new()", bundler_version=repo.TRUSTED_BUNDLER_VERSION
    )
    assert repo.current_bundles(storage_db) == {OTHER: "new()"}
    assert [r["id"] for r in repo.legacy_current_revisions(storage_db)] == [old["id"]]
    assert repo.verified_bundle(storage_db, old, lambda entry, files: "rebuilt()", 3) == "rebuilt()"
    assert repo.current_bundles(storage_db) == {GUILD: "rebuilt()", OTHER: "new()"}
    assert repo.legacy_current_revisions(storage_db) == []


# -- tokens, sessions, OAuth state ---------------------------------------------------------------
def test_tokens_sessions_and_oauth_states(storage_db, monkeypatch):
    stamps = iter(range(100))
    monkeypatch.setattr(repo, "utcnow", lambda: _stamp(next(stamps)))
    ops, _ = repo.create_token(storage_db, label="ops")
    mine, row = repo.create_token(storage_db, label="mïne", user_id="42")
    assert row["last_used_at"] is None
    assert [t["label"] for t in repo.list_tokens(storage_db)] == ["mïne", "ops"]  # newest first
    assert repo.verify_token(storage_db, mine)["user_id"] == "42"
    assert repo.list_tokens(storage_db)[0]["last_used_at"] is not None
    assert [t["token_id"] for t in repo.list_user_tokens(storage_db, "42")] == [row["token_id"]]
    assert repo.revoke_user_token(storage_db, row["token_id"], "43") is False
    assert repo.revoke_user_token(storage_db, row["token_id"], "42") is True
    assert repo.verify_token(storage_db, mine) is None and repo.verify_token(storage_db, ops)["label"] == "ops"

    far = 2**40  # seconds: beyond 32 bits
    repo.create_session(storage_db, "sid", {"id": 42, "username": "zoë"}, "at", None, far, far + 1)
    session = repo.get_session(storage_db, "sid")
    assert (session["user_id"], session["username"], session["global_name"], session["refresh_token"]) == (
        "42",
        "zoë",
        None,
        None,
    )
    assert (session["expires_at"], session["session_expires_at"]) == (far, far + 1)
    assert type(session["expires_at"]) is int
    repo.update_session_tokens(storage_db, "sid", "at2", "rt2", far + 2, far + 3)
    assert repo.get_session(storage_db, "sid")["refresh_token"] == "rt2"
    repo.delete_session(storage_db, "sid")
    assert repo.get_session(storage_db, "sid") is None

    repo.create_oauth_state(storage_db, "state-1")
    repo.create_oauth_state(storage_db, "expired", ttl=-1)
    assert repo.consume_oauth_state(storage_db, "state-1") is True
    assert repo.consume_oauth_state(storage_db, "state-1") is False  # single use
    assert repo.consume_oauth_state(storage_db, "expired") is False


# -- guild logs --------------------------------------------------------------------------------
def test_logs_keep_their_order_types_and_the_newest_lines_per_guild(storage_db):
    start = repo.last_log_id(storage_db)
    repo.append_logs(
        storage_db,
        [
            {"guild_id": GUILD, "timestamp": MS + i, "level": "info", "target": "flora:js", "message": f"line {i} ✨"}
            for i in range(30)
        ],
        keep=20,
    )
    repo.append_logs(
        storage_db,
        [
            {
                "guild_id": OTHER,
                "timestamp": MS,
                "level": "error",
                "target": "flora:runtime",
                "message": "dispatch failed: after 3.0 s; isolate restarted",
            },
            {
                "guild_id": OTHER,
                "timestamp": MS,
                "level": "info",
                "target": "flora:runtime",
                "message": "isolate restarted after a dispatch timeout",
            },
            {"guild_id": None, "timestamp": MS, "level": "info", "target": "flora:runtime", "message": "a line of no guild"},
        ],
        keep=20,
    )
    recent = repo.recent_logs(storage_db, GUILD, limit=5)
    assert [e["message"] for e in recent] == [f"line {i} ✨" for i in range(25, 30)]  # the newest, oldest first
    assert recent[0] == {"timestamp": MS + 25, "level": "info", "target": "flora:js", "guild_id": GUILD, "message": "line 25 ✨"}
    assert type(recent[0]["timestamp"]) is int
    assert len(repo.recent_logs(storage_db, GUILD, limit=100)) == 20  # trimmed to `keep`, per guild
    assert [e["message"] for e in repo.recent_logs(storage_db, OTHER)][0].startswith("dispatch failed")

    seen, after = [], start
    while page := repo.logs_after(storage_db, GUILD, after, limit=7):  # how the log stream follows
        assert all(type(e["id"]) is int and e["id"] > after for e in page)
        seen += page
        after = page[-1]["id"]
    assert [e["message"] for e in seen] == [f"line {i} ✨" for i in range(10, 30)]
    assert [e["id"] for e in seen] == sorted(e["id"] for e in seen)
    assert repo.last_log_id(storage_db) >= seen[-1]["id"]
    assert repo.count_runtime_logs(
        storage_db,
        {
            "d": "dispatch failed: %",
            "t": "dispatch failed: %; isolate restarted",
            "r": "isolate restarted after %",
            "none": "nothing%",
        },
    ) == {"d": 1, "t": 1, "r": 1, "none": 0}


def test_tenant_text_a_database_cannot_hold_is_stored_readably(storage_db):
    """A script's ``console.log("\\0")`` or a lone surrogate (JSON.stringify of ``"\\ud800"``) must not
    drop the batch it is written in, which holds other guilds' lines too; both become U+FFFD."""
    surrogate = json.loads('"lone \\ud800 surrogate"')
    repo.append_logs(
        storage_db,
        [
            {"guild_id": GUILD, "timestamp": MS, "level": "info", "target": "flora:js", "message": "nul \x00 byte"},
            {"guild_id": GUILD, "timestamp": MS, "level": "info", "target": "flora:js", "message": surrogate},
            {"guild_id": OTHER, "timestamp": MS, "level": "info", "target": "flora:js", "message": "another guild's line"},
        ],
    )
    assert [e["message"] for e in repo.recent_logs(storage_db, GUILD)] == ["nul \ufffd byte", "lone \ufffd surrogate"]
    assert [e["message"] for e in repo.recent_logs(storage_db, OTHER)] == ["another guild's line"]
    rev = repo.record_revision(
        storage_db, GUILD, entry="src/main.ts", status="failed", bundle="x", error_message="Error: \x00 and " + surrogate
    )
    assert repo.get_revision(storage_db, GUILD, rev["id"])["error_message"] == "Error: \ufffd and lone \ufffd surrogate"


# -- values and SQL ------------------------------------------------------------------------------
UNICODE = [
    "",
    " ",
    "héllo wörld",
    "中文字符",
    "emoji 😀👍🏽",
    "עברית",
    "e\u0301",
    "\u00e9",
    "Name",
    "name",
    "tab\tnew\nline\r\n",
    "quote ' and \" and \\ backslash",
    "%s %% ? ?? $1 :name %(x)s",
    "\u2028\u2029",
    "\U0010ffff",
    "é" * 1000,
]


def test_text_round_trips_exactly_and_equality_is_exact(storage_db):
    for i, text in enumerate(UNICODE):
        add_item(storage_db, text, body=text, big=i)
    for i, text in enumerate(UNICODE):  # composed and decomposed é, Name and name: distinct keys
        row = item(storage_db, text)
        assert row is not None and (row["name"], row["body"], row["big"]) == (text, text, i), repr(text[:20])
    assert storage_db.fetchone("SELECT COUNT(*) AS n FROM conf_items")["n"] == len(UNICODE)


def test_binary_values_round_trip_as_bytes(storage_db):
    blobs = [b"", b"\x00", bytes(range(256)), os.urandom(1024 * 1024)]
    for i, blob in enumerate(blobs):
        add_item(storage_db, f"blob {i}", data=blob)
    for i, blob in enumerate(blobs):
        got = item(storage_db, f"blob {i}")["data"]
        assert type(got) is bytes and got == blob


def test_nulls_and_integers(storage_db):
    add_item(storage_db, "empty")
    assert item(storage_db, "empty") == {"name": "empty", "body": None, "data": None, "big": None, "at": None}
    assert storage_db.fetchone("SELECT name FROM conf_items WHERE body IS NULL")["name"] == "empty"
    assert storage_db.fetchone("SELECT name FROM conf_items WHERE body = ?", (None,)) is None  # NULL equals nothing
    for value in (0, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63)):
        add_item(storage_db, f"int {value}", big=value)
        got = item(storage_db, f"int {value}")["big"]
        assert type(got) is int and got == value
    row = storage_db.fetchone("SELECT COUNT(*) AS n, COUNT(body) AS with_body, MAX(big) AS top FROM conf_items")
    assert row == {"n": 7, "with_body": 0, "top": 2**63 - 1}


def test_placeholders_are_question_marks_and_percent_signs_are_plain_text(storage_db):
    add_item(storage_db, "100%", body="?")
    add_item(storage_db, "pct%s", body="%")
    assert storage_db.fetchone("SELECT ? AS a, ? AS b", ("x", 2)) == {"a": "x", "b": 2}
    assert storage_db.fetchall("SELECT name FROM conf_items WHERE name LIKE '100%' ORDER BY name") == [{"name": "100%"}]
    assert storage_db.fetchall("SELECT name FROM conf_items WHERE name LIKE 'pct%' AND body = ?", ("%",)) == [{"name": "pct%s"}]
    assert storage_db.fetchall("SELECT name FROM conf_items WHERE name LIKE ? ORDER BY name", ("%0%",)) == [{"name": "100%"}]
    assert storage_db.fetchone("SELECT body FROM conf_items WHERE name = ?", ("100%",)) == {"body": "?"}


def test_rowcount_counts_the_rows_matched(storage_db):
    """flora decides with rowcounts: a single-use state, a revoked token, a created store, a cron step."""
    assert add_item(storage_db, "a", body="same") == 1
    assert storage_db.execute("UPDATE conf_items SET body = ? WHERE name = ?", ("same", "a")) == 1  # matched, not changed
    assert storage_db.execute("UPDATE conf_items SET body = ? WHERE name = ?", ("x", "missing")) == 0
    insert = "INSERT INTO conf_items (name, body) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"
    assert storage_db.execute(insert, ("a", "again")) == 0 and storage_db.execute(insert, ("b", "new")) == 1
    upsert = "INSERT INTO conf_items (name, body) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET body = excluded.body"
    assert storage_db.execute(upsert, ("a", "replaced")) == 1
    assert item(storage_db, "a")["body"] == "replaced"
    assert storage_db.execute("DELETE FROM conf_items WHERE name IN (?, ?)", ("a", "b")) == 2
    assert storage_db.execute("DELETE FROM conf_items WHERE name = ?", ("a",)) == 0


# -- transactions ------------------------------------------------------------------------------
def test_a_transaction_commits_together_and_is_invisible_until_then(storage_db):
    with storage_db.transaction() as cur:
        cur.execute("INSERT INTO conf_items (name) VALUES (?)", ("one",))
        cur.execute("INSERT INTO conf_items (name) VALUES (?)", ("two",))
        cur.execute("SELECT COUNT(*) AS n FROM conf_items")
        assert cur.fetchone() == {"n": 2}  # the transaction sees its own writes
        elsewhere = threads(1, lambda i: storage_db.fetchall("SELECT name FROM conf_items"))[0]
        assert elsewhere == [], "another connection saw writes before the commit"
    assert [r["name"] for r in storage_db.fetchall("SELECT name FROM conf_items ORDER BY name")] == ["one", "two"]


class Interrupt(BaseException):
    """Not an ``Exception``: like gevent's ``Timeout`` ending an API request, or KeyboardInterrupt."""


@pytest.mark.parametrize("raised", [ValueError("boom"), Interrupt()], ids=["Exception", "BaseException"])
def test_an_exception_rolls_back_the_whole_transaction_and_propagates(storage_db, raised):
    add_item(storage_db, "kept", body="before")
    with pytest.raises(type(raised)) as info, storage_db.transaction() as cur:
        cur.execute("INSERT INTO conf_items (name) VALUES (?)", ("new",))
        cur.execute("UPDATE conf_items SET body = ? WHERE name = ?", ("after", "kept"))
        raise raised
    assert info.value is raised
    assert item(storage_db, "new") is None and item(storage_db, "kept")["body"] == "before"
    assert add_item(storage_db, "new") == 1  # and the database goes on


def test_a_unique_violation_raises_and_rolls_back_the_transaction(storage_db):
    """flora's expected conflicts use ``ON CONFLICT``; any other violation must raise an ``Exception``
    (the API answers 500 and restores the runtime, the log writer reports it) and change nothing."""
    add_item(storage_db, "taken")
    # which class is the driver's; flora catches Exception
    with pytest.raises(Exception) as info, storage_db.transaction() as cur:  # noqa: B017
        cur.execute("INSERT INTO conf_items (name) VALUES (?)", ("fresh",))
        cur.execute("INSERT INTO conf_items (name) VALUES (?)", ("taken",))
    assert not isinstance(info.value, StorageError), "a constraint violation is not a storage failure"
    assert item(storage_db, "fresh") is None
    token, row = repo.create_token(storage_db, label="t")
    with pytest.raises(Exception):  # noqa: B017
        storage_db.execute(
            "INSERT INTO api_tokens (token_id, token_hash, created_at) VALUES (?, ?, ?)",
            (row["token_id"], "other", row["created_at"]),
        )
    assert repo.verify_token(storage_db, token)["label"] == "t"


def test_errors_leave_the_database_usable_and_release_their_connections(storage_db):
    for _ in range(12):  # more than any connection pool flora configures by default
        with pytest.raises(Exception):  # noqa: B017
            storage_db.fetchone("SELECT nothing FROM no_such_table")
        with pytest.raises(Exception), storage_db.transaction() as cur:  # noqa: B017
            cur.execute("INSERT INTO conf_items (name) VALUES (?)", ("in a failed transaction",))
            cur.execute("SELECT nothing FROM no_such_table")
    assert storage_db.fetchone("SELECT 1 AS one") == {"one": 1}
    assert item(storage_db, "in a failed transaction") is None


# -- concurrency -------------------------------------------------------------------------------
def test_writers_in_many_threads_lose_no_update(storage_db, storage_open):
    """Two ``Database`` objects (two processes' worth of connections), each shared by 8 threads, more
    than a connection pool holds: a caller waits for a connection, it does not fail."""
    dbs = [storage_db, storage_open()]
    storage_db.execute("INSERT INTO conf_counters (name, n) VALUES (?, ?)", ("hits", 0))
    upsert = "INSERT INTO conf_counters (name, n) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET n = conf_counters.n + 1"

    def work(i: int) -> None:
        db = dbs[i % 2]
        for _ in range(20):
            with db.transaction() as cur:
                cur.execute("SELECT n FROM conf_counters WHERE name = ?", ("hits",))
                cur.fetchone()
                cur.execute("UPDATE conf_counters SET n = n + 1 WHERE name = ?", ("hits",))
            db.execute(upsert, ("upserts",))

    threads(16, work)
    assert storage_db.fetchone("SELECT n FROM conf_counters WHERE name = ?", ("hits",)) == {"n": 320}
    assert storage_db.fetchone("SELECT n FROM conf_counters WHERE name = ?", ("upserts",)) == {"n": 320}


def test_a_conditional_write_has_exactly_one_winner(storage_db, storage_open):
    """How cron advances a job (``WHERE next_run = ?``), how a KV store is created (``ON CONFLICT DO
    NOTHING``) and how an OAuth state is used once: under a race, one rowcount of 1."""
    dbs = [storage_db, storage_open()]
    for round_ in range(3):
        name = f"job {round_}"
        storage_db.execute("INSERT INTO conf_counters (name, n, version) VALUES (?, 0, 0)", (name,))
        won = threads(
            8,
            lambda i, name=name: dbs[i % 2].execute(
                "UPDATE conf_counters SET n = ?, version = version + 1 WHERE name = ? AND version = 0", (i, name)
            ),
        )
        assert sorted(won) == [0] * 7 + [1]
        assert storage_db.fetchone("SELECT n, version FROM conf_counters WHERE name = ?", (name,)) == {
            "n": won.index(1),
            "version": 1,
        }

        created = threads(
            8,
            lambda i, round_=round_: dbs[i % 2].execute(
                "INSERT INTO conf_items (name, big) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (f"store {round_}", i)
            ),
        )
        assert sorted(created) == [0] * 7 + [1] and item(storage_db, f"store {round_}")["big"] == created.index(1)

        repo.create_oauth_state(storage_db, f"state {round_}")
        used = threads(8, lambda i, round_=round_: repo.consume_oauth_state(dbs[i % 2], f"state {round_}"))
        assert sorted(used) == [False] * 7 + [True]


def test_first_deploys_of_one_guild_at_once_all_succeed(storage_db, storage_open):
    """Two API workers deploying a guild that has no deployment yet: both revisions are recorded and
    the deployment is one of them (no error from the second insert of the deployment row)."""
    dbs = [storage_db, storage_open()]
    for round_ in range(3):
        guild = f"{round_}00000000000000000"
        revs = threads(
            6,
            lambda i, guild=guild: repo.record_revision(
                dbs[i % 2],
                guild,
                entry="src/main.ts",
                status="success",
                bundle=f"b{i}",
                bundler_version=repo.TRUSTED_BUNDLER_VERSION,
            ),
        )
        dep = repo.get_deployment(storage_db, guild)
        assert dep["revision_id"] in {r["id"] for r in revs}
        assert len(repo.revision_history(storage_db, guild, 100)) == 6
        assert [d["guild_id"] for d in repo.list_deployments(storage_db)].count(guild) == 1


CHILD = r"""
import json, sys
from pathlib import Path
from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import open_database, repo

env, folder, guild, rounds = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
config, plugins = load_config(env=env), Plugins()
print("ready", flush=True)
sys.stdin.readline()
db = open_database(config, plugins)  # every process migrates at start, these at the same time
db.migrate([("conformance", folder)])
for i in range(rounds):
    db.execute("INSERT INTO conf_counters (name, n) VALUES (?, 1) ON CONFLICT (name) DO UPDATE SET n = conf_counters.n + 1",
               ("hits",))
    repo.record_revision(db, guild, entry="src/main.ts", status="success", bundle=f"{sys.argv[5]} {i}")
db.close()
print("done", flush=True)
"""


def test_processes_migrate_and_write_at_once(storage_full_env, storage_config, storage_plugins, conformance_migrations):
    """Processes started together on an empty database (``flora serve`` and ``flora api``): each
    migrates, then they write the same rows; nothing fails and nothing is lost."""
    rounds = 15
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                json.dumps(storage_full_env),
                str(conformance_migrations),
                GUILD,
                str(rounds),
                f"child{n}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready", child.communicate(timeout=60)[1]
        for child in children:  # go together
            child.stdin.write("\n")
            child.stdin.flush()
        results = [child.communicate(timeout=120) for child in children]
        for child, (out, err) in zip(children, results, strict=True):
            assert child.returncode == 0 and out.strip() == "done", err
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(10)
    db = open_database(storage_config, storage_plugins)
    try:
        assert set(versions(db)) == shipped_versions(
            db.dialect, [*storage_plugins.migrations(), (PLUGIN, conformance_migrations)]
        )
        assert db.fetchone("SELECT n FROM conf_counters WHERE name = ?", ("hits",)) == {"n": 2 * rounds}
        revs = repo.revision_history(db, GUILD, 100)
        assert len(revs) == 2 * rounds and repo.get_deployment(db, GUILD)["revision_id"] in {r["id"] for r in revs}
    finally:
        db.close()


# -- closing -----------------------------------------------------------------------------------
def test_a_closed_database_raises_storage_error(storage_open):
    db = storage_open()
    add_item(db, "before")
    db.close()
    calls = [
        lambda: db.fetchone("SELECT 1 AS one"),
        lambda: db.fetchall("SELECT name FROM conf_items"),
        lambda: add_item(db, "after"),
        lambda: repo.list_deployments(db),
    ]
    for call in calls:
        with pytest.raises(StorageError, match="closed"):
            call()
    with pytest.raises(StorageError, match="closed"), db.transaction():
        pass
    with pytest.raises(StorageError, match="closed"):
        threads(1, lambda i: db.fetchone("SELECT 1 AS one"))  # from another thread too
    db.close()  # closing again is harmless
