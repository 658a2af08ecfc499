"""The Redis bus (``flora_core.bus.RuntimeBus``): requests to a node's stream, replies on their own key.

Keys (``<ns>`` is ``BUS_NAMESPACE``, ``flora`` by default):

* ``<ns>:shard:<count>:<id>`` — the node that owns a shard (a lease, ``leases.py``);
* ``<ns>:node:<node>`` — a live node's record (JSON: shards, host, pid), expiring with its leases;
* ``<ns>:bus:<node>`` — the node's request stream, read by the consumer group ``node``: a request
  stays pending until the node answered it, so a node that dies (or loses Redis) mid-request reads it
  again (at-least-once), ``<ns>:done:<request id>`` makes the second reading a no-op, and a request
  read after its deadline (the client has given up and said so) is dropped, never applied late;
* ``<ns>:reply:<request id>`` — the answer, a list the client waits on (``BLPOP``) with its timeout.

The node end runs in the supervisor on redis-py's asyncio client; the client end in the API, on the
blocking client (gevent makes its sockets cooperative).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import time
import uuid
from typing import Any

from flora_core.bus import BusNode, NoRuntimeNode, RuntimeUnavailable
from flora_core.config import redacted
from flora_core.errors import RuntimeStartError

from . import leases
from .leases import done_key, lease_key, node_key, reply_key, stream_key

log = logging.getLogger("flora.bus")

GROUP = "node"
STREAM_MAX = 10_000  # requests kept per node stream (trimmed approximately)
REPLY_TTL_SECS = 300
DONE_TTL_SECS = 24 * 3600
STATUS_TIMEOUT_SECS = 5.0
PENDING_RECHECK_SECS = 3.0


def _retrying() -> dict:
    """Connections to a Redis that restarted fail once each: retry a command a few times, briefly."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return {
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError, OSError],
    }


