"""Secrets end to end: routes and CLI of a real `flora serve`, and fetch() from a deployed script
against a local HTTP server (allowed through FETCH_ALLOWED_PRIVATE_HOSTS), with the SSRF guard."""

from __future__ import annotations

import http.server
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from conftest import BOT_TOKEN, deploy_files, emulator_guild, free_port, http_json, start_flora, stop_flora

from flora_plugins.secrets.store import DISABLED_MESSAGE

MASTER_KEY = "5e" * 32
SECRET_VALUE = "s3cr3t-Value_42"

SCRIPT = r"""
const sub = (s) => typeof s === 'string' ? s.replace(/\{S:([^}]+)\}/g, (_, n) => String(secrets.get(n))) : s;
console.log('NAMES ' + JSON.stringify({ known: typeof secrets.get('API_KEY'), unknown: typeof secrets.get('NOPE'),
  names: globalThis.__floraSecretNames }));
on('messageCreate', async (ctx) => {
  const m = ctx.msg.content;
  if (ctx.msg.author.bot || !m.startsWith('fetch ')) return;
  const req = JSON.parse(m.slice(6));
  const headers = {};
  for (const [k, v] of Object.entries(req.headers || {})) headers[k] = sub(v);
  let out;
  try {
    const res = await fetch(sub(req.url), { method: req.method, headers, body: sub(req.body), redirect: req.redirect });
    const text = await res.text();
    out = { status: res.status, ok: res.ok, url: res.url, redirected: res.redirected, type: res.headers.get('content-type'),
            body: res.headers.get('content-type') === 'application/json' ? JSON.parse(text) : text };
  } catch (e) {
    out = { error: e.message, code: e.code };
  }
  console.log(`FETCH ${req.id} ${JSON.stringify(out)}`);
});
"""


class Echo(http.server.BaseHTTPRequestHandler):
    """A local web server: echoes requests, redirects, and misbehaves on demand."""

    seen: list = []
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, length: bool = True):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _handle(self):
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size).decode() if size else ""
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        Echo.seen.append(record)
        port = self.server.server_address[1]
        path = self.path.split("?", 1)[0]
        if path == "/echo":
            self._send(200, json.dumps(record).encode(), {"Content-Type": "application/json"})
        elif path == "/big":
            self._send(200, b"x" * 10_000, {"Content-Type": "text/plain"})
        elif path == "/big-stream":  # no Content-Length: only counting while reading catches it
            self.close_connection = True
            self._send(200, b"y" * 10_000, {"Content-Type": "text/plain"}, length=False)
        elif path == "/slow":
            time.sleep(2.5)
            self._send(200, b"late")
        elif path == "/redirect-same":
            self._send(302, headers={"Location": "/echo?hop=same"})
        elif path == "/redirect-other":
            self._send(302, headers={"Location": f"http://localhost:{port}/echo?hop=other"})
        elif path == "/redirect-metadata":
            self._send(301, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        elif path == "/redirect-loopback":
            self._send(307, headers={"Location": f"http://127.0.0.1:{self.server.closed_port}/"})
        elif path == "/redirect-loop":
            self._send(302, headers={"Location": "/redirect-loop"})
        else:
            self._send(404, b"not found")

    do_GET = do_POST = do_PUT = _handle


@pytest.fixture(scope="module")
def echo():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    server.closed_port = free_port()  # nothing listens there
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory, echo):
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    port = echo.server_address[1]
    server = None
    try:
        server = start_flora(
            emu,
            tmp_path_factory.mktemp("secrets"),
            SECRETS_MASTER_KEY=MASTER_KEY,
            FETCH_ALLOWED_PRIVATE_HOSTS=f"127.0.0.1:{port},localhost:{port}",
            FETCH_TIMEOUT_SECS=1,
            FETCH_MAX_RESPONSE_BYTES=4096,
        )
        server.emu = emu
        server.echo = f"http://127.0.0.1:{port}"
        yield server
    finally:
        if server is not None:
            stop_flora(server)
        emu.stop()


_ids = itertools.count(1)


