"""flora's KV backend conformance suite, importable by the authors of third-party KV backends.

Everything goes through ``KvService`` (what ops, routes and the CLI use) over the backend that
``KV_BACKEND`` selects, with a fake clock where time matters and small limits where sizes or rates
matter. flora's own backends (sqlite, PostgreSQL, Redis) pass it in ``tests/test_kv_conformance.py``;
a third-party backend, installed with its ``flora`` entry point, passes it like this::

    # tests/test_conformance.py of your package
    import pytest
    from flora_plugins.kv.conformance import *  # noqa: F403 - the suite's tests and fixtures

    @pytest.fixture
    def kv_env(tmp_path):
        return {"FLORA_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": f"sqlite:///{tmp_path / 'flora.db'}",
                "KV_BACKEND": "acme"}

``kv_env`` is the environment that selects your backend (it is rebuilt in child processes for the
cross-process tests, so it must hold everything your backend needs). The test of processes writing at
once against a quota runs only for a backend with ``atomic_quotas`` (``flora_plugins.kv.backend``); for
one without, it is skipped with that reason, and the same test with threads of one process runs.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import uuid

import pytest

from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import open_database
from flora_plugins.kv.backends import open_backend
from flora_plugins.kv.errors import (
    INVALID_INPUT,
    KV_NOT_AN_INTEGER,
    KV_NOT_FOUND,
    KV_QUOTA_EXCEEDED,
    KV_RATE_LIMITED,
    KV_STORE_EXISTS,
    KvError,
)
from flora_plugins.kv.limits import Limits, entry_size
from flora_plugins.kv.service import KvService, metadata_json

GUILD = "111111111111111111"
OTHER = "222222222222222222"
T0 = 1_700_000_000
NO_RATE_LIMIT = Limits(writes_per_window=10**9)


class Clock:
    """Wall clock and monotonic clock the test moves by hand."""

    def __init__(self, now: float = T0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def plugins():
    return Plugins()


@pytest.fixture
def make_kv(kv_env, plugins):
    """``make_kv(limits)`` -> a KvService with its own fake clock (``kv.clock``); stores are dropped afterwards."""
    config = load_config(env=kv_env)
    db = open_database(config, plugins)
    made: list[KvService] = []

    def make(limits: Limits = NO_RATE_LIMIT) -> KvService:
        clock = Clock()
        service = KvService(db, open_backend(config, plugins), limits, clock=clock, monotonic=clock)
        made.append(service)
        return service

    yield make
    for service in made:
        for guild in (GUILD, OTHER):
            for store in service.list_stores(guild):
                service.delete_store(guild, store["store_name"])
        service.backend.close()
    db.close()


@pytest.fixture
def kv(make_kv):
    service = make_kv()
    service.create_store(GUILD, "s")
    return service


def error(fn, *args, **kwargs) -> KvError:
    with pytest.raises(KvError) as info:
        fn(*args, **kwargs)
    return info.value


def byte_order(keys):
    return sorted(keys, key=lambda k: k.encode("utf-8"))


# -- stores -----------------------------------------------------------------------------
def test_every_key_operation_needs_an_existing_store(kv):
    for call in (
        lambda: kv.get(GUILD, "nope", "k"),
        lambda: kv.set(GUILD, "nope", "k", "v"),
        lambda: kv.get_with_metadata(GUILD, "nope", "k"),
        lambda: kv.update_metadata(GUILD, "nope", "k", 1),
        lambda: kv.delete(GUILD, "nope", "k"),
        lambda: kv.list(GUILD, "nope"),
        lambda: kv.incr(GUILD, "nope", "k"),
        lambda: kv.cas(GUILD, "nope", "k", None, "v"),
    ):
        exc = error(call)
        assert (exc.code, exc.message) == (KV_NOT_FOUND, "store not found")


def test_store_lifecycle(kv):
    assert [s["store_name"] for s in kv.list_stores(GUILD)] == ["s"]
    kv.create_store(GUILD, "b-store")
    kv.create_store(GUILD, "A")
    stores = kv.list_stores(GUILD)
    assert [s["store_name"] for s in stores] == ["A", "b-store", "s"]
    assert set(stores[0]) == {"id", "guild_id", "store_name", "created_at", "updated_at"}
    assert stores[0]["created_at"].endswith("Z") and uuid.UUID(stores[0]["id"])
    assert error(kv.create_store, GUILD, "s").code == KV_STORE_EXISTS

    kv.set(GUILD, "b-store", "k", "v")
    kv.delete_store(GUILD, "b-store")
    assert error(kv.get, GUILD, "b-store", "k").message == "store not found"
    assert error(kv.delete_store, GUILD, "b-store").message == "store not found"
    kv.create_store(GUILD, "b-store")  # a new store with the same name starts empty
    assert kv.get(GUILD, "b-store", "k") is None
    assert kv.list(GUILD, "b-store") == {"keys": [], "listComplete": True}


@pytest.mark.parametrize(
    "name, message",
    [
        ("", "store_name cannot be empty"),
        ("x" * 65, "store_name exceeds maximum size of 64 characters"),
        ("a/b", "store_name contains invalid characters"),
        ("a.b", "store_name contains invalid characters"),
        ("..", "store_name contains invalid characters"),
    ],
)
def test_store_names_are_checked(kv, name, message):
    exc = error(kv.create_store, GUILD, name)
    assert (exc.code, exc.message) == (INVALID_INPUT, message)


@pytest.mark.parametrize("guild", ["", "1:2", "1/2", "../1", "١٢٣"])  # the last: Arabic-Indic digits
def test_guild_ids_are_snowflakes(kv, guild):
    exc = error(kv.create_store, guild, "s")
    assert exc.code == INVALID_INPUT and exc.message in ("guild_id cannot be empty", "guild_id contains invalid characters")
    assert error(kv.get, guild, "s", "k").code == INVALID_INPUT


def test_store_name_of_64_bytes_is_fine(kv):
    kv.create_store(GUILD, "é" * 32)
    kv.set(GUILD, "é" * 32, "k", "v")
    assert kv.get(GUILD, "é" * 32, "k") == "v"


# -- get / set / delete ----------------------------------------------------------------------
def test_set_get_overwrite_delete(kv):
    assert kv.get(GUILD, "s", "k") is None
    kv.set(GUILD, "s", "k", "v1")
    assert kv.get(GUILD, "s", "k") == "v1"
    kv.set(GUILD, "s", "k", "v2")
    assert kv.get(GUILD, "s", "k") == "v2"
    kv.delete(GUILD, "s", "k")
    assert kv.get(GUILD, "s", "k") is None
    kv.delete(GUILD, "s", "k")  # absent: no error


@pytest.mark.parametrize("value", ["", "héllo wörld ✨", "a\0b", "line\nbreak", "x" * 100_000, '{"json": true}'])
def test_values_come_back_exactly(kv, value):
    kv.set(GUILD, "s", "key/with:odd chars?", value)
    assert kv.get(GUILD, "s", "key/with:odd chars?") == value


def test_metadata_and_expiration_rules(kv):
    assert kv.get_with_metadata(GUILD, "s", "k") is None
    kv.set(GUILD, "s", "k", "v")
    entry = kv.get_with_metadata(GUILD, "s", "k")
    assert (entry.value, entry.expiration, entry.metadata) == ("v", None, None)

    kv.set(GUILD, "s", "k", "v", expiration=T0 + 100, metadata={"b": [1, 2.5, None], "a": "x"})
    entry = kv.get_with_metadata(GUILD, "s", "k")
    assert (entry.expiration, entry.metadata) == (T0 + 100, {"b": [1, 2.5, None], "a": "x"})
    assert list(entry.metadata) == ["b", "a"]

    kv.update_metadata(GUILD, "s", "k", "just a string")  # keeps the expiration
    entry = kv.get_with_metadata(GUILD, "s", "k")
    assert (entry.value, entry.expiration, entry.metadata) == ("v", T0 + 100, "just a string")
    kv.update_metadata(GUILD, "s", "k", None)
    assert (kv.get_with_metadata(GUILD, "s", "k").expiration, kv.get_with_metadata(GUILD, "s", "k").metadata) == (T0 + 100, None)

    kv.set(GUILD, "s", "k", "v", metadata=0)  # falsy metadata is still metadata
    assert kv.get_with_metadata(GUILD, "s", "k").metadata == 0
    kv.set(GUILD, "s", "k", "v2")  # neither given: both removed
    entry = kv.get_with_metadata(GUILD, "s", "k")
    assert (entry.value, entry.expiration, entry.metadata) == ("v2", None, None)
    kv.update_metadata(GUILD, "s", "k", {"x": 1})
    assert kv.get_with_metadata(GUILD, "s", "k").metadata == {"x": 1}

    exc = error(kv.update_metadata, GUILD, "s", "missing", {"x": 1})
    assert (exc.code, exc.message) == (KV_NOT_FOUND, "key not found")


def test_expiration_is_unix_seconds_and_expired_keys_are_purged_lazily(kv):
    kv.set(GUILD, "s", "soon", "v", expiration=T0 + 10)
    kv.set(GUILD, "s", "later", "v", expiration=T0 + 20)
    kv.set(GUILD, "s", "past", "v", expiration=T0 - 1)  # accepted, and already gone
    assert kv.get(GUILD, "s", "past") is None
    assert kv.get(GUILD, "s", "soon") == "v"

    kv.clock.now = T0 + 10  # expired means expiration <= now
    assert kv.get(GUILD, "s", "soon") is None
    assert kv.backend.entry_bytes(GUILD, "s", "soon") == 0  # purged by the read
    assert kv.get_with_metadata(GUILD, "s", "later").expiration == T0 + 20
    assert [k["name"] for k in kv.list(GUILD, "s")["keys"]] == ["later"]
    assert error(kv.update_metadata, GUILD, "s", "soon", 1).message == "key not found"

    kv.clock.now = T0 + 20
    assert kv.list(GUILD, "s") == {"keys": [], "listComplete": True}
    assert kv.backend.store_bytes(GUILD, "s") == 0  # list purged what it skipped


# -- validation ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, message",
    [
        ("", "key cannot be empty"),
        ("k" * 513, "key exceeds maximum size of 512 characters"),
        ("é" * 257, "key exceeds maximum size of 512 characters"),  # 514 bytes
        ("a\0b", "key contains null character"),
    ],
)
def test_keys_are_checked_by_every_operation(kv, key, message):
    for call in (kv.get, kv.get_with_metadata, kv.delete, kv.incr):
        assert error(call, GUILD, "s", key).message == message
    assert error(kv.set, GUILD, "s", key, "v").message == message
    assert error(kv.update_metadata, GUILD, "s", key, 1).message == message
    assert error(kv.cas, GUILD, "s", key, None, "v").message == message
    assert error(kv.list, GUILD, "s", cursor=key).message == message


def test_a_512_byte_key_is_fine(kv):
    kv.set(GUILD, "s", "k" * 512, "v")
    assert kv.get(GUILD, "s", "k" * 512) == "v"


def test_size_limits(kv):
    kv.set(GUILD, "s", "max", "x" * 1024 * 1024)
    assert len(kv.get(GUILD, "s", "max")) == 1024 * 1024
    exc = error(kv.set, GUILD, "s", "k", "x" * (1024 * 1024 + 1))
    assert (exc.code, exc.message) == (INVALID_INPUT, "value exceeds maximum size of 1MB")
    assert error(kv.set, GUILD, "s", "k", "é" * 524_289).message == "value exceeds maximum size of 1MB"  # bytes, not characters
    exc = error(kv.set, GUILD, "s", "k", "x" * 1024 * 1024, metadata="m" * (1024 * 1024))
    assert (exc.code, exc.message) == (INVALID_INPUT, "kv entry exceeds maximum size of 2MB")
    exc = error(kv.update_metadata, GUILD, "s", "max", "m" * (1024 * 1024 + 1))
    assert exc.message == "kv entry exceeds maximum size of 2MB"
    assert error(kv.list, GUILD, "s", prefix="a\0").message == "prefix contains null character"


# -- list -----------------------------------------------------------------------------------
def test_list_is_in_byte_order_with_prefix_and_fields(kv):
    names = ["b", "a", "B", "é", "e", "z", "ä", "ÿ", "😀", "a/b", "a0", "ab", "abc", "ab\u00e9", "\u4e2d"]
    for name in names:
        kv.set(GUILD, "s", name, "v")
    kv.set(GUILD, "s", "meta", "v", expiration=T0 + 50, metadata={"n": 1})
    everything = kv.list(GUILD, "s")
    assert [k["name"] for k in everything["keys"]] == byte_order(names + ["meta"])
    assert everything["listComplete"] is True and "cursor" not in everything
    assert next(k for k in everything["keys"] if k["name"] == "meta") == {
        "name": "meta",
        "expiration": T0 + 50,
        "metadata": {"n": 1},
    }
    assert next(k for k in everything["keys"] if k["name"] == "b") == {"name": "b"}
    assert [k["name"] for k in kv.list(GUILD, "s", prefix="ab")["keys"]] == ["ab", "abc", "ab\u00e9"]
    assert [k["name"] for k in kv.list(GUILD, "s", prefix="a")["keys"]] == ["a", "a/b", "a0", "ab", "abc", "ab\u00e9"]
    assert kv.list(GUILD, "s", prefix="nothing") == {"keys": [], "listComplete": True}
    assert [k["name"] for k in kv.list(GUILD, "s", prefix="")["keys"]] == byte_order(names + ["meta"])


def test_list_pages_with_cursor_and_limit(kv):
    names = [f"k{i:02d}" for i in range(25)]
    for name in names:
        kv.backend.set(GUILD, "s", name, "v", None, None)
    kv.backend.set(GUILD, "s", "other", "v", None, None)
    seen, cursor, pages = [], None, []
    while True:
        page = kv.list(GUILD, "s", prefix="k", limit=10, cursor=cursor)
        pages.append((len(page["keys"]), page["listComplete"]))
        seen += [k["name"] for k in page["keys"]]
        if page["listComplete"]:
            assert "cursor" not in page
            break
        assert page["cursor"] == page["keys"][-1]["name"]
        cursor = page["cursor"]
    assert seen == names and pages == [(10, False), (10, False), (5, True)]

    # exactly `limit` keys left: not complete, then an empty complete page (flora's rule)
    page = kv.list(GUILD, "s", prefix="k", limit=25)
    assert (len(page["keys"]), page["listComplete"], page["cursor"]) == (25, False, "k24")
    assert kv.list(GUILD, "s", prefix="k", limit=25, cursor="k24") == {"keys": [], "listComplete": True}
    assert kv.list(GUILD, "s", limit=0) == {"keys": [], "listComplete": True}
    assert [k["name"] for k in kv.list(GUILD, "s", limit=3, cursor="k05")["keys"]] == ["k06", "k07", "k08"]
    assert [k["name"] for k in kv.list(GUILD, "s", cursor="k23")["keys"]] == ["k24", "other"]
    assert [k["name"] for k in kv.list(GUILD, "s", cursor="k2")["keys"]][:2] == ["k20", "k21"]  # a cursor need not exist
    # flora walks from the cursor and stops at the first key outside the prefix
    assert kv.list(GUILD, "s", prefix="o", cursor="k00") == {"keys": [], "listComplete": True}
    assert [k["name"] for k in kv.list(GUILD, "s", prefix="o", cursor="k24")["keys"]] == ["other"]


def test_list_skips_expired_keys_without_short_pages(kv):
    for i in range(30):
        kv.backend.set(GUILD, "s", f"k{i:02d}", "v", T0 + 5 if i % 2 else None, None)
    kv.clock.now = T0 + 5
    page = kv.list(GUILD, "s", limit=10)
    assert [k["name"] for k in page["keys"]] == [f"k{i:02d}" for i in range(0, 20, 2)]
    assert page["cursor"] == "k18"
    assert [k["name"] for k in kv.list(GUILD, "s", limit=10, cursor="k18")["keys"]] == [f"k{i:02d}" for i in range(20, 30, 2)]


def test_list_limit_is_capped_at_1000(kv):
    for i in range(1002):
        kv.backend.set(GUILD, "s", f"k{i:04d}", "v", None, None)
    page = kv.list(GUILD, "s", limit=5000)
    assert len(page["keys"]) == 1000 and page["listComplete"] is False and page["cursor"] == "k0999"
    assert len(kv.list(GUILD, "s")["keys"]) == 100


# -- quotas and usage --------------------------------------------------------------------------
def test_usage_counts_flora_entry_sizes(kv):
    kv.set(GUILD, "s", "a", "12345")
    kv.set(GUILD, "s", "ü", "x", expiration=T0 + 99, metadata={"k": "é"})
    kv.set(GUILD, "s", "c", "1")
    kv.incr(GUILD, "s", "c", 99)
    kv.update_metadata(GUILD, "s", "a", [1, 2])
    kv.cas(GUILD, "s", "d", None, "dd", metadata="m")
    kv.set(GUILD, "s", "e", "gone")
    kv.delete(GUILD, "s", "e")
    expected = (
        entry_size("a", "12345", None, "[1,2]")
        + entry_size("ü", "x", T0 + 99, metadata_json({"k": "é"}))
        + entry_size("c", "100", None, None)
        + entry_size("d", "dd", None, '"m"')
    )
    assert kv.backend.store_bytes(GUILD, "s") == expected
    assert kv.backend.entry_bytes(GUILD, "s", "ü") == len("ü".encode()) * 2 + 1 + len(
        f'{{"expiration":{T0 + 99},"metadata":{{"k":"é"}}}}'.encode()
    )


def test_store_and_guild_quotas(make_kv):
    kv = make_kv(Limits(store_bytes=1000, guild_bytes=1500, writes_per_window=10**9))
    kv.create_store(GUILD, "one")
    kv.create_store(GUILD, "two")
    kv.set(GUILD, "one", "a", "x" * 899)  # 900 bytes
    kv.set(GUILD, "one", "b", "x" * 99)  # 1000: exactly the quota
    exc = error(kv.set, GUILD, "one", "c", "")
    assert (exc.code, exc.message) == (KV_QUOTA_EXCEEDED, "kv store storage quota exceeded")
    kv.set(GUILD, "one", "a", "y" * 899)  # replacing counts the difference, not both
    assert error(kv.incr, GUILD, "one", "n").code == KV_QUOTA_EXCEEDED

    kv.set(GUILD, "two", "a", "x" * 499)  # guild: 1500
    exc = error(kv.set, GUILD, "two", "b", "x")
    assert (exc.code, exc.message) == (KV_QUOTA_EXCEEDED, "kv guild storage quota exceeded")
    kv.delete(GUILD, "one", "b")
    kv.set(GUILD, "two", "b", "x" * 98)

    kv.set(GUILD, "two", "a", "x" * 400, expiration=T0 + 1)  # 443 bytes with its metadata record: guild 1442
    assert error(kv.set, GUILD, "two", "c", "x" * 450).message == "kv guild storage quota exceeded"
    kv.clock.now = T0 + 1  # expired entries stop counting
    kv.set(GUILD, "two", "c", "x" * 450)

    other = make_kv(Limits(store_bytes=1000, guild_bytes=1500, writes_per_window=10**9))
    other.create_store(OTHER, "one")
    other.set(OTHER, "one", "a", "x" * 999)  # another guild has its own quota


# -- rate limit --------------------------------------------------------------------------------
def test_write_rate_limit_per_guild_and_store(make_kv):
    kv = make_kv(Limits(writes_per_window=5, window_secs=60))
    for guild in (GUILD, OTHER):
        kv.create_store(guild, "s")
    kv.create_store(GUILD, "t")
    for i in range(3):
        kv.set(GUILD, "s", f"k{i}", "v")
    kv.incr(GUILD, "s", "n")
    kv.cas(GUILD, "s", "c", None, "v")
    exc = error(kv.set, GUILD, "s", "k9", "v")
    assert (exc.code, exc.message) == (KV_RATE_LIMITED, "kv write rate limit exceeded; retry later")
    assert 0 < exc.retry_after <= 60
    assert error(kv.incr, GUILD, "s", "n").code == KV_RATE_LIMITED
    kv.delete(GUILD, "s", "k0")  # deletes and metadata updates are not limited
    kv.update_metadata(GUILD, "s", "k1", {"m": 1})
    kv.set(GUILD, "t", "k", "v")  # another store
    kv.set(OTHER, "s", "k", "v")  # another guild
    kv.clock.now += 30
    assert error(kv.set, GUILD, "s", "k9", "v").code == KV_RATE_LIMITED  # rolling window
    kv.clock.now += 30
    kv.set(GUILD, "s", "k9", "v")


# -- incr and cas ------------------------------------------------------------------------------
def test_incr(kv):
    assert kv.incr(GUILD, "s", "n") == 1
    assert kv.incr(GUILD, "s", "n", 41) == 42
    assert kv.incr(GUILD, "s", "n", -50) == -8
    assert kv.get(GUILD, "s", "n") == "-8"  # stored as a decimal string
    kv.set(GUILD, "s", "n", "+7")
    assert kv.incr(GUILD, "s", "n", 0) == 7 and kv.get(GUILD, "s", "n") == "7"

    kv.set(GUILD, "s", "word", "seven")
    for bad in ("seven", "1.5", " 1", "", "0x10", "1e3"):
        kv.set(GUILD, "s", "word", bad)
        exc = error(kv.incr, GUILD, "s", "word")
        assert (exc.code, exc.message) == (KV_NOT_AN_INTEGER, "value is not an integer")
        assert kv.get(GUILD, "s", "word") == bad

    kv.set(GUILD, "s", "big", str(2**53 - 2))
    assert kv.incr(GUILD, "s", "big") == 2**53 - 1
    assert error(kv.incr, GUILD, "s", "big").message == "incr result out of range"
    kv.set(GUILD, "s", "huge", "9" * 30)
    assert error(kv.incr, GUILD, "s", "huge").code == KV_NOT_AN_INTEGER

    kv.set(GUILD, "s", "kept", "5", expiration=T0 + 10, metadata={"m": 1})
    assert kv.incr(GUILD, "s", "kept", 2) == 7
    entry = kv.get_with_metadata(GUILD, "s", "kept")
    assert (entry.value, entry.expiration, entry.metadata) == ("7", T0 + 10, {"m": 1})
    kv.clock.now = T0 + 10
    assert kv.incr(GUILD, "s", "kept", 2) == 2  # an expired counter starts again, without the old expiration
    entry = kv.get_with_metadata(GUILD, "s", "kept")
    assert (entry.value, entry.expiration, entry.metadata) == ("2", None, None)


def test_cas(kv):
    assert kv.cas(GUILD, "s", "k", None, "first") is True
    assert kv.cas(GUILD, "s", "k", None, "again") is False  # must be absent
    assert kv.cas(GUILD, "s", "k", "wrong", "x") is False
    assert kv.get(GUILD, "s", "k") == "first"
    assert kv.cas(GUILD, "s", "k", "first", "second", expiration=T0 + 5, metadata={"v": 2}) is True
    entry = kv.get_with_metadata(GUILD, "s", "k")
    assert (entry.value, entry.expiration, entry.metadata) == ("second", T0 + 5, {"v": 2})
    assert kv.cas(GUILD, "s", "k", "second", "third") is True  # replaces metadata like set
    assert kv.get_with_metadata(GUILD, "s", "k").metadata is None
    kv.set(GUILD, "s", "e", "old", expiration=T0 + 1)
    kv.clock.now = T0 + 1
    assert kv.cas(GUILD, "s", "e", "old", "x") is False  # expired = absent
    assert kv.cas(GUILD, "s", "e", None, "new") is True
    assert error(kv.cas, GUILD, "s", "k", None, "x" * (1024 * 1024 + 1)).message == "value exceeds maximum size of 1MB"


def _threads(n: int, target) -> None:
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i):
        try:
            barrier.wait()
            target(i)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_concurrent_incr_from_threads_is_exact(kv):
    _threads(8, lambda i: [kv.incr(GUILD, "s", "hits") for _ in range(40)])
    assert kv.get(GUILD, "s", "hits") == "320"


def test_cas_race_has_exactly_one_winner(kv):
    for round_ in range(5):
        wins: list[int] = []
        _threads(
            12, lambda i, wins=wins, round_=round_: wins.append(i) if kv.cas(GUILD, "s", f"lock{round_}", None, f"w{i}") else None
        )
        assert len(wins) == 1
        assert kv.get(GUILD, "s", f"lock{round_}") == f"w{wins[0]}"


CHILD = r"""
import json, sys, threading
from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_plugins.kv.backends import open_backend

