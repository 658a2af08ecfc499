"""``flora serve`` runs the HTTP API as a child process (``python -m flora_http.serve``) and keeps it up.

The child gets the read end of a pipe whose write end only the supervisor holds
(``lifeline.SUPERVISOR_FD_ENV``): closing it is the orderly stop (the API stops listening, lets its
requests finish for a moment, exits), and it closes by itself when the supervisor dies, however it
dies. The child also asks for ``SIGKILL`` at its parent's death (Linux) and waits for that orderly stop
when a group ``SIGINT``/``SIGTERM`` reaches it (``lifeline.py``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable

from .lifeline import SUPERVISOR_FD_ENV, SUPERVISOR_PID_ENV, signals_held

log = logging.getLogger("flora.runtime")

# an API process that exits this soon after start (a port taken, a bad setting) stops flora
EARLY_EXIT_SECS = 5.0
# after its pipe closes, the API has this long to exit before it is killed (it gives its own requests
# flora_http.serve.STOP_REQUESTS_SECS of that)
STOP_GRACE_SECS = 2.0
EXIT_POLL_SECS = 0.02


class ApiProcess:
    def __init__(self, address: str, port: int, on_fatal: Callable[[str], None]):
        self.address, self.port = address, port
        self.on_fatal = on_fatal
        self.proc: subprocess.Popen | None = None
        self._pipe: int | None = None  # the write end of the child's supervisor pipe
        self._started = 0.0
        self.stopping = False
        self._stop_asked = 0.0

    def start(self) -> None:
        """Start the API process (on the loop's thread: its parent-death signal follows this thread)."""
        read_end, write_end = os.pipe()  # both non-inheritable: no other child gets the write end
        env = dict(os.environ)
        env[SUPERVISOR_PID_ENV] = str(os.getpid())
        env[SUPERVISOR_FD_ENV] = str(read_end)
        try:
            with signals_held():  # until the API's own handlers are in place (lifeline.py)
                self.proc = subprocess.Popen([sys.executable, "-m", "flora_http.serve"], env=env, pass_fds=(read_end,))
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._pipe = write_end
        self._started = time.monotonic()
        log.info("API process started (pid %s) on %s:%s", self.proc.pid, self.address, self.port)

    def _close_pipe(self) -> None:
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            os.close(pipe)

    async def watch(self) -> None:
        """Restart the API process if it dies; if it dies right at start, stop flora (``on_fatal``)."""
        while not self.stopping:
            await asyncio.sleep(0.5)
            proc = self.proc
            if self.stopping or proc is None or proc.poll() is None:
                continue
            self._close_pipe()
            if time.monotonic() - self._started < EARLY_EXIT_SECS:
                self.on_fatal(f"the API process exited with code {proc.returncode} right after start (see above)")
                return
            log.error("the API process exited with code %s; restarting it", proc.returncode)
            self.start()

    def request_stop(self) -> None:
        """The orderly stop: close the child's pipe (it stops listening, finishes its requests, exits);
        from now on the API is not restarted."""
        self.stopping = True
        if self._stop_asked == 0.0:
            self._stop_asked = time.monotonic()
        self._close_pipe()

    async def stop(self, grace: float = STOP_GRACE_SECS) -> None:
        """Stop the API process: the orderly stop, then SIGKILL if it has not exited ``grace`` s after the
        orderly stop was asked for."""
        self.request_stop()
        proc = self.proc
        if proc is None:
            return
        deadline = self._stop_asked + grace
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(EXIT_POLL_SECS)
        if proc.poll() is None:
            log.error("the API process did not stop within %.1f s; killing it", grace)
            proc.kill()
            deadline = time.monotonic() + 1.0
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(EXIT_POLL_SECS)
        self.proc = None
