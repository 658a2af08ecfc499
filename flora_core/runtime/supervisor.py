"""The supervisor: one process that owns the Discord gateway, the worker pool,
the embedded bus (control socket) and, in ``flora serve``, the API process.

It runs no tenant code. Events from event sources are converted to flora's
payloads and routed to the guild's worker, but only if the guild's script
subscribed to them; a guild whose script crashed its worker is suspended
with back-off.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from flora_core.bundler import BUNDLER_VERSION, BundleError, Bundler
from flora_core.config import Config
from flora_core.plugins import Plugins
from flora_core.storage import Database, open_database, repo

from . import payloads
from .pool import WorkerDied, WorkerHandle, WorkerPool, describe_exit

log = logging.getLogger("flora.runtime")

SUSPEND_MAX_SECS = 600.0
STRIKE_RESET_SECS = 600.0


class Runtime:
    def __init__(self, config, plugins: Plugins | None = None, *, with_api: bool = False):
        self.config = config
        self.plugins = plugins or Plugins()
        self.with_api = with_api
        self._db: Database | None = None
        self._pool: WorkerPool | None = None
        self.bundles: dict[str, str] = {}
        self.subs: dict[str, set[str]] = {}
        self.suspended: dict[str, float] = {}
        self.strikes: dict[str, tuple[int, float]] = {}
        self.sources: list = []
        self.bundler = Bundler.from_config(config)
        self.bot_user: dict | None = None
        self._log_buffer: list[dict] = []
        self._tasks: set[asyncio.Task] = set()
        self._control_runner: web.AppRunner | None = None
        self._api_proc: subprocess.Popen | None = None
        self._starter: str | None = None
        self._bootstrapping: set[str] = set()
        self._load_locks: dict[str, asyncio.Lock] = {}
        self.stopped = asyncio.Event()
        self._dropped: dict[str, tuple[int, float]] = {}
        self.metrics = {"dispatch_total": 0, "dispatch_errors": 0, "timeout_errors": 0, "oom_errors": 0, "isolate_restarts": 0}
        self._latencies: collections.deque[int] = collections.deque(maxlen=1000)  # µs, as flora's tracker
        self.stop_requested = asyncio.Event()
        self.fatal: str | None = None
        self._api_started = 0.0

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

    # -- logs --------------------------------------------------------------
    def guild_log(self, guild_id: str | None, level: str, target: str, message: str, ts: int | None = None) -> None:
        log.log(logging.ERROR if level == "error" else logging.WARNING if level == "warn" else logging.INFO,
                "[guild %s] %s: %s", guild_id or "-", target, message)
        self._log_buffer.append({"guild_id": guild_id, "timestamp": ts or int(time.time() * 1000), "level": level,
                                 "target": target, "message": message})

    async def _flush_logs(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            await self._write_logs()

    async def _write_logs(self) -> None:
        if not self._log_buffer:
            return
        batch, self._log_buffer = self._log_buffer, []
        try:
            await asyncio.get_running_loop().run_in_executor(None, repo.append_logs, self.db, batch,
                                                             self.config.log_retention_per_guild)
        except Exception as exc:  # noqa: BLE001
            log.error("could not store %d log lines: %s", len(batch), exc)

    def fail(self, message: str) -> None:
        """Stop the runtime because of ``message`` (``flora serve`` exits 1); for plugins too."""
        self.fatal = message
        log.error("%s", message)
        self.stop_requested.set()

    def skip_reason(self, guild_id: str) -> str | None:
        """Why events for ``guild_id`` would not run now, or ``None`` (host API for plugins)."""
        if guild_id in self.suspended:
            return "the guild's script is suspended (it crashed its worker)"
        if guild_id not in self.bundles:
            return "the guild has no script deployed"
        return None

    def spawn(self, coro) -> asyncio.Task:
        """Run a background task owned by the runtime (cancelled at stop); for plugins too."""
        return self._spawn(coro)

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- lifecycle -------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.config.data_path.mkdir(parents=True, exist_ok=True)
        if self.config.redis_url:
            log.info("REDIS_URL is set: the API's caches live there, the scope cache keeps a second layer there "
                     "and KV_BACKEND=redis can use it; "
                     "the bus of this version stays on one machine")
        self._db = await loop.run_in_executor(None, open_database, self.config, self.plugins)
        run_dir = self.config.control_socket.parent
        self._pool = WorkerPool(self.config, str(run_dir / "workers.sock"), self._on_worker_message, self._on_worker_death)
        await self.pool.start()
        self._spawn(self._flush_logs())
        await self._rebuild_legacy_bundles()
        self.bundles = await loop.run_in_executor(None, repo.current_bundles, self.db)
        results = await asyncio.gather(*(self._load_stored(g) for g in list(self.bundles)))
        log.info("restored %d of %d deployments", sum(results), len(results))
        await self._start_control()
        if self.with_api:
            self._start_api()
            self._spawn(self._watch_api())
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
                    await loop.run_in_executor(None, repo.verified_bundle, self.db, rev, self.bundler.bundle,
                                               BUNDLER_VERSION)
                except (BundleError, repo.LegacyBundle) as exc:
                    self.guild_log(rev["guild_id"], "error", "flora:runtime",
                                   f"the stored deployment is not loaded: rebuilding it was refused: {exc}")

        await asyncio.gather(*(rebuild(rev) for rev in legacy))

    async def stop(self) -> None:
        self.plugins.shutdown(self)
        proc, self._api_proc = self._api_proc, None
        for source in self.sources:
            try:
                await source.stop()
            except Exception as exc:  # noqa: BLE001
                log.error("event source failed to stop: %s", exc)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self._control_runner is not None:
            await self._control_runner.cleanup()
        if self._pool is not None:
            await self._pool.stop()
        for task in list(self._tasks):
            task.cancel()
        await self._write_logs()
        if self._db is not None:
            self.db.close()
        self.stopped.set()

    def _start_api(self) -> None:
        self._api_proc = subprocess.Popen([sys.executable, "-m", "flora_http.serve"], env=dict(os.environ))
        self._api_started = time.monotonic()
        log.info("API process started (pid %s) on %s:%s", self._api_proc.pid, self.config.api_address, self.config.api_port)

    async def _watch_api(self) -> None:
        """Restart the API process if it dies; if it dies right at start (e.g. port taken), stop flora."""
        while True:
            await asyncio.sleep(0.5)
            proc = self._api_proc
            if proc is None or proc.poll() is None:
                continue
            if time.monotonic() - self._api_started < 5:
                self.fail(f"the API process exited with code {proc.returncode} right after start (see above)")
                return
            log.error("the API process exited with code %s; restarting it", proc.returncode)
            self._start_api()

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

    def _guild_lock(self, guild_id: str) -> asyncio.Lock:
        lock = self._load_locks.get(guild_id)
        if lock is None:
            lock = self._load_locks[guild_id] = asyncio.Lock()
        return lock

    async def load(self, guild_id: str, bundle: str) -> tuple[bool, str | None]:
        """Load a new script for a guild; on failure the previous one keeps running."""
        async with self._guild_lock(guild_id):
            return await self._load_locked(guild_id, bundle)

    async def _load_locked(self, guild_id: str, bundle: str) -> tuple[bool, str | None]:
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
        if bundle is None:
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
            self.guild_log(msg.get("guild"), msg.get("level", "info"), msg.get("target", "flora:js"), str(msg.get("message", "")), msg.get("ts"))
        elif msg.get("t") == "recycle":
            # an isolate the worker could not stop: the other guilds move to a fresh worker (_on_worker_death)
            self.pool.replace(w, {"guild": msg.get("guild"), "reason": str(msg.get("reason", ""))})

    async def _on_worker_death(self, w: WorkerHandle, exitcode: int | None, inflight: list[dict]) -> None:
        """Restore the dead worker's guilds; suspend the ones that were running when it died."""
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
                self.guild_log(guild_id, "error", "flora:runtime",
                               "the worker running this guild's script was replaced because this script's isolate "
                               f"could not be stopped; script suspended for {delay:.0f}s")
            else:
                self.guild_log(guild_id, "error", "flora:runtime",
                               f"the worker running this guild's script {why} while handling {events}{shared}; "
                               f"script suspended for {delay:.0f}s")
            asyncio.get_running_loop().call_later(delay, self._resume_later, guild_id)
        try:  # storage is the truth: restore what is deployed there now
            stored = await asyncio.get_running_loop().run_in_executor(None, repo.current_bundles, self.db)
        except Exception as exc:  # noqa: BLE001
            log.error("could not read deployments to restore %s: %s", w.name, exc)
            stored = {}
        for guild_id, bundle in stored.items():
            if self.pool.worker_for(guild_id) is w:
                self.bundles[guild_id] = bundle
        mine = [g for g in self.bundles if self.pool.worker_for(g) is w and g not in suspects]
        await asyncio.gather(*(self._load_stored(g) for g in mine))
        log.info("%s restarted; restored %d guild(s), suspended %d", w.name, len(mine), len(suspects))

    def _resume_later(self, guild_id: str) -> None:
        self._spawn(self._unsuspend(guild_id))

    async def _unsuspend(self, guild_id: str) -> None:
        if guild_id not in self.suspended:
            return
        del self.suspended[guild_id]
        if await self._load_stored(guild_id):
            self.guild_log(guild_id, "info", "flora:runtime", "script resumed after suspension")

    # -- events ----------------------------------------------------------
    def _emit_own(self, event: str, payload: dict) -> None:
        """An event of a plugin's own source (``webhook``…): to the guild in ``payload["guild_id"]``, if
        its script listens."""
        guild_id = str(payload.get("guild_id") or "")
        if not guild_id or event not in self.subs.get(guild_id, ()) or guild_id in self.suspended:
            return
        self._spawn(self.dispatch(guild_id, event, payload))

    def emit(self, event_type: str, raw: dict) -> None:
        """Called by event sources: a raw Discord gateway dispatch (``MESSAGE_CREATE``…), or an event of
        the source's own (any other name) whose payload holds ``guild_id``."""
        if event_type == "READY":
            self.bot_user = raw.get("user")
            self._broadcast("ready", payloads.ready(raw))
            for g in raw.get("guilds", []):
                self._spawn(self._bootstrap(str(g["id"])))
            return
        if event_type == "GUILD_CREATE":
            self._spawn(self._bootstrap(str(raw["id"])))
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
        self._spawn(self.dispatch(guild_id, converted[0], converted[2]))

    def _note_drop(self, guild_id: str, event: str) -> None:
        """Events dropped under backlog are counted and reported at most every 10 s per guild."""
        pending, last_logged = self._dropped.get(guild_id, (0, 0.0))
        pending += 1
        now = time.monotonic()
        if now - last_logged >= 10:
            self.guild_log(guild_id, "warn", "flora:runtime",
                           f"{pending} event(s) dropped (latest: {event}): the worker queue is full "
                           f"(RUNTIME_WORKER_QUEUE_CAPACITY={self.config.worker_queue_capacity})")
            pending, last_logged = 0, now
        self._dropped[guild_id] = (pending, last_logged)

    def _broadcast(self, event: str, payload: dict) -> None:
        for guild_id, subs in self.subs.items():
            if event in subs and guild_id not in self.suspended:
                self._spawn(self.dispatch(guild_id, event, payload))

    async def dispatch(self, guild_id: str, event: str, payload: dict, timeout: float | None = None) -> dict:
        """Deliver one event to the guild's script (plugins use this too, e.g. cron); returns the worker's reply."""
        w = self.pool.worker_for(guild_id)
        if self.pool.inflight(w) >= self.config.worker_queue_capacity:
            self._note_drop(guild_id, event)
            return {"ok": False, "error": "worker queue full"}
        try:
            message: dict[str, object] = {"t": "dispatch", "guild": guild_id, "event": event, "payload": payload}
            if timeout is not None:
                message["timeout"] = timeout
            started = time.perf_counter()
            reply = await self.pool.request(w, message)
        except WorkerDied as exc:
            self.metrics["dispatch_total"] += 1
            self.metrics["dispatch_errors"] += 1
            return {"ok": False, "error": str(exc)}
        self._latencies.append(int((time.perf_counter() - started) * 1_000_000))
        self.metrics["dispatch_total"] += 1
        if not reply.get("ok"):
            self.metrics["dispatch_errors"] += 1
            kind = reply.get("kind")
            if kind == "timeout":
                self.metrics["timeout_errors"] += 1
            if kind == "oom":
                self.metrics["oom_errors"] += 1
            if kind in ("timeout", "oom"):
                self.metrics["isolate_restarts"] += 1
        if "subs" in reply:
            self.subs[guild_id] = set(reply["subs"])
        return reply

    # -- starter script for guilds without a deployment ----------------------
    async def _bootstrap(self, guild_id: str) -> None:
        if guild_id in self.bundles or guild_id in self._bootstrapping:
            return
        self._bootstrapping.add(guild_id)
        loop = asyncio.get_running_loop()
        try:
            if await loop.run_in_executor(None, repo.latest_success, self.db, guild_id):
                return
            files = self.plugins.starter_files()
            if not files:
                return  # no plugin offers a starter script
            if self._starter is None:
                self._starter = await loop.run_in_executor(None, self.bundler.bundle, "src/main.ts", files)
            async with self._guild_lock(guild_id):
                if guild_id in self.bundles:
                    return  # a deploy arrived while the starter was being prepared: it wins
                ok, error = await self._load_locked(guild_id, self._starter)
                # recorded under the lock, so a deploy that follows is recorded after it
                rev = await loop.run_in_executor(None, lambda: repo.record_revision(
                    self.db, guild_id, entry="src/main.ts", status="success" if ok else "failed",
                    bundle=self._starter, deploy_source="bootstrap", actor_type="system", actor_username="system",
                    error_message=error, files=files, bundler_version=BUNDLER_VERSION))
            if ok:
                self.guild_log(guild_id, "info", "flora:runtime", "starter script deployed")
                self.plugins.deployment_changed(guild_id, rev)
        except (BundleError, OSError) as exc:
            self.guild_log(guild_id, "error", "flora:runtime", f"starter script could not be deployed: {exc}")
        finally:
            self._bootstrapping.discard(guild_id)

    # -- the embedded bus ------------------------------------------------
    async def _start_control(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/guilds/{guild_id}/load", self._http_load)
        app.router.add_post("/guilds/{guild_id}/restore", self._http_restore)
        app.router.add_get("/status", self._http_status)
        self._control_runner = web.AppRunner(app, access_log=None)
        await self._control_runner.setup()
        path = str(self.config.control_socket)
        if os.path.exists(path):
            os.unlink(path)
        await web.UnixSite(self._control_runner, path).start()
        os.chmod(path, 0o600)

    async def _http_load(self, request: web.Request) -> web.Response:
        guild_id = request.match_info["guild_id"]
        body = await request.json()
        ok, error = await self.load(guild_id, body["bundle"])
        if ok:
            rev = {"guild_id": guild_id}
            self.plugins.deployment_changed(guild_id, rev)
        return web.json_response({"ok": ok, "error": error})

    async def _http_restore(self, request: web.Request) -> web.Response:
        await self.restore(request.match_info["guild_id"])
        return web.json_response({"ok": True})

    async def _http_status(self, request: web.Request) -> web.Response:
        workers = [{"name": w.name, "alive": w.alive, "pid": w.process.pid if w.process else None, "restarts": w.restarts,
                    "inflight": len(w.pending)} for w in self.pool.workers]
        return web.json_response({"workers": workers, "guilds": len(self.bundles), "suspended": sorted(self.suspended),
                                  "subscriptions": {g: sorted(s) for g, s in self.subs.items()},
                                  "metrics": self.metrics_snapshot()})

    def metrics_snapshot(self) -> dict:
        """Counters since start and dispatch latency over the last 1000 dispatches (nearest rank, as flora)."""
        out = dict(self.metrics)
        samples = sorted(self._latencies)

        def rank(p: float) -> int:
            if not samples:
                return 0
            return samples[max(0, min(len(samples) - 1, int(-(-p * len(samples) // 100)) - 1))]

        out["avg_latency_us"] = int(sum(samples) / len(samples)) if samples else 0
        out["p50_latency_us"], out["p95_latency_us"], out["p99_latency_us"] = rank(50), rank(95), rank(99)
        return out


# Something to run next to the runtime in the same loop (``flora serve --emulator``'s emulator): called
# with the configuration, it returns the configuration the runtime uses and a coroutine function to stop it.
Companion = Callable[[Config], Awaitable[tuple[Config, Callable[[], Awaitable[None]]]]]


def serve(config, plugins: Plugins | None = None, *, with_api: bool = True, companion: Companion | None = None) -> int:
    """Run everything until SIGINT/SIGTERM (``flora serve``)."""
    level = getattr(logging, str(config.log_level).upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> int:
        nonlocal config
        stop_companion = None
        if companion is not None:
            config, stop_companion = await companion(config)
        runtime = Runtime(config, plugins, with_api=with_api)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runtime.stop_requested.set)
        try:
            await runtime.start()
            log.info("flora is running with %d worker(s); Ctrl-C stops it", config.max_workers)
            await runtime.stop_requested.wait()
        finally:
            log.info("stopping")
            await runtime.stop()
            if stop_companion is not None:
                await stop_companion()
        return 1 if runtime.fatal else 0

    return asyncio.run(main())
