"""Cron without a running flora: expressions, op_register_cron's checks, replacement across loads, and the
scheduler's decisions on a clock the test moves (real SQLite, and PostgreSQL for the tables)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from flora_core.config import Config, all_keys
from flora_core.errors import OpError
from flora_core.plugins import Plugins
from flora_core.runtime.opctx import OpContext, WorkerServices
from flora_plugins import cron as cron_plugin
from flora_plugins.cron import schedule, store
from flora_plugins.cron.ops import op_register_cron
from flora_plugins.cron.scheduler import Scheduler
from flora_plugins.storage.postgres import PostgresDatabase
from flora_plugins.storage.sqlite import SQLiteDatabase

G = "111111111111111111"
T0 = dt.datetime(2030, 1, 1, 12, 0, 30, tzinfo=dt.UTC).timestamp()  # 30 s before an every-minute occurrence
MIN = 60


def minute(n: int) -> str:
    """RFC 3339 of 12:<n>:00 on T0's day."""
    return schedule.rfc3339(T0 - 30 + n * MIN)


def config(**values) -> Config:
    base = {k.attr: k.default for k in all_keys()}
    base.update(values)
    return Config(base)


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path):
    if request.param == "sqlite":
        database = SQLiteDatabase(str(tmp_path / "flora.db"))
    else:
        database = PostgresDatabase(request.getfixturevalue("postgres_url"))
    database.migrate(Plugins().migrations())
    yield database
    database.close()


@pytest.fixture
def sqlite_db(tmp_path):
    database = SQLiteDatabase(str(tmp_path / "flora.db"))
    database.migrate(Plugins().migrations())
    yield database
    database.close()


class Clock:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


# -- expressions -----------------------------------------------------------------
def test_expressions_follow_flora():
    assert schedule.normalize("*/5  *  * * *") == "*/5 * * * *"
    assert schedule.normalize("@hourly") == "0 * * * *"
    for expr, text in (
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "got 6"),
        ("61 * * * *", "out of range"),
        ("a b c d e", "not acceptable"),
    ):
        with pytest.raises(schedule.CronError) as info:
            schedule.normalize(expr)
        assert str(info.value).startswith(f"invalid cron expression '{expr}': ") and text in str(info.value)
    with pytest.raises(schedule.CronError, match="^cron schedule has no future occurrences: "):
        schedule.next_after("0 0 30 2 *", T0)
    assert schedule.next_after("* * * * *", T0) == T0 + 30
    assert schedule.next_after("0 0 * * 7", T0) == dt.datetime(2030, 1, 6, tzinfo=dt.UTC).timestamp()  # 7 = Sunday
    assert schedule.latest_at_or_before("* * * * *", T0 + 30) == T0 + 30  # an occurrence is due at its own second
    assert schedule.latest_at_or_before("* * * * *", T0 + 89) == T0 + 30
    assert schedule.count_between("* * * * *", int(T0 + 30), int(T0 + 30 + 4 * MIN)) == 5
    assert schedule.rfc3339(T0 + 30) == "2030-01-01T12:01:00+00:00"


# -- the op ----------------------------------------------------------------------
def _ctx(services, load_id="L1"):
    return OpContext(G, services, load_id)


