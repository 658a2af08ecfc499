"""``/api/metrics`` and ``/api/metrics/json`` (flora §3.2 operator auth, §6.12).

In process with a runtime stand-in answering ``status()``, then once through
the real stack: a script that throws and one that overruns its deadline.
"""

from __future__ import annotations

from conftest import deploy_files, emulator_guild, http_json, start_flora, stop_flora, wait_for
from prometheus_client.parser import text_string_to_metric_families
from test_http_api import GUILD, config, db, make_config, plugins, shared_data_dir, token  # noqa: F401 - fixtures

from flora_core.storage import repo
from flora_http import create_app
from flora_http.metrics import SNAPSHOT_FIELDS

SECRET = "operator-secret-0123456789"


class StatusOnly:
    def __init__(self, status=None):
        self._status = status

    def status(self):
        if self._status is None:
            from flora_core.bus import RuntimeUnavailable

            raise RuntimeUnavailable("down")
        return self._status


STATUS = {
    "workers": [
        {"name": "worker-0", "alive": True, "restarts": 2, "inflight": 0},
        {"name": "worker-1", "alive": False, "restarts": 0, "inflight": 0},
    ],
    "guilds": 3,
    "suspended": ["1"],
    "subscriptions": {},
}


def _app(make_config, plugins, db, status=STATUS, **env):
    return create_app(make_config(**env), plugins, db, StatusOnly(status)).test_client()


def _op(secret=SECRET):
    return {"Authorization": f"Bearer {secret}"}


def _seed_logs(db):
    def rt(msg):
        return {"guild_id": GUILD, "level": "error", "target": "flora:runtime", "message": msg}

    repo.append_logs(
        db,
        [
            rt("dispatch failed: Error: boom"),
            rt("dispatch failed: messageCreate handler exceeded the 1s dispatch deadline; isolate restarted"),
            {**rt("isolate restarted after a dispatch timeout"), "level": "warn"},
            rt("dispatch failed: out of memory; isolate restarted"),
            {**rt("isolate restarted after running out of memory"), "level": "warn"},
            {"guild_id": GUILD, "level": "info", "target": "flora:js", "message": "dispatch failed: only a console.log"},
        ],
    )


def test_operator_auth(make_config, plugins, db, token):
    unset = _app(make_config, plugins, db)
    for path in ("/api/metrics", "/api/metrics/json"):
        resp = unset.get(path, headers=_op())
        assert resp.status_code == 403 and resp.get_json() == {"message": "Forbidden: Operator access is not configured"}
    client = _app(make_config, plugins, db, API_OPERATOR_SECRET=SECRET)
    for path in ("/api/metrics", "/api/metrics/json"):
        for headers in ({}, {"Authorization": SECRET}, {"Authorization": f"bearer {SECRET}"}):
            resp = client.get(path, headers=headers)
            assert resp.status_code == 401 and resp.get_json() == {"message": "Unauthorized: Operator bearer token required"}
        for bad in ("nope", SECRET + "x", token):  # an API token is not the operator secret
            resp = client.get(path, headers=_op(bad))
            assert resp.status_code == 403 and resp.get_json() == {"message": "Forbidden: Invalid operator token"}
        assert client.get(path, headers=_op()).status_code == 200


def test_json_snapshot_from_status_and_logs(make_config, plugins, db):
    _seed_logs(db)
    repo.record_revision(db, GUILD, entry="a", status="success", bundle="x")
    repo.record_revision(db, GUILD, entry="a", status="failed", bundle="x", error_message="e")
    client = _app(make_config, plugins, db, API_OPERATOR_SECRET=SECRET)
    snap = client.get("/api/metrics/json", headers=_op()).get_json()
    assert list(snap) == list(SNAPSHOT_FIELDS)
    assert snap["isolate_count"] == 3
    assert snap["runtime_restarts"] == 4  # two spawns + two restarts
    assert snap["dispatch_errors"] == 3 and snap["timeout_errors"] == 1 and snap["oom_errors"] == 1
    assert snap["isolate_restarts"] == 2
    for unknown in ("dispatch_total", "p50_latency_us", "migration_success"):
        assert snap[unknown] is None  # not exposed by the runtime: never invented


