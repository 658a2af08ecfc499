"""flora_core.netguard: the one SSRF guard behind a script's ``fetch`` and attachment downloads.

Every address form is checked through both users — ``op_fetch`` and the attachment path
(``parse_attachments`` then ``load_attachments``) — and both must make the same decision. Names the
tests make up (``*.test``) are answered by a fixed resolver put in place of the system's; every other
name, and every connection, is real (sockets to HTTP servers on 127.0.0.1, no mock of aiohttp).
The last part runs a real ``flora serve`` whose deployed script fetches and attaches.
"""

from __future__ import annotations

import asyncio
import http.server
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
from types import SimpleNamespace
from urllib.parse import quote, unquote

import aiohttp
import pytest
import yarl
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver
from conftest import BOT_TOKEN, deploy_files, emulator_guild, free_port, start_flora, stop_flora

from flora_core import netguard
from flora_core.config import ConfigError, load_config
from flora_core.errors import OpError
from flora_core.runtime.opctx import OpContext, WorkerServices
from flora_plugins.discord_ops.attachments import load_attachments, parse_attachments, url_guard
from flora_plugins.secrets import fetch as fetch_module

BODY = b"hello from 127.0.0.1"
CAP = 1 << 20


# -- a local web server -----------------------------------------------------------------------
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.seen.append((self.path, self.headers.get("Host")))
        path, _, query = self.path.partition("?")
        if path == "/file":
            body, status, headers = BODY, 200, {}
        elif path == "/redirect":
            body, status, headers = b"", 302, {"Location": unquote(query.removeprefix("to="))}
        elif path == "/loop":
            body, status, headers = b"", 302, {"Location": "/loop"}
        else:
            body, status, headers = b"not found", 404, {}
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve() -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def web():
    server = serve()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def other_web():
    """A second server on 127.0.0.1, on a port no test lists."""
    server = serve()
    yield server
    server.shutdown()
    server.server_close()


