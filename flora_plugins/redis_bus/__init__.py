"""Built-in plugin ``redis_bus``: the runtime bus for runtime nodes on several machines.

With ``REDIS_URL`` set (and ``BUS_BACKEND`` not ``embedded``), the API reaches the runtime through
Redis instead of the data folder's Unix socket, so the API and the runtime nodes can run anywhere:

* each runtime node (``flora serve`` with ``DISCORD_SHARD_IDS``/``DISCORD_SHARD_COUNT``) holds a
  **lease** per shard in Redis (set-if-absent with expiry, renewed); a second node that claims a
  shard another node holds refuses to start;
* a request (deploy, restore, status) goes to the **stream** of the node that owns the guild's shard
  (``(guild_id >> 22) % shard_count``) and is read by a consumer group, so a request is delivered at
  least once and handled at most once (its id is recorded); the reply comes back on a key of its own;
* ``/api/metrics`` and ``/api/health`` see every live node (each node's heartbeat record).

``bus.py`` holds the protocol, ``leases.py`` the shard leases.
"""

from __future__ import annotations

from flora_core import hookimpl


@hookimpl
def flora_register_config_keys(register):
    from flora_core.config import Key, choice, int_range, text

    register(Key("bus_backend", "bus.backend", "BUS_BACKEND", choice("auto", "embedded", "redis"), "auto"))
    register(Key("bus_namespace", "bus.namespace", "BUS_NAMESPACE", text, "flora"))
    register(Key("node_id", "bus.node_id", "FLORA_NODE_ID", text, None))
    register(Key("bus_lease_secs", "bus.lease_secs", "BUS_LEASE_SECS", int_range(3, 600), 10))


@hookimpl
def flora_runtime_bus(config):
    backend = config.bus_backend
    if backend == "embedded" or (backend == "auto" and not config.redis_url):
        return None
    if not config.redis_url:
        from flora_core.config import ConfigError

        raise ConfigError("BUS_BACKEND=redis needs REDIS_URL")
    from .bus import RedisBus

    return RedisBus(config)
