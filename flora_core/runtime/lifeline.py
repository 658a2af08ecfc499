"""The supervisor's children (workers, the API process) die with it and stop in the order it sets.

Four things, each done by the child itself right at its start:

* **Parent death.** On Linux the child asks the kernel for ``SIGKILL`` when its parent goes away
  (``prctl(PR_SET_PDEATHSIG)``), then checks that the parent is still the one that started it: if
  the supervisor died in between, the child exits at once. The kernel's signal fires when the
  *thread* that started the child exits, so the supervisor starts its children from its event loop's
  thread, never from an executor thread.
* **A fallback watch.** Where ``prctl`` is not there (or fails), the child waits on a file descriptor
  whose other end only the parent holds and ends when it closes: the parent is gone, however it died
  (a worker: a daemon thread on multiprocessing's parent sentinel, ``exit_when_closed``; the API: a
  greenlet on its supervisor pipe, ``flora_http/serve.py``).
* **No window at start.** The supervisor starts each child with ``SIGINT`` and ``SIGTERM`` blocked
  (``signals_held``; the mask is inherited across ``fork`` and ``exec``), and the child unblocks them
  (``release_signals``) once its handlers are in place: a group signal sent while a child is starting
  waits for those handlers instead of killing the child with the default action.
* **Group signals.** ``SIGINT`` (Ctrl-C) and ``SIGTERM`` sent to the whole process group (what a
  terminal and systemd do) reach the children as well as the supervisor. A child must not die half-way
  through then: the supervisor stops it in order (its in-flight work first). So a child that gets one of
  them waits for the supervisor's orderly stop, and only if none comes within
  ``CHILD_STOP_GRACE_SECS`` (much longer than the supervisor's whole stop) it says so and exits; a
  ``SIGTERM`` sent to a child alone therefore still ends it.

This module imports nothing heavy: it is the entry point of a worker process, which sets all this up
before it imports V8.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# a child that got SIGINT/SIGTERM exits on its own after this long without an orderly stop (the
# supervisor's stop takes 4 s at most: supervisor.STOP_BUDGET_SECS); its exit status is then 128 + the
# signal, the shell's convention
CHILD_STOP_GRACE_SECS = 10.0
PARENT_GONE_EXIT = 1  # exit status of a child whose parent is gone

# how the supervisor tells the API process who its parent is and which pipe it holds
SUPERVISOR_PID_ENV = "FLORA_SUPERVISOR_PID"
SUPERVISOR_FD_ENV = "FLORA_SUPERVISOR_FD"


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def signals_held() -> Iterator[None]:
    """Block ``SIGINT`` and ``SIGTERM`` in this thread while a child is started in the block (the child
    inherits the mask); a signal that arrives meanwhile is delivered when the block ends."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def release_signals() -> None:
    """In a child, once its handlers are installed: deliver ``SIGINT``/``SIGTERM`` (held since its start)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def die_with_parent(parent_pid: int) -> bool:
    """Ask for ``SIGKILL`` when the parent dies (Linux); exit now if ``parent_pid`` is no longer our
    parent (it died before the request took effect). Returns whether the kernel took the request."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:
        os._exit(PARENT_GONE_EXIT)  # the parent is gone already: nobody would ever stop us
    return armed


def exit_when_closed(fd: int, what: str) -> threading.Thread:
    """Fallback watch: a daemon thread that ends the process when ``fd`` becomes readable and reads
    end-of-file (its other end, held only by the parent, was closed: the parent is gone). Data on the
    pipe is ignored."""

    def watch() -> None:
        while True:
            try:
                select.select([fd], [], [])
                if os.read(fd, 4096):
                    continue
            except InterruptedError:
                continue
            except OSError:
                pass  # a closed or broken descriptor means the same: the parent is gone
            break
        print(f"{what}: the supervisor is gone; exiting", file=sys.stderr, flush=True)
        os._exit(PARENT_GONE_EXIT)

    thread = threading.Thread(target=watch, name="flora-parent-watch", daemon=True)
    thread.start()
    return thread


def wait_for_orderly_stop(what: str, grace: float = CHILD_STOP_GRACE_SECS, exit_now: Callable[[int], None] | None = None) -> None:
    """Make ``SIGINT`` and ``SIGTERM`` wait for the supervisor's orderly stop: the first one arms a
    timer; if the process is still running ``grace`` seconds later it exits with 128 + the signal
    (``exit_now(code)`` when given, else ``os._exit``). Must be called from the main thread."""
    armed: list[threading.Timer] = []

    def expire(signum: int) -> None:
        print(
            f"{what}: got {signal.Signals(signum).name} and no orderly stop from the supervisor within {grace:g} s; exiting",
            file=sys.stderr,
            flush=True,
        )
        (exit_now or os._exit)(128 + signum)

    def on_signal(signum, frame) -> None:
        if armed:
            return
        timer = threading.Timer(grace, expire, (signum,))
        timer.daemon = True
        armed.append(timer)
        timer.start()

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)


def worker_process(config_values: dict, worker_id: int, socket_path: str, parent_pid: int) -> None:
    """Entry point of a worker process (multiprocessing ``spawn`` target): the lifeline first, then V8."""
    import multiprocessing

    name = f"worker-{worker_id}"
    die_with_parent(parent_pid)
    parent = multiprocessing.parent_process()
    if parent is not None and parent.sentinel is not None:
        exit_when_closed(parent.sentinel, name)
    wait_for_orderly_stop(name)
    release_signals()
    from .worker import worker_main

    worker_main(config_values, worker_id, socket_path)
