"""The one interface every KV storage backend implements.

A backend stores entries of ``(guild_id, store, key)``: every method takes the
guild id first, so a caller holding one guild's id has no way to name another
guild's data. Backends do no validation or rate limiting (the service does,
once, for all of them); they must make each method atomic, ``incr`` and
``cas`` included, across threads *and* processes.

Quotas. A backend that sets ``atomic_quotas = True`` takes a keyword
``quota`` (a :class:`Quota`, or None for no check) on the four writes that can
grow a store, ``set``, ``cas``, ``incr`` and ``update_metadata``, and refuses
a write that would leave the store above ``quota.store_bytes``, or the store
and ``quota.other_stores`` together above ``quota.guild_bytes``, with
:func:`check_quota`'s errors, *inside* the write: the sizes it compares are
read in the same atomic step as the write, so two processes (on any number of
machines) writing at once cannot both pass. flora's three backends do (the
SQLite one under a per-guild file lock, PostgreSQL under a per-guild advisory
lock, Redis in one Lua script). A backend that leaves ``atomic_quotas`` False
is called without ``quota``; the service checks quotas itself just before the
write, which is exact among the threads of one process but not across
processes: writers in other processes (another worker, the API, the CLI,
another node) may each pass the check at once and together overshoot a quota
by up to the writes in flight. Expired entries are purged by the service
before a quota write, so they never count.

Values and keys are ``str``; byte order means the order of their UTF-8
encodings. Metadata crosses the interface as JSON text going in and as the
decoded value coming out. ``now`` is unix seconds; an entry whose expiration
is ``<= now`` does not exist, and a backend deletes it when it meets it
(only if it is still expired, so a concurrent ``set`` is never undone).

A backend module registers a factory through the kv plugin's hook (``kv/hookspecs.py``)::

    @hookimpl(optionalhook=True)    # optional: the backend idles while the kv plugin is disabled
    def flora_register_kv_backends(register):
        register("name", factory)   # factory(config) -> KvBackend
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import KV_NOT_AN_INTEGER, KV_QUOTA_EXCEEDED, KvError
from .limits import MAX_SAFE_INTEGER

COUNTER = re.compile(r"^[+-]?[0-9]+$")


@dataclass(frozen=True)
class Quota:
    """What a write may leave behind (flora's limits by default, ``limits.Limits``)."""

    store_bytes: int  # the most the written store may count after the write
    guild_bytes: int  # the most the written store and ``other_stores`` may count together
    other_stores: tuple[str, ...] = ()  # the guild's other stores


STORE_QUOTA_EXCEEDED = "kv store storage quota exceeded"  # flora's messages
GUILD_QUOTA_EXCEEDED = "kv guild storage quota exceeded"


def check_quota(quota: Quota, store_now: int, old_entry: int, new_entry: int, other_stores: int) -> None:
    """flora's rule for a write that replaces an entry of ``old_entry`` bytes (0: none) by one of ``new_entry``
    in a store counting ``store_now`` bytes, the guild's other stores counting ``other_stores``: raise
    ``KV_QUOTA_EXCEEDED`` (store first, then guild) if the result is above a quota; equal is fine."""
    projected = store_now - old_entry + new_entry
    if projected > quota.store_bytes:
        raise KvError(KV_QUOTA_EXCEEDED, STORE_QUOTA_EXCEEDED)
    if projected + other_stores > quota.guild_bytes:
        raise KvError(KV_QUOTA_EXCEEDED, GUILD_QUOTA_EXCEEDED)


@dataclass(frozen=True)
class Entry:
    key: str
    value: str | None  # None where the caller did not ask for values (list)
    expiration: int | None = None
    metadata: Any = None  # decoded JSON; None = no metadata


class KvBackend(ABC):
    """Storage of one process; thread-safe; one instance serves every guild."""

    name: str = "?"
    # True: set, cas, incr and update_metadata take ``quota=`` and check it inside the write (see the module)
    atomic_quotas: bool = False

    @abstractmethod
    def get(self, guild_id: str, store: str, key: str, now: int) -> Entry | None:
        """The live entry (value, expiration, metadata) or None; purges it if expired."""

    @abstractmethod
    def set(self, guild_id: str, store: str, key: str, value: str, expiration: int | None, metadata_json: str | None) -> None:
        """Create or replace the entry; its metadata and expiration are replaced too. Durable when it returns.
        With ``atomic_quotas``: also a keyword ``quota``, checked with the entry's new size inside the write."""

    @abstractmethod
    def update_metadata(self, guild_id: str, store: str, key: str, metadata_json: str | None, now: int) -> bool:
        """Replace only the metadata of a live entry (expiration kept); False if there is none (no quota
        error then). With ``atomic_quotas``: also ``quota``, checked with the entry's size after the update."""

    @abstractmethod
    def delete(self, guild_id: str, store: str, key: str) -> None:
        """Remove the entry if present."""

    @abstractmethod
    def list(
        self, guild_id: str, store: str, *, after: str | None, start: str | None, end: str | None, count: int, now: int
    ) -> list[Entry]:
        """Up to ``count`` live entries in byte order, values left None: keys ``> after`` if given, else
        ``>= start`` if given, else from the first; only keys ``< end`` if given. Expired entries met on
        the way are skipped (and purged), so fewer than ``count`` means there are no more."""

    @abstractmethod
    def incr(self, guild_id: str, store: str, key: str, by: int, now: int) -> int:
        """Atomically add ``by`` to an integer value (missing = 0), store it as a decimal string, return it.
        Expiration and metadata of a live entry are kept. See :func:`next_counter` for the errors. With
        ``atomic_quotas``: also ``quota``, checked with the exact size of the new value."""

    @abstractmethod
    def cas(
        self,
        guild_id: str,
        store: str,
        key: str,
        expected: str | None,
        value: str,
        expiration: int | None,
        metadata_json: str | None,
        now: int,
    ) -> bool:
        """Atomically ``set`` if the live value equals ``expected`` (None: no live entry); True if it was set.
        With ``atomic_quotas``: also ``quota``, checked only when the values match (a mismatch is False)."""

    @abstractmethod
    def entry_bytes(self, guild_id: str, store: str, key: str) -> int:
        """Bytes the entry counts for quotas now (0 if absent); see ``limits.entry_size``."""

    @abstractmethod
    def store_bytes(self, guild_id: str, store: str) -> int:
        """Bytes the store counts for quotas (sum of its entries, expired ones until they are purged)."""

    @abstractmethod
    def purge_expired(self, guild_id: str, store: str, now: int) -> int:
        """Delete every expired entry of the store; returns how many."""

    @abstractmethod
    def drop_store(self, guild_id: str, store: str) -> None:
        """Destroy every entry of the store."""

    def close(self) -> None:  # noqa: B027 - optional: a backend without resources has nothing to release
        """Release connections and files."""


def is_expired(expiration: int | None, now: int) -> bool:
    return expiration is not None and expiration <= now


def next_counter(current: str | None, by: int) -> int:
    """The value ``incr`` stores: ``current + by`` where ``current`` must be a decimal integer (None = 0)."""
    if current is None:
        base = 0
    else:
        if not COUNTER.match(current):
            raise KvError(KV_NOT_AN_INTEGER, "value is not an integer")
        base = int(current)
        if abs(base) > MAX_SAFE_INTEGER:
            raise KvError(KV_NOT_AN_INTEGER, "incr result out of range")
    result = base + by
    if abs(result) > MAX_SAFE_INTEGER:
        raise KvError(KV_NOT_AN_INTEGER, "incr result out of range")
    return result


# (key, expiration, metadata JSON text) rows with keys above ``lower`` = (">" or ">=", key) and below ``end``
FetchRange = Callable[[tuple[str, str] | None, str | None, int], Sequence[tuple[str, int | None, str | None]]]


def scan_live(
    fetch: FetchRange,
    *,
    after: str | None,
    start: str | None,
    end: str | None,
    count: int,
    now: int,
    decode: Callable[[str], Any] = json.loads,
) -> tuple[list[Entry], list[str]]:
    """The ``list`` loop for backends with range reads: (live entries, expired keys met) in byte order.
    ``decode`` turns the third column into the metadata."""
    lower = (">", after) if after is not None else (">=", start) if start is not None else None
    live: list[Entry] = []
    expired: list[str] = []
    while len(live) < count:
        want = count - len(live)
        rows = fetch(lower, end, want)
        for key, expiration, metadata in rows:
            if is_expired(expiration, now):
                expired.append(key)
            else:
                live.append(Entry(key, None, expiration, None if metadata is None else decode(metadata)))
        if len(rows) < want:
            break
        lower = (">", rows[-1][0])
    return live, expired
