"""flora's KV limits (reference §4.3), input validation and the write rate limit (counted by ``rate.py``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import KV_RATE_LIMITED, KvError, invalid
from .rate import RateCounter

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 1024 * 1024
MAX_ENTRY_BYTES = 2 * 1024 * 1024
MAX_STORE_NAME_BYTES = 64
MAX_GUILD_ID_BYTES = 64
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
MAX_SAFE_INTEGER = 2**53 - 1  # what a script can hold in a number without losing digits


@dataclass(frozen=True)
class Limits:
    """The limits that vary per deployment (and in tests); flora's values by default."""

    store_bytes: int = 100 * 1024 * 1024
    guild_bytes: int = 500 * 1024 * 1024
    writes_per_window: int = 120
    window_secs: float = 60.0


# -- validation (flora's messages) ------------------------------------------------
def well_formed(text: str) -> str:
    """Lone UTF-16 surrogates (possible in JSON from V8) become U+FFFD, as flora's serde_v8 did."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def validate_key(key: str) -> None:
    if key == "":
        raise invalid("key cannot be empty")
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise invalid(f"key exceeds maximum size of {MAX_KEY_BYTES} characters")
    if "\0" in key:
        raise invalid("key contains null character")


def validate_prefix(prefix: str) -> None:
    if "\0" in prefix:
        raise invalid("prefix contains null character")


def _validate_name(field: str, value: str, max_bytes: int) -> None:
    if value == "":
        raise invalid(f"{field} cannot be empty")
    if len(value.encode("utf-8")) > max_bytes:
        raise invalid(f"{field} exceeds maximum size of {max_bytes} characters")
    # flora forbade '/' and '.'; NUL is refused too because names become file names
    if any(c in value for c in "/.\0"):
        raise invalid(f"{field} contains invalid characters")


def validate_store_name(store_name: str) -> None:
    _validate_name("store_name", store_name, MAX_STORE_NAME_BYTES)


def validate_guild_id(guild_id: str) -> None:
    _validate_name("guild_id", guild_id, MAX_GUILD_ID_BYTES)
    if not guild_id.isascii() or not guild_id.isdigit():  # a snowflake: storage keys rely on it having no separators
        raise invalid("guild_id contains invalid characters")


def validate_value(value: str) -> None:
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        raise invalid("value exceeds maximum size of 1MB")


def list_limit(limit: int | None) -> int:
    return DEFAULT_LIST_LIMIT if limit is None else min(limit, MAX_LIST_LIMIT)


# -- option parsing shared by ops, routes and the CLI -------------------------------
def parse_expiration(raw: Any) -> int | None:
    """Unix seconds or None; a fractional number is truncated (scripts often pass Date.now() / 1000)."""
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (isinstance(raw, float) and not math.isfinite(raw)):
        raise invalid("Invalid input for expiration: expected unix seconds (a number) or null")
    value = math.trunc(raw)
    if abs(value) > MAX_SAFE_INTEGER:
        raise invalid("Invalid input for expiration: out of range")
    return int(value)


def parse_integer(field: str, raw: Any) -> int:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (isinstance(raw, float) and not raw.is_integer()):
        raise invalid(f"Invalid input for {field}: expected an integer")
    value = int(raw)
    if abs(value) > MAX_SAFE_INTEGER:
        raise invalid(f"Invalid input for {field}: out of range")
    return value


# -- entry sizes (flora counted key+value, plus key+metadata record when there is one) ---
def meta_record(expiration: int | None, metadata_json: str | None) -> str | None:
    """flora's metadata record ``{"expiration":…,"metadata":…}``, or None when there is neither."""
    if expiration is None and metadata_json is None:
        return None
    exp = "null" if expiration is None else str(expiration)
    return '{"expiration":' + exp + ',"metadata":' + (metadata_json or "null") + "}"


def meta_size(key: str, expiration: int | None, metadata_json: str | None) -> int:
    record = meta_record(expiration, metadata_json)
    return 0 if record is None else len(key.encode("utf-8")) + len(record.encode("utf-8"))


def entry_size(key: str, value: str, expiration: int | None, metadata_json: str | None) -> int:
    return len(key.encode("utf-8")) + len(value.encode("utf-8")) + meta_size(key, expiration, metadata_json)


# -- write rate ---------------------------------------------------------------------
class WriteRateLimiter:
    """At most ``max_writes`` writes per rolling ``window`` seconds per (guild, store), as flora; counted by
    ``counter`` (``rate.py``), which every process shares unless it is a ``MemoryCounter``."""

    def __init__(self, max_writes: int, window: float, counter: RateCounter):
        self.max_writes = max_writes
        self.window = window
        self.counter = counter

    def hit(self, guild_id: str, store: str) -> None:
        retry = self.counter.take([f"write:{guild_id}:{store}"], self.max_writes, self.window)
        if retry is not None:
            raise KvError(KV_RATE_LIMITED, "kv write rate limit exceeded; retry later", retry_after=retry)