env, guild, threads, rounds, now = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
backend = open_backend(load_config(env=env), Plugins())

failed = []

def work():
    try:
        for _ in range(rounds):
            backend.incr(guild, "s", "hits", 1, now)
            while True:  # an increment built from get + cas: exact only if cas is atomic
                entry = backend.get(guild, "s", "cas-hits", now)
                current = None if entry is None else entry.value
                if backend.cas(guild, "s", "cas-hits", current, str(int(current or 0) + 1), None, None, now):
                    break
    except BaseException as exc:
        failed.append(exc)
        raise

print("ready", flush=True)
sys.stdin.readline()
workers = [threading.Thread(target=work) for _ in range(threads)]
for w in workers: w.start()
for w in workers: w.join()
print("failed" if failed else "done", flush=True)
"""


def test_incr_and_cas_are_exact_across_processes(kv, kv_env):
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(kv_env), GUILD, "3", "25", str(T0)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "ready", child.stderr.read()
        for child in children:  # go together, while this process increments too
            child.stdin.write("\n")
            child.stdin.flush()
        _threads(3, lambda i: [kv.incr(GUILD, "s", "hits") for _ in range(25)])
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0 and out.strip() == "done", err
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    assert kv.get(GUILD, "s", "hits") == str(2 * 3 * 25 + 3 * 25)
    assert kv.get(GUILD, "s", "cas-hits") == str(2 * 3 * 25)


# -- isolation -----------------------------------------------------------------------------------
def test_guilds_never_see_each_others_data(kv):
    kv.create_store(OTHER, "s")
    kv.set(GUILD, "s", "secret", "mine", metadata={"m": 1})
    kv.incr(GUILD, "s", "n", 5)
    assert kv.get(OTHER, "s", "secret") is None
    assert kv.get_with_metadata(OTHER, "s", "secret") is None
    assert kv.list(OTHER, "s") == {"keys": [], "listComplete": True}
    assert kv.incr(OTHER, "s", "n") == 1
    assert kv.cas(OTHER, "s", "secret", None, "theirs") is True
    assert kv.get(GUILD, "s", "secret") == "mine"
    assert error(kv.update_metadata, OTHER, "s", "nothing", 1).message == "key not found"
    kv.delete(OTHER, "s", "secret")
    assert kv.get(GUILD, "s", "secret") == "mine"
    kv.delete_store(OTHER, "s")
    assert kv.get(GUILD, "s", "secret") == "mine" and kv.get(GUILD, "s", "n") == "5"
    # a store registered for one guild only
    kv.create_store(GUILD, "only-mine")
    assert error(kv.get, OTHER, "only-mine", "k").message == "store not found"


def test_store_names_that_look_like_separators_stay_apart(kv):
    kv.create_store(GUILD, "a:b")
    kv.create_store(GUILD, "a")
    kv.create_store(GUILD, "a}:v")
    kv.set(GUILD, "a:b", "k", "1")
    kv.set(GUILD, "a", "k", "2")
    kv.set(GUILD, "a}:v", "k", "3")
    assert [kv.get(GUILD, s, "k") for s in ("a:b", "a", "a}:v")] == ["1", "2", "3"]


# -- configuration errors -----------------------------------------------------------------------
KILL_CHILD = r"""
import json, sys
from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_plugins.kv.backends import open_backend

