"""``GET /api/metrics`` (Prometheus text) and ``/api/metrics/json`` (flora's MetricsSnapshot), operator only.

The runtime (supervisor) process owns the live numbers; this API process is
separate, so each scrape reads what it can honestly derive:

* the runtime bus's ``status`` (every node's, on the Redis bus): worker processes and their
  restart counts, loaded guilds (``isolate_count``), suspended guilds;
* ``flora:runtime`` lines of ``guild_logs`` written by the workers
  (``dispatch failed: …``, ``… dispatch deadline; isolate restarted``,
  ``isolate restarted after …``) — lower bounds, since the table keeps the
  newest :data:`repo.LOG_RETENTION_PER_GUILD` entries per guild;
* ``deployment_revisions`` counts by status.

Fields the runtime does not expose yet (``dispatch_total``, latencies,
migrations) are ``null`` in the JSON and absent from the Prometheus text:
never invented.
"""

from __future__ import annotations

import hmac

from flask import Response, jsonify, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from flora_core.bus import RuntimeUnavailable
from flora_core.storage import repo

from . import errors

PROMETHEUS_CONTENT_TYPE = "text/plain; charset=utf-8"  # flora's

SNAPSHOT_FIELDS = (
    "isolate_count",
    "dispatch_total",
    "dispatch_errors",
    "timeout_errors",
    "oom_errors",
    "isolate_restarts",
    "runtime_restarts",
    "migration_success",
    "migration_timeout",
    "migration_quiesce_duration_us",
    "avg_latency_us",
    "p50_latency_us",
    "p95_latency_us",
    "p99_latency_us",
)

# SQL LIKE patterns over flora:runtime log messages (flora_core/runtime/worker.py)
LOG_PATTERNS = {
    "dispatch_errors": "dispatch failed: %",
    "timeout_errors": "dispatch failed: % dispatch deadline; isolate restarted",
    "restarting_errors": "dispatch failed: %; isolate restarted",  # timeouts + out-of-memory
    "isolate_restarts": "isolate restarted after %",
}

# (snapshot field, Prometheus name, kind, help)
PROMETHEUS = (
    ("isolate_count", "flora_isolate_count", "gauge", "Guild scripts loaded in the runtime"),
    ("dispatch_total", "flora_dispatch", "counter", "Event and cron dispatches (successes + errors)"),
    ("dispatch_errors", "flora_dispatch_errors", "counter", "Dispatches that failed"),
    ("timeout_errors", "flora_timeout_errors", "counter", "Dispatches that overran their deadline"),
    ("oom_errors", "flora_oom_errors", "counter", "Dispatches that ran out of isolate memory"),
    ("isolate_restarts", "flora_isolate_restarts", "counter", "Isolates rebuilt after a timeout or out-of-memory"),
    ("runtime_restarts", "flora_runtime_restarts", "counter", "Worker processes spawned"),
    ("migration_success", "flora_migration_success", "counter", "Guild migrations between workers that succeeded"),
    ("migration_timeout", "flora_migration_timeout", "counter", "Guild migrations that timed out"),
    ("migration_quiesce_duration_us", "flora_migration_quiesce_duration_us", "gauge", "Last migration quiesce time"),
    ("avg_latency_us", "flora_dispatch_latency_avg_us", "gauge", "Mean dispatch latency"),
    ("p50_latency_us", "flora_dispatch_latency_p50_us", "gauge", "Median dispatch latency"),
    ("p95_latency_us", "flora_dispatch_latency_p95_us", "gauge", "95th percentile dispatch latency"),
    ("p99_latency_us", "flora_dispatch_latency_p99_us", "gauge", "99th percentile dispatch latency"),
)


def require_operator(config) -> None:
    """flora's operator check: ``Authorization: Bearer <API_OPERATOR_SECRET>``, compared in constant time."""
    secret = config.api_operator_secret
    if not secret:
        raise errors.forbidden("Operator access is not configured")
    header = request.headers.get("Authorization")
    if header is None or not header.startswith("Bearer "):
        raise errors.unauthorized("Operator bearer token required")
    given = header[len("Bearer ") :].encode("utf-8")
    if not hmac.compare_digest(given, secret.encode("utf-8")):
        raise errors.forbidden("Invalid operator token")


