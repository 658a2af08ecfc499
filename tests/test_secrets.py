"""Secrets without a running flora: encryption at rest, the master key rule, host patterns, the SSRF address rules."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from flora_core import netguard
from flora_core.config import Config, all_keys
from flora_core.plugins import Plugins
from flora_core.runtime.opctx import WorkerServices
from flora_plugins import secrets as secrets_plugin
from flora_plugins.secrets import hosts
from flora_plugins.secrets.store import (
    SecretBox,
    SecretsDisabled,
    SecretsError,
    box_from_config,
    delete_secret,
    list_secrets,
    load_secrets,
    parse_master_key,
    put_secret,
)
from flora_plugins.storage.postgres import PostgresDatabase
from flora_plugins.storage.sqlite import SQLiteDatabase

KEY_A = "11" * 32
KEY_B = "22" * 32
GUILD = "123456789012345678"


def config(**values) -> Config:
    base = {k.attr: k.default for k in all_keys()}
    base.update(values)
    return Config(base)


@pytest.fixture
def sqlite_db(tmp_path):
    db = SQLiteDatabase(str(tmp_path / "flora.db"))
    db.migrate(Plugins().migrations())
    yield db
    db.close()


@pytest.fixture
def postgres_db(postgres_url):
    db = PostgresDatabase(postgres_url)
    db.migrate(Plugins().migrations())
    yield db
    db.close()


def test_master_key_rule():
    assert parse_master_key(KEY_A) == bytes.fromhex(KEY_A)
    assert parse_master_key("k" * 32) == b"k" * 32
    assert parse_master_key(None) is None and parse_master_key("") is None
    for raw, n in (("short", 5), ("ab" * 31, 62), ("z" * 64, 64)):
        with pytest.raises(
            SecretsError,
            match=rf"^SECRETS_MASTER_KEY must be 32 bytes \(got {n}\): 64 hex characters or 32 raw bytes; generate one with: ",
        ):
            parse_master_key(raw)
    with pytest.raises(
        SecretsDisabled,
        match="^secrets are disabled: set SECRETS_MASTER_KEY \\(64 hex characters; generate one with: python3 -c ",
    ):
        box_from_config(config())


def _encrypted_at_rest(db, raw_rows):
    box = SecretBox(bytes.fromhex(KEY_A))
    value = "hunter2-very-secret-value"
    assert put_secret(db, box, GUILD, "API_KEY", value, ["api.example.com"]) == {
        "name": "API_KEY",
        "allowed_hosts": ["api.example.com"],
    }
    put_secret(db, box, GUILD, "API_KEY", value, ["*.example.com"])  # replace: same row, new nonce
    rows = raw_rows()
    assert len(rows) == 1
    assert all(value not in str(col) for col in rows[0])
    assert list_secrets(db, GUILD) == [{"name": "API_KEY", "allowed_hosts": ["*.example.com"]}]
    found, warnings = load_secrets(db, box, GUILD)
    assert found["API_KEY"].value == value and found["API_KEY"].allowed_hosts == ("*.example.com",) and not warnings
    # the guild id and name are authenticated: a row moved to another guild does not open
    with pytest.raises(SecretsError):
        box.open("999", "API_KEY", rows[0][0], rows[0][1])
    assert delete_secret(db, GUILD, "API_KEY") and not delete_secret(db, GUILD, "API_KEY")
    assert list_secrets(db, GUILD) == []
    return value


def test_values_are_encrypted_at_rest_sqlite(sqlite_db, tmp_path):
    value = _encrypted_at_rest(
        sqlite_db,
        lambda: [
            tuple(r.values()) for r in sqlite_db.fetchall("SELECT nonce, ciphertext, allowed_hosts, name FROM guild_secrets")
        ],
    )
    put_secret(sqlite_db, SecretBox(bytes.fromhex(KEY_A)), GUILD, "X", value, [])
    sqlite_db.close()
    for path in tmp_path.glob("flora.db*"):  # the database file and its WAL
        assert value.encode() not in path.read_bytes()
    conn = sqlite3.connect(tmp_path / "flora.db")
    assert conn.execute("SELECT count(*) FROM guild_secrets").fetchone()[0] == 1
    conn.close()


def test_values_are_encrypted_at_rest_postgres(postgres_db):
    _encrypted_at_rest(
        postgres_db,
        lambda: [
            tuple(r.values()) for r in postgres_db.fetchall("SELECT nonce, ciphertext, allowed_hosts, name FROM guild_secrets")
        ],
    )


def test_wrong_master_key_skips_rows_with_a_warning(sqlite_db, caplog):
    put_secret(sqlite_db, SecretBox(bytes.fromhex(KEY_A)), GUILD, "OLD", "v1", [])
    put_secret(sqlite_db, SecretBox(bytes.fromhex(KEY_B)), GUILD, "NEW", "v2", [])
    with caplog.at_level(logging.WARNING, logger="flora.secrets"):
        found, warnings = load_secrets(sqlite_db, SecretBox(bytes.fromhex(KEY_B)), GUILD)
    assert list(found) == ["NEW"] and found["NEW"].value == "v2"
    assert list(warnings) == ["OLD"] and "another SECRETS_MASTER_KEY" in warnings["OLD"]
    assert any("secret 'OLD' cannot be decrypted" in r.getMessage() for r in caplog.records)
    # what a script is told at load: only names that decrypt
    services = WorkerServices(config=config(secrets_master_key=KEY_B), http=None, db=sqlite_db)
    assert secrets_plugin.flora_isolate_globals(GUILD, services) == {"__floraSecretNames": ["NEW"]}
    # no key: no names published (every name gives a placeholder; fetch() then says secrets are disabled)
    assert secrets_plugin.flora_isolate_globals(GUILD, WorkerServices(config=config(), http=None, db=sqlite_db)) == {}


@pytest.mark.parametrize(
    "host, pattern, ok",
    [
        ("api.example.com", "api.example.com", True),
        ("API.Example.com.", "api.example.com", True),
        ("api.example.com", "*.example.com", True),
        ("example.com", "*.example.com", True),
        ("a.b.example.com", "*.example.com", True),
        ("evil-example.com", "*.example.com", False),
        ("example.com.evil.io", "*.example.com", False),
        ("other.com", "api.example.com", False),
        ("api.example.com", "https://api.example.com/v1?x=1", True),
        ("api.example.com", "api.example.com:443", True),
        ("::1", "[::1]", True),
        ("x.com", "", False),
    ],
)
def test_host_patterns(host, pattern, ok):
    assert hosts.host_matches(host, pattern) is ok


def test_empty_allow_list_allows_any_host():
    assert hosts.host_allowed("anything.io", [])
    assert not hosts.host_allowed("anything.io", ["api.example.com"])


@pytest.mark.parametrize(
    "address, problem",
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("172.16.0.1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("169.254.1.1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.100.100.200", "metadata"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("64:ff9b::a00:1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("fe80::1", "link-local"),
        ("fc00::1", "private"),
        ("240.0.0.1", "reserved"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("93.184.216.34", None),
    ],
)
def test_ssrf_address_rules(address, problem):
    found = netguard.address_problem(address)
    assert (found is None) if problem is None else (problem in found), (address, found)


def test_private_allowlist():
    allow = netguard.parse_allowlist(" 127.0.0.1:8080, internal.svc ,[::1]:9000,")
    assert allow.allows("127.0.0.1", 8080)
    assert not allow.allows("127.0.0.1", 8081)
    assert allow.allows("INTERNAL.svc", 1234)
    assert allow.allows("[::1]", 9000) and not allow.allows("::1", 80)
