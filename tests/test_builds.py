"""The build API (flora §3.3 routes 4–6, §3.5, §3.6, §7.3): ``POST /api/builds``, its status and its log.

In process (Flask's client, the real bundler, real SQLite): every bad archive is one 400 with flora's
message and leaves nothing behind; a good one builds. End to end: the original CLI's deploy sequence, byte
for byte, against a real ``flora serve`` on the emulator, and a build read through another API process
(``flora api -w 2``).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from urllib.parse import urlsplit

import pytest
from conftest import bot_replies, emulator_guild, free_port, http_json, postgres_url, start_flora, stop_flora, wait_for  # noqa: F401
from test_http_api import GUILD, auth, client, config, db, make_config, plugins, runtime, shared_data_dir, token  # noqa: F401

from flora_core.storage import repo
from flora_http import builds

PROJECT = {
    "src/main.ts": 'import { reply } from "./utils/reply";\nimport { Kind } from "./types";\n\n'
    'on("messageCreate", async (ctx) => {\n  if (ctx.msg.content === "!built") await ctx.reply(reply(Kind.Built));\n});\n',
    "src/utils/reply.ts": 'import type { Kind } from "../types";\nexport function reply(kind: Kind): string {\n'
    "  return `built on the server (${kind})`;\n}\n",
    "src/types.ts": 'export enum Kind { Built = "zip" }\n',
    "package.json": '{"name": "built", "version": "1.0.0"}\n',
}


def make_zip(files: dict[str, str | bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, contents in files.items():
            zf.writestr(name, contents)
    return buf.getvalue()


def multipart(fields: dict[str, str], zip_bytes: bytes | None) -> tuple[bytes, str]:
    """The body the original CLI's ``FormData`` sends (text fields, then ``project.zip`` as a Blob)."""
    boundary = f"----formdata-undici-0{uuid.uuid4().int % 10**11:011d}"
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    if zip_bytes is not None:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="project_zip"; filename="project.zip"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n".encode()
            + zip_bytes
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# -- in process -------------------------------------------------------------------------------------
@pytest.fixture
def build_tmp(tmp_path, monkeypatch):
    """The folder builds extract into, to see that a refused archive leaves nothing there."""
    folder = tmp_path / "build-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def post_build(client, auth, zip_bytes: bytes | None, guild: str = GUILD, entry: str = "src/main.ts"):
    body, ctype = multipart({"guild_id": guild, "entry": entry}, zip_bytes)
    return client.post("/api/builds", data=body, headers={**auth, "Content-Type": ctype})


def wait_finished(client, auth, build_id: str) -> dict:
    def finished():
        body = client.get(f"/api/builds/{build_id}", headers=auth).get_json()
        return body if body["status"] in ("done", "failed") else None

    return wait_for(finished, timeout=90, interval=0.1, message=f"build {build_id} to finish")


def _patched_zip(files: dict[str, bytes], old: bytes, new: bytes) -> bytes:
    data = make_zip(files)
    assert data.count(old) == 2 and len(old) == len(new)  # the local header and the central directory
    return data.replace(old, new)


def _symlink_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("src/main.ts", "export {};\n")
        link = zipfile.ZipInfo("src/secrets.ts")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/proc/self/environ")
    return buf.getvalue()


