"""KV failures as values with a code (for scripts) and an HTTP status (for the API).

Messages are flora's where flora had one (``store not found``,
``key cannot be empty``, ``kv write rate limit exceeded; retry later`` …);
flora threw them without a code, so the codes below are ours.
"""

from __future__ import annotations

INVALID_INPUT = "INVALID_INPUT"  # 400: a key, value, name, option or size limit was violated
KV_NOT_FOUND = "KV_NOT_FOUND"  # 404: store not found / key not found
KV_STORE_EXISTS = "KV_STORE_EXISTS"  # 409: creating a store that exists
KV_QUOTA_EXCEEDED = "KV_QUOTA_EXCEEDED"  # 413: per-store or per-guild storage quota
KV_RATE_LIMITED = "KV_RATE_LIMITED"  # 429: too many writes to one store
KV_NOT_AN_INTEGER = "KV_NOT_AN_INTEGER"  # 409: incr on a value that is not an integer, or out of range
KV_UNAVAILABLE = "KV_UNAVAILABLE"  # 503: backend unknown, misconfigured or unreachable

STATUS = {
    INVALID_INPUT: 400,
    KV_NOT_FOUND: 404,
    KV_STORE_EXISTS: 409,
    KV_QUOTA_EXCEEDED: 413,
    KV_RATE_LIMITED: 429,
    KV_NOT_AN_INTEGER: 409,
    KV_UNAVAILABLE: 503,
}


class KvError(Exception):
    """A KV operation failed for a reason the caller can act on."""

    def __init__(self, code: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return STATUS.get(self.code, 500)


def invalid(message: str) -> KvError:
    return KvError(INVALID_INPUT, message)


def unavailable(message: str) -> KvError:
    return KvError(KV_UNAVAILABLE, message)