backend = open_backend(load_config(env=json.loads(sys.argv[1])), Plugins())
for i in range(100000):
    backend.set(sys.argv[2], "s", f"k{i}", f"v{i}", None, None)
    print(i, flush=True)
"""


def test_a_set_that_returned_survives_sigkill(kv, kv_env):
    """The process dies mid-stream: every set it reported done is there."""
    child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, json.dumps(kv_env), GUILD], stdout=subprocess.PIPE, text=True)
    acked = -1
    try:
        while acked < 300:
            acked = int(child.stdout.readline())
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    last = acked
    for line in child.stdout.read().split():  # lines written before the kill
        last = int(line)
    missing = [i for i in range(last + 1) if kv.get(GUILD, "s", f"k{i}") != f"v{i}"]
    assert not missing, missing[:10]


QUOTA_CHILD = r"""
import json, sys, time
from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import open_database
from flora_plugins.kv.backends import open_backend
from flora_plugins.kv.errors import KvError
from flora_plugins.kv.limits import Limits
from flora_plugins.kv.service import KvService

env, guild, store, name, tries, store_bytes, guild_bytes = json.loads(sys.argv[1]), *sys.argv[2:5], *map(int, sys.argv[5:])
config, plugins = load_config(env=env), Plugins()
backend = open_backend(config, plugins)