def _lying_zip() -> bytes:
    """An entry that declares 1,000 bytes and inflates to 9 MiB (a zip bomb's trick)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("src/main.ts", "export {};\n")
        zf.writestr("src/bomb.ts", b"\0" * (9 * 1024 * 1024))
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        info = zf.getinfo("src/bomb.ts")
    size = (9 * 1024 * 1024).to_bytes(4, "little")
    for at in (i for i in range(len(data) - 3) if data[i : i + 4] == size):
        data[at : at + 4] = (1000).to_bytes(4, "little")  # local header and central directory
    assert info.file_size == 9 * 1024 * 1024
    return bytes(data)


BAD_ARCHIVES = {
    "traversal": (
        lambda: make_zip({"src/main.ts": "export {};", "../evil.ts": "x"}),
        "Bad request: Path traversal not allowed: ../evil.ts",
    ),
    "nested traversal": (
        lambda: make_zip({"src/main.ts": "export {};", "src/../../evil.ts": "x"}),
        "Bad request: Path traversal not allowed: src/../../evil.ts",
    ),
    "backslash traversal": (
        lambda: make_zip({"src/main.ts": "export {};", "src\\..\\..\\evil.ts": "x"}),
        "Bad request: Path traversal not allowed: src\\..\\..\\evil.ts",
    ),
    "absolute": (
        lambda: make_zip({"src/main.ts": "export {};", "/etc/cron.d/x": "x"}),
        "Bad request: Absolute path not allowed: /etc/cron.d/x",
    ),
    "drive": (lambda: make_zip({"src/main.ts": "export {};", "C:/x.ts": "x"}), "Bad request: Absolute path not allowed: C:/x.ts"),
    "nul": (
        lambda: _patched_zip({"src/main.ts": b"export {};", "src/aXb.ts": b"x"}, b"src/aXb.ts", b"src/a\0b.ts"),
        "Bad request: Null byte not allowed in path: src/a\0b.ts",
    ),
    "symlink": (_symlink_zip, "Bad request: Symbolic link not allowed: src/secrets.ts"),
    "too many files": (
        lambda: make_zip({"src/main.ts": "export {};", **{f"src/f{i}.ts": "" for i in range(1000)}}),
        "Bad request: Zip contains more than 1000 files",
    ),
    "file too large": (
        lambda: make_zip({"src/main.ts": "export {};", "src/big.ts": b"\0" * (10 * 1024 * 1024 + 1)}),
        "Bad request: File src/big.ts exceeds maximum size of 10485760 bytes",
    ),
    # zipfile stops inflating at the declared size, then the checksum does not match
    "total too large": (
        lambda: make_zip({"src/main.ts": "export {};", **{f"src/z{i}.ts": b"\0" * (10 * 1024 * 1024) for i in range(20)}}),
        "Bad request: Total uncompressed size exceeds limit of 209715200 bytes",
    ),
    "lying sizes": (
        _lying_zip,
        "Bad request: project_zip is not a valid zip archive: src/bomb.ts: Bad CRC-32 for file 'src/bomb.ts'",
    ),
    "disallowed file": (
        lambda: make_zip({"src/main.ts": "export {};", "package-lock.json": "{}"}),
        "Bad request: Disallowed file in project: package-lock.json",
    ),
    "nested disallowed file": (
        lambda: make_zip({"src/main.ts": "export {};", "src/.npmrc": "registry=http://evil"}),
        "Bad request: Disallowed file in project: src/.npmrc",
    ),
    "not a zip": (lambda: b"PK\x03\x04 this is not a zip", None),
    "dependencies": (
        lambda: make_zip({"src/main.ts": "export {};", "package.json": '{"dependencies": {"left-pad": "1.3.0"}}'}),
        "Bad request: package.json lists 1 dependencies; npm dependencies are not supported by this server yet "
        "(a script may import only its own files)",
    ),
    "no entry": (lambda: make_zip({"src/other.ts": "export {};"}), "Bad request: entry file not found: src/main.ts"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARCHIVES))
def test_a_bad_archive_is_one_400_with_flora_message_and_nothing_is_stored(client, auth, db, build_tmp, case):
    make, message = BAD_ARCHIVES[case]
    resp = post_build(client, auth, make())
    assert resp.status_code == 400, resp.get_data(as_text=True)
    if message is None:
        assert resp.get_json()["message"].startswith("Bad request: project_zip is not a valid zip archive")
    else:
        assert resp.get_json() == {"message": message}
    assert db.fetchall("SELECT * FROM builds") == [] and db.fetchall("SELECT * FROM build_logs") == []
    assert list(build_tmp.iterdir()) == []


def test_missing_fields_and_bad_entry_get_flora_messages(client, auth, db):
    zip_bytes = make_zip(PROJECT)
    for fields, expected in (({"entry": "src/main.ts"}, "`guild_id` is required"), ({"guild_id": GUILD}, "`entry` is required")):
        body, ctype = multipart(fields, zip_bytes)
        resp = client.post("/api/builds", data=body, headers={**auth, "Content-Type": ctype})
        assert (resp.status_code, resp.get_json()) == (400, {"message": f"Bad request: {expected}"})
    body, ctype = multipart({"guild_id": GUILD, "entry": "src/main.ts"}, None)
    resp = client.post("/api/builds", data=body, headers={**auth, "Content-Type": ctype})
    assert resp.get_json() == {"message": "Bad request: `project_zip` is required"}
    resp = client.post("/api/builds", json={"guild_id": GUILD}, headers=auth)
    assert resp.status_code == 400 and "multipart/form-data" in resp.get_json()["message"]
    resp = post_build(client, auth, zip_bytes, entry="../outside.ts")
    assert resp.get_json() == {"message": "Bad request: Entry file is not inside workspace: ../outside.ts"}
    resp = post_build(client, auth, zip_bytes, guild="not-a-guild")
    assert resp.status_code == 400
    assert db.fetchall("SELECT * FROM builds") == []


def test_reading_a_build_needs_a_token_and_an_existing_build(client, auth):
    assert client.get("/api/builds/nope").status_code == 401
    resp = client.get("/api/builds/nope", headers=auth)
    assert (resp.status_code, resp.get_json()) == (404, {"message": "Resource not found: build nope not found"})
    assert client.get("/api/builds/nope/logs", headers=auth).status_code == 404


def test_a_build_needs_the_deploy_scope(client, db):
    read = repo.create_token(db, label="read", scope="read")[0]
    resp = post_build(client, {"Authorization": f"Bearer {read}"}, make_zip(PROJECT))
    assert (resp.status_code, resp.get_json()) == (403, {"message": "Forbidden: this token's scope is read; this needs deploy"})
    other = repo.create_token(db, label="elsewhere", scope="deploy", guild_ids=["42"])[0]
    resp = post_build(client, {"Authorization": f"Bearer {other}"}, make_zip(PROJECT))
    assert resp.status_code == 403
    deploy = repo.create_token(db, label="ci", scope="deploy", guild_ids=[GUILD])[0]
    resp = post_build(client, {"Authorization": f"Bearer {deploy}"}, make_zip(PROJECT))
    assert resp.status_code == 200, resp.get_json()
    wait_finished(client, {"Authorization": f"Bearer {deploy}"}, resp.get_json()["build_id"])


def test_a_project_builds_with_logs_artifact_and_flora_limits(client, auth, db, build_tmp):
    resp = post_build(client, auth, make_zip(PROJECT))
    assert resp.status_code == 200, resp.get_json()
    created = resp.get_json()
    assert created["status"] == "queued" and list(created) == ["build_id", "status"]
    again = post_build(client, auth, make_zip(PROJECT))  # flora: 5 s between a guild's builds
    assert (again.status_code, again.get_json()) == (429, {"message": "Build creation is rate limited for this guild"})

    build = wait_finished(client, auth, created["build_id"])
    assert build["status"] == "done", build
    assert list(build) == ["build_id", "guild_id", "entry", "status", "logs", "started_at", "finished_at", "artifact"]
    assert build["logs"] == [
        "Extracting project...",
        f"Extracted 4 files ({sum(len(c.encode()) for c in PROJECT.values())}B)",
        "Validating package.json...",
        "Found 0 dependencies",
        "Bundling src/main.ts",
        build["logs"][5],
        "Sourcemap generated",
        "Build complete",
    ], build["logs"]
    assert build["logs"][5].startswith("Bundle size: ")
    assert "built on the server" in build["artifact"]["bundle"] and "sourceMappingURL" not in build["artifact"]["bundle"]
    assert sorted(json.loads(build["artifact"]["source_map"])["sources"]) == ["src/main.ts", "src/types.ts", "src/utils/reply.ts"]
    assert build["started_at"].endswith("Z") and build["finished_at"] >= build["started_at"]
    assert list(build_tmp.iterdir()) == []  # the extracted project is gone with the build

    resp = client.get(f"/api/builds/{created['build_id']}/logs", headers=auth)  # finished: replay, then done
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-cache"
    text = resp.get_data(as_text=True)
    assert text == "".join(f"event: log\ndata: {line}\n\n" for line in build["logs"]) + 'event: done\ndata: {"status":"done"}\n\n'


def test_a_failing_build_says_why_and_oversized_bundles_fail(client, auth, db, monkeypatch):
    broken = make_zip({"src/main.ts": 'import { x } from "./missing";\nconsole.log(x);\n'})
    resp = post_build(client, auth, broken)
    build = wait_finished(client, auth, resp.get_json()["build_id"])
    assert build["status"] == "failed" and "artifact" not in build
    assert "missing" in build["error"] and build["logs"][-1] == f"Build failed: {build['error']}"
    assert "\x1b[" not in "".join(build["logs"])

    monkeypatch.setattr(builds, "MAX_BUNDLE_BYTES", 100)
    monkeypatch.setattr(builds, "MIN_INTERVAL_SECS", 0)
    resp = post_build(client, auth, make_zip(PROJECT))
    build = wait_finished(client, auth, resp.get_json()["build_id"])
    assert build["status"] == "failed" and "artifact" not in build
    assert build["error"].startswith("Bundle size ") and build["error"].endswith(" exceeds limit of 100B")
    assert db.fetchone("SELECT bundle FROM builds WHERE build_id = ?", (build["build_id"],))["bundle"] is None


def test_builds_expire_and_a_build_whose_process_died_times_out(client, auth, db):
    old = "2020-01-01T00:00:00.000Z"
    db.execute(
        "INSERT INTO builds (build_id, guild_id, entry, status, created_at, finished_at) VALUES"
        " ('00000000-0000-4000-8000-000000000001', ?, 'src/main.ts', 'done', '2020-01-01T00:00:00.000000+00:00', ?)",
        (GUILD, old),
    )
    db.execute("INSERT INTO build_logs (build_id, line) VALUES ('00000000-0000-4000-8000-000000000001', 'Build complete')")
    db.execute(
        "INSERT INTO builds (build_id, guild_id, entry, status, created_at) VALUES"
        " ('00000000-0000-4000-8000-000000000002', ?, 'src/main.ts', 'running', '2020-01-01T00:00:00.000000+00:00')",
        (GUILD,),
    )
    resp = client.get("/api/builds/00000000-0000-4000-8000-000000000002", headers=auth)
    assert resp.get_json()["status"] == "failed" and resp.get_json()["error"] == "Build timed out"
    text = client.get("/api/builds/00000000-0000-4000-8000-000000000002/logs", headers=auth).get_data(as_text=True)
    assert text == 'event: done\ndata: {"status":"failed"}\n\n'
    builds.prune(db)
    assert client.get("/api/builds/00000000-0000-4000-8000-000000000001", headers=auth).status_code == 404
    assert db.fetchall("SELECT * FROM build_logs WHERE build_id = '00000000-0000-4000-8000-000000000001'") == []


# -- end to end: the original CLI's sequence against flora serve --------------------------------------
def _request(api: str, method: str, path: str, token: str, body: bytes | None = None, headers: dict | None = None):
    parts = urlsplit(api)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=90)
    conn.request(method, parts.path + path, body=body, headers={"authorization": f"Bearer {token}", **(headers or {})})
    return conn, conn.getresponse()


def cli_deploy(
    create_api: str, follow_api: str, token: str, guild_id: str, project: dict[str, str], follow_api_kind: str = "flora serve"
) -> tuple[list[str], dict]:
    """§7.3 steps 2–6 as the original CLI sends them; returns the ``data:`` lines it printed and the build."""
    body, ctype = multipart({"guild_id": guild_id, "entry": "src/main.ts"}, make_zip(project))
    conn, resp = _request(create_api, "POST", "/builds", token, body, {"content-type": ctype})
    created = json.loads(resp.read())
    conn.close()
    assert resp.status == 200, created
    assert created["status"] == "queued"

    conn, resp = _request(follow_api, "GET", f"/builds/{created['build_id']}/logs", token)
    assert resp.status == 200
    assert resp.getheader("content-type") == "text/event-stream"
    assert resp.getheader("cache-control") == "no-cache"
    if "flora api" not in follow_api_kind:  # gunicorn owns hop-by-hop headers and sends its own
        assert resp.getheader("connection") == "keep-alive"
    printed, raw = [], b""
    deadline = time.monotonic() + 60  # the CLI's own wait
    while time.monotonic() < deadline:
        line = resp.readline()
        if not line:
            break
        raw += line
        text = line.decode().rstrip("\n")
        if text.startswith("data:"):
            printed.append(text[len("data: ") :])
        if text.startswith("event: done"):
            break
    else:
        raise AssertionError("the build log did not end within the CLI's 60 s")
    conn.close()
    assert raw.startswith(b"event: log\ndata: Extracting project...\n\n"), raw

    status, build = http_json("GET", f"{follow_api}/builds/{created['build_id']}", token=token)
    assert status == 200 and build["status"] == "done", build
    files = [{"path": p, "contents": c} for p, c in project.items() if p.endswith(".ts") or p == "package.json"]
    deployment = {
        "entry": build["entry"],
        "files": files,
        "bundle": build["artifact"]["bundle"],
        "source_map": {"path": "bundle.js.map", "contents": build["artifact"]["source_map"]},
    }
    status, body = http_json(
        "POST", f"{create_api}/deployments/{build['guild_id']}", deployment, token=token, headers={"x-flora-deploy-source": "cli"}
    )
    assert status == 200, body
    return printed, build


def test_the_original_cli_deploy_sequence_against_flora_serve(emulator, tmp_path):
    g = emulator_guild(emulator, "Builds")
    server = start_flora(emulator, tmp_path)
    try:  # a refused archive is not a build: it does not count toward flora's 5 s between builds
        body, ctype = multipart(
            {"guild_id": g["id"], "entry": "src/main.ts"}, make_zip({"src/main.ts": "export {};", "../../etc/x": "x"})
        )
        conn, resp = _request(server.api, "POST", "/builds", server.token, body, {"content-type": ctype})
        assert (resp.status, json.loads(resp.read())) == (
            400,
            {"message": "Bad request: Path traversal not allowed: ../../etc/x"},
        )
        conn.close()
        printed, build = cli_deploy(server.api, server.api, server.token, g["id"], PROJECT)
        assert printed == build["logs"], printed  # the CLI stops at `event: done`
        emulator.user_says(g["channel_id"], g["user_id"], "!built")
        wait_for(
            lambda: [m for m in bot_replies(emulator, g["channel_id"]) if m["content"] == "built on the server (zip)"],
            timeout=15,
            message="the deployed build's reply",
        )
        status, history = http_json("GET", f"{server.api}/deployments/{g['id']}/history", token=server.token)
        assert history[0]["deploy_source"] == "cli" and history[0]["status"] == "success"
        _the_api_answers_while_an_archive_is_inflated(server)

    finally:
        stop_flora(server)


def _the_api_answers_while_an_archive_is_inflated(server) -> None:
    """190 MiB of files (about half a second of inflating) are extracted off the gevent loop: other
    requests keep being answered while the upload's request waits for it."""
    import threading

    files = {"src/main.ts": "export {};\n", **{f"assets/blob{i}.bin": b"\0" * (10 * 1024 * 1024) for i in range(19)}}
    body, ctype = multipart({"guild_id": "323456789012345678", "entry": "src/main.ts"}, make_zip(files))
    done, answer = threading.Event(), {}

    def upload():
        conn, resp = _request(server.api, "POST", "/builds", server.token, body, {"content-type": ctype})
        answer["status"], answer["body"] = resp.status, json.loads(resp.read())
        conn.close()
        done.set()

    started = threading.Event()
    thread = threading.Thread(target=lambda: (started.set(), upload()))
    thread.start()
    started.wait(5)
    answered = 0
    deadline = time.monotonic() + 60
    while not done.is_set() and time.monotonic() < deadline:
        if http_json("GET", f"{server.api}/health", timeout=5)[0] == 200 and not done.is_set():
            answered += 1
        time.sleep(0.01)
    thread.join(30)
    assert answer["status"] == 200, answer
    assert answered >= 5, f"only {answered} health checks answered while the archive was inflated"
    status, build = http_json("GET", f"{server.api}/builds/{answer['body']['build_id']}", token=server.token)
    assert build["logs"][1] == "Extracted 20 files (190.0MB)"


