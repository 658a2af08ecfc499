"""`flora api`: the same API under gunicorn with gevent workers, next to a running runtime."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import ROOT, bot_replies, emulator_guild, free_port, http_json, start_flora, stop_flora, wait_for


def test_flora_api_serves_the_api_under_gunicorn(emulator, tmp_path):
    g = emulator_guild(emulator, "Gunicorn")
    server = start_flora(emulator, tmp_path)
    port = free_port()
    env = dict(server.env, API_PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "flora_cli", "api", "--workers", "2"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}/api"
    try:
        wait_for(lambda: _health(api), timeout=30, message="gunicorn API up")
        status, body = http_json(
            "POST",
            f"{api}/deployments/{g['id']}",
            {
                "entry": "src/main.ts",
                "files": [
                    {"path": p.relative_to(ROOT / "examples/basic").as_posix(), "contents": p.read_text()}
                    for p in (ROOT / "examples/basic/src").rglob("*.ts")
                ],
            },
            token=server.token,
        )
        assert status == 200, body
        emulator.user_says(g["channel_id"], g["user_id"], "!ping via gunicorn")
        wait_for(
            lambda: [m for m in bot_replies(emulator, g["channel_id"]) if m["content"] == "pong! args: via gunicorn"],
            message="reply after a deploy through gunicorn",
        )
        status, history = http_json("GET", f"{api}/deployments/{g['id']}/history", token=server.token)
        assert status == 200 and history[0]["status"] == "success"
        assert http_json("GET", f"{api}/deployments", token="wrong.token-that-is-long-enough")[0] == 401
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        stop_flora(server)
    assert "gevent" in out.lower() or "Booting worker" in out, out
    assert "Traceback" not in out, out


def _health(api: str) -> bool:
    try:
        return http_json("GET", f"{api}/health", timeout=2)[0] == 200
    except OSError:
        time.sleep(0.1)
        return False
