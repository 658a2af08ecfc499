"""Deployment history, revisions and rollback (flora §3.3 rows 14–16, §6.6).

Same harness as test_http_api: real SQLite, a Unix-socket stand-in for the runtime.
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

from test_http_api import (  # noqa: F401 - fixtures
    GUILD,
    auth,
    client,
    config,
    db,
    make_config,
    plugins,
    runtime,
    shared_data_dir,
    token,
)

from flora_core.storage import repo

OTHER = "223456789012345678"


def _deploy(client, auth, text: str, source: str | None = None):
    body = {"entry": "src/main.ts", "bundle": f"console.log({text!r})", "files": [{"path": "src/main.ts", "contents": text}]}
    headers = dict(auth)
    if source:
        headers["x-flora-deploy-source"] = source
    return client.post(f"/api/deployments/{GUILD}", json=body, headers=headers)


def test_history_is_newest_first_with_revision_shape(client, auth):
    assert _deploy(client, auth, "one", "cli").status_code == 200
    assert (
        client.post(f"/api/deployments/{GUILD}", json={"entry": "m.js", "bundle": "FAIL_LOAD()"}, headers=auth).status_code == 400
    )
    assert _deploy(client, auth, "two").status_code == 200
    resp = client.get(f"/api/deployments/{GUILD}/history", headers=auth)
    assert resp.status_code == 200
    items = resp.get_json()
    assert [i["status"] for i in items] == ["success", "failed", "success"]
    newest, failed, first = items
    assert set(first) == {"id", "guild_id", "entry", "status", "deployed_at", "deploy_source", "actor", "change_summary", "files"}
    assert first["deploy_source"] == "cli" and first["actor"] == {"actor_type": "token"}
    assert first["files"] == [{"path": "src/main.ts", "contents": "one"}]
    assert failed["error_message"] == "Uncaught Error: boom" and "files" not in failed
    assert newest["base_revision_id"] == first["id"]
    assert newest["change_summary"] == {"added_files": [], "removed_files": [], "modified_files": ["src/main.ts"]}
    assert "bundle" not in newest
    with_bundle = client.get(f"/api/deployments/{GUILD}/history?include_bundle=true", headers=auth).get_json()
    assert "console.log" in with_bundle[0]["bundle"]
    # other guilds see nothing
    assert client.get(f"/api/deployments/{OTHER}/history", headers=auth).get_json() == []


def test_history_keyset_paging(client, auth, db):
    for i in range(7):
        assert _deploy(client, auth, f"v{i}").status_code == 200
    seen, cursor = [], ""
    while True:
        page = client.get(f"/api/deployments/{GUILD}/history?limit=3{cursor}", headers=auth).get_json()
        seen += page
        if len(page) < 3:
            break
        last = page[-1]
        cursor = f"&cursor_deployed_at={quote(last['deployed_at'])}&cursor_id={last['id']}"
    assert len(seen) == 7 and len({s["id"] for s in seen}) == 7
    assert [s["files"][0]["contents"] for s in seen] == [f"v{i}" for i in reversed(range(7))]
    # same timestamp: ties are broken by id
    ts = "2030-01-01T00:00:00.000000+00:00"
    db.execute("UPDATE deployment_revisions SET deployed_at = ?", (ts,))
    ids = sorted((s["id"] for s in seen), reverse=True)
    page = client.get(f"/api/deployments/{GUILD}/history?limit=2", headers=auth).get_json()
    assert [p["id"] for p in page] == ids[:2]
    page = client.get(
        f"/api/deployments/{GUILD}/history?limit=2&cursor_deployed_at=2030-01-01T00:00:00Z&cursor_id={ids[1]}", headers=auth
    ).get_json()
    assert [p["id"] for p in page] == ids[2:4]


def test_history_limit_clamping_and_cursor_errors(client, auth):
    for i in range(3):
        _deploy(client, auth, f"v{i}")
    assert len(client.get(f"/api/deployments/{GUILD}/history?limit=0", headers=auth).get_json()) == 1
    assert len(client.get(f"/api/deployments/{GUILD}/history?limit=1000", headers=auth).get_json()) == 3
    for query in (
        "cursor_id=" + str(uuid.uuid4()),
        "cursor_deployed_at=2030-01-01T00:00:00Z",
        "cursor_deployed_at=yesterday&cursor_id=" + str(uuid.uuid4()),
        "cursor_deployed_at=2030-01-01T00:00:00Z&cursor_id=nope",
        "limit=x",
    ):
        resp = client.get(f"/api/deployments/{GUILD}/history?{query}", headers=auth)
        assert resp.status_code == 400, query
        assert resp.get_json()["message"].startswith("Bad request: ")
    assert client.get(f"/api/deployments/{GUILD}/history").status_code == 401
    assert client.get("/api/deployments/nope/history", headers=auth).status_code == 400


def test_get_revision(client, auth):
    _deploy(client, auth, "one")
    [rev] = client.get(f"/api/deployments/{GUILD}/history", headers=auth).get_json()
    got = client.get(f"/api/deployments/{GUILD}/revisions/{rev['id']}", headers=auth)
    assert got.status_code == 200 and got.get_json() == rev
    assert "bundle" in client.get(f"/api/deployments/{GUILD}/revisions/{rev['id']}?include_bundle=1", headers=auth).get_json()
    bad = client.get(f"/api/deployments/{GUILD}/revisions/not-a-uuid", headers=auth)
    assert bad.status_code == 400 and bad.get_json() == {"message": "Bad request: Invalid revision ID"}
    for path in (f"/api/deployments/{GUILD}/revisions/{uuid.uuid4()}", f"/api/deployments/{OTHER}/revisions/{rev['id']}"):
        missing = client.get(path, headers=auth)
        assert missing.status_code == 404 and missing.get_json() == {
            "message": "Resource not found: Deployment revision not found"
        }


def test_rollback_redeploys_a_successful_revision(client, auth, runtime, db):
    _deploy(client, auth, "one")
    _deploy(client, auth, "two")
    history = client.get(f"/api/deployments/{GUILD}/history?include_bundle=1", headers=auth).get_json()
    two, one = history
    runtime.calls.clear()
    resp = client.post(f"/api/deployments/{GUILD}/rollback/{one['id']}", headers=auth)
    assert resp.status_code == 200, resp.get_json()
    new = resp.get_json()
    assert runtime.calls == [(f"/guilds/{GUILD}/load", {"bundle": one["bundle"]})]
    assert new["status"] == "success" and new["deploy_source"] == "api" and new["base_revision_id"] == two["id"]
    assert new["files"] == one["files"] and "bundle" not in new and new["id"] not in (one["id"], two["id"])
    assert new["change_summary"] == {"added_files": [], "removed_files": [], "modified_files": ["src/main.ts"]}
    current = client.get(f"/api/deployments/{GUILD}?include_bundle=1", headers=auth).get_json()
    assert current["bundle"] == one["bundle"]
    assert repo.get_deployment(db, GUILD)["revision_id"] == new["id"]
    # header sets the source; `unknown` means api
    assert (
        client.post(
            f"/api/deployments/{GUILD}/rollback/{two['id']}", headers={**auth, "x-flora-deploy-source": "cli"}
        ).get_json()["deploy_source"]
        == "cli"
    )
    assert (
        client.post(
            f"/api/deployments/{GUILD}/rollback/{two['id']}", headers={**auth, "x-flora-deploy-source": "unknown"}
        ).get_json()["deploy_source"]
        == "api"
    )
    assert (
        client.post(
            f"/api/deployments/{GUILD}/rollback/{two['id']}", headers={**auth, "x-flora-deploy-source": "nope"}
        ).status_code
        == 400
    )


def test_rollback_refuses_bad_targets(client, auth, runtime):
    client.post(f"/api/deployments/{GUILD}", json={"entry": "m.js", "bundle": "FAIL_LOAD()"}, headers=auth)
    _deploy(client, auth, "ok")
    failed, ok = reversed(client.get(f"/api/deployments/{GUILD}/history", headers=auth).get_json())
    runtime.calls.clear()
    msg = {"message": "Bad request: Rollback target must be a successful revision"}
    for path in (
        f"/api/deployments/{GUILD}/rollback/{failed['id']}",
        f"/api/deployments/{GUILD}/rollback/{uuid.uuid4()}",
        f"/api/deployments/{OTHER}/rollback/{ok['id']}",
    ):
        resp = client.post(path, headers=auth)
        assert resp.status_code == 400 and resp.get_json() == msg, path
    bad = client.post(f"/api/deployments/{GUILD}/rollback/xyz", headers=auth)
    assert bad.get_json() == {"message": "Bad request: Invalid revision ID"}
    assert runtime.calls == []
    assert client.post(f"/api/deployments/{GUILD}/rollback/{ok['id']}").status_code == 401


def test_rollback_load_failure_is_recorded(client, auth, db):
    _deploy(client, auth, "good")
    target = repo.record_revision(
        db,
        GUILD,
        entry="m.js",
        status="success",
        bundle="FAIL_LOAD()",
        deploy_source="api",
        bundler_version=repo.TRUSTED_BUNDLER_VERSION,
    )
    _deploy(client, auth, "latest")
    latest = repo.latest_success(db, GUILD)
    resp = client.post(f"/api/deployments/{GUILD}/rollback/{target['id']}", headers=auth)
    assert resp.status_code == 400
    assert resp.get_json() == {"message": "Bad request: rollback failed: Uncaught Error: boom"}
    newest = client.get(f"/api/deployments/{GUILD}/history?limit=1", headers=auth).get_json()[0]
    assert newest["status"] == "failed" and newest["base_revision_id"] == latest["id"] and newest["deploy_source"] == "api"
    assert repo.latest_success(db, GUILD)["id"] == latest["id"]
