"""Attachments (reference §2.6 RawAttachment): ``{"Url": {url, filename?, description?}}`` or
``{"Base64": {data, filename, description?}}`` (lowercase ``url`` / ``base64`` accepted too, §10 #1).

Parsing is pure and happens with the rest of the input validation; URLs are only downloaded after the
scope check passed, just before the request goes to Discord.
"""

from __future__ import annotations

import base64
import binascii
import io
import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import disnake

from flora_core import netguard
from flora_core.errors import invalid

from .download import DownloadError, check_url, download

MAX_ATTACHMENTS = 10  # Discord's limit per message
DEFAULT_CAP = 8 * 1024 * 1024
TOTAL_CAP = 25 * 1024 * 1024  # all files of one request, kept in memory until sent


@dataclass
class AttachmentSpec:
    filename: str | None
    description: str | None
    data: bytes | None = None  # Base64, already decoded
    url: str | None = None  # Url, downloaded later


@dataclass
class LoadedFile:
    filename: str
    description: str | None
    data: bytes

    def to_disnake(self) -> disnake.File:
        return disnake.File(io.BytesIO(self.data), filename=self.filename, description=self.description)


def size_cap(config) -> int:
    return int(getattr(config, "fetch_max_response_bytes", None) or DEFAULT_CAP)


def _variant(raw: Any) -> tuple[str, dict]:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise invalid("attachments", 'each attachment must be {"Url": {...}} or {"Base64": {...}}')
    ((tag, body),) = raw.items()
    kind = {"url": "url", "base64": "base64"}.get(str(tag).lower())
    if kind is None:
        raise invalid("attachments", f"unknown attachment variant {tag!r} (expected Url or Base64)")
    if not isinstance(body, dict):
        raise invalid("attachments", f"{tag} attachment must be an object")
    return kind, body


def _opt_str(body: dict, key: str, field: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(field, "expected a string")
    return value


def _filename(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    name = value.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not name or name in (".", ".."):
        raise invalid(field, "invalid filename")
    if len(name) > 1024:
        raise invalid(field, "filename is too long")
    return name


def url_guard(config) -> netguard.Guard:
    """The SSRF guard for attachment URLs (``FETCH_ALLOWED_PRIVATE_HOSTS``, as for ``fetch``)."""
    return netguard.Guard.from_config(config)


def parse_attachments(raw: Any, *, cap: int, guard: netguard.Guard) -> list[AttachmentSpec]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise invalid("attachments", "expected an array")
    if len(raw) > MAX_ATTACHMENTS:
        raise invalid("attachments", f"at most {MAX_ATTACHMENTS} attachments per message")
    specs = []
    for item in raw:
        kind, body = _variant(item)
        description = _opt_str(body, "description", "attachments[].description")
        filename = _filename(_opt_str(body, "filename", "attachments[].filename"), "attachments[].filename")
        if kind == "base64":
            data = body.get("data")
            if not isinstance(data, str):
                raise invalid("attachments[].data", "expected a base64 string")
            if filename is None:
                raise invalid("attachments[].filename", "required for a Base64 attachment")
            if len(data) > (cap // 3 + 1) * 4 + 4:
                raise invalid("attachments[].data", f"attachment is larger than {cap} bytes")
            try:
                decoded = base64.b64decode(data.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise invalid("attachments[].data", "invalid base64") from None
            if len(decoded) > cap:
                raise invalid("attachments[].data", f"attachment is larger than {cap} bytes")
            specs.append(AttachmentSpec(filename, description, data=decoded))
        else:
            url = body.get("url")
            if not isinstance(url, str) or not url:
                raise invalid("attachments[].url", "expected a URL")
            try:
                check_url(url, guard)
            except DownloadError as exc:
                raise invalid("attachments[].url", str(exc)) from None
            specs.append(AttachmentSpec(filename, description, url=url))
    return specs


def default_filename(url: str) -> str:
    """flora: the URL's last path segment, or ``attachment``."""
    segment = posixpath.basename(unquote(urlsplit(url).path))
    return segment if segment and segment not in (".", "..") else "attachment"


async def load_attachments(ctx, specs: list[AttachmentSpec]) -> list[LoadedFile]:
    """Download the URL attachments (after the scope check) and return every file to upload."""
    if not specs:
        return []
    cfg = ctx.config
    cap = size_cap(cfg)
    guard = url_guard(cfg)
    timeout = float(getattr(cfg, "fetch_timeout_secs", 10) or 10)
    files = []
    total = 0
    for spec in specs:
        if spec.data is not None:
            data = spec.data
            name = spec.filename or "attachment"
        else:
            try:
                data, _final = await download(spec.url, cap=cap, timeout=timeout, guard=guard)
            except DownloadError as exc:
                raise invalid("attachments[].url", str(exc)) from None
            name = spec.filename or default_filename(spec.url)
        total += len(data)
        if total > TOTAL_CAP:
            raise invalid("attachments", f"attachments are larger than {TOTAL_CAP} bytes in total")
        files.append(LoadedFile(name, spec.description, data))
    return files


def attachment_refs(files: list[LoadedFile]) -> list[dict]:
    refs = []
    for i, f in enumerate(files):
        ref: dict[str, Any] = {"id": i, "filename": f.filename}
        if f.description is not None:
            ref["description"] = f.description
        refs.append(ref)
    return refs
