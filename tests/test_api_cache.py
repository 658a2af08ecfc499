"""The API's caches shared between API processes (flora_http/cache.py): sqlitedict in the data folder,
Redis when ``REDIS_URL`` is set; and how the servers start when Redis is asked for and missing."""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import uuid

import pytest
from conftest import IN_CI, ROOT, free_port, http_json, wait_for

from flora_core.config import REDIS_MISSING
from flora_http import cache as cache_module
from flora_http.cache import CacheError, CacheValueError, RedisCache, SqliteCache, get_or_fill


# -- REDIS_URL without redis-py: one line at start ------------------------------------------------
def _env_without_redis_py(tmp_path) -> dict:
    hide = tmp_path / "hide-redis"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['redis'] = None  # as if redis-py were not installed\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNTIME_", "API_", "DATABASE_", "FLORA_", "REDIS_", "KV_"))}
    env.update(
        PYTHONPATH=str(hide),
        FLORA_DATA_DIR=str(tmp_path / "data"),
        API_ADDRESS="127.0.0.1",
        API_PORT=str(free_port()),
        DISCORD_TOKEN="t",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    return env


@pytest.mark.parametrize(
    "argv, prefix",
    [
        (["-m", "flora_cli", "api"], "Error: "),
        (["-m", "flora_cli", "serve"], "Error: "),
        (["-m", "flora_http.serve"], "flora api: "),
        (["-m", "gunicorn", "-c", str(ROOT / "flora_http" / "gunicorn.conf.py")], "flora api: "),
    ],
    ids=["flora api", "flora serve", "the API process", "gunicorn by hand"],
)
def test_redis_url_without_redis_py_stops_the_servers_at_start_in_one_line(tmp_path, argv, prefix):
    proc = subprocess.run(
        [sys.executable, *argv], env=_env_without_redis_py(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [prefix + REDIS_MISSING]


# -- the two backends ---------------------------------------------------------------------------
class Clock:
    """An injectable wall clock for the sqlite backend's TTLs."""

    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def redis_target():
    """``(url, prefix)``: a real Redis (``FLORA_TEST_REDIS``, default 127.0.0.1:6379/0) and a prefix of our own, emptied afterwards."""
    url = os.environ.get("FLORA_TEST_REDIS", "redis://127.0.0.1:6379/0")
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Redis is required under CI=true but is not reachable at {url}: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    prefix = f"flora-test-api-{uuid.uuid4().hex[:12]}:"
    yield url, prefix
    leftovers = list(client.scan_iter(match=f"{prefix}*"))
    if leftovers:
        client.delete(*leftovers)
    client.close()


def _build(kind: str, target) -> str:
    """Python source that builds the same cache in another process."""
    if kind == "sqlite":
        return f"from flora_http.cache import SqliteCache\ncache = SqliteCache({str(target)!r})\n"
    url, prefix = target
    return f"from flora_http.cache import RedisCache\ncache = RedisCache({url!r}, prefix={prefix!r})\n"


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path):
    """``(kind, cache, target)`` for each backend; ``target`` rebuilds it elsewhere (see :func:`_build`)."""
    if request.param == "sqlite":
        target = tmp_path / "data" / "cache" / "api.sqlite"
        cache = SqliteCache(target)
    else:
        target = request.getfixturevalue("redis_target")
        cache = RedisCache(target[0], prefix=target[1])
    yield request.param, cache, target
    cache.close()


def test_json_values_come_back_equal(backend):
    _, cache, _ = backend
    values = [{"id": "1", "perms": [1, 2.5, "é", True, None], "nested": {"a": {}}}, [], "text", 0, False, 3.25]
    for i, value in enumerate(values):
        cache.set(f"k{i}", value, 30)
    assert [cache.get(f"k{i}") for i in range(len(values))] == values
    assert cache.get("k4") is False and cache.get("k3") == 0  # false values are values, not misses


def test_missing_keys_and_delete(backend):
    _, cache, _ = backend
    assert cache.get("nothing") is None
    cache.delete("nothing")  # no error
    cache.set("k", {"a": 1}, 30)
    cache.set("k", {"a": 2}, 30)  # replaces
    assert cache.get("k") == {"a": 2}
    cache.delete("k")
    assert cache.get("k") is None


@pytest.mark.parametrize(
    "value, message",
    [
        ({1, 2}, "cache values must be JSON: Object of type set is not JSON serializable"),
        (b"raw", "cache values must be JSON: Object of type bytes is not JSON serializable"),
        (object(), "cache values must be JSON: Object of type object is not JSON serializable"),
        (
            (1, 2),
            "cache values must be JSON: this tuple would not come back equal (tuples become lists, non-string keys become strings)",
        ),
        (
            {1: "a"},
            "cache values must be JSON: this dict would not come back equal (tuples become lists, non-string keys become strings)",
        ),
        ([float("nan")], "cache values must be JSON: Out of range float values are not JSON compliant"),
        (None, "cannot cache None: get() answers None for a missing key"),
    ],
    ids=["set", "bytes", "object", "tuple", "int keys", "nan", "None"],
)
def test_a_value_json_cannot_carry_is_refused_in_one_line(backend, value, message):
    _, cache, _ = backend
    for write in (cache.set, cache.add):
        with pytest.raises(CacheValueError) as err:
            write("k", value, 30)
        assert str(err.value).startswith(message) and "\n" not in str(err.value)  # (newer Pythons name the float)
    assert cache.get("k") is None  # nothing was stored


@pytest.mark.parametrize(
    "key, ttl, message",
    [
        ("", 30, "cache keys must be non-empty strings, got str ''"),
        (7, 30, "cache keys must be non-empty strings, got int 7"),
        ("k" * 513, 30, "cache keys must be at most 512 characters, got 513"),
        ("k", 0, "cache TTLs must be seconds, more than 0 and at most 2592000, got 0"),
        ("k", -1, "cache TTLs must be seconds, more than 0 and at most 2592000, got -1"),
        ("k", "30", "cache TTLs must be seconds, more than 0 and at most 2592000, got '30'"),
        ("k", True, "cache TTLs must be seconds, more than 0 and at most 2592000, got True"),
        ("k", float("inf"), "cache TTLs must be seconds, more than 0 and at most 2592000, got inf"),
        ("k", 31 * 24 * 3600, "cache TTLs must be seconds, more than 0 and at most 2592000, got 2678400"),
    ],
)
def test_bad_keys_and_ttls_are_refused_in_one_line(backend, key, ttl, message):
    _, cache, _ = backend
    for write in (cache.set, cache.add):
        with pytest.raises(CacheValueError) as err:
            write(key, 1, ttl)
        assert str(err.value) == message


def test_add_stores_only_when_absent(backend):
    _, cache, _ = backend
    assert cache.add("lock", "first", 30) is True
    assert cache.add("lock", "second", 30) is False
    assert cache.get("lock") == "first"
    cache.delete("lock")
    assert cache.add("lock", "third", 30) is True
    assert cache.get("lock") == "third"


def _rows(path) -> dict:
    conn = sqlite3.connect(path)
    try:
        return {k: v for k, v in conn.execute('SELECT key, value FROM "api"')}
    finally:
        conn.close()


def test_sqlite_ttl_follows_the_injected_clock_and_expired_records_are_removed(tmp_path):
    clock = Clock()
    path = tmp_path / "api.sqlite"
    cache = SqliteCache(path, clock=clock)
    try:
        cache.set("k", {"a": 1}, 30)
        clock.advance(29.999)
        assert cache.get("k") == {"a": 1}
        clock.advance(0.001)
        assert cache.get("k") is None
        assert "k" not in _rows(path)  # read as missing and deleted
        # add() takes over an expired entry, not a live one
        assert cache.add("lock", "a", 5) is True
        clock.advance(4.9)
        assert cache.add("lock", "b", 5) is False
        clock.advance(0.1)
        assert cache.add("lock", "c", 5) is True and cache.get("lock") == "c"
    finally:
        cache.close()


def test_sqlite_purges_every_expired_record_at_most_once_a_minute(tmp_path):
    clock = Clock()
    path = tmp_path / "api.sqlite"
    cache = SqliteCache(path, clock=clock, purge_every=60)
    try:
        cache.set("short", 1, 10)  # the first write purges (nothing yet): the next purge is due in 60 s
        cache.set("long", 2, 1000)
        clock.advance(50)
        cache.set("later", 3, 5)  # short has expired, but no purge is due
        assert set(_rows(path)) == {"short", "long", "later"}
        clock.advance(11)
        cache.set("fresh", 4, 10)  # 61 s after the first: purges short and later
        assert set(_rows(path)) == {"long", "fresh"}
        clock.advance(10)
        cache.purge()  # on demand
        assert set(_rows(path)) == {"long"}
    finally:
        cache.close()


def test_sqlite_file_holds_json_and_a_pickle_in_it_is_never_unpickled(tmp_path):
    """CVE-2024-35515: sqlitedict decodes with pickle by default; this cache never does."""
    path = tmp_path / "api.sqlite"
    marker = tmp_path / "unpickled"
    cache = SqliteCache(path, clock=Clock())
    try:
        cache.set("k", {"guilds": ["1"]}, 30)
        record = json.loads(_rows(path)["k"])
        assert record == {"v": {"guilds": ["1"]}, "e": Clock().now + 30}
        assert oct(path.stat().st_mode & 0o777) == "0o600"

        class Exploit:
            def __reduce__(self):
                return (open, (str(marker), "w"))

        conn = sqlite3.connect(path)
        with conn:
            conn.execute('REPLACE INTO "api" (key, value) VALUES (?, ?)', ("evil", sqlite3.Binary(pickle.dumps(Exploit()))))
            conn.execute('REPLACE INTO "api" (key, value) VALUES (?, ?)', ("foreign", '"not a record"'))
        conn.close()
        assert cache.get("evil") is None and cache.get("foreign") is None
        assert not marker.exists()
        assert set(_rows(path)) == {"k"}  # neither was ours: both are gone
        assert cache.add("evil", 1, 30) is True  # and their keys are usable again
    finally:
        cache.close()


def test_redis_sets_the_ttl_on_the_server_and_redis_expires_it(redis_target):
    import redis

    url, prefix = redis_target
    cache = RedisCache(url, prefix=prefix)
    client = redis.Redis.from_url(url)
    try:
        cache.set("long", [1], 30)
        assert 29_000 < client.pttl(f"{prefix}long") <= 30_000
        assert cache.add("lock", 1, 12) is True
        assert 11_000 < client.pttl(f"{prefix}lock") <= 12_000
        assert client.get(f"{prefix}long") == b"[1]"  # JSON text under the prefix
        cache.set("short", {"a": 1}, 0.2)
        assert 0 < client.pttl(f"{prefix}short") <= 200
        wait_for(lambda: cache.get("short") is None, timeout=5, message="Redis to expire the key")
        assert client.exists(f"{prefix}short") == 0
        assert cache.add("short", 2, 30) is True  # free again
    finally:
        cache.close()
        client.close()


def test_a_failing_backend_is_a_cache_error_in_one_line(tmp_path):
    free = free_port()  # nothing listens there
    cache = RedisCache(f"redis://127.0.0.1:{free}/0")
    with pytest.raises(CacheError) as err:
        cache.get("k")
    assert str(err.value).startswith("API cache (Redis): get failed: ") and "\n" not in str(err.value)
    blocked = tmp_path / "file"
    blocked.write_text("")  # where the cache folder should be
    cache = SqliteCache(blocked / "api.sqlite")
    with pytest.raises(CacheError) as err:
        cache.set("k", 1, 30)
    assert str(err.value).startswith(f"cannot open the API cache {blocked / 'api.sqlite'}: ") and "\n" not in str(err.value)


# -- between processes ----------------------------------------------------------------------------
def test_two_processes_see_each_others_writes(backend):
    kind, cache, target = backend
    cache.set("from-parent", {"who": "parent"}, 30)
    child = _build(kind, target) + (
        "import json\n"
        "print(json.dumps(cache.get('from-parent')))\n"
        "cache.set('from-child', {'who': 'child'}, 30)\n"
        "cache.delete('from-parent')\n"
    )
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"who": "parent"}
    assert cache.get("from-child") == {"who": "child"}
    assert cache.get("from-parent") is None


def test_of_many_processes_adding_one_key_exactly_one_wins(backend, tmp_path):
    kind, cache, target = backend
    go = tmp_path / "go"
    child = _build(kind, target) + (
        "import os, sys, time\n"
        "cache.get('warm-up')\n"  # connect first, so the adds below start together
        "print('ready', flush=True)\n"
        f"deadline = time.monotonic() + 30\n"
        f"while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.001)\n"
        "print(cache.add('lock', os.getpid(), 60), flush=True)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        go.write_text("")
        results = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert sorted(results) == ["False", "False", "False", "True"]
    winner = procs[results.index("True")].pid
    assert cache.get("lock") == winner


def test_sqlitedict_runs_its_connection_in_a_greenlet_under_gevent(tmp_path):
    """The API's processes are monkey-patched: sqlitedict's connection thread is then a greenlet (no OS
    thread is added) and many greenlets use it at once, each getting its own answers."""
    code = (
        "from gevent import monkey\n"
        "monkey.patch_all()\n"
        "import os, gevent\n"
        "from flora_http.cache import SqliteCache\n"
        "threads = lambda: len(os.listdir('/proc/self/task'))\n"
        "before = threads()\n"
        f"cache = SqliteCache({str(tmp_path / 'api.sqlite')!r})\n"
        "cache.get('open')\n"
        "after = threads()\n"
        "def work(i):\n"
        "    for j in range(20):\n"
        "        cache.set(f'k{i}-{j}', [i, j], 30)\n"
        "        assert cache.get(f'k{i}-{j}') == [i, j]\n"
        "    return cache.add('lock', i, 30)\n"
        "jobs = [gevent.spawn(work, i) for i in range(20)]\n"
        "gevent.joinall(jobs, raise_error=True)\n"
        "print(before, after, sum(job.value for job in jobs), cache.get('k19-19'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    before, after, winners, last = out.stdout.split(maxsplit=3)
    assert before == after, out.stdout  # no OS thread for the connection
    assert winners == "1" and last.strip() == "[19, 19]"


# -- get_or_fill: one fetch for every process ---------------------------------------------------------
class FakeTime:
    """A monotonic clock and a sleep that advances it and runs what the test wants at each pause."""

    def __init__(self, on_sleep=None):
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self.sleeps)


def _counting(value, keep=True):
    calls = []

    def fetch():
        calls.append(1)
        return value, keep

    return fetch, calls


@pytest.fixture
def sqlite_cache(tmp_path):
    cache = SqliteCache(tmp_path / "api.sqlite")
    yield cache
    cache.close()


def test_get_or_fill_fetches_on_a_miss_and_then_serves_the_cache(sqlite_cache):
    fetch, calls = _counting({"guilds": []})
    assert get_or_fill(sqlite_cache, "k", 30, fetch) == {"guilds": []}
    assert get_or_fill(sqlite_cache, "k", 30, fetch) == {"guilds": []}
    assert len(calls) == 1
    assert sqlite_cache.get("k#fill") is None  # the lock is released


def test_get_or_fill_waits_for_the_process_that_holds_the_lock(sqlite_cache):
    assert sqlite_cache.add("k#fill", 999, 12)  # another process is filling
    t = FakeTime(lambda n: n == 3 and sqlite_cache.set("k", "theirs", 30))
    fetch, calls = _counting("mine")
    assert get_or_fill(sqlite_cache, "k", 30, fetch, clock=t.clock, sleep=t.sleep) == "theirs"
    assert calls == [] and t.sleeps == 3


def test_get_or_fill_takes_over_a_lock_released_without_a_value(sqlite_cache):
    assert sqlite_cache.add("k#fill", 999, 12)
    t = FakeTime(lambda n: n == 2 and sqlite_cache.delete("k#fill"))  # their fetch failed
    fetch, calls = _counting("mine")
    assert get_or_fill(sqlite_cache, "k", 30, fetch, clock=t.clock, sleep=t.sleep) == "mine"
    assert len(calls) == 1 and sqlite_cache.get("k") == "mine"


def test_get_or_fill_fetches_itself_after_waiting_the_locks_lifetime(sqlite_cache):
    assert sqlite_cache.add("k#fill", 999, 30)  # held and never released (its process hangs)
    t = FakeTime()
    fetch, calls = _counting("mine")
    assert get_or_fill(sqlite_cache, "k", 30, fetch, lock_ttl=2.0, poll=0.5, clock=t.clock, sleep=t.sleep) == "mine"
    assert len(calls) == 1 and t.now == 2.0


def test_get_or_fill_keeps_only_what_fetch_says_to_keep_and_releases_the_lock_on_errors(sqlite_cache):
    fetch, calls = _counting(False, keep=False)  # e.g. Discord answered 5xx: not an answer to cache
    assert get_or_fill(sqlite_cache, "k", 30, fetch) is False
    assert get_or_fill(sqlite_cache, "k", 30, fetch) is False
    assert len(calls) == 2 and sqlite_cache.get("k") is None

    def refused():
        raise PermissionError("Discord said no")

    with pytest.raises(PermissionError):
        get_or_fill(sqlite_cache, "e", 30, refused)
    assert sqlite_cache.get("e#fill") is None


def test_get_or_fill_goes_to_the_source_when_the_cache_fails_and_says_so_once(caplog, monkeypatch):
    monkeypatch.setattr(cache_module, "_last_warning", -1e9)  # no warning said yet in this process
    cache = RedisCache(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    fetch, calls = _counting("direct")
    with caplog.at_level(logging.WARNING, logger="flora.api.cache"):
        assert get_or_fill(cache, "k", 30, fetch) == "direct"
        assert get_or_fill(cache, "k", 30, fetch) == "direct"
    assert len(calls) == 2
    [warning] = [r.getMessage() for r in caplog.records if r.name == "flora.api.cache"]
    assert warning.startswith("API cache (Redis): get failed: ") and "going to the source without the cache" in warning
    assert "\n" not in warning


def test_get_or_fill_from_many_processes_fetches_once(backend, tmp_path):
    kind, cache, target = backend
    go, calls = tmp_path / "go", tmp_path / "calls"
    child = _build(kind, target) + (
        "import os, time\n"
        "from flora_http.cache import get_or_fill\n"
        "cache.get('warm-up')\n"
        "print('ready', flush=True)\n"
        "deadline = time.monotonic() + 30\n"
        f"while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.001)\n"
        "def fetch():\n"
        f"    with open({str(calls)!r}, 'a') as f:\n"
        "        f.write(f'{os.getpid()}\\n')\n"
        "    time.sleep(0.3)  # a slow Discord: the others are waiting meanwhile\n"
        "    return {'filled_by': os.getpid()}, True\n"
        "print(get_or_fill(cache, 'guilds', 30, fetch)['filled_by'], flush=True)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        for _ in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        go.write_text("")
        answers = [proc.communicate(timeout=60)[0].strip() for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    fetched_by = calls.read_text().split()
    assert len(fetched_by) == 1, fetched_by
    assert answers == fetched_by * 4


# -- end to end: `flora api -w 2` against the emulator ------------------------------------------------
def _hold_a_worker(port: int) -> http.client.HTTPConnection:
    """A keep-alive connection that has been answered: with ``--worker-connections 1`` the gunicorn
    worker that answered it accepts no other connection until it is closed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/health")
    resp = conn.getresponse()
    assert resp.status == 200 and resp.read() == b"ok"
    return conn


def _served_by(log_path, path: str) -> list[str]:
    """The pids of the workers that answered ``GET path`` with 200, in order (access log format ``%(p)s %(m)s %(U)s %(s)s``)."""
    lines = (re.fullmatch(r"<(\d+)> GET (\S+) 200", line) for line in log_path.read_text(errors="replace").splitlines())
    return [m.group(1) for m in lines if m and m.group(2) == path]


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_two_gunicorn_workers_ask_discord_once_for_a_users_guilds(tmp_path, kind, request):
    """alice's ``GET /api/guilds`` on one worker fills the cache; the same request on the other worker
    (and a guild route there) is answered from it: the emulator sees one ``/users/@me/guilds`` and one
    bot ``GET /guilds/{id}``. bob gets his own list, from his own call. The token is in no key or value."""
    from test_api_auth import API_SECRET, CLIENT_ID, CLIENT_SECRET, login

    from flora_dev.emulator import Emulator
    from flora_dev.testing import BOT_TOKEN, start_flora, stop_flora

    extra = {}
    if kind == "redis":
        extra["REDIS_URL"] = request.getfixturevalue("redis_target")[0]
    emu = Emulator(token=BOT_TOKEN, oauth_client_secret=CLIENT_SECRET)
    emu.start()
    server = proc = None
    holds: list[http.client.HTTPConnection] = []
    try:
        alice, bob = emu.create_user("alice"), emu.create_user("bob")
        a, b = emu.create_guild("Alice's"), emu.create_guild("Bob's")
        emu.add_member(a["id"], alice["id"], roles=[emu.create_role(a["id"], "managers", permissions=str(0x20))["id"]])
        emu.add_member(b["id"], bob["id"], roles=[emu.create_role(b["id"], "admins", permissions=str(0x8))["id"]])
        emu.add_member(b["id"], alice["id"])  # a plain member there: not in her admin list
        serve_port = free_port()
        server = start_flora(
            emu,
            tmp_path,
            API_PORT=serve_port,
            DISCORD_CLIENT_ID=CLIENT_ID,
            DISCORD_CLIENT_SECRET=CLIENT_SECRET,
            API_SECRET=API_SECRET,
            DISCORD_REDIRECT_URI=f"http://127.0.0.1:{serve_port}/api/auth/callback",
            **extra,
        )
        cookies = {who: login(server, emu, user["id"]).cookie("flora_session") for who, user in (("alice", alice), ("bob", bob))}
        assert emu.oauth_requests("/users/@me/guilds") == []  # logging in asks for /users/@me only

        port = free_port()
        env = dict(
            server.env,
            API_PORT=str(port),
            GUNICORN_CMD_ARGS="--worker-connections 1 --keep-alive 120 --access-logformat '%(p)s %(m)s %(U)s %(s)s'",
        )
        log_path = tmp_path / "flora-api.log"
        with open(log_path, "w") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-m", "flora_cli", "api", "--workers", "2"],
                env=env,
                cwd=tmp_path,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(
            lambda: log_path.read_text(errors="replace").count("Booting worker with pid") == 2 or proc.poll() is not None,
            timeout=60,
            message="two gunicorn workers",
        )
        assert proc.poll() is None, log_path.read_text()
        api = f"http://127.0.0.1:{port}/api"

        def as_user(who: str, path: str):
            return http_json("GET", api + path, headers={"Cookie": f"flora_session={cookies[who]}"}, timeout=30)

        holds.append(_hold_a_worker(port))  # worker X is busy
        status, first = as_user("alice", "/guilds")  # so worker Y answers, asking Discord
        assert (
            status == 200 and [(g["id"], g["name"]) for g in first] == [(a["id"], "Alice's")] and first[0]["permissions"] & 0x20
        )
        holds.append(_hold_a_worker(port))  # now Y is busy (X still is)
        holds.pop(0).close()  # X is free again: it answers the next requests
        assert as_user("alice", "/guilds") == (200, first)
        assert as_user("alice", f"/logs/{a['id']}")[0] == 200  # a guild route: the same cached answers
        assert as_user("alice", f"/logs/{b['id']}") == (403, {"message": "Forbidden: Admin permission required"})
        status, bobs = as_user("bob", "/guilds")
        assert status == 200 and [g["id"] for g in bobs] == [b["id"]]  # his own list, not alice's
        holds.pop().close()

        wait_for(lambda: len(_served_by(log_path, "/api/guilds")) == 3, timeout=10, message="the access log")
        served_by = _served_by(log_path, "/api/guilds")
        assert served_by[0] != served_by[1], (served_by, log_path.read_text())  # alice's two requests: two workers
        assert len(emu.oauth_requests("/users/@me/guilds", user_id=alice["id"])) == 1
        assert len(emu.oauth_requests("/users/@me/guilds", user_id=bob["id"])) == 1
        bot_checks = [
            r
            for r in emu.requests
            if r["method"] == "GET"
            and r["path"] == f"/guilds/{a['id']}"
            and r["headers"].get("User-Agent") == "DiscordBot (flora, 1.0)"
        ]
        assert len(bot_checks) == 1, bot_checks

        # what the cache holds of alice's token: its SHA-256 in the key, never the token
        conn = sqlite3.connect(server.data_dir / "flora.db")
        token = conn.execute("SELECT access_token FROM sessions WHERE user_id = ?", (alice["id"],)).fetchone()[0]
        conn.close()
        if kind == "sqlite":
            stored = b"".join(p.read_bytes() for p in (server.data_dir / "cache").glob("api.sqlite*"))
            keys = [k for k in _rows(server.data_dir / "cache" / "api.sqlite") if k.startswith("user-guilds:")]
        else:
            import redis

            client = redis.Redis.from_url(extra["REDIS_URL"], decode_responses=True)
            keys = [k.removeprefix("flora:api:") for k in client.scan_iter(match=f"flora:api:user-guilds:{alice['id']}:*")]
            stored = "".join(k + (client.get(k) or "") for k in client.scan_iter(match="flora:api:*")).encode()
            client.close()
        assert f"user-guilds:{alice['id']}:{hashlib.sha256(token.encode()).hexdigest()}" in keys
        assert token.encode() not in stored
    finally:
        for conn in holds:
            conn.close()
        try:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
                    raise AssertionError(f"flora api did not stop on SIGTERM:\n{log_path.read_text(errors='replace')}") from None
        finally:
            try:
                if server is not None:
                    stop_flora(server)
            finally:
                emu.stop()
    out = log_path.read_text(errors="replace")
    assert "Traceback" not in out, out
