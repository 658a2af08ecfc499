"""KV at its boundaries: the routes (flora §3.3 rows 20–26) with Flask's test client, ``flora kv``
with CliRunner, the ops as a worker calls them, and the sqlite backend in a gevent-patched
API process. Real SQLite files throughout."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.parse

import pytest
from click.testing import CliRunner
from test_kv_conformance import redis_url  # noqa: F401 - the fixture

from flora_cli.main import make_cli
from flora_core.config import load_config
from flora_core.errors import OpError
from flora_core.plugins import Plugins
from flora_core.runtime.opctx import OpContext, WorkerServices
from flora_core.storage import open_database, repo
from flora_http import create_app
from flora_plugins.kv.backends import open_backend
from flora_plugins.kv.limits import Limits
from flora_plugins.kv.ops import OPS
from flora_plugins.kv.service import KvService

GUILD = "123456789012345678"
OTHER = "876543210987654321"


@pytest.fixture(scope="module")
def plugins():
    return Plugins()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """The server's environment: data and database in tmp, no config file."""
    monkeypatch.chdir(tmp_path)
    for key in ("DATABASE_URL", "KV_BACKEND", "KV_URL", "FLORA_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FLORA_DATA_DIR", str(tmp_path / "data"))
    open_database(load_config(), Plugins()).close()  # the server's database, as flora serve leaves it
    return tmp_path


@pytest.fixture
def config(env):
    return load_config()


@pytest.fixture
def db(config, plugins):
    database = open_database(config, plugins)
    yield database
    database.close()


@pytest.fixture
def app(config, plugins, db):
    return create_app(config, plugins, db)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth(db):
    return {"Authorization": f"Bearer {repo.create_token(db, label='test')[0]}"}


def use_limits(app, db, config, plugins, limits: Limits) -> None:
    """Serve the app's KV routes with other limits (the service the routes build on first use)."""
    app.extensions.setdefault("flora_kv", {})["kv.service"] = KvService(db, open_backend(config, plugins), limits)


def create_store(client, auth, store="s", guild=GUILD):
    resp = client.post("/api/kv/stores", json={"guild_id": guild, "store_name": store}, headers=auth)
    assert resp.status_code == 200, resp.get_json()
    return resp.get_json()["store"]


# -- auth -------------------------------------------------------------------------------------
ROUTES = [
    ("post", "/api/kv/stores", {"guild_id": GUILD, "store_name": "s"}),
    ("get", f"/api/kv/stores?guild_id={GUILD}", None),
    ("delete", f"/api/kv/stores/{GUILD}/s", None),
    ("get", f"/api/kv/{GUILD}/s/k", None),
    ("put", f"/api/kv/{GUILD}/s/k", {"value": "v"}),
    ("delete", f"/api/kv/{GUILD}/s/k", None),
    ("get", f"/api/kv/{GUILD}/s", None),
]


@pytest.mark.parametrize("method, path, body", ROUTES)
def test_every_route_needs_a_token_and_guild_access(client, db, method, path, body):
    resp = getattr(client, method)(path, json=body)
    assert resp.status_code == 401 and resp.get_json() == {"message": "Unauthorized: Login required"}
    # a Discord user's token: the guild-admin check asks Discord (unreachable here) and refuses;
    # tests/test_api_auth.py covers the check against the emulator for every guild route
    user_token = repo.create_token(db, label="user", user_id="42")[0]
    resp = getattr(client, method)(path, json=body, headers={"Authorization": f"Bearer {user_token}"})
    assert resp.status_code == 403 and resp.get_json()["message"].startswith("Forbidden: Member fetch failed")


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("post", "/api/kv/stores", {"guild_id": "../etc", "store_name": "s"}),
        ("get", "/api/kv/stores?guild_id=abc", None),
        ("get", "/api/kv/abc/s/k", None),
        ("put", "/api/kv/1.2/s/k", {"value": "v"}),
        ("get", "/api/kv/abc/s", None),
    ],
)
def test_guild_ids_must_be_snowflakes(client, auth, method, path, body):
    resp = getattr(client, method)(path, json=body, headers=auth)
    assert resp.status_code == 400 and resp.get_json() == {"message": "Bad request: Invalid guild ID"}


