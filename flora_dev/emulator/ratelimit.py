"""Rate-limit headers, injected 429s / error statuses, and optional fixed-window buckets."""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from dataclasses import dataclass, field

DEFAULT_LIMIT = 50


@dataclass
class _Rule:
    method: str | None
    pattern: re.Pattern
    remaining: int = 1

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and bool(self.pattern.search(path))


@dataclass
class _Inject429(_Rule):
    retry_after: float = 0.5
    is_global: bool = False


@dataclass
class _InjectStatus(_Rule):
    status: int = 500


@dataclass
class _Bucket(_Rule):
    limit: int = 5
    per: float = 1.0
    windows: dict = field(default_factory=dict)  # major -> [window_start, used]
    rejected: int = 0


def _method(method: str | None) -> str | None:
    return None if method in (None, "*", "") else method.upper()


def bucket_hash(key: str) -> str:
    return hashlib.md5(key.encode()).hexdigest()[:16]


class RateLimiter:
    """Decides whether a request is rejected (429 / injected status) and which
    ``X-RateLimit-*`` headers the reply carries. Paths are relative to ``/api/v10``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._429: list[_Inject429] = []
        self._status: list[_InjectStatus] = []
        self._buckets: list[_Bucket] = []
        self._hash_cache: dict[str, str] = {}

    def inject_429(
        self, method: str | None, path_regex: str, count: int = 1, retry_after: float = 0.5, is_global: bool = False
    ) -> None:
        with self._lock:
            self._429.append(_Inject429(_method(method), re.compile(path_regex), count, retry_after, is_global))

    def inject_status(self, method: str | None, path_regex: str, status: int, count: int = 1) -> None:
        with self._lock:
            self._status.append(_InjectStatus(_method(method), re.compile(path_regex), count, status))

    def set_bucket(self, method: str | None, path_regex: str, limit: int, per_seconds: float) -> None:
        with self._lock:
            self._buckets.append(_Bucket(_method(method), re.compile(path_regex), 0, int(limit), float(per_seconds)))

    def clear(self) -> None:
        with self._lock:
            self._429.clear()
            self._status.clear()
            self._buckets.clear()

    @property
    def bucket_rejections(self) -> int:
        return sum(b.rejected for b in self._buckets)

    def _take(self, rules: list, method: str, path: str):
        for rule in rules:
            if rule.remaining > 0 and rule.matches(method, path):
                rule.remaining -= 1
                if rule.remaining <= 0:
                    rules.remove(rule)
                return rule
        return None

    def evaluate(self, method: str, path: str, route_key: str, major: str) -> tuple[int | None, dict, dict[str, str]]:
        """Returns ``(status_or_None, body, headers)``; a status means "reject with it"."""
        now = time.time()
        rl_hash = self._hash_cache.get(route_key)
        if rl_hash is None:
            rl_hash = self._hash_cache[route_key] = bucket_hash(route_key)
        if not (self._status or self._429 or self._buckets):
            return None, {}, _headers(DEFAULT_LIMIT, DEFAULT_LIMIT - 1, now, 1.0, rl_hash)
        with self._lock:
            rule = self._take(self._status, method, path)
            if rule is not None:
                body = {"message": f"{rule.status}: Injected error", "code": 0}
                return rule.status, body, _headers(DEFAULT_LIMIT, DEFAULT_LIMIT - 1, now, 1.0, rl_hash)
            rule = self._take(self._429, method, path)
            if rule is not None:
                return 429, *_too_many(rule.retry_after, rule.is_global, DEFAULT_LIMIT, now, rl_hash)
            for bucket in self._buckets:
                if not bucket.matches(method, path):
                    continue
                window = bucket.windows.get(major)
                if window is None or now >= window[0] + bucket.per:
                    window = bucket.windows[major] = [now, 0]
                reset_after = window[0] + bucket.per - now
                b_hash = bucket_hash(f"{bucket.pattern.pattern}:{bucket.method}")
                if window[1] >= bucket.limit:
                    bucket.rejected += 1
                    return 429, *_too_many(reset_after, False, bucket.limit, now, b_hash)
                window[1] += 1
                return None, {}, _headers(bucket.limit, bucket.limit - window[1], now, reset_after, b_hash)
        return None, {}, _headers(DEFAULT_LIMIT, DEFAULT_LIMIT - 1, now, 1.0, rl_hash)


def _headers(limit: int, remaining: int, now: float, reset_after: float, b_hash: str) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(remaining, 0)),
        "X-RateLimit-Reset": f"{now + reset_after:.3f}",
        "X-RateLimit-Reset-After": f"{reset_after:.3f}",
        "X-RateLimit-Bucket": b_hash,
    }


def _too_many(retry_after: float, is_global: bool, limit: int, now: float, b_hash: str) -> tuple[dict, dict[str, str]]:
    headers = _headers(limit, 0, now, retry_after, b_hash)
    headers.update(
        {
            "Retry-After": str(max(1, math.ceil(retry_after))),
            "Via": "1.1 google",
            "X-RateLimit-Scope": "global" if is_global else "user",
        }
    )
    if is_global:
        headers["X-RateLimit-Global"] = "true"
    body = {"message": "You are being rate limited.", "retry_after": round(retry_after, 3), "global": is_global}
    return body, headers