def test_op_register_cron_checks(sqlite_db, monkeypatch):
    monkeypatch.setenv(schedule.TEST_CLOCK_ENV, "")
    services = WorkerServices(config=config(max_cron_jobs=2), http=None, db=sqlite_db)
    run = asyncio.run

    async def register(args, load_id="L1"):
        return await op_register_cron(_ctx(services, load_id), args)

    def error(args, load_id="L1") -> str:
        with pytest.raises(OpError) as info:
            run(register(args, load_id))
        return info.value.message

    assert error({"name": "a", "expr": "nope"}).startswith("invalid cron expression 'nope': expected 5 fields")
    assert error({"name": "a", "expr": "0 0 30 2 *"}).startswith("cron schedule has no future occurrences: ")
    assert error({"name": "a", "expr": "* * * * *", "catchUp": "all"}) == "invalid catchUp 'all': expected 'none' or 'latest'"
    assert run(register({"name": "a", "expr": "* * * * *", "catchUp": "latest", "skipIfRunning": True})) is None
    assert error({"name": "a", "expr": "*/2 * * * *"}) == "cron job with name 'a' already exists"
    run(register({"name": "b", "expr": "* * * * *", "catchUp": True}))  # the prelude's boolean form: 'latest'
    assert error({"name": "c", "expr": "* * * * *"}) == "max cron jobs exceeded for this guild/runtime"
    rows = {r["name"]: r for r in store.jobs_of(sqlite_db, G)}
    assert (rows["a"]["catch_up"], rows["a"]["skip_if_running"], rows["b"]["catch_up"]) == ("latest", 1, "latest")

    # the worker rebuilds the isolate from the same load (e.g. after a timeout): the script registers again
    cron_plugin.flora_isolate_built(G, "L1", services)
    run(register({"name": "a", "expr": "* * * * *"}))
    run(register({"name": "b", "expr": "* * * * *"}))
    assert len(store.jobs_of(sqlite_db, G)) == 2
    # another load of the same guild has its own names
    run(register({"name": "a", "expr": "* * * * *"}, load_id="L2"))
    assert len(store.jobs_of(sqlite_db, G)) == 3


# -- replacement across loads ------------------------------------------------------
def test_jobs_follow_the_running_load(db):
    every_minute = "* * * * *"
    store.register_job(db, G, "L1", "tick", every_minute, False, "none", 100)
    store.register_job(db, G, "L1", "gone", every_minute, False, "none", 100)
    assert store.due_jobs(db, 10**9) == []  # L1 is still loading: its jobs wait
    store.activate(db, G, "L1")
    assert [j["name"] for j in store.due_jobs(db, 100)] == ["gone", "tick"]
    job = next(j for j in store.due_jobs(db, 100) if j["name"] == "tick")
    assert store.advance(db, job, 160, 100) and not store.advance(db, job, 220, 160)  # compare-and-set on next_run

    # a redeploy: same name + expression continues the schedule, a new expression starts afresh
    assert store.register_job(db, G, "L2", "tick", every_minute, True, "latest", 999) == {"next_run": 160, "last_run": 100}
    assert store.register_job(db, G, "L2", "other", "*/5 * * * *", False, "none", 300)["next_run"] == 300
    store.activate(db, G, "L2")
    assert sorted((j["name"], j["load_id"]) for j in store.due_jobs(db, 10**9)) == [("other", "L2"), ("tick", "L2")]
    assert store.running_load(db, G) == "L2"

    # a failed deploy: its jobs go, the running ones stay
    store.register_job(db, G, "L3", "tick", every_minute, False, "none", 999)
    assert store.discard(db, G, "L3") == 1
    assert {(j["name"], j["load_id"]) for j in store.due_jobs(db, 10**9)} == {("other", "L2"), ("tick", "L2")}
    assert store.discard(db, G, "L2") == 0  # the running load is never discarded

    # a registration that arrives after its load was activated still continues the previous schedule
    store.activate(db, G, "L4")
    assert store.register_job(db, G, "L4", "tick", every_minute, False, "none", 999)["next_run"] == 160
    # ... and older generations are cleaned up at the next activation
    store.activate(db, G, "L5")
    assert {r["load_id"] for r in store.jobs_of(db, G)} <= {"L4", "L5"}


def test_activation_takes_the_latest_progress_of_the_replaced_load(db):
    store.register_job(db, G, "L1", "tick", "* * * * *", False, "none", 100)
    store.activate(db, G, "L1")
    store.register_job(db, G, "L2", "tick", "* * * * *", False, "none", 999)  # copies next_run=100 ...
    job = store.due_jobs(db, 100)[0]
    store.advance(db, job, 160, 100)  # ... then L1 runs once more while L2 loads
    store.activate(db, G, "L2")
    (job,) = store.due_jobs(db, 10**9)
    assert (job["load_id"], job["next_run"], job["last_run"]) == ("L2", 160, 100)


