"""The CPU watchdog of a worker process: one thread, outside every isolate's threads.

Why a thread of its own: an isolate's asyncio loop thread makes blocking
mini-racer calls into V8 (reading an op's arguments, calling ``resolve``,
looking up a promise's ``then``), and each of them waits behind whatever
JavaScript is running. A deadline kept on that loop (``asyncio.wait_for``)
therefore never fires while a script spins in a promise callback; the
watchdog does not share a thread with any isolate, so it always gets to run.

Every ``TICK_SECS`` it asks each registered isolate how much CPU it used (the
isolate reads its threads' CPU clocks: see ``GuildIsolate.cpu_seconds``) and
stops those over budget. Stopping closes the isolate (``GuildIsolate.stop``,
on a short-lived thread, because closing waits for V8). If that does not
return within the grace (RUNTIME_CLOSE_GRACE_SECS) the isolate's threads are
given up and the worker is told to have itself replaced (``on_stuck``).

Why closing and not V8's TerminateExecution: mini-racer 0.14.1 only reaches
it through mr_cancel_task(task id) of a task that is running (the id stays
inside its _run_cancelable_mr_task; the isolate's loop uses it when its
wall-clock deadline cancels an eval) and through closing the context. A loop
in a microtask runs in no task, so only closing stops it; and an isolate that
overran is rebuilt anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .isolate import GuildIsolate, StopInfo

log = logging.getLogger("flora.watchdog")

TICK_SECS = 0.1
# Closing an isolate normally takes milliseconds, also while its JS spins (measured 0.6-4.0 ms for loops
# in handlers, microtasks, .then callbacks, after and during ops; 19-34 ms in a busy JSON.stringify or
# Array.join), provided no thread is inside a blocking mini-racer call (see the bridge in isolate.py:
# then mr_free_context returns but the script goes on). It waits for the V8 builtin that is
# running to return, though, and some builtins never check for termination: a sort of 3 million numbers
# delayed close() by 1.7 s, and `a.length = 2**32-2; a.unshift(1)` kept V8 busy for minutes (close()
# did not return). Past the grace (RUNTIME_CLOSE_GRACE_SECS) the isolate's threads are given up and the
# worker is replaced. The default leaves room for the slow builtins, and lets `a.length = 2**32-1;
# a.fill(0)` end as what it is, a fatal V8 OOM (SIGTRAP) after about 11 s, not as a replacement.
CLOSE_GRACE_SECS = 15.0


class CpuWatchdog:
    def __init__(
        self, on_stuck: Callable[[GuildIsolate, StopInfo], None], tick: float = TICK_SECS, close_grace: float = CLOSE_GRACE_SECS
    ):
        self.on_stuck = on_stuck  # called on the watchdog thread; must only hand the news over
        self.tick = tick
        self.close_grace = close_grace
        self._lock = threading.Lock()
        self._isolates: set[GuildIsolate] = set()
        self._stoppers: list[tuple[GuildIsolate, StopInfo, threading.Thread, float]] = []
        self._stuck_reported: set[int] = set()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="flora-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def halt(self) -> None:
        self._halt.set()

    def register(self, iso: GuildIsolate) -> None:
        with self._lock:
            self._isolates.add(iso)

    def unregister(self, iso: GuildIsolate) -> None:
        with self._lock:
            self._isolates.discard(iso)

    def stop(self, iso: GuildIsolate, info: StopInfo) -> bool:
        """Stop ``iso`` on a thread of its own (closing waits for V8); False if it is already being stopped."""
        if not iso.claim_stop(info):
            return False
        self.unregister(iso)
        thread = threading.Thread(target=iso.stop, name="flora-isolate-stop", daemon=True)
        with self._lock:
            self._stoppers.append((iso, info, thread, time.monotonic()))
        thread.start()
        return True

    def _run(self) -> None:
        while not self._halt.wait(self.tick):
            try:
                self._check()
            except Exception:  # noqa: BLE001 - the watchdog must outlive any one isolate's oddities
                log.exception("CPU watchdog check failed")

    def _check(self) -> None:
        with self._lock:
            isolates = list(self._isolates)
        for iso in isolates:
            info = iso.check_cpu()
            if info is not None:
                self.stop(iso, info)
        now = time.monotonic()
        with self._lock:
            self._stoppers = [s for s in self._stoppers if s[2].is_alive()]
            late = [s for s in self._stoppers if now - s[3] > self.close_grace and id(s[0]) not in self._stuck_reported]
            for iso, _, _, _ in late:
                self._stuck_reported.add(id(iso))
        for iso, info, _, _ in late:
            self.on_stuck(iso, info)