class RedisBus:
    def __init__(self, config):
        self.config = config
        self.ns = config.bus_namespace
        self.count = int(config.shard_count or 1)
        self.shards = sorted(config.shard_ids) if config.shard_ids is not None else list(range(self.count))
        self.node_id = config.node_id or f"{socket.gethostname()}/{','.join(map(str, self.shards))}of{self.count}"
        self.lease_ms = int(config.bus_lease_secs * 1000)
        self._redis: Any = None
        self._tasks: list[asyncio.Task] = []
        self._node: BusNode | None = None
        self._handling: set[asyncio.Task] = set()
        self._in_hand: set = set()  # stream entry ids being handled

    # -- the node end ------------------------------------------------------------------------------
    async def serve(self, node: BusNode) -> None:
        if not self.config.redis_url:
            raise RuntimeStartError("BUS_BACKEND=redis needs REDIS_URL")
        import redis.asyncio as aioredis

        self._node = node
        # a reply within 3 s or the connection is dead (reads block for 1 s at most): Redis gone is seen fast
        self._redis = aioredis.from_url(self.config.redis_url, socket_connect_timeout=2, socket_timeout=3, **_retrying())
        try:
            await self._claim_all()
            await self._create_group()
        except RuntimeStartError:
            await self._redis.aclose()
            raise
        except (OSError, Exception) as exc:  # noqa: BLE001 - redis errors: one line, no traceback
            await self._redis.aclose()
            raise RuntimeStartError(f"the runtime bus cannot use Redis at {redacted(self.config.redis_url)}: {exc}") from None
        log.info("runtime node %s owns shard(s) %s of %d", self.node_id, ",".join(map(str, self.shards)), self.count)
        self._tasks = [asyncio.create_task(self._renew()), asyncio.create_task(self._consume())]

    async def _create_group(self) -> None:
        try:
            await self._redis.xgroup_create(stream_key(self.ns, self.node_id), GROUP, id="0", mkstream=True)
        except Exception as exc:  # noqa: BLE001 - BUSYGROUP: the group exists (a restart)
            if "BUSYGROUP" not in str(exc):
                raise

    async def _claim_all(self) -> None:
        claimed = []
        for shard in self.shards:
            got = await self._redis.eval(leases.CLAIM, 1, lease_key(self.ns, self.count, shard), self.node_id, self.lease_ms)
            if got != 1:
                for mine in claimed:
                    await self._redis.eval(leases.RELEASE, 1, lease_key(self.ns, self.count, mine), self.node_id)
                holder = got.decode() if isinstance(got, bytes) else got
                raise RuntimeStartError(
                    f"shard {shard} of {self.count} is owned by runtime node {holder}; stop that "
                    "node, or start this one with other DISCORD_SHARD_IDS"
                )
            claimed.append(shard)
        await self._heartbeat()

    async def _heartbeat(self) -> None:
        record = {
            "node": self.node_id,
            "shards": self.shards,
            "shard_count": self.count,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        await self._redis.set(node_key(self.ns, self.node_id), json.dumps(record), px=self.lease_ms)

    async def _renew(self) -> None:
        """Renew the leases every third of their life; while Redis is away, keep trying every second
        (the node keeps running its scripts) and take the leases again when it is back."""
        down_since: float | None = None
        while True:
            try:
                for shard in self.shards:
                    got = await self._redis.eval(
                        leases.CLAIM, 1, lease_key(self.ns, self.count, shard), self.node_id, self.lease_ms
                    )
                    if got != 1:
                        holder = got.decode() if isinstance(got, bytes) else got
                        self._fail(
                            f"shard {shard} was taken by runtime node {holder} while this node could not renew "
                            "its lease; stopping"
                        )
                        return
                await self._heartbeat()
                if down_since is not None:
                    log.warning(
                        "Redis is back after %.1f s; the leases of shard(s) %s are renewed",
                        time.monotonic() - down_since,
                        ",".join(map(str, self.shards)),
                    )
                    down_since = None
                await asyncio.sleep(self.lease_ms / 3000)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: keep running, try again
                if down_since is None:
                    down_since = time.monotonic()
                    log.error("the runtime bus lost Redis (%s); scripts keep running, requests wait for it", exc)
                await asyncio.sleep(1.0)

    def _fail(self, message: str) -> None:
        fail = getattr(self._node, "fail", None)
        if callable(fail):
            fail(message)
        else:
            log.error("%s", message)

    async def _consume(self) -> None:
        """Read requests and handle each in a task of its own. What was read but never answered (this
        node died, or Redis went away mid-answer) stays pending in the group: it is read again at start,
        after an error, and every few seconds."""
        stream = stream_key(self.ns, self.node_id)
        pending = True
        last_pending_check = time.monotonic()
        while True:
            try:
                if time.monotonic() - last_pending_check > PENDING_RECHECK_SECS:
                    pending = True
                got = await self._redis.xreadgroup(
                    GROUP, self.node_id, {stream: "0" if pending else ">"}, count=16, block=None if pending else 1000
                )
                entries = got[0][1] if got else []
                for entry_id, fields in entries:
                    if entry_id in self._in_hand:
                        continue  # still being handled
                    self._in_hand.add(entry_id)
                    task = asyncio.create_task(self._handle(stream, entry_id, fields))
                    self._handling.add(task)
                    task.add_done_callback(lambda t, e=entry_id: (self._handling.discard(t), self._in_hand.discard(e)))
                if pending:
                    pending, last_pending_check = False, time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis away: the renew loop says so; try again
                log.debug("reading the bus stream failed: %s", exc)
                pending = True
                if "NOGROUP" in str(exc):  # a Redis that came back empty: the stream and its group anew
                    try:
                        await self._create_group()
                    except Exception:  # noqa: BLE001
                        await asyncio.sleep(1.0)
                else:
                    await asyncio.sleep(0.5)

    async def _handle(self, stream: str, entry_id: Any, fields: dict) -> None:
        try:
            await self._answer(stream, entry_id, fields)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - Redis away: the entry stays pending and is read again
            log.warning("a bus request stays pending (Redis: %s); it is answered once Redis is back", exc)

    async def _answer(self, stream: str, entry_id: Any, fields: dict) -> None:
        r = self._redis
        try:
            request = json.loads(fields[b"req"])
        except (KeyError, ValueError):
            await r.xack(stream, GROUP, entry_id)
            return
        rid = str(request.get("id"))
        if await r.exists(done_key(self.ns, rid)):  # answered before this node restarted
            await r.xack(stream, GROUP, entry_id)
            return
        if time.time() > float(request.get("deadline") or 0):
            # the client gave up on it (and said so): applying it now would run a deploy nobody recorded
            log.warning("bus request %s (%s) arrived after its deadline; dropped", rid, request.get("op"))
            await r.xack(stream, GROUP, entry_id)
            await r.xdel(stream, entry_id)
            return
        node = self._node
        assert node is not None
        try:
            op = request.get("op")
            if op == "load":
                ok, error = await node.deploy(str(request["guild"]), str(request["bundle"]))
                answer: dict = {"ok": ok, "error": error}
            elif op == "restore":
                await node.restore(str(request["guild"]))
                answer = {"ok": True}
            elif op == "status":
                answer = dict(node.status(), node=self.node_id, shards=self.shards, shard_count=self.count)
            else:
                answer = {"ok": False, "error": f"unknown bus request {op!r}"}
        except Exception as exc:  # noqa: BLE001 - the client gets a reason, the operator the traceback
            log.exception("bus request %s failed", rid)
            answer = {"ok": False, "error": f"the runtime node failed: {exc}", "failed": True}
        pipe = r.pipeline()
        pipe.rpush(reply_key(self.ns, rid), json.dumps(answer))
        pipe.expire(reply_key(self.ns, rid), REPLY_TTL_SECS)
        pipe.set(done_key(self.ns, rid), "1", ex=DONE_TTL_SECS)
        pipe.xack(stream, GROUP, entry_id)
        pipe.xdel(stream, entry_id)
        await pipe.execute()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._handling:
            await asyncio.wait(list(self._handling), timeout=5)
        if self._redis is None:
            return
        try:
            for shard in self.shards:
                await self._redis.eval(leases.RELEASE, 1, lease_key(self.ns, self.count, shard), self.node_id)
            await self._redis.delete(node_key(self.ns, self.node_id))
        except Exception as exc:  # noqa: BLE001 - the leases expire on their own
            log.warning("could not release the shard leases (they expire in %d s): %s", self.lease_ms // 1000, exc)
        await self._redis.aclose()
        self._redis = None

    def client(self) -> RedisBusClient:
        return RedisBusClient(self.config)


# -- the client end (the API) -------------------------------------------------------------------------
class RedisBusClient:
    def __init__(self, config):
        self.config = config
        self.ns = config.bus_namespace
        self.count = int(config.shard_count or 1)
        self._redis: Any = None

    @property
    def redis(self) -> Any:
        if self._redis is None:
            if not self.config.redis_url:
                raise RuntimeUnavailable("bus unavailable: BUS_BACKEND=redis needs REDIS_URL")
            import redis

            # blocking waits (BLPOP) carry their own timeout; the socket's must be longer
            self._redis = redis.Redis.from_url(self.config.redis_url, socket_connect_timeout=2, socket_timeout=90)
        return self._redis

    def owner(self, guild_id: str) -> str:
        """The node that owns the guild's shard (:class:`NoRuntimeNode` when none does)."""
        shard = leases.shard_of(guild_id, self.count)
        holder = self._call(self.redis.get, lease_key(self.ns, self.count, shard))
        if holder is None:
            raise NoRuntimeNode(f"no runtime node owns shard {shard} (guild {guild_id})")
        return holder.decode() if isinstance(holder, bytes) else str(holder)

    def _call(self, fn, *args, **kwargs):
        import redis

        try:
            return fn(*args, **kwargs)
        except (redis.RedisError, OSError) as exc:
            raise RuntimeUnavailable(f"bus unavailable: {exc}") from None

    def ask(self, node: str, request: dict, timeout: float) -> dict:
        # the API cuts a whole request after API_REQUEST_TIMEOUT_SECS: a bus request must not outlive it,
        # or a node could apply a deploy the API has already answered (and not recorded)
        cap = int(getattr(self.config, "api_request_timeout_secs", 0) or 0)
        if cap:
            timeout = min(timeout, max(1.0, cap - 1.0))
        rid = uuid.uuid4().hex
        # a node that reads it later than this drops it: the client has given up (the clocks of the
        # machines must agree to within a second or so, as NTP keeps them)
        body = json.dumps(dict(request, id=rid, deadline=time.time() + timeout))
        self._call(self.redis.xadd, stream_key(self.ns, node), {"req": body}, maxlen=STREAM_MAX, approximate=True)
        got = self._call(self.redis.blpop, [reply_key(self.ns, rid)], timeout=max(1, math.ceil(timeout)))
        if got is None:
            raise RuntimeUnavailable(
                f"runtime node {node} did not answer within {timeout:.0f} s; it may still apply "
                "the request (see the guild's deployment history)"
            )
        return json.loads(got[1])

    def load(self, guild_id: str, bundle: str, timeout: float = 60.0) -> tuple[bool, str | None]:
        out = self.ask(self.owner(guild_id), {"op": "load", "guild": guild_id, "bundle": bundle}, timeout)
        if out.get("failed"):
            raise RuntimeUnavailable(out.get("error") or "the runtime node failed")
        return bool(out.get("ok")), out.get("error")

    def restore(self, guild_id: str, timeout: float = 60.0) -> None:
        out = self.ask(self.owner(guild_id), {"op": "restore", "guild": guild_id}, timeout)
        if out.get("failed"):
            raise RuntimeUnavailable(out.get("error") or "the runtime node failed")

    def nodes(self) -> list[dict]:
        """The live nodes' records."""
        out = []
        for key in self._call(lambda: list(self.redis.scan_iter(match=node_key(self.ns, "*"), count=100))):
            raw = self._call(self.redis.get, key)
            if raw:
                out.append(json.loads(raw))
        return sorted(out, key=lambda n: n["node"])

    def status(self, timeout: float = STATUS_TIMEOUT_SECS) -> dict:
        """Every live node's status, merged: workers (each with its ``node``), guilds, suspended guilds,
        subscriptions, counters summed (latency percentiles: the largest of the nodes'), and ``nodes``."""
        merged: dict = {"workers": [], "guilds": 0, "suspended": [], "subscriptions": {}, "metrics": {}, "nodes": []}
        for record in self.nodes():
            try:
                status = self.ask(record["node"], {"op": "status"}, timeout)
            except RuntimeUnavailable as exc:
                merged["nodes"].append(dict(record, up=False, error=str(exc)))
                continue
            merged["nodes"].append(
                dict(
                    record,
                    up=True,
                    workers=len(status.get("workers") or []),
                    guilds=status.get("guilds", 0),
                    metrics=status.get("metrics") or {},
                )
            )
            merged["workers"] += [dict(w, node=record["node"]) for w in status.get("workers") or []]
            merged["guilds"] += int(status.get("guilds") or 0)
            merged["suspended"] += status.get("suspended") or []
            merged["subscriptions"].update(status.get("subscriptions") or {})
            for key, value in (status.get("metrics") or {}).items():
                if key.endswith("_latency_us"):
                    merged["metrics"][key] = max(merged["metrics"].get(key, 0), value)
                else:
                    merged["metrics"][key] = merged["metrics"].get(key, 0) + value
        if not merged["nodes"]:
            raise RuntimeUnavailable("no runtime node is live on the bus")
        return merged
