"""``op_fetch``: outbound HTTP for scripts, with secrets substituted and the SSRF guard.

Runs in the worker, on aiohttp. The order of one request:

1. Secret placeholders in the URL and header values are replaced by their
   values, read from the database at each call (so a changed value or
   allow-list applies to the next fetch, without a redeploy). Bodies are never
   touched. A placeholder for a secret that does not exist is left as it is.
2. Every hop (the first request and each redirect, followed here by hand, at
   most 5) is checked: http/https only; the host must match the
   ``allowed_hosts`` of every secret still in the request (else ``secret not
   allowed for request host``); and every address the host resolves to must
   be public, unless ``FETCH_ALLOWED_PRIVATE_HOSTS`` lists it. aiohttp then
   connects to exactly the addresses that were checked (the resolver below
   does both), so a second DNS answer cannot slip in a private address.
3. A redirect to another origin drops the headers that carried secrets, and
   ``Authorization``/``Cookie``.
4. The whole fetch is bounded by ``FETCH_TIMEOUT_SECS`` and the response body
   by ``FETCH_MAX_RESPONSE_BYTES`` (counted after decompression).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from urllib.parse import quote, quote_plus

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import ThreadedResolver

from flora_core.errors import INVALID_INPUT, OpError

from . import hosts
from .store import SecretsDisabled, box_from_config, load_secrets

FETCH_ERROR = "FETCH_ERROR"
FETCH_BLOCKED = "FETCH_BLOCKED"
FETCH_TIMEOUT = "FETCH_TIMEOUT"
FETCH_TOO_LARGE = "FETCH_TOO_LARGE"
SECRETS_DISABLED = "SECRETS_DISABLED"

MAX_REDIRECTS = 5
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
USER_AGENT = "flora-runtime (guild script fetch)"
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Set by the runtime, never by a script (the fetch standard's forbidden request headers, in short).
DROPPED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
                             "trailer", "proxy-authorization", "proxy-connection", "expect"})
CROSS_ORIGIN_DROPPED = frozenset({"authorization", "cookie", "proxy-authorization"})
RESOURCE_KEY = "flora_secrets.fetch_session"


class Blocked(OSError):
    """A host resolved to an address scripts may not reach (raised inside aiohttp's connector)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default resolver, then refuses non-public addresses."""

    def __init__(self, allowlist: frozenset[str]):
        self._inner = ThreadedResolver()
        self._allowlist = allowlist

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        infos = await self._inner.resolve(host, port, family)
        if hosts.private_allowed(host, port, self._allowlist):
            return infos
        for info in infos:
            problem = hosts.address_problem(info["host"])
            if problem:
                raise Blocked(f"fetch refused: {host} resolves to {info['host']}, {problem}")
        return infos

    async def close(self) -> None:
        await self._inner.close()


class Redactor:
    """Every secret value a fetch carried, so that no error or URL handed back to the script contains one.

    (A script could otherwise put a placeholder in a host name and read the value back from
    ``cannot resolve <host>``.) Each value is also matched lower-cased and percent-encoded.
    """

    def __init__(self):
        self.forms: dict[str, str] = {}

    def add(self, secret) -> None:
        import flora_sdk

        placeholder = flora_sdk.secret_placeholder(secret.name)
        value = secret.value
        for form in {value, value.lower(), quote(value, safe=""), quote(value, safe="/:@!$&'()*+,;="), quote_plus(value)}:
            if form:
                self.forms[form] = placeholder

    def __call__(self, text: str) -> str:
        for form in sorted(self.forms, key=len, reverse=True):
            text = text.replace(form, self.forms[form])
        return text


def _session(ctx) -> aiohttp.ClientSession:
    """One session per worker process; no cookie jar (cookies would leak between guilds)."""
    session = ctx.services.resources.get(RESOURCE_KEY)
    if session is None or session.closed:
        allowlist = hosts.parse_private_allowlist(ctx.config.fetch_allowed_private_hosts)
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(allowlist), use_dns_cache=False, limit=256)
        session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
                                        headers={"User-Agent": USER_AGENT})
        ctx.services.resources[RESOURCE_KEY] = session
    return session


