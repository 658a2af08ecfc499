"""Server-side download of attachment URLs, with the care any fetch made on a script's behalf needs.

* only ``http``/``https``;
* no loopback, private, link-local, CGNAT, multicast, reserved or unspecified address, unless the URL's
  host is listed in ``FETCH_ALLOWED_PRIVATE_HOSTS`` (comma separated; ``*.example.internal`` matches the
  domain and its subdomains). Names are checked on the addresses they resolve to, inside the connector,
  so the connection goes to the address that was checked (no DNS rebinding between check and connect);
  every redirect hop is checked again (at most 5 hops);
* ``FETCH_TIMEOUT_SECS`` for the whole download, ``cap`` bytes at most (the body is read in chunks and
  abandoned as soon as it is larger);
* no proxy from the environment, no cookies.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urljoin

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from yarl import URL

MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


class DownloadError(Exception):
    """The reason a download failed, fit to be shown to the script."""


def allowed_hosts(config) -> set[str]:
    raw = getattr(config, "fetch_allowed_private_hosts", "") or ""
    return {h.strip().lower().rstrip(".") for h in str(raw).split(",") if h.strip()}


def host_allowed(host: str, allowed: set[str]) -> bool:
    host = host.lower().rstrip(".").strip("[]")
    for entry in allowed:
        if entry.startswith("*."):
            if host == entry[2:] or host.endswith(entry[1:]):
                return True
        elif host == entry.strip("[]"):
            return True
    return False


def public_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped or ip.sixtofour
        if mapped is not None:
            ip = mapped
        elif ip.teredo is not None:
            ip = ip.teredo[1]
    return ip.is_global and not ip.is_multicast


class _GuardedResolver(AbstractResolver):
    """Resolves like aiohttp does, then refuses non-public addresses for hosts not allow-listed."""

    def __init__(self, allowed: set[str]):
        self._inner = DefaultResolver()
        self._allowed = allowed

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):
        infos = await self._inner.resolve(host, port, family)
        if host_allowed(host, self._allowed):
            return infos
        public = [i for i in infos if public_address(i["host"])]
        if len(public) != len(infos) or not public:
            raise _Refused(f"{host} resolves to a private or local address")
        return public

    async def close(self) -> None:
        await self._inner.close()


class _Refused(OSError):
    pass


def check_url(url: str, allowed: set[str]) -> URL:
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        raise DownloadError("invalid URL") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DownloadError("only http and https URLs can be downloaded")
    if parsed.user or parsed.password:
        raise DownloadError("URLs with credentials are not allowed")
    host = parsed.host
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        literal = True
    except ValueError:
        literal = False
    if literal and not host_allowed(host, allowed) and not public_address(host.strip("[]")):
        raise DownloadError(f"{host} is a private or local address")
    return parsed


async def download(url: str, *, cap: int, timeout: float, allowed: set[str]) -> tuple[bytes, str]:
    """The body of ``url`` (and the final URL) or DownloadError."""
    current = check_url(url, allowed)
    connector = aiohttp.TCPConnector(resolver=_GuardedResolver(allowed), use_dns_cache=False, force_close=True)
    try:
        async with aiohttp.ClientSession(connector=connector, trust_env=False,
                                         cookie_jar=aiohttp.DummyCookieJar(),
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with asyncio.timeout(timeout):
                for _ in range(MAX_REDIRECTS + 1):
                    async with session.get(current, allow_redirects=False,
                                           headers={"User-Agent": "flora (attachment download)"}) as resp:
                        if resp.status in (301, 302, 303, 307, 308):
                            location = resp.headers.get("Location")
                            if not location:
                                raise DownloadError(f"HTTP {resp.status} without a Location header")
                            current = check_url(urljoin(str(current), location), allowed)
                            continue
                        if not 200 <= resp.status < 300:
                            raise DownloadError(f"download failed with HTTP {resp.status}")
                        if resp.content_length is not None and resp.content_length > cap:
                            raise DownloadError(f"attachment is larger than {cap} bytes")
                        body = bytearray()
                        async for chunk in resp.content.iter_chunked(_CHUNK):
                            body += chunk
                            if len(body) > cap:
                                raise DownloadError(f"attachment is larger than {cap} bytes")
                        return bytes(body), str(current)
                raise DownloadError(f"more than {MAX_REDIRECTS} redirects")
    except DownloadError:
        raise
    except (TimeoutError, asyncio.TimeoutError):
        raise DownloadError(f"download timed out after {timeout:g}s") from None
    except aiohttp.ClientConnectorError as exc:
        cause = getattr(exc, "os_error", None) or exc.__cause__
        if isinstance(cause, _Refused):
            raise DownloadError(str(cause)) from None
        raise DownloadError(f"could not connect to {current.host}") from None
    except _Refused as exc:
        raise DownloadError(str(exc)) from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise DownloadError(f"download failed ({exc.__class__.__name__})") from None
