"""The HTTP API (flora §3): auth, global behaviour, deployments, logs, plugins.

Real SQLite files and the real bundler. The runtime is another process in
production; here a small HTTP server on a Unix socket stands in for it,
speaking the control protocol of ``flora_core.bus``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socketserver
import sqlite3
import subprocess
import sys
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from flora_core.bus import UnixSocketClient
from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import open_database, repo
from flora_http import create_app

GUILD = "123456789012345678"
REPO_ROOT = Path(__file__).resolve().parent.parent


# -- a stand-in for the runtime process ---------------------------------------------
class RuntimeDouble:
    """Answers ``POST /guilds/{id}/load`` and ``/restore`` on a Unix socket and records the calls.

    A bundle containing ``FAIL_LOAD`` fails to load; one containing
    ``BREAK_DB`` loads, then renames the revisions table of ``db_path`` so
    the API's bookkeeping fails right after a successful load.
    """

    def __init__(self, db_path: Path | None = None):
        self.calls: list[tuple[str, dict]] = []
        self.db_path = db_path
        self.dir = tempfile.mkdtemp(prefix="flora-rt-", dir="/tmp")  # Unix socket paths must stay short
        self.socket_path = os.path.join(self.dir, "rt.sock")
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                double.calls.append((self.path, body))
                answer = {"ok": True}
                bundle = body.get("bundle", "")
                if "FAIL_LOAD" in bundle:
                    answer = {"ok": False, "error": "Uncaught Error: boom"}
                elif "BREAK_DB" in bundle and double.db_path:
                    conn = sqlite3.connect(double.db_path)
                    conn.execute("ALTER TABLE deployment_revisions RENAME TO broken_revisions")
                    conn.commit()
                    conn.close()
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(self.socket_path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def client(self) -> UnixSocketClient:
        return UnixSocketClient(self.socket_path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        os.unlink(self.socket_path)
        os.rmdir(self.dir)


# -- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def plugins():
    return Plugins()


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory):
    """One data folder for the bundler cache (deno fetches its esbuild once), never a runtime socket."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def make_config(tmp_path, shared_data_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray ./config.toml

    def make(**env):
        base = {"FLORA_DATA_DIR": str(shared_data_dir), "DATABASE_URL": f"sqlite:///{tmp_path / 'flora.db'}"}
        return load_config(env={**base, **env})

    return make


@pytest.fixture
def config(make_config):
    return make_config()


@pytest.fixture
def db(config, plugins):
    database = open_database(config, plugins)
    yield database
    database.close()


@pytest.fixture
def token(db):
    return repo.create_token(db, label="test")[0]


@pytest.fixture
def runtime(tmp_path):
    double = RuntimeDouble(tmp_path / "flora.db")
    yield double
    double.close()


@pytest.fixture
def client(config, plugins, db, runtime):
    app = create_app(config, plugins, db, runtime.client())
    return app.test_client()


@pytest.fixture
def auth(token):
    return {"Authorization": f"Bearer {token}"}


def revision_rows(db) -> list[dict]:
    return db.fetchall("SELECT * FROM deployment_revisions ORDER BY deployed_at")


MAIN_TS = 'import { greet } from "./greet";\nconst who: string = "flora";\nconsole.log(greet(who));\n'
GREET_TS = "export function greet(name: string): string {\n  return `hi ${name}`;\n}\n"


# -- global behaviour --------------------------------------------------------------------
def test_health_is_plain_ok_without_auth(client):
    for path in ("/api/health", "/api/health/"):
        resp = client.get(path)
        assert resp.status_code == 200
        assert resp.mimetype == "text/plain"
        assert resp.get_data(as_text=True) == "ok"


def test_every_response_has_a_fresh_uuid4_request_id(client):
    ids = []
    for path in ("/api/health", "/api/nope", "/api/deployments"):
        resp = client.get(path)
        ids.append(resp.headers["X-Request-ID"])
        assert uuid.UUID(ids[-1]).version == 4
    assert len(set(ids)) == 3


def test_unknown_route_is_json_404(client):
    resp = client.get("/api/does-not-exist")
    assert resp.status_code == 404
    assert resp.get_json() == {"message": "Resource not found: no route for this path"}


def test_wrong_method_is_json_405_with_allow(client):
    resp = client.delete("/api/health")
    assert resp.status_code == 405
    assert resp.get_json() == {"message": "Method not allowed"}
    assert "GET" in resp.headers["Allow"]


