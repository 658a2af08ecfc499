"""One guild's V8 isolate, on its own event-loop thread (the "bridge" pattern).

Scripts run on mini-racer's thread for the context; the isolate's asyncio loop
thread drives it and forwards ops to the worker's main loop, where Discord REST
lives. A busy or runaway script therefore stalls only its own isolate. Once
the guild's code has run, that loop makes no blocking call into V8 (the outbox
bridge below, and glue.js): a blocking call waits behind running JavaScript,
and while one is in flight even closing the context does not stop the script.

Every load and dispatch is bounded twice: by a wall-clock deadline on the
isolate's loop (it also ends waits that burn no CPU, e.g. an op that never
answers) and by a CPU budget that the worker's watchdog thread (watchdog.py)
checks from outside, whatever the isolate's threads are doing, and also while
no event runs. A script that overruns is not trusted again: the isolate is
closed (the only cure for loops in promise callbacks) and the worker builds a
fresh one.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from py_mini_racer import JSEvalException, JSOOMException, JSPromiseError, init_mini_racer, mini_racer
from py_mini_racer._context import Context as _MiniRacerContext

if TYPE_CHECKING:
    from .watchdog import CpuWatchdog

# The outbox bridge uses mini-racer's one-way JS -> Python notification, the one its own JSPromise awaiting
# uses; it is not public API, hence the pin (mini-racer==0.14.1) and this check.
if not hasattr(_MiniRacerContext, "_register_js_notification"):
    raise ImportError("flora needs mini-racer 0.14.1 (py_mini_racer._context.Context._register_js_notification)")

log = logging.getLogger("flora.isolate")

MAX_CONCURRENT_DISPATCHES = 16

GLUE = resources.files("flora_core.runtime").joinpath("glue.js").read_text(encoding="utf-8")
# The core's handler table and dispatch entry point, evaluated right after the glue (see events.js).
EVENTS = resources.files("flora_core.runtime").joinpath("events.js").read_text(encoding="utf-8")

# V8's process-wide initialisation is not safe to race: two isolates created at once in a
# fresh process abort it ("Check failed: !IsConfigurablePoolInitialized()"). Initialise once,
# and create contexts one at a time (a few ms each).
_create_lock = threading.Lock()


def init_v8() -> None:
    with _create_lock:
        init_mini_racer(ignore_duplicate_init=True)


OpRunner = Callable[["GuildIsolate", str, str], Coroutine[Any, Any, str]]  # (isolate, op_name, args_json) -> result json
# awaited on the worker's main loop once the runtime's and the plugins' JavaScript ran, before the guild's script
BuiltHook = Callable[["GuildIsolate"], Coroutine[Any, Any, None]]


class ScriptError(Exception):
    """The script failed; the message is for the guild's log (no Python internals)."""


class ScriptTimeout(ScriptError):
    overrun: tuple[str, float, float, str, bool] | None = None  # what the isolate was doing, for the guild's log
    load_text: str | None = None  # the same for a load


class ScriptOOM(ScriptError):
    pass


INTERNAL_PREFIX = "flora-internal/"
# How the bundler wraps a script with top-level await (flora_core/bundle_driver.js): its module body becomes
# an async function that glue.js's __floraTopLevel starts, and the load awaits.
TOP_LEVEL_PREFIX = "__floraTopLevel(async () => {"


def has_top_level_await(bundle: str) -> bool:
    """Is ``bundle`` a script with top-level await (after a ``#!`` line, if it has one)?"""
    if bundle.startswith("#!"):
        bundle = bundle.partition("\n")[2]
    return bundle.startswith(TOP_LEVEL_PREFIX)


def _is_internal_frame(line: str) -> bool:
    return line.lstrip().startswith("at ") and (INTERNAL_PREFIX in line or "<anonymous>" in line)


def js_error_text(exc: BaseException, show_internal: bool = False) -> str:
    """A user-facing message for a JS failure: V8's text, no Python, and (like flora) without the
    runtime's own stack frames unless RUNTIME_SHOW_INTERNAL_STACK_FRAMES is set."""
    if isinstance(exc, JSPromiseError):
        reason = getattr(exc, "reason", None)
        text = str(reason) if reason is not None else str(exc)
        text = text.replace("JavaScript rejected promise with reason: ", "")
    else:
        text = str(exc)
    return user_visible_error(text, show_internal) or exc.__class__.__name__


def user_visible_error(text: str, show_internal: bool = False) -> str:
    head, sep, stack = text.partition("\n\n")
    if sep and head.startswith(INTERNAL_PREFIX):
        text = stack  # drop the source excerpt of runtime code; the stack says the same
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not show_internal:
        hidden = sum(1 for ln in lines if _is_internal_frame(ln))
        lines = [ln for ln in lines if not _is_internal_frame(ln)]
        if hidden:
            lines.append(f"    ... {hidden} internal frame(s) hidden (set RUNTIME_SHOW_INTERNAL_STACK_FRAMES=true to show)")
    return "\n".join(lines[:16])


