"""The cron scheduler: one task in the supervisor, ticking every second.

Each tick takes the due jobs of the running loads from the database, keeps
those of the guilds this runtime node owns (``owns``: the guild is on one of
its shards; another node's guilds are that node's, neither run nor skipped
here) and, per job, decides once what happens to the occurrences that came due:

* the guild is suspended or has no script: skipped;
* they were missed while flora was not running (more than a few seconds
  before this scheduler started): ``catchUp: 'none'`` skips them,
  ``'latest'`` runs the latest one;
* ``skipIfRunning`` and the job's previous run is still in flight: skipped;
* otherwise the latest due occurrence runs (normally the only one).

Either way ``next_run`` (and ``last_run`` for a run) is stored **before** the
run is dispatched, as a compare-and-set from the ``next_run`` this scheduler
read, and a run is a **claim** (``store.claim``: that, and the job's latest
claimed occurrence raised in the same transaction): only the scheduler whose
claim succeeded dispatches, so no occurrence runs twice, whether two nodes'
schedulers consider the same job, a node restarts or dies mid-run, or a guild's
jobs move to a new load (a redeploy, another node taking the guild over).
Runs are dispatched as tasks, so jobs overlap unless
``skipIfRunning`` says otherwise. Every run, skip, timeout and failure is
written to the guild's log (target ``flora:cron``). Activations and discards
of script loads are applied by the same task, between ticks, so the
scheduler is the only writer of schedules in the supervisor.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

from . import schedule, store
from .schedule import CronError, rfc3339

log = logging.getLogger("flora.cron")

TARGET = "flora:cron"
# An occurrence this close before the scheduler started is run late rather than counted as missed
# (flora restarting across an occurrence should not lose it to catchUp: 'none').
MISSED_GRACE_SECS = 5


class Scheduler:
    def __init__(
        self,
        db,
        *,
        dispatch: Callable[..., Awaitable[dict]],
        guild_log: Callable[[str, str, str, str], None],
        skip_reason: Callable[[str], str | None] = lambda guild_id: None,
        owns: Callable[[str], bool] = lambda guild_id: True,
        spawn=None,
        clock: Callable[[], float] = schedule.now,
        timeout: float = 5,
        tick: float | None = None,
    ):
        self.db = db
        self.dispatch = dispatch
        self.guild_log = guild_log
        self.skip_reason = skip_reason
        self.owns = owns
        self.spawn = spawn or asyncio.ensure_future
        self.clock = clock
        self.timeout = timeout
        self.tick_seconds = schedule.tick_seconds() if tick is None else tick
        self.started_at = clock()  # occurrences before this came due while flora was not running
        self.pending: deque[tuple[str, str, bool]] = deque()
        self.running: dict[tuple[str, str], int] = {}
        self.tasks: set[asyncio.Future] = set()
        self._wake: asyncio.Event | None = None

    # -- script loads ------------------------------------------------------
    def script_loaded(self, guild_id: str, load_id: str, ok: bool) -> None:
        """Queue a load's outcome; applied by the scheduler task before its next tick."""
        self.pending.append((guild_id, load_id, ok))
        if self._wake is not None:
            self._wake.set()

    async def _apply_loads(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            guild_id, load_id, ok = self.pending.popleft()
            try:
                if ok:
                    await loop.run_in_executor(None, store.activate, self.db, guild_id, load_id)
                else:
                    await loop.run_in_executor(None, store.discard, self.db, guild_id, load_id)
            except Exception:  # noqa: BLE001 - one guild's bookkeeping must not stop the scheduler
                log.exception("cron: could not apply load %s of guild %s", load_id, guild_id)

    # -- the loop ----------------------------------------------------------
    async def run_forever(self) -> None:
        self._wake = asyncio.Event()
        while True:
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("cron tick failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.tick_seconds)
            except TimeoutError:
                pass
            self._wake.clear()

    async def step(self) -> None:
        """Apply pending load outcomes, then handle every due job of this node's guilds once."""
        await self._apply_loads()
        now = self.clock()
        jobs = await asyncio.get_running_loop().run_in_executor(None, store.due_jobs, self.db, int(now))
        for job in jobs:
            if not self.owns(job["guild_id"]):
                continue  # another node's guild: its scheduler handles it
            try:
                await self._consider(job, now)
            except Exception:  # noqa: BLE001
                log.exception("cron: job %r of guild %s failed in the scheduler", job.get("name"), job.get("guild_id"))

    async def _advance(self, job: dict, next_run: int, last_run) -> bool:
        return await asyncio.get_running_loop().run_in_executor(None, store.advance, self.db, job, next_run, last_run)

    async def _claim(self, job: dict, next_run: int, scheduled: int) -> bool:
        return await asyncio.get_running_loop().run_in_executor(None, store.claim, self.db, job, next_run, scheduled)

    def _log(self, guild_id: str, level: str, message: str) -> None:
        self.guild_log(guild_id, level, TARGET, message)

    async def _consider(self, job: dict, now: float) -> None:
        guild_id, name, expr = job["guild_id"], job["name"], job["expr"]
        latest = max(int(job["next_run"]), schedule.latest_at_or_before(expr, now))
        try:
            next_run = schedule.next_after(expr, now)
        except CronError as exc:
            self._log(guild_id, "error", f"cron '{name}' stopped: {exc}")
            await self._advance(job, 2**62, job["last_run"])
            return
        due = schedule.count_between(expr, int(job["next_run"]), latest)
        at = rfc3339(latest)

        reason = self.skip_reason(guild_id)
        if reason:
            if await self._advance(job, next_run, job["last_run"]):
                self._log(guild_id, "warn", f"cron '{name}' skipped (scheduled {at}): {reason}")
            return
        missed_while_down = latest < self.started_at - MISSED_GRACE_SECS
        if missed_while_down and job["catch_up"] != "latest":
            if await self._advance(job, next_run, job["last_run"]):
                self._log(
                    guild_id,
                    "info",
                    f"cron '{name}': {_n(due)} missed while flora was not running, not run "
                    f"(catchUp: 'none'); next run at {rfc3339(next_run)}",
                )
            return
        key = (guild_id, name)
        if job["skip_if_running"] and self.running.get(key):
            if await self._advance(job, next_run, job["last_run"]):
                self._log(
                    guild_id,
                    "info",
                    f"cron '{name}' skipped (scheduled {at}): its previous run is still in progress (skipIfRunning)",
                )
            return
        if not await self._claim(job, next_run, latest):  # stored before the run, and only one claim wins: never twice
            return
        if missed_while_down:
            self._log(
                guild_id,
                "info",
                f"cron '{name}': catching up the occurrence of {at}, the latest of "
                f"{_n(due)} missed while flora was not running (catchUp: 'latest')",
            )
        elif due > 1:
            self._log(guild_id, "warn", f"cron '{name}': {_n(due - 1)} before {at} not run (the scheduler fell behind)")
        self.running[key] = self.running.get(key, 0) + 1
        task = self.spawn(self._run(guild_id, name, latest))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _run(self, guild_id: str, name: str, scheduled: int) -> None:
        key = (guild_id, name)
        at = rfc3339(scheduled)
        started = time.monotonic()
        try:
            reply = await self.dispatch(guild_id, f"__cron:{name}", {"name": name, "scheduledAt": at}, self.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            log.exception("cron: dispatch of %r for guild %s failed", name, guild_id)
            reply = {"ok": False, "error": f"internal error ({exc.__class__.__name__})"}
        finally:
            count = self.running.get(key, 1) - 1
            if count > 0:
                self.running[key] = count
            else:
                self.running.pop(key, None)
        elapsed = time.monotonic() - started
        if reply.get("ok"):
            self._log(guild_id, "info", f"cron '{name}' ran (scheduled {at}) in {elapsed:.2f}s")
        elif reply.get("kind") == "timeout":
            self._log(
                guild_id,
                "error",
                f"cron failed: '{name}' (scheduled {at}) exceeded the {self.timeout:g}s cron timeout "
                "(RUNTIME_CRON_TIMEOUT_SECS); its isolate was restarted",
            )
        else:
            self._log(guild_id, "error", f"cron failed: '{name}' (scheduled {at}): {reply.get('error') or 'unknown error'}")

    def cancel(self) -> None:
        for task in list(self.tasks):
            task.cancel()


def _n(count: int) -> str:
    return f"{count}{'+' if count >= 1000 else ''} occurrence{'s' if count != 1 else ''}"
