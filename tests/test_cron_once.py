"""Cron on several runtime nodes: two schedulers over one database (two connections to the same SQLite file, or
to the same PostgreSQL schema), driven by one clock the test moves, fire every occurrence exactly once in total.

A node only schedules the guilds it owns; an occurrence is claimed (compare-and-set on ``next_run``, plus the
job's latest claimed occurrence in ``cron_claims``) before it runs, so two schedulers that both consider a job,
even through different script loads' rows, never both run the same occurrence; catch-up works as on one node."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import threading

import pytest

from flora_core.plugins import Plugins
from flora_plugins.cron import schedule, store
from flora_plugins.cron.scheduler import Scheduler
from flora_plugins.storage.postgres import PostgresDatabase
from flora_plugins.storage.sqlite import SQLiteDatabase

# snowflakes on shards 0 and 1 of 2 ((id >> 22) % 2)
GA = str((1 << 40) | (0 << 22))
GB = str((1 << 40) | (1 << 22))
T0 = dt.datetime(2030, 1, 1, 12, 0, 30, tzinfo=dt.UTC).timestamp()  # 30 s before an every-minute occurrence
MIN = 60
NO_SCRIPT = "the guild has no script deployed"  # what the runtime's skip_reason says of a guild it does not hold


def minute(n: int) -> str:
    return schedule.rfc3339(T0 - 30 + n * MIN)


@pytest.fixture(params=["sqlite", "postgres"])
def dbs(request, tmp_path):
    """Two connections to one database, as two runtime nodes have."""
    if request.param == "sqlite":
        pair = [SQLiteDatabase(str(tmp_path / "flora.db")) for _ in range(2)]
    else:
        url = request.getfixturevalue("postgres_url")
        pair = [PostgresDatabase(url) for _ in range(2)]
    for database in pair:
        database.migrate(Plugins().migrations())
    yield pair
    for database in pair:
        database.close()


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Cluster:
    """What every node's scheduler did, in one place."""

    def __init__(self):
        self.runs: list[tuple[str, str, str, str]] = []  # (node, guild, job, scheduledAt)
        self.lines: list[tuple[str, str, str, str]] = []  # (node, guild, level, message)

    def counts(self) -> collections.Counter:
        return collections.Counter((g, name, at) for _, g, name, at in self.runs)


class Node:
    """One runtime node as its scheduler sees it: the guilds it owns (its shards) and holds a script for."""

    def __init__(self, cluster: Cluster, name: str, db, clock: Clock, owned: set[str] | None):
        self.cluster, self.name, self.db, self.clock = cluster, name, db, clock
        self.owned = owned  # None: every guild (a node that believes it owns them all)
        self.loaded: set[str] = set()
        self.scheduler = self.start()

    def owns(self, guild_id: str) -> bool:
        return self.owned is None or guild_id in self.owned

    def start(self) -> Scheduler:
        """A (re)started node: a new scheduler, which counts occurrences before now as missed while it was down."""
        self.scheduler = Scheduler(
            self.db,
            dispatch=self.dispatch,
            guild_log=self.log,
            clock=self.clock,
            timeout=5,
            tick=0.01,
            skip_reason=lambda g: None if g in self.loaded else NO_SCRIPT,
            owns=self.owns,
        )
        return self.scheduler

    async def dispatch(self, guild_id, event, payload, timeout):
        assert guild_id in self.loaded, f"{self.name} ran a job of guild {guild_id}, whose script it does not hold"
        self.cluster.runs.append((self.name, guild_id, payload["name"], payload["scheduledAt"]))
        return {"ok": True}

    def log(self, guild_id, level, target, message):
        assert target == "flora:cron"
        self.cluster.lines.append((self.name, guild_id, level, message))

    def deploy(self, guild_id: str, load_id: str, jobs: dict) -> None:
        """The script loads on this node: its jobs are registered, then its load becomes the running one."""
        for name, (expr, catch_up) in jobs.items():
            store.register_job(self.db, guild_id, load_id, name, expr, False, catch_up, schedule.next_after(expr, self.clock()))
        self.loaded.add(guild_id)
        self.scheduler.script_loaded(guild_id, load_id, True)

    async def step(self) -> None:
        await self.scheduler.step()
        while self.scheduler.tasks:
            await asyncio.gather(*list(self.scheduler.tasks), return_exceptions=True)