# -- stores -----------------------------------------------------------------------------------
def test_store_routes(client, auth):
    store = create_store(client, auth, "zeta")
    assert list(store) == ["id", "guild_id", "store_name", "created_at", "updated_at"]
    assert store["guild_id"] == GUILD and store["store_name"] == "zeta" and store["created_at"].endswith("Z")
    create_store(client, auth, "alpha")
    create_store(client, auth, "other", guild=OTHER)

    resp = client.post("/api/kv/stores", json={"guild_id": GUILD, "store_name": "zeta"}, headers=auth)
    assert resp.status_code == 409 and resp.get_json() == {"message": "Conflict: store already exists"}
    resp = client.post("/api/kv/stores", json={"guild_id": GUILD, "store_name": "a.b"}, headers=auth)
    assert resp.status_code == 400 and resp.get_json() == {"message": "Bad request: store_name contains invalid characters"}
    resp = client.post("/api/kv/stores", json={"guild_id": GUILD}, headers=auth)
    assert resp.status_code == 422 and "missing field `store_name`" in resp.get_json()["message"]
    resp = client.post("/api/kv/stores", data="x", headers=auth)
    assert resp.status_code == 415

    resp = client.get(f"/api/kv/stores?guild_id={GUILD}", headers=auth)
    assert resp.status_code == 200 and [s["store_name"] for s in resp.get_json()] == ["alpha", "zeta"]
    assert client.get("/api/kv/stores", headers=auth).get_json() == {
        "message": "Bad request: Failed to deserialize query string: missing field `guild_id`"
    }

    assert client.put(f"/api/kv/{GUILD}/zeta/k", json={"value": "v"}, headers=auth).status_code == 200
    resp = client.delete(f"/api/kv/stores/{GUILD}/zeta", headers=auth)
    assert resp.status_code == 200 and resp.data == b"" and "Content-Type" not in resp.headers
    resp = client.delete(f"/api/kv/stores/{GUILD}/zeta", headers=auth)
    assert resp.status_code == 404 and resp.get_json() == {"message": "Resource not found: store not found"}
    create_store(client, auth, "zeta")
    assert client.get(f"/api/kv/{GUILD}/zeta/k", headers=auth).get_json() == {"value": None}  # the data went with it


# -- keys -------------------------------------------------------------------------------------
def test_key_routes(client, auth):
    create_store(client, auth)
    assert client.get(f"/api/kv/{GUILD}/s/k", headers=auth).get_json() == {"value": None}  # flora: 200 null
    resp = client.put(f"/api/kv/{GUILD}/s/k", json={"value": "héllo"}, headers=auth)
    assert resp.status_code == 200 and resp.get_json() == {"success": True}
    assert client.get(f"/api/kv/{GUILD}/s/k", headers=auth).get_json() == {"value": "héllo"}

    for key in ("a/b/c", "with space", "q?x=1", "100%"):
        quoted = urllib.parse.quote(key, safe="")
        assert client.put(f"/api/kv/{GUILD}/s/{quoted}", json={"value": key}, headers=auth).status_code == 200
        assert client.get(f"/api/kv/{GUILD}/s/{quoted}", headers=auth).get_json() == {"value": key}
    assert client.get(f"/api/kv/{GUILD}/s/a/b/c", headers=auth).get_json() == {"value": "a/b/c"}

    resp = client.put(f"/api/kv/{GUILD}/s/odd", data='{"value": "\\ud800!"}', content_type="application/json", headers=auth)
    assert resp.status_code == 200  # a lone surrogate in JSON becomes U+FFFD, as in flora
    assert client.get(f"/api/kv/{GUILD}/s/odd", headers=auth).get_json() == {"value": "\ufffd!"}
    client.delete(f"/api/kv/{GUILD}/s/odd", headers=auth)

    future = int(time.time()) + 3600
    resp = client.put(f"/api/kv/{GUILD}/s/m", json={"value": "v", "expiration": future, "metadata": {"tag": [1]}}, headers=auth)
    assert resp.status_code == 200
    resp = client.put(f"/api/kv/{GUILD}/s/gone", json={"value": "v", "expiration": 1}, headers=auth)
    assert resp.status_code == 200
    assert client.get(f"/api/kv/{GUILD}/s/gone", headers=auth).get_json() == {"value": None}

    resp = client.delete(f"/api/kv/{GUILD}/s/k", headers=auth)
    assert resp.status_code == 200 and resp.data == b""
    assert client.delete(f"/api/kv/{GUILD}/s/k", headers=auth).status_code == 200  # absent: fine
    assert client.get(f"/api/kv/{GUILD}/s/k", headers=auth).get_json() == {"value": None}

    listed = client.get(f"/api/kv/{GUILD}/s", headers=auth).get_json()
    assert listed == {
        "keys": [
            {"name": "100%"},
            {"name": "a/b/c"},
            {"name": "m", "expiration": future, "metadata": {"tag": [1]}},
            {"name": "q?x=1"},
            {"name": "with space"},
        ],
        "listComplete": True,
    }