# -- the scheduler -----------------------------------------------------------------
class Recorder:
    """What the scheduler told the guild's script and log (plain callables: the scheduler's whole world)."""

    def __init__(self, db, delay: float = 0.0, reply: dict | None = None):
        self.db = db
        self.delay = delay
        self.reply = reply or {"ok": True}
        self.runs: list[tuple[str, str]] = []
        self.lines: list[tuple[str, str]] = []
        self.stored_at_dispatch: list[int] = []
        self.suspended: set[str] = set()

    async def dispatch(self, guild_id, event, payload, timeout):
        assert event == f"__cron:{payload['name']}" and timeout == 5
        job = next(r for r in store.jobs_of(self.db, guild_id) if r["name"] == payload["name"])
        self.stored_at_dispatch.append(job["next_run"])
        self.runs.append((payload["name"], payload["scheduledAt"]))
        await asyncio.sleep(self.delay)
        return self.reply

    def log(self, guild_id, level, target, message):
        assert target == "flora:cron"
        self.lines.append((level, message))

    def scheduler(self, clock) -> Scheduler:
        return Scheduler(
            self.db,
            dispatch=self.dispatch,
            guild_log=self.log,
            clock=clock,
            timeout=5,
            tick=0.01,
            skip_reason=lambda g: "suspended" if g in self.suspended else None,
        )


async def _settle(s: Scheduler):
    while s.tasks:
        await asyncio.gather(*list(s.tasks), return_exceptions=True)


def _deploy(db, s: Scheduler, load_id: str, jobs: dict, now: float):
    for name, (expr, skip, catch_up) in jobs.items():
        store.register_job(db, G, load_id, name, expr, skip, catch_up, schedule.next_after(expr, now))
    s.script_loaded(G, load_id, True)


def test_runs_each_occurrence_once_and_stores_it_first(db):
    async def main():
        clock = Clock(T0)
        rec = Recorder(db)
        s = rec.scheduler(clock)
        _deploy(db, s, "L1", {"tick": ("* * * * *", False, "none")}, clock())
        for t in (T0, T0 + 29, T0 + 30, T0 + 31, T0 + 60, T0 + 95, T0 + 96):
            clock.t = t
            await s.step()
            await _settle(s)
        assert rec.runs == [("tick", minute(1)), ("tick", minute(2))]
        assert rec.stored_at_dispatch == [T0 + 30 + MIN, T0 + 30 + 2 * MIN]  # next_run was moved on before each run
        assert ("info", f"cron 'tick' ran (scheduled {minute(1)}) in 0.00s") in rec.lines

    asyncio.run(main())


def test_catch_up_after_downtime(db):
    jobs = {"latest": ("* * * * *", False, "latest"), "none": ("* * * * *", False, "none")}

    async def main():
        clock = Clock(T0)
        rec = Recorder(db)
        s = rec.scheduler(clock)
        _deploy(db, s, "L1", jobs, clock())
        clock.t = T0 + 31
        await s.step()
        await _settle(s)
        assert sorted(rec.runs) == [("latest", minute(1)), ("none", minute(1))]

        # flora stops; 12:02, 12:03 and 12:04 pass; flora starts again and the script loads again (new load id)
        rec.runs.clear()
        clock.t = T0 + 30 + 3 * MIN + 20
        s2 = rec.scheduler(clock)
        _deploy(db, s2, "L2", jobs, clock())
        await s2.step()
        await _settle(s2)
        assert rec.runs == [("latest", minute(4))]
        assert (
            "info",
            f"cron 'latest': catching up the occurrence of {minute(4)}, the latest of 3 occurrences missed while "
            "flora was not running (catchUp: 'latest')",
        ) in rec.lines
        assert (
            "info",
            f"cron 'none': 3 occurrences missed while flora was not running, not run (catchUp: 'none'); next run at {minute(5)}",
        ) in rec.lines
        await s2.step()  # nothing is due twice
        clock.t = T0 + 30 + 4 * MIN
        await s2.step()
        await _settle(s2)
        assert sorted(rec.runs) == [("latest", minute(4)), ("latest", minute(5)), ("none", minute(5))]

    asyncio.run(main())


