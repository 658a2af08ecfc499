"""The one guard for outbound HTTP made on a script's behalf: ``fetch`` and attachment downloads.

A script must not reach the operator's network through the runtime (SSRF). Every request goes
through :meth:`Guard.request`, which

* accepts ``http`` and ``https`` URLs only, and writes IPv4 literals the way a browser does
  (``http://2130706433/``, ``http://0x7f.1/``, ``http://0177.0.0.1/`` and ``http://127.1/`` are all
  ``http://127.0.0.1/``; a host that ends in a number but is no IPv4 address is an invalid URL);
* refuses an IP literal that is not a public address (:func:`address_problem`), before connecting;
* checks a name on the addresses it resolves to, inside aiohttp's connector
  (:class:`GuardedResolver`): the name is resolved once, every address is checked, and the
  connection goes to exactly those addresses, so a second DNS answer cannot slip a private address
  in between the check and the connect (no DNS cache is kept either);
* follows redirects by hand, checking every hop again, at most :data:`MAX_REDIRECTS` of them.

``FETCH_ALLOWED_PRIVATE_HOSTS`` (:func:`parse_allowlist`) lists the hosts, as written in the URL,
that may be private anyway: ``host``, ``host:port``, ``*.example.internal`` (the domain and its
subdomains), IP addresses (``10.0.0.5``, ``[fd00::5]:8443``) and CIDR ranges (``10.1.0.0/16``) that
match IP literals. A listed host is not checked at all (whatever it resolves to); a name is not
allowed because of the address it resolves to (listing ``127.0.0.1`` does not allow ``localhost``).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance metadata services: AWS, GCP, Azure, OpenStack (169.254.169.254), AWS over IPv6 (fd00:ec2::254),
# ECS task metadata and EKS pod identity (169.254.170.2, 169.254.170.23, fd00:ec2::23), GCP over IPv6
# (fd20:ce::254), Alibaba (100.100.100.200), Oracle (192.0.0.192) and Azure's WireServer, which is a
# public address (168.63.129.16).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "fd00:ec2::254",
        "169.254.170.2",
        "169.254.170.23",
        "fd00:ec2::23",
        "fd20:ce::254",
        "100.100.100.200",
        "192.0.0.192",
        "168.63.129.16",
    )
)

_N = ipaddress.ip_network
# (network, why a script may not connect there), first match wins; after these, anything Python's
# ipaddress does not call global is refused too ("a non-public address").
_IPV4_RULES = tuple(
    (_N(net), why)
    for net, why in (
        ("0.0.0.0/32", "an unspecified address"),
        ("255.255.255.255/32", "a broadcast address"),
        ("127.0.0.0/8", "a loopback address"),
        ("0.0.0.0/8", "a reserved address"),  # "this network"; Linux connects 0.x to the host itself
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address"),
        ("169.254.0.0/16", "a link-local address"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("192.0.0.0/24", "a reserved address"),  # IETF protocol assignments
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("198.18.0.0/15", "a benchmarking address"),
    )
)
_IPV6_RULES = tuple(
    (_N(net), why)
    for net, why in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a private address"),  # site-local (deprecated)
        ("fc00::/7", "a private address"),  # unique local
        ("ff00::/8", "a multicast address"),
        ("100::/64", "a reserved address"),  # discard-only
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
    )
)
_GLOBAL_UNICAST = _N("2000::/3")
_MAPPED = _N("::ffff:0:0/96")
_COMPATIBLE = _N("::/96")
_NAT64 = _N("64:ff9b::/96")
_NAT64_LOCAL = _N("64:ff9b:1::/48")
_SIXTOFOUR = _N("2002::/16")
_TEREDO = _N("2001::/32")


# -- addresses -------------------------------------------------------------------------------
def _embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, str, str | None] | None:
    """``(IPv4 address, form, reason to refuse even if that IPv4 address is public)`` of an IPv6
    address that carries an IPv4 address, else None."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _MAPPED:
        return low32, "IPv4-mapped", None
    if ip in _COMPATIBLE and int(ip) > 1:
        return low32, "IPv4-compatible", "a reserved address (IPv4-compatible IPv6 is deprecated)"
    if ip in _NAT64:
        return low32, "NAT64", None
    if ip in _NAT64_LOCAL:
        return low32, "local-use NAT64", "a non-public address (local-use NAT64)"
    if ip in _SIXTOFOUR and ip.sixtofour is not None:
        return ip.sixtofour, "6to4", None
    if ip in _TEREDO and ip.teredo is not None:
        return ip.teredo[1], "Teredo", "a non-public address (Teredo)"
    return None


