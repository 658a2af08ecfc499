"""flora serve as an operator runs it: restarts, sharding, a taken port, DMs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from conftest import BOT_TOKEN, ROOT, bot_replies, deploy_files, emulator_guild, start_flora, stop_flora, wait_for


@pytest.fixture
def emu():
    from flora_dev.emulator import Emulator

    e = Emulator(token=BOT_TOKEN)
    e.start()
    try:
        yield e
    finally:
        e.stop()


def test_deployments_survive_a_restart(emu, tmp_path):
    g = emulator_guild(emu, "Persistent")
    server = start_flora(emu, tmp_path)
    try:
        server.deploy_dir(g["id"], ROOT / "examples" / "basic")
    finally:
        stop_flora(server)
    server = start_flora(emu, tmp_path)
    try:
        emu.user_says(g["channel_id"], g["user_id"], "!ping again")
        reply = wait_for(lambda: bot_replies(emu, g["channel_id"]), message="reply after restart")[0]
        assert reply["content"] == "pong! args: again"  # examples/basic, not the starter
    finally:
        stop_flora(server)


def test_shards_from_config(emu, tmp_path):
    guilds = [emulator_guild(emu, f"Sharded {i}") for i in range(4)]
    server = start_flora(emu, tmp_path, DISCORD_SHARD_COUNT=2)
    try:
        wait_for(lambda: len(emu.connected_sessions) == 2, message="two shard sessions")
        assert sorted(tuple(s["shard"]) for s in emu.connected_sessions) == [(0, 2), (1, 2)]
        for g in guilds:
            wait_for(
                lambda g=g: any(e["message"] == "starter script deployed" for e in server.guild_logs(g["id"])),
                message=f"starter for {g['id']}",
            )
            emu.user_says(g["channel_id"], g["user_id"], "!ping")
        for g in guilds:
            wait_for(
                lambda g=g: [m for m in bot_replies(emu, g["channel_id"]) if m["content"] == "pong"], message="sharded reply"
            )
    finally:
        stop_flora(server)


def test_events_without_a_guild_are_dropped(emu, tmp_path):
    g = emulator_guild(emu, "DM test")
    server = start_flora(emu, tmp_path)
    try:
        script = "on('messageCreate', (ctx) => console.log('seen', ctx.msg.content, ctx.msg.guildId));"
        assert deploy_files(server, g["id"], {"src/main.ts": script})[0] == 200
        dm = {
            "id": "1234567890123",
            "channel_id": g["channel_id"],
            "content": "from a DM",
            "author": g["user"],
            "timestamp": "2026-01-01T00:00:00+00:00",
            "type": 0,
            "attachments": [],
            "embeds": [],
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "tts": False,
            "mention_everyone": False,
        }
        emu.dispatch("MESSAGE_CREATE", dm)
        emu.user_says(g["channel_id"], g["user_id"], "in the guild")
        server.wait_log(g["id"], "seen in the guild")
        assert not any("from a DM" in e["message"] for e in server.guild_logs(g["id"]))
    finally:
        stop_flora(server)


def test_a_taken_api_port_stops_flora_with_a_clear_error(emu, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = {
            "DISCORD_TOKEN": BOT_TOKEN,
            "FLORA_DISCORD_API_BASE": emu.api_base,
            "FLORA_DATA_DIR": str(tmp_path / "d"),
            "API_PORT": str(port),
            "API_ADDRESS": "127.0.0.1",
            "RUNTIME_MAX_WORKERS": "1",
            "PATH": "/usr/bin:/bin",
        }
        out = subprocess.run([sys.executable, "-m", "flora_cli", "serve"], env=env, capture_output=True, text=True, timeout=90)
    assert out.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out.stderr
    assert "Traceback" not in out.stderr


def test_postgres_as_the_database(emu, tmp_path, postgres_url):
    g = emulator_guild(emu, "On Postgres")
    server = start_flora(emu, tmp_path, DATABASE_URL=postgres_url)
    try:
        server.deploy_dir(g["id"], ROOT / "examples" / "basic")
        emu.user_says(g["channel_id"], g["user_id"], "!ping pg")
        wait_for(lambda: [m for m in bot_replies(emu, g["channel_id"]) if m["content"] == "pong! args: pg"], message="reply")
        assert not (server.data_dir / "flora.db").exists()  # nothing went to SQLite
        entries = server.guild_logs(g["id"])
        assert any(e["message"] == "starter script deployed" for e in entries)
    finally:
        stop_flora(server)


def test_backlog_drops_are_reported_in_the_guild_log(emu, tmp_path):
    g = emulator_guild(emu, "Backlog")
    server = start_flora(emu, tmp_path, RUNTIME_WORKER_QUEUE_CAPACITY=1, RUNTIME_MAX_WORKERS=1)
    try:
        script = """on('messageCreate', async (ctx) => {
          if (ctx.msg.author.bot) return;
          const t = Date.now(); while (Date.now() - t < 700) {}
          await ctx.reply('done ' + ctx.msg.content);
        });"""
        assert deploy_files(server, g["id"], {"src/main.ts": script})[0] == 200
        emu.user_says(g["channel_id"], g["user_id"], "first")
        emu.user_says(g["channel_id"], g["user_id"], "second")
        entry = server.wait_log(g["id"], "event(s) dropped")
        assert entry["level"] == "warn" and "RUNTIME_WORKER_QUEUE_CAPACITY=1" in entry["message"]
        wait_for(lambda: bot_replies(emu, g["channel_id"]), message="first reply")
        assert [m["content"] for m in bot_replies(emu, g["channel_id"])] == ["done first"]
    finally:
        stop_flora(server)


def test_redis_holds_the_scope_cache_across_restarts(emu, tmp_path):
    redis = pytest.importorskip("redis")
    try:
        client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=2)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis is required under CI=true but is not reachable: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    g = emulator_guild(emu, "Scope in Redis")
    other = emu.create_channel(g["id"], "announcements")
    key = f"flora:scope:ch:{other['id']}"
    client.delete(key)
    script = f"""on('messageCreate', async (ctx) => {{
      if (ctx.msg.content === 'announce') await __floraOp('op_send_message', {{ channelId: '{other["id"]}', content: 'news' }});
    }});"""
    lookups = lambda: emu.find_requests("GET", rf"^/channels/{other['id']}$")  # noqa: E731
    try:
        for run in range(2):
            server = start_flora(emu, tmp_path, REDIS_URL="redis://127.0.0.1:6379/0")
            try:
                if run == 0:
                    assert deploy_files(server, g["id"], {"src/main.ts": script})[0] == 200
                emu.user_says(g["channel_id"], g["user_id"], "announce")
                wait_for(lambda run=run: len(bot_replies(emu, other["id"])) == run + 1, message="announcement")
            finally:
                stop_flora(server)
            assert client.get(key) == g["id"].encode()
            assert client.ttl(key) > 3600
        assert len(lookups()) == 1  # the second run found the channel's guild in Redis
    finally:
        client.delete(key)


def test_a_deploy_to_a_guild_the_bot_is_not_in_is_refused(emu, tmp_path):
    g = emulator_guild(emu, "Real")
    server = start_flora(emu, tmp_path)
    try:
        bogus = "123"
        files = {"src/main.ts": "console.log('never runs')\n"}
        assert deploy_files(server, bogus, files) == (404, {"message": "Bot not in guild"})
        project = tmp_path / "project"
        (project / "src").mkdir(parents=True)
        (project / "src" / "main.ts").write_text(files["src/main.ts"], encoding="utf-8")
        out = server.cli(
            "deploy", "--guild-id", bogus, "--root", str(project), "--api", server.api, "--token", server.token, check=False
        )
        assert out.returncode == 1 and out.stderr.splitlines()[-1] == "Error: Bot not in guild", out.stderr
        assert "success" not in out.stdout + out.stderr
        assert deploy_files(server, g["id"], files)[0] == 200  # a guild the bot is in deploys as before
    finally:
        stop_flora(server)
    import sqlite3

    conn = sqlite3.connect(tmp_path / "data" / "flora.db")
    guilds = {row[0] for row in conn.execute("SELECT DISTINCT guild_id FROM deployment_revisions")}
    conn.close()
    assert bogus not in guilds  # nothing recorded for it, so nothing to "restore" at the next start