async def step_all(nodes: list[Node], order: int) -> None:
    """Every node ticks at the same instant: one after the other (in turn, each first), or all at once."""
    if order % 3 == 2:
        await asyncio.gather(*(n.step() for n in nodes))
    else:
        for n in nodes if order % 3 == 0 else nodes[::-1]:
            await n.step()


@pytest.fixture
def reads_together(monkeypatch):
    """Makes the next ``n`` reads of due jobs wait for each other, so every scheduler has read the same rows
    before any of them claims one: the race a claim must win alone."""

    real = store.due_jobs

    def arm(n: int) -> None:
        barrier = threading.Barrier(n, timeout=10)
        left = [n]
        lock = threading.Lock()

        def due_jobs(db, now):
            rows = real(db, now)
            with lock:
                mine, left[0] = left[0] > 0, left[0] - 1
            if mine:  # the next n reads only
                barrier.wait()
            return rows

        monkeypatch.setattr(store, "due_jobs", due_jobs)

    return arm


JOBS = {"tick": ("* * * * *", "none"), "every2": ("*/2 * * * *", "latest")}


def test_each_node_runs_only_its_guilds_and_every_occurrence_once(dbs):
    """Before, the node that does not hold a guild's script took its occurrences too and skipped them
    ('no script deployed'), so whichever node ticked first decided whether a job ran."""

    async def main():
        clock, cluster = Clock(T0), Cluster()
        a = Node(cluster, "a", dbs[0], clock, {GA})
        b = Node(cluster, "b", dbs[1], clock, {GB})
        a.deploy(GA, "LA", JOBS)
        b.deploy(GB, "LB", JOBS)
        await step_all([a, b], 0)
        for n in range(1, 7):
            clock.t = T0 - 30 + n * MIN + (0 if n % 2 else 7)  # at the occurrence, or a few seconds after it
            await step_all([a, b], n)
            await step_all([a, b], n + 1)  # another tick in the same minute: nothing more runs
        expected = {(g, "tick", minute(n)): 1 for g in (GA, GB) for n in range(1, 7)}
        expected.update({(g, "every2", minute(n)): 1 for g in (GA, GB) for n in (2, 4, 6)})
        assert cluster.counts() == expected
        assert {(node, g) for node, g, _, _ in cluster.runs} == {("a", GA), ("b", GB)}
        assert [line for line in cluster.lines if "skipped" in line[3] or "not run" in line[3]] == []

    asyncio.run(main())


def test_two_schedulers_of_one_job_at_the_same_instants_run_each_occurrence_once(dbs, reads_together):
    """Both nodes hold the guild's script and both consider its jobs (e.g. one of them has not noticed yet that it lost
    its shard): they read the same due rows, and only the claim that moves ``next_run`` first runs the occurrence."""

    async def main():
        clock, cluster = Clock(T0), Cluster()
        a = Node(cluster, "a", dbs[0], clock, None)
        b = Node(cluster, "b", dbs[1], clock, None)
        a.deploy(GA, "L1", JOBS)
        b.loaded.add(GA)
        for n in range(1, 6):
            clock.t = T0 - 30 + n * MIN
            reads_together(2)
            await step_all([a, b], 2)  # both at once, each having read the job before either claims it
        expected = {(GA, "tick", minute(n)): 1 for n in range(1, 6)}
        expected.update({(GA, "every2", minute(n)): 1 for n in (2, 4)})
        assert cluster.counts() == expected
        assert {node for node, *_ in cluster.runs} <= {"a", "b"}

    asyncio.run(main())


