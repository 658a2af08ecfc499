"""flora's KV backends against the conformance suite (``flora_plugins.kv.conformance``): sqlite (real
files), PostgreSQL and Redis (real servers); then what is particular to each backend."""

from __future__ import annotations

import os
import uuid

import pytest
from conftest import IN_CI

from flora_core.config import load_config
from flora_core.storage import open_database
from flora_plugins.kv import conformance
from flora_plugins.kv.backends import open_backend
from flora_plugins.kv.backends.sqlite_backend import SqliteBackend
from flora_plugins.kv.conformance import *  # noqa: F403 - the suite's tests and fixtures
from flora_plugins.kv.conformance import GUILD, OTHER, T0, Clock, KvService, error
from flora_plugins.kv.errors import KV_STORE_EXISTS, KV_UNAVAILABLE, KvError

BACKENDS = ["sqlite", "postgres", "redis"]


@pytest.fixture
def redis_url():
    """A Redis at ``FLORA_TEST_REDIS`` (default 127.0.0.1:6379/0) with a key prefix of our own, removed afterwards."""
    base = os.environ.get("FLORA_TEST_REDIS", "redis://127.0.0.1:6379/0")
    try:
        import redis

        client = redis.Redis.from_url(base, socket_connect_timeout=3)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"Redis is required under CI=true but is not reachable at {base}: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    prefix = f"flora-test-{uuid.uuid4().hex[:12]}:"
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}prefix={prefix}"
    leftovers = list(client.scan_iter(match=f"{prefix}*"))
    if leftovers:
        client.delete(*leftovers)
    client.close()


@pytest.fixture(params=BACKENDS)
def kv_env(request, tmp_path):
    """The environment that selects one backend (rebuildable in another process) with a SQLite registry."""
    env = {
        "FLORA_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'flora.db'}",
        "KV_BACKEND": request.param,
    }
    if request.param == "postgres":
        env["KV_URL"] = request.getfixturevalue("postgres_url")
    elif request.param == "redis":
        env["KV_URL"] = request.getfixturevalue("redis_url")
    return env


def test_unknown_backend_lists_the_installed_ones(tmp_path, plugins):
    config = load_config(env={"FLORA_DATA_DIR": str(tmp_path), "KV_BACKEND": "rocksdb"})
    exc = error(open_backend, config, plugins)
    assert exc.code == KV_UNAVAILABLE
    assert exc.message == "KV_BACKEND='rocksdb' is not an installed KV backend (installed: postgres, redis, sqlite)"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"KV_BACKEND": "redis"}, "KV_BACKEND=redis needs KV_URL (or REDIS_URL) to be a redis:// URL"),
        ({"KV_BACKEND": "postgres"}, "KV_BACKEND=postgres needs KV_URL (or DATABASE_URL) to be a postgresql:// URL"),
    ],
)
def test_missing_urls_are_one_clear_message(tmp_path, plugins, env, message):
    config = load_config(env={"FLORA_DATA_DIR": str(tmp_path), **env})
    assert error(open_backend, config, plugins).message == message


@pytest.mark.parametrize(
    "backend, url, needle",
    [
        ("redis", "redis://127.0.0.1:1/0", "kv backend redis: Error 111 connecting to 127.0.0.1:1"),
        (
            "postgres",
            "postgresql://postgres@127.0.0.1:1/test",
            'kv backend postgres: cannot connect: connection to server at "127.0.0.1", port 1 failed',
        ),
    ],
)
def test_unreachable_server_is_kv_unavailable(tmp_path, plugins, backend, url, needle):
    config = load_config(env={"FLORA_DATA_DIR": str(tmp_path), "KV_BACKEND": backend, "KV_URL": url})
    kv_backend = open_backend(config, plugins)  # connecting is lazy: the server may come up later
    exc = error(kv_backend.get, GUILD, "s", "k", T0)
    assert exc.code == KV_UNAVAILABLE and needle in exc.message, exc.message


