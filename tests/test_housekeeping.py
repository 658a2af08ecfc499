"""Housekeeping jobs (``flora_core/runtime/housekeeping.py``, on ``schedule``) and the ones the runtime
registers: the bundle cache is trimmed by last use."""

from __future__ import annotations

import asyncio
import os
import time

from flora_core.bundler import BUNDLER_VERSION, Bundler
from flora_core.runtime.housekeeping import Housekeeping


def test_jobs_run_on_their_schedule_survive_errors_and_never_overlap():
    runs: list[str] = []

    async def main() -> None:
        hk = Housekeeping()
        slow_started = asyncio.Event()
        release = asyncio.Event()

        def flaky() -> None:
            runs.append("flaky")
            raise ValueError("boom")

        async def slow() -> None:
            runs.append("slow")
            slow_started.set()
            await release.wait()

        hk.every(1, flaky)
        hk.every(1, slow)
        task = asyncio.create_task(hk.run())
        deadline = time.monotonic() + 30
        while runs.count("flaky") < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert runs.count("flaky") >= 3  # raised every time, and still ran again
        assert slow_started.is_set() and runs.count("slow") == 1  # due again every second, but still running
        release.set()
        while runs.count("slow") < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert runs.count("slow") == 2
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not hk.scheduler.jobs

    asyncio.run(main())


def test_the_bundle_cache_is_trimmed_by_last_use(tmp_path):
    bundler = Bundler(tmp_path / "bundles")
    files = [{"path": "src/main.ts", "contents": "console.log('kept');\n"}]
    bundler.bundle("src/main.ts", files)
    cache = tmp_path / "bundles" / f"v{BUNDLER_VERSION}"
    (kept,) = cache.iterdir()
    stale = cache / ("0" * 64 + ".js")
    stale.write_text("old", encoding="utf-8")
    month_ago = time.time() - 31 * 86400
    for path in (kept, stale):
        os.utime(path, (month_ago, month_ago))
    bundler.bundle("src/main.ts", files)  # a cache hit counts as a use
    assert bundler.trim_cache(30 * 86400) == 1
    assert sorted(cache.iterdir()) == [kept]
