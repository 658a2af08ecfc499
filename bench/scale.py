"""Scale-out: the same load over 4 shards, one runtime node on one core vs two nodes on one core each.

    python bench/scale.py [--burst-events 2000] [--guilds-per-shard 2] [--latency-events 200]

Both set-ups are ``flora serve`` runtime nodes on PostgreSQL (``FLORA_BENCH_POSTGRES``, default the
local ``test`` database, a schema of its own) and Redis (``FLORA_BENCH_REDIS``) with the Redis bus:
(a) one node owning shards 0-3, pinned with ``taskset`` to core 0; (b) two nodes owning 0-1 and 2-3,
pinned to cores 0 and 1. Every guild runs ``examples/basic``; a burst of ``!ping`` spread over all
guilds measures events/s (first send to last reply), single events the p50/p99 latency. The emulator
and this driver run unpinned on the same machine, so on a 2-core machine they take from both set-ups.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from dispatch import free_port, measure, stop  # noqa: E402

from flora_dev.emulator import Emulator  # noqa: E402

TOKEN = "bench-bot-token"
SHARDS = 4


def postgres_schema(url: str) -> tuple[str, str]:
    import psycopg2

    schema = f"flora_bench_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    conn.close()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{schema}", schema


def drop_schema(url: str, schema: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA {schema} CASCADE")
    conn.close()


def start_node(env: dict, shards: str, core: int, name: str, folder: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    node_env = dict(env, DISCORD_SHARD_IDS=shards, FLORA_NODE_ID=name, FLORA_DATA_DIR=folder, API_PORT=str(port))
    proc = subprocess.Popen(
        ["taskset", "-c", str(core), sys.executable, "-m", "flora_cli", "serve"],
        env=node_env,
        cwd=folder,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"node {name} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(f"{api}/health", timeout=1)
            return proc, api
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"node {name} did not come up")


def run(emu: Emulator, env: dict, nodes: list[tuple[str, int]], guilds: list[str], channels: list[str], user: str, args) -> dict:
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            apis = []
            for i, (shards, core) in enumerate(nodes):
                folder = os.path.join(tmp, f"node{i}")
                os.mkdir(folder)
                proc, api = start_node(env, shards, core, f"bench-node-{i}", folder)
                procs.append(proc)
                apis.append(api)
            deadline = time.monotonic() + 60
            while len(emu.connected_sessions) < SHARDS and time.monotonic() < deadline:
                time.sleep(0.05)
            token = (
                subprocess.run(
                    [sys.executable, "-m", "flora_cli", "tokens", "create"],
                    env=dict(env, FLORA_DATA_DIR=tmp),
                    capture_output=True,
                    text=True,
                    check=True,
                )
                .stdout.strip()
                .splitlines()[-1]
            )
            for guild_id in guilds:
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "flora_cli",
                        "deploy",
                        "--guild-id",
                        guild_id,
                        "--root",
                        str(ROOT / "examples" / "basic"),
                        "--api",
                        apis[0],
                        "--token",
                        token,
                    ],
                    env=dict(env, FLORA_DATA_DIR=tmp),
                    check=True,
                    capture_output=True,
                )
            emu.clear_requests()
            return measure(emu, channels, user, args.latency_events, args.burst_events)
        finally:
            for proc in procs:
                stop(proc)
            emu.clear_requests()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--burst-events", type=int, default=2000)
    ap.add_argument("--latency-events", type=int, default=200)
    ap.add_argument("--guilds-per-shard", type=int, default=2)
    args = ap.parse_args()
    pg = os.environ.get("FLORA_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("FLORA_BENCH_REDIS", "redis://127.0.0.1:6379/0")
    cores = os.cpu_count() or 1

    emu = Emulator(token=TOKEN)
    emu.start()
    user = emu.create_user("bencher")["id"]
    guilds, channels = [], []
    for shard in range(SHARDS):
        for i in range(args.guilds_per_shard):
            g = emu.create_guild(f"Bench {shard}.{i}", shard=(shard, SHARDS))
            guilds.append(g["id"])
            channels.append(emu.create_channel(g["id"], "general")["id"])
            emu.add_member(g["id"], user)
    results = {}
    try:
        for label, nodes in (("1 node", [("0,1,2,3", 0)]), ("2 nodes", [("0,1", 0), ("2,3", 1 % cores)])):
            db_url, schema = postgres_schema(pg)
            env = dict(
                os.environ,
                DISCORD_TOKEN=TOKEN,
                FLORA_DISCORD_API_BASE=emu.api_base,
                FLORA_LOG_LEVEL="warning",
                DATABASE_URL=db_url,
                REDIS_URL=redis_url,
                BUS_NAMESPACE=f"flora-bench-{uuid.uuid4().hex[:8]}",
                DISCORD_SHARD_COUNT=str(SHARDS),
                RUNTIME_MAX_WORKERS="1",
                API_ADDRESS="127.0.0.1",
                RUNTIME_WORKER_QUEUE_CAPACITY="1000000",
            )
            try:
                results[label] = run(emu, env, nodes, guilds, channels, user, args)
            finally:
                drop_schema(pg, schema)
    finally:
        emu.stop()

    one, two = results["1 node"], results["2 nodes"]
    print(
        f"!ping over {len(guilds)} guilds on {SHARDS} shards; a burst of {args.burst_events} for events/s, "
        f"{args.latency_events} single events for latency; each node pinned to one core of {cores}, one worker each; "
        "the emulator and the driver are not pinned"
    )
    print(f"{'':10} {'events/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for name, r in results.items():
        print(f"{name:10} {r['events_per_s']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}")
    print(f"{'2 / 1':10} {two['events_per_s'] / one['events_per_s']:8.2f}x")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
