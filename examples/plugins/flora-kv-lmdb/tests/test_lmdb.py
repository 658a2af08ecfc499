"""What is particular to the LMDB backend: its files, keys longer than LMDB's, the map growing across
processes, its bounds, writers that die, forks, and its configuration errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest
from flora_kv_lmdb.backend import ENVIRONMENTS, read_entries

from flora_core.config import ConfigError, load_config
from flora_plugins.kv.backends import open_backend
from flora_plugins.kv.conformance import GUILD, OTHER, T0, byte_order, error, kv, make_kv, plugins  # noqa: F401 - fixtures
from flora_plugins.kv.errors import KV_UNAVAILABLE
from flora_plugins.kv.limits import entry_size
from flora_plugins.kv.service import metadata_json

MB = 1024 * 1024


@pytest.fixture
def kv_env(tmp_path):
    """A 1 MiB map to start with, so that the tests below make it grow."""
    return {
        "FLORA_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'flora.db'}",
        "KV_BACKEND": "lmdb",
        "KV_LMDB_MAP_SIZE_MB": "1",
        "FLORA_STRICT_PLUGINS": "1",
    }


def run_child(code: str, kv_env: dict, *args: str, stdin: str | None = None) -> str:
    """Run ``code`` in a fresh interpreter with the backend ``kv_env`` selects as ``backend``; its stdout."""
    prelude = (
        "import json, sys\nfrom flora_core.config import load_config\nfrom flora_core.plugins import Plugins\n"
        "from flora_plugins.kv.backends import open_backend\n"
        "backend = open_backend(load_config(env=json.loads(sys.argv[1])), Plugins())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + code, json.dumps(kv_env), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_each_guild_and_store_is_an_lmdb_environment_of_its_own(kv, kv_env, tmp_path):
    kv.create_store(OTHER, "s")
    kv.set(GUILD, "s", "k", "héllo", expiration=T0 + 60, metadata={"m": 1})
    kv.set(OTHER, "s", "k", "theirs")
    path = tmp_path / "data" / "kv-lmdb" / GUILD / "s"
    assert kv.backend.path(GUILD, "s") == path
    assert sorted(p.name for p in path.iterdir()) == ["data.mdb", "lock.mdb"]
    kv.backend.close()  # this process lets go of the files; read_entries opens them on its own
    assert read_entries(path) == {"k": {"value": "héllo", "expiration": T0 + 60, "metadata": {"m": 1}}}
    assert read_entries(tmp_path / "data" / "kv-lmdb" / OTHER / "s") == {
        "k": {"value": "theirs", "expiration": None, "metadata": None}
    }
    assert kv.get(GUILD, "s", "k") == "héllo"  # and the backend opens them again when used


def test_keys_longer_than_an_lmdb_key_share_a_bucket_and_keep_every_rule(kv):
    head = "k" * 511  # LMDB's longest key; flora allows 512 bytes
    keys = [head + "b", head, head + "a", "k" * 510 + "é", head + "\x7f", "k" * 510]  # "é" splits across the head
    for i, key in enumerate(keys):
        kv.set(GUILD, "s", key, f"v{i}", expiration=T0 + 100 + i % 2, metadata={"i": i})
    assert [kv.get(GUILD, "s", key) for key in keys] == [f"v{i}" for i in range(len(keys))]
    assert [k["name"] for k in kv.list(GUILD, "s")["keys"]] == byte_order(keys)
    assert [k["name"] for k in kv.list(GUILD, "s", cursor=head)["keys"]] == byte_order(
        [head + "a", head + "b", head + "\x7f", "k" * 510 + "é"]
    )
    assert [k["name"] for k in kv.list(GUILD, "s", prefix=head)["keys"]] == [head, head + "a", head + "b", head + "\x7f"]
    page = kv.list(GUILD, "s", prefix=head, limit=2, cursor=head + "a")
    assert ([k["name"] for k in page["keys"]], page["cursor"]) == ([head + "b", head + "\x7f"], head + "\x7f")
    sizes = sum(entry_size(key, f"v{i}", T0 + 100 + i % 2, metadata_json({"i": i})) for i, key in enumerate(keys))
    assert kv.backend.store_bytes(GUILD, "s") == sizes

    kv.delete(GUILD, "s", head + "a")
    assert kv.get(GUILD, "s", head + "a") is None and kv.get(GUILD, "s", head + "b") == "v0"
    assert kv.incr(GUILD, "s", head + "c", 5) == 5
    assert kv.cas(GUILD, "s", head + "b", "v0", "new") is True and kv.get(GUILD, "s", head) == "v1"
    kv.update_metadata(GUILD, "s", head, "m")
    assert (
        kv.get_with_metadata(GUILD, "s", head).metadata == "m" and kv.get_with_metadata(GUILD, "s", head + "b").metadata is None
    )

    kv.clock.now = T0 + 100  # of the even ones, head + "b" lost its expiration to the cas and head + "a" is gone
    assert kv.backend.purge_expired(GUILD, "s", kv.now()) == 1
    assert [k["name"] for k in kv.list(GUILD, "s", prefix=head)["keys"]] == [head, head + "b", head + "c"]
    kv.clock.now = T0 + 101
    assert kv.backend.purge_expired(GUILD, "s", kv.now()) == 3
    assert [k["name"] for k in kv.list(GUILD, "s")["keys"]] == [head + "b", head + "c"]
    assert kv.backend.store_bytes(GUILD, "s") == entry_size(head + "b", "new", None, None) + entry_size(
        head + "c", "5", None, None
    )


def test_purging_reads_only_the_expiry_index(kv):
    for i in range(200):
        kv.backend.set(GUILD, "s", f"k{i:03d}", "v", T0 + i // 2, None)
    assert kv.backend.purge_expired(GUILD, "s", T0 - 1) == 0
    assert kv.backend.purge_expired(GUILD, "s", T0 + 49) == 100
    assert kv.backend.purge_expired(GUILD, "s", T0 + 49) == 0
    assert kv.list(GUILD, "s", limit=1)["keys"][0]["name"] == "k100"
    assert kv.backend.purge_expired(GUILD, "s", T0 + 1000) == 100
    assert kv.backend.store_bytes(GUILD, "s") == 0


GROW_CHILD = """
for i in range(6):
    backend.set(sys.argv[2], "s", f"big{i}", str(i) * (1024 * 1024), None, None)