def _ip(address: Any) -> IPAddress:
    if isinstance(address, ipaddress.IPv4Address):
        return address
    if isinstance(address, ipaddress.IPv6Address):
        return ipaddress.IPv6Address(int(address))  # without a zone id
    return ipaddress.ip_address(str(address).strip("[]").split("%", 1)[0])


def address_problem(address: Any) -> str | None:
    """Why a script may not connect to ``address`` (an IP, as text or ``ipaddress`` object, a zone id
    is ignored), or ``None`` if it may: only public unicast addresses pass."""
    ip = _ip(address)
    if ip.version == 6:
        if int(ip) == 0:  # :: and ::1 sit inside the IPv4-compatible ::/96
            return "an unspecified address"
        if int(ip) == 1:
            return "a loopback address"
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner, form, own = embedded
            problem = address_problem(inner)
            if problem:
                return f"{problem} ({inner} in {form} form)"
            return own  # else an IPv6 spelling of a public IPv4 address
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for network, why in _IPV4_RULES if ip.version == 4 else _IPV6_RULES:
        if ip in network:
            return why
    if ip.version == 6 and ip not in _GLOBAL_UNICAST:
        return "a reserved address"
    if not ip.is_global:
        return "a non-public address"
    return None


_V4_DEC = re.compile(r"[1-9][0-9]*|0")
_V4_HEX = re.compile(r"0[xX][0-9a-fA-F]*")
_V4_OCT = re.compile(r"0[0-7]+")


def _ipv4_number(part: str) -> int | None:
    if _V4_HEX.fullmatch(part):
        return int(part[2:] or "0", 16)
    if _V4_OCT.fullmatch(part):
        return int(part[1:], 8)
    if _V4_DEC.fullmatch(part):
        return int(part)
    return None


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a URL host stands for, read as browsers do (the WHATWG URL standard): one to
    four parts, each decimal, ``0x`` hex or ``0`` octal, the last filling the remaining bytes.

    ``None`` for a host that does not end in a number (a name); ``ValueError`` for one that does but
    is no IPv4 address (``1.2.3.4.5``, ``08``, ``256.1.1.1``), which is an invalid URL.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    last = parts[-1]
    if not (last.isascii() and last.isdigit()) and not _V4_HEX.fullmatch(last):
        return None
    maybe = [_ipv4_number(p) for p in parts]
    numbers = [n for n in maybe if n is not None]
    if (
        len(parts) > 4
        or len(numbers) != len(maybe)
        or any(n > 255 for n in numbers[:-1])
        or numbers[-1] >= 256 ** (5 - len(parts))
    ):
        raise ValueError(f"{host!r} is not a valid IPv4 address")
    value = numbers[-1]
    for i, n in enumerate(numbers[:-1]):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def host_ip(host: str) -> IPAddress | None:
    """The address of an IP-literal host (brackets, zone id and a trailing dot allowed), else None.
    ``ValueError`` for a malformed literal."""
    text = (host or "").strip().lower()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if ":" in text:
        return ipaddress.IPv6Address(text.replace("%25", "%", 1).split("%", 1)[0])
    return parse_ipv4(text) if text else None