# CPU used before an event began that still counts for it: the busy stretch it interrupted (a detached
# promise chain that was spinning while no event ran).
EARLIER_CPU_SECS = 0.1


def overrun_text(event: str, deadline: float, cpu: float | None, where: str | None, busy: bool = True) -> str:
    """How an event overran its deadline, in the same words whether the CPU watchdog or the wall-clock
    deadline on the isolate's loop noticed it first (both replace the isolate). ``busy``: the isolate was
    using CPU at that moment (else it was waiting, e.g. on an op that never answered)."""
    head = f"{event} handler exceeded the {deadline:g}s dispatch deadline"
    if cpu is None or where is None:
        return head
    if not busy:
        return f"while waiting ({cpu:.1f} s of CPU), {head}"
    return f"after {cpu:.1f} s of CPU {where}, {head}"


def load_overrun_text(deadline: float, cpu: float, where: str, busy: bool = True, top_level: bool = False) -> str:
    """How a load overran its deadline, in the same words for the watchdog and the wall-clock deadline;
    ``top_level``: it was awaiting the script's top level (a script with top-level await)."""
    head = f"loading the script exceeded the {deadline:g}s load deadline"
    if top_level and (not busy or cpu < BUSY_SHARE * deadline):  # no watchdog samples yet: the CPU says it
        return (
            f"the script's top level did not finish within the {deadline:g}s load deadline: it was still "
            f"awaiting ({cpu:.1f} s of CPU), e.g. a promise that never settles"
        )
    if not busy:
        return f"while waiting ({cpu:.1f} s of CPU), {head}"
    return f"after {cpu:.1f} s of CPU {where}, {head}"


@dataclass
class StopInfo:
    """Why an isolate is being stopped."""

    kind: str  # "cpu" (the watchdog), "timeout", "oom", "redeploy", "unload", "shutdown", "closed"
    what: str  # what happened, e.g. "spent 3.1 s of CPU while no event was running (...)"
    token: int | None = None  # the event or load that overran, if one did
    idle: bool = False  # CPU spent while no event was running
    event: bool = False  # an event overran (not a load, not idle)

    @property
    def line(self) -> str:
        """The guild log's line for a stop by the watchdog."""
        if self.event:  # the same words as when the wall-clock deadline notices it (worker.dispatch)
            return f"dispatch failed: {self.what}; isolate restarted"
        return f"{self.what}; isolate stopped"


class IsolateStopped(ScriptError):
    """The isolate was stopped while this request was waiting on it; ``culprit`` if this request overran."""

    def __init__(self, info: StopInfo, culprit: bool):
        if info.kind != "cpu":
            text = info.what
        elif culprit:
            text = info.what if info.event else f"{info.what}; isolate stopped"
        else:
            text = f"the isolate was stopped while this event was waiting on it ({info.what})"
        super().__init__(text)
        self.info = info
        self.culprit = culprit


@dataclass
class _Activity:
    kind: str  # "event" or "load"
    label: str  # the event's name
    budget: float  # CPU seconds; 0 = no budget (also its wall-clock deadline)
    cpu0: float  # the isolate's CPU time when it started
    started: float  # time.monotonic() when it started
    earlier: float = 0.0  # CPU of the busy stretch it interrupted while the isolate was idle (counts too)
    # "script": the eval of a plain script is pending (a load step); "run": the eval that starts a run
    # (__floraRun, __floraTrack) is pending; "waiting": that eval returned, the run goes on in microtasks
    step: str = "script"
    run_id: int = 0  # the run it is in (see the status word in glue.js)
    top_level: bool = False  # a load awaiting the script's top level (top-level await)


# -- CPU clocks of threads -------------------------------------------------------------------------------
# Which thread burns the CPU: measured with /proc/self/task/<tid>/stat (utime+stime) over 1 s while a
# script spun, on this machine (2 cores, shared with other work): mini-racer's own C++ message-pump thread
# of the context (created by mr_init_context, one per context, the only thread that runs the isolate's JS)
# used 0.92 cores for a plain loop in a handler, 0.96 for a loop in a microtask, 0.76 after an op call,
# 0.78 while an op was pending, 0.91 in the .then of an op after the handler returned and 0.98 in an
# overridden Object.keys; the isolate's asyncio loop thread and the worker's main thread 0.00 in every
# case. The pump thread has no Python handle; it is the thread that appears in /proc/self/task while the
# context is created, with the name it inherits from the loop thread that created it. The watchdog
# measures it and the loop thread (which does the Python half of the ops).