def new_guild(server, name: str) -> dict:
    """A guild with the starter script already in place (a deploy racing the bootstrap would be overwritten)."""
    g = emulator_guild(server.emu, name)
    server.wait_log(g["id"], "starter script deployed")
    return g


def do_fetch(server, g, url, **req) -> dict:
    req.update(id=next(_ids), url=url)
    server.emu.user_says(g["channel_id"], g["user_id"], "fetch " + json.dumps(req))
    entry = server.wait_log(g["id"], f"FETCH {req['id']} ", timeout=20)
    return json.loads(entry["message"].split(" ", 2)[2])


def test_routes_encrypt_at_rest_and_fetch_substitutes_for_allowed_hosts_only(world):
    g = new_guild(world, "Secrets")
    api, token = world.api, world.token
    # routes 17-19
    assert http_json("GET", f"{api}/secrets/{g['id']}")[0] == 401
    status, body = http_json(
        "PUT", f"{api}/secrets/{g['id']}/API_KEY", {"value": SECRET_VALUE, "allowed_hosts": ["127.0.0.1"]}, token=token
    )
    assert (status, body) == (200, {"name": "API_KEY", "allowed_hosts": ["127.0.0.1"]})
    assert (
        http_json(
            "PUT", f"{api}/secrets/{g['id']}/OTHER", {"value": "other-value", "allowed_hosts": ["*.example.com"]}, token=token
        )[0]
        == 200
    )
    assert http_json("PUT", f"{api}/secrets/{g['id']}/ANY", {"value": "any-value"}, token=token)[1] == {
        "name": "ANY",
        "allowed_hosts": [],
    }
    status, body = http_json("PUT", f"{api}/secrets/{g['id']}/BAD", {"allowed_hosts": []}, token=token)
    assert status == 422 and "value" in body["message"]
    assert http_json("PUT", f"{api}/secrets/{g['id']}/BAD", {"value": 1}, token=token)[0] == 422
    assert http_json("PUT", f"{api}/secrets/{g['id']}/BAD", {"value": "x", "allowed_hosts": "a.com"}, token=token)[0] == 422
    assert http_json("GET", f"{api}/secrets/not-a-guild", token=token)[0] == 400
    assert http_json("GET", f"{api}/secrets/{g['id']}", token=token) == (
        200,
        [
            {"name": "ANY", "allowed_hosts": []},
            {"name": "API_KEY", "allowed_hosts": ["127.0.0.1"]},
            {"name": "OTHER", "allowed_hosts": ["*.example.com"]},
        ],
    )
    assert http_json("DELETE", f"{api}/secrets/{g['id']}/ANY", token=token) == (200, {"deleted": True})
    assert http_json("DELETE", f"{api}/secrets/{g['id']}/ANY", token=token) == (200, {"deleted": True})  # absent: same answer

    # never stored in clear
    db_path = world.data_dir / "flora.db"
    conn = sqlite3.connect(db_path)
    rows = conn.execute("SELECT * FROM guild_secrets WHERE guild_id = ?", (g["id"],)).fetchall()
    conn.close()
    assert len(rows) == 2 and not any(SECRET_VALUE in str(col) for row in rows for col in row)
    for path in world.data_dir.glob("flora.db*"):
        assert SECRET_VALUE.encode() not in path.read_bytes()

    status, body = deploy_files(world, g["id"], {"src/main.ts": SCRIPT})
    assert status == 200, body
    names = json.loads(world.wait_log(g["id"], "NAMES ")["message"][6:])
    assert names == {"known": "string", "unknown": "undefined", "names": ["API_KEY", "OTHER"]}

    # substituted in the URL and headers, never in the body
    out = do_fetch(
        world,
        g,
        world.echo + "/echo?k={S:API_KEY}",
        method="POST",
        headers={"X-Key": "Bearer {S:API_KEY}"},
        body="body keeps {S:API_KEY}",
    )
    assert out["status"] == 200 and out["ok"] is True, out
    assert out["url"] == world.echo + "/echo?k=__FLORA_SECRET_API_KEY__"  # the script is never handed the value
    seen = out["body"]
    assert seen["path"] == f"/echo?k={SECRET_VALUE}"
    assert seen["headers"]["x-key"] == f"Bearer {SECRET_VALUE}"
    assert seen["body"] == "body keeps __FLORA_SECRET_API_KEY__"

    # a secret whose allowed hosts do not include the request's host
    out = do_fetch(world, g, world.echo + "/echo", headers={"X-Key": "{S:OTHER}"})
    assert out == {"error": "secret not allowed for request host", "code": "FETCH_BLOCKED"}

    # a new value reaches the running script at once (read at every fetch)
    assert (
        http_json("PUT", f"{api}/secrets/{g['id']}/API_KEY", {"value": "rotated", "allowed_hosts": ["127.0.0.1"]}, token=token)[0]
        == 200
    )
    assert do_fetch(world, g, world.echo + "/echo", headers={"X-Key": "{S:API_KEY}"})["body"]["headers"]["x-key"] == "rotated"

    # redirects: same origin keeps the secret header; another host never gets it
    out = do_fetch(world, g, world.echo + "/redirect-same", headers={"X-Key": "{S:API_KEY}"})
    assert out["redirected"] is True and out["body"]["path"] == "/echo?hop=same" and out["body"]["headers"]["x-key"] == "rotated"
    out = do_fetch(world, g, world.echo + "/redirect-other", headers={"X-Key": "{S:API_KEY}", "Authorization": "Bearer x"})
    assert out["status"] == 200 and out["body"]["path"] == "/echo?hop=other", out
    assert "x-key" not in out["body"]["headers"] and "authorization" not in out["body"]["headers"]