print(backend.map_size_of(sys.argv[2], "s"))
"""


def test_the_map_grows_when_full_and_other_processes_adopt_it(kv, kv_env, tmp_path):
    kv.set(GUILD, "s", "small", "x")
    assert kv.backend.map_size_of(GUILD, "s") == MB  # this process opened it at 1 MiB
    child_map = int(run_child(GROW_CHILD, kv_env, GUILD))  # another process writes 6 MiB
    assert child_map >= 8 * MB
    assert (tmp_path / "data" / "kv-lmdb" / GUILD / "s" / "data.mdb").stat().st_size > 6 * MB
    assert [kv.get(GUILD, "s", f"big{i}") for i in range(6)] == [str(i) * MB for i in range(6)]  # adopted its map
    assert kv.backend.map_size_of(GUILD, "s") >= child_map
    kv.set(GUILD, "s", "big6", "6" * MB)  # and grows it further itself when it must
    assert kv.get(GUILD, "s", "big6") == "6" * MB
    assert kv.backend.store_bytes(GUILD, "s") == sum(entry_size(f"big{i}", str(i) * MB, None, None) for i in range(7)) + 6


def test_a_map_grown_by_another_process_while_this_one_opens_it_is_adopted(kv, kv_env, monkeypatch):
    import lmdb

    real_open, grown = lmdb.open, []

    def open_then_let_another_process_grow_it(path, **options):
        env = real_open(path, **options)
        if not grown:  # between opening the files and the first transaction
            grown.append(int(run_child(GROW_CHILD, kv_env, GUILD)))
        return env

    monkeypatch.setattr(lmdb, "open", open_then_let_another_process_grow_it)
    assert kv.get(GUILD, "s", "big5") == "5" * MB
    assert grown and kv.backend.map_size_of(GUILD, "s") >= grown[0]


def test_threads_that_fill_the_map_together_each_get_their_write(kv):
    """Six threads write 300 kB values into a 1 MiB map while two read: the map is grown while none of
    them is inside a transaction, and no write is lost or doubled."""
    kv.set(GUILD, "s", "seen", "0")
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def writer(i: int) -> None:
        try:
            barrier.wait()
            for j in range(3):
                kv.backend.set(GUILD, "s", f"t{i}-{j}", chr(97 + i) * 300_000, None, None)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted empty below
            errors.append(exc)

    def reader() -> None:
        try:
            barrier.wait()
            for _ in range(50):
                kv.backend.list(GUILD, "s", after=None, start=None, end=None, count=100, now=T0)
                kv.backend.get(GUILD, "s", "seen", T0)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted empty below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in threads), errors
    assert all(kv.get(GUILD, "s", f"t{i}-{j}") == chr(97 + i) * 300_000 for i in range(6) for j in range(3))
    assert kv.backend.map_size_of(GUILD, "s") >= 8 * MB
    assert kv.backend.store_bytes(GUILD, "s") == entry_size("seen", "0", None, None) + sum(
        entry_size(f"t{i}-{j}", "x" * 300_000, None, None) for i in range(6) for j in range(3)
    )


def test_a_store_whose_map_reaches_its_bound_fails_with_one_line(make_kv, kv_env, plugins):
    backend = open_backend(load_config(env={**kv_env, "KV_LMDB_MAX_MAP_SIZE_MB": "2"}), plugins)
    kv = make_kv()
    kv.backend = backend
    kv.create_store(GUILD, "s")
    kv.set(GUILD, "s", "a", "a" * MB)  # grows the map to 2 MiB
    exc = error(kv.set, GUILD, "s", "b", "b" * MB)
    assert (exc.code, exc.message) == (
        KV_UNAVAILABLE,
        f"kv backend lmdb: store {GUILD}/s is full (its map is 2 MiB, the most KV_LMDB_MAX_MAP_SIZE_MB allows)",
    )
    assert kv.get(GUILD, "s", "a") == "a" * MB and kv.get(GUILD, "s", "b") is None
    assert kv.backend.store_bytes(GUILD, "s") == entry_size("a", "a" * MB, None, None)
    kv.set(GUILD, "s", "a", "small")  # a store that is full still takes what fits
    kv.set(GUILD, "s", "b", "b" * (MB // 2))
    backend.close()


@pytest.mark.parametrize(
    "env, message",
    [
        ({"KV_LMDB_MAP_SIZE_MB": "lots"}, "invalid KV_LMDB_MAP_SIZE_MB: expected an integer, got 'lots'"),
        ({"KV_LMDB_MAP_SIZE_MB": "0"}, "invalid KV_LMDB_MAP_SIZE_MB: must be between 1 and 1048576, got 0"),
        ({"KV_LMDB_MAX_MAP_SIZE_MB": "-3"}, "invalid KV_LMDB_MAX_MAP_SIZE_MB: must be between 1 and 16777216, got -3"),
    ],
)
def test_bad_map_sizes_are_one_line(kv_env, plugins, env, message):
    with pytest.raises(ConfigError) as info:
        load_config(env={**kv_env, **env}, plugins=plugins)
    assert str(info.value) == message
    cli = subprocess.run(
        [sys.executable, "-m", "flora_cli", "kv", "stores", "--guild-id", GUILD],
        env={**os.environ, **kv_env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (cli.returncode, cli.stderr.strip().splitlines()) == (2, [f"Error: {message}"])


def test_a_bound_below_the_start_is_one_line(kv_env, plugins):
    config = load_config(env={**kv_env, "KV_LMDB_MAP_SIZE_MB": "64", "KV_LMDB_MAX_MAP_SIZE_MB": "8"})
    exc = error(open_backend, config, plugins)
    assert (exc.code, exc.message) == (KV_UNAVAILABLE, "KV_LMDB_MAX_MAP_SIZE_MB (8) is smaller than KV_LMDB_MAP_SIZE_MB (64)")


def test_files_of_another_format_are_refused_with_one_line(kv, tmp_path):
    import lmdb

    path = kv.backend.path(GUILD, "s")
    path.mkdir(parents=True)
    env = lmdb.open(str(path), max_dbs=3)
    with env.begin(write=True) as txn:
        txn.put(b"format", b"9", db=env.open_db(b"meta", txn=txn))
    env.close()
    exc = error(kv.get, GUILD, "s", "k")
    assert (exc.code, exc.message) == (
        KV_UNAVAILABLE,
        f"kv backend lmdb: {path} holds data of format '9'; this flora-kv-lmdb reads format '1'",
    )
    shutil.rmtree(path)  # (never opened by the backend) so that the fixture can delete the store
    assert kv.get(GUILD, "s", "k") is None


def test_backends_of_one_process_share_its_environments_and_their_number_is_bounded(make_kv, monkeypatch):
    first, second = make_kv(), make_kv()  # two backend instances: one LMDB handle per store in the process
    monkeypatch.setattr(ENVIRONMENTS, "max_open", 2)
    ENVIRONMENTS.close_all()
    for i in range(5):
        first.create_store(GUILD, f"s{i}")
        first.set(GUILD, f"s{i}", "k", f"v{i}")
        assert ENVIRONMENTS.open_count() <= 2
    assert [second.get(GUILD, f"s{i}", "k") for i in range(5)] == [f"v{i}" for i in range(5)]
    assert ENVIRONMENTS.open_count() == 2


HOLD_WRITE = """
import lmdb
env = lmdb.open(sys.argv[2], max_dbs=3)
db = env.open_db(b"kv")
txn = env.begin(write=True)
txn.put(b"uncommitted", b"x", db=db)
print("holding", flush=True)
sys.stdin.readline()
"""


def test_a_writer_killed_inside_its_transaction_does_not_block_the_others(kv, kv_env):
    kv.set(GUILD, "s", "k", "before")
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys\n" + HOLD_WRITE, json.dumps(kv_env), str(kv.backend.path(GUILD, "s"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "holding", child.stderr.read()
        reader = threading.Thread(target=lambda: kv.get(GUILD, "s", "k"))
        reader.start()
        reader.join(30)
        assert not reader.is_alive()  # readers never wait for the writer
        writer = threading.Thread(target=kv.set, args=(GUILD, "s", "k", "after"))
        writer.start()  # waits for the child's write lock ...
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        writer.join(30)  # ... which LMDB's robust mutex hands over when its holder dies
        assert not writer.is_alive()
    finally:
        if child.poll() is None:
            child.kill()
    assert kv.get(GUILD, "s", "k") == "after"
    assert [k["name"] for k in kv.list(GUILD, "s")["keys"]] == ["k"]  # the child's write was never committed


def test_a_forked_child_opens_its_own_environments_and_the_parent_keeps_its_own(kv):
    kv.set(GUILD, "s", "k", "parent")
    assert kv.incr(GUILD, "s", "n") == 1
    assert ENVIRONMENTS.open_count() == 1
    pid = os.fork()
    if pid == 0:  # the child: exits without returning into pytest
        code = 1
        try:
            assert ENVIRONMENTS.open_count() == 0  # closed before the fork: nothing inherited to misuse
            assert kv.get(GUILD, "s", "k") == "parent"
            kv.set(GUILD, "s", "child", "yes")
            for _ in range(50):
                kv.incr(GUILD, "s", "n")
            code = 0
        finally:
            os._exit(code)
    assert ENVIRONMENTS.open_count() == 0  # the parent opens it again when it needs it
    for _ in range(50):
        kv.incr(GUILD, "s", "n")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert kv.get(GUILD, "s", "n") == "101" and kv.get(GUILD, "s", "child") == "yes"
    assert ENVIRONMENTS.open_count() == 1


READ_LOOP = """
for line in sys.stdin:
    entry = backend.get(sys.argv[2], "s", "k", 0)
    print(None if entry is None else entry.value, flush=True)
"""


def test_a_dropped_store_is_empty_for_processes_that_hold_it_open(kv, kv_env):
    kv.set(GUILD, "s", "k", "v")
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import json, sys\nfrom flora_core.config import load_config\n"
            "from flora_core.plugins import Plugins\nfrom flora_plugins.kv.backends import open_backend\n"
            "backend = open_backend(load_config(env=json.loads(sys.argv[1])), Plugins())\n" + READ_LOOP,
            json.dumps(kv_env),
            GUILD,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "v", child.stderr.read()
        kv.delete_store(GUILD, "s")
        kv.create_store(GUILD, "s")
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "None"
        child.stdin.close()
        assert child.wait(30) == 0
    finally:
        if child.poll() is None:
            child.kill()
    assert kv.backend.store_bytes(GUILD, "s") == 0