def _invalid(message: str) -> OpError:
    return OpError(INVALID_INPUT, f"fetch: {message}")


def _parse_args(args) -> tuple[str, str, list[tuple[str, str]], str | None, str]:
    if not isinstance(args, dict) or not isinstance(args.get("url"), str):
        raise _invalid("expected {url, method, headers, body, redirect}")
    method = args.get("method") or "GET"
    if not isinstance(method, str) or not TOKEN.match(method):
        raise _invalid(f"invalid method {method!r}")
    method = method.upper()
    if method in ("CONNECT", "TRACE", "TRACK"):
        raise _invalid(f"method {method} is not allowed")
    headers = []
    for pair in args.get("headers") or []:
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise _invalid("headers must be [name, value] pairs of strings")
        name, value = pair
        if not TOKEN.match(name) or any(c in value for c in "\r\n\0"):
            raise _invalid(f"invalid header {name!r}")
        if name.lower() not in DROPPED_HEADERS:
            headers.append((name, value))
    body = args.get("body")
    if body is not None and not isinstance(body, str):
        raise _invalid("body must be a string")
    redirect = args.get("redirect") or "follow"
    if redirect not in ("follow", "manual", "error"):
        raise _invalid(f"invalid redirect mode {redirect!r}")
    return args["url"], method, headers, body, redirect


async def _substitute(ctx, url: str, headers: list[tuple[str, str]], redact: Redactor):
    """Replace secret placeholders; returns the new URL, headers, the secrets used and which headers carry them."""
    import flora_sdk

    pattern = flora_sdk.SECRET_PLACEHOLDER_RE
    if not pattern.search(url) and not any(pattern.search(v) for _, v in headers):
        return url, headers, {}, set()
    try:
        box = box_from_config(ctx.config)
    except SecretsDisabled as exc:
        raise OpError(SECRETS_DISABLED, str(exc)) from None
    found, warnings = await ctx.run_sync(load_secrets, ctx.db, box, ctx.guild_id)
    used: dict = {}

    def lookup(name: str):
        secret = found.get(name)
        if secret is None:
            if name in warnings:
                ctx.log("warn", warnings[name], "flora:secrets")
            return None
        used[name] = secret
        redact.add(secret)
        return secret.value

    url = flora_sdk.replace_secret_placeholders(url, lookup)
    out, carriers = [], set()
    for name, value in headers:
        before = len(used)
        new = flora_sdk.replace_secret_placeholders(value, lookup)
        if new != value or len(used) != before:
            carriers.add(name.lower())
        out.append((name, new))
    return url, out, used, carriers


def _check_url(url: yarl.URL, used: dict, allowlist: frozenset[str]) -> None:
    if url.scheme not in ("http", "https"):
        raise _invalid(f"unsupported URL scheme '{url.scheme}:' (only http and https)")
    host = url.raw_host
    if not host:
        raise _invalid(f"URL has no host: {url.human_repr()}")
    for secret in used.values():
        if not hosts.host_allowed(host, secret.allowed_hosts):
            raise OpError(FETCH_BLOCKED, "secret not allowed for request host")
    try:
        literal = ipaddress.ip_address(hosts.normalize_host(host).split("%", 1)[0])
    except ValueError:
        return  # a name: checked by GuardedResolver when aiohttp resolves it
    if not hosts.private_allowed(host, url.port or 0, allowlist):
        problem = hosts.address_problem(literal)
        if problem:
            raise OpError(FETCH_BLOCKED, f"fetch refused: {hosts.normalize_host(host)} is {problem}")


def _origin(url: yarl.URL) -> tuple:
    return (url.scheme, hosts.normalize_host(url.raw_host or ""), url.port)


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    too_large = OpError(FETCH_TOO_LARGE, f"fetch failed: the response is larger than {cap} bytes (FETCH_MAX_RESPONSE_BYTES)")
    if resp.content_length is not None and resp.content_length > cap:
        raise too_large
    chunks, size = [], 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(resp: aiohttp.ClientResponse, data: bytes) -> str:
    charset = resp.charset or "utf-8"
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