def collect(st) -> dict:
    """Everything this process can know: ``{"snapshot": MetricsSnapshot-with-nulls, "extra": {...}}``."""
    snap: dict = dict.fromkeys(SNAPSHOT_FIELDS)
    extra: dict = {
        "runtime_up": 0,
        "workers": None,
        "workers_alive": None,
        "suspended_guilds": None,
        "deployment_revisions": repo.count_revisions_by_status(st.db),
    }
    try:
        status = st.runtime.status()
    except (RuntimeUnavailable, AttributeError):
        status = None
    if isinstance(status, dict):
        workers = status.get("workers") or []
        extra.update(
            runtime_up=1,
            workers=len(workers),
            workers_alive=sum(1 for w in workers if w.get("alive")),
            suspended_guilds=len(status.get("suspended") or []),
            nodes=status.get("nodes"),
        )
        if "guilds" in status:
            snap["isolate_count"] = int(status["guilds"])
        # one spawn per worker plus one per restart (flora counts every spawn)
        snap["runtime_restarts"] = len(workers) + sum(int(w.get("restarts") or 0) for w in workers)
        for key in SNAPSHOT_FIELDS:  # a runtime that reports more (see the report to the lead) is passed through
            if snap[key] is None and isinstance(status.get("metrics", {}).get(key), int):
                snap[key] = status["metrics"][key]
    if snap["dispatch_errors"] is None:  # the runtime is down: the stored logs still tell (lower bounds)
        counts = repo.count_runtime_logs(st.db, LOG_PATTERNS)
        snap["dispatch_errors"] = counts["dispatch_errors"]
        snap["timeout_errors"] = counts["timeout_errors"]
        snap["oom_errors"] = max(0, counts["restarting_errors"] - counts["timeout_errors"])
        snap["isolate_restarts"] = counts["isolate_restarts"]
    return {"snapshot": snap, "extra": extra}


class _Collector:
    def __init__(self, data: dict):
        self.data = data

    def collect(self):
        snap, extra = self.data["snapshot"], self.data["extra"]
        for field, name, kind, doc in PROMETHEUS:
            value = snap.get(field)
            if value is None:
                continue
            family = CounterMetricFamily(name, doc) if kind == "counter" else GaugeMetricFamily(name, doc)
            family.add_metric([], value)
            yield family
        up = GaugeMetricFamily("flora_runtime_up", "1 when the runtime answered over the bus")
        up.add_metric([], extra["runtime_up"])
        yield up
        for key, name, doc in (
            ("workers", "flora_workers", "Worker processes"),
            ("workers_alive", "flora_workers_alive", "Worker processes alive"),
            ("suspended_guilds", "flora_suspended_guilds", "Guilds suspended after crashing a worker"),
        ):
            if extra[key] is not None:
                g = GaugeMetricFamily(name, doc)
                g.add_metric([], extra[key])
                yield g
        yield from _node_families(extra.get("nodes"))
        revs = CounterMetricFamily("flora_deployment_revisions", "Deployment attempts recorded", labels=["status"])
        for status in sorted(set(extra["deployment_revisions"]) | {"success", "failed"}):
            revs.add_metric([status], extra["deployment_revisions"].get(status, 0))
        yield revs


def _node_families(nodes: list[dict] | None):
    """Runtime nodes on a shared bus (``redis_bus``): one series per node, and who owns each shard."""
    if not nodes:
        return
    up = GaugeMetricFamily("flora_node_up", "1 when the runtime node answered over the bus", labels=["node"])
    workers = GaugeMetricFamily("flora_node_workers", "Worker processes of the node", labels=["node"])
    guilds = GaugeMetricFamily("flora_node_guilds", "Guilds with a script on the node", labels=["node"])
    dispatches = CounterMetricFamily("flora_node_dispatches", "Events dispatched by the node", labels=["node"])
    errors = CounterMetricFamily("flora_node_dispatch_errors", "Failed dispatches of the node", labels=["node"])
    shards = GaugeMetricFamily("flora_shard_owner", "1 for the node that holds the shard's lease", labels=["shard", "node"])
    for n in nodes:
        name = str(n.get("node"))
        up.add_metric([name], 1 if n.get("up") else 0)
        if n.get("up"):
            workers.add_metric([name], int(n.get("workers") or 0))
            guilds.add_metric([name], int(n.get("guilds") or 0))
            metrics = n.get("metrics") or {}
            dispatches.add_metric([name], int(metrics.get("dispatch_total") or 0))
            errors.add_metric([name], int(metrics.get("dispatch_errors") or 0))
        for shard in n.get("shards") or []:
            shards.add_metric([str(shard), name], 1)
    yield from (up, workers, guilds, dispatches, errors, shards)


def nodes_response(st):
    """``GET /api/health/nodes``: each runtime node (up or not, its shards, workers, guilds) and the owner
    of each shard (``null`` when none: the API answers 503 for its guilds); ``error`` when no runtime
    answers at all."""
    count = int(st.config.shard_count or 1)
    try:
        status = st.runtime.status()
    except RuntimeUnavailable as exc:  # the API is up (200); the body says what it cannot reach
        return jsonify({"nodes": [], "shards": {str(s): None for s in range(count)}, "error": str(exc)})
    nodes = status.get("nodes") or [
        {
            "node": "embedded",
            "up": True,
            "shards": list(range(count)),
            "shard_count": count,
            "workers": len(status.get("workers") or []),
            "guilds": status.get("guilds", 0),
        }
    ]
    owners: dict[str, str | None] = {str(s): None for s in range(count)}
    for n in nodes:
        for shard in n.get("shards") or []:
            owners[str(shard)] = n["node"]
    shown = [{k: n.get(k) for k in ("node", "up", "shards", "workers", "guilds", "error") if k in n} for n in nodes]
    return jsonify({"nodes": shown, "shards": owners})


def prometheus_response(st) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(collect(st)))
    return Response(generate_latest(registry), content_type=PROMETHEUS_CONTENT_TYPE)


def json_response(st):
    return jsonify(collect(st)["snapshot"])
