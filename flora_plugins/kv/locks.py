"""A lock every process on the machine sees, for backends that keep a guild's stores in several files.

:func:`file_lock` is ``flock`` on a file of its own descriptor: it excludes the other processes *and*
the other threads of this one (each call opens the file again), the kernel lets go of it when its
process dies (a SIGKILLed worker holds nothing), and it is taken by polling, so a gevent-patched
process (the API) waits cooperatively. A child made by ``fork()`` closes the descriptors it
inherited from calls in flight in its parent, so it never keeps the parent's lock alive after the
parent let go. The sqlite backend and the example LMDB backend take one per guild for their quota
writes (``<data>/<guild>/.quota.lock``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from .errors import unavailable

_held: set[int] = set()  # descriptors of this process's locks in flight
_held_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _held_lock
    _held_lock = threading.Lock()  # held by the forking thread (before_fork): the child's own, free
    for fd in list(_held):
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


# a fork waits while a descriptor is being opened and recorded, so the child knows every one it inherits
os.register_at_fork(
    before=lambda: _held_lock.acquire(), after_in_parent=lambda: _held_lock.release(), after_in_child=_after_fork_in_child
)


@contextlib.contextmanager
def file_lock(path: Path, *, timeout: float = 30.0, what: str = "lock") -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, mode 0600) for the ``with`` block; ``KV_UNAVAILABLE``
    starting with ``what`` if the file cannot be opened or the lock is not free within ``timeout`` seconds."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _held_lock:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            _held.add(fd)
    except OSError as exc:
        raise unavailable(f"{what}: cannot open {path}: {exc.strerror or exc}") from None
    try:
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise unavailable(f"{what}: {path} was not free for {timeout:g}s") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.01)
        yield
    finally:
        with _held_lock:
            _held.discard(fd)
        os.close(fd)  # lets go of the lock
