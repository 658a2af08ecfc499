"""``op_fetch``: outbound HTTP for scripts, with secrets substituted, behind the core's SSRF guard.

Runs in the worker, on aiohttp. The order of one request:

1. Secret placeholders in the URL and header values are replaced by their
   values, read from the database at each call (so a changed value or
   allow-list applies to the next fetch, without a redeploy). Bodies are never
   touched. A placeholder for a secret that does not exist is left as it is.
2. Every hop (the first request and each redirect, followed by
   ``flora_core.netguard``, at most 5) is checked: http/https only; the host
   must match the ``allowed_hosts`` of every secret still in the request (else
   ``secret not allowed for request host``); and the host must be, or resolve
   only to, public addresses, unless ``FETCH_ALLOWED_PRIVATE_HOSTS`` lists it
   (the guard's rules, the same as for attachment downloads). aiohttp connects
   to exactly the addresses that were checked, so a second DNS answer cannot
   slip in a private address.
3. A redirect to another origin drops the headers that carried secrets, and
   ``Authorization``/``Cookie``.
4. The whole fetch is bounded by ``FETCH_TIMEOUT_SECS`` and the response body
   by ``FETCH_MAX_RESPONSE_BYTES`` (counted after decompression).
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote, quote_plus

import aiohttp
import yarl

from flora_core import netguard
from flora_core.errors import INVALID_INPUT, OpError

from . import hosts
from .placeholders import SECRET_PLACEHOLDER_RE, replace_secret_placeholders, secret_placeholder
from .store import SecretsDisabled, box_from_config, load_secrets

FETCH_ERROR = "FETCH_ERROR"
FETCH_BLOCKED = "FETCH_BLOCKED"
FETCH_TIMEOUT = "FETCH_TIMEOUT"
FETCH_TOO_LARGE = "FETCH_TOO_LARGE"
SECRETS_DISABLED = "SECRETS_DISABLED"

MAX_REDIRECTS = netguard.MAX_REDIRECTS
USER_AGENT = "flora-runtime (guild script fetch)"
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Set by the runtime, never by a script (the fetch standard's forbidden request headers, in short).
DROPPED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "expect",
    }
)
CROSS_ORIGIN_DROPPED = frozenset({"authorization", "cookie", "proxy-authorization"})
RESOURCE_KEY = "flora_secrets.fetch_session"


class Redactor:
    """Every secret value a fetch carried, so that no error or URL handed back to the script contains one.

    (A script could otherwise put a placeholder in a host name and read the value back from
    ``cannot resolve <host>``.) Each value is also matched lower-cased and percent-encoded.
    """

    def __init__(self):
        self.forms: dict[str, str] = {}

    def add(self, secret) -> None:
        placeholder = secret_placeholder(secret.name)
        value = secret.value
        for form in {value, value.lower(), quote(value, safe=""), quote(value, safe="/:@!$&'()*+,;="), quote_plus(value)}:
            if form:
                self.forms[form] = placeholder

    def __call__(self, text: str) -> str:
        for form in sorted(self.forms, key=len, reverse=True):
            text = text.replace(form, self.forms[form])
        return text


def _client(ctx) -> tuple[netguard.Guard, aiohttp.ClientSession]:
    """One guard and session per worker process (the guard's: no cookie jar, no proxy from the environment)."""
    found = ctx.services.resources.get(RESOURCE_KEY)
    if found is None or found[1].closed:
        guard = netguard.Guard.from_config(ctx.config)
        session = guard.session(connector_options={"limit": 256}, headers={"User-Agent": USER_AGENT})
        found = ctx.services.resources[RESOURCE_KEY] = (guard, session)
    return found


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
    pattern = SECRET_PLACEHOLDER_RE
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

    url = replace_secret_placeholders(url, lookup)
    out, carriers = [], set()
    for name, value in headers:
        before = len(used)
        new = replace_secret_placeholders(value, lookup)
        if new != value or len(used) != before:
            carriers.add(name.lower())
        out.append((name, new))
    return url, out, used, carriers


def _check_secret_hosts(hop: netguard.Hop) -> None:
    for secret in hop.extra["used"].values():
        if not hosts.host_allowed(hop.url.raw_host or "", secret.allowed_hosts):
            raise OpError(FETCH_BLOCKED, "secret not allowed for request host")


def _origin(url: yarl.URL) -> tuple:
    return (url.scheme, netguard.normalize_host(url.raw_host or ""), url.port)


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


def _follow(redirect: str):
    """What a redirect does, by the script's ``redirect`` mode (see ``netguard.Guard.request``)."""

    def follow(resp: aiohttp.ClientResponse, hop: netguard.Hop) -> netguard.Hop | None:
        location = resp.headers.get("Location")
        if location is None or redirect == "manual":
            return None
        if redirect == "error":
            raise OpError(FETCH_ERROR, f"fetch failed: redirected to {location} (redirect: 'error')")
        try:
            target = hop.url.join(yarl.URL(location))
        except (ValueError, TypeError):
            raise OpError(FETCH_ERROR, f"fetch failed: invalid redirect location {location!r}") from None
        method, headers, data = hop.method, hop.headers, hop.data
        used, carriers = hop.extra["used"], hop.extra["carriers"]
        if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
            if method != "HEAD":
                method = "GET"
            data = None
            headers = [(k, v) for k, v in headers if k.lower() not in ("content-type", "content-encoding", "content-language")]
        if _origin(target) != _origin(hop.url):
            # Secrets are never sent to a host the redirect chose.
            headers = [(k, v) for k, v in headers if k.lower() not in carriers | CROSS_ORIGIN_DROPPED]
            used, carriers = {}, set()
        return netguard.Hop(method, target, headers, data, {"used": used, "carriers": carriers})

    return follow


async def _send(ctx, hop: netguard.Hop, redirect: str) -> tuple[aiohttp.ClientResponse, int]:
    """The request and its redirects through the guard; refusals and connection failures become op errors."""
    guard, session = _client(ctx)
    try:
        return await guard.request(session, hop, follow=_follow(redirect), check=_check_secret_hosts)
    except netguard.Refused as exc:
        raise OpError(FETCH_BLOCKED, f"fetch refused: {exc}") from None
    except netguard.BadURL as exc:
        if exc.why == "scheme":
            raise _invalid(f"unsupported URL scheme '{exc.scheme}:' (only http and https)") from None
        if exc.why == "host":
            raise _invalid(f"URL has no host: {exc.url}") from None
        raise _invalid(f"invalid URL {exc.url!r}") from None
    except netguard.TooManyRedirects:
        raise OpError(FETCH_ERROR, f"fetch failed: too many redirects (more than {MAX_REDIRECTS})") from None
    except aiohttp.ClientConnectorDNSError as exc:
        raise OpError(FETCH_ERROR, f"fetch failed: cannot resolve {exc.host}") from None
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or exc.os_error.__class__.__name__
        raise OpError(FETCH_ERROR, f"fetch failed: cannot connect to {exc.host}:{exc.port}: {reason}") from None
    except aiohttp.InvalidURL as exc:
        raise _invalid(f"invalid URL {str(exc.url)!r}") from None
    except (aiohttp.ClientError, ValueError) as exc:
        raise OpError(FETCH_ERROR, f"fetch failed: {exc.__class__.__name__}: {exc}") from None


async def _fetch(ctx, url_text: str, method: str, headers, body, redirect: str, redact: Redactor) -> dict:
    url_text, headers, used, carriers = await _substitute(ctx, url_text, headers, redact)
    try:
        url = yarl.URL(url_text)
    except (ValueError, TypeError):
        raise _invalid(f"invalid URL {url_text!r}") from None
    data = body.encode("utf-8") if body is not None else None
    resp, hops = await _send(ctx, netguard.Hop(method, url, headers, data, {"used": used, "carriers": carriers}), redirect)
    async with resp:
        data = await _read_capped(resp, ctx.config.fetch_max_response_bytes)
        return {
            "status": resp.status,
            "statusText": resp.reason or "",
            "url": redact(str(resp.url)),
            "redirected": hops > 0,
            "headers": [[k.lower(), v] for k, v in resp.headers.items()],
            "body": _decode(resp, data),
        }


async def op_fetch(ctx, args):
    """``{url, method, headers: [[name, value]], body, redirect}`` -> ``{status, statusText, url, redirected, headers, body}``."""
    url, method, headers, body, redirect = _parse_args(args)
    timeout = ctx.config.fetch_timeout_secs
    redact = Redactor()
    try:
        return await asyncio.wait_for(_fetch(ctx, url, method, headers, body, redirect, redact), timeout)
    except TimeoutError:
        raise OpError(FETCH_TIMEOUT, f"fetch timed out after {timeout}s (FETCH_TIMEOUT_SECS)") from None
    except OpError as exc:
        exc.message = redact(exc.message)
        raise
