"""The CPU watchdog on real isolates (mini-racer, its real threads), without the rest of flora: it sees the
CPU of mini-racer's own thread, stops a script from outside while the isolate's loop thread cannot run at
all, and does not add up the odd short burst of an idle isolate."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from flora_core.runtime.isolate import GuildIsolate, IsolateStopped, ScriptError, StopInfo, init_v8
from flora_core.runtime.watchdog import CpuWatchdog

# enough of the runtime for __floraRun (glue.js): one handler per event name, nothing subscribed
BUNDLE = """
globalThis.__floraDispatch = async (event) => {
  if (event === 'microtask') Promise.resolve().then(() => { for (;;) {} });
  if (event === 'burst') { let x = 0; for (let i = 0; i < 3e7; i++) x += i % 7; globalThis.x = x; }
};
"""


async def _no_ops(iso, name, args_json):
    if name == "op_sleep":  # the one op these scripts use
        await asyncio.sleep(json.loads(args_json)["ms"] / 1000)
    return json.dumps({"ok": True, "value": None})


async def _isolate(watchdog: CpuWatchdog, idle_budget: float = 0.0) -> GuildIsolate:
    init_v8()
    iso = GuildIsolate("1", [], _no_ops, asyncio.get_running_loop(), watchdog=watchdog, idle_cpu_budget=idle_budget)
    await iso.load(BUNDLE, 10)
    return iso


def _stuck_report() -> tuple[list, CpuWatchdog]:
    stuck: list = []
    watchdog = CpuWatchdog(lambda iso, info: stuck.append(info), close_grace=10)
    watchdog.start()
    return stuck, watchdog


def test_the_cpu_is_measured_on_mini_racers_own_thread():
    async def main():
        _, watchdog = _stuck_report()
        iso = await _isolate(watchdog)
        try:
            assert len(iso.v8_threads) == 1
            with open(f"/proc/self/task/{iso.v8_threads[0]}/comm") as f:
                assert f.read().strip().startswith("flora-v8-")
            before, process = iso.cpu_seconds(), time.process_time()
            await iso.dispatch("burst", "{}", 5)
            used, used_by_process = iso.cpu_seconds() - before, time.process_time() - process
            print(f"\nisolate {used * 1000:.1f} ms of CPU, the whole process {used_by_process * 1000:.1f} ms")
            assert used > 0.01 and used >= 0.8 * used_by_process  # the loop's CPU is the isolate's
        finally:
            await iso.close(StopInfo("closed", "test over"))
            watchdog.halt()

    asyncio.run(main())


def test_a_microtask_loop_is_stopped_from_outside_while_the_isolate_loop_cannot_run():
    async def main():
        stuck, watchdog = _stuck_report()
        iso = await _isolate(watchdog)
        released = threading.Event()
        try:
            started = time.monotonic()
            task = asyncio.create_task(iso.dispatch("microtask", "{}", 1))
            while not iso._activities or next(iter(iso._activities.values())).step != "waiting":  # noqa: SLF001
                await asyncio.sleep(0.01)
            # from now on the isolate's own loop is frozen: its wall-clock deadline cannot fire
            iso.loop.call_soon_threadsafe(released.wait, 6)
            with pytest.raises(IsolateStopped) as stopped:
                await task
            took = time.monotonic() - started
            assert took < 4, took  # well before the loop thread is released
            info = stopped.value.info
            assert info.kind == "cpu" and info.event and stopped.value.culprit
            assert info.what.startswith("after 1.") and info.what.endswith(
                " s of CPU in a microtask loop, microtask handler exceeded the 1s dispatch deadline"
            ), info.what
            cpu = time.process_time()
            await asyncio.sleep(0.5)
            assert time.process_time() - cpu < 0.25  # the spin is over although the loop thread still waits
        finally:
            released.set()
        await asyncio.wait_for(asyncio.shield(iso.finished), 10)
        assert not iso._thread.is_alive() and iso.close_ms is not None and not stuck  # noqa: SLF001
        print(f"\nstopped after {took:.2f} s; close() took {iso.close_ms:.1f} ms")
        watchdog.halt()

    asyncio.run(main())


def test_cpu_spread_over_an_idle_period_adds_up_but_the_runtimes_own_gc_does_not():
    async def main():
        _, watchdog = _stuck_report()
        iso = await _isolate(watchdog, idle_budget=0.3)
        try:
            await iso._call(
                iso.mr.eval_cancelable(
                    "globalThis.junk = Array.from({length: 200000}, (_, i) => ({i})); "  # noqa: SLF001
                    "globalThis.junk = null; 1"
                )
            )
            idle = iso.cpu_seconds() - iso._idle_cpu0  # noqa: SLF001
            for _ in range(3):
                await iso._call(iso._low_memory())  # noqa: SLF001 - what the worker does every minute
            assert iso.cpu_seconds() - iso._idle_cpu0 - idle < 0.005  # noqa: SLF001
            # a detached loop that spins 20 ms out of every 170 ms: never a long stretch, still stopped
            await iso._call(
                iso.mr.eval_cancelable(  # noqa: SLF001
                    "(function tick() { const end = Date.now() + 20; while (Date.now() < end) {} "
                    "__floraOp('op_sleep', {ms: 150}).then(tick); })(); 1"
                )
            )
            info = await asyncio.wait_for(asyncio.shield(iso.finished), 15)
            assert info.kind == "cpu" and info.idle
            assert info.line.startswith("spent 0.") and info.line.endswith(
                " s of CPU while no event was running (more than the 0.3s dispatch deadline); isolate stopped"
            )
        finally:
            await iso.close(StopInfo("closed", "test over"))
            watchdog.halt()

    asyncio.run(main())


def test_a_load_that_spins_in_a_microtask_fails_and_stops():
    async def main():
        _, watchdog = _stuck_report()
        init_v8()
        iso = GuildIsolate("1", [], _no_ops, asyncio.get_running_loop(), watchdog=watchdog)
        iso.on_stopped = lambda iso, info: None
        started = time.monotonic()
        with pytest.raises(ScriptError) as failed:
            await iso.load("Promise.resolve().then(() => { for (;;) {} });", 1)
        # the wall-clock deadline of the load's last step or the watchdog, within about 1 s, in the same words
        text = str(failed.value)
        assert text.startswith("after ") and text.endswith(
            " s of CPU in a microtask loop, loading the script exceeded the 1s load deadline; isolate stopped"
        ), text
        took = time.monotonic() - started
        print(f"\nload failed after {took:.2f} s: {failed.value}")
        assert took < 5
        await iso.close(StopInfo("closed", "the load failed"))
        await asyncio.wait_for(asyncio.shield(iso.finished), 10)
        cpu = time.process_time()
        await asyncio.sleep(0.5)
        assert time.process_time() - cpu < 0.25
        watchdog.halt()

    asyncio.run(main())