def test_an_occurrence_claimed_through_the_replaced_load_is_not_run_again_through_the_new_one(dbs, monkeypatch):
    """A node takes over the guild (its script loads there, its load becomes the running one) while the old
    node has just read the due job and is about to claim it on the old load's row: the new load's row inherited
    ``next_run`` before that claim, but the occurrence must not run a second time through it. Before, it did."""

    async def main():
        clock, cluster = Clock(T0), Cluster()
        old = Node(cluster, "old", dbs[0], clock, None)
        new = Node(cluster, "new", dbs[1], clock, None)
        old.deploy(GA, "L1", {"tick": ("* * * * *", "none")})
        await old.step()  # L1 is the running load
        clock.t = T0 + 30  # 12:01 is due

        real = store.due_jobs

        def due_then_take_over(db, now):
            rows = real(db, now)
            if db is dbs[0]:
                monkeypatch.setattr(store, "due_jobs", real)
                new.deploy(GA, "L2", {"tick": ("* * * * *", "none")})  # inherits next_run = 12:01
                store.activate(new.db, GA, "L2")  # what new's scheduler does with the load: L2 runs from now on
            return rows

        monkeypatch.setattr(store, "due_jobs", due_then_take_over)
        await old.step()  # claims 12:01 on L1's row and runs it
        await new.step()  # L2's row still says 12:01
        await old.step()
        assert cluster.counts() == {(GA, "tick", minute(1)): 1}
        (row,) = [r for r in store.jobs_of(dbs[1], GA) if r["load_id"] == "L2"]
        assert (row["next_run"], row["last_run"]) == (T0 + 30 + MIN, T0 + 30)  # moved on all the same

        for n in (2, 3):
            clock.t = T0 - 30 + n * MIN
            await step_all([old, new], n)
        assert cluster.counts() == {(GA, "tick", minute(n)): 1 for n in (1, 2, 3)}

    asyncio.run(main())


def test_catch_up_after_the_owner_was_down_while_the_other_node_ran(dbs):
    """The owner stops; 12:02, 12:03 and 12:04 pass while the other node keeps ticking; the owner starts again.
    Before, the other node had taken those occurrences ('no script deployed') and nothing was caught up."""
    jobs = {"latest": ("* * * * *", "latest"), "none": ("* * * * *", "none")}

    async def main():
        clock, cluster = Clock(T0), Cluster()
        a = Node(cluster, "a", dbs[0], clock, {GA})
        b = Node(cluster, "b", dbs[1], clock, {GB})
        a.deploy(GA, "L1", jobs)
        clock.t = T0 + 31
        await step_all([a, b], 0)
        assert sorted(cluster.counts()) == [(GA, "latest", minute(1)), (GA, "none", minute(1))]

        a.loaded.clear()  # node a is down
        for n in (2, 3, 4):
            clock.t = T0 - 30 + n * MIN + 1
            await b.step()

        clock.t = T0 + 30 + 3 * MIN + 20  # 12:04:20: node a starts again, its script loads again (a new load)
        a.start()
        a.deploy(GA, "L2", jobs)
        await step_all([a, b], 1)
        await step_all([a, b], 2)  # nothing is due twice
        assert cluster.counts() == {(GA, "latest", minute(1)): 1, (GA, "none", minute(1)): 1, (GA, "latest", minute(4)): 1}
        lines = [m for node, g, _, m in cluster.lines if node == "a" and g == GA]
        assert (
            f"cron 'latest': catching up the occurrence of {minute(4)}, the latest of 3 occurrences missed while "
            "flora was not running (catchUp: 'latest')"
        ) in lines
        assert (
            f"cron 'none': 3 occurrences missed while flora was not running, not run (catchUp: 'none'); next run at {minute(5)}"
        ) in lines
        assert [line for line in cluster.lines if line[0] == "b"] == []

        clock.t = T0 + 30 + 4 * MIN
        await step_all([a, b], 2)
        assert cluster.counts()[(GA, "latest", minute(5))] == 1 and cluster.counts()[(GA, "none", minute(5))] == 1

    asyncio.run(main())


