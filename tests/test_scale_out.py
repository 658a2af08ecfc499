"""Runtime nodes on PostgreSQL + Redis: two ``flora serve`` nodes owning two shards each of four, the API
of either reaching the guild's node over the Redis bus (``flora_plugins/redis_bus``), shard leases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from conftest import BOT_TOKEN, bot_replies, deploy_files, start_flora, stop_flora, wait_for

from flora_dev.emulator import Emulator

SHARDS = 4
PING = "on('messageCreate', async (ctx) => { if (ctx.msg.content === '!where') await ctx.reply('here: %s') })\n"


@pytest.fixture
def cluster_env(postgres_url, redis_server):
    namespace = f"flora-test-{uuid.uuid4().hex[:12]}"
    yield {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_server,
        "BUS_NAMESPACE": namespace,
        "API_OPERATOR_SECRET": "operator-secret-of-the-tests",
        "DISCORD_SHARD_COUNT": str(SHARDS),
        "BUS_LEASE_SECS": "3",
        "RUNTIME_MAX_WORKERS": "1",
    }
    import redis

    r = redis.Redis.from_url(redis_server)
    for key in r.scan_iter(match=f"{namespace}:*"):
        r.delete(key)


def _guild(emulator, shard: int) -> dict:
    g = emulator.create_guild(f"on shard {shard}", shard=(shard, SHARDS))
    ch = emulator.create_channel(g["id"], "general")
    user = emulator.create_user(f"user-{g['id'][-5:]}")
    emulator.add_member(g["id"], user["id"])
    return {"id": g["id"], "channel_id": ch["id"], "user_id": user["id"]}


def _node(emulator, tmp_path, name: str, shards: str, env: dict):
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    return start_flora(emulator, folder, DISCORD_SHARD_IDS=shards, FLORA_NODE_ID=name, **env)


def _answer(emulator, g: dict, expected: str, timeout: float = 60) -> None:
    def asked():
        before = len(bot_replies(emulator, g["channel_id"]))
        emulator.user_says(g["channel_id"], g["user_id"], "!where")
        try:
            return wait_for(
                lambda: [m for m in bot_replies(emulator, g["channel_id"])[before:] if m["content"] == expected],
                timeout=5,
                message=expected,
            )
        except AssertionError:
            return None

    wait_for(asked, timeout=timeout, interval=0.2, message=f"{expected!r} from guild {g['id']}")


def test_two_nodes_share_the_shards_and_either_api_reaches_the_owner(emulator, tmp_path, cluster_env):
    g0, g3 = _guild(emulator, 0), _guild(emulator, 3)
    a = _node(emulator, tmp_path, "node-a", "0,1", cluster_env)
    try:
        b = _node(emulator, tmp_path, "node-b", "2,3", cluster_env)
        try:
            wait_for(lambda: len(emulator.connected_sessions) == SHARDS, timeout=60, message="four shard sessions")
            # a deploy through node a's API reaches node b, which owns shard 3, and the other way round
            status, body = deploy_files(a, g3["id"], {"src/main.ts": PING % "g3"})
            assert status == 200, body
            _answer(emulator, g3, "here: g3")
            assert not (a.data_dir / "run" / "runtime.sock").exists()  # the bus is Redis, not the data folder's socket
            status, body = deploy_files(b, g0["id"], {"src/main.ts": PING % "g0"})
            assert status == 200, body
            _answer(emulator, g0, "here: g0")
            # the guild's log, written by node b into PostgreSQL, is read through node a's API
            wait_for(lambda: a.guild_logs(g3["id"]), timeout=30, message="g3's log through node a")
            # a third node claiming a shard that node b holds refuses to start, with one line
            c_dir = tmp_path / "node-c"
            c_dir.mkdir()
            env = dict(
                os.environ,
                DISCORD_TOKEN=BOT_TOKEN,
                FLORA_DISCORD_API_BASE=emulator.api_base,
                FLORA_DATA_DIR=str(c_dir),
                API_ADDRESS="127.0.0.1",
                API_PORT="0",
                DISCORD_SHARD_IDS="3",
                FLORA_NODE_ID="node-c",
                **cluster_env,
            )
            out = subprocess.run(
                [sys.executable, "-m", "flora_cli", "serve"], env=env, capture_output=True, text=True, timeout=120, cwd=c_dir
            )
            assert out.returncode == 1
            assert (
                f"Error: shard 3 of {SHARDS} is owned by runtime node node-b; stop that node, or start this one "
                "with other DISCORD_SHARD_IDS" in out.stderr.splitlines()
            ), out.stderr[-2000:]
            # node b dies without a word: once its leases expire the API says who is missing
            os.killpg(b.proc.pid, signal.SIGKILL)
            b.proc.wait(10)

            def refused():
                # until its leases expire, the API still sends node b's requests and says it did not answer
                status, body = deploy_files(a, g3["id"], {"src/main.ts": PING % "g3 again"})
                assert status == 503, body
                return (status, body) if "no runtime node owns" in body["message"] else None

            status, body = wait_for(refused, timeout=30, interval=0.5, message="503 for node b's shards")
            assert body == {"message": f"no runtime node owns shard 3 (guild {g3['id']})"}
            _answer(emulator, g0, "here: g0")  # node a's guilds go on
        finally:
            stop_flora(b)
        # node b comes back (same id, same shards) and takes its shards and guilds again
        b = _node(emulator, tmp_path, "node-b", "2,3", cluster_env)
        try:
            _answer(emulator, g3, "here: g3")
            status, body = deploy_files(a, g3["id"], {"src/main.ts": PING % "g3 redeployed"})
            assert status == 200, body
            _answer(emulator, g3, "here: g3 redeployed")
        finally:
            stop_flora(b)
    finally:
        stop_flora(a)


def test_metrics_and_status_see_every_node(emulator, tmp_path, cluster_env):
    a = _node(emulator, tmp_path, "node-a", "0,1", cluster_env)
    try:
        b = _node(emulator, tmp_path, "node-b", "2,3", cluster_env)
        try:
            from flora_core.config import load_config
            from flora_core.plugins import Plugins
            from flora_plugins.redis_bus.bus import RedisBusClient

            config = load_config(env={**cluster_env, "FLORA_DATA_DIR": str(tmp_path / "x")}, plugins=Plugins())
            client = RedisBusClient(config)
            status = wait_for(lambda: len(client.nodes()) == 2 and client.status(), timeout=30, message="both nodes")
            assert sorted(n["node"] for n in status["nodes"]) == ["node-a", "node-b"]
            assert all(n["up"] for n in status["nodes"])
            assert {w["node"] for w in status["workers"]} == {"node-a", "node-b"}
            assert sorted(s for n in status["nodes"] for s in n["shards"]) == [0, 1, 2, 3]
            # any node's API tells who owns what, and its metrics carry every node
            from conftest import http_json

            code, health = http_json("GET", f"{a.api}/health/nodes")
            assert code == 200 and health["shards"] == {"0": "node-a", "1": "node-a", "2": "node-b", "3": "node-b"}
            assert sorted((n["node"], n["up"]) for n in health["nodes"]) == [("node-a", True), ("node-b", True)]
            import urllib.request

            secret = cluster_env["API_OPERATOR_SECRET"]
            req = urllib.request.Request(f"{b.api}/metrics", headers={"Authorization": f"Bearer {secret}"})
            text = urllib.request.urlopen(req, timeout=30).read().decode()
            for node in ("node-a", "node-b"):
                assert f'flora_node_up{{node="{node}"}} 1.0' in text, text
            assert 'flora_shard_owner{node="node-b",shard="3"} 1.0' in text
        finally:
            stop_flora(b)
        started = time.monotonic()
        wait_for(
            lambda: [n["node"] for n in client.nodes()] == ["node-a"],
            timeout=10,
            message="node b gone from the bus once it stopped",
        )
        assert time.monotonic() - started < 10
    finally:
        stop_flora(a)


def test_redis_down_deploys_503_scripts_keep_answering_and_it_recovers(emulator, tmp_path, postgres_url):
    import shutil

    from conftest import free_port

    server_bin = shutil.which("redis-server")
    assert server_bin, "redis-server is needed (it runs the service of this machine too)"
    port = free_port()

    def own_redis() -> subprocess.Popen:  # a Redis of this test alone, so restarting it disturbs nobody
        proc = subprocess.Popen(
            [server_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        wait_for(lambda: _pings(redis.Redis(port=port, socket_connect_timeout=1)), timeout=20, message="redis up")
        return proc

    redis_proc = own_redis()
    g = _guild(emulator, 1)
    env = {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "DISCORD_SHARD_COUNT": str(SHARDS),
        "BUS_LEASE_SECS": "3",
        "RUNTIME_MAX_WORKERS": "1",
        "BUS_NAMESPACE": "flora",
    }
    node = _node(emulator, tmp_path, "solo", "0,1,2,3", env)
    try:
        status, body = deploy_files(node, g["id"], {"src/main.ts": PING % "before"})
        assert status == 200, body
        _answer(emulator, g, "here: before")
        redis_proc.kill()
        redis_proc.wait(10)
        status, body = deploy_files(node, g["id"], {"src/main.ts": PING % "during"})
        assert status == 503 and body["message"].startswith("runtime unavailable: bus unavailable: "), body
        _answer(emulator, g, "here: before")  # the node keeps running what it has
        redis_proc = own_redis()  # back, and empty
        back = time.monotonic()

        attempts = []

        def deployed():
            t0 = time.monotonic()
            status, body = deploy_files(node, g["id"], {"src/main.ts": PING % "after"})
            attempts.append(
                (
                    round(t0 - back, 2),
                    round(time.monotonic() - t0, 2),
                    status,
                    body.get("message") if isinstance(body, dict) else None,
                )
            )
            return status == 200

        wait_for(deployed, timeout=30, interval=0.25, message="deploys work again")
        assert time.monotonic() - back < 8, attempts  # the issue asks for 5 s; room for a busy machine
        _answer(emulator, g, "here: after")
    finally:
        stop_flora(node)
        redis_proc.kill()
        redis_proc.wait(10)


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001
        return False


def _identify_times(emulator) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for entry in emulator.gateway_log:
        if entry.get("op") == 2 and entry.get("shard"):
            out.setdefault(entry["shard"][0], []).append(entry["time"])
    return out


def test_shards_of_one_bucket_identify_apart_even_on_two_nodes(tmp_path, cluster_env):
    # Discord: max_concurrency shards per 5 s; here 1 per 1.5 s, shards 0 and 1 on two nodes share bucket 0
    e = Emulator(token=BOT_TOKEN, max_concurrency=1)
    e.start()
    env = dict(cluster_env, DISCORD_SHARD_COUNT="2", DISCORD_IDENTIFY_INTERVAL_MS="1500")
    try:
        a = _node(e, tmp_path, "node-a", "0", env)
        try:
            b = _node(e, tmp_path, "node-b", "1", env)
            try:
                times = wait_for(lambda: (t := _identify_times(e)) and len(t) == 2 and t, timeout=30, message="two identifies")
                assert abs(times[1][0] - times[0][0]) >= 1.4, times
            finally:
                stop_flora(b)
        finally:
            stop_flora(a)
    finally:
        e.stop()


def test_shards_of_different_buckets_identify_without_waiting(tmp_path):
    e = Emulator(token=BOT_TOKEN, max_concurrency=2)
    e.start()
    try:
        node = start_flora(e, tmp_path, DISCORD_SHARD_COUNT="2", DISCORD_IDENTIFY_INTERVAL_MS="5000")
        try:
            times = wait_for(lambda: (t := _identify_times(e)) and len(t) == 2 and t, timeout=30, message="two identifies")
            assert abs(times[1][0] - times[0][0]) < 4, times  # disnake alone waits 5 s before the second
        finally:
            stop_flora(node)
    finally:
        e.stop()


def test_flora_api_anywhere_deploys_to_either_node_and_streams_a_nodes_logs(emulator, tmp_path, cluster_env):
    """``flora api -w 2`` with no runtime of its own: every guild's requests go over Redis to its node, and
    a guild's log lines, written by its node into PostgreSQL, stream live through it."""
    import json
    from urllib.parse import urlparse

    from conftest import free_port, http_json

    g1, g2 = _guild(emulator, 1), _guild(emulator, 2)
    a = _node(emulator, tmp_path, "node-a", "0,1", cluster_env)
    try:
        b = _node(emulator, tmp_path, "node-b", "2,3", cluster_env)
        try:
            port = free_port()
            env = dict(a.env, API_PORT=str(port), FLORA_DATA_DIR=str(tmp_path / "api-only"))
            api_proc = subprocess.Popen(
                [sys.executable, "-m", "flora_cli", "api", "--workers", "2"],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            api = f"http://127.0.0.1:{port}/api"
            try:
                wait_for(lambda: _up(api), timeout=60, message="flora api up")
                for g, tag in ((g1, "via api on a"), (g2, "via api on b")):
                    status, body = http_json(
                        "POST",
                        f"{api}/deployments/{g['id']}",
                        {
                            "entry": "src/main.ts",
                            "files": [{"path": "src/main.ts", "contents": PING % tag + "console.log('loaded ' + 'now')\n"}],
                        },
                        token=a.token,
                    )
                    assert status == 200, body
                    _answer(emulator, g, f"here: {tag}")
                # the log stream of node b's guild, read through the API that runs no V8
                import http.client

                url = urlparse(api)
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
                conn.request("GET", f"{url.path}/logs/{g2['id']}/stream", headers={"Authorization": f"Bearer {a.token}"})
                resp = conn.getresponse()
                assert resp.status == 200
                status, _ = http_json(
                    "POST",
                    f"{api}/deployments/{g2['id']}",
                    {
                        "entry": "src/main.ts",
                        "files": [{"path": "src/main.ts", "contents": "console.log('streamed from node b')\n"}],
                    },
                    token=a.token,
                )
                assert status == 200
                deadline = time.monotonic() + 30
                seen = []
                while time.monotonic() < deadline:
                    line = resp.readline().decode()
                    if line.startswith("data: "):
                        seen.append(json.loads(line[6:])["message"])
                        if "streamed from node b" in seen:
                            break
                assert "streamed from node b" in seen, seen
                conn.close()
            finally:
                os.killpg(api_proc.pid, signal.SIGTERM)
                api_proc.wait(30)
        finally:
            stop_flora(b)
    finally:
        stop_flora(a)


def _up(api: str) -> bool:
    from conftest import http_json

    try:
        return http_json("GET", f"{api}/health", timeout=2)[0] == 200
    except OSError:
        return False
