"""Cron on two runtime nodes (``flora serve`` ×2 on one PostgreSQL and one Redis, two shards each of four), with
time moved by the test (``FLORA_CRON_TEST_CLOCK``, ticks every 0.2 s): both nodes run a scheduler over the same
``cron_jobs`` table, each runs only its own guilds' jobs, every occurrence once, also across a restart of the
node owning a guild while the other node keeps ticking, and catch-up after that restart works as on one node."""

from __future__ import annotations

import collections
import datetime as dt
import re
import uuid

import pytest
from conftest import deploy_files, start_flora, stop_flora, wait_for

SHARDS = 4
T0 = dt.datetime(2030, 1, 1, 12, 0, 30, tzinfo=dt.UTC).timestamp()

TICKS = """
cron('tick-latest', '* * * * *', (ctx) => { console.log(`RUN tick-latest ${ctx.scheduledAt}`); }, { catchUp: 'latest' });
cron('tick-none', '* * * * *', (ctx) => { console.log(`RUN tick-none ${ctx.scheduledAt}`); });
"""


def at(minute: int, second: int = 0) -> float:
    return T0 - 30 + minute * 60 + second


def iso(minute: int) -> str:
    return dt.datetime.fromtimestamp(at(minute), dt.UTC).isoformat()


class ClockFile:
    def __init__(self, path):
        self.path = path

    def set(self, t: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(repr(t))
        tmp.replace(self.path)  # atomic: flora never reads half a number


@pytest.fixture
def cluster_env(postgres_url, redis_server, tmp_path):
    namespace = f"flora-test-{uuid.uuid4().hex[:12]}"
    yield {
        "DATABASE_URL": postgres_url,
        "REDIS_URL": redis_server,
        "BUS_NAMESPACE": namespace,
        "DISCORD_SHARD_COUNT": str(SHARDS),
        "BUS_LEASE_SECS": "3",
        "RUNTIME_MAX_WORKERS": "1",
        "FLORA_CRON_TEST_CLOCK": str(tmp_path / "clock"),
        "FLORA_CRON_TEST_TICK_SECS": "0.2",
    }
    import redis

    r = redis.Redis.from_url(redis_server)
    for key in r.scan_iter(match=f"{namespace}:*"):
        r.delete(key)


def _guild(emulator, shard: int) -> str:
    g = emulator.create_guild(f"on shard {shard}", shard=(shard, SHARDS))
    emulator.create_channel(g["id"], "general")
    return g["id"]


def _node(emulator, tmp_path, name: str, shards: str, env: dict):
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    return start_flora(emulator, folder, DISCORD_SHARD_IDS=shards, FLORA_NODE_ID=name, **env)


def _query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def running_jobs(url: str, guild_id: str) -> list[str]:
    return [
        r[0]
        for r in _query(
            url,
            "SELECT c.name FROM cron_jobs c JOIN cron_loads l ON l.guild_id = c.guild_id"
            " AND l.load_id = c.load_id WHERE c.guild_id = %s ORDER BY c.name",
            (guild_id,),
        )
    ]


def stored_messages(url: str, guild_id: str) -> list[str]:
    """The guild's whole log as stored (every node flushes its lines when it stops)."""
    return [r[0] for r in _query(url, "SELECT message FROM guild_logs WHERE guild_id = %s ORDER BY id", (guild_id,))]


def ran(server, guild_id: str, job: str, minute: int) -> bool:
    line = f"RUN {job} {iso(minute)}"
    return any(e["message"] == line for e in server.guild_logs(guild_id))


def wait_runs(server, runs: list[tuple[str, int]], timeout: float = 20) -> None:
    """Until each (guild, minute) ran both jobs (read through ``server``'s API, which reads PostgreSQL)."""
    for guild_id, minute in runs:
        for job in ("tick-latest", "tick-none"):
            wait_for(
                lambda g=guild_id, j=job, m=minute: ran(server, g, j, m),
                timeout=timeout,
                interval=0.1,
                message=f"RUN {job} {iso(minute)} in guild {guild_id}",
            )


def counts(messages: list[str], job: str) -> collections.Counter:
    pattern = re.compile(rf"^RUN {re.escape(job)} (\S+)$")
    return collections.Counter(m.group(1) for m in (pattern.match(x) for x in messages) if m)


def wait_line(server, guild_id: str, needle: str, timeout: float = 20) -> None:
    wait_for(
        lambda: any(needle in e["message"] for e in server.guild_logs(guild_id)),
        timeout=timeout,
        interval=0.1,
        message=f"log line {needle!r} in guild {guild_id}",
    )


def test_two_nodes_fire_each_occurrence_once_and_the_owner_catches_up_after_a_restart(emulator, tmp_path, cluster_env):
    url = cluster_env["DATABASE_URL"]
    clock = ClockFile(tmp_path / "clock")
    clock.set(at(0, 30))
    g0, g3 = _guild(emulator, 0), _guild(emulator, 3)  # node a owns shards 0 and 1, node b shards 2 and 3
    nodes = {"a": _node(emulator, tmp_path, "node-a", "0,1", cluster_env)}
    try:
        nodes["b"] = b = _node(emulator, tmp_path, "node-b", "2,3", cluster_env)
        a = nodes["a"]
        wait_for(lambda: len(emulator.connected_sessions) == SHARDS, timeout=60, message="four shard sessions")
        for g in (g0, g3):
            wait_line(a, g, "starter script deployed", timeout=30)
        # each deployed through the other node's API (over the Redis bus to the guild's node)
        assert deploy_files(b, g0, {"src/main.ts": TICKS})[0] == 200
        assert deploy_files(a, g3, {"src/main.ts": TICKS})[0] == 200
        wait_for(
            lambda: running_jobs(url, g0) == running_jobs(url, g3) == ["tick-latest", "tick-none"],
            timeout=30,
            message="jobs registered",
        )

        # both nodes tick every 0.2 s over the same table: each occurrence of each guild runs, on its own node
        for minute in (1, 2):
            clock.set(at(minute, 5))
            wait_runs(a, [(g0, minute), (g3, minute)])

        # node a, which owns g0, stops; 12:03, 12:04 and 12:05 pass while node b ticks: it runs g3's jobs, and g0's
        # are due all that time in the table it reads
        stop_flora(nodes.pop("a"))
        for minute in (3, 4, 5):
            clock.set(at(minute, 5))
            wait_runs(b, [(g3, minute)])
        clock.set(at(5, 30))
        nodes["a"] = a = _node(emulator, tmp_path, "node-a", "0,1", cluster_env)  # same id and shards: g0 is its again
        wait_line(a, g0, f"RUN tick-latest {iso(5)}")
        wait_line(a, g0, "cron 'tick-none': 3 occurrences missed while flora was not running, not run (catchUp: 'none')")
        clock.set(at(6, 5))
        wait_runs(a, [(g0, 6), (g3, 6)])
    finally:
        for server in nodes.values():
            stop_flora(server)

    # both nodes stopped, so every line either of them logged is stored: count what ran
    m0, m3 = stored_messages(url, g0), stored_messages(url, g3)
    assert counts(m0, "tick-latest") == {iso(n): 1 for n in (1, 2, 5, 6)}
    assert counts(m0, "tick-none") == {iso(n): 1 for n in (1, 2, 6)}
    assert counts(m3, "tick-latest") == counts(m3, "tick-none") == {iso(n): 1 for n in range(1, 7)}
    assert [m for m in m0 if m.startswith("cron 'tick-latest': catching up")] == [
        f"cron 'tick-latest': catching up the occurrence of {iso(5)}, the latest of 3 occurrences missed "
        "while flora was not running (catchUp: 'latest')"
    ]
    assert [m for m in m0 + m3 if "skipped" in m or "no script" in m or "fell behind" in m] == []
    ran_at = sorted(r[0] for r in _query(url, "SELECT scheduled_at FROM cron_claims WHERE guild_id = %s", (g0,)))
    assert ran_at == [at(6), at(6)]  # each job's latest claimed occurrence