def test_body_over_8_mib_is_json_413(client, auth):
    resp = client.post(
        f"/api/deployments/{GUILD}", data=b"x" * (8 * 1024 * 1024 + 1), content_type="application/json", headers=auth
    )
    assert resp.status_code == 413
    assert resp.get_json()["message"].startswith("Payload too large")


def test_malformed_json_is_json_400(client, auth):
    resp = client.post(f"/api/deployments/{GUILD}", data=b'{"entry": ', content_type="application/json", headers=auth)
    assert resp.status_code == 400
    assert resp.get_json()["message"].startswith("Bad request: Failed to parse the request body as JSON")


def test_non_json_content_type_is_json_415(client, auth):
    resp = client.post(f"/api/deployments/{GUILD}", data="entry=x", content_type="text/plain", headers=auth)
    assert resp.status_code == 415
    assert "Content-Type: application/json" in resp.get_json()["message"]


@pytest.mark.parametrize(
    "body, detail",
    [
        ([], "expected a JSON object"),
        ({}, "missing field `entry`"),
        ({"entry": 1, "bundle": "x"}, "entry: expected a string"),
        ({"entry": "a.ts", "files": "nope"}, "files: expected an array or null"),
        ({"entry": "a.ts", "files": [{"path": "a.ts"}]}, "files[0]: missing field `contents`"),
        ({"entry": "a.ts", "bundle": 5}, "bundle: expected a string or null"),
    ],
)
def test_wrong_json_shape_is_422(client, auth, body, detail):
    resp = client.post(f"/api/deployments/{GUILD}", json=body, headers=auth)
    assert resp.status_code == 422
    assert resp.get_json()["message"].endswith(detail)


# -- authentication ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, message",
    [
        (None, "Login required"),
        ("Bearer ", "Login required"),
        ("Token x", "Login required"),
        ("Bearer nope", "invalid or unknown token"),
        ("Bearer abcdefghijkl.0123456789abcdef0123456789abcdef", "invalid or unknown token"),
    ],
)
def test_missing_or_invalid_token_is_401(client, header, message):
    headers = {"Authorization": header} if header is not None else {}
    resp = client.get("/api/deployments", headers=headers)
    assert resp.status_code == 401
    assert resp.get_json() == {"message": f"Unauthorized: {message}"}


def test_bearer_prefix_is_exact(client, token):
    assert client.get("/api/deployments", headers={"Authorization": f"bearer {token}"}).status_code == 401
    assert client.get("/api/deployments", headers={"Authorization": f"Bearer  {token}"}).status_code == 401


def test_valid_token_is_accepted_and_marks_last_used(client, db, token):
    token_id = token.split(".")[0]
    assert repo.list_tokens(db)[0]["last_used_at"] is None
    resp = client.get("/api/deployments", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert resp.get_json() == []
    row = next(r for r in repo.list_tokens(db) if r["token_id"] == token_id)
    assert row["last_used_at"] is not None


def test_revoked_token_is_refused(client, db, token):
    repo.revoke_token(db, token.split(".")[0])
    assert client.get("/api/deployments", headers={"Authorization": f"Bearer {token}"}).status_code == 401


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", f"/api/deployments/{GUILD}"),
        ("post", f"/api/deployments/{GUILD}"),
        ("get", f"/api/logs/{GUILD}"),
        ("get", "/api/plugins"),
    ],
)
def test_guild_routes_need_a_token(client, method, path):
    resp = getattr(client, method)(path, json={"entry": "a.js", "bundle": "x"} if method == "post" else None)
    assert resp.status_code == 401


@pytest.mark.parametrize("guild_id", ["abc", "12a4", "1" * 21, "-5"])
def test_invalid_guild_id_is_400(client, auth, guild_id):
    for resp in (
        client.get(f"/api/deployments/{guild_id}", headers=auth),
        client.post(f"/api/deployments/{guild_id}", json={"entry": "a.js", "bundle": "x"}, headers=auth),
        client.get(f"/api/logs/{guild_id}", headers=auth),
    ):
        assert resp.status_code == 400
        assert resp.get_json() == {"message": "Bad request: Invalid guild ID"}