def test_fetch_guards(world):
    g = new_guild(world, "Fetch guards")
    assert http_json("PUT", f"{world.api}/secrets/{g['id']}/LEAK", {"value": "Top-Secret"}, token=world.token)[0] == 200
    assert deploy_files(world, g["id"], {"src/main.ts": SCRIPT})[0] == 200
    # errors never carry a secret value back (here it would be in the echoed URL, and the host)
    for url in ("http://[{S:LEAK}/", "http://{S:LEAK}:99999/"):
        out = do_fetch(world, g, url)
        assert out["code"] == "INVALID_INPUT" and "__FLORA_SECRET_LEAK__" in out["error"], out
        assert "top-secret" not in out["error"].lower(), out

    out = do_fetch(world, g, f"http://127.0.0.1:{free_port()}/")  # loopback, port not in the allow-list
    assert out["code"] == "FETCH_BLOCKED" and "127.0.0.1 is a loopback address" in out["error"], out
    out = do_fetch(world, g, "http://169.254.169.254/latest/meta-data/")
    assert out["code"] == "FETCH_BLOCKED" and "cloud metadata address" in out["error"], out
    out = do_fetch(world, g, f"http://localhost:{free_port()}/")  # a name that resolves to loopback
    assert out["code"] == "FETCH_BLOCKED" and "resolves to" in out["error"] and "loopback" in out["error"], out
    out = do_fetch(world, g, "http://[::ffff:10.0.0.1]/")
    assert out["code"] == "FETCH_BLOCKED", out
    for path, what in (("/redirect-metadata", "cloud metadata address"), ("/redirect-loopback", "loopback address")):
        out = do_fetch(world, g, world.echo + path)
        assert out["code"] == "FETCH_BLOCKED" and what in out["error"], out
    out = do_fetch(world, g, world.echo + "/redirect-loop")
    assert out == {"error": "fetch failed: too many redirects (more than 5)", "code": "FETCH_ERROR"}
    out = do_fetch(world, g, world.echo + "/redirect-same", redirect="manual")
    assert out["status"] == 302 and out["redirected"] is False

    for path in ("/big", "/big-stream"):
        out = do_fetch(world, g, world.echo + path)
        assert out["code"] == "FETCH_TOO_LARGE" and "larger than 4096 bytes" in out["error"], out
    started = time.monotonic()
    out = do_fetch(world, g, world.echo + "/slow")
    assert out == {"error": "fetch timed out after 1s (FETCH_TIMEOUT_SECS)", "code": "FETCH_TIMEOUT"}
    assert time.monotonic() - started < 2.4
    out = do_fetch(world, g, "ftp://example.com/file")
    assert out["code"] == "INVALID_INPUT" and "unsupported URL scheme 'ftp:'" in out["error"]