def normalize_host(host: str) -> str:
    """How hosts are compared: lower case, no brackets, no trailing dot, IP literals in their canonical
    form without a zone id (``[0:0::1]`` and ``::1``, ``0x7f.1`` and ``127.0.0.1`` are the same host)."""
    text = (host or "").strip().lower()
    try:
        ip = host_ip(text)
    except ValueError:
        ip = None
    if ip is not None:
        return str(ip)
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text.rstrip(".")


# -- FETCH_ALLOWED_PRIVATE_HOSTS --------------------------------------------------------------------
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")


def _name(text: str) -> str | None:
    """``text`` as an ASCII host name (IDNA for non-ASCII), or None if it is not one."""
    if not text.isascii():
        try:
            text = yarl.URL.build(scheme="http", host=text).raw_host or ""
        except (ValueError, UnicodeError):
            return None
    if len(text) > 253 or not all(_LABEL.fullmatch(label) for label in text.split(".")):
        return None
    return text


@dataclass(frozen=True)
class Entry:
    """One ``FETCH_ALLOWED_PRIVATE_HOSTS`` entry."""

    kind: str  # "host", "domain" (from *.domain), "ip" or "network"
    value: Any  # the host name, the domain, an ip_address or an ip_network
    port: int | None = None

    def matches(self, host: str, ip: IPAddress | None, port: int | None) -> bool:
        if self.port is not None and self.port != port:
            return False
        if self.kind == "host":
            return ip is None and host == self.value
        if self.kind == "domain":
            return ip is None and (host == self.value or host.endswith("." + self.value))
        if self.kind == "ip":
            return ip == self.value
        return ip is not None and ip.version == self.value.version and ip in self.value


@dataclass(frozen=True)
class AllowList:
    """The parsed ``FETCH_ALLOWED_PRIVATE_HOSTS``: hosts scripts may reach although they are private."""

    entries: tuple[Entry, ...] = ()

    def allows(self, host: str, port: int | None = None) -> bool:
        """Whether ``host`` (as written in the URL, or as aiohttp hands it to the resolver) on ``port`` is listed."""
        if not self.entries:
            return False
        name = normalize_host(host)
        try:
            ip = host_ip(name)
        except ValueError:
            ip = None
        return any(e.matches(name, ip, port) for e in self.entries)

    def __bool__(self) -> bool:
        return bool(self.entries)


class InvalidAllowList(ValueError):
    """An entry of ``FETCH_ALLOWED_PRIVATE_HOSTS`` that is not one (the message is one line)."""


def _entry(item: str) -> Entry:
    def bad(why: str) -> InvalidAllowList:
        return InvalidAllowList(f"entry {item!r} {why} (expected host, host:port, *.domain, an IP address or a CIDR range)")

    text = item.lower()
    if "://" in text or "@" in text:
        raise bad("is a URL, not a host")
    port_text = None
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed:
            raise bad("has no closing ']'")
        if rest:
            if not rest.startswith(":"):
                raise bad("has something after ']' that is not a port")
            port_text = rest[1:]
        if ":" not in host:
            raise bad("has brackets around something that is not an IPv6 address")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host = text  # a name, IPv4, or an IPv6 address / range without brackets (and without a port)
    port = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise bad(f"has an invalid port {port_text!r}")
        port = int(port_text)
    if "/" in host:
        try:
            return Entry("network", ipaddress.ip_network(host), port)
        except ValueError as exc:
            raise bad(f"is not a valid CIDR range: {exc}") from None
    if ":" in host:
        try:
            return Entry("ip", host_ip(host), port)
        except ValueError:
            raise bad("is not a valid IPv6 address") from None
    host = host.rstrip(".")
    if not host:
        raise bad("is not a valid host name")
    if host.startswith("*."):
        domain = _name(host[2:])
        try:
            numeric = parse_ipv4(host[2:]) is not None
        except ValueError:
            numeric = True
        if domain is None or numeric:
            raise bad("is not *. followed by a domain name")
        return Entry("domain", domain, port)
    if "*" in host:
        raise bad("has a '*' that is not a leading '*.'")
    try:
        ip = parse_ipv4(host)
    except ValueError:
        raise bad("is not a valid IPv4 address") from None
    if ip is not None:
        return Entry("ip", ip, port)
    name = _name(host)
    if name is None:
        raise bad("is not a valid host name")
    return Entry("host", name, port)