# -- POST /api/deployments/<guild_id>: validation -------------------------------------------
@pytest.mark.parametrize(
    "body, message",
    [
        ({"entry": "  ", "bundle": "x"}, "`entry` must not be empty"),
        ({"entry": "src/main.ts", "files": []}, "`files` must not be empty"),
        ({"entry": "src/main.ts", "files": [{"path": " ", "contents": "x"}]}, "`files[].path` must not be empty"),
        ({"entry": "src/main.ts", "files": [{"path": "src/main.ts", "contents": " \n"}]}, "`files[].contents` must not be empty"),
        ({"entry": "src/main.ts", "bundle": "   "}, "`bundle` must not be empty"),
        ({"entry": "src/main.ts", "files": None, "bundle": None}, "Either `files` or `bundle` is required"),
        ({"entry": "src/main.ts"}, "Either `files` or `bundle` is required"),
        (
            {"entry": "src/main.ts", "bundle": "x", "source_map": {"path": "", "contents": "{}"}},
            "`source_map.path` must not be empty",
        ),
        (
            {"entry": "src/main.ts", "bundle": "x", "source_map": {"path": "b.js.map", "contents": " "}},
            "`source_map.contents` must not be empty",
        ),
        (
            {"entry": "src/main.ts", "bundle": "x", "source_map": {"path": "b.txt", "contents": "{}"}},
            "`source_map.path` must end with `.map`",
        ),
    ],
)
def test_deployment_request_validation(client, auth, runtime, db, body, message):
    resp = client.post(f"/api/deployments/{GUILD}", json=body, headers=auth)
    assert resp.status_code == 400
    assert resp.get_json() == {"message": f"Bad request: {message}"}
    assert runtime.calls == [] and revision_rows(db) == []


@pytest.mark.parametrize(
    "value, message",
    [
        ("nope", "`x-flora-deploy-source` must be one of cli|webui|bootstrap|api|unknown"),
        ("CLI", "`x-flora-deploy-source` must be one of cli|webui|bootstrap|api|unknown"),
        ("cl\xe9", "`x-flora-deploy-source` must be ASCII"),
    ],
)
def test_deploy_source_header_validation(client, auth, value, message):
    resp = client.post(
        f"/api/deployments/{GUILD}", json={"entry": "main.js", "bundle": "1"}, headers={**auth, "x-flora-deploy-source": value}
    )
    assert resp.status_code == 400
    assert resp.get_json() == {"message": f"Bad request: {message}"}


def test_typescript_error_names_file_line_and_column(client, auth, runtime, db):
    files = [{"path": "src/main.ts", "contents": "const ok = 1;\nconst broken: = ;\n"}]
    resp = client.post(f"/api/deployments/{GUILD}", json={"entry": "src/main.ts", "files": files}, headers=auth)
    assert resp.status_code == 400
    message = resp.get_json()["message"]
    assert re.match(r"^Bad request: invalid deployment files: src/main\.ts:2:\d+: ", message), message
    assert runtime.calls == [] and revision_rows(db) == []


def test_missing_entry_file_is_a_bundle_error(client, auth):
    files = [{"path": "src/other.ts", "contents": "export const a = 1;"}]
    resp = client.post(f"/api/deployments/{GUILD}", json={"entry": "src/main.ts", "files": files}, headers=auth)
    assert resp.status_code == 400
    assert resp.get_json() == {"message": "Bad request: invalid deployment files: entry file not found: src/main.ts"}


# -- POST /api/deployments/<guild_id>: the deploy ---------------------------------------------
def test_runtime_unreachable_is_503_and_records_nothing(config, plugins, db, auth):
    app = create_app(config, plugins, db)  # default runtime: the control socket, which nobody serves
    resp = app.test_client().post(
        f"/api/deployments/{GUILD}", json={"entry": "main.js", "bundle": "console.log(1)"}, headers=auth
    )
    assert resp.status_code == 503
    assert resp.get_json()["message"].startswith("runtime unavailable: ")
    assert revision_rows(db) == []
    assert repo.get_deployment(db, GUILD) is None