# -- backend specifics ---------------------------------------------------------------------------
def test_registry_on_postgres(postgres_url, plugins, tmp_path):
    config = load_config(env={"FLORA_DATA_DIR": str(tmp_path), "DATABASE_URL": postgres_url})
    db = open_database(config, plugins)
    try:
        kv = KvService(db, open_backend(config, plugins))
        kv.create_store(GUILD, "b")
        kv.create_store(GUILD, "B")
        kv.create_store(GUILD, "a")
        assert [s["store_name"] for s in kv.list_stores(GUILD)] == ["B", "a", "b"]  # byte order, as on SQLite
        assert error(kv.create_store, GUILD, "a").code == KV_STORE_EXISTS
        kv.set(GUILD, "a", "k", "v")
        assert kv.get(GUILD, "a", "k") == "v"
        for name in ("a", "b", "B"):
            kv.delete_store(GUILD, name)
        assert kv.list_stores(GUILD) == []
    finally:
        db.close()


def test_sqlite_files_are_per_guild_and_store_and_readable_with_sqlitedict(tmp_path, plugins):
    from sqlitedict import SqliteDict

    config = load_config(env={"FLORA_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": f"sqlite:///{tmp_path / 'flora.db'}"})
    assert config.kv_backend == "sqlite"  # the default
    db = open_database(config, plugins)
    kv = KvService(db, open_backend(config, plugins))
    try:
        kv.create_store(GUILD, "s")
        kv.create_store(OTHER, "s")
        kv.set(GUILD, "s", "k", "héllo", metadata={"m": 1})
        path = tmp_path / "data" / "kv" / GUILD / "s.sqlite"
        assert kv.backend.path(GUILD, "s") == path and path.exists()
        with SqliteDict(str(path), tablename="kv", flag="r", decode=str, journal_mode="WAL") as view:
            assert dict(view) == {"k": "héllo"}
        kv.delete_store(GUILD, "s")  # the data is gone; the (empty) file stays for connections other processes hold
        with SqliteDict(str(path), tablename="kv", flag="r", decode=str, journal_mode="WAL") as view:
            assert dict(view) == {}
        assert b"h\xc3\xa9llo" not in path.read_bytes()  # overwritten, not left in a free page
    finally:
        kv.backend.close()
        db.close()


def test_the_earlier_backend_name_sqlitedict_still_opens_the_same_files(tmp_path, plugins):
    env = {"FLORA_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": f"sqlite:///{tmp_path / 'flora.db'}"}
    db = open_database(load_config(env=env), plugins)
    try:
        KvService(db, open_backend(load_config(env=env), plugins)).create_store(GUILD, "s")
        KvService(db, open_backend(load_config(env=env), plugins)).set(GUILD, "s", "k", "v")
        old = KvService(db, open_backend(load_config(env={**env, "KV_BACKEND": "sqlitedict"}), plugins))
        assert old.backend.name == "sqlite" and old.get(GUILD, "s", "k") == "v"
    finally:
        db.close()


def test_postgres_sizes_of_an_existing_table_are_filled_in_once(postgres_url, plugins, tmp_path):
    """A ``kv_entries`` table from before ``kv_store_usage`` existed: the first backend to connect adds the
    table and its triggers, filled from the entries; later ones leave it as it is."""
    import psycopg2

    from flora_plugins.kv.backends.postgres_backend import SCHEMA

    conn = psycopg2.connect(postgres_url)
    with conn, conn.cursor() as cur:
        for statement in SCHEMA:
            cur.execute(statement)
        cur.execute(
            "INSERT INTO kv_entries (guild_id, store, key, value, meta_size) VALUES"
            " (%s, 's', 'a', 'xyz', 0), (%s, 's', 'é', '', 12), (%s, 't', 'k', 'v', 0)",
            (GUILD, GUILD, OTHER),
        )
    conn.close()
    config = load_config(env={"FLORA_DATA_DIR": str(tmp_path), "KV_BACKEND": "postgres", "KV_URL": postgres_url})
    first = open_backend(config, plugins)
    try:
        assert (first.store_bytes(GUILD, "s"), first.store_bytes(OTHER, "t")) == (1 + 3 + 2 + 12, 2)
        first.set(GUILD, "s", "b", "12", None, None)
        second = open_backend(config, plugins)
        try:
            assert second.store_bytes(GUILD, "s") == 18 + 3
        finally:
            second.close()
        first.drop_store(GUILD, "s")
        assert first.store_bytes(GUILD, "s") == 0
    finally:
        first.close()


