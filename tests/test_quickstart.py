"""The README's first command: `flora serve --emulator` works on embedded defaults, offline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from conftest import free_port, http_json, wait_for


def _serve_and_ping(tmp_path) -> dict:
    """`flora serve --emulator` in ``tmp_path``: the starter script answers !ping; returns the seeded ids."""
    emu_port, api_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "DATABASE_URL", "FLORA_DISCORD_API_BASE")}
    env.update(API_PORT=str(api_port), API_ADDRESS="127.0.0.1", RUNTIME_MAX_WORKERS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flora_cli", "serve", "--emulator", "--emulator-port", str(emu_port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    emu = f"http://127.0.0.1:{emu_port}"
    try:
        state = wait_for(lambda: _get(f"{emu}/_emu/state"), timeout=30, message="emulator up")
        guild = next(g for g in state["guilds"] if g["name"] == "flora dev")
        channel = next(c for c in guild["channels"] if c["name"] == "general")
        alice = next(m for m in guild["members"] if m["user"]["username"] == "alice")["user"]
        # the starter script answers without any deploy
        wait_for(lambda: _get_text(f"http://127.0.0.1:{api_port}/api/health") == "ok", timeout=30, message="API up")
        # the emulator comes up first, the runtime opens the database after it
        assert (tmp_path / "data" / "flora.db").exists()  # embedded default: SQLite under ./data

        def said():
            http_json("POST", f"{emu}/_emu/say", {"channel_id": channel["id"], "user_id": alice["id"], "content": "!ping hi"})
            return wait_for(
                lambda: [m for m in _get(f"{emu}/_emu/messages/{channel['id']}") if m["author"].get("bot")],
                timeout=3,
                message="reply",
            )

        replies = wait_for(lambda: _try(said), timeout=30, message="starter reply")
        assert replies[0]["content"] == "pong (hi)"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"Discord emulator: {emu}" in out and "Traceback" not in out
    return {"guild": guild["id"], "general": channel["id"], "alice": alice["id"], "bot": replies[0]["author"]["id"]}


def test_serve_with_the_built_in_emulator(tmp_path):
    first = _serve_and_ping(tmp_path)
    # a restart of the same data folder seeds the same guild, channels and users: what is stored for the
    # guild (its deployment, KV, secrets) is still the guild's
    assert _serve_and_ping(tmp_path) == first
    import sqlite3

    conn = sqlite3.connect(tmp_path / "data" / "flora.db")
    revisions = conn.execute("SELECT guild_id, deploy_source FROM deployment_revisions").fetchall()
    conn.close()
    assert revisions == [(first["guild"], "bootstrap")]  # restored at the second start, not bootstrapped again


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return json.loads(resp.read())
    except OSError:
        return None


def _get_text(url):
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return None


def _try(fn):
    try:
        return fn()
    except AssertionError:
        time.sleep(0.2)
        return None
