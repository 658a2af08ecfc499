"""The KV write rate limit and the export limit, counted across processes (``flora_plugins/kv/rate.py``):
in Redis with ``REDIS_URL``, else in the data folder's ``cache/kv-rate.sqlite``; the counters' rules with a
hand-moved clock, then real processes writing at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import pytest
from conftest import IN_CI

from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import open_database
from flora_plugins.kv.backends import open_backend
from flora_plugins.kv.errors import KV_RATE_LIMITED, KvError
from flora_plugins.kv.export import export_guild
from flora_plugins.kv.limits import Limits
from flora_plugins.kv.rate import MemoryCounter, RedisCounter, SqliteCounter, open_counter
from flora_plugins.kv.service import KvService, service_for

GUILD = "111111111111111111"
T0 = 1_700_000_000.0


class Clock:
    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def redis_base():
    """(URL, a namespace of our own) on the test Redis; the namespace's keys are removed afterwards."""
    url = os.environ.get("FLORA_TEST_REDIS", "redis://127.0.0.1:6379/0")
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"Redis is required under CI=true but is not reachable at {url}: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    namespace = f"flora-test-{uuid.uuid4().hex[:12]}"
    yield url, namespace
    keys = list(client.scan_iter(match=f"{namespace}:*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def make_counter(request, tmp_path):
    """``make_counter(clock)``: a counter of each kind reading ``clock``."""
    made = []

    def make(clock):
        if request.param == "memory":
            counter = MemoryCounter(clock)
        elif request.param == "sqlite":
            counter = SqliteCounter(tmp_path / "kv-rate.sqlite", clock)
        else:
            url, namespace = request.getfixturevalue("redis_base")
            counter = RedisCounter(url, namespace=namespace, clock=clock)
        made.append(counter)
        return counter

    yield make
    for counter in made:
        counter.close()


def test_a_rolling_window(make_counter):
    clock = Clock()
    counter = make_counter(clock)
    for _ in range(3):
        assert counter.take(["a"], 3, 60) is None
        clock.now += 10  # at T0, T0+10, T0+20
    assert counter.take(["a"], 3, 60) == pytest.approx(30)  # now T0+30: the first leaves at T0+60
    assert counter.take(["b"], 3, 60) is None  # scopes count apart
    clock.now = T0 + 59.5
    assert counter.take(["a"], 3, 60) == pytest.approx(0.5)
    clock.now = T0 + 60  # an event counts for exactly `window` seconds
    assert counter.take(["a"], 3, 60) is None
    assert counter.take(["a"], 3, 60) == pytest.approx(10)  # T0+10 is the oldest now
    assert counter.take(["a"], 0, 60) == 60  # no room at all


def test_several_scopes_count_together_or_not_at_all(make_counter):
    clock = Clock()
    counter = make_counter(clock)
    assert counter.take(["guild", "actor-1"], 1, 60) is None
    assert counter.take(["guild", "actor-2"], 1, 60) == pytest.approx(60)  # the guild is full
    clock.now += 1
    assert counter.take(["other-guild", "actor-2"], 1, 60) is None  # actor-2 was not counted above
    assert counter.take(["other-guild"], 2, 60) is None


def test_events_from_a_clock_set_back_do_not_block(make_counter):
    clock = Clock()
    counter = make_counter(clock)
    assert counter.take(["a"], 1, 60) is None
    clock.now -= 3600  # the machine's clock was an hour ahead
    assert counter.take(["a"], 1, 60) is None


def test_redis_uses_its_own_clock_by_default(redis_base):
    url, namespace = redis_base
    counter = RedisCounter(url, namespace=namespace)
    try:
        assert counter.take(["a"], 2, 30) is None
        assert counter.take(["a"], 2, 30) is None
        assert 29 < counter.take(["a"], 2, 30) <= 30
    finally:
        counter.close()


def test_while_redis_fails_the_machine_counts(tmp_path, caplog):
    local = SqliteCounter(tmp_path / "kv-rate.sqlite")
    counter = RedisCounter("redis://127.0.0.1:1/0", namespace="x", fallback=local)
    try:
        assert counter.take(["a"], 1, 60) is None
        assert counter.take(["a"], 1, 60) == pytest.approx(60, abs=1)
        assert local.take(["a"], 1, 60) is not None  # it was counted there
    finally:
        counter.close()
    assert any("Redis failed; counting on this machine only (sqlite)" in r.getMessage() for r in caplog.records)


def test_a_counter_that_cannot_count_lets_events_through(tmp_path, caplog):
    (tmp_path / "blocked").write_text("a file where the counter's folder should be")
    counter = SqliteCounter(tmp_path / "blocked" / "kv-rate.sqlite")
    assert counter.take(["a"], 1, 60) is None
    assert counter.take(["a"], 1, 60) is None
    assert [r.getMessage() for r in caplog.records if "kv rate counter" in r.getMessage()][0].startswith(
        f"kv rate counter: cannot count in {tmp_path / 'blocked' / 'kv-rate.sqlite'}; the event was let through"
    )


def env_for(tmp_path, counter: str, request) -> dict:
    env = {"FLORA_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": f"sqlite:///{tmp_path / 'flora.db'}"}
    if counter == "redis":
        url, namespace = request.getfixturevalue("redis_base")
        env.update(REDIS_URL=url, BUS_NAMESPACE=namespace)
    return env


@pytest.mark.parametrize("counter", ["sqlite", "redis"])
def test_the_server_counts_where_every_process_sees_it(tmp_path, request, counter):
    env = env_for(tmp_path, counter, request)
    config, plugins = load_config(env=env), Plugins()
    shared = open_counter(config)
    assert type(shared) is {"sqlite": SqliteCounter, "redis": RedisCounter}[counter]
    if counter == "redis":
        assert shared.prefix == f"{env['BUS_NAMESPACE']}:kv-rate:"
    else:
        assert shared.path == tmp_path / "data" / "cache" / "kv-rate.sqlite"
    shared.close()
    db = open_database(config, plugins)
    cache: dict = {}
    try:
        service = service_for(cache, db, config, plugins)
        assert type(service.counter) is type(shared)
        service.close()
    finally:
        db.close()


WRITER = r"""
import json, sys
from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import open_database
from flora_plugins.kv.backends import open_backend
from flora_plugins.kv.errors import KvError
from flora_plugins.kv.limits import Limits
from flora_plugins.kv.rate import open_counter
from flora_plugins.kv.service import KvService

env, guild, name, tries = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
config, plugins = load_config(env=env), Plugins()
# what service_for builds, with 10 writes a minute instead of flora's 120
kv = KvService(open_database(config, plugins), open_backend(config, plugins), Limits(writes_per_window=10),
               counter=open_counter(config))
print("ready", flush=True)
sys.stdin.readline()
outcomes = []
for i in range(tries):
    try:
        kv.set(guild, "s", f"{name}-{i}", "v")
        outcomes.append("ok")
    except KvError as exc:
        outcomes.append(f"{exc.code}: {exc.message}")
print(json.dumps(outcomes), flush=True)
"""


def run_writers(env: dict, names: list[str], tries: int) -> list[str]:
    """Processes writing ``tries`` keys each, started together; every outcome."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, json.dumps(env), GUILD, name, str(tries)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in names
    ]
    outcomes: list[str] = []
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
        for child in children:
            child.stdin.write("\n")
            child.stdin.flush()
        for child in children:
            out, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
            outcomes += json.loads(out.strip().splitlines()[-1])
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    return outcomes


@pytest.mark.parametrize("counter", ["sqlite", "redis"])
def test_the_write_rate_limit_holds_across_processes(tmp_path, request, counter):
    """Two processes write 10 keys each at once under a limit of 10 a minute: 10 in all are accepted, the other
    10 refused with flora's message, and the next write, from a third process, is refused too."""
    env = env_for(tmp_path, counter, request)
    config, plugins = load_config(env=env), Plugins()
    db = open_database(config, plugins)
    kv = KvService(db, open_backend(config, plugins), Limits(writes_per_window=10), counter=open_counter(config))
    try:
        kv.create_store(GUILD, "s")
        outcomes = run_writers(env, ["a", "b"], 10)
        refused = "KV_RATE_LIMITED: kv write rate limit exceeded; retry later"
        assert (outcomes.count("ok"), outcomes.count(refused), len(outcomes)) == (10, 10, 20), outcomes
        assert len(kv.list(GUILD, "s")["keys"]) == 10
        with pytest.raises(KvError) as info:
            kv.set(GUILD, "s", "eleventh", "v")
        assert (info.value.code, info.value.message) == (KV_RATE_LIMITED, "kv write rate limit exceeded; retry later")
        assert 0 < info.value.retry_after <= 60
    finally:
        kv.close()
        db.close()


EXPORTER = r"""
import json, sys
from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import open_database
from flora_plugins.kv.export import export_guild
from flora_plugins.kv.service import service_for

config, plugins = load_config(env=json.loads(sys.argv[1])), Plugins()
print(export_guild(service_for({}, open_database(config, plugins), config, plugins), config.data_path, sys.argv[2], "alice"))
"""


@pytest.mark.parametrize("counter", ["sqlite", "redis"])
def test_the_export_limit_holds_across_processes(tmp_path, request, counter):
    """flora's one export per minute per guild: another process exported, so this one is refused."""
    env = env_for(tmp_path, counter, request)
    config, plugins = load_config(env=env), Plugins()
    db = open_database(config, plugins)
    try:
        kv = service_for({}, db, config, plugins)
        kv.create_store(GUILD, "s")
        done = subprocess.run(
            [sys.executable, "-c", EXPORTER, json.dumps(env), GUILD], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        assert (config.data_path / "kv-backups" / GUILD / f"{done.stdout.strip()}.json").exists()
        with pytest.raises(KvError) as info:
            export_guild(kv, config.data_path, GUILD, "bob")
        assert info.value.code == KV_RATE_LIMITED
        assert info.value.message.startswith("kv export rate limit exceeded; retry in ")
        assert 0 < info.value.retry_after <= 60
        kv.close()
    finally:
        db.close()
