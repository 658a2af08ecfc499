"""Discord REST for the ops: ``ctx.rest`` for JSON calls, a multipart path for uploads, and flora's
ReadOnly retry policy for the read ops (reference §2.3).

Uploads go through ``ctx.rest`` too (disnake's multipart arguments), so they share its buckets, 429
handling, per-guild semaphore, ``RUNTIME_REST_TIMEOUT_MS`` and error mapping.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from disnake.http import to_multipart

from flora_core.errors import DISCORD_HTTP_ERROR, OpError

from .attachments import LoadedFile

READ_RETRIES = 2  # flora's ReadOnly policy: at most 2 retries


def _retryable(exc: OpError) -> bool:
    """HTTP 5xx and transport errors (mapped to status 500, code 0)."""
    return exc.code == DISCORD_HTTP_ERROR and int(exc.extra.get("status") or 0) >= 500


def backoff(attempt: int) -> float:
    """Uniform 0..=min(250 * 2^n, 2000) ms, as flora."""
    return random.uniform(0, min(250 * 2**attempt, 2000)) / 1000


async def call(
    ctx,
    method: str,
    path: str,
    *,
    json: Any = None,
    reason: str | None = None,
    params: dict | None = None,
    files: list[LoadedFile] | None = None,
    read_only: bool = False,
    **route_params,
) -> Any:
    attempts = 1 + READ_RETRIES if read_only else 1
    for attempt in range(attempts):
        try:
            if files:
                return await _multipart(ctx, method, path, json=json, reason=reason, params=params, files=files, **route_params)
            return await ctx.rest(method, path, json=json, reason=reason, params=params, **route_params)
        except OpError as exc:
            if attempt + 1 < attempts and _retryable(exc):
                await asyncio.sleep(backoff(attempt))
                continue
            raise
    raise AssertionError("unreachable")


async def _multipart(
    ctx, method: str, path: str, *, json: Any, reason: str | None, params: dict | None, files: list[LoadedFile], **route_params
) -> Any:
    dfiles = [f.to_disnake() for f in files]
    try:
        return await ctx.rest(
            method,
            path,
            reason=reason,
            params=params,
            files=dfiles,
            form=to_multipart(json if json is not None else {}, dfiles),
            **route_params,
        )
    finally:
        for f in dfiles:
            f.close()