def test_two_schedulers_catching_up_at_once_catch_up_once(dbs, reads_together):
    """Both nodes start after the same downtime and both consider the guild: one catch-up run, one 'missed' line."""
    jobs = {"latest": ("* * * * *", "latest"), "none": ("* * * * *", "none")}

    async def main():
        clock, cluster = Clock(T0), Cluster()
        a = Node(cluster, "a", dbs[0], clock, None)
        b = Node(cluster, "b", dbs[1], clock, None)
        a.deploy(GA, "L1", jobs)
        await a.step()
        clock.t = T0 + 30 + 3 * MIN + 20  # 12:01 to 12:04 passed while neither ran
        a.start()
        b.start()
        b.loaded.add(GA)
        reads_together(2)
        await step_all([a, b], 2)
        await step_all([a, b], 0)
        assert cluster.counts() == {(GA, "latest", minute(4)): 1}
        assert len([line for line in cluster.lines if "catching up" in line[3]]) == 1
        assert len([line for line in cluster.lines if "4 occurrences missed" in line[3] and "'none'" in line[3]]) == 1

    asyncio.run(main())


def test_claims_follow_the_jobs_and_never_go_back(dbs):
    db = dbs[0]
    store.register_job(db, GA, "L1", "tick", "* * * * *", False, "none", 100)
    store.register_job(db, GA, "L1", "gone", "* * * * *", False, "none", 100)
    store.activate(db, GA, "L1")
    tick, gone = sorted(store.due_jobs(db, 100), key=lambda j: j["name"] != "tick")
    assert store.claim(db, tick, 160, 100) and store.claim(db, gone, 160, 100)
    assert not store.claim(db, tick, 220, 160)  # the row moved on: compare-and-set on next_run
    store.register_job(db, GA, "L2", "tick", "* * * * *", False, "none", 160)
    store.activate(db, GA, "L2")
    (job,) = store.due_jobs(db, 160)
    db.execute("UPDATE cron_jobs SET next_run = 100 WHERE load_id = 'L2'")  # a row that still says 100
    assert not store.claim(db, {**job, "next_run": 100}, 160, 100)  # 100 was claimed already, through L1
    assert store.claim(db, {**job, "next_run": 160}, 220, 160)
    store.activate(db, GA, "L3")  # L1's rows go: no row has 'gone' any more, and its claim goes with them
    assert [r["name"] for r in db.fetchall("SELECT name FROM cron_claims WHERE guild_id = ?", (GA,))] == ["tick"]


def test_the_claims_migration_starts_from_what_already_ran(dbs):
    """A database of an earlier flora: cron_claims starts with each job's latest run, whichever load's row has it."""
    db = dbs[0]
    for load_id, last_run in (("L1", 100), ("L2", 160)):
        store.register_job(db, GA, load_id, "tick", "* * * * *", False, "none", 220)
        db.execute("UPDATE cron_jobs SET last_run = ? WHERE load_id = ?", (last_run, load_id))
    store.register_job(db, GA, "L2", "never", "* * * * *", False, "none", 220)
    store.activate(db, GA, "L2")
    db.execute("DROP TABLE cron_claims")  # as before migration 002
    db.execute("DELETE FROM schema_migrations WHERE version = 'cron/002_cron_claims.sql'")
    db.migrate(Plugins().migrations())
    assert db.fetchall("SELECT guild_id, name, scheduled_at FROM cron_claims") == [
        {"guild_id": GA, "name": "tick", "scheduled_at": 160}
    ]
    (tick,) = [j for j in store.due_jobs(db, 220) if j["name"] == "tick"]
    assert not store.claim(db, {**tick, "next_run": 220}, 280, 160)  # 160 ran before the upgrade
    assert store.claim(db, {**tick, "next_run": 280}, 340, 220)