# -- names the tests make up ------------------------------------------------------------------------
MADE_UP = {
    "loopback.test": ["127.0.0.1"],
    "private.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "cgnat.test": ["100.64.0.1"],
    "unspecified.test": ["0.0.0.0"],
    "v6-unspecified.test": ["::"],
    "ula.test": ["fd00::1"],
    "zoned.test": ["fe80::1%lo"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "nat64-metadata.test": ["64:ff9b::a9fe:a9fe"],
    "sixtofour.test": ["2002:7f00:1::"],
    "one-bad-answer.test": ["8.8.8.8", "10.0.0.1"],  # a public address does not excuse a private one
    "public.test": ["8.8.8.8", "2606:4700:4700::1111"],
    # resolve to the local web servers (allowed only when the name is listed)
    "files.corp.internal": ["127.0.0.1"],
    "corp.internal": ["127.0.0.1"],
    "alias.test": ["127.0.0.1"],
}


class MadeUpNames(AbstractResolver):
    """Fixed answers for MADE_UP, the system's resolver for every other name; counts the lookups."""

    def __init__(self):
        self.system = ThreadedResolver()
        self.lookups: list[str] = []

    async def resolve(self, host, port=0, family=socket.AF_INET):
        self.lookups.append(host)
        if host.rstrip(".") not in MADE_UP:
            return await self.system.resolve(host, port, family)
        return [
            {
                "hostname": host,
                "host": a,
                "port": port,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
                "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
            }
            for a in MADE_UP[host.rstrip(".")]
        ]

    async def close(self):
        await self.system.close()


@pytest.fixture(autouse=True)
def made_up_names(monkeypatch):
    resolvers: list[MadeUpNames] = []

    def make():
        resolvers.append(MadeUpNames())
        return resolvers[-1]

    monkeypatch.setattr(netguard, "system_resolver", make)
    return resolvers


def hosts_file_names() -> list[str]:
    """Names other than localhost that /etc/hosts maps to a loopback or private address."""
    names = []
    try:
        lines = open("/etc/hosts", encoding="utf-8").read().splitlines()
    except OSError:
        return names
    for line in lines:
        fields = line.split("#", 1)[0].split()
        if len(fields) < 2:
            continue
        try:
            address = ipaddress.ip_address(fields[0])
        except ValueError:
            continue
        if address.is_loopback or address.is_private:
            names += [n for n in fields[1:] if "localhost" not in n and n not in names]
    return names[:2]


# -- the two users ------------------------------------------------------------------------------------
def config(allowed: str = "", timeout: int = 5):
    return SimpleNamespace(
        fetch_allowed_private_hosts=allowed, fetch_timeout_secs=timeout, fetch_max_response_bytes=CAP, secrets_master_key=None
    )


def via_fetch(url: str, allowed: str = "") -> tuple[str, str]:
    """``("ok", body)``, ``("refused", message)`` or ``("error", message)`` from a script's fetch."""
    ctx = OpContext("111111111111111111", WorkerServices(config=config(allowed), http=None))

    async def go():
        try:
            return await fetch_module.op_fetch(ctx, {"url": url})
        finally:
            found = ctx.services.resources.get(fetch_module.RESOURCE_KEY)
            if found is not None:
                await found[1].close()

    try:
        out = asyncio.run(go())
    except OpError as exc:
        return ("refused" if exc.code == "FETCH_BLOCKED" else "error"), exc.message
    return "ok", out["body"]


def via_attachment(url: str, allowed: str = "") -> tuple[str, str]:
    """The same from an attachment URL: checked when the message is parsed, then downloaded."""
    cfg = config(allowed)
    try:
        specs = parse_attachments([{"Url": {"url": url}}], cap=CAP, guard=url_guard(cfg))
        files = asyncio.run(load_attachments(SimpleNamespace(config=cfg), specs))
    except OpError as exc:
        refused = exc.message.endswith(" is a private or local address") or exc.message.endswith(
            " resolves to a private or local address"
        )
        return ("refused" if refused else "error"), exc.message
    return "ok", files[0].data.decode()


def both(url: str, allowed: str = "") -> dict:
    return {"fetch": via_fetch(url, allowed), "attachment": via_attachment(url, allowed)}


# -- every address form, for both users ---------------------------------------------------------------------
REFUSED = [
    # IPv4
    ("127.0.0.1", "a loopback address"),
    ("127.255.255.254", "a loopback address"),
    ("10.0.0.1", "a private address"),
    ("172.16.5.4", "a private address"),
    ("192.168.1.1", "a private address"),
    ("169.254.1.1", "a link-local address"),
    ("169.254.169.254", "a cloud metadata address"),
    ("168.63.129.16", "a cloud metadata address"),  # Azure's WireServer: a public address
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("100.100.100.200", "a cloud metadata address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a broadcast address"),
    ("0.0.0.0", "an unspecified address"),
    ("0.1.2.3", "a reserved address"),
    ("192.0.2.1", "a documentation address"),
    ("198.18.0.1", "a benchmarking address"),
    # IPv4 literals written the other ways a URL may write them
    ("2130706433", "127.0.0.1 is a loopback address"),  # decimal
    ("0x7f.1", "127.0.0.1 is a loopback address"),  # hex, short
    ("0x7f000001", "127.0.0.1 is a loopback address"),
    ("0177.0.0.1", "127.0.0.1 is a loopback address"),  # octal
    ("127.1", "127.0.0.1 is a loopback address"),  # short
    ("127.0.0.1.", "127.0.0.1 is a loopback address"),  # trailing dot
    ("012.0.0.1", "10.0.0.1 is a private address"),
    ("2852039166", "169.254.169.254 is a cloud metadata address"),
    ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254 is a cloud metadata address"),
    ("0", "0.0.0.0 is an unspecified address"),
    # IPv6
    ("[::1]", "a loopback address"),
    ("[0:0:0:0:0:0:0:1]", "::1 is a loopback address"),
    ("[::]", "an unspecified address"),
    ("[fc00::1]", "a private address"),
    ("[fd12:3456::1]", "a private address"),
    ("[fe80::1]", "a link-local address"),
    ("[fe80::1%25eth0]", "a link-local address"),  # zone id
    ("[fe80::1%25lo]", "a link-local address"),
    ("[ff02::1]", "a multicast address"),
    ("[fd00:ec2::254]", "a cloud metadata address"),
    ("[2001:db8::1]", "a documentation address"),
    ("[100::1]", "a reserved address"),
    ("[::ffff:127.0.0.1]", "a loopback address (127.0.0.1 in IPv4-mapped form)"),
    ("[::ffff:10.0.0.1]", "a private address"),
    ("[::ffff:169.254.169.254]", "a cloud metadata address"),
    ("[::127.0.0.1]", "a loopback address (127.0.0.1 in IPv4-compatible form)"),
    ("[::8.8.8.8]", "IPv4-compatible"),  # deprecated form: refused whatever it embeds
    ("[2002:7f00:1::]", "a loopback address (127.0.0.1 in 6to4 form)"),
    ("[2002:a9fe:a9fe::1]", "a cloud metadata address"),
    ("[2001:0:4136:e378:8000:63bf:80ff:fffe]", "a loopback address (127.0.0.1 in Teredo form)"),
    ("[2001:0:4136:e378:8000:63bf:f7f7:f7f7]", "a non-public address (Teredo)"),
    ("[64:ff9b::a9fe:a9fe]", "a cloud metadata address (169.254.169.254 in NAT64 form)"),
    ("[64:ff9b::7f00:1]", "a loopback address (127.0.0.1 in NAT64 form)"),
    ("[64:ff9b::a00:1]", "a private address"),
    ("[64:ff9b:1::a9fe:a9fe]", "a cloud metadata address (169.254.169.254 in local-use NAT64 form)"),
    ("[64:ff9b:1::808:808]", "a non-public address (local-use NAT64)"),
    # names, resolved by the system (localhost, /etc/hosts) or made up
    ("localhost", "resolves to 127.0.0.1, a loopback address"),
    ("LocalHost", "localhost resolves to 127.0.0.1, a loopback address"),
    ("Loopback.Test.", "loopback.test resolves to 127.0.0.1, a loopback address"),  # case, trailing dot
    *[(name, "resolves to") for name in hosts_file_names()],
    ("loopback.test", "loopback.test resolves to 127.0.0.1, a loopback address"),
    ("private.test", "a private address"),
    ("metadata.test", "a cloud metadata address"),
    ("cgnat.test", "a carrier-grade NAT address"),
    ("unspecified.test", "an unspecified address"),
    ("v6-unspecified.test", "an unspecified address"),
    ("ula.test", "a private address"),
    ("zoned.test", "a link-local address"),
    ("mapped.test", "a loopback address"),
    ("nat64-metadata.test", "resolves to 64:ff9b::a9fe:a9fe, a cloud metadata address"),
    ("sixtofour.test", "a loopback address"),
    ("one-bad-answer.test", "resolves to 10.0.0.1, a private address"),
]


@pytest.mark.parametrize("host, reason", REFUSED, ids=[h for h, _ in REFUSED])
def test_every_address_form_is_refused_by_both_users(host, reason):
    url = f"http://{host}/x.png"
    got = both(url)
    assert got["fetch"][0] == "refused", got
    assert got["attachment"][0] == "refused", got
    assert got["fetch"][1].startswith("fetch refused: ") and reason in got["fetch"][1], got
    assert ("resolves to" in got["fetch"][1]) == ("resolves to" in got["attachment"][1]), got


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_pass(address):
    """Only the decision (no connection leaves this machine): the guard and the attachment parse step,
    which is the check both users make before connecting."""
    assert netguard.address_problem(address) is None
    host = f"[{address}]" if ":" in address else address
    assert netguard.Guard().check_url(f"http://{host}/x").raw_host == str(ipaddress.ip_address(address))
    assert parse_attachments([{"Url": {"url": f"http://{host}/x"}}], cap=CAP, guard=netguard.Guard())[0].url


def test_ipv4_literals_are_written_as_browsers_do():
    guard = netguard.Guard()
    assert str(guard.check_url("http://134744072:8080/a?b#c")) == "http://8.8.8.8:8080/a?b#c"
    assert str(guard.check_url("https://0x8.0x8.0x8.0x8/")) == "https://8.8.8.8/"
    assert str(guard.check_url("http://010.010.010.010/")) == "http://8.8.8.8/"
    for bad in ("http://1.2.3.4.5/", "http://08/", "http://256.1.1.1/", "http://example.123/"):
        with pytest.raises(netguard.BadURL):
            guard.check_url(bad)
    assert both("http://1.2.3.4.5/")["fetch"] == ("error", "fetch: invalid URL 'http://1.2.3.4.5/'")
    assert via_attachment("http://1.2.3.4.5/") == ("error", "Invalid input for attachments[].url: invalid URL")


def test_public_names_pass_the_resolver():
    async def go():
        resolver = netguard.GuardedResolver(netguard.AllowList(), MadeUpNames())
        try:
            return await resolver.resolve("public.test", 443, socket.AF_UNSPEC)
        finally:
            await resolver.close()

    assert [a["host"] for a in asyncio.run(go())] == ["8.8.8.8", "2606:4700:4700::1111"]


# -- FETCH_ALLOWED_PRIVATE_HOSTS ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "setting, host, port, allowed",
    [
        ("files.example.internal", "files.example.internal", 80, True),
        ("files.example.internal", "FILES.Example.Internal.", 80, True),  # case, trailing dot
        ("Files.Example.Internal.", "files.example.internal", 443, True),
        ("files.example.internal", "x.files.example.internal", 80, False),
        ("files.example.internal", "example.internal", 80, False),
        ("*.corp.internal", "corp.internal", 80, True),
        ("*.corp.internal", "files.corp.internal", 80, True),
        ("*.corp.internal", "a.b.corp.internal.", 80, True),
        ("*.CORP.internal.", "Files.corp.INTERNAL", 80, True),
        ("*.corp.internal", "evilcorp.internal", 80, False),
        ("*.corp.internal", "corp.internal.evil.io", 80, False),
        ("127.0.0.1", "127.0.0.1", 8080, True),
        ("127.0.0.1", "0x7f.1", 8080, True),  # the same address, written another way
        ("127.0.0.1", "127.0.0.2", 8080, False),
        ("127.0.0.1", "localhost", 8080, False),  # a name is not allowed for the address it resolves to
        ("127.0.0.1:8080", "127.0.0.1", 8080, True),
        ("127.0.0.1:8080", "127.0.0.1", 8081, False),
        ("[::1]", "::1", 80, True),
        ("[::1]:9000", "[0:0::1]", 9000, True),
        ("[::1]:9000", "::1", 80, False),
        ("::1", "[::1]", 80, True),
        ("fe80::1", "fe80::1%eth0", 80, True),
        ("10.1.0.0/16", "10.1.2.3", 80, True),
        ("10.1.0.0/16", "10.2.0.1", 80, False),
        ("10.1.0.0/16", "internal.example", 80, False),
        ("10.1.0.0/16:8443", "10.1.2.3", 8443, True),
        ("10.1.0.0/16:8443", "10.1.2.3", 80, False),
        ("fd00::/8", "fd12::5", 80, True),
        ("[fd00::/8]:443", "fd12::5", 80, False),
        (" a.example ,, *.corp.internal ,", "x.corp.internal", 80, True),  # spaces and empty items
        ("", "127.0.0.1", 80, False),
    ],
)
def test_allowlist_entries(setting, host, port, allowed):
    assert netguard.parse_allowlist(setting).allows(host, port) is allowed


