"""The relational store behaves the same on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import pytest

from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import StorageError, open_database, repo


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'flora.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    config = load_config(env={"DATABASE_URL": url, "FLORA_DATA_DIR": str(tmp_path)})
    database = open_database(config, Plugins())
    yield database
    database.close()


def test_migrations_are_idempotent(db):
    plugin_migrations = Plugins().migrations()
    db.migrate(plugin_migrations)
    db.migrate(plugin_migrations)
    from importlib import resources

    shipped = sorted(
        p.name
        for p in resources.files("flora_core.storage").joinpath("migrations", db.dialect).iterdir()
        if p.name.endswith(".sql")
    )
    assert shipped[0] == "001_init.sql"
    plugins = sorted(f"{owner}/{p.name}" for owner, folder in plugin_migrations for p in folder.joinpath(db.dialect).iterdir())
    assert {"cron/001_cron_jobs.sql", "kv/001_kv_stores.sql", "secrets/001_guild_secrets.sql"} <= set(plugins)
    assert sorted(r["version"] for r in db.fetchall("SELECT version FROM schema_migrations")) == sorted(shipped + plugins)


def _tables(db) -> set[str]:
    if db.dialect == "sqlite":
        rows = db.fetchall("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = db.fetchall("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema()")
    return {r["name"] for r in rows}


PLUGIN_TABLES = {"kv_stores", "guild_secrets", "cron_jobs", "cron_loads"}


def test_a_disabled_plugins_tables_do_not_exist_until_it_is_enabled(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    config = load_config(env={"DATABASE_URL": url, "FLORA_DATA_DIR": str(tmp_path)})
    monkeypatch.setenv("FLORA_DISABLE_PLUGINS", "kv,secrets,cron")
    bare = open_database(config, Plugins())
    assert not _tables(bare) & PLUGIN_TABLES and "deployments" in _tables(bare)
    monkeypatch.delenv("FLORA_DISABLE_PLUGINS")
    enabled = open_database(config, Plugins())
    assert _tables(enabled) >= PLUGIN_TABLES


def test_a_database_made_by_the_earlier_layout_upgrades_without_losing_data(tmp_path):
    """Before, the core created kv/secrets/cron tables (migrations 002 and 003); the plugins' own
    migrations find them there and keep every row."""
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_at TEXT NOT NULL);"
        "INSERT INTO schema_migrations VALUES ('002_kv.sql', 'x'), ('003_secrets_cron.sql', 'x');"
        "CREATE TABLE kv_stores (id TEXT PRIMARY KEY, guild_id TEXT NOT NULL, store_name TEXT NOT NULL,"
        " created_at TEXT NOT NULL, updated_at TEXT NOT NULL, UNIQUE (guild_id, store_name));"
        "INSERT INTO kv_stores VALUES ('s1', '1', 'scores', 't', 't');"
        "CREATE TABLE guild_secrets (guild_id TEXT NOT NULL, name TEXT NOT NULL, nonce TEXT NOT NULL,"
        " ciphertext TEXT NOT NULL, allowed_hosts TEXT NOT NULL DEFAULT '[]', created_at TEXT NOT NULL,"
        " updated_at TEXT NOT NULL, PRIMARY KEY (guild_id, name));"
        "INSERT INTO guild_secrets VALUES ('1', 'TOKEN', 'n', 'c', '[]', 't', 't');"
    )
    conn.commit()
    conn.close()
    config = load_config(env={"DATABASE_URL": f"sqlite:///{path}", "FLORA_DATA_DIR": str(tmp_path)})
    db = open_database(config, Plugins())
    assert db.fetchall("SELECT store_name FROM kv_stores") == [{"store_name": "scores"}]
    assert db.fetchall("SELECT name FROM guild_secrets") == [{"name": "TOKEN"}]
    versions = {r["version"] for r in db.fetchall("SELECT version FROM schema_migrations")}
    assert {"kv/001_kv_stores.sql", "secrets/001_guild_secrets.sql", "cron/001_cron_jobs.sql"} <= versions


def test_success_revision_becomes_the_deployment(db):
    failed = repo.record_revision(db, "1", entry="src/main.ts", status="failed", bundle="x", error_message="boom")
    assert repo.get_deployment(db, "1") is None
    assert failed["error_message"] == "boom"
    first = repo.record_revision(
        db,
        "1",
        entry="src/main.ts",
        status="success",
        bundle="a()",
        files=[{"path": "src/main.ts", "contents": "a()"}],
        deploy_source="cli",
        actor_type="token",
    )
    dep = repo.get_deployment(db, "1")
    assert dep["revision_id"] == first["id"]
    assert first["files"] == [{"path": "src/main.ts", "contents": "a()"}]
    second = repo.record_revision(
        db,
        "1",
        entry="src/other.ts",
        status="success",
        bundle="b()",
        base_revision_id=first["id"],
        bundler_version=repo.TRUSTED_BUNDLER_VERSION,
        change_summary={"added_files": [], "removed_files": [], "modified_files": ["src/main.ts"]},
    )
    dep2 = repo.get_deployment(db, "1")
    assert dep2["revision_id"] == second["id"] and dep2["created_at"] == dep["created_at"] and dep2["entry"] == "src/other.ts"
    assert repo.latest_success(db, "1")["id"] == second["id"]
    assert repo.current_bundles(db) == {"1": "b()"}
    assert repo.current_bundle(db, "1") == "b()"
    assert [d["guild_id"] for d in repo.list_deployments(db)] == ["1"]
    assert second["change_summary"]["modified_files"] == ["src/main.ts"]


def test_tokens_are_stored_hashed_and_verified(db):
    token, row = repo.create_token(db, label="ci")
    token_id, secret = token.split(".")
    assert len(token_id) == 12 and len(secret) == 32
    stored = db.fetchone("SELECT token_hash FROM api_tokens WHERE token_id = ?", (token_id,))
    assert secret not in stored["token_hash"] and token not in stored["token_hash"]
    assert repo.verify_token(db, token)["label"] == "ci"
    assert repo.list_tokens(db)[0]["last_used_at"] is not None
    assert repo.verify_token(db, token_id + ".wrong" + "x" * 27) is None
    assert repo.verify_token(db, "short") is None
    assert repo.revoke_token(db, token_id) is True
    assert repo.verify_token(db, token) is None
    assert repo.revoke_token(db, token_id) is False


def test_logs_are_kept_per_guild(db, monkeypatch):
    monkeypatch.setattr(repo, "LOG_RETENTION_PER_GUILD", 10)
    repo.append_logs(db, [{"guild_id": "quiet", "level": "info", "target": "flora:js", "message": "hello"}])
    repo.append_logs(
        db, [{"guild_id": "noisy", "level": "info", "target": "flora:js", "message": f"line {i}"} for i in range(50)]
    )
    noisy = repo.recent_logs(db, "noisy", limit=100)
    assert [e["message"] for e in noisy] == [f"line {i}" for i in range(40, 50)]
    assert [e["message"] for e in repo.recent_logs(db, "quiet")] == ["hello"]


def test_unknown_database_scheme_is_a_clear_error(tmp_path):
    config = load_config(env={"DATABASE_URL": "mysql://x", "FLORA_DATA_DIR": str(tmp_path)})
    with pytest.raises(StorageError, match="no storage backend serves DATABASE_URL scheme 'mysql'"):
        open_database(config, Plugins())


def test_unreachable_postgres_is_a_clear_error(tmp_path):
    config = load_config(env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none", "FLORA_DATA_DIR": str(tmp_path)})
    with pytest.raises(StorageError, match="cannot connect to PostgreSQL"):
        open_database(config, Plugins())
