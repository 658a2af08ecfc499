"""Server-side download of attachment URLs, behind the core's SSRF guard (``flora_core.netguard``, the
same rules as a script's ``fetch``):

* only ``http``/``https``, no credentials in the URL;
* no address that is not public (loopback, private, link-local, CGNAT, multicast, reserved, unspecified,
  metadata, and IPv6 forms of those) unless the URL's host is listed in ``FETCH_ALLOWED_PRIVATE_HOSTS``;
  names are checked on the addresses they resolve to, inside the connector, so the connection goes to
  the address that was checked; every redirect hop is checked again (at most 5 redirects);
* ``FETCH_TIMEOUT_SECS`` for the whole download, ``cap`` bytes at most (the body is read in chunks and
  abandoned as soon as it is larger);
* no proxy from the environment, no cookies.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urljoin

import aiohttp
from yarl import URL

from flora_core import netguard

MAX_REDIRECTS = netguard.MAX_REDIRECTS
_CHUNK = 64 * 1024
_HEADERS = {"User-Agent": "flora (attachment download)"}


class DownloadError(Exception):
    """The reason a download failed, fit to be shown to the script."""


def _refusal(exc: netguard.Refused) -> DownloadError:
    if exc.resolved:
        return DownloadError(f"{exc.host} resolves to a private or local address")
    return DownloadError(f"{exc.host} is a private or local address")


def _no_credentials(hop: netguard.Hop) -> None:
    if hop.url.user or hop.url.password:
        raise DownloadError("URLs with credentials are not allowed")


def check_url(url: str, guard: netguard.Guard) -> URL:
    """What can be known before connecting: the URL (normalized by the guard) or DownloadError."""
    try:
        parsed = guard.normalize_url(url)
        _no_credentials(netguard.Hop("GET", parsed))
        guard.refuse_private_literal(parsed)
    except netguard.BadURL as exc:
        raise DownloadError("invalid URL" if exc.why == "invalid" else "only http and https URLs can be downloaded") from None
    except netguard.Refused as exc:
        raise _refusal(exc) from None
    return parsed


def _follow(resp: aiohttp.ClientResponse, hop: netguard.Hop) -> netguard.Hop:
    location = resp.headers.get("Location")
    if not location:
        raise DownloadError(f"HTTP {resp.status} without a Location header")
    try:
        target = URL(urljoin(str(hop.url), location))
    except (ValueError, TypeError):
        raise DownloadError("invalid URL") from None
    return netguard.Hop("GET", target, _HEADERS)


async def download(url: str, *, cap: int, timeout: float, guard: netguard.Guard) -> tuple[bytes, str]:
    """The body of ``url`` (and the final URL) or DownloadError."""
    current = check_url(url, guard)
    try:
        async with guard.session(
            connector_options={"force_close": True}, timeout=aiohttp.ClientTimeout(total=timeout)
        ) as session:
            async with asyncio.timeout(timeout):
                resp, _ = await guard.request(
                    session,
                    netguard.Hop("GET", current, _HEADERS),
                    follow=_follow,
                    check=_no_credentials,
                    max_redirects=MAX_REDIRECTS,
                )
                async with resp:
                    current = resp.url
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
    except DownloadError:
        raise
    except netguard.Refused as exc:
        raise _refusal(exc) from None
    except netguard.BadURL as exc:
        raise DownloadError("invalid URL" if exc.why == "invalid" else "only http and https URLs can be downloaded") from None
    except netguard.TooManyRedirects:
        raise DownloadError(f"more than {MAX_REDIRECTS} redirects") from None
    except TimeoutError:
        raise DownloadError(f"download timed out after {timeout:g}s") from None
    except aiohttp.ClientConnectorError as exc:
        raise DownloadError(f"could not connect to {exc.host}") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise DownloadError(f"download failed ({exc.__class__.__name__})") from None
