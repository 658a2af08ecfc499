"""The supervisor: one process that owns the event sources (the Discord gateway), the worker pool,
the runtime bus's node end and, in ``flora serve``, the API process.

It runs no tenant code. Events from event sources are converted to flora's payloads and routed to the
guild's worker, but only if the guild's script subscribed to them; a guild whose script crashed its
worker is suspended with back-off. Its parts: guild logs (``logsink.py``), the API child process
(``apiproc.py``), starter scripts (``bootstrap.py``), dispatch metrics (``metrics.py``), housekeeping
jobs (``housekeeping.py``) and the bus (``flora_core/bus.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable

from flora_core.bundler import BUNDLER_VERSION, BundleError, Bundler
from flora_core.bus import RuntimeBus, open_bus
from flora_core.config import Config
from flora_core.plugins import Plugins
from flora_core.storage import Database, open_database, repo

from . import payloads
from .apiproc import ApiProcess
from .bootstrap import Starter
from .housekeeping import Housekeeping
from .logsink import GuildLogs
from .metrics import DispatchMetrics
from .pool import KILL_REAP_SECS, WorkerDied, WorkerHandle, WorkerPool, describe_exit

log = logging.getLogger("flora.runtime")

SUSPEND_MAX_SECS = 600.0
STRIKE_RESET_SECS = 600.0
DROP_REPORT_SECS = 10
BUNDLE_CACHE_MAX_AGE_DAYS = 30

# The stop (Runtime.stop), each step bounded, counted from the moment it began:
SOURCES_STOP_SECS = 1.0  # event sources (the gateway) close within this
DRAIN_MAX_SECS = 2.5  # requests in flight get until their deadline, but no later than this
DRAIN_MARGIN_SECS = 0.25  # after a dispatch's deadline, for the worker's answer to arrive
WORKER_STOP_GRACE_SECS = 1.0  # then the workers, asked to stop, are killed after this (and reaped within KILL_REAP_SECS)
CLOSE_STEP_SECS = 0.5  # background tasks, the bus, the last log lines: milliseconds, each bounded by this
COMPANION_STOP_SECS = 1.0  # flora serve --emulator: the emulator stops last, within this
STOP_BUDGET_SECS = DRAIN_MAX_SECS + WORKER_STOP_GRACE_SECS + KILL_REAP_SECS  # 4 s, when nothing hangs in closing
STOPPING = "flora is stopping"


class Runtime:
    """The runtime of one ``flora serve`` (or ``flora dev``); plugins see it as ``flora_core.host.RuntimeAPI``.

    ``with_api`` runs the HTTP API as a child process; ``starter`` deploys the starter script to guilds
    that never had a deployment (``flora dev`` deploys the project itself and turns it off).
    """

    def __init__(self, config, plugins: Plugins | None = None, *, with_api: bool = False, starter: bool = True):
        self.config = config
        self.plugins = plugins or Plugins()
        self._db: Database | None = None
        self._pool: WorkerPool | None = None
        self._bus: RuntimeBus | None = None
        self.bundles: dict[str, str] = {}
        self.subs: dict[str, set[str]] = {}
        self.suspended: dict[str, float] = {}
        self.strikes: dict[str, tuple[int, float]] = {}
        self.sources: list = []
        self.bundler = Bundler.from_config(config)
        self.bot_user: dict | None = None
        self.logs = GuildLogs(config.log_retention_per_guild)
        self.metrics = DispatchMetrics()
        self.housekeeping = Housekeeping()
        self.api = ApiProcess(config.api_address, config.api_port, self.fail) if with_api else None
        self.starter = Starter(self) if starter else None
        self._tasks: set[asyncio.Task] = set()
        self._log_task: asyncio.Task | None = None
        self._load_locks: dict[str, asyncio.Lock] = {}
        self._dropped: dict[str, tuple[int, float, str]] = {}  # guild -> (unreported, last report, latest event)
        self.stopped = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.stopping = False  # set once, at the first request to stop: nothing is restarted or taken after it
        self._stop_task: asyncio.Task | None = None
        self.fatal: str | None = None

    @property
    def db(self) -> Database:
        """The relational database (host API for plugins); set once the runtime has started."""
        if self._db is None:
            raise RuntimeError("the runtime has not started")
        return self._db

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            raise RuntimeError("the runtime has not started")
        return self._pool

    # -- host API for plugins ---------------------------------------------------------------------
    def guild_log(self, guild_id: str | None, level: str, target: str, message: str, ts: int | None = None) -> None:
        """Add a line to a guild's log (``level``: info, warn, error)."""
        self.logs.add(guild_id, level, target, message, ts)

    def fail(self, message: str) -> None:
        """Stop the runtime because of ``message`` (``flora serve`` exits 1)."""
        self.fatal = message
        log.error("%s", message)
        self.request_stop()

    def request_stop(self) -> None:
        """Mark the runtime stopping (a signal handler calls this; ``stop`` does the rest): from now on no
        event is taken, no load is started, and no worker or API process that exits is restarted."""
        self.stopping = True
        if self._pool is not None:
            self._pool.stopping = True
        if self.api is not None:
            self.api.stopping = True
        self.stop_requested.set()

    def skip_reason(self, guild_id: str) -> str | None:
        """Why events for ``guild_id`` would not run now, or ``None``."""
        if self.stopping:
            return STOPPING
        if guild_id in self.suspended:
            return "the guild's script is suspended (it crashed its worker)"
        if guild_id not in self.bundles:
            return "the guild has no script deployed"
        return None

    def owns(self, guild_id: str) -> bool:
        """Whether ``guild_id`` is on one of this node's shards (``DISCORD_SHARD_IDS`` of
        ``DISCORD_SHARD_COUNT``; every guild when the node runs all shards)."""
        ids, count = self.config.shard_ids, self.config.shard_count
        if not count or ids is None:
            return True
        try:
            return (int(guild_id) >> 22) % count in ids
        except ValueError:
            return False

    def has_script(self, guild_id: str) -> bool:
        """Whether a script is loaded (or being restored) for ``guild_id``."""
        return guild_id in self.bundles

    def spawn(self, coro) -> asyncio.Task:
        """Run a background task owned by the runtime (cancelled at stop)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.config.data_path.mkdir(parents=True, exist_ok=True)
        if self.config.redis_url:
            log.info(
                "REDIS_URL is set: the API's caches live there, the scope cache keeps a second layer there "
                "and KV_BACKEND=redis can use it"
            )
        self._db = await loop.run_in_executor(None, open_database, self.config, self.plugins)
        self._bus = open_bus(self.config, self.plugins)
        run_dir = self.config.control_socket.parent
        self._pool = WorkerPool(self.config, str(run_dir / "workers.sock"), self._on_worker_message, self._on_worker_death)
        self._pool.stopping = self.stopping
        await self.pool.start()
        # the bus first: a node of several claims its shards before it loads anything of theirs
        await self._bus.serve(self)
        self._log_task = asyncio.create_task(self.logs.run(self.db))
        self.housekeeping.every(DROP_REPORT_SECS, self._report_drops, "report dropped events")
        self.housekeeping.every(60, self._forget_stale, "forget old strikes and locks")
        self.housekeeping.every(3600, self._trim_bundle_cache, "trim the bundle cache")
        self.spawn(self.housekeeping.run())
        await self._rebuild_legacy_bundles()
        stored = await loop.run_in_executor(None, repo.current_bundles, self.db)
        self.bundles = {g: b for g, b in stored.items() if self.owns(g)}  # other nodes' guilds are theirs
        results = await asyncio.gather(*(self._load_stored(g) for g in list(self.bundles)))
        log.info("restored %d of %d deployments", sum(results), len(results))
        if self.api is not None:
            self.api.start()
            self.spawn(self.api.watch())
        for name, factory in self.plugins.event_sources().items():
            source = factory(self.config)
            await source.start(self.emit)
            self.sources.append(source)
            log.info("event source %s started", name)
        self.plugins.startup(self)

    async def _rebuild_legacy_bundles(self) -> None:
        """Deployments bundled before the bundler checked what it reads are rebuilt from their files
        (once; stored) before anything loads; a deployment that is refused now, or has no files, stays
        unloaded and its guild log says why (SECURITY.md)."""
        loop = asyncio.get_running_loop()
        legacy = await loop.run_in_executor(None, repo.legacy_current_revisions, self.db)
        if not legacy:
            return
        log.warning("rebuilding %d deployment(s) bundled before flora checked what a bundle may read", len(legacy))
        gate = asyncio.Semaphore(max(1, min(4, os.cpu_count() or 1)))

        async def rebuild(rev: dict) -> None:
            async with gate:
                try:
                    await loop.run_in_executor(None, repo.verified_bundle, self.db, rev, self.bundler.bundle, BUNDLER_VERSION)
                except (BundleError, repo.LegacyBundle) as exc:
                    self.guild_log(
                        rev["guild_id"],
                        "error",
                        "flora:runtime",
                        f"the stored deployment is not loaded: rebuilding it was refused: {exc}",
                    )

        await asyncio.gather(*(rebuild(rev) for rev in legacy))

    async def stop(self) -> None:
        """Stop in order, within ``STOP_BUDGET_SECS`` (4 s) plus milliseconds (each step is bounded):

        1. take nothing new: plugins' ``flora_shutdown`` (cron stops), event sources stopped (the gateway's
           sessions closed), the API process asked to stop (it stops listening);
        2. requests in flight on the workers (dispatches, loads) get until their deadline, at most
           ``DRAIN_MAX_SECS`` after the stop began; what is still running then is cut, and said so;
        3. the workers are asked to stop (SIGKILL after ``WORKER_STOP_GRACE_SECS``), the API process is
           waited for (SIGKILL after its grace);
        4. background tasks cancelled, the bus closed, the last guild log lines written, the database closed.

        No worker is restarted and no guild suspended or restored once it has begun. Calling it again
        waits for the first call."""
        if self._stop_task is None:
            self._stop_task = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stop_task)

    async def _stop(self) -> None:
        self.request_stop()
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            self.plugins.shutdown(self)
        except Exception as exc:  # noqa: BLE001 - the stop goes on
            log.error("a plugin failed to shut down: %s", exc)
        if self.api is not None:
            self.api.request_stop()
        await self._stop_sources()
        if self._pool is not None:
            await self._drain(began + DRAIN_MAX_SECS)
        steps = []
        if self._pool is not None:
            steps.append(self._pool.stop(WORKER_STOP_GRACE_SECS))
        if self.api is not None:
            steps.append(self.api.stop())
        await asyncio.gather(*steps)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_STEP_SECS)
        if self._bus is not None:
            await self._bounded(self._bus.close(), CLOSE_STEP_SECS, "closing the runtime bus")
        if self._log_task is not None:
            self.logs.close()
            await asyncio.wait({self._log_task}, timeout=CLOSE_STEP_SECS)
        if self._db is not None:
            await self.logs.flush(self.db)
            self.db.close()
        log.info("stopped in %.2f s", loop.time() - began)
        self.stopped.set()

    async def _bounded(self, aw: Awaitable, timeout: float, what: str) -> None:
        try:
            await asyncio.wait_for(aw, timeout)
        except TimeoutError:
            log.error("stopping: %s took longer than %.1f s; going on", what, timeout)
        except Exception as exc:  # noqa: BLE001 - the stop goes on
            log.error("stopping: %s failed: %s", what, exc)

    async def _stop_sources(self) -> None:
        """Every event source stops (together), within ``SOURCES_STOP_SECS``."""

        async def one(source) -> None:
            await self._bounded(source.stop(), SOURCES_STOP_SECS, f"stopping event source {type(source).__name__}")

        await asyncio.gather(*(one(source) for source in self.sources))

    async def _drain(self, until: float) -> None:
        """Wait for the requests in flight on the workers, each until its deadline, all until ``until``."""
        loop = asyncio.get_running_loop()
        entries = self.pool.in_flight()
        if not entries:
            return

        def deadline(meta: dict) -> float:
            if meta.get("t") == "dispatch":
                budget = meta.get("timeout") or self.config.dispatch_timeout_secs
            elif meta.get("t") == "load":
                budget = self.config.load_timeout_secs
            else:
                budget = 0
            if not budget:  # no deadline of its own (0 = none): the stop's
                return until
            return min(until, float(meta.get("sent", loop.time())) + float(budget) + DRAIN_MARGIN_SECS)

        end = max(deadline(meta) for _, meta in entries)
        log.info("stopping: waiting up to %.1f s for %d request(s) in flight", max(0.0, end - loop.time()), len(entries))
        await asyncio.wait([fut for fut, _ in entries], timeout=max(0.0, end - loop.time()))
        cut = [meta for fut, meta in entries if not fut.done()]
        if not cut:
            return
        log.warning(
            "stopping: %d request(s) still running are cut: %s",
            len(cut),
            ", ".join(f"{m.get('t')} {m.get('event', '')} for guild {m.get('guild')}".replace("  ", " ") for m in cut),
        )
        for meta in cut:
            if meta.get("t") == "dispatch" and meta.get("guild"):
                ran = loop.time() - float(meta.get("sent", loop.time()))
                self.guild_log(
                    str(meta["guild"]),
                    "warn",
                    "flora:runtime",
                    f"flora stopped while {meta.get('event', 'an event')} was running "
                    f"(it had run for {ran:.1f}s); it was cut off",
                )

    # -- housekeeping jobs -----------------------------------------------------------------------
    def _forget_stale(self) -> None:
        now = time.monotonic()
        for guild_id, (_, last) in list(self.strikes.items()):
            if now - last > STRIKE_RESET_SECS and guild_id not in self.suspended:
                del self.strikes[guild_id]
        for guild_id, lock in list(self._load_locks.items()):
            if not lock.locked() and guild_id not in self.bundles:
                del self._load_locks[guild_id]

    async def _trim_bundle_cache(self) -> None:
        removed = await asyncio.get_running_loop().run_in_executor(
            None, self.bundler.trim_cache, BUNDLE_CACHE_MAX_AGE_DAYS * 86400
        )
        if removed:
            log.info("removed %d cached bundle(s) unused for %d days", removed, BUNDLE_CACHE_MAX_AGE_DAYS)

    # -- guild scripts ---------------------------------------------------
    async def _load_request(self, guild_id: str, bundle: str) -> tuple[dict, str]:
        """Send one load to the guild's worker; tell plugins how it went (e.g. cron keeps the jobs of that load)."""
        load_id = uuid.uuid4().hex
        w = self.pool.worker_for(guild_id)
        try:
            reply = await self.pool.request(w, {"t": "load", "guild": guild_id, "bundle": bundle, "load_id": load_id})
        except WorkerDied:
            self.plugins.script_loaded(self, guild_id, load_id, False)
            raise
        self.plugins.script_loaded(self, guild_id, load_id, bool(reply.get("ok")))
        return reply, load_id

    def guild_lock(self, guild_id: str) -> asyncio.Lock:
        """Held while a script is loaded for ``guild_id``: loads of one guild happen one at a time."""
        lock = self._load_locks.get(guild_id)
        if lock is None:
            lock = self._load_locks[guild_id] = asyncio.Lock()
        return lock

    async def load(self, guild_id: str, bundle: str) -> tuple[bool, str | None]:
        """Load a new script for a guild; on failure the previous one keeps running."""
        if self.stopping:
            return False, STOPPING
        async with self.guild_lock(guild_id):
            return await self.load_locked(guild_id, bundle)

    async def deploy(self, guild_id: str, bundle: str) -> tuple[bool, str | None]:
        """A deploy from the API (over the bus): load, then tell plugins (``flora_deployment_changed``)."""
        ok, error = await self.load(guild_id, bundle)
        if ok:
            self.guild_log(guild_id, "info", "flora:runtime", "script deployed")
            self.plugins.deployment_changed(guild_id, {"guild_id": guild_id})
        return ok, error

    async def load_locked(self, guild_id: str, bundle: str) -> tuple[bool, str | None]:
        try:
            reply, _ = await self._load_request(guild_id, bundle)
        except WorkerDied as exc:
            msg = f"the script crashed its worker while loading ({describe_exit(exc.exitcode)})"
            self.guild_log(guild_id, "error", "flora:runtime", f"deploy failed: {msg}")
            return False, msg
        if not reply.get("ok"):
            return False, reply.get("error") or "load failed"
        self.bundles[guild_id] = bundle
        self.subs[guild_id] = set(reply.get("subs", []))
        self.suspended.pop(guild_id, None)
        self.strikes.pop(guild_id, None)
        return True, None

    async def _load_stored(self, guild_id: str) -> bool:
        bundle = self.bundles.get(guild_id)
        if bundle is None or self.stopping:
            return False
        try:
            reply, _ = await self._load_request(guild_id, bundle)
        except WorkerDied:
            return False
        if reply.get("ok"):
            self.subs[guild_id] = set(reply.get("subs", []))
            return True
        self.guild_log(guild_id, "error", "flora:runtime", f"stored deployment failed to load: {reply.get('error')}")
        return False

    async def restore(self, guild_id: str) -> None:
        if self.stopping:
            return
        bundle = await asyncio.get_running_loop().run_in_executor(None, repo.current_bundle, self.db, guild_id)
        if bundle is None:
            self.bundles.pop(guild_id, None)
            self.subs.pop(guild_id, None)
            await self.pool.request(self.pool.worker_for(guild_id), {"t": "unload", "guild": guild_id})
        else:
            self.bundles[guild_id] = bundle
            await self._load_stored(guild_id)

    def _on_worker_message(self, w: WorkerHandle, msg: dict) -> None:
        if msg.get("t") == "log":
            self.guild_log(
                msg.get("guild"),
                msg.get("level", "info"),
                msg.get("target", "flora:js"),
                str(msg.get("message", "")),
                msg.get("ts"),
            )
        elif msg.get("t") == "recycle":
            # an isolate the worker could not stop: the other guilds move to a fresh worker (_on_worker_death)
            self.pool.replace(w, {"guild": msg.get("guild"), "reason": str(msg.get("reason", ""))})

    async def _on_worker_death(self, w: WorkerHandle, exitcode: int | None, inflight: list[dict]) -> None:
        """Restore the dead worker's guilds; suspend the ones that were running when it died (never
        while stopping: the pool does not call this then, and nothing is restored or suspended)."""
        if self.stopping:
            return
        recycled, w.recycle = w.recycle, None
        if recycled is not None:  # replaced on its own request: only the guild it could not stop is suspect
            suspects = {str(recycled["guild"])} if recycled.get("guild") else set()
        else:
            suspects = {r["guild"] for r in inflight if r.get("t") == "dispatch"}
        why = describe_exit(exitcode)
        now = time.monotonic()
        for guild_id in suspects:
            count, last = self.strikes.get(guild_id, (0, now))
            count = 1 if now - last > STRIKE_RESET_SECS else count + 1
            self.strikes[guild_id] = (count, now)
            delay = min(self.config.suspend_backoff_secs * 2 ** (count - 1), SUSPEND_MAX_SECS)
            self.suspended[guild_id] = now + delay
            events = ", ".join(sorted({r.get("event", "?") for r in inflight if r.get("guild") == guild_id}))
            shared = f" (together with {len(suspects) - 1} other guild(s))" if len(suspects) > 1 else ""
            if recycled is not None:
                self.guild_log(
                    guild_id,
                    "error",
                    "flora:runtime",
                    "the worker running this guild's script was replaced because this script's isolate "
                    f"could not be stopped; script suspended for {delay:.0f}s",
                )
            else:
                self.guild_log(
                    guild_id,
                    "error",
                    "flora:runtime",
                    f"the worker running this guild's script {why} while handling {events}{shared}; "
                    f"script suspended for {delay:.0f}s",
                )
            asyncio.get_running_loop().call_later(delay, self._resume_later, guild_id)
        try:  # storage is the truth: restore what is deployed there now
            stored = await asyncio.get_running_loop().run_in_executor(None, repo.current_bundles, self.db)
        except Exception as exc:  # noqa: BLE001
            if self.stopping:
                return
            log.error("could not read deployments to restore %s: %s", w.name, exc)
            stored = {}
        if self.stopping:
            return
        for guild_id, bundle in stored.items():
            if self.owns(guild_id) and self.pool.worker_for(guild_id) is w:
                self.bundles[guild_id] = bundle
        mine = [g for g in self.bundles if self.pool.worker_for(g) is w and g not in suspects]
        await asyncio.gather(*(self._load_stored(g) for g in mine))
        if self.stopping:  # the stop began while restoring: what is left is not restored
            return
        log.info("%s restarted; restored %d guild(s), suspended %d", w.name, len(mine), len(suspects))

    def _resume_later(self, guild_id: str) -> None:
        self.spawn(self._unsuspend(guild_id))

    async def _unsuspend(self, guild_id: str) -> None:
        if self.stopping or guild_id not in self.suspended:
            return
        del self.suspended[guild_id]
        if await self._load_stored(guild_id):
            self.guild_log(guild_id, "info", "flora:runtime", "script resumed after suspension")

    # -- events ----------------------------------------------------------
    def _emit_own(self, event: str, payload: dict) -> None:
        """An event of a plugin's own source (``webhook``…): to the guild in ``payload["guild_id"]``, if
        its script listens."""
        guild_id = str(payload.get("guild_id") or "")
        if not guild_id or not self.owns(guild_id) or event not in self.subs.get(guild_id, ()) or guild_id in self.suspended:
            return
        self.spawn(self.dispatch(guild_id, event, payload))

    def emit(self, event_type: str, raw: dict) -> None:
        """Called by event sources: a raw Discord gateway dispatch (``MESSAGE_CREATE``…), or an event of
        the source's own (any other name) whose payload holds ``guild_id``."""
        if self.stopping:
            return  # stopping: no event is taken any more
        if event_type == "READY":
            self.bot_user = raw.get("user")
            self._broadcast("ready", payloads.ready(raw))
            for g in raw.get("guilds", []):
                self._bootstrap(str(g["id"]))
            return
        if event_type == "GUILD_CREATE":
            self._bootstrap(str(raw["id"]))
            return
        names = payloads.EVENT_NAMES.get(event_type)
        if names is None:
            self._emit_own(event_type, raw)
            return
        guild_id = raw.get("guild_id")
        if not guild_id:
            return  # DMs and other guild-less events are dropped
        guild_id = str(guild_id)
        subs = self.subs.get(guild_id)
        if not subs or not any(n in subs for n in names) or guild_id in self.suspended:
            return
        converted = payloads.convert(event_type, raw)
        if converted is None or converted[0] not in subs:
            return
        self.spawn(self.dispatch(guild_id, converted[0], converted[2]))

    def _note_drop(self, guild_id: str, event: str) -> None:
        """Events dropped under backlog are counted and reported at most every 10 s per guild (the
        housekeeping job reports what is left)."""
        pending, last, _ = self._dropped.get(guild_id, (0, 0.0, event))
        self._dropped[guild_id] = (pending + 1, last, event)
        if time.monotonic() - last >= DROP_REPORT_SECS:
            self._report_drop(guild_id)

    def _report_drop(self, guild_id: str) -> None:
        pending, _, event = self._dropped[guild_id]
        if pending:
            self.guild_log(
                guild_id,
                "warn",
                "flora:runtime",
                f"{pending} event(s) dropped (latest: {event}): the worker queue is full "
                f"(RUNTIME_WORKER_QUEUE_CAPACITY={self.config.worker_queue_capacity})",
            )
        self._dropped[guild_id] = (0, time.monotonic(), event)

    def _report_drops(self) -> None:
        now = time.monotonic()
        for guild_id, (pending, last, _) in list(self._dropped.items()):
            if pending and now - last >= DROP_REPORT_SECS:
                self._report_drop(guild_id)
            elif not pending and now - last >= 10 * DROP_REPORT_SECS:
                del self._dropped[guild_id]

    def _broadcast(self, event: str, payload: dict) -> None:
        for guild_id, subs in self.subs.items():
            if event in subs and guild_id not in self.suspended:
                self.spawn(self.dispatch(guild_id, event, payload))

    async def dispatch(self, guild_id: str, event: str, payload: dict, timeout: float | None = None) -> dict:
        """Deliver one event to the guild's script (plugins use this too, e.g. cron); returns the worker's reply."""
        if self.stopping:
            return {"ok": False, "error": STOPPING}
        w = self.pool.worker_for(guild_id)
        if self.pool.inflight(w) >= self.config.worker_queue_capacity:
            self._note_drop(guild_id, event)
            return {"ok": False, "error": "worker queue full"}
        message: dict[str, object] = {"t": "dispatch", "guild": guild_id, "event": event, "payload": payload}
        if timeout is not None:
            message["timeout"] = timeout
        started = time.perf_counter()
        try:
            reply = await self.pool.request(w, message)
        except WorkerDied as exc:
            self.metrics.record(None, None)
            return {"ok": False, "error": str(exc)}
        self.metrics.record(reply, int((time.perf_counter() - started) * 1_000_000))
        if "subs" in reply:
            self.subs[guild_id] = set(reply["subs"])
        return reply

    def _bootstrap(self, guild_id: str) -> None:
        if self.starter is not None and not self.stopping and not self.has_script(guild_id):
            self.spawn(self.starter.bootstrap(guild_id))

    # -- the bus's requests (flora_core.bus.BusNode) ----------------------------------------------
    def status(self) -> dict:
        workers = [
            {
                "name": w.name,
                "alive": w.alive,
                "pid": w.process.pid if w.process else None,
                "restarts": w.restarts,
                "inflight": len(w.pending),
            }
            for w in self.pool.workers
        ]
        return {
            "workers": workers,
            "guilds": len(self.bundles),
            "suspended": sorted(self.suspended),
            "subscriptions": {g: sorted(s) for g, s in self.subs.items()},
            "metrics": self.metrics.snapshot(),
        }


