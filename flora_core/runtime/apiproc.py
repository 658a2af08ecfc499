"""``flora serve`` runs the HTTP API as a child process (``python -m flora_http.serve``) and keeps it up."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable

log = logging.getLogger("flora.runtime")

# an API process that exits this soon after start (a port taken, a bad setting) stops flora
EARLY_EXIT_SECS = 5.0
STOP_GRACE_SECS = 10.0


class ApiProcess:
    def __init__(self, address: str, port: int, on_fatal: Callable[[str], None]):
        self.address, self.port = address, port
        self.on_fatal = on_fatal
        self.proc: subprocess.Popen | None = None
        self._started = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "flora_http.serve"], env=dict(os.environ))
        self._started = time.monotonic()
        log.info("API process started (pid %s) on %s:%s", self.proc.pid, self.address, self.port)

    async def watch(self) -> None:
        """Restart the API process if it dies; if it dies right at start, stop flora (``on_fatal``)."""
        while True:
            await asyncio.sleep(0.5)
            proc = self.proc
            if proc is None or proc.poll() is None:
                continue
            if time.monotonic() - self._started < EARLY_EXIT_SECS:
                self.on_fatal(f"the API process exited with code {proc.returncode} right after start (see above)")
                return
            log.error("the API process exited with code %s; restarting it", proc.returncode)
            self.start()

    async def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, STOP_GRACE_SECS)
        except subprocess.TimeoutExpired:
            log.error("the API process did not stop within %.0f s; killing it", STOP_GRACE_SECS)
            proc.kill()