def _thread_cpu_clock(tid: int) -> int:
    """Linux's CPU-time clock of one thread of this process, by kernel thread id: MAKE_THREAD_CPUCLOCK(tid,
    CPUCLOCK_SCHED) from include/linux/posix-timers.h, which is what pthread_getcpuclockid() returns (checked
    against time.pthread_getcpuclockid for a Python thread). mini-racer's thread has no pthread_t we could use."""
    return ((~tid) << 3) | 6


def _os_threads() -> set[int]:
    try:
        return {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        return set()


def _thread_name(tid: int) -> str:
    try:
        with open(f"/proc/self/task/{tid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _name_thread(tid: int, name: str) -> None:
    try:
        with open(f"/proc/self/task/{tid}/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass


def _quiet_loop_errors(loop, context) -> None:
    # The loop of a stopped isolate is closed with the tasks of its dead JS still pending; that is expected.
    log.debug("stopped isolate loop: %s", context.get("message"))


_isolate_numbers = itertools.count(1)
BUSY_SHARE = 0.05  # an isolate that used more than this share of a core lately is running JS, not waiting
# An idle isolate that used no CPU (less than 1 ms per watchdog tick) for this long starts a new idle period,
# so that the traces of V8's own housekeeping over days of idling never add up to a stop.
IDLE_RESET_SECS = 30.0
LOOP_STOP_WAIT_SECS = 0.2


class GuildIsolate:
    def __init__(
        self,
        guild_id: str,
        sources: list[tuple[str, str]],
        run_op: OpRunner,
        main_loop: asyncio.AbstractEventLoop,
        memory_mb: int = 64,
        load_id: str = "",
        timer_limit_ms: int = 0,
        show_internal_frames: bool = False,
        watchdog: CpuWatchdog | None = None,
        idle_cpu_budget: float = 0.0,
        on_built: BuiltHook | None = None,
    ):
        self.guild_id = guild_id
        self.load_id = load_id  # names the deploy this isolate runs (e.g. cron jobs registered by it)
        self.timer_limit_ms = timer_limit_ms
        self.show_internal_frames = show_internal_frames
        self.sources = sources
        self.run_op = run_op
        self.main_loop = main_loop
        self.memory_mb = memory_mb
        self.watchdog = watchdog
        self.on_built = on_built
        self.idle_cpu_budget = float(idle_cpu_budget or 0)
        number = next(_isolate_numbers)
        self._os_name = f"flora-iso-{number}"[:15]  # what `top -H` shows; mini-racer's thread inherits it
        self._v8_name = f"flora-v8-{number}"[:15]
        self._lock = threading.Lock()
        self._activities: dict[int, _Activity] = {}
        self._tokens = itertools.count(1)
        self._idle_cpu0 = 0.0  # CPU time when the current idle period began (less the runtime's own GC since)
        self._samples: collections.deque[tuple[float, float]] = collections.deque(maxlen=4)  # (monotonic, CPU)
        self._last_used = time.monotonic()  # when the watchdog last saw this isolate use CPU
        self._waiters: dict[asyncio.Future, int | None] = {}  # main loop only
        self._ops: set = set()  # concurrent futures of ops in flight on the main loop
        self._closing = False
        self.stopping: StopInfo | None = None
        self.finished: asyncio.Future = main_loop.create_future()  # set once stop() is through
        self.on_stopped: Callable[[GuildIsolate, StopInfo | None], None] | None = None
        self.dropped_events = 0
        self.close_ms: float | None = None
        self.v8_threads: list[int] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop_main, name=f"isolate-{guild_id}", daemon=True)
        self._thread.start()
        assert self._thread.ident is not None  # started above
        self._clocks: list[int] = [time.pthread_getcpuclockid(self._thread.ident)]
        self._cm: Any = None  # mini-racer's context manager and MiniRacer (untyped library objects)
        self.mr: Any = None
        self._bell_cm: Any = None
        self._status: memoryview | None = None  # the status word of glue.js: the run whose sync code runs
        # the outbox bridge (isolate loop only): see glue.js
        self._runs: dict[int, asyncio.Future] = {}
        self._run_ids = itertools.count(1)
        self._bell_rung = False
        self._draining = False
        self._settled: list[list] = []
        self._flushing = False
        self._tasks: set[asyncio.Task] = set()
        self.subscriptions: set[str] = set()
        # At most this many events run interleaved in the isolate; the rest wait their turn
        # here, so the dispatch deadline measures a handler's own run, not a queue behind a burst.
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_DISPATCHES)

    @property
    def closed(self) -> bool:
        return self.stopping is not None

    # -- plumbing --------------------------------------------------------
    def _loop_main(self) -> None:
        _name_thread(threading.get_native_id(), self._os_name)
        self.loop.run_forever()

    async def _call(self, coro, token: int | None = None):
        """Run ``coro`` on the isolate's loop and wait for it here; a stop fails the wait at once, so no
        caller is left waiting on an isolate that will never answer."""
        if self.stopping is not None:
            coro.close()
            raise IsolateStopped(self.stopping, culprit=False)
        fut = self.main_loop.create_future()
        self._waiters[fut] = token
        inner = asyncio.run_coroutine_threadsafe(coro, self.loop)

        def copy(done) -> None:
            if fut.done():
                return
            if done.cancelled():
                fut.cancel()
            elif done.exception() is not None:
                fut.set_exception(done.exception())
            else:
                fut.set_result(done.result())

        def settle(done) -> None:
            try:
                self.main_loop.call_soon_threadsafe(copy, done)
            except RuntimeError:
                pass  # the worker's loop is gone: nobody waits any more

        inner.add_done_callback(settle)
        try:
            return await fut
        except asyncio.CancelledError:
            inner.cancel()
            raise
        finally:
            self._waiters.pop(fut, None)

    # -- the outbox bridge (isolate loop) -----------------------------------
    # Once the guild's code has run, this thread makes no blocking call into V8: mini-racer's blocking calls
    # (reading an object's item or an array, which its wrap_py_function does for every op's arguments, and
    # awaiting a JSPromise, which looks up `then`) hold the context while they wait behind running JS, and
    # then closing the context from another thread does not stop it (measured: mr_free_context returned
    # after 4 ms and the microtask loop went on at 0.99 s of CPU per second). Only cancelable evals are
    # used (their wait is an asyncio future), plus a notification (`bell`) that JS calls when its outbox
    # has something: op requests and the end of runs.
    def _spawn(self, coro) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)  # the loop keeps only weak references to its tasks
        task.add_done_callback(self._tasks.discard)

    def _on_bell(self, _args) -> None:
        self._bell_rung = True  # _args (the call's arguments) is dropped unread: reading it would block
        if not self._draining:
            self._draining = True
            self._spawn(self._drain())

    async def _drain(self) -> None:
        try:
            while self._bell_rung and self.mr is not None:
                self._bell_rung = False
                raw = await self.mr.eval_cancelable("__floraTakeOutbox()")
                for record in json.loads(raw) if isinstance(raw, str) else ():
                    if record[0] == "op":
                        self._spawn(self._op(record[1], str(record[2]), str(record[3])))
                    elif record[0] == "done":
                        fut = self._runs.pop(record[1], None)
                        if fut is not None and not fut.done():
                            fut.set_result((bool(record[2]), record[3]))
        except Exception as exc:  # noqa: BLE001 - the isolate is being stopped, or ran out of memory
            log.debug("guild %s: outbox not taken: %r", self.guild_id, exc)
        finally:
            self._draining = False

    async def _op(self, op_id: int, name: str, args_json: str) -> None:
        try:
            result = await self._op_bridge(name, args_json)
        except (Exception, asyncio.CancelledError):  # noqa: BLE001 - stopped: nobody is waiting any more
            return
        self._settled.append([op_id, result])
        if not self._flushing:
            self._flushing = True
            self._spawn(self._flush())

    async def _flush(self) -> None:
        try:
            while self._settled and self.mr is not None and self.stopping is None:
                batch, self._settled = self._settled, []
                await self.mr.eval_cancelable(f"__floraSettle({json.dumps(batch, separators=(',', ':'))})")
        except Exception as exc:  # noqa: BLE001
            log.debug("guild %s: op results not delivered: %r", self.guild_id, exc)
        finally:
            self._flushing = False

    async def _op_bridge(self, name: str, args_json: str) -> str:
        if self.stopping is not None:
            raise RuntimeError("the isolate was stopped")
        fut = asyncio.run_coroutine_threadsafe(self.run_op(self, name, args_json), self.main_loop)
        with self._lock:
            self._ops.add(fut)
            stopping = self.stopping
        if stopping is not None:
            fut.cancel()  # the stop swept the ops before this one was added
        try:
            return await asyncio.wrap_future(fut)
        finally:
            with self._lock:
                self._ops.discard(fut)

    # -- CPU accounting (read by the watchdog thread) ------------------------
    def cpu_seconds(self) -> float:
        """CPU time used so far by this isolate's threads (mini-racer's V8 thread and the loop thread)."""
        total = 0.0
        for clock in self._clocks:
            try:
                total += time.clock_gettime(clock)
            except OSError:
                pass  # the thread has ended
        return total

    def _begin(self, kind: str, label: str, budget: float | None) -> int:
        cpu = self.cpu_seconds()
        with self._lock:
            token = next(self._tokens)
            earlier = max(0.0, cpu - self._idle_cpu0) if not self._activities else 0.0
            self._activities[token] = _Activity(
                kind, label, float(budget or 0), cpu, time.monotonic(), earlier if earlier >= EARLIER_CPU_SECS else 0.0
            )
        return token

    def _end(self, token: int) -> None:
        cpu = self.cpu_seconds()
        with self._lock:
            self._activities.pop(token, None)
            if not self._activities:
                self._idle_cpu0 = cpu  # an idle period starts

    def _step(self, token: int | None, step: str, run_id: int = 0) -> None:
        if token is None:
            return
        with self._lock:
            act = self._activities.get(token)
            if act is not None:
                act.step = step
                if run_id:
                    act.run_id = run_id

    def _running_run(self) -> int:
        """The run whose synchronous code V8 is executing now, 0 if none: glue.js writes it into a word of
        memory that this process reads directly, no call into V8 (which would wait behind that code)."""
        with self._lock:
            if self._status is None or self._closing:
                return 0
            return int.from_bytes(self._status[0:4], "little", signed=True)

    def _where(self, act: _Activity, acts: list[_Activity]) -> str:
        """Where the CPU goes now, said for ``act``: the status word tells whether a run's synchronous code is
        executing; if none is, the JS that runs is promise callbacks (microtasks)."""
        running = self._running_run()
        if act.kind == "load":
            if act.top_level:
                return "in the script's top level"  # its synchronous code after an await, or its microtasks
            if act.step == "script":
                return "in the script"  # its top level, or a microtask queued by an earlier script: cannot tell
            return "in its synchronous code" if running and running == act.run_id else "in a microtask loop"
        if running and running == act.run_id:
            return "in its synchronous code"
        other = next((a for a in acts if running and a.run_id == running), None)
        if other is not None:
            return f"in the synchronous code of a later {other.label} handler"
        if act.earlier >= EARLIER_CPU_SECS:
            return "in a microtask loop that started while no event was running"
        return "in a microtask loop"

    def check_cpu(self) -> StopInfo | None:
        """Called by the watchdog at every tick: why this isolate must be stopped now, or None.

        An event may use its deadline's worth of CPU from its start (plus what the idle period it ended
        had used, if that was more than a trace: a detached loop that was spinning when it began). While
        no event runs, the idle period may use as much, however spread out; the runtime's own
        low_memory_notification() is not counted, and a benign isolate uses next to nothing else (what it
        does use is forgotten after IDLE_RESET_SECS without any)."""
        if self.stopping is not None:
            return None
        now, wall = self.cpu_seconds(), time.monotonic()
        with self._lock:
            if self._samples and now - self._samples[-1][1] > 0.001:
                self._last_used = wall
            elif not self._activities and wall - self._last_used > IDLE_RESET_SECS:
                self._idle_cpu0 = now
            self._samples.append((wall, now))
            acts = list(self._activities.items())  # in start order
            idle0 = self._idle_cpu0
        for token, act in acts:
            used = now - act.cpu0 + act.earlier
            if act.budget and used > act.budget:
                where = self._where(act, [a for _, a in acts])
                if act.kind == "event":
                    return StopInfo("cpu", overrun_text(act.label, act.budget, used, where), token=token, event=True)
                return StopInfo("cpu", load_overrun_text(act.budget, used, where), token=token)
        if not acts and self.idle_cpu_budget and now - idle0 > self.idle_cpu_budget:
            return StopInfo(
                "cpu",
                f"spent {now - idle0:.1f} s of CPU while no event was running "
                f"(more than the {self.idle_cpu_budget:g}s dispatch deadline)",
                idle=True,
            )
        return None

    def _using_cpu(self, now: float, wall: float) -> bool:
        """Did the isolate use CPU lately (the watchdog's last samples, up to 0.4 s back)? A loop on a crowded
        machine gets a fraction of a core, a wait none."""
        with self._lock:
            first = self._samples[0] if self._samples else None
        if first is None or wall - first[0] < 0.05:
            return True  # no watchdog samples to tell: assume it was running
        return (now - first[1]) / (wall - first[0]) > BUSY_SHARE

    def describe_overrun(self, token: int) -> tuple[str, float, float, str, bool] | None:
        """For a wall-clock timeout of ``token``: (event, deadline, CPU, where, busy) of the oldest event in
        flight that is past its deadline, as the watchdog would say it (events queued behind a spinning
        one time out too, and are not the culprit)."""
        now, wall = self.cpu_seconds(), time.monotonic()
        with self._lock:
            acts = list(self._activities.items())
        for tok, act in acts:
            if act.kind == "event" and (tok == token or (act.budget and wall - act.started >= act.budget)):
                return (
                    act.label,
                    act.budget,
                    now - act.cpu0 + act.earlier,
                    self._where(act, [a for _, a in acts]),
                    self._using_cpu(now, wall),
                )
        return None

    def _adopt_v8_threads(self, born: set[int]) -> None:
        mine = sorted(tid for tid in born if _thread_name(tid) == self._os_name)
        if not mine:
            log.warning(
                "guild %s: mini-racer's thread was not found in /proc/self/task; the CPU watchdog only "
                "measures the isolate's loop thread",
                self.guild_id,
            )
        for tid in mine:
            _name_thread(tid, self._v8_name)
        self.v8_threads = mine
        self._clocks = self._clocks + [_thread_cpu_clock(tid) for tid in mine]

    # -- lifecycle -------------------------------------------------------
    async def load(self, bundle: str, timeout: float) -> set[str]:
        """Create the isolate, run the SDK and the guild's bundle; return subscribed events."""
        token = self._begin("load", "the script", timeout)
        try:
            return await self._call(self._load(bundle, timeout or None, token), token)
        except ScriptTimeout as exc:
            text = getattr(exc, "load_text", None)
            if text is None:
                now = self.cpu_seconds()
                with self._lock:
                    act = self._activities[token]
                text = load_overrun_text(
                    act.budget, now - act.cpu0, self._where(act, [act]), self._using_cpu(now, time.monotonic()), act.top_level
                )
            raise ScriptTimeout(f"{text}; isolate stopped") from None
        finally:
            self._end(token)

    async def _load(self, bundle: str, timeout: float | None, token: int) -> set[str]:
        with _create_lock:
            before = _os_threads()
            cm = mini_racer(event_loop=self.loop)
            mr = cm.__enter__()
            born = _os_threads() - before
        with self._lock:
            stale = self._closing
            if not stale:
                self._cm, self.mr = cm, mr
        if stale:  # stopped while the context was being made
            cm.__exit__(None, None, None)
            raise IsolateStopped(self.stopping or StopInfo("closed", "the isolate was closed"), culprit=False)
        self._adopt_v8_threads(born)
        if self.watchdog is not None:
            self.watchdog.register(self)
        limit = self.memory_mb << 20
        self.mr.set_hard_memory_limit(limit)
        self.mr.set_soft_memory_limit(int(limit * 0.75))
        # Blocking calls are fine up to here: no code of the guild has run yet.
        # (mini-racer's own one-way callback, as its JSPromise awaiting uses; pinned mini-racer==0.14.1.)
        self._bell_cm = self.mr._ctx._register_js_notification(self._on_bell)  # noqa: SLF001
        bell = self._bell_cm.__enter__()
        setup = self.mr.eval(GLUE)
        status = await setup.cancelable()(bell, self.guild_id, int(self.timer_limit_ms))
        with self._lock:
            self._status = status if isinstance(status, memoryview) and len(status) >= 4 else None
        self._step(token, "script")
        await self._exec(f"{EVENTS}\n//# sourceURL={INTERNAL_PREFIX}events.js", timeout, "loading flora:events", token)
        # sourceURL names every script in stack traces, so the runtime's own frames can be told apart
        for name, source in self.sources:
            tag = INTERNAL_PREFIX + name.replace("flora:", "").replace(":", "-") + ".js"
            self._step(token, "script")
            await self._exec(f"{source}\n//# sourceURL={tag}", timeout, f"loading {name}", token)
        if self.on_built is not None:
            await self._built(timeout)
        self._step(token, "script")
        started = time.monotonic()
        await self._exec(f"{bundle}\n//# sourceURL=guild/{self.guild_id}/bundle.js", timeout, "module_load", token)
        if has_top_level_await(bundle):
            await self._top_level(None if timeout is None else timeout - (time.monotonic() - started), token)
        entropy = json.dumps(os.urandom(16).hex())
        subs = await self._run(
            lambda run_id: (
                f"__floraBegin({run_id}), __floraTrack({run_id}, (async () => {{ if (globalThis.__floraReseed) __floraReseed({entropy});"
                " if (globalThis.__floraSettleTimers) await __floraSettleTimers();"
                " globalThis.__floraSubsDirty = true; return globalThis.__floraTakeSubs ? __floraTakeSubs() : null; })())"
            ),
            timeout,
            "module_load",
            token,
        )
        self.subscriptions = set(json.loads(subs)) if isinstance(subs, str) else set()
        return self.subscriptions

    async def _top_level(self, timeout: float | None, token: int) -> None:
        """Await the top level of a script with top-level await: within what is left of the load deadline
        since its bundle began to run, ops answered as in any run (the outbox bridge is live)."""
        with self._lock:
            act = self._activities.get(token)
            if act is not None:
                act.top_level = True
        try:
            await self._run(
                lambda run_id: f"__floraBegin({run_id}), __floraTrack({run_id}, __floraTopLevelDone())",
                None if timeout is None else max(timeout, 0.05),
                "module_load",
                token,
            )
        except (ScriptTimeout, ScriptOOM, IsolateStopped):
            raise
        except ScriptError as exc:
            raise ScriptError(f"the script's top level failed: {exc}") from None
        finally:
            with self._lock:
                if act is not None:
                    act.top_level = False

    async def _built(self, timeout: float | None) -> None:
        """Run ``on_built`` on the main loop and wait for it: nothing of the guild's code runs before it ends."""
        assert self.on_built is not None
        done = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self.on_built(self), self.main_loop))
        try:
            await asyncio.wait_for(done, timeout)
        except TimeoutError:
            raise ScriptError(
                f"the plugins' flora_isolate_built hooks did not return within the {timeout:g}s load deadline"
            ) from None

    def _timeout(self, stage: str, token: int | None) -> ScriptError:
        """The error for a wall-clock timeout, with what the isolate was doing at that moment."""
        if self._limit_reached():
            return self._oom(stage)
        exc = ScriptTimeout(f"{stage} timed out")
        if token is not None:
            with self._lock:
                act = self._activities.get(token)
            if act is not None and act.kind == "load":
                now = self.cpu_seconds()
                exc.load_text = load_overrun_text(
                    act.budget, now - act.cpu0, self._where(act, [act]), self._using_cpu(now, time.monotonic()), act.top_level
                )
            elif act is not None:
                exc.overrun = self.describe_overrun(token)
        return exc

    def _oom(self, stage: str) -> ScriptOOM:
        return ScriptOOM(f"{stage} exceeded the isolate memory limit ({self.memory_mb} MB)")

    def _limit_reached(self) -> bool:
        mr = self.mr
        return mr is not None and mr.was_hard_memory_limit_reached()  # a flag read, not a call into V8

    async def _exec(self, code: str, timeout: float | None, stage: str, token: int | None = None) -> None:
        """Evaluate a script. Its completion value is not awaited: awaiting a JSPromise blocks (see the bridge);
        bundles are IIFEs (a script with top-level await: its top level is awaited by _top_level, through the outbox),
        and the end of a load waits for the script's timers."""
        task = asyncio.ensure_future(self.mr.eval_cancelable(code))
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            # say what it was doing before the eval is cancelled: that terminates the JS, and V8 goes on
            # with the evals queued behind it (which change the status word)
            timeout_exc = self._timeout(stage, token)
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - terminated, as asked
                pass
            raise timeout_exc from None
        except asyncio.CancelledError:
            task.cancel()
            raise
        except JSOOMException:
            raise self._oom(stage) from None
        except (JSEvalException, JSPromiseError) as exc:
            if self._limit_reached():
                raise self._oom(stage) from None
            raise ScriptError(js_error_text(exc, self.show_internal_frames)) from None

    async def _run(self, code: Callable[[int], str], timeout: float | None, stage: str, token: int | None = None):
        """Evaluate ``code(run_id)``, which starts a run that reports its end through the outbox
        (``__floraTrack``); return its value."""
        run_id = next(self._run_ids)
        done = self.loop.create_future()
        self._runs[run_id] = done
        try:
            self._step(token, "run", run_id)
            await self._exec(code(run_id), timeout, stage, token)
            self._step(token, "waiting")
            try:
                ok, value = await asyncio.wait_for(done, timeout)
            except TimeoutError:
                raise self._timeout(stage, token) from None
        finally:
            self._runs.pop(run_id, None)
        if ok:
            return value
        if self._limit_reached():
            raise self._oom(stage)
        raise ScriptError(user_visible_error(str(value), self.show_internal_frames) or "Error")

    async def dispatch(self, event: str, payload_json: str, timeout: float) -> set[str] | None:
        """Run the script's handlers for ``event``; returns new subscriptions if they changed."""
        entropy = json.dumps(os.urandom(16).hex())
        code = lambda run_id: f"__floraRun({run_id}, {json.dumps(event)}, {payload_json}, {entropy})"  # noqa: E731
        async with self._slots:
            try:
                if self.stopping is not None:
                    raise IsolateStopped(self.stopping, culprit=False)
                token = self._begin("event", event, timeout)
                try:
                    result = await self._call(self._run(code, timeout or None, "dispatch", token), token)
                except ScriptTimeout as exc:
                    if getattr(exc, "overrun", None) is None:  # what it was doing, for the guild's log
                        exc.overrun = self.describe_overrun(token)
                    raise
                finally:
                    self._end(token)
            except IsolateStopped as exc:
                if not exc.culprit:
                    self.dropped_events += 1
                raise
        if isinstance(result, str):
            self.subscriptions = set(json.loads(result))
            return self.subscriptions
        return None

    # -- stopping ----------------------------------------------------------
    def claim_stop(self, info: StopInfo) -> bool:
        """Mark the isolate as stopping (any thread). Ops in flight for it are cancelled at once and every
        request waiting on it fails; ``stop()`` then closes it. False if it was already stopping."""
        with self._lock:
            if self.stopping is not None:
                return False
            self.stopping = info
            ops, self._ops = list(self._ops), set()
        for fut in ops:
            fut.cancel()
        try:
            self.main_loop.call_soon_threadsafe(self._fail_waiters, info)
        except RuntimeError:
            pass  # the worker's loop is closed: the process is exiting
        return True

    def _fail_waiters(self, info: StopInfo) -> None:
        for fut, token in list(self._waiters.items()):
            if not fut.done():
                fut.set_exception(IsolateStopped(info, culprit=info.token is not None and token == info.token))

    def stop(self) -> None:
        """Close the isolate, also while its JS spins; blocks until its threads are gone (not on its loop).
        Run by the watchdog on a thread of its own after ``claim_stop``."""
        info = self.stopping
        try:
            self._teardown()
        finally:
            try:
                self.main_loop.call_soon_threadsafe(self._finish, info)
            except RuntimeError:
                pass

    def _teardown(self) -> None:
        # A free loop is stopped before the context is freed: a mini-racer callback that runs after the free
        # reads a value of the freed context (seen: a UnicodeDecodeError converting a result after close()).
        try:
            self.loop.call_soon_threadsafe(self.loop.stop)
        except RuntimeError:
            pass
        self._thread.join(LOOP_STOP_WAIT_SECS)
        with self._lock:
            self._closing = True
            cm, self._cm, self.mr = self._cm, None, None
        if cm is not None:
            started = time.perf_counter()
            try:
                # mr_free_context: TerminateExecution, then waits for mini-racer's thread to end
                cm.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - best effort on a broken isolate
                log.exception("closing the isolate of guild %s failed", self.guild_id)
            self.close_ms = (time.perf_counter() - started) * 1000
            log.info(
                "guild %s: isolate closed in %.1f ms (%s)",
                self.guild_id,
                self.close_ms,
                self.stopping.kind if self.stopping else "?",
            )
        # a loop thread that was blocked in a call into V8 got its answer (an error) and stops now
        self._thread.join()
        self.loop.set_exception_handler(_quiet_loop_errors)
        self.loop.close()

    def _finish(self, info: StopInfo | None) -> None:
        if self.watchdog is not None:
            self.watchdog.unregister(self)
        if not self.finished.done():
            self.finished.set_result(info)
        if self.on_stopped is not None:
            self.on_stopped(self, info)

    async def close(self, info: StopInfo | None = None, wait: float | None = None) -> bool:
        """Stop the isolate (main loop) and wait until it is down, at most ``wait`` seconds; False if
        someone else had stopped it already."""
        info = info or StopInfo("closed", "the isolate was closed while this event was running")
        if self.watchdog is not None:
            claimed = self.watchdog.stop(self, info)
        else:
            claimed = self.claim_stop(info)
            if claimed:
                threading.Thread(target=self.stop, name="flora-isolate-stop", daemon=True).start()
        try:
            grace = self.watchdog.close_grace if self.watchdog is not None else 15.0
            await asyncio.wait_for(asyncio.shield(self.finished), grace + 1 if wait is None else wait)
        except TimeoutError:
            pass
        return claimed

    def memory_notification(self) -> None:
        """Ask V8 to give memory back (the worker does it every minute). mr_low_memory_notification blocks
        until V8 has run it, so it is only sent while nothing runs in the isolate (see the bridge)."""
        if self.mr is None or self.stopping is not None:
            return
        try:
            self.loop.call_soon_threadsafe(lambda: self._spawn(self._low_memory()))
        except RuntimeError:
            pass

    def _busy(self) -> bool:
        with self._lock:
            if self._activities or self._ops:
                return True
        return bool(self._runs or self._settled or self._flushing or self._draining)

    async def _low_memory(self) -> None:
        before = self.cpu_seconds()
        await asyncio.sleep(0.2)
        # no event, load or op in flight, and no JS ran for 0.2 s: only a task can start JS, and this one
        # is a GC (FinalizationRegistry callbacks run as tasks after it)
        if self._busy() or self.cpu_seconds() - before > 0.002:
            return
        mr = self.mr
        if mr is not None and self.stopping is None:
            before = self.cpu_seconds()
            mr.low_memory_notification()
            spent = self.cpu_seconds() - before
            with self._lock:  # the runtime's own GC is not the script's CPU
                if not self._activities:
                    self._idle_cpu0 += spent
