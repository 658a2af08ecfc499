"""Discord-style snowflake ids: 42 bits of milliseconds since 2015, then worker, process, counter."""

from __future__ import annotations

import threading
import time

DISCORD_EPOCH_MS = 1420070400000


def snowflake_time_ms(snowflake: int | str) -> int:
    """Unix time in milliseconds encoded in a snowflake."""
    return (int(snowflake) >> 22) + DISCORD_EPOCH_MS


def shard_for(guild_id: int | str, shard_count: int) -> int:
    """The shard that owns a guild: ``(guild_id >> 22) % shard_count``."""
    return (int(guild_id) >> 22) % max(int(shard_count), 1)


class SnowflakeGenerator:
    """Hands out strictly increasing, timestamp-based snowflakes (as strings)."""

    __slots__ = ("_lock", "_last_ms", "_counter", "_worker_bits")

    def __init__(self, worker_id: int = 1, process_id: int = 0) -> None:
        self._lock = threading.Lock()
        self._last_ms = 0
        self._counter = 0
        self._worker_bits = ((worker_id & 0x1F) << 17) | ((process_id & 0x1F) << 12)

    def next_int(self) -> int:
        now = int(time.time() * 1000) - DISCORD_EPOCH_MS
        with self._lock:
            if now > self._last_ms:
                self._last_ms = now
                self._counter = 0
            else:
                self._counter += 1
                if self._counter > 0xFFF:
                    self._last_ms += 1
                    self._counter = 0
            return (self._last_ms << 22) | self._worker_bits | self._counter

    def next(self) -> str:
        return str(self.next_int())

    def next_for_shard(self, shard_id: int, shard_count: int) -> str:
        """A fresh snowflake whose timestamp routes it to ``shard_id`` of ``shard_count``.

        The timestamp may be pushed up to ``shard_count - 1`` ms into the future;
        later ids stay increasing.
        """
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"shard_id {shard_id} out of range for shard_count {shard_count}")
        now = int(time.time() * 1000) - DISCORD_EPOCH_MS
        with self._lock:
            ms = max(now, self._last_ms + 1)
            ms += (shard_id - ms) % shard_count
            self._last_ms = ms
            self._counter = 0
            return str((ms << 22) | self._worker_bits)