def slowed(write):  # a pause before each write reaches storage: a check made before the write goes stale
    def call(*args, **kwargs):
        time.sleep(0.02)
        return write(*args, **kwargs)
    return call


backend.set = slowed(backend.set)
kv = KvService(open_database(config, plugins), backend, Limits(store_bytes=store_bytes, guild_bytes=guild_bytes,
                                                               writes_per_window=10**9))
print("ready", flush=True)
sys.stdin.readline()
outcomes = []
for i in range(tries):
    try:
        kv.set(guild, store, f"{name}-{i:04d}", "x" * 93)  # 7 + 93: every entry counts 100 bytes
        outcomes.append("ok")
    except KvError as exc:
        outcomes.append(exc.code + ": " + exc.message)
print(json.dumps(outcomes), flush=True)
"""


@pytest.mark.parametrize("scope", ["store", "guild"])
def test_processes_writing_at_once_cannot_exceed_a_quota(make_kv, kv_env, scope):
    """Three processes write 8 entries of 100 bytes each at once against room for 12: exactly 12 are
    accepted, whoever wrote them, and the other 12 are refused with flora's message. ``store``: all
    into one store of 1200 bytes; ``guild``: each into a store of its own, under a guild quota of 1200."""
    kv = make_kv(
        Limits(
            store_bytes=1200 if scope == "store" else 10**9,
            guild_bytes=1200 if scope == "guild" else 10**9,
            writes_per_window=10**9,
        )
    )
    if not kv.backend.atomic_quotas:
        pytest.skip(
            f"KV backend {kv.backend.name!r} has atomic_quotas = False: its quotas are exact within one"
            " process only (see flora_plugins.kv.backend)"
        )
    stores = ["s"] * 3 if scope == "store" else ["a", "b", "c"]
    for store in sorted(set(stores)):
        kv.create_store(GUILD, store)
    limits = ["1200", str(10**9)] if scope == "store" else [str(10**9), "1200"]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", QUOTA_CHILD, json.dumps(kv_env), GUILD, store, f"p{n}", "8", *limits],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, store in enumerate(stores)
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
    message = f"KV_QUOTA_EXCEEDED: kv {scope} storage quota exceeded"
    assert sorted(set(outcomes)) == sorted({"ok", message}), outcomes
    assert outcomes.count("ok") == 12 and outcomes.count(message) == 12, outcomes
    held = sum(kv.backend.store_bytes(GUILD, store) for store in set(stores))
    listed = sum(len(kv.list(GUILD, store, limit=1000)["keys"]) for store in set(stores))
    assert (held, listed) == (1200, 12)


@pytest.mark.parametrize("scope", ["store", "guild"])
def test_threads_writing_at_once_cannot_exceed_a_quota(make_kv, scope):
    """What every backend keeps, atomic quotas or not: 6 threads of one process, 4 entries of 100 bytes each,
    room for 12."""
    kv = make_kv(
        Limits(
            store_bytes=1200 if scope == "store" else 10**9,
            guild_bytes=1200 if scope == "guild" else 10**9,
            writes_per_window=10**9,
        )
    )
    stores = ["s"] * 6 if scope == "store" else ["a", "b", "c", "d", "e", "f"]
    for store in sorted(set(stores)):
        kv.create_store(GUILD, store)
    outcomes: list[str] = []

    def write(i):
        for j in range(4):
            try:
                kv.set(GUILD, stores[i], f"t{i}-{j:04d}", "x" * 93)
                outcomes.append("ok")
            except KvError as exc:
                outcomes.append(f"{exc.code}: {exc.message}")

    _threads(6, write)
    message = f"KV_QUOTA_EXCEEDED: kv {scope} storage quota exceeded"
    assert outcomes.count("ok") == 12 and outcomes.count(message) == 12, outcomes
    assert sum(kv.backend.store_bytes(GUILD, store) for store in set(stores)) == 1200


def test_a_quota_counts_exact_sizes_at_its_edge(make_kv):
    """A write that leaves a store exactly at its quota is accepted, one byte more is not; replacing, ``incr``,
    ``cas`` and ``updateMetadata`` count the entry's size after the write (``incr`` its exact new value); a cas
    whose value does not match is ``false``, not a quota error."""
    kv = make_kv(Limits(store_bytes=100, guild_bytes=150, writes_per_window=10**9))
    kv.create_store(GUILD, "s")
    kv.create_store(GUILD, "t")
    kv.set(GUILD, "s", "a", "x" * 97)  # 98 bytes
    assert error(kv.set, GUILD, "s", "b", "x" * 2).message == "kv store storage quota exceeded"  # 101
    kv.set(GUILD, "s", "b", "x")  # 100
    kv.set(GUILD, "s", "a", "y" * 97)  # replacing: the difference counts
    assert error(kv.set, GUILD, "s", "a", "y" * 98).message == "kv store storage quota exceeded"
    kv.delete(GUILD, "s", "b")
    kv.set(GUILD, "s", "n", "8")  # 100 again
    assert kv.incr(GUILD, "s", "n") == 9  # one digit: still 100
    assert error(kv.incr, GUILD, "s", "n").message == "kv store storage quota exceeded"  # 10 would make 101
    assert kv.get(GUILD, "s", "n") == "9"
    assert kv.cas(GUILD, "s", "n", "wrong", "x" * 50) is False  # would not write: no quota error
    assert error(kv.cas, GUILD, "s", "n", "9", "10").message == "kv store storage quota exceeded"
    assert error(kv.update_metadata, GUILD, "s", "n", 1).message == "kv store storage quota exceeded"
    assert kv.get_with_metadata(GUILD, "s", "n").metadata is None
    kv.delete(GUILD, "s", "n")  # 98 in s
    kv.set(GUILD, "t", "k", "x" * 51)  # 52 in t: the guild holds 150
    assert error(kv.set, GUILD, "t", "l", "").message == "kv guild storage quota exceeded"
    assert error(kv.incr, GUILD, "s", "c").message == "kv guild storage quota exceeded"
    kv.update_metadata(GUILD, "s", "a", None)  # no growth: fine at the edge
    assert kv.backend.store_bytes(GUILD, "s") + kv.backend.store_bytes(GUILD, "t") == 150
