"""KV backend ``redis`` (redis-py): five Redis keys per guild and store, at ``KV_URL`` (else ``REDIS_URL``).

For guild ``G`` and store ``S`` (``{…}`` is a cluster hash tag, so a store
lives on one node)::

    <prefix>{G:S}:v   hash   key -> value
    <prefix>{G:S}:m   hash   key -> flora's metadata record {"expiration":…,"metadata":…} (only if either is set)
    <prefix>{G:S}:k   zset   every key, score 0: ZRANGEBYLEX walks them in byte order (list)
    <prefix>{G:S}:x   zset   key -> expiration (unix s), to find expired entries
    <prefix>{G:S}:u   string bytes the store counts for quotas

The guild id is digits, so ``G:S`` names one (guild, store) only. Every
operation that touches more than one of these keys is one Lua script, which
Redis runs atomically: that is what makes ``incr`` and ``cas`` exact across
processes, and quotas too (``atomic_quotas``): a write with a quota is one
script that reads the ``u`` keys of the store and of the guild's other stores,
checks and writes, so no other write comes in between. That script names keys
of several stores, which Redis Cluster would refuse across hash slots: the
data must live on one Redis (this backend's client is a plain ``redis.Redis``).
Expiration is a stored field checked against the caller's clock
(Redis TTLs expire whole keys, not hash fields, before Redis 7.4).
``KV_URL=redis://host:6379/0?prefix=myapp:`` changes the prefix (default
``flora:kv:``), so several flora instances can share a Redis.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flora_core import hookimpl

from ..backend import Entry, KvBackend, Quota, scan_live
from ..errors import KV_NOT_AN_INTEGER, KV_QUOTA_EXCEEDED, KvError, unavailable
from ..limits import meta_record

DEFAULT_PREFIX = "flora:kv:"

_COMMON = """
local V, M, K, X, U = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function size_of(key)
  local val = redis.call('HGET', V, key)
  if not val then return 0 end
  local rec = redis.call('HGET', M, key)
  local n = #key + #val
  if rec then n = n + #key + #rec end
  return n
end
local function remove(key)
  local n = size_of(key)
  if n == 0 then return 0 end
  redis.call('HDEL', V, key)
  redis.call('HDEL', M, key)
  redis.call('ZREM', K, key)
  redis.call('ZREM', X, key)
  redis.call('DECRBY', U, n)
  return 1
end
local function expired(key, now)
  local exp = redis.call('ZSCORE', X, key)
  return exp and tonumber(exp) <= now
end
local function entry_len(key, val, rec)
  local n = #key + #val
  if rec ~= '' then n = n + #key + #rec end
  return n
end
-- flora's quotas for a write that changes the store by delta bytes: false, or the error to answer;
-- qs = '' means no quota; KEYS[6..] are the size keys of the guild's other stores
local function over(delta, qs, qg)
  if qs == nil or qs == '' then return false end
  local used = tonumber(redis.call('GET', U) or '0') + delta
  if used > tonumber(qs) then return 'KV_QUOTA_EXCEEDED kv store storage quota exceeded' end
  for i = 6, #KEYS do used = used + tonumber(redis.call('GET', KEYS[i]) or '0') end
  if used > tonumber(qg) then return 'KV_QUOTA_EXCEEDED kv guild storage quota exceeded' end
  return false
end
local function put(key, val, exp, rec)
  remove(key)
  redis.call('HSET', V, key, val)
  local n = #key + #val
  if rec ~= '' then
    redis.call('HSET', M, key, rec)
    n = n + #key + #rec
  end
  if exp ~= '' then redis.call('ZADD', X, exp, key) end
  redis.call('ZADD', K, 0, key)
  redis.call('INCRBY', U, n)
end
"""

LUA = {
    "get": """
local key, now = ARGV[1], tonumber(ARGV[2])
local val = redis.call('HGET', V, key)
if not val then return false end
if expired(key, now) then remove(key) return false end
return {val, redis.call('HGET', M, key) or false}
""",
    "set": """