@pytest.mark.parametrize(
    "entry, why",
    [
        ("http://files.example.internal", "is a URL, not a host"),
        ("user@files.example.internal", "is a URL, not a host"),
        ("*", "'*'"),
        ("*.", "'*'"),
        ("files.*.internal", "'*'"),
        ("*.10.0.0.1", "is not *. followed by a domain name"),
        ("files.example.internal:99999", "has an invalid port '99999'"),
        ("files.example.internal:http", "has an invalid port 'http'"),
        ("[::1", "has no closing ']'"),
        ("[::1]:", "has an invalid port ''"),
        ("[10.0.0.1]", "not an IPv6 address"),
        ("300.1.1.1", "is not a valid IPv4 address"),
        ("10.0.0.1/8", "has host bits set"),
        ("10.0.0.0/33", "is not a valid CIDR range"),
        ("fe80::zz", "is not a valid IPv6 address"),
        ("files example", "is not a valid host name"),
        ("-files.example", "is not a valid host name"),
        ("a..b", "is not a valid host name"),
    ],
)
def test_an_invalid_entry_is_a_one_line_configuration_error(entry, why, tmp_path, monkeypatch):
    with pytest.raises(netguard.InvalidAllowList) as info:
        netguard.parse_allowlist(f"ok.example, {entry}")
    assert why in str(info.value) and repr(entry) in str(info.value)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(env={"FETCH_ALLOWED_PRIVATE_HOSTS": f"ok.example,{entry}"})
    message = str(info.value)
    assert message.startswith("invalid FETCH_ALLOWED_PRIVATE_HOSTS: entry ") and why in message and "\n" not in message


