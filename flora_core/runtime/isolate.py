"""One guild's V8 isolate, on its own event-loop thread (the "bridge" pattern).

Scripts run on the isolate's loop thread; ops are forwarded to the worker's
main loop, where Discord REST lives. A busy or runaway script therefore stalls
only its own thread. Every load and dispatch is bounded by a deadline; a
script that overruns is not trusted again: the isolate is closed (the only
cure for loops after an ``await``) and the worker builds a fresh one.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from importlib import resources
from typing import Awaitable, Callable

from py_mini_racer import JSEvalException, JSOOMException, JSPromiseError, init_mini_racer, mini_racer

MAX_CONCURRENT_DISPATCHES = 16

GLUE = resources.files("flora_core.runtime").joinpath("glue.js").read_text(encoding="utf-8")

# V8's process-wide initialisation is not safe to race: two isolates created at once in a
# fresh process abort it ("Check failed: !IsConfigurablePoolInitialized()"). Initialise once,
# and create contexts one at a time (a few ms each).
_create_lock = threading.Lock()


def init_v8() -> None:
    with _create_lock:
        init_mini_racer(ignore_duplicate_init=True)


OpRunner = Callable[["GuildIsolate", str, str], Awaitable[str]]  # (isolate, op_name, args_json) -> result json


class ScriptError(Exception):
    """The script failed; the message is for the guild's log (no Python internals)."""


class ScriptTimeout(ScriptError):
    pass


class ScriptOOM(ScriptError):
    pass


INTERNAL_PREFIX = "flora-internal/"


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


class GuildIsolate:
    def __init__(self, guild_id: str, sources: list[tuple[str, str]], run_op: OpRunner, main_loop: asyncio.AbstractEventLoop,
                 memory_mb: int = 64, load_id: str = "", timer_limit_ms: int = 0, show_internal_frames: bool = False):
        self.guild_id = guild_id
        self.load_id = load_id  # names the deploy this isolate runs (e.g. cron jobs registered by it)
        self.timer_limit_ms = timer_limit_ms
        self.show_internal_frames = show_internal_frames
        self.sources = sources
        self.run_op = run_op
        self.main_loop = main_loop
        self.memory_mb = memory_mb
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"isolate-{guild_id}", daemon=True)
        self._thread.start()
        self._cm = None
        self.mr = None
        self._op_cm = None
        self.closed = False
        self.subscriptions: set[str] = set()
        # At most this many events run interleaved in the isolate; the rest wait their turn
        # here, so the dispatch deadline measures a handler's own run, not a queue behind a burst.
        self._slots = asyncio.Semaphore(MAX_CONCURRENT_DISPATCHES)

    # -- plumbing --------------------------------------------------------
    def _on_loop(self, coro) -> "asyncio.Future":
        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def _op_bridge(self, name, args_json):
        fut = asyncio.run_coroutine_threadsafe(self.run_op(self, str(name), str(args_json)), self.main_loop)
        return await asyncio.wrap_future(fut)

    # -- lifecycle -------------------------------------------------------
    async def load(self, bundle: str, timeout: float) -> set[str]:
        """Create the isolate, run the SDK and the guild's bundle; return subscribed events."""
        return await self._on_loop(self._load(bundle, timeout or None))

    async def _load(self, bundle: str, timeout: float | None) -> set[str]:
        with _create_lock:
            self._cm = mini_racer(event_loop=self.loop)
            self.mr = self._cm.__enter__()
        limit = self.memory_mb << 20
        self.mr.set_hard_memory_limit(limit)
        self.mr.set_soft_memory_limit(int(limit * 0.75))
        self._op_cm = self.mr.wrap_py_function(self._op_bridge)
        js_op = await self._op_cm.__aenter__()
        setup = self.mr.eval(GLUE)
        await setup.cancelable()(js_op, self.guild_id, int(self.timer_limit_ms))
        # sourceURL names every script in stack traces, so the runtime's own frames can be told apart
        for name, source in self.sources:
            tag = INTERNAL_PREFIX + name.replace("flora:", "").replace(":", "-") + ".js"
            await self._run(f"{source}\n//# sourceURL={tag}", timeout, stage=f"loading {name}")
        await self._run(f"{bundle}\n//# sourceURL=guild/{self.guild_id}/bundle.js", timeout, stage="module_load")
        subs = await self._run(
            f"(async () => {{ if (globalThis.__floraReseed) __floraReseed({json.dumps(os.urandom(16).hex())});"
            " if (globalThis.__floraSettleTimers) await __floraSettleTimers();"
            " globalThis.__floraSubsDirty = true; return globalThis.__floraTakeSubs ? __floraTakeSubs() : null; })()",
            timeout, "module_load")
        self.subscriptions = set(json.loads(subs)) if isinstance(subs, str) else set()
        return self.subscriptions

    async def _run(self, code: str, timeout: float | None, stage: str):
        try:
            result = await asyncio.wait_for(self.mr.eval_cancelable(code), timeout)
            if hasattr(result, "__await__") and not isinstance(result, (str, bytes)):
                result = await asyncio.wait_for(result, timeout)
            return result
        except (asyncio.TimeoutError, TimeoutError):
            raise ScriptTimeout(f"{stage} timed out") from None
        except JSOOMException:
            raise ScriptOOM(f"{stage} exceeded the isolate memory limit ({self.memory_mb} MB)") from None
        except (JSEvalException, JSPromiseError) as exc:
            if self.mr is not None and self.mr.was_hard_memory_limit_reached():
                raise ScriptOOM(f"{stage} exceeded the isolate memory limit ({self.memory_mb} MB)") from None
            raise ScriptError(js_error_text(exc, self.show_internal_frames)) from None

    async def dispatch(self, event: str, payload_json: str, timeout: float) -> set[str] | None:
        """Run the script's handlers for ``event``; returns new subscriptions if they changed."""
        code = f"__floraRun({json.dumps(event)}, {payload_json}, {json.dumps(os.urandom(16).hex())})"
        async with self._slots:
            if self.closed:
                raise ScriptError("the isolate was restarted before this event could run")
            result = await self._on_loop(self._run(code, timeout or None, "dispatch"))
        if isinstance(result, str):
            self.subscriptions = set(json.loads(result))
            return self.subscriptions
        return None

    async def close(self) -> None:
        """Tear the isolate down, even if its thread is stuck in JS."""
        if self.closed:
            return
        self.closed = True
        await asyncio.get_running_loop().run_in_executor(None, self._close_blocking)

    def _close_blocking(self) -> None:
        cm, self._cm, self.mr = self._cm, None, None
        if cm is not None:
            try:
                cm.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - best effort on a broken isolate
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()

    def memory_notification(self) -> None:
        if self.mr is not None:
            self.loop.call_soon_threadsafe(self.mr.low_memory_notification)