def test_cli_reads_the_value_from_stdin_never_from_argv(world):
    g = new_guild(world, "Secrets CLI")
    out = world.cli(
        "secrets",
        "set",
        "CLI_KEY",
        "--guild-id",
        g["id"],
        "--allowed-host",
        "127.0.0.1",
        "--allowed-host",
        "*.example.com",
        input="from-stdin\n",
    )
    assert f"Secret 'CLI_KEY' stored for guild {g['id']}" in out.stdout
    listed = json.loads(world.cli("secrets", "list", "--guild-id", g["id"], "--json").stdout)
    assert listed == [{"name": "CLI_KEY", "allowed_hosts": ["127.0.0.1", "*.example.com"]}]
    assert "CLI_KEY  (allowed hosts: 127.0.0.1, *.example.com)" in world.cli("secrets", "list", "--guild-id", g["id"]).stdout
    refused = world.cli("secrets", "set", "X", "--guild-id", g["id"], "--value", "in-argv", check=False)
    assert refused.returncode == 2 and "--value" in refused.stderr
    empty = world.cli("secrets", "set", "X", "--guild-id", g["id"], input="", check=False)
    assert empty.returncode == 1 and "no value on standard input" in empty.stderr

    assert deploy_files(world, g["id"], {"src/main.ts": SCRIPT})[0] == 200
    out = do_fetch(world, g, world.echo + "/echo", headers={"X-Key": "{S:CLI_KEY}"})
    assert out["body"]["headers"]["x-key"] == "from-stdin"  # the trailing newline of `echo` is not part of the value

    assert "Deleted secret 'CLI_KEY'" in world.cli("secrets", "delete", "CLI_KEY", "--guild-id", g["id"]).stdout
    assert world.cli("secrets", "list", "--guild-id", g["id"]).stdout.strip() == f"No secrets for guild {g['id']}."
    # deleted: the (load-time) placeholder is no longer replaced
    out = do_fetch(world, g, world.echo + "/echo", headers={"X-Key": "{S:CLI_KEY}"})
    assert out["body"]["headers"]["x-key"] == "__FLORA_SECRET_CLI_KEY__"


def test_without_a_master_key_secrets_are_disabled_but_fetch_works(tmp_path, echo):
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    port = echo.server_address[1]
    g = emulator_guild(emu, "No key")
    server = start_flora(emu, tmp_path, FETCH_ALLOWED_PRIVATE_HOSTS=f"127.0.0.1:{port}")
    server.emu = emu
    try:
        server.wait_log(g["id"], "starter script deployed")
        disabled = {"message": DISABLED_MESSAGE}
        assert http_json("GET", f"{server.api}/secrets/{g['id']}", token=server.token) == (503, disabled)
        assert http_json("PUT", f"{server.api}/secrets/{g['id']}/A", {"value": "v"}, token=server.token) == (503, disabled)
        out = server.cli("secrets", "set", "A", "--guild-id", g["id"], input="v\n", check=False)
        assert out.returncode == 1 and "secrets are disabled: set SECRETS_MASTER_KEY" in out.stderr
        assert deploy_files(server, g["id"], {"src/main.ts": SCRIPT})[0] == 200
        out = do_fetch(server, g, f"http://127.0.0.1:{port}/echo", headers={"X-Key": "{S:A}"})
        assert out == {"error": DISABLED_MESSAGE, "code": "SECRETS_DISABLED"}
        assert do_fetch(server, g, f"http://127.0.0.1:{port}/echo")["status"] == 200
    finally:
        stop_flora(server)
        emu.stop()


def test_a_malformed_master_key_stops_flora(tmp_path):
    env = dict(
        os.environ,
        FLORA_DATA_DIR=str(tmp_path / "data"),
        API_PORT=str(free_port()),
        API_ADDRESS="127.0.0.1",
        SECRETS_MASTER_KEY="too-short",
        RUNTIME_MAX_WORKERS="1",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "flora_cli", "serve", "--emulator", "--emulator-port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "SECRETS_MASTER_KEY must be 32 bytes (got 9)" in proc.stdout + proc.stderr
