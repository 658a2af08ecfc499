"""The worker pool: spawns worker processes, routes guilds to them, restarts the dead.

Guilds are placed on workers by consistent hashing (uhashring), so adding or
removing a worker moves only its share of guilds.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable

from uhashring import HashRing

from flora_core.errors import RuntimeStartError

from . import protocol
from .lifeline import signals_held, worker_process

log = logging.getLogger("flora.pool")


READY_TIMEOUT_SECS = 60
DEATH_REAP_SECS = 5.0  # how long a worker whose socket closed may take to exit before its status is read
EXIT_POLL_SECS = 0.02
KILL_REAP_SECS = 0.5  # a killed worker is gone within this (SIGKILL cannot be caught)


async def wait_exit(process: multiprocessing.process.BaseProcess, timeout: float) -> int | None:
    """The process's exit code once it has exited, or ``None`` after ``timeout`` s; never blocks the loop
    (a blocking ``join`` in an executor thread would also hold up the interpreter's exit)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while process.exitcode is None and loop.time() < deadline:
        await asyncio.sleep(EXIT_POLL_SECS)
    return process.exitcode


class WorkerDied(Exception):
    """The worker process exited while a request was in flight."""

    def __init__(self, message: str, exitcode: int | None):
        super().__init__(message)
        self.exitcode = exitcode


def describe_exit(code: int | None) -> str:
    if code is None:
        return "exited"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (V8 fatal error, usually out of memory)" if name == "SIGTRAP" else ""
        return f"was killed by {name}{hint}"
    if code == 70:
        return "exceeded RUNTIME_WORKER_MAX_RSS_MB and stopped"
    return f"exited with code {code}"


class WorkerHandle:
    def __init__(self, worker_id: int):
        self.worker_id = worker_id
        self.name = f"worker-{worker_id}"
        self.process: multiprocessing.process.BaseProcess | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.ready = asyncio.Event()
        self.pending: dict[int, tuple[asyncio.Future, dict]] = {}
        self.restarts = 0
        self.recycle: dict | None = None  # set when the worker asked to be replaced ({"guild", "reason"})

    @property
    def alive(self) -> bool:
        return self.writer is not None and not self.writer.is_closing()


class WorkerPool:
    def __init__(
        self,
        config,
        socket_path: str,
        on_message: Callable[[WorkerHandle, dict], None],
        on_death: Callable[[WorkerHandle, int | None, list[dict]], Awaitable[None]],
    ):
        self.config = config
        self.socket_path = socket_path
        self.on_message = on_message
        self.on_death = on_death
        self.workers = [WorkerHandle(i) for i in range(config.max_workers)]
        self.ring = HashRing(nodes=[w.name for w in self.workers], hash_fn="ketama")
        self._by_name = {w.name: w for w in self.workers}
        self._ids = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None
        self._ctx = multiprocessing.get_context("spawn")
        self.stopping = False

    def worker_for(self, guild_id: str) -> WorkerHandle:
        return self._by_name[self.ring.get_node(str(guild_id))]

    async def start(self) -> None:
        os.makedirs(os.path.dirname(self.socket_path), exist_ok=True)
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        self._server = await asyncio.start_unix_server(self._accept, self.socket_path, limit=protocol.STREAM_LIMIT)
        os.chmod(self.socket_path, 0o600)
        for w in self.workers:
            self._spawn(w)
        await self._wait_ready(READY_TIMEOUT_SECS)

    async def _wait_ready(self, timeout: float) -> None:
        """Every worker said hello; a worker that exits first, or never connects, is one clear error."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not all(w.ready.is_set() for w in self.workers):
            for w in self.workers:
                if not w.ready.is_set() and w.process is not None and w.process.exitcode is not None:
                    raise RuntimeStartError(
                        f"{w.name} {describe_exit(w.process.exitcode)} before it was ready (its error is logged above)"
                    )
            if loop.time() > deadline:
                late = ", ".join(w.name for w in self.workers if not w.ready.is_set())
                raise RuntimeStartError(f"{late} did not connect to the supervisor within {timeout:.0f} s")
            await asyncio.sleep(0.05)

    def _spawn(self, w: WorkerHandle) -> None:
        # called on the loop's thread only: a worker's parent-death signal fires when the thread that
        # started it exits (lifeline.py)
        w.ready.clear()
        w.process = self._ctx.Process(
            target=worker_process,
            args=(self.config.to_dict(), w.worker_id, self.socket_path, os.getpid()),
            name=f"flora-{w.name}",
            daemon=True,
        )
        with signals_held():  # until the worker's own handlers are in place (lifeline.py)
            w.process.start()
        log.info("started %s (pid %s)", w.name, w.process.pid)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hello = await protocol.receive(reader)
        if not hello or hello.get("t") != "hello":
            writer.close()
            return
        w = self.workers[int(hello["worker"])]
        w.writer = writer
        w.ready.set()
        try:
            while True:
                try:
                    msg = await protocol.receive(reader)
                except (ConnectionError, ValueError):
                    msg = None
                if msg is None:
                    break
                if msg.get("t") == "reply":
                    entry = w.pending.pop(msg["id"], None)
                    if entry is not None and not entry[0].done():
                        entry[0].set_result(msg)
                else:
                    self.on_message(w, msg)
        except asyncio.CancelledError:
            return  # shutting down: the loop is cancelling connection handlers
        finally:
            w.writer = None
            writer.close()
        if not self.stopping:
            try:
                await self._handle_death(w)
            except asyncio.CancelledError:
                return

    async def _handle_death(self, w: WorkerHandle) -> None:
        exitcode = None
        if w.process is not None:
            exitcode = await wait_exit(w.process, DEATH_REAP_SECS)
        inflight = [req for _, req in w.pending.values()]
        err = WorkerDied(f"{w.name} {describe_exit(exitcode)}", exitcode)
        for fut, _ in w.pending.values():
            if not fut.done():
                fut.set_exception(err)
        w.pending.clear()
        if self.stopping:  # flora is stopping: a worker that exits now is not replaced
            return
        log.error("%s %s; restarting it", w.name, describe_exit(exitcode))
        w.restarts += 1
        self._spawn(w)
        try:
            await asyncio.wait_for(w.ready.wait(), READY_TIMEOUT_SECS)
        except TimeoutError:
            log.error("%s did not come back within %d s", w.name, READY_TIMEOUT_SECS)
            return
        if not self.stopping:
            await self.on_death(w, exitcode, inflight)

    def replace(self, w: WorkerHandle, why: dict) -> None:
        """The worker asked to be replaced (an isolate it could not stop keeps a core busy): kill it; its
        death is handled as any other, so a fresh worker takes over its guilds."""
        if w.recycle is not None or w.process is None:
            return
        w.recycle = why
        log.error("%s (pid %s) is being replaced: %s", w.name, w.process.pid, why.get("reason"))
        w.process.kill()

    async def request(self, w: WorkerHandle, message: dict, timeout: float | None = None) -> dict:
        if not w.alive:
            if self.stopping:
                raise WorkerDied(f"{w.name} is not connected and flora is stopping", None)
            await asyncio.wait_for(w.ready.wait(), 30)
        req_id = next(self._ids)
        message = dict(message, id=req_id)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        summary = {k: v for k, v in message.items() if k != "bundle" and k != "payload"}
        summary["sent"] = loop.time()  # when the stop drains requests in flight, their deadline counts from here
        w.pending[req_id] = (fut, summary)
        if w.writer is None:
            w.pending.pop(req_id, None)
            raise WorkerDied(f"{w.name} is not connected", None)
        protocol.send_nowait(w.writer, message)
        if timeout:
            return await asyncio.wait_for(fut, timeout)
        return await fut

    def inflight(self, w: WorkerHandle) -> int:
        return len(w.pending)

    def in_flight(self) -> list[tuple[asyncio.Future, dict]]:
        """Every request sent to a worker and not answered yet, with what it was (no bundle, no payload)."""
        return [entry for w in self.workers for entry in w.pending.values()]

    async def stop(self, grace: float = 1.0) -> None:
        """Ask every worker to stop (``{"t": "shutdown"}``: it closes its isolates and exits), wait up to
        ``grace`` s for all of them together, then SIGKILL the rest. Requests still unanswered fail with
        :class:`WorkerDied`. No worker is restarted from the moment this is called (``stopping``)."""
        self.stopping = True
        for w in self.workers:
            if w.alive and w.writer is not None:
                try:
                    protocol.send_nowait(w.writer, {"t": "shutdown"})
                except (ConnectionError, RuntimeError):
                    pass
            elif w.process is not None and w.process.exitcode is None and w.process.pid is not None:
                # still starting (a replacement, say): nothing is loaded there yet, nothing to finish
                log.info("%s (pid %s) was still starting; killing it", w.name, w.process.pid)
                w.process.kill()
        procs = [w.process for w in self.workers if w.process is not None and w.process.pid is not None]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        for proc in procs:
            await wait_exit(proc, max(0.0, deadline - loop.time()))
        late = [proc for proc in procs if proc.exitcode is None]
        for proc in late:
            log.warning("%s (pid %s) did not stop within %.1f s of being asked; killing it", proc.name, proc.pid, grace)
            proc.kill()
        deadline = loop.time() + KILL_REAP_SECS
        for proc in late:
            await wait_exit(proc, max(0.0, deadline - loop.time()))
        err = WorkerDied("flora is stopping", None)
        for w in self.workers:
            for fut, _ in w.pending.values():
                if not fut.done():
                    fut.set_exception(err)
            w.pending.clear()
        if self._server is not None:
            self._server.close()
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
