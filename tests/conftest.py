"""Shared fixtures: the Discord emulator, a real `flora serve`, real databases."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pytest

from flora_dev.testing import (  # noqa: F401 - the test modules import these from here
    BOT_TOKEN,
    FloraServer,
    bot_replies,
    deploy_files,
    emulator_guild,
    free_port,
    http_json,
    start_flora,
    stop_flora,
    wait_for,
)

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"

os.environ.setdefault("FLORA_STRICT_PLUGINS", "1")
# `flora login` stores credentials under the user's config folder: tests get their own, empty one
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="flora-test-config-")


@pytest.fixture
def emulator(flora_emulator):
    """flora's Discord emulator: the test kit's fixture (flora_dev/pytest_plugin.py), under the name these tests use."""
    return flora_emulator


@pytest.fixture
def guild(emulator):
    """A guild with one text channel and a member, before the bot connects."""
    g = emulator.create_guild("Test Guild")
    ch = emulator.create_channel(g["id"], "general")
    user = emulator.create_user("alice")
    emulator.add_member(g["id"], user["id"])
    return {"guild": g, "channel": ch, "user": user, "id": g["id"]}


@pytest.fixture
def flora(emulator, guild, tmp_path):
    server = start_flora(emulator, tmp_path)
    try:
        yield server
    finally:
        stop_flora(server)


@pytest.fixture
def postgres_url():
    url = os.environ.get("FLORA_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg2

        conn = psycopg2.connect(url, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI=true but is not reachable at {url}: {exc}")
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    schema = f"flora_test_{os.getpid()}_{int(time.time() * 1000) % 10**8}"
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA {schema}")
    conn.close()
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{schema}"
    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA {schema} CASCADE")
    conn.close()


@pytest.fixture
def redis_server():
    """The URL of a reachable Redis (``FLORA_TEST_REDIS``, default 127.0.0.1:6379/0), for tests that give every
    server a ``BUS_NAMESPACE`` of its own; under CI=true an unreachable one fails the test."""
    url = os.environ.get("FLORA_TEST_REDIS", "redis://127.0.0.1:6379/0")
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"Redis is required under CI=true but is not reachable at {url}: {exc}")
        pytest.skip(f"Redis not reachable: {exc}")
    return url


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """One emulator + one `flora serve` shared by a test module; tests make their own guilds."""
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    base = emulator_guild(emu, "Base Guild")
    server = None
    try:
        server = start_flora(emu, tmp_path_factory.mktemp("flora"))
        server.emu = emu
        server.base = base
        yield server
    finally:
        if server is not None:
            stop_flora(server)
        emu.stop()