def test_key_route_errors(client, auth):
    create_store(client, auth)
    cases = [
        (client.get(f"/api/kv/{GUILD}/nope/k", headers=auth), 404, "Resource not found: store not found"),
        (client.put(f"/api/kv/{GUILD}/nope/k", json={"value": "v"}, headers=auth), 404, "Resource not found: store not found"),
        (client.get(f"/api/kv/{GUILD}/nope", headers=auth), 404, "Resource not found: store not found"),
        (
            client.put(f"/api/kv/{GUILD}/s/{'k' * 513}", json={"value": "v"}, headers=auth),
            400,
            "Bad request: key exceeds maximum size of 512 characters",
        ),
        (
            client.put(f"/api/kv/{GUILD}/s/k", json={"value": "x" * (1024 * 1024 + 1)}, headers=auth),
            400,
            "Bad request: value exceeds maximum size of 1MB",
        ),
        (client.get(f"/api/kv/{GUILD}/s?cursor=", headers=auth), 400, "Bad request: key cannot be empty"),
        (
            client.get(f"/api/kv/{GUILD}/s?limit=-1", headers=auth),
            400,
            "Bad request: Failed to deserialize query string: `limit` must be a non-negative integer",
        ),
    ]
    for resp, status, message in cases:
        assert (resp.status_code, resp.get_json()) == (status, {"message": message})
    for body, needle in (
        ({}, "missing field `value`"),
        ({"value": 1}, "value: expected a string"),
        ({"value": "v", "expiration": "soon"}, "expiration: expected an integer"),
        ({"value": "v", "expiration": 1.5}, "expiration: expected an integer"),
    ):
        resp = client.put(f"/api/kv/{GUILD}/s/k", json=body, headers=auth)
        assert resp.status_code == 422 and needle in resp.get_json()["message"]


def test_list_route_pages_in_camel_case(client, auth):
    create_store(client, auth)
    for i in range(5):
        client.put(f"/api/kv/{GUILD}/s/k{i}", json={"value": "v"}, headers=auth)
    client.put(f"/api/kv/{GUILD}/s/other", json={"value": "v"}, headers=auth)
    page = client.get(f"/api/kv/{GUILD}/s?prefix=k&limit=2", headers=auth).get_json()
    assert page == {"keys": [{"name": "k0"}, {"name": "k1"}], "listComplete": False, "cursor": "k1"}
    page = client.get(f"/api/kv/{GUILD}/s?prefix=k&limit=2&cursor=k3", headers=auth).get_json()
    assert page == {"keys": [{"name": "k4"}], "listComplete": True}
    assert client.get(f"/api/kv/{GUILD}/s?limit=0", headers=auth).get_json() == {"keys": [], "listComplete": True}