def test_config_toml_may_give_a_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text('[fetch]\nallowed_private_hosts = ["*.corp.internal", "127.0.0.1:8080"]\n')
    value = load_config(env={}).fetch_allowed_private_hosts
    assert netguard.parse_allowlist(value).allows("a.corp.internal") and netguard.parse_allowlist(value).allows("127.0.0.1", 8080)
    (tmp_path / "config.toml").write_text('[fetch]\nallowed_private_hosts = "*"\n')
    with pytest.raises(ConfigError, match=r"^invalid fetch.allowed_private_hosts in config.toml: entry '\*'"):
        load_config(env={})


def test_flora_serve_stops_on_an_invalid_entry(tmp_path):
    env = dict(
        os.environ,
        FLORA_DATA_DIR=str(tmp_path / "data"),
        API_PORT=str(free_port()),
        API_ADDRESS="127.0.0.1",
        FETCH_ALLOWED_PRIVATE_HOSTS="127.0.0.1, http://corp.internal",
        RUNTIME_MAX_WORKERS="1",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "flora_cli", "serve", "--emulator", "--emulator-port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if "FETCH_ALLOWED_PRIVATE_HOSTS" in line]
    assert lines == [
        "Error: invalid FETCH_ALLOWED_PRIVATE_HOSTS: entry 'http://corp.internal' is a URL, not a host "
        "(expected host, host:port, *.domain, an IP address or a CIDR range)"
    ], proc.stdout + proc.stderr


def test_the_core_guard_needs_no_plugin():
    code = "import sys, flora_core.netguard, flora_core.config; print(sorted(m for m in sys.modules if m.startswith('flora_plugins')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# -- real connections to 127.0.0.1 ---------------------------------------------------------------------------
def test_a_local_server_is_reached_only_when_listed(web):
    port = web.server_address[1]
    url = f"http://127.0.0.1:{port}/file"
    for allowed in (f"127.0.0.1:{port}", "127.0.0.1", "127.0.0.0/8", f"127.0.0.0/8:{port}"):
        assert both(url, allowed) == {"fetch": ("ok", BODY.decode()), "attachment": ("ok", BODY.decode())}, allowed
    for allowed in ("", f"127.0.0.1:{port + 1}", "localhost", "10.0.0.0/8", "*.corp.internal"):
        got = both(url, allowed)
        assert got["fetch"] == ("refused", "fetch refused: 127.0.0.1 is a loopback address"), (allowed, got)
        assert got["attachment"] == ("refused", "Invalid input for attachments[].url: 127.0.0.1 is a private or local address")
    # the IPv4 forms of the listed address reach the same server (written 127.0.0.1 on the wire)
    for host in ("2130706433", "0x7f.1", "127.1"):
        assert both(f"http://{host}:{port}/file", f"127.0.0.1:{port}")["attachment"] == ("ok", BODY.decode())
        assert web.seen[-1] == ("/file", f"127.0.0.1:{port}")


def test_names_are_listed_by_name_for_both_users(web, made_up_names):
    """`*.corp.internal` in FETCH_ALLOWED_PRIVATE_HOSTS now works for fetch too (issue 9, item 7)."""
    port = web.server_address[1]
    for host in ("files.corp.internal", "corp.internal", "FILES.corp.internal."):
        url = f"http://{host}:{port}/file"
        assert both(url, "*.corp.internal") == {"fetch": ("ok", BODY.decode()), "attachment": ("ok", BODY.decode())}, host
        got = both(url, "corp.example, 127.0.0.1")
        assert got["fetch"][0] == got["attachment"][0] == "refused", got
    assert both(f"http://localhost:{port}/file", "LOCALHOST.")["fetch"] == ("ok", BODY.decode())


def test_the_connection_goes_to_the_address_that_was_checked(web, made_up_names):
    """One lookup per connection, whose answer is both checked and connected to: ``alias.test`` exists
    only in the resolver the guard asked, and the server received the request."""
    port = web.server_address[1]
    before = len(web.seen)
    assert via_fetch(f"http://alias.test:{port}/file", "alias.test") == ("ok", BODY.decode())
    assert web.seen[before:] == [("/file", f"alias.test:{port}")]
    assert [r.lookups for r in made_up_names if r.lookups] == [["alias.test"]]
    made_up_names.clear()
    assert via_attachment(f"http://alias.test:{port}/file")[0] == "refused"
    assert [r.lookups for r in made_up_names if r.lookups] == [["alias.test"]]
    assert len(web.seen) == before + 1  # the refused one never reached the server


def test_a_redirect_to_loopback_is_refused_for_both(web, other_web):
    port, other = web.server_address[1], other_web.server_address[1]
    listed = f"127.0.0.1:{port}"
    base = f"http://127.0.0.1:{port}/redirect?to="

    def redirect_to(target):
        return base + quote(target, safe="")

    cases = [
        (f"http://127.0.0.1:{other}/file", "127.0.0.1 is a loopback address", "127.0.0.1 is a private or local address"),
        (
            f"http://localhost:{other}/file",
            "localhost resolves to 127.0.0.1, a loopback address",
            "localhost resolves to a private or local address",
        ),
        (f"http://[::1]:{other}/file", "::1 is a loopback address", "::1 is a private or local address"),
        (f"http://2130706433:{other}/file", "127.0.0.1 is a loopback address", "127.0.0.1 is a private or local address"),
        (
            "http://169.254.169.254/latest/meta-data/",
            "169.254.169.254 is a cloud metadata address",
            "169.254.169.254 is a private or local address",
        ),
        (
            "http://[64:ff9b::a9fe:a9fe]/",
            "a cloud metadata address (169.254.169.254 in NAT64 form)",
            "64:ff9b::a9fe:a9fe is a private or local address",
        ),
    ]
    for target, fetch_says, attachment_says in cases:
        got = both(redirect_to(target), listed)
        assert got["fetch"][0] == "refused" and fetch_says in got["fetch"][1], (target, got)
        assert got["attachment"] == ("refused", f"Invalid input for attachments[].url: {attachment_says}"), (target, got)
    assert not other_web.seen  # no redirect reached the other server
    # a redirect to a listed place is followed
    assert both(redirect_to(f"http://127.0.0.1:{port}/file"), listed) == {
        "fetch": ("ok", BODY.decode()),
        "attachment": ("ok", BODY.decode()),
    }


def test_at_most_five_redirects_for_both(web):
    port = web.server_address[1]
    url, listed = f"http://127.0.0.1:{port}/loop", f"127.0.0.1:{port}"
    before = len(web.seen)
    assert via_fetch(url, listed) == ("error", "fetch failed: too many redirects (more than 5)")
    assert len(web.seen) - before == 6  # the request and 5 redirects
    before = len(web.seen)
    assert via_attachment(url, listed) == ("error", "Invalid input for attachments[].url: more than 5 redirects")
    assert len(web.seen) - before == 6


def test_a_session_of_its_own_is_refused():
    async def go():
        async with aiohttp.ClientSession() as plain:
            with pytest.raises(RuntimeError, match="Guard.session"):
                await netguard.Guard().request(
                    plain, netguard.Hop("GET", yarl.URL("http://8.8.8.8/")), follow=lambda resp, hop: None
                )

    asyncio.run(go())


# -- end to end: a deployed script, a real `flora serve` -------------------------------------------------------------
PROBE = r"""
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || !ctx.msg.content.startsWith('probe ')) return;
  const [, id, kind, url] = ctx.msg.content.split(' ');
  let out;
  try {
    if (kind === 'fetch') {
      const res = await fetch(url);
      out = { ok: true, status: res.status, body: await res.text() };
    } else {
      const m = await rest.sendMessage({ channelId: ctx.msg.channelId, attachments: [{ Url: { url, filename: 'f.txt' } }] });
      out = { ok: true, sizes: m.attachments.map((a) => a.size) };
    }
  } catch (e) {
    out = { ok: false, code: e.code, message: e.message };
  }
  console.log(`PROBE ${id} ${JSON.stringify(out)}`);
});
"""


@pytest.fixture(scope="module")
def flora_world(tmp_path_factory, web, other_web):
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    server = None
    try:
        server = start_flora(
            emu,
            tmp_path_factory.mktemp("netguard"),
            FETCH_ALLOWED_PRIVATE_HOSTS=f"127.0.0.1:{web.server_address[1]}",
            FETCH_TIMEOUT_SECS=10,
        )
        server.emu = emu
        g = emulator_guild(emu, "Netguard")
        server.wait_log(g["id"], "starter script deployed", 30)
        status, body = deploy_files(server, g["id"], {"src/main.ts": PROBE})
        assert status == 200, body
        server.guild = g
        yield server
    finally:
        if server is not None:
            stop_flora(server)
        emu.stop()


def probe(server, n: int, kind: str, url: str) -> dict:
    g = server.guild
    server.emu.user_says(g["channel_id"], g["user_id"], f"probe {n} {kind} {url}")
    entry = server.wait_log(g["id"], f"PROBE {n} ", timeout=30)
    return json.loads(entry["message"].split(" ", 2)[2])


def test_end_to_end_listed_server_is_reached_and_others_refused(flora_world, web, other_web):
    port, other = web.server_address[1], other_web.server_address[1]
    listed, unlisted = f"http://127.0.0.1:{port}/file", f"http://127.0.0.1:{other}/file"
    redirect = f"http://127.0.0.1:{port}/redirect?to={quote(unlisted, safe='')}"
    seen_other = len(other_web.seen)

    assert probe(flora_world, 1, "fetch", listed) == {"ok": True, "status": 200, "body": BODY.decode()}
    assert probe(flora_world, 2, "attach", listed) == {"ok": True, "sizes": [len(BODY)]}

    for n, (kind, url) in enumerate([("fetch", unlisted), ("fetch", redirect), ("fetch", f"http://localhost:{port}/file")], 3):
        out = probe(flora_world, n, kind, url)
        assert out["ok"] is False and out["code"] == "FETCH_BLOCKED", out
        assert "loopback address" in out["message"], out
    for n, url in enumerate([unlisted, redirect], 6):
        out = probe(flora_world, n, "attach", url)
        assert out == {
            "ok": False,
            "code": "INVALID_INPUT",
            "message": "Invalid input for attachments[].url: 127.0.0.1 is a private or local address",
        }, out
    out = probe(flora_world, 8, "attach", "http://[64:ff9b::a9fe:a9fe]/x")
    assert out["code"] == "INVALID_INPUT" and "is a private or local address" in out["message"], out
    out = probe(flora_world, 9, "fetch", "http://[64:ff9b::a9fe:a9fe]/x")
    assert out["code"] == "FETCH_BLOCKED" and "cloud metadata address" in out["message"], out
    assert len(other_web.seen) == seen_other  # the unlisted server was never reached