local err = over(entry_len(ARGV[1], ARGV[2], ARGV[4]) - size_of(ARGV[1]), ARGV[5], ARGV[6])
if err then return redis.error_reply(err) end
put(ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return 1
""",
    "update_metadata": """
local key, now, meta = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if not redis.call('HGET', V, key) then return 0 end
if expired(key, now) then remove(key) return 0 end
local old = redis.call('HGET', M, key)
local exp = 'null'
if old then exp = string.match(old, '^{"expiration":([^,]*),') end
local rec = ''
if exp ~= 'null' or meta ~= '' then
  if meta == '' then meta = 'null' end
  rec = '{"expiration":' .. exp .. ',"metadata":' .. meta .. '}'
end
local delta = 0
if old then delta = delta - #key - #old end
if rec ~= '' then delta = delta + #key + #rec end
local err = over(delta, ARGV[4], ARGV[5])
if err then return redis.error_reply(err) end
if rec ~= '' then redis.call('HSET', M, key, rec) else redis.call('HDEL', M, key) end
redis.call('INCRBY', U, delta)
return 1
""",
    "delete": "return remove(ARGV[1])",
    "incr": """
local key, by, now = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local val = redis.call('HGET', V, key)
if val and expired(key, now) then remove(key) val = false end
local n = 0
if val then
  if not string.match(val, '^[+-]?%d+$') then return redis.error_reply('KV_NOT_AN_INTEGER value is not an integer') end
  n = tonumber(val)
  if math.abs(n) > 9007199254740991 then return redis.error_reply('KV_NOT_AN_INTEGER incr result out of range') end
end
local r = n + by
if math.abs(r) > 9007199254740991 then return redis.error_reply('KV_NOT_AN_INTEGER incr result out of range') end
local s = string.format('%.0f', r)
local delta = #key + #s
if val then delta = #s - #val end
local err = over(delta, ARGV[4], ARGV[5])
if err then return redis.error_reply(err) end
if val then
  redis.call('HSET', V, key, s)
  redis.call('INCRBY', U, #s - #val)
else
  put(key, s, '', '')
end
return s
""",
    "cas": """
local key, now = ARGV[1], tonumber(ARGV[7])
local cur = redis.call('HGET', V, key)
if cur and expired(key, now) then remove(key) cur = false end
if ARGV[2] == '1' then
  if cur ~= ARGV[3] then return 0 end
elseif cur then
  return 0
end
local err = over(entry_len(key, ARGV[4], ARGV[6]) - size_of(key), ARGV[8], ARGV[9])
if err then return redis.error_reply(err) end
put(key, ARGV[4], ARGV[5], ARGV[6])
return 1
""",
    "range": """
local min, max = '-', '+'
if ARGV[1] == '>' then min = '(' .. ARGV[2] elseif ARGV[1] == '>=' then min = '[' .. ARGV[2] end
if ARGV[3] ~= '' then max = '(' .. ARGV[3] end
local out = {}
for _, key in ipairs(redis.call('ZRANGEBYLEX', K, min, max, 'LIMIT', 0, tonumber(ARGV[4]))) do
  out[#out + 1] = key
  out[#out + 1] = redis.call('HGET', M, key) or ''
end
return out
""",
    "purge_keys": """
local now, n = tonumber(ARGV[1]), 0
for i = 2, #ARGV do
  if expired(ARGV[i], now) then n = n + remove(ARGV[i]) end
end
return n
""",
    "purge_expired": """
local n = 0
for _, key in ipairs(redis.call('ZRANGEBYSCORE', X, '-inf', ARGV[1])) do n = n + remove(key) end
return n
""",
    "entry_bytes": "return size_of(ARGV[1])",
}


def _record(text: str) -> tuple[int | None, object]:
    record = json.loads(text)
    return record.get("expiration"), record.get("metadata")


class RedisBackend(KvBackend):
    name = "redis"
    atomic_quotas = True

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX):
        try:
            import redis
        except ImportError:
            raise unavailable("KV_BACKEND=redis needs the redis package: pip install 'flora-runtime[redis]'") from None
        self._redis = redis
        self.prefix = prefix
        try:
            self.client = redis.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30, health_check_interval=30
            )
        except ValueError as exc:
            raise unavailable(f"kv backend redis: invalid URL: {exc}") from None
        self._scripts = {name: self.client.register_script(_COMMON + body) for name, body in LUA.items()}

    def keys(self, guild_id: str, store: str) -> list[str]:
        base = f"{self.prefix}{{{guild_id}:{store}}}:"
        return [base + part for part in ("v", "m", "k", "x", "u")]

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._redis.ResponseError as exc:
            text = str(exc)
            for code in (KV_NOT_AN_INTEGER, KV_QUOTA_EXCEEDED):
                if code in text:
                    raise KvError(code, text.split(code, 1)[1].strip()) from None
            raise unavailable(f"kv backend redis failed: {text}") from None
        except self._redis.RedisError as exc:
            raise unavailable(f"kv backend redis: {exc}") from None

    def _run(self, script: str, guild_id: str, store: str, *args, quota: Quota | None = None):
        """Run a script on the store's keys; with ``quota``, after the script's own arguments come the two quotas
        and after its keys the size keys of the guild's other stores (see ``over`` in the scripts)."""
        keys = self.keys(guild_id, store)
        if quota is not None:
            keys += [self.keys(guild_id, other)[4] for other in quota.other_stores]
            args += (quota.store_bytes, quota.guild_bytes)
        with self._errors():
            return self._scripts[script](keys=keys, args=[("" if a is None else a) for a in args])

    # -- the interface -------------------------------------------------------------------
    def get(self, guild_id, store, key, now):
        found = self._run("get", guild_id, store, key, now)
        if not found:
            return None
        value, record = found
        expiration, metadata = _record(record) if record else (None, None)
        return Entry(key, value, expiration, metadata)

    def set(self, guild_id, store, key, value, expiration, metadata_json, *, quota=None):
        record = meta_record(expiration, metadata_json)
        self._run("set", guild_id, store, key, value, expiration, record, quota=quota)

    def update_metadata(self, guild_id, store, key, metadata_json, now, *, quota=None):
        return self._run("update_metadata", guild_id, store, key, now, metadata_json, quota=quota) == 1

    def delete(self, guild_id, store, key):
        self._run("delete", guild_id, store, key)

    def list(self, guild_id, store, *, after, start, end, count, now):
        def fetch(lower, end, want):
            flat = self._run("range", guild_id, store, lower[0] if lower else "", lower[1] if lower else "", end, want)
            rows = []
            for key, record in zip(flat[::2], flat[1::2], strict=True):
                rows.append((key, _record(record)[0], record) if record else (key, None, None))
            return rows

        live, expired = scan_live(
            fetch, after=after, start=start, end=end, count=count, now=now, decode=lambda record: _record(record)[1]
        )
        if expired:
            self._run("purge_keys", guild_id, store, now, *expired)
        return live

    def incr(self, guild_id, store, key, by, now, *, quota=None):
        return int(self._run("incr", guild_id, store, key, by, now, quota=quota))

    def cas(self, guild_id, store, key, expected, value, expiration, metadata_json, now, *, quota=None):
        has_expected = "0" if expected is None else "1"
        return (
            self._run(
                "cas",
                guild_id,
                store,
                key,
                has_expected,
                expected,
                value,
                expiration,
                meta_record(expiration, metadata_json),
                now,
                quota=quota,
            )
            == 1
        )

    def entry_bytes(self, guild_id, store, key):
        return int(self._run("entry_bytes", guild_id, store, key))

    def store_bytes(self, guild_id, store):
        with self._errors():
            return int(self.client.get(self.keys(guild_id, store)[4]) or 0)

    def purge_expired(self, guild_id, store, now):
        return int(self._run("purge_expired", guild_id, store, now))

    def drop_store(self, guild_id, store):
        with self._errors():
            self.client.delete(*self.keys(guild_id, store))

    def close(self) -> None:
        self.client.close()


def split_prefix(url: str) -> tuple[str, str]:
    """``redis://…?prefix=p`` -> (URL without it, ``p``); redis-py would refuse the unknown option."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def factory(config) -> RedisBackend:
    url = config.kv_url or config.redis_url
    if not url or not url.startswith(("redis://", "rediss://", "unix://")):
        raise unavailable("KV_BACKEND=redis needs KV_URL (or REDIS_URL) to be a redis:// URL")
    url, prefix = split_prefix(url)
    return RedisBackend(url, prefix)


# optionalhook: the kv plugin declares this hook (kv/hookspecs.py); while it is disabled this plugin idles
@hookimpl(optionalhook=True)
def flora_register_kv_backends(register):
    register("redis", factory)
