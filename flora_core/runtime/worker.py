"""A worker process: hosts the V8 isolates of the guilds routed to it.

Started by the supervisor with the ``spawn`` method, so no isolate is ever
inherited across ``fork()``. It connects back to the supervisor's Unix socket
and then serves ``load`` / ``dispatch`` / ``unload`` requests; ops run on
this process's main asyncio loop, with disnake's HTTP client for Discord REST.
A fatal V8 error kills only this process; the supervisor restarts it. A CPU
watchdog thread (``watchdog.py``) stops isolates that burn more CPU than their
deadline allows; if one cannot be closed, the worker asks the supervisor to
replace it (``{"t": "recycle"}``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import traceback

import disnake

from flora_core.config import Config
from flora_core.errors import INTERNAL, OP_UNAVAILABLE, OpError
from flora_core.plugins import Plugins
from flora_core.storage import open_database

from . import protocol
from .housekeeping import Housekeeping
from .isolate import GuildIsolate, IsolateStopped, ScriptError, ScriptOOM, ScriptTimeout, StopInfo, init_v8, overrun_text
from .opctx import OpContext, ScopeCache, WorkerServices
from .watchdog import CpuWatchdog

log = logging.getLogger("flora.worker")

STRIKE_RESET_SECS = 600.0
BACKOFF_MAX_SECS = 600.0
MEMORY_RELEASE_SECS = 60  # idle isolates give memory back to the system this often


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    except (OSError, ValueError, IndexError):
        return 0.0


def _scope_redis(config):
    """The L2 scope cache when REDIS_URL is set (flora kept it in Valkey too)."""
    if not config.redis_url:
        return None
    try:
        import redis.asyncio as aioredis
    except ImportError:
        log.warning(
            "REDIS_URL is set but redis-py is not installed (pip install 'flora-runtime[redis]'); "
            "the scope cache stays in-process"
        )
        return None
    return aioredis.from_url(config.redis_url, socket_timeout=2, socket_connect_timeout=2)


class Worker:
    def __init__(self, config: Config, worker_id: int, socket_path: str):
        self.config = config
        self.worker_id = worker_id
        self.socket_path = socket_path
        self.plugins = Plugins()
        self.ops = self.plugins.ops()
        self.sources = self.plugins.js_sources()
        self.isolates: dict[str, GuildIsolate] = {}
        self.bundles: dict[str, tuple[str, str]] = {}  # guild -> (bundle, load id)
        self.writer: asyncio.StreamWriter | None = None
        self._services: WorkerServices | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task] = set()
        self.watchdog = CpuWatchdog(self._isolate_stuck_threadsafe, close_grace=config.close_grace_secs)
        self._rebuilds: dict[str, tuple[asyncio.Task, float]] = {}  # guild -> (task, when it builds)
        self._idle_strikes: dict[str, tuple[int, float]] = {}
        self._recycling = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the worker is not running")
        return self._loop

    @property
    def services(self) -> WorkerServices:
        if self._services is None:
            raise RuntimeError("the worker is not running")
        return self._services

    # -- logging back to the supervisor ----------------------------------
    def guild_log(self, guild_id: str | None, level: str, target: str, message: str) -> None:
        if self.writer is not None and not self.writer.is_closing():
            protocol.send_nowait(
                self.writer,
                {
                    "t": "log",
                    "guild": guild_id,
                    "level": level,
                    "target": target,
                    "message": message,
                    "ts": int(time.time() * 1000),
                },
            )

    # -- ops -------------------------------------------------------------
    async def run_op(self, iso: GuildIsolate, name: str, args_json: str) -> str:
        """Run op ``name`` for the isolate's guild; always returns a JSON result, never raises."""
        guild_id = iso.guild_id
        fn = self.ops.get(name)
        if iso.stopping is not None:  # nothing is sent for an isolate that was stopped
            return json.dumps({"ok": False, "error": {"code": "ISOLATE_STOPPED", "message": "the isolate was stopped"}})
        try:
            if fn is None:
                raise OpError(OP_UNAVAILABLE, f"{name} is not available (is the plugin that provides it installed and enabled?)")
            try:
                args = json.loads(args_json)
            except ValueError:
                raise OpError("INVALID_INPUT", f"Invalid input for {name}: arguments are not JSON") from None
            value = await fn(OpContext(guild_id, self.services, iso.load_id), args)
            return json.dumps({"ok": True, "value": value}, separators=(",", ":"))
        except OpError as exc:
            return json.dumps({"ok": False, "error": exc.to_json()})
        except Exception:  # noqa: BLE001 - the script gets a code, the operator the traceback
            log.error("op %s failed for guild %s:\n%s", name, guild_id, traceback.format_exc())
            return json.dumps({"ok": False, "error": {"code": INTERNAL, "message": f"{name} failed with an internal error"}})

    # -- isolates --------------------------------------------------------
    async def _build(self, guild_id: str, bundle: str, load_id: str) -> GuildIsolate:
        sources = self.sources
        try:
            values = await self.loop.run_in_executor(None, self.plugins.isolate_globals, guild_id, self.services)
        except Exception as exc:  # noqa: BLE001 - a plugin failing here must not block the deploy
            log.error("isolate globals for guild %s failed: %s", guild_id, exc)
            values = {}
        if values:
            assign = "".join(f"globalThis[{json.dumps(k)}] = {json.dumps(v)};\n" for k, v in values.items())
            sources = [("flora:globals", assign), *sources]
        iso = GuildIsolate(
            guild_id,
            sources,
            self.run_op,
            self.loop,
            self.config.isolate_memory_mb,
            load_id,
            timer_limit_ms=self.config.dispatch_timeout_secs * 1000,
            show_internal_frames=self.config.show_internal_stack_frames,
            watchdog=self.watchdog,
            idle_cpu_budget=self.config.dispatch_timeout_secs,
            on_built=self._isolate_built,
        )
        iso.on_stopped = self._isolate_stopped
        try:
            await iso.load(bundle, self.config.load_timeout_secs)
        except BaseException:
            await iso.close(StopInfo("closed", "the script failed to load"))
            raise
        return iso

    async def _isolate_built(self, iso: GuildIsolate) -> None:
        """``flora_isolate_built``: the JavaScript of the runtime and the plugins ran, the guild's has not yet."""
        try:
            await self.loop.run_in_executor(None, self.plugins.isolate_built, iso.guild_id, iso.load_id, self.services)
        except Exception as exc:  # noqa: BLE001 - a plugin failing here must not block the deploy
            log.error("flora_isolate_built for guild %s failed: %s", iso.guild_id, exc)

    async def load(self, guild_id: str, bundle: str, load_id: str = "") -> dict:
        try:
            iso = await self._build(guild_id, bundle, load_id)
        except ScriptError as exc:
            self.guild_log(guild_id, "error", "flora:runtime", f"deploy failed: {exc}")
            return {"ok": False, "error": str(exc)}
        pending = self._rebuilds.pop(guild_id, None)
        if pending is not None:
            pending[0].cancel()
        self._idle_strikes.pop(guild_id, None)
        old = self.isolates.get(guild_id)
        self.isolates[guild_id] = iso
        self.bundles[guild_id] = (bundle, load_id)
        if old is not None:
            await old.close(StopInfo("redeploy", "the script was redeployed while this event was running"))
            if old.dropped_events:
                self.guild_log(
                    guild_id,
                    "warn",
                    "flora:runtime",
                    f"{old.dropped_events} event(s) still running in the previous script were stopped by the deploy",
                )
        return {"ok": True, "subs": sorted(iso.subscriptions)}

    # -- stopped isolates --------------------------------------------------
    def _isolate_stopped(self, iso: GuildIsolate, info: StopInfo | None) -> None:
        """An isolate is down (main loop). The watchdog's stops are logged and rebuilt here; the other
        stops were asked for by code that handles their outcome itself."""
        guild_id = iso.guild_id
        if info is None or info.kind != "cpu" or self.isolates.get(guild_id) is not iso:
            return  # an isolate that was still loading: its load reports the failure
        del self.isolates[guild_id]
        if not info.idle:
            self.guild_log(guild_id, "error", "flora:runtime", info.line)
            self._log_dropped(iso)
            self._schedule_rebuild(guild_id, "a dispatch timeout" if info.event else "a CPU overrun")
            return
        # CPU burnt while no event ran comes from the script itself (a detached promise chain): a script
        # that does it again right after its restart would keep a core busy forever, so restarts back off.
        now = time.monotonic()
        count, last = self._idle_strikes.get(guild_id, (0, now))
        count = 1 if now - last > STRIKE_RESET_SECS else count + 1
        self._idle_strikes[guild_id] = (count, now)
        delay = 0.0 if count == 1 else min(self.config.suspend_backoff_secs * 2 ** (count - 2), BACKOFF_MAX_SECS)
        later = (
            (f"; restarting it in {delay:.0f}s (it did this {count} times within {STRIKE_RESET_SECS / 60:.0f} minutes)")
            if delay
            else ""
        )
        self.guild_log(guild_id, "error", "flora:runtime", f"{info.line}{later}")
        self._log_dropped(iso)
        self._schedule_rebuild(guild_id, "a CPU overrun while no event was running", delay)

    def _log_dropped(self, iso: GuildIsolate) -> None:
        if iso.dropped_events:
            self.guild_log(
                iso.guild_id,
                "warn",
                "flora:runtime",
                f"{iso.dropped_events} other event(s) waiting on the stopped isolate were dropped",
            )

    def _isolate_stuck_threadsafe(self, iso: GuildIsolate, info: StopInfo) -> None:
        try:
            self.loop.call_soon_threadsafe(self._isolate_stuck, iso, info)
        except RuntimeError:
            pass

    def _isolate_stuck(self, iso: GuildIsolate, info: StopInfo) -> None:
        """Closing an isolate did not return: its threads are lost, and only a new process gets the CPU back."""
        guild_id = iso.guild_id
        if self.isolates.get(guild_id) is iso:
            del self.isolates[guild_id]
        why = f"{info.what}; " if info.kind == "cpu" else ""
        text = (
            f"{why}the isolate did not stop within {self.watchdog.close_grace:g}s of being closed (V8 is inside an operation "
            "that cannot be interrupted), so its worker is being replaced"
        )
        self.guild_log(guild_id, "error", "flora:runtime", text)
        log.error(
            "worker %s: isolate of guild %s did not stop (%s); asking the supervisor to replace this worker",
            self.worker_id,
            guild_id,
            info.kind,
        )
        if not self._recycling and self.writer is not None and not self.writer.is_closing():
            self._recycling = True
            protocol.send_nowait(self.writer, {"t": "recycle", "guild": guild_id, "reason": text})

    def _schedule_rebuild(self, guild_id: str, reason: str, delay: float = 0.0) -> asyncio.Task:
        old = self._rebuilds.pop(guild_id, None)
        if old is not None:
            old[0].cancel()
        task = asyncio.create_task(self._rebuild(guild_id, reason, delay))
        self._rebuilds[guild_id] = (task, time.monotonic() + delay)

        def done(t: asyncio.Task) -> None:
            if self._rebuilds.get(guild_id, (None,))[0] is t:
                del self._rebuilds[guild_id]

        task.add_done_callback(done)
        return task

    async def _rebuild(self, guild_id: str, reason: str, delay: float) -> None:
        """Build a stopped guild's isolate again from its bundle, as after a timeout."""
        if delay:
            await asyncio.sleep(delay)
        stored = self.bundles.get(guild_id)
        if stored is None or guild_id in self.isolates:
            return
        try:
            iso = await self._build(guild_id, *stored)
        except ScriptError as exc:
            self.guild_log(guild_id, "error", "flora:runtime", f"isolate could not be restarted: {exc}")
            return
        if self.bundles.get(guild_id) is not stored or guild_id in self.isolates:
            await iso.close(StopInfo("closed", "superseded by a deploy"))  # a deploy came first
            return
        self.isolates[guild_id] = iso
        self.guild_log(guild_id, "warn", "flora:runtime", f"isolate restarted after {reason}")

    async def _replace(self, guild_id: str, iso: GuildIsolate, reason: str) -> None:
        """Wait until an isolate that overran its deadline or memory (being stopped) is down, build a fresh one."""
        if self.isolates.get(guild_id) is not iso:
            return
        del self.isolates[guild_id]
        await iso.close()
        self._log_dropped(iso)
        await self._schedule_rebuild(guild_id, reason)

    async def dispatch(self, guild_id: str, event: str, payload: dict, timeout: float | None = None) -> dict:
        iso = self.isolates.get(guild_id)
        if iso is None and guild_id in self._rebuilds:
            task, at = self._rebuilds[guild_id]
            if at - time.monotonic() > 0.5:
                return {
                    "ok": False,
                    "error": f"the script is suspended for {at - time.monotonic():.0f}s more "
                    "after it kept spending CPU while no event was running",
                }
            await asyncio.wait({task}, timeout=self.config.load_timeout_secs or None)
            iso = self.isolates.get(guild_id)
        if iso is None:
            return {"ok": False, "error": "No runtime available for guild"}
        if self._services is not None and event in ("interactionCreate", "componentInteraction", "modalSubmit"):
            interaction_id, token = str(payload.get("interactionId") or ""), str(payload.get("interactionToken") or "")
            state = self.services.remember_interaction(guild_id, interaction_id, token)
            if self.config.auto_defer_ms:
                task = asyncio.create_task(self._auto_defer(guild_id, interaction_id, state))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
        if self._services is not None:
            scope = self.services.scope
            if event in ("channelCreate", "channelUpdate", "threadCreate", "threadUpdate"):
                scope.remember(payload.get("id"), payload.get("guildId"))
            elif event in ("channelDelete", "threadDelete") and payload.get("id"):
                scope.forget(payload["id"])
            elif payload.get("channelId") and payload.get("guildId"):
                scope.remember(payload["channelId"], payload["guildId"])
        deadline = self.config.dispatch_timeout_secs if timeout is None else timeout
        try:
            subs = await iso.dispatch(event, json.dumps(payload, separators=(",", ":")), deadline)
        except IsolateStopped as exc:
            # the watchdog's stop is logged once, when the isolate is down (_isolate_stopped)
            if exc.culprit and exc.info.kind == "cpu":
                return {"ok": False, "error": exc.info.what, "kind": "timeout"}
            return {"ok": False, "error": str(exc), "kind": "stopped"}
        except ScriptTimeout as exc:
            # the wall-clock deadline on the isolate's loop fired (it catches waits that burn no CPU, and
            # loops, as that loop never blocks on V8); unless the watchdog was quicker, say so and replace it
            msg = overrun_text(*(getattr(exc, "overrun", None) or (event, deadline, None, None)))
            if self.watchdog.stop(iso, StopInfo("timeout", msg)):  # else stopped already, and said so
                self.guild_log(guild_id, "error", "flora:runtime", f"dispatch failed: {msg}; isolate restarted")
                await self._replace(guild_id, iso, "a dispatch timeout")
            return {"ok": False, "error": msg, "kind": "timeout"}
        except ScriptOOM as exc:
            if self.watchdog.stop(iso, StopInfo("oom", str(exc))):
                self.guild_log(guild_id, "error", "flora:runtime", f"dispatch failed: {exc}; isolate restarted")
                await self._replace(guild_id, iso, "running out of memory")
            return {"ok": False, "error": str(exc), "kind": "oom"}
        except ScriptError as exc:
            self.guild_log(guild_id, "error", "flora:runtime", f"dispatch failed: {exc}")
            return {"ok": False, "error": str(exc)}
        out: dict[str, object] = {"ok": True}
        if subs is not None:
            out["subs"] = sorted(subs)
        return out

    async def _auto_defer(self, guild_id: str, interaction_id: str, state) -> None:
        """Discord drops interactions not answered within 3 s: defer for a script that is still working."""
        await asyncio.sleep(self.config.auto_defer_ms / 1000)
        async with state.lock:
            if state.acked:
                return
            ctx = OpContext(guild_id, self.services)
            try:
                await ctx.rest(
                    "POST",
                    "/interactions/{interaction_id}/{interaction_token}/callback",
                    interaction_id=interaction_id,
                    interaction_token=state.token,
                    json={"type": 5},
                )
            except OpError as exc:
                self.guild_log(
                    guild_id, "warn", "flora:runtime", f"automatic defer of interaction {interaction_id} failed: {exc.message}"
                )
                return
            state.acked = state.auto_deferred = True
            self.guild_log(
                guild_id,
                "info",
                "flora:runtime",
                f"interaction {interaction_id} deferred automatically after {self.config.auto_defer_ms} ms; "
                "the script's reply will edit the deferred response",
            )

    async def unload(self, guild_id: str) -> dict:
        iso = self.isolates.pop(guild_id, None)
        self.bundles.pop(guild_id, None)
        pending = self._rebuilds.pop(guild_id, None)
        if pending is not None:
            pending[0].cancel()
        if iso is not None:
            await iso.close(StopInfo("unload", "the script was removed while this event was running"))
        return {"ok": True}

    # -- main loop -------------------------------------------------------
    async def _handle(self, msg: dict) -> None:
        kind = msg.get("t")
        try:
            if kind == "load":
                reply = await self.load(msg["guild"], msg["bundle"], msg.get("load_id", ""))
            elif kind == "dispatch":
                reply = await self.dispatch(msg["guild"], msg["event"], msg["payload"], msg.get("timeout"))
            elif kind == "unload":
                reply = await self.unload(msg["guild"])
            else:
                reply = {"ok": False, "error": f"unknown request {kind!r}"}
        except Exception as exc:  # noqa: BLE001
            log.error("worker %s failed on %s:\n%s", self.worker_id, kind, traceback.format_exc())
            reply = {"ok": False, "error": f"internal error: {exc.__class__.__name__}"}
        if "id" in msg and self.writer is not None and not self.writer.is_closing():
            reply["t"] = "reply"
            reply["id"] = msg["id"]
            protocol.send_nowait(self.writer, reply)

    async def _watchdog(self) -> None:
        limit = self.config.worker_max_rss_mb
        while True:
            await asyncio.sleep(1.0)
            rss = _rss_mb()
            if rss > limit:
                log.error("worker %s RSS %.0f MB exceeds RUNTIME_WORKER_MAX_RSS_MB=%s; exiting", self.worker_id, rss, limit)
                os._exit(70)

    def _release_memory(self) -> None:
        for iso in list(self.isolates.values()):
            iso.memory_notification()

    async def run(self) -> None:
        init_v8()
        self._loop = asyncio.get_running_loop()
        disnake.http.Route.BASE = self.config.discord_api_base
        http = disnake.http.HTTPClient(loop=self.loop)
        db = await self.loop.run_in_executor(None, open_database, self.config, self.plugins)
        self._services = WorkerServices(
            config=self.config,
            http=http,
            logger=self.guild_log,
            db=db,
            plugins=self.plugins,
            scope=ScopeCache("ch", _scope_redis(self.config)),
        )
        reader, self.writer = await asyncio.open_unix_connection(self.socket_path, limit=protocol.STREAM_LIMIT)
        await protocol.send(self.writer, {"t": "hello", "worker": self.worker_id, "pid": os.getpid()})
        if self.config.discord_token:
            try:
                await http.static_login(self.config.discord_token)
                app = await http.application_info()
                self.services.application_id = str(app["id"])
            except Exception as exc:  # noqa: BLE001
                log.error("worker %s could not log in to Discord REST: %s", self.worker_id, exc)
        self.watchdog.start()
        housekeeping = Housekeeping()
        housekeeping.every(MEMORY_RELEASE_SECS, self._release_memory, "release isolate memory")
        tasks = {asyncio.create_task(self._watchdog()), asyncio.create_task(housekeeping.run())}
        pending: set[asyncio.Task] = set()
        try:
            while True:
                msg = await protocol.receive(reader)
                if msg is None or msg.get("t") == "shutdown":
                    break
                task = asyncio.create_task(self._handle(msg))
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            for t in tasks:
                t.cancel()
            for task, _ in list(self._rebuilds.values()):
                task.cancel()
            await asyncio.gather(
                *(iso.close(StopInfo("shutdown", "the worker is shutting down")) for iso in list(self.isolates.values()))
            )
            self.watchdog.halt()
            await http.close()


def worker_main(config_values: dict, worker_id: int, socket_path: str) -> None:
    """Run a worker (after ``lifeline.worker_process``, the process's entry point, set up how it dies
    with the supervisor and that SIGINT/SIGTERM wait for the supervisor's orderly stop)."""
    level = getattr(logging, str(config_values.get("log_level", "info")).upper(), logging.INFO)
    logging.basicConfig(level=level, format=f"%(asctime)s worker-{worker_id} %(levelname)s %(name)s: %(message)s")
    worker = Worker(Config.from_dict(config_values), worker_id, socket_path)
    try:
        asyncio.run(worker.run())
    finally:
        os._exit(0)  # do not run isolate finalizers at interpreter exit
