"""Which hosts a request may reach: secret host patterns and the SSRF guard.

* A secret's ``allowed_hosts`` entry is flora's host pattern: an exact host,
  or ``*.suffix`` which matches ``suffix`` itself and its subdomains (not
  ``evil-suffix``); an entry may also be a full URL, whose host is used.
* A script may not reach addresses inside the operator's network: loopback,
  private, link-local, carrier-grade NAT, multicast, unspecified, reserved and
  cloud metadata addresses are refused, whatever name resolves to them,
  unless the operator lists the host (or ``host:port``) in
  ``FETCH_ALLOWED_PRIVATE_HOSTS``.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

# Instance metadata services (AWS, GCP, Azure, OpenStack: 169.254.169.254; AWS IPv6; ECS task metadata;
# Alibaba; Oracle; Azure's WireServer, which is a public address).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "169.254.170.2", "169.254.170.23", "100.100.100.200", "192.0.0.192",
    "168.63.129.16",
))
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def normalize_host(host: str) -> str:
    """Lower case, no trailing dot, IPv6 without brackets."""
    host = (host or "").strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host.rstrip(".")


def pattern_host(pattern: str) -> str:
    """The host part of an ``allowed_hosts`` entry (bare host, ``host:port``, or a URL)."""
    text = pattern.strip()
    if "://" in text:
        text = urlsplit(text).netloc
    text = text.rsplit("@", 1)[-1]
    if text.startswith("["):
        return normalize_host(text.split("]", 1)[0] + "]")
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return normalize_host(text.split("/", 1)[0])


def host_matches(host: str, pattern: str) -> bool:
    host = normalize_host(host)
    want = pattern_host(pattern)
    if not want:
        return False
    if want.startswith("*."):
        suffix = want[2:]
        return bool(suffix) and (host == suffix or host.endswith("." + suffix))
    return host == want


def host_allowed(host: str, patterns) -> bool:
    """An empty list allows every host (flora's rule)."""
    patterns = list(patterns or ())
    return not patterns or any(host_matches(host, p) for p in patterns)


# -- SSRF ------------------------------------------------------------------------
def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(address) -> str | None:
    """Why a script may not connect to ``address`` (an IP), or ``None`` if it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0] if isinstance(address, str) else address)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            problem = address_problem(inner)
            if problem:
                return problem
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in CGNAT:
        return "a carrier-grade NAT address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-public address"
    return None


def parse_private_allowlist(raw: str | None) -> frozenset[str]:
    """``FETCH_ALLOWED_PRIVATE_HOSTS``: comma-separated ``host`` or ``host:port`` entries."""
    out = set()
    for item in (raw or "").split(","):
        item = item.strip().lower()
        if not item:
            continue
        if item.startswith("["):  # [v6]:port or [v6]
            host, _, rest = item[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
            out.add(f"{normalize_host(host)}:{port}" if port else normalize_host(host))
        elif item.count(":") == 1:
            host, port = item.split(":")
            out.add(f"{normalize_host(host)}:{port}")
        else:
            out.add(normalize_host(item))
    return frozenset(out)


def private_allowed(host: str, port: int, allowlist: frozenset[str]) -> bool:
    host = normalize_host(host)
    return host in allowlist or f"{host}:{port}" in allowlist