# Something to run next to the runtime in the same loop (``flora serve --emulator``'s emulator): called
# with the configuration, it returns the configuration the runtime uses and a coroutine function to stop it.
Companion = Callable[[Config], Awaitable[tuple[Config, Callable[[], Awaitable[None]]]]]


def serve(config, plugins: Plugins | None = None, *, with_api: bool = True, companion: Companion | None = None) -> int:
    """Run everything until SIGINT/SIGTERM (``flora serve``)."""
    level = getattr(logging, str(config.log_level).upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> int:
        nonlocal config
        loop = asyncio.get_running_loop()
        runtime: Runtime | None = None
        signalled: list[str] = []

        def on_signal(sig: signal.Signals) -> None:
            # SIGINT/SIGTERM to this process or to its whole group (Ctrl-C, systemd): the children wait for
            # this process to stop them in order (lifeline.py), whatever reached them too
            if signalled:
                log.info("%s: already stopping", sig.name)
                return
            signalled.append(sig.name)
            log.info("%s: stopping", sig.name)
            if runtime is not None:
                runtime.request_stop()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        stop_companion = None
        try:
            if companion is not None:
                config, stop_companion = await companion(config)
            runtime = Runtime(config, plugins, with_api=with_api)
            if signalled:  # a signal came while the companion started
                runtime.request_stop()
            else:
                await _run_until_stopped(runtime, config)
        finally:
            if runtime is not None:
                if not signalled:
                    log.info("stopping")
                await runtime.stop()
            if stop_companion is not None:
                try:
                    await asyncio.wait_for(stop_companion(), COMPANION_STOP_SECS)
                except TimeoutError:
                    log.error("stopping: the companion (the emulator) did not stop within %.1f s", COMPANION_STOP_SECS)
        return 1 if runtime is not None and runtime.fatal else 0

    return asyncio.run(main())


async def _run_until_stopped(runtime: Runtime, config) -> None:
    """Start the runtime and run until a stop is requested; a stop requested while it starts cancels the
    start (``Runtime.stop`` then stops what did start)."""
    starting = asyncio.ensure_future(runtime.start())
    stop = asyncio.ensure_future(runtime.stop_requested.wait())
    try:
        await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return
        starting.result()  # a start that failed raises here
        log.info("flora is running with %d worker(s); Ctrl-C stops it", config.max_workers)
        await stop
    finally:
        stop.cancel()