@functools.lru_cache(maxsize=64)
def _parse(raw: str) -> AllowList:
    return AllowList(tuple(_entry(item.strip()) for item in raw.split(",") if item.strip()))


def parse_allowlist(raw: str | Iterable[str] | None) -> AllowList:
    """``FETCH_ALLOWED_PRIVATE_HOSTS``: comma separated (or a list, from config.toml), case-insensitive,
    trailing dots ignored, empty items skipped. An invalid entry raises :class:`InvalidAllowList`."""
    if raw is None:
        return AllowList()
    if not isinstance(raw, str):
        raw = ",".join(str(x) for x in raw)
    return _parse(raw)


# -- errors ---------------------------------------------------------------------------------
class GuardError(Exception):
    """A request the guard did not send; each user words it its own way."""


class Refused(GuardError, OSError):
    """The host is, or resolves to, an address scripts may not reach. (An OSError so that aiohttp's
    connector lets it through from the resolver.)"""

    def __init__(self, host: str, address: str, reason: str, resolved: bool):
        self.host, self.address, self.reason, self.resolved = host, address, reason, resolved
        text = f"{host} resolves to {address}, {reason}" if resolved else f"{host} is {reason}"
        super().__init__(text)
        self.message = text

    def __str__(self) -> str:
        return self.message


class BadURL(GuardError):
    """``why`` is ``"invalid"`` (not a URL, or a malformed IP literal), ``"scheme"`` or ``"host"`` (none)."""

    def __init__(self, url: str, why: str, scheme: str = ""):
        super().__init__(f"{why}: {url}")
        self.url, self.why, self.scheme = url, why, scheme


class TooManyRedirects(GuardError):
    def __init__(self, limit: int):
        super().__init__(f"more than {limit} redirects")
        self.limit = limit


# -- aiohttp -----------------------------------------------------------------------------------
def system_resolver() -> AbstractResolver:
    """Where names are looked up: the system's resolver (/etc/hosts, then DNS), as aiohttp's threaded
    resolver does it. (A module attribute, so a test can answer names it makes up.)"""
    return ThreadedResolver()


class GuardedResolver(AbstractResolver):
    """Resolves like the system does, then refuses the whole answer if any address is not public,
    unless the host is allow-listed. aiohttp connects to the addresses returned here."""

    def __init__(self, allowlist: AllowList, inner: AbstractResolver | None = None):
        self._allowlist = allowlist
        self._inner = inner or system_resolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        infos = await self._inner.resolve(host, port, family)
        if self._allowlist.allows(host, port):
            return infos
        for info in infos:
            problem = address_problem(info["host"])
            if problem:
                raise Refused(normalize_host(host), info["host"], problem, resolved=True)
        return infos

    async def close(self) -> None:
        await self._inner.close()


@dataclass
class Hop:
    """One request of a redirect chain."""

    method: str
    url: yarl.URL
    headers: Any = None
    data: bytes | None = None
    extra: dict = field(default_factory=dict)  # what the user of the guard carries from hop to hop


