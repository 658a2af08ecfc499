"""Periodic housekeeping of a process (supervisor or worker) on ``schedule``'s job scheduler.

A job is a plain function or a coroutine function; ``every(seconds, job)`` adds one. One asyncio task
runs the due jobs (``Scheduler.run_pending``) and sleeps until the next (``idle_seconds``). A job that
raises is logged and keeps its place in the schedule; a coroutine job still running when it is due
again is not started twice.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from typing import Any

import schedule

log = logging.getLogger("flora.housekeeping")

MAX_NAP_SECS = 1.0  # jobs added while the loop sleeps run at most this late


class Housekeeping:
    def __init__(self) -> None:
        self.scheduler = schedule.Scheduler()
        self._running: dict[str, asyncio.Task] = {}

    def every(self, seconds: int, job: Callable[[], Any], name: str | None = None) -> schedule.Job:
        name = name or getattr(job, "__name__", "job")
        return self.scheduler.every(seconds).seconds.do(self._run, name, job).tag(name)

    def _run(self, name: str, job: Callable[[], Any]) -> None:
        if name in self._running:
            return  # the previous run is still going
        try:
            result = job()
        except Exception:  # noqa: BLE001 - housekeeping must not stop
            log.exception("housekeeping job %s failed", name)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._running[name] = task
            task.add_done_callback(lambda t: self._done(name, t))

    def _done(self, name: str, task: asyncio.Task) -> None:
        self._running.pop(name, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("housekeeping job %s failed", name, exc_info=task.exception())

    async def run(self) -> None:
        """Run due jobs until cancelled (then cancel the ones still running)."""
        try:
            while True:
                self.scheduler.run_pending()
                idle = self.scheduler.idle_seconds
                await asyncio.sleep(MAX_NAP_SECS if idle is None else max(0.0, min(idle, MAX_NAP_SECS)))
        finally:
            for task in list(self._running.values()):
                task.cancel()
            self.scheduler.clear()
