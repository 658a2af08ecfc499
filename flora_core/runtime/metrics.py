"""The supervisor's dispatch counters and latency percentiles, reported on the bus's ``status``."""

from __future__ import annotations

import collections

COUNTERS = ("dispatch_total", "dispatch_errors", "timeout_errors", "oom_errors", "isolate_restarts")


class DispatchMetrics:
    def __init__(self, window: int = 1000):
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._latencies: collections.deque[int] = collections.deque(maxlen=window)  # µs, as flora's tracker

    def record(self, reply: dict | None, latency_us: int | None) -> None:
        """One dispatch: its reply (``None`` when the worker died) and how long it took."""
        self.counters["dispatch_total"] += 1
        if latency_us is not None:
            self._latencies.append(latency_us)
        if reply is None or not reply.get("ok"):
            self.counters["dispatch_errors"] += 1
        kind = reply.get("kind") if reply else None
        if kind == "timeout":
            self.counters["timeout_errors"] += 1
        if kind == "oom":
            self.counters["oom_errors"] += 1
        if kind in ("timeout", "oom"):
            self.counters["isolate_restarts"] += 1

    def snapshot(self) -> dict:
        """Counters since start and latency over the last ``window`` dispatches (nearest rank, as flora)."""
        out: dict[str, int] = dict(self.counters)
        samples = sorted(self._latencies)

        def rank(p: float) -> int:
            if not samples:
                return 0
            return samples[max(0, min(len(samples) - 1, int(-(-p * len(samples) // 100)) - 1))]

        out["avg_latency_us"] = int(sum(samples) / len(samples)) if samples else 0
        out["p50_latency_us"], out["p95_latency_us"], out["p99_latency_us"] = rank(50), rank(95), rank(99)
        return out