class Guard:
    """The rules above for one ``FETCH_ALLOWED_PRIVATE_HOSTS`` value."""

    def __init__(self, allowed: str | AllowList | None = ""):
        self.allowlist = allowed if isinstance(allowed, AllowList) else parse_allowlist(allowed)
        self._sessions: weakref.WeakSet = weakref.WeakSet()

    @classmethod
    def from_config(cls, config) -> Guard:
        return cls(getattr(config, "fetch_allowed_private_hosts", "") or "")

    # checks ----------------------------------------------------------------------------------
    def normalize_url(self, url: str | yarl.URL) -> yarl.URL:
        """``url`` parsed, http(s) with a host, an IPv4 literal written canonically; else BadURL."""
        try:
            parsed = url if isinstance(url, yarl.URL) else yarl.URL(url)
            if parsed.scheme not in ("http", "https"):
                raise BadURL(str(url), "scheme", parsed.scheme)
            host = parsed.raw_host
            if not host:
                raise BadURL(parsed.human_repr(), "host")
            ip = host_ip(host)
            if ip is not None and ip.version == 4 and host != str(ip):
                parsed = parsed.with_host(str(ip))
        except (ValueError, TypeError):
            raise BadURL(str(url), "invalid") from None
        return parsed

    def refuse_private_literal(self, url: yarl.URL) -> None:
        """Refused if the host of a normalized URL is an IP literal scripts may not reach (names are
        checked when they are resolved)."""
        host = url.raw_host or ""
        ip = host_ip(host)
        if ip is None or self.allowlist.allows(host, url.port):
            return
        problem = address_problem(ip)
        if problem:
            raise Refused(str(ip), str(ip), problem, resolved=False)

    def check_url(self, url: str | yarl.URL) -> yarl.URL:
        """Both checks that need no network: the normalized URL, or BadURL / Refused."""
        parsed = self.normalize_url(url)
        self.refuse_private_literal(parsed)
        return parsed

    # aiohttp ----------------------------------------------------------------------------------
    def connector(self, **options) -> aiohttp.TCPConnector:
        return aiohttp.TCPConnector(resolver=GuardedResolver(self.allowlist), use_dns_cache=False, **options)

    def session(self, *, connector_options: dict | None = None, **options) -> aiohttp.ClientSession:
        """A session whose connections go only where the guard allows; no proxy from the environment,
        no cookie jar (cookies would leak between guilds)."""
        session = aiohttp.ClientSession(
            connector=self.connector(**(connector_options or {})), cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, **options
        )
        self._sessions.add(session)
        return session

    async def request(
        self,
        session: aiohttp.ClientSession,
        hop: Hop,
        *,
        follow: Callable[[aiohttp.ClientResponse, Hop], Hop | None],
        check: Callable[[Hop], None] | None = None,
        max_redirects: int = MAX_REDIRECTS,
    ) -> tuple[aiohttp.ClientResponse, int]:
        """Send ``hop`` and follow redirects by hand; returns the last response (to be read and released by
        the caller) and how many redirects were followed.

        Every hop is normalized, passed to ``check`` (the caller's own rules, e.g. where a secret may
        go), checked by the guard and sent with ``allow_redirects=False``. On a redirect status
        ``follow(response, hop)`` returns the next hop, or None to return this response as it is; more
        than ``max_redirects`` redirects raise TooManyRedirects. aiohttp's own errors are not caught,
        except a resolver's refusal, which is raised as Refused.
        """
        if session not in self._sessions:
            raise RuntimeError("Guard.request needs a session made by Guard.session")
        for count in range(max_redirects + 1):
            hop.url = self.normalize_url(hop.url)
            if check is not None:
                check(hop)
            self.refuse_private_literal(hop.url)
            try:
                resp = await session.request(hop.method, hop.url, headers=hop.headers, data=hop.data, allow_redirects=False)
            except aiohttp.ClientConnectorError as exc:
                cause = exc.os_error if isinstance(exc.os_error, Refused) else exc.__cause__
                if isinstance(cause, Refused):
                    raise Refused(cause.host, cause.address, cause.reason, cause.resolved) from None
                raise
            if resp.status not in REDIRECT_STATUSES:
                return resp, count
            try:
                nxt = follow(resp, hop)
            except BaseException:
                resp.release()
                raise
            if nxt is None:
                return resp, count
            resp.release()
            if count == max_redirects:
                break
            hop = nxt
        raise TooManyRedirects(max_redirects)