def test_files_are_bundled_loaded_and_recorded(client, auth, runtime, db):
    files = [{"path": "src/main.ts", "contents": MAIN_TS}, {"path": "src/greet.ts", "contents": GREET_TS}]
    resp = client.post(
        f"/api/deployments/{GUILD}",
        json={"entry": "src/main.ts", "files": files},
        headers={**auth, "x-flora-deploy-source": "cli"},
    )
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert list(body) == ["guild_id", "created_at", "updated_at", "entry"]
    assert body["guild_id"] == GUILD and body["entry"] == "src/main.ts"
    assert body["created_at"] == body["updated_at"] and body["created_at"].endswith("+00:00")

    [(path, sent)] = runtime.calls
    assert path == f"/guilds/{GUILD}/load"
    assert "hi ${name}" in sent["bundle"] and ": string" not in sent["bundle"]  # bundled, types stripped

    [rev] = revision_rows(db)
    assert rev["status"] == "success" and rev["deploy_source"] == "cli" and rev["actor_type"] == "token"
    assert rev["base_revision_id"] is None
    assert json.loads(rev["change_summary"]) == {
        "added_files": ["src/greet.ts", "src/main.ts"],
        "removed_files": [],
        "modified_files": [],
    }

    listed = client.get("/api/deployments/", headers=auth).get_json()
    assert listed == [body]
    got = client.get(f"/api/deployments/{GUILD}", headers=auth).get_json()
    assert got["files"] == files and "bundle" not in got and got["entry"] == "src/main.ts"
    with_bundle = client.get(f"/api/deployments/{GUILD}?include_bundle=true", headers=auth).get_json()
    assert with_bundle["bundle"] == sent["bundle"]


def test_redeploy_summarises_changes_against_the_last_success(client, auth, db):
    first = [{"path": "src/main.ts", "contents": MAIN_TS}, {"path": "src/greet.ts", "contents": GREET_TS}]
    created = client.post(f"/api/deployments/{GUILD}", json={"entry": "src/main.ts", "files": first}, headers=auth).get_json()
    first_id = revision_rows(db)[0]["id"]
    second = [
        {"path": "src/main.ts", "contents": MAIN_TS.replace("flora", "world")},
        {"path": "src/greet.ts", "contents": GREET_TS},
        {"path": "src/extra.ts", "contents": "export const x = 1;\n"},
    ]
    client.post(f"/api/deployments/{GUILD}", json={"entry": "src/main.ts", "files": second}, headers=auth)
    third = [{"path": "src/main.ts", "contents": "console.log('solo');\n"}]
    resp = client.post(f"/api/deployments/{GUILD}", json={"entry": "src/main.ts", "files": third}, headers=auth)
    assert resp.status_code == 200
    assert resp.get_json()["created_at"] == created["created_at"]
    assert resp.get_json()["updated_at"] > created["updated_at"]

    revs = revision_rows(db)
    assert revs[1]["base_revision_id"] == first_id
    assert json.loads(revs[1]["change_summary"]) == {
        "added_files": ["src/extra.ts"],
        "removed_files": [],
        "modified_files": ["src/main.ts"],
    }
    assert json.loads(revs[2]["change_summary"]) == {
        "added_files": [],
        "removed_files": ["src/extra.ts", "src/greet.ts"],
        "modified_files": ["src/main.ts"],
    }


def test_prebuilt_bundle_becomes_a_script_and_keeps_its_source_map(client, auth, runtime, db):
    source_map = {"path": "bundle.js.map", "contents": '{"version":3}'}
    esm = "export const x = 1;\nconsole.log('prebuilt', x)"
    body = {"entry": "src/main.ts", "bundle": esm, "source_map": source_map, "files": [{"path": "src/main.ts", "contents": "x"}]}
    resp = client.post(f"/api/deployments/{GUILD}", json=body, headers={**auth, "x-flora-deploy-source": "webui"})
    assert resp.status_code == 200
    loaded = runtime.calls[0][1]["bundle"]
    assert "export" not in loaded and 'console.log("prebuilt", x)' in loaded  # the ES module became a classic script
    got = client.get(f"/api/deployments/{GUILD}?include_bundle=1", headers=auth).get_json()
    assert got["source_map"] == source_map and got["bundle"] == loaded
    assert revision_rows(db)[0]["deploy_source"] == "webui"


def test_load_failure_records_a_failed_revision(client, auth, runtime, db):
    resp = client.post(f"/api/deployments/{GUILD}", json={"entry": "main.js", "bundle": "FAIL_LOAD()"}, headers=auth)
    assert resp.status_code == 400
    assert resp.get_json() == {"message": "Bad request: deployment failed: Uncaught Error: boom"}
    [rev] = revision_rows(db)
    assert rev["status"] == "failed" and rev["error_message"] == "Uncaught Error: boom" and rev["deploy_source"] == "unknown"
    assert repo.get_deployment(db, GUILD) is None
    assert client.get(f"/api/deployments/{GUILD}", headers=auth).get_json() == {
        "message": "Resource not found: deployment not found"
    }


