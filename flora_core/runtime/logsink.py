"""Guild log lines in the supervisor: logged to the operator, kept in a buffer and written to the
database in batches (every 0.25 s), and handed to listeners (``flora dev``'s console).

Retention (``LOG_RETENTION_PER_GUILD``) is applied as each batch is written, so a guild that floods
its log never holds more than its share of rows.

While the database cannot be written (PostgreSQL down, SQLite locked), lines stay buffered, at most
:data:`MAX_BUFFERED` (the oldest go first, counted), and are written when it is back; then one line
says how long the database was away and how many lines were dropped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from flora_core.storage import Database, repo

log = logging.getLogger("flora.runtime")

FLUSH_EVERY_SECS = 0.25
MAX_BUFFERED = 50_000  # lines kept while the database is away (a few MB)
LEVELS = {"error": logging.ERROR, "warn": logging.WARNING}

Listener = Callable[[dict], None]


class GuildLogs:
    def __init__(self, retention: int):
        self.retention = retention
        self._buffer: list[dict] = []
        self._listeners: list[Listener] = []
        self._closing: asyncio.Event | None = None
        self._failing_since: float | None = None
        self._dropped = 0

    def add(self, guild_id: str | None, level: str, target: str, message: str, ts: int | None = None) -> None:
        log.log(LEVELS.get(level, logging.INFO), "[guild %s] %s: %s", guild_id or "-", target, message)
        entry = {
            "guild_id": guild_id,
            "timestamp": ts or int(time.time() * 1000),
            "level": level,
            "target": target,
            "message": message,
        }
        self._buffer.append(entry)
        if len(self._buffer) > MAX_BUFFERED:  # the database is away: the oldest lines go, counted
            excess = len(self._buffer) - MAX_BUFFERED
            del self._buffer[:excess]
            self._dropped += excess
        for listener in list(self._listeners):
            try:
                listener(entry)
            except Exception:  # noqa: BLE001 - a listener must not lose the line for the others
                log.exception("a guild log listener failed")

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(entry)`` for every line from now on; returns the function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def run(self, db: Database) -> None:
        """Write the buffer every 0.25 s until :meth:`close` (then once more) or until cancelled."""
        self._closing = asyncio.Event()
        while not self._closing.is_set():
            try:
                await asyncio.wait_for(self._closing.wait(), FLUSH_EVERY_SECS)
            except TimeoutError:
                pass
            await self.flush(db)

    def close(self) -> None:
        """Make :meth:`run` write what it holds and return (the runtime's stop, before the database closes)."""
        if self._closing is not None:
            self._closing.set()

    async def flush(self, db: Database) -> None:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        try:
            await asyncio.get_running_loop().run_in_executor(None, repo.append_logs, db, batch, self.retention)
        except Exception as exc:  # noqa: BLE001 - kept for the next flush, in order
            self._buffer[:0] = batch
            if len(self._buffer) > MAX_BUFFERED:
                excess = len(self._buffer) - MAX_BUFFERED
                del self._buffer[:excess]
                self._dropped += excess
            if self._failing_since is None:
                self._failing_since = time.monotonic()
                log.error("could not store guild log lines (%s); keeping up to %d until the database is back", exc, MAX_BUFFERED)
            return
        if self._failing_since is not None:
            away = time.monotonic() - self._failing_since
            log.warning(
                "the database is back after %.1f s: %d buffered log line(s) stored, %d dropped", away, len(batch), self._dropped
            )
            self._failing_since, self._dropped = None, 0

    @property
    def backlog(self) -> tuple[int, int]:
        """(lines waiting to be stored, lines dropped since the database went away)."""
        return len(self._buffer), self._dropped
