"""Framing between the supervisor and its workers: one JSON object per line."""

from __future__ import annotations

import asyncio
import json

STREAM_LIMIT = 64 * 1024 * 1024  # a message carries at most one bundle (<= 8 MiB by default)


async def send(writer: asyncio.StreamWriter, message: dict) -> None:
    writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    await writer.drain()


def send_nowait(writer: asyncio.StreamWriter, message: dict) -> None:
    writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")


async def receive(reader: asyncio.StreamReader) -> dict | None:
    line = await reader.readline()
    if not line:
        return None
    return json.loads(line)