def test_rate_limit_is_429_with_retry_after_and_quota_is_413(app, client, auth, db, config, plugins):
    use_limits(app, db, config, plugins, Limits(store_bytes=100, writes_per_window=3))
    create_store(client, auth)
    for i in range(3):
        assert client.put(f"/api/kv/{GUILD}/s/k{i}", json={"value": "v"}, headers=auth).status_code == 200
    resp = client.put(f"/api/kv/{GUILD}/s/k9", json={"value": "v"}, headers=auth)
    assert resp.status_code == 429
    assert resp.get_json() == {"message": "Too many requests: kv write rate limit exceeded; retry later"}
    assert 1 <= int(resp.headers["Retry-After"]) <= 60

    use_limits(app, db, config, plugins, Limits(store_bytes=100))
    resp = client.put(f"/api/kv/{GUILD}/s/big", json={"value": "x" * 100}, headers=auth)
    assert resp.status_code == 413 and resp.get_json() == {"message": "Payload too large: kv store storage quota exceeded"}


def test_unknown_backend_is_503_with_the_reason(env, monkeypatch, plugins, auth, db):
    monkeypatch.setenv("KV_BACKEND", "nope")
    client = create_app(load_config(), plugins, db).test_client()
    resp = client.post("/api/kv/stores", json={"guild_id": GUILD, "store_name": "s"}, headers=auth)
    assert resp.status_code == 503
    assert resp.get_json() == {
        "message": "Service unavailable: KV_BACKEND='nope' is not an installed KV backend (installed: postgres, redis, sqlite)"
    }


# -- gevent ------------------------------------------------------------------------------------
GEVENT_API = r"""
from gevent import monkey
monkey.patch_all()

import json, sys, urllib.request
import gevent
from gevent.pywsgi import WSGIServer
from flora_core.config import load_config
from flora_core.storage import repo
from flora_http import create_app

app = create_app(load_config())
token = repo.create_token(app.extensions["flora"].db)[0]
server = WSGIServer(("127.0.0.1", 0), app, log=None)
server.start()
base = f"http://127.0.0.1:{server.server_port}/api/kv"

def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None

call("POST", "/stores", {"guild_id": "1", "store_name": "s"})
ticks = []
ticker = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.005)) for _ in range(10**6)])

def client(i):
    for j in range(5):  # 100 writes: under the 120-per-minute limit of a store
        call("PUT", f"/1/s/g{i:02d}-{j}", {"value": f"{i}-{j}"})
        assert call("GET", f"/1/s/g{i:02d}-{j}") == {"value": f"{i}-{j}"}

gevent.joinall([gevent.spawn(client, i) for i in range(20)], timeout=60, raise_error=True)
ticker.kill()
listed = call("GET", "/1/s?limit=1000")
call("DELETE", "/stores/1/s")
print(json.dumps({"keys": len(listed["keys"]), "complete": listed["listComplete"], "ticks": len(ticks)}))
"""


