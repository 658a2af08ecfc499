"""Shard leases in Redis: ``<ns>:shard:<count>:<id>`` holds the id of the runtime node that owns the
shard, with an expiry the node renews. Claiming and renewing are one Lua script (take the key if it is
free or already ours), releasing another (delete it only if it is ours), so two nodes never both
believe they hold a shard."""

from __future__ import annotations

# KEYS[1] the lease, ARGV[1] this node, ARGV[2] milliseconds; returns 1, or the holder's id
CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return holder
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def shard_of(guild_id: str | int, shard_count: int) -> int:
    """Discord's rule: ``(guild_id >> 22) % shard_count``."""
    return (int(guild_id) >> 22) % max(int(shard_count), 1)


def lease_key(namespace: str, shard_count: int, shard_id: int) -> str:
    return f"{namespace}:shard:{shard_count}:{shard_id}"


def node_key(namespace: str, node_id: str) -> str:
    return f"{namespace}:node:{node_id}"


def stream_key(namespace: str, node_id: str) -> str:
    return f"{namespace}:bus:{node_id}"


def reply_key(namespace: str, request_id: str) -> str:
    return f"{namespace}:reply:{request_id}"


def done_key(namespace: str, request_id: str) -> str:
    return f"{namespace}:done:{request_id}"