def test_a_build_started_on_one_api_process_is_read_from_another(emulator, tmp_path):
    g = emulator_guild(emulator, "Builds across")
    server = start_flora(emulator, tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flora_cli", "api", "--workers", "2"],
        env=dict(server.env, API_PORT=str(port)),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    gunicorn = f"http://127.0.0.1:{port}/api"
    try:
        wait_for(lambda: _health(gunicorn), timeout=30, message="flora api up")
        printed, build = cli_deploy(gunicorn, server.api, server.token, g["id"], PROJECT)
        assert printed == build["logs"] and printed[-1] == "Build complete"
        for _ in range(4):  # whichever gunicorn worker answers
            status, again = http_json("GET", f"{gunicorn}/builds/{build['build_id']}", token=server.token)
            assert status == 200 and again["artifact"] == build["artifact"]
            conn, resp = _request(gunicorn, "GET", f"/builds/{build['build_id']}/logs", server.token)
            assert resp.status == 200 and resp.getheader("content-type") == "text/event-stream"
            assert (
                resp.read().decode()
                == "".join(f"event: log\ndata: {line}\n\n" for line in build["logs"]) + 'event: done\ndata: {"status":"done"}\n\n'
            )
            conn.close()
        emulator.user_says(g["channel_id"], g["user_id"], "!built")
        wait_for(
            lambda: [m for m in bot_replies(emulator, g["channel_id"]) if m["content"] == "built on the server (zip)"],
            timeout=15,
            message="the reply of a build made through gunicorn",
        )
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        stop_flora(server)
    assert "Traceback" not in out, out


def _health(api: str) -> bool:
    try:
        return http_json("GET", f"{api}/health", timeout=2)[0] == 200
    except OSError:
        time.sleep(0.1)
        return False


def test_the_log_stream_is_live_while_the_build_runs(client, auth, monkeypatch):
    """Lines written while a build runs reach a follower as they come, then ``done``."""
    import threading

    from flora_core.bundler import Bundler

    release, entered = threading.Event(), threading.Event()
    real = Bundler.bundle_folder_with_map

    def held(self, *args):
        entered.set()
        assert release.wait(30)
        return real(self, *args)

    monkeypatch.setattr(Bundler, "bundle_folder_with_map", held)
    build_id = post_build(client, auth, make_zip(PROJECT)).get_json()["build_id"]
    assert entered.wait(30)
    resp = client.get(f"/api/builds/{build_id}/logs", headers=auth, buffered=False)
    chunks = iter(resp.response)
    first = next(chunks)
    first = first.decode() if isinstance(first, bytes) else first
    assert first.endswith("event: log\ndata: Bundling src/main.ts\n\n") and "Build complete" not in first
    assert client.get(f"/api/builds/{build_id}", headers=auth).get_json()["status"] == "running"
    release.set()
    rest = "".join(c.decode() if isinstance(c, bytes) else c for c in chunks)
    assert rest.startswith("event: log\ndata: Bundle size: ")
    assert rest.endswith('event: log\ndata: Build complete\n\nevent: done\ndata: {"status":"done"}\n\n')
    resp.close()


def test_builds_on_postgresql(make_config, plugins, runtime, postgres_url):  # noqa: F811 - fixtures
    """The same rows on PostgreSQL: a build, its lines, the limits, expiry."""
    from flora_core.storage import open_database
    from flora_http import create_app

    pg = open_database(make_config(DATABASE_URL=postgres_url), plugins)
    try:
        app = create_app(make_config(DATABASE_URL=postgres_url), plugins, pg, runtime.client())
        pg_client, pg_auth = app.test_client(), {"Authorization": f"Bearer {repo.create_token(pg, label='pg')[0]}"}
        resp = post_build(pg_client, pg_auth, make_zip(PROJECT))
        assert resp.status_code == 200, resp.get_json()
        assert post_build(pg_client, pg_auth, make_zip(PROJECT)).status_code == 429
        build = wait_finished(pg_client, pg_auth, resp.get_json()["build_id"])
        assert build["status"] == "done" and build["logs"][-1] == "Build complete" and "artifact" in build
        refused = post_build(pg_client, pg_auth, make_zip({"src/main.ts": "x", "/abs.ts": "x"}), guild="223456789012345678")
        assert refused.get_json() == {"message": "Bad request: Absolute path not allowed: /abs.ts"}
        pg.execute("UPDATE builds SET finished_at = '2020-01-01T00:00:00.000Z'")
        builds.prune(pg)
        assert pg.fetchall("SELECT * FROM builds") == [] and pg.fetchall("SELECT * FROM build_logs") == []
    finally:
        pg.close()


def test_a_build_that_waited_out_its_time_in_the_queue_fails_as_timed_out(client, auth, monkeypatch):
    monkeypatch.setattr(builds, "BUILD_TIMEOUT_SECS", 0)
    resp = post_build(client, auth, make_zip(PROJECT))
    build = wait_finished(client, auth, resp.get_json()["build_id"])
    assert (build["status"], build["error"], build["logs"][-1]) == ("failed", "Build timed out", "Build failed: Build timed out")
    assert "started_at" not in build and "artifact" not in build