# -- a backend without atomic quotas ----------------------------------------------------------------
class PlainSqlite(SqliteBackend):
    """The sqlite backend as a third-party backend without ``atomic_quotas``: its writes take no ``quota``."""

    atomic_quotas = False

    def set(self, guild_id, store, key, value, expiration, metadata_json):
        return super().set(guild_id, store, key, value, expiration, metadata_json)

    def update_metadata(self, guild_id, store, key, metadata_json, now):
        return super().update_metadata(guild_id, store, key, metadata_json, now)

    def incr(self, guild_id, store, key, by, now):
        return super().incr(guild_id, store, key, by, now)

    def cas(self, guild_id, store, key, expected, value, expiration, metadata_json, now):
        return super().cas(guild_id, store, key, expected, value, expiration, metadata_json, now)


@pytest.fixture
def make_plain_kv(tmp_path, plugins):
    env = {"FLORA_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": f"sqlite:///{tmp_path / 'flora.db'}"}
    db = open_database(load_config(env=env), plugins)
    made: list[KvService] = []

    def make(limits):
        clock = Clock()
        made.append(KvService(db, PlainSqlite(tmp_path / "data" / "kv"), limits, clock=clock, monotonic=clock))
        return made[-1]

    yield make
    for service in made:
        service.close()
    db.close()


@pytest.mark.parametrize("check", ["edge", "threads-store", "threads-guild"])
def test_without_atomic_quotas_the_service_checks_before_the_write(make_plain_kv, check):
    """The same rules, exact among one process's threads (the service never passes ``quota`` to such a backend)."""
    if check == "edge":
        conformance.test_a_quota_counts_exact_sizes_at_its_edge(make_plain_kv)
    else:
        conformance.test_threads_writing_at_once_cannot_exceed_a_quota(make_plain_kv, check.split("-")[1])


# -- the guild lock of the file backends ------------------------------------------------------------
LOCK_CHILD = r"""
import os, sys
from pathlib import Path
from flora_plugins.kv.locks import file_lock

path = Path(sys.argv[1])
ready_r, ready_w = os.pipe()
go_r, go_w = os.pipe()
with file_lock(path):
    pid = os.fork()
    if pid == 0:  # the child lives on after its parent let go of the lock
        os.write(ready_w, b"x")
        os.read(go_r, 1)
        os._exit(0)
    os.read(ready_r, 1)
try:
    with file_lock(path, timeout=2):  # the child's inherited descriptor must not hold it
        print("free", flush=True)
finally:
    os.write(go_w, b"x")
    os.waitpid(pid, 0)
"""


def test_the_guild_lock_excludes_threads_and_is_not_kept_by_a_forked_child(tmp_path):
    import subprocess
    import sys
    import threading

    from flora_plugins.kv.locks import file_lock

    path = tmp_path / "g" / ".quota.lock"
    inside = threading.Event()
    with file_lock(path):

        def other():
            with pytest.raises(KvError) as info, file_lock(path, timeout=0.2, what="kv backend x: the guild's quota lock"):
                inside.set()
            assert info.value.message == f"kv backend x: the guild's quota lock: {path} was not free for 0.2s"

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
        assert not inside.is_set()
    done = subprocess.run([sys.executable, "-c", LOCK_CHILD, str(path)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "free\n"), done.stderr