@pytest.mark.parametrize("backend", ["sqlite", "postgres", "redis"])
def test_backends_serve_the_api_under_gevent(env, request, backend):
    """The API process is gevent-patched; a backend must neither deadlock nor starve the hub."""
    extra = {}
    if backend == "postgres":
        extra = {"KV_BACKEND": "postgres", "KV_URL": request.getfixturevalue("postgres_url")}
    elif backend == "redis":
        extra = {"KV_BACKEND": "redis", "KV_URL": request.getfixturevalue("redis_url")}
    out = subprocess.run(
        [sys.executable, "-c", GEVENT_API], capture_output=True, text=True, timeout=90, cwd=env, env={**os.environ, **extra}
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["keys"] == 100 and result["complete"] is True
    assert result["ticks"] > 0  # other greenlets kept running meanwhile


# -- CLI ----------------------------------------------------------------------------------------
@pytest.fixture
def kv_cli(env, plugins):
    group = make_cli()
    plugins.register_commands(group)
    runner = CliRunner()
    return lambda *args: runner.invoke(group, list(args), obj={"plugins": plugins})


def one_error_line(result, code: int) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    return line


def test_cli_round_trip(kv_cli, client, auth):
    g = ["--guild-id", GUILD, "--store", "s"]
    assert kv_cli("kv", "stores", "--guild-id", GUILD).stdout == f"No KV stores found for guild {GUILD}\n"
    assert kv_cli("kv", "create", *g).stdout == f"Created KV store 's' for guild {GUILD}\n"
    listed = json.loads(kv_cli("kv", "stores", "--guild-id", GUILD, "--json").stdout)
    assert [s["store_name"] for s in listed] == ["s"]
    assert kv_cli("kv", "stores", "--guild", GUILD).stdout.startswith("s  (created ")

    result = kv_cli("kv", "set", *g, "greeting", "hi there", "--expiration", "4102444800", "--metadata", '{"by": "cli"}')
    assert result.exit_code == 0 and result.stdout == "Set greeting=hi there in store 's'\n"
    for i in range(3):
        kv_cli("kv", "set", *g, f"n{i}", str(i))
    assert kv_cli("kv", "get", *g, "greeting").stdout == "hi there\n"
    # the server's own data: the API sees what the CLI wrote
    assert client.get(f"/api/kv/{GUILD}/s/greeting", headers=auth).get_json() == {"value": "hi there"}

    text = kv_cli("kv", "list", *g, "--limit", "2").stdout
    assert text == (
        '  - greeting (expires: 4102444800) [metadata: {"by": "cli"}]\n  - n0\nMore keys available. Use --cursor n0\n'
    )
    page = json.loads(kv_cli("kv", "list", *g, "--prefix", "n", "--cursor", "n0", "--json").stdout)
    assert page == {"keys": [{"name": "n1"}, {"name": "n2"}], "listComplete": True}

    assert kv_cli("kv", "delete", *g, "n0").stdout == "Deleted key 'n0' from store 's'\n"
    assert one_error_line(kv_cli("kv", "get", *g, "n0"), 1) == "Error: Key 'n0' not found"
    assert kv_cli("kv", "delete-store", *g).stdout == f"Deleted KV store 's' for guild {GUILD}\n"
    assert kv_cli("kv", "list", *g).exit_code == 1


def test_cli_errors_are_one_line(kv_cli):
    g = ["--guild-id", GUILD, "--store", "s"]
    assert one_error_line(kv_cli("kv", "get", *g, "k"), 1) == "Error: store not found (create it with `flora kv create`)"
    kv_cli("kv", "create", *g)
    assert one_error_line(kv_cli("kv", "create", *g), 1) == "Error: store already exists"
    assert one_error_line(kv_cli("kv", "set", *g, "k" * 513, "v"), 1) == "Error: key exceeds maximum size of 512 characters"
    assert "not JSON" in one_error_line(kv_cli("kv", "set", *g, "k", "v", "--metadata", "{nope"), 2)
    assert "not a Discord snowflake" in one_error_line(kv_cli("kv", "stores", "--guild-id", "abc"), 2)
    assert "Missing option '--store'" in one_error_line(kv_cli("kv", "get", "--guild-id", GUILD, "k"), 2)
    assert (
        one_error_line(kv_cli("kv", "create", "--guild-id", GUILD, "--store", "a/b"), 1)
        == "Error: store_name contains invalid characters"
    )


def test_cli_with_an_unknown_backend(kv_cli, monkeypatch):
    monkeypatch.setenv("KV_BACKEND", "nope")
    line = one_error_line(kv_cli("kv", "stores", "--guild-id", GUILD), 1)
    assert line == "Error: KV_BACKEND='nope' is not an installed KV backend (installed: postgres, redis, sqlite)"


def test_cli_console_script_has_no_traceback(env):
    out = subprocess.run(
        [sys.executable, "-m", "flora_cli", "kv", "get", "--guild-id", GUILD, "--store", "s", "k"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=env,
    )
    assert (
        out.returncode == 1 and out.stderr.strip().splitlines()[-1] == "Error: store not found (create it with `flora kv create`)"
    )
    assert "Traceback" not in out.stderr


# -- ops ------------------------------------------------------------------------------------------
@pytest.fixture
def op(config, db, plugins):
    """``op(guild, name, args)``: an op called the way a worker calls it (result or OpError)."""
    services = WorkerServices(config=config, http=None, db=db, plugins=plugins)

    def call(guild, name, args):
        return asyncio.run(OPS[name](OpContext(guild, services), args))

    yield call
    kv = services.resources.get("kv.service")
    if kv is not None:
        kv.close()


def op_error(op, guild, name, args) -> tuple[str, str]:
    with pytest.raises(OpError) as info:
        op(guild, name, args)
    return info.value.code, info.value.message


def test_ops_answer_in_the_shapes_the_sdk_expects(op, client, auth):
    assert op_error(op, GUILD, "op_kv_get", {"storeName": "s", "key": "k"}) == ("KV_NOT_FOUND", "store not found")
    create_store(client, auth)
    s = {"storeName": "s"}
    assert op(GUILD, "op_kv_get", {**s, "key": "k"}) is None
    assert op(GUILD, "op_kv_get_with_metadata", {**s, "key": "k"}) is None
    assert op(GUILD, "op_kv_set", {**s, "key": "k", "value": "v"}) is None
    assert op(GUILD, "op_kv_get", {**s, "key": "k"}) == "v"
    assert op(GUILD, "op_kv_get_with_metadata", {**s, "key": "k"}) == ["v", None]
    op(GUILD, "op_kv_set", {**s, "key": "k", "value": "v", "expiration": 4102444800.7, "metadata": {"a": 1}})
    assert op(GUILD, "op_kv_get_with_metadata", {**s, "key": "k"}) == ["v", {"expiration": 4102444800, "metadata": {"a": 1}}]
    op(GUILD, "op_kv_update_metadata", {**s, "key": "k"})  # undefined metadata: removed, expiration kept
    assert op(GUILD, "op_kv_get_with_metadata", {**s, "key": "k"}) == ["v", {"expiration": 4102444800, "metadata": None}]
    assert op(GUILD, "op_kv_list_keys", {**s, "prefix": "k", "limit": 1}) == {
        "keys": [{"name": "k", "expiration": 4102444800}],
        "listComplete": False,
        "cursor": "k",
    }
    assert op(GUILD, "op_kv_list_keys", {**s, "cursor": "k"}) == {"keys": [], "listComplete": True}
    assert op(GUILD, "op_kv_incr", {**s, "key": "n"}) == 1
    assert op(GUILD, "op_kv_incr", {**s, "key": "n", "by": -5}) == -4
    assert op(GUILD, "op_kv_cas", {**s, "key": "c", "expected": None, "value": "x"}) is True
    assert op(GUILD, "op_kv_cas", {**s, "key": "c", "value": "y"}) is False  # expected omitted = must be absent
    assert op(GUILD, "op_kv_cas", {**s, "key": "c", "expected": "x", "value": "y"}) is True
    assert op(GUILD, "op_kv_delete", {**s, "key": "c"}) is None
    assert op(GUILD, "op_kv_get", {**s, "key": "c"}) is None
    assert op(GUILD, "op_kv_set", {**s, "key": "\ud800x", "value": "\udfff"}) is None  # lone surrogates from V8
    assert op(GUILD, "op_kv_get", {**s, "key": "\ufffdx"}) == "\ufffd"


@pytest.mark.parametrize(
    "name, args, expected",
    [
        ("op_kv_get", {"storeName": "s"}, ("INVALID_INPUT", "Invalid input for key: expected a string")),
        ("op_kv_get", {"key": "k"}, ("INVALID_INPUT", "Invalid input for storeName: expected a string")),
        ("op_kv_get", ["s", "k"], ("INVALID_INPUT", "Invalid input for op_kv_get: expected an object")),
        ("op_kv_get", {"storeName": "s", "key": ""}, ("INVALID_INPUT", "key cannot be empty")),
        (
            "op_kv_set",
            {"storeName": "s", "key": "k", "value": 5},
            ("INVALID_INPUT", "Invalid input for value: expected a string"),
        ),
        (
            "op_kv_set",
            {"storeName": "s", "key": "k", "value": "v", "expiration": "soon"},
            ("INVALID_INPUT", "Invalid input for expiration: expected unix seconds (a number) or null"),
        ),
        ("op_kv_incr", {"storeName": "s", "key": "n", "by": 1.5}, ("INVALID_INPUT", "Invalid input for by: expected an integer")),
        ("op_kv_incr", {"storeName": "s", "key": "n", "by": 2**60}, ("INVALID_INPUT", "Invalid input for by: out of range")),
        (
            "op_kv_list_keys",
            {"storeName": "s", "limit": -1},
            ("INVALID_INPUT", "Invalid input for limit: expected a non-negative integer"),
        ),
        ("op_kv_list_keys", {"storeName": "s", "prefix": 3}, ("INVALID_INPUT", "Invalid input for prefix: expected a string")),
        ("op_kv_update_metadata", {"storeName": "s", "key": "nope", "metadata": 1}, ("KV_NOT_FOUND", "key not found")),
        (
            "op_kv_cas",
            {"storeName": "s", "key": "k", "expected": 1, "value": "v"},
            ("INVALID_INPUT", "Invalid input for expected: expected a string"),
        ),
    ],
)
def test_op_errors_carry_a_code_and_floras_message(op, client, auth, name, args, expected):
    create_store(client, auth)
    assert op_error(op, GUILD, name, args) == expected


def test_ops_only_reach_the_calling_guild(op, client, auth):
    create_store(client, auth)
    create_store(client, auth, guild=OTHER)
    op(GUILD, "op_kv_set", {"storeName": "s", "key": "k", "value": "mine"})
    # a guildId in the arguments means nothing: the guild is the caller's
    assert op(OTHER, "op_kv_get", {"storeName": "s", "key": "k", "guildId": GUILD}) is None
    assert op(OTHER, "op_kv_list_keys", {"storeName": "s", "guild_id": GUILD}) == {"keys": [], "listComplete": True}
    client.delete(f"/api/kv/stores/{OTHER}/s", headers=auth)
    assert op_error(op, OTHER, "op_kv_get", {"storeName": "s", "key": "k"}) == ("KV_NOT_FOUND", "store not found")


# -- flora serve start ---------------------------------------------------------------------------
def test_serve_start_names_the_backend_or_why_it_cannot_be_used(env, plugins, caplog, monkeypatch):
    import logging
    from types import SimpleNamespace

    import flora_plugins.kv as kv_plugin

    caplog.set_level(logging.INFO, logger="flora.kv")
    kv_plugin.flora_startup(SimpleNamespace(config=load_config(), plugins=plugins))
    monkeypatch.setenv("KV_BACKEND", "redis")
    kv_plugin.flora_startup(SimpleNamespace(config=load_config(), plugins=plugins))
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "KV backend: sqlite"),
        (
            "ERROR",
            "KV_BACKEND=redis needs KV_URL (or REDIS_URL) to be a redis:// URL; "
            "scripts' KV calls fail with this message until it is fixed",
        ),
    ]


def test_export_writes_a_backup_and_is_rate_limited(client, auth, tmp_path):
    from flora_http.app import state  # noqa: F401 - the app's data folder comes from its config

    create_store(client, auth, "backup-me")
    client.put(f"/api/kv/{GUILD}/backup-me/k1", json={"value": "v1", "metadata": {"m": 1}}, headers=auth)
    resp = client.post(f"/api/kv/export/{GUILD}", headers=auth)
    assert resp.status_code == 200, resp.get_json()
    backup_id = resp.get_json()["backup_id"]
    data_path = client.application.extensions["flora"].config.data_path
    saved = json.loads((data_path / "kv-backups" / GUILD / f"{backup_id}.json").read_text())
    assert saved["stores"]["backup-me"] == [{"key": "k1", "value": "v1", "expiration": None, "metadata": {"m": 1}}]
    again = client.post(f"/api/kv/export/{GUILD}", headers=auth)
    assert again.status_code == 429 and again.get_json()["message"].startswith(
        "Too many requests: kv export rate limit exceeded; retry in"
    )
