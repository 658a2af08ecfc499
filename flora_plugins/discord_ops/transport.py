"""Discord REST for the ops: ``ctx.rest`` for JSON calls, a multipart path for uploads, and flora's
ReadOnly retry policy for the read ops (reference §2.3).

Uploads go through the same disnake ``HTTPClient`` (its buckets, 429 handling), under the same per-guild
semaphore and ``RUNTIME_REST_TIMEOUT_MS`` as ``ctx.rest``, with the same error mapping.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import disnake
from disnake.http import Route, to_multipart

from flora_core.errors import DISCORD_HTTP_ERROR, DISCORD_RATE_LIMITED, OpError

from .attachments import LoadedFile

READ_RETRIES = 2  # flora's ReadOnly policy: at most 2 retries


def _retryable(exc: OpError) -> bool:
    """HTTP 5xx and transport errors (mapped to status 500, code 0)."""
    return exc.code == DISCORD_HTTP_ERROR and int(exc.extra.get("status") or 0) >= 500


def backoff(attempt: int) -> float:
    """Uniform 0..=min(250 * 2^n, 2000) ms, as flora."""
    return random.uniform(0, min(250 * 2 ** attempt, 2000)) / 1000


async def call(ctx, method: str, path: str, *, json: Any = None, reason: str | None = None,
               params: dict | None = None, files: list[LoadedFile] | None = None, read_only: bool = False,
               **route_params) -> Any:
    attempts = 1 + READ_RETRIES if read_only else 1
    for attempt in range(attempts):
        try:
            if files:
                return await _multipart(ctx, method, path, json=json, reason=reason, params=params,
                                        files=files, **route_params)
            return await ctx.rest(method, path, json=json, reason=reason, params=params, **route_params)
        except OpError as exc:
            if attempt + 1 < attempts and _retryable(exc):
                await asyncio.sleep(backoff(attempt))
                continue
            raise
    raise AssertionError("unreachable")


async def _multipart(ctx, method: str, path: str, *, json: Any, reason: str | None, params: dict | None,
                     files: list[LoadedFile], **route_params) -> Any:
    services = ctx.services
    sem = services.semaphores.get(ctx.guild_id)
    if sem is None:
        sem = services.semaphores[ctx.guild_id] = asyncio.Semaphore(ctx.config.guild_concurrency)
    route = Route(method, path, **route_params)
    dfiles = [f.to_disnake() for f in files]
    kwargs: dict[str, Any] = {"files": dfiles, "form": to_multipart(json if json is not None else {}, dfiles)}
    if reason:
        kwargs["reason"] = reason
    if params:
        kwargs["params"] = params
    timeout = ctx.config.rest_timeout_ms / 1000
    async with sem:
        try:
            return await asyncio.wait_for(services.http.request(route, **kwargs), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            raise OpError(DISCORD_RATE_LIMITED, f"Discord rate limited for {method} {path}",
                          retry_after_ms=ctx.config.rest_timeout_ms, **{"global": False}) from None
        except disnake.HTTPException as exc:
            message = exc.text or getattr(exc.response, "reason", "") or "error"
            raise OpError(DISCORD_HTTP_ERROR, f"Discord HTTP error ({exc.status}): {message} (route: {method} {path})",
                          status=exc.status, discord_code=exc.code) from None
        except (OSError, disnake.DiscordException) as exc:
            raise OpError(DISCORD_HTTP_ERROR, f"Discord HTTP error (500): {exc.__class__.__name__} (route: {method} {path})",
                          status=500, discord_code=0) from None
        finally:
            for f in dfiles:
                f.close()