def test_prometheus_text(make_config, plugins, db):
    _seed_logs(db)
    repo.record_revision(db, GUILD, entry="a", status="success", bundle="x")
    client = _app(make_config, plugins, db, API_OPERATOR_SECRET=SECRET)
    resp = client.get("/api/metrics", headers=_op())
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = resp.get_data(as_text=True)
    assert "# HELP flora_isolate_count" in text and "# TYPE flora_dispatch_errors_total counter" in text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for fam in text_string_to_metric_families(text) for s in fam.samples
    }
    assert samples[("flora_isolate_count", ())] == 3
    assert samples[("flora_dispatch_errors_total", ())] == 3
    assert samples[("flora_timeout_errors_total", ())] == 1
    assert samples[("flora_oom_errors_total", ())] == 1
    assert samples[("flora_isolate_restarts_total", ())] == 2
    assert samples[("flora_runtime_restarts_total", ())] == 4
    assert samples[("flora_runtime_up", ())] == 1 and samples[("flora_workers_alive", ())] == 1
    assert samples[("flora_deployment_revisions_total", (("status", "success"),))] == 1
    assert not any(name.startswith("flora_dispatch_latency") or name == "flora_dispatch_total" for name, _ in samples)


def test_runtime_down_still_answers(make_config, plugins, db):
    client = _app(make_config, plugins, db, status=None, API_OPERATOR_SECRET=SECRET)
    snap = client.get("/api/metrics/json", headers=_op()).get_json()
    assert snap["isolate_count"] is None and snap["dispatch_errors"] == 0
    assert "flora_runtime_up 0.0" in client.get("/api/metrics", headers=_op()).get_data(as_text=True)


THROWER = """
on('messageCreate', (ctx) => {
  if (ctx.msg.author.bot) return;
  if (ctx.msg.content === 'throw') throw new Error('kaboom');
  if (ctx.msg.content === 'spin') { while (true) {} }
});
"""


def test_metrics_through_the_real_stack(emulator, tmp_path):
    server = start_flora(emulator, tmp_path, API_OPERATOR_SECRET=SECRET, RUNTIME_DISPATCH_TIMEOUT_SECS=1)
    try:
        g = emulator_guild(emulator, "Metrics Guild")
        assert deploy_files(server, g["id"], {"src/main.ts": THROWER})[0] == 200
        emulator.user_says(g["channel_id"], g["user_id"], "throw")
        server.wait_log(g["id"], "dispatch failed: ")
        emulator.user_says(g["channel_id"], g["user_id"], "spin")
        server.wait_log(g["id"], "isolate restarted after")

        def snapshot():
            status, body = http_json("GET", f"{server.api}/metrics/json", token=SECRET)
            assert status == 200, body
            return body

        snap = wait_for(lambda: (s := snapshot())["timeout_errors"] >= 1 and s, message="timeout counted")
        assert snap["dispatch_errors"] == 2 and snap["timeout_errors"] == 1 and snap["isolate_restarts"] == 1
        assert snap["isolate_count"] >= 1 and snap["runtime_restarts"] == 2  # RUNTIME_MAX_WORKERS=2, none restarted
        # counted by the runtime itself (GET /status on the control socket)
        assert snap["dispatch_total"] >= 2 and snap["oom_errors"] == 0
        assert snap["p99_latency_us"] >= snap["p50_latency_us"] > 0 and snap["avg_latency_us"] > 0
        status, text = http_json("GET", f"{server.api}/metrics", token=SECRET)
        assert status == 200 and "flora_timeout_errors_total 1.0" in text
        assert http_json("GET", f"{server.api}/metrics", token=server.token)[0] == 403
    finally:
        stop_flora(server)