async def _send(session: aiohttp.ClientSession, method: str, url: yarl.URL, headers, body) -> aiohttp.ClientResponse:
    """One request, no redirects followed; connection failures become op errors."""
    try:
        return await session.request(method, url, headers=headers, data=body.encode("utf-8") if body is not None else None,
                                     allow_redirects=False)
    except aiohttp.ClientConnectorDNSError as exc:
        cause = exc.__cause__ or exc.os_error
        if isinstance(cause, Blocked):
            raise OpError(FETCH_BLOCKED, cause.message) from None
        raise OpError(FETCH_ERROR, f"fetch failed: cannot resolve {url.raw_host}") from None
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or exc.os_error.__class__.__name__
        raise OpError(FETCH_ERROR, f"fetch failed: cannot connect to {url.raw_host}:{url.port}: {reason}") from None
    except aiohttp.InvalidURL:
        raise _invalid(f"invalid URL {url.human_repr()!r}") from None
    except (aiohttp.ClientError, ValueError) as exc:
        raise OpError(FETCH_ERROR, f"fetch failed: {exc.__class__.__name__}: {exc}") from None


async def _fetch(ctx, url_text: str, method: str, headers, body, redirect: str, redact: Redactor) -> dict:
    url_text, headers, used, carriers = await _substitute(ctx, url_text, headers, redact)
    try:
        url = yarl.URL(url_text)
    except (ValueError, TypeError):
        raise _invalid(f"invalid URL {url_text!r}") from None
    allowlist = hosts.parse_private_allowlist(ctx.config.fetch_allowed_private_hosts)
    session = _session(ctx)
    cap = ctx.config.fetch_max_response_bytes
    for hop in range(MAX_REDIRECTS + 1):
        _check_url(url, used, allowlist)
        resp = await _send(session, method, url, headers, body)
        async with resp:
            location = resp.headers.get("Location")
            if resp.status in REDIRECT_STATUSES and location is not None and redirect != "manual":
                if redirect == "error":
                    raise OpError(FETCH_ERROR, f"fetch failed: redirected to {location} (redirect: 'error')")
                if hop == MAX_REDIRECTS:
                    break
                try:
                    target = url.join(yarl.URL(location))
                except (ValueError, TypeError):
                    raise OpError(FETCH_ERROR, f"fetch failed: invalid redirect location {location!r}") from None
                if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                    if method != "HEAD":
                        method = "GET"
                    body = None
                    headers = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-encoding", "content-language")]
                if _origin(target) != _origin(url):
                    # Secrets are never sent to a host the redirect chose.
                    headers = [(k, v) for k, v in headers if k.lower() not in carriers | CROSS_ORIGIN_DROPPED]
                    used, carriers = {}, set()
                url = target
                continue
            data = await _read_capped(resp, cap)
            return {
                "status": resp.status,
                "statusText": resp.reason or "",
                "url": redact(str(resp.url)),
                "redirected": hop > 0,
                "headers": [[k.lower(), v] for k, v in resp.headers.items()],
                "body": _decode(resp, data),
            }
    raise OpError(FETCH_ERROR, f"fetch failed: too many redirects (more than {MAX_REDIRECTS})")


async def op_fetch(ctx, args):
    """``{url, method, headers: [[name, value]], body, redirect}`` -> ``{status, statusText, url, redirected, headers, body}``."""
    url, method, headers, body, redirect = _parse_args(args)
    timeout = ctx.config.fetch_timeout_secs
    redact = Redactor()
    try:
        return await asyncio.wait_for(_fetch(ctx, url, method, headers, body, redirect, redact), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        raise OpError(FETCH_TIMEOUT, f"fetch timed out after {timeout}s (FETCH_TIMEOUT_SECS)") from None
    except OpError as exc:
        exc.message = redact(exc.message)
        raise
