"""The history / log / metrics queries added for the API, on PostgreSQL (skipped when it is not reachable)."""

from __future__ import annotations

from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import open_database, repo

G = "123456789012345678"


def test_history_logs_and_counts_on_postgres(postgres_url, tmp_path):
    db = open_database(load_config(env={"DATABASE_URL": postgres_url, "FLORA_DATA_DIR": str(tmp_path)}), Plugins())
    try:
        revs = [repo.record_revision(db, G, entry="e", status=s, bundle="b") for s in ("success", "failed", "success")]
        page = repo.revision_history(db, G, 2)
        assert [r["id"] for r in page] == [revs[2]["id"], revs[1]["id"]]
        rest = repo.revision_history(db, G, 2, (page[-1]["deployed_at"], page[-1]["id"]))
        assert [r["id"] for r in rest] == [revs[0]["id"]]
        assert repo.count_revisions_by_status(db) == {"success": 2, "failed": 1}
        start = repo.last_log_id(db)
        repo.append_logs(db, [{"guild_id": G, "level": "error", "target": "flora:runtime", "message": "dispatch failed: x"}])
        assert [r["message"] for r in repo.logs_after(db, G, start)] == ["dispatch failed: x"]
        assert repo.count_runtime_logs(db, {"d": "dispatch failed: %"}) == {"d": 1}
    finally:
        db.close()