def test_script_over_the_size_limit_fails_without_loading(make_config, plugins, runtime, tmp_path):
    config = make_config(RUNTIME_MAX_SCRIPT_BYTES="1024")
    db = open_database(config, plugins)
    token = repo.create_token(db)[0]
    client = create_app(config, plugins, db, runtime.client()).test_client()
    resp = client.post(
        f"/api/deployments/{GUILD}",
        json={"entry": "main.js", "bundle": "//" + "x" * 1100},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert resp.status_code == 400
    assert resp.get_json() == {"message": "Bad request: deployment failed: script exceeds size limit (max 1024 bytes)"}
    assert runtime.calls == []
    assert [r["status"] for r in revision_rows(db)] == ["failed"]


def test_storage_failure_after_load_restores_the_runtime(client, auth, runtime):
    resp = client.post(f"/api/deployments/{GUILD}", json={"entry": "main.js", "bundle": "BREAK_DB"}, headers=auth)
    assert resp.status_code == 500
    assert resp.get_json() == {"message": "Internal server error"}
    assert uuid.UUID(resp.headers["X-Request-ID"])
    assert [path for path, _ in runtime.calls] == [f"/guilds/{GUILD}/load", f"/guilds/{GUILD}/restore"]


def test_include_bundle_must_be_a_boolean(client, auth):
    resp = client.get(f"/api/deployments/{GUILD}?include_bundle=maybe", headers=auth)
    assert resp.status_code == 400
    assert "include_bundle" in resp.get_json()["message"]


# -- logs and plugins ------------------------------------------------------------------------
def test_logs_are_chronological_and_limited(client, auth, db):
    repo.append_logs(
        db,
        [
            {"guild_id": GUILD, "timestamp": 1000 + i, "level": "info", "target": "flora:js", "message": f"line {i}"}
            for i in range(5)
        ]
        + [{"guild_id": "42", "timestamp": 1, "level": "info", "target": "flora:js", "message": "other guild"}],
    )
    entries = client.get(f"/api/logs/{GUILD}", headers=auth).get_json()
    assert [e["message"] for e in entries] == [f"line {i}" for i in range(5)]
    assert entries[0] == {"timestamp": 1000, "level": "info", "target": "flora:js", "guild_id": GUILD, "message": "line 0"}
    assert [e["message"] for e in client.get(f"/api/logs/{GUILD}?limit=2", headers=auth).get_json()] == ["line 3", "line 4"]
    assert len(client.get(f"/api/logs/{GUILD}?limit=5000", headers=auth).get_json()) == 5  # clamped to 1000
    assert client.get(f"/api/logs/{GUILD}?limit=0", headers=auth).get_json() == []


@pytest.mark.parametrize("limit", ["-1", "abc", "1.5", ""])
def test_logs_limit_must_be_a_non_negative_integer(client, auth, limit):
    resp = client.get(f"/api/logs/{GUILD}?limit={limit}", headers=auth)
    assert resp.status_code == 400
    assert "`limit`" in resp.get_json()["message"]


def test_plugins_lists_the_built_ins(client, auth):
    described = {p["name"]: p for p in client.get("/api/plugins", headers=auth).get_json()}
    assert described["api_core"]["registered"]["blueprint"] == ["flora_api"]
    assert described["api_core"]["module"] == "flora_http.plugin"
    assert "sqlite_storage" in described


def test_a_plugin_blueprint_is_served_with_the_same_global_behaviour(config, db, runtime):
    from flask import Blueprint

    from flora_core import hookimpl

    class Hello:
        @hookimpl
        def flora_register_blueprints(self, register):
            bp = Blueprint("hello", __name__, url_prefix="/api/hello")

            @bp.get("/")
            def hello():
                return {"hello": "world"}

            @bp.get("/boom")
            def boom():
                raise RuntimeError("secret detail")

            register(bp)

    plugins = Plugins()
    plugins.add(Hello(), "hello")
    try:
        client = create_app(config, plugins, db, runtime.client()).test_client()
        resp = client.get("/api/hello")
        assert resp.get_json() == {"hello": "world"} and resp.headers["X-Request-ID"]
        boom = client.get("/api/hello/boom")
        assert boom.status_code == 500 and boom.get_json() == {"message": "Internal server error"}
        assert client.get("/api/health").get_data(as_text=True) == "ok"
        assert {p["name"]: p for p in plugins.describe()}["hello"]["registered"] == {"blueprint": ["hello"]}
    finally:
        plugins.remove("hello")


def test_the_api_process_never_imports_v8(tmp_path):
    code = (
        "import sys\n"
        "from flora_http.app import create_app\n"
        "create_app()\n"
        "print(sorted(m for m in sys.modules if 'mini_racer' in m))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=_serve_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_package_imports_nothing_before_serve_can_monkey_patch(tmp_path):
    # `python -m flora_http.serve` runs flora_http/__init__.py before serve.py's first line.
    code = "import sys, flora_http\nprint(sorted(m for m in ('flask', 'ssl', 'http.client', 'flora_core.bus') if m in sys.modules))\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


# -- python -m flora_http.serve ------------------------------------------------------------------
def _serve_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNTIME_", "API_", "DATABASE_", "FLORA_"))}
    env.update(FLORA_DATA_DIR=str(tmp_path / "data"), API_ADDRESS="127.0.0.1", API_PORT="0", **extra)
    return env


def test_serve_answers_and_stops_on_sigterm(tmp_path):
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "flora_http.serve"], cwd=tmp_path, env=_serve_env(tmp_path), stderr=subprocess.PIPE, text=True
    )
    try:
        port = None
        for line in proc.stderr:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)/api", line)
            if found:
                port = int(found.group(1))
                break
        assert port, "the API did not report its address"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=5) as resp:
            assert resp.read() == b"ok"
            assert resp.headers["X-Request-ID"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def test_serve_config_error_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flora_http.serve"],
        cwd=tmp_path,
        env=_serve_env(tmp_path, RUNTIME_MAX_WORKERS="0"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["flora api: invalid RUNTIME_MAX_WORKERS: must be between 1 and 64, got 0"]


# -- guild-scoped tokens (flora tokens create --guild-id G --scope deploy) ------------------------
OTHER_GUILD = "223456789012345678"


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_a_guild_scoped_deploy_token_reaches_its_guild_only_and_cannot_touch_kv(client, db):
    token, _ = repo.create_token(db, label="ci", scope="deploy", guild_ids=[GUILD])
    files = {"entry": "src/main.ts", "files": [{"path": "src/main.ts", "contents": "console.log('ci');\n"}]}
    assert client.post(f"/api/deployments/{GUILD}", json=files, headers=_bearer(token)).status_code == 200
    assert client.get(f"/api/deployments/{GUILD}/history", headers=_bearer(token)).status_code == 200
    elsewhere = client.post(f"/api/deployments/{OTHER_GUILD}", json=files, headers=_bearer(token))
    assert (elsewhere.status_code, elsewhere.get_json()) == (403, {"message": "Forbidden: this token does not reach this guild"})
    kv = client.post("/api/kv/stores", json={"guild_id": GUILD, "store_name": "notes"}, headers=_bearer(token))
    assert (kv.status_code, kv.get_json()) == (403, {"message": "Forbidden: this token's scope is deploy; this needs admin"})
    # the list of deployments shows only what the token reaches
    admin, _ = repo.create_token(db, label="admin")
    assert client.post(f"/api/deployments/{OTHER_GUILD}", json=files, headers=_bearer(admin)).status_code == 200
    listed = client.get("/api/deployments", headers=_bearer(token)).get_json()
    assert [d["guild_id"] for d in listed] == [GUILD]


def test_a_read_token_reads_and_cannot_deploy_or_roll_back(client, db):
    admin, _ = repo.create_token(db, label="admin")
    files = {"entry": "src/main.ts", "files": [{"path": "src/main.ts", "contents": "console.log(1);\n"}]}
    assert client.post(f"/api/deployments/{GUILD}", json=files, headers=_bearer(admin)).status_code == 200
    rev = client.get(f"/api/deployments/{GUILD}/history", headers=_bearer(admin)).get_json()[0]["id"]
    reader, _ = repo.create_token(db, label="dashboard", scope="read")
    assert client.get(f"/api/deployments/{GUILD}", headers=_bearer(reader)).status_code == 200
    assert client.get(f"/api/logs/{GUILD}", headers=_bearer(reader)).status_code == 200
    for path in (f"/api/deployments/{GUILD}", f"/api/deployments/{GUILD}/rollback/{rev}"):
        resp = client.post(path, json=files, headers=_bearer(reader))
        assert (resp.status_code, resp.get_json()) == (
            403,
            {"message": "Forbidden: this token's scope is read; this needs deploy"},
        )