def test_skip_if_running_really_skips_and_otherwise_runs_overlap(sqlite_db):
    async def main():
        clock = Clock(T0)
        rec = Recorder(sqlite_db, delay=0.3)
        s = rec.scheduler(clock)
        _deploy(sqlite_db, s, "L1", {"solo": ("* * * * *", True, "none"), "overlap": ("* * * * *", False, "none")}, clock())
        for n in (1, 2, 3):
            clock.t = T0 + 30 + (n - 1) * MIN
            await s.step()
            await asyncio.sleep(0.05)  # the first runs are still going
        assert max(s.running.values()) == 3 and s.running[(G, "solo")] == 1
        await _settle(s)
        assert [r for r in rec.runs if r[0] == "solo"] == [("solo", minute(1))]
        assert [r for r in rec.runs if r[0] == "overlap"] == [("overlap", minute(n)) for n in (1, 2, 3)]
        skips = [m for _, m in rec.lines if "skipIfRunning" in m]
        assert skips == [
            f"cron 'solo' skipped (scheduled {minute(n)}): its previous run is still in progress (skipIfRunning)" for n in (2, 3)
        ]
        assert s.running == {}
        clock.t = T0 + 30 + 3 * MIN
        await s.step()
        await _settle(s)
        assert ("solo", minute(4)) in rec.runs

    asyncio.run(main())


def test_suspended_guilds_failures_and_timeouts_are_logged(sqlite_db):
    async def main():
        clock = Clock(T0)
        rec = Recorder(sqlite_db, reply={"ok": False, "error": "Error: boom"})
        s = rec.scheduler(clock)
        _deploy(sqlite_db, s, "L1", {"tick": ("* * * * *", False, "none")}, clock())
        rec.suspended.add(G)
        clock.t = T0 + 30
        await s.step()
        assert rec.runs == [] and rec.lines[-1] == ("warn", f"cron 'tick' skipped (scheduled {minute(1)}): suspended")
        rec.suspended.clear()
        clock.t += MIN
        await s.step()
        await _settle(s)
        assert rec.lines[-1] == ("error", f"cron failed: 'tick' (scheduled {minute(2)}): Error: boom")
        rec.reply = {"ok": False, "error": "__cron:tick handler exceeded the 5s dispatch deadline", "kind": "timeout"}
        clock.t += MIN
        await s.step()
        await _settle(s)
        assert rec.lines[-1] == (
            "error",
            f"cron failed: 'tick' (scheduled {minute(3)}) exceeded the 5s cron timeout "
            "(RUNTIME_CRON_TIMEOUT_SECS); its isolate was restarted",
        )

    asyncio.run(main())


def test_a_failed_redeploy_keeps_the_running_jobs(db):
    async def main():
        clock = Clock(T0)
        rec = Recorder(db)
        s = rec.scheduler(clock)
        _deploy(db, s, "L1", {"tick": ("* * * * *", False, "none")}, clock())
        await s.step()
        store.register_job(db, G, "L2", "tick", "*/2 * * * *", False, "none", 0)
        s.script_loaded(G, "L2", False)
        clock.t = T0 + 30
        await s.step()
        await _settle(s)
        assert rec.runs == [("tick", minute(1))]
        assert {r["load_id"] for r in store.jobs_of(db, G)} == {"L1"}

    asyncio.run(main())
