"""``GET /api/logs/<guild>/stream`` (flora §3.5): live log entries as Server-Sent Events.

End to end through the real stack (emulator → flora serve → worker → V8 →
guild_logs → API stream), plus in-process checks of format, filtering and keep-alive.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from urllib.parse import urlparse

from conftest import deploy_files, emulator_guild, wait_for
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
from flora_http import logstream

LOGGER = """
on('messageCreate', (ctx) => {
  if (ctx.msg.author.bot) return;
  console.log('heard', ctx.msg.content, { n: 1 });
});
"""


def _open_stream(api: str, guild_id: str, token: str | None, timeout: float = 10):
    url = urlparse(api)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request("GET", f"{url.path}/logs/{guild_id}/stream", headers=headers)
    return conn, conn.getresponse()


def _next_event(resp) -> str:
    """The next non-comment SSE event's raw text (its lines joined)."""
    lines = []
    while True:
        line = resp.readline().decode()
        if line in ("\n", "\r\n", ""):
            if lines:
                return "".join(lines)
            if line == "":
                raise EOFError("stream ended")
            continue
        if line.startswith(":"):
            continue
        lines.append(line)


def _close_wait_count(port: int) -> int:
    out = subprocess.run(["ss", "-Htn", "state", "close-wait", f"sport = :{port}"], capture_output=True, text=True).stdout
    return len([line for line in out.splitlines() if line.strip()])


def test_stream_delivers_new_console_log_lines(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Stream Guild")
    status, body = deploy_files(stack, g["id"], {"src/main.ts": LOGGER})
    assert status == 200, body
    other = emulator_guild(emu, "Quiet Guild")
    assert deploy_files(stack, other["id"], {"src/main.ts": LOGGER})[0] == 200

    emu.user_says(g["channel_id"], g["user_id"], "before")  # written before the stream opens: not replayed
    stack.wait_log(g["id"], "heard before")

    conn, resp = _open_stream(stack.api, g["id"], stack.token)
    try:
        assert resp.status == 200
        assert resp.getheader("Content-Type").startswith("text/event-stream")
        assert resp.getheader("Cache-Control") == "no-cache"
        # the starting point is taken before the headers are sent: from the 200 on nothing is missed
        emu.user_says(other["channel_id"], other["user_id"], "elsewhere")
        emu.user_says(g["channel_id"], g["user_id"], "hello stream")
        event = _next_event(resp)
        assert event.startswith("data: ") and event.endswith("\n") and "\nevent:" not in event
        entry = json.loads(event[len("data: ") :])
        assert entry == {
            "timestamp": entry["timestamp"],
            "level": "info",
            "target": "flora:js",
            "guild_id": g["id"],
            "message": 'heard hello stream {"n":1}',
        }
        assert abs(entry["timestamp"] / 1000 - time.time()) < 60
    finally:
        conn.close()

    # the server notices the client went away and closes its side
    port = urlparse(stack.api).port
    wait_for(lambda: _close_wait_count(port) == 0, timeout=5, message="the stream's server side to close")


def test_stream_auth(stack):
    g = emulator_guild(stack.emu, "Auth Guild")
    conn, resp = _open_stream(stack.api, g["id"], None)
    assert resp.status == 401 and json.loads(resp.read()) == {"message": "Unauthorized: Login required"}
    conn.close()
    conn, resp = _open_stream(stack.api, "not-a-guild", stack.token)
    assert resp.status == 400 and json.loads(resp.read()) == {"message": "Bad request: Invalid guild ID"}
    conn.close()


def test_stream_format_filter_and_keepalive_in_process(client, auth, db, monkeypatch):
    monkeypatch.setattr(logstream, "POLL_INTERVAL", 0.01)
    monkeypatch.setattr(logstream, "KEEPALIVE_INTERVAL", 0.05)
    repo.append_logs(db, [{"guild_id": GUILD, "timestamp": 1, "level": "info", "target": "flora:js", "message": "old"}])
    resp = client.get(f"/api/logs/{GUILD}/stream", headers=auth, buffered=False)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    chunks = iter(resp.response)
    assert next(chunks) == b":\n\n"  # nothing new yet: a keep-alive comment
    repo.append_logs(
        db,
        [
            {"guild_id": "999", "timestamp": 2, "level": "info", "target": "flora:js", "message": "other guild"},
            {"guild_id": GUILD, "timestamp": 3, "level": "error", "target": "flora:runtime", "message": "dispatch failed: x ✓"},
        ],
    )
    data = next(chunks)
    while data == b":\n\n":
        data = next(chunks)
    assert data.decode() == (
        'data: {"timestamp":3,"level":"error","target":"flora:runtime","guild_id":"%s",'
        '"message":"dispatch failed: x ✓"}\n\n' % GUILD
    )
    resp.close()
