"""Validation and conversion of script input into Discord message bodies (reference §1.8, §2.5, §2.6)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from flora_core.errors import OpError, invalid

SNOWFLAKE = re.compile(r"^\d{1,20}$")
KNOWN_FLAGS = 1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 | 256 | 4096 | 8192 | 32768
EPHEMERAL = 64
SELECT_TYPES = {3, 5, 6, 7, 8}


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def snowflake(args: dict, key: str, *, required: bool = True) -> str | None:
    value = args.get(key)
    if value is None or value == "":
        if required:
            raise invalid(snake(key), "missing snowflake")
        return None
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not SNOWFLAKE.match(text) or int(text) >= 2**64:
        raise invalid(snake(key), "invalid snowflake")
    return text


def require_dict(args: Any, op: str) -> dict:
    if not isinstance(args, dict):
        raise invalid(op, "expected an object")
    return args


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise invalid(field, "expected a string")
    return value


def build_embed(raw: Any, index: int) -> dict:
    if not isinstance(raw, dict):
        raise invalid(f"embeds[{index}]", "expected an object")
    out: dict[str, Any] = {}
    for key in ("title", "description", "url"):
        if raw.get(key) is not None:
            out[key] = _string(raw[key], f"embeds[].{key}")
    if raw.get("color") is not None:
        color = raw["color"]
        if not isinstance(color, int) or isinstance(color, bool) or not 0 <= color <= 0xFFFFFFFF:
            raise invalid("embeds[].color", "expected an integer colour")
        out["color"] = color
    if raw.get("timestamp") is not None:
        ts = raw["timestamp"]
        try:
            dt.datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
        except ValueError:
            raise invalid("embeds[].timestamp", "expected an ISO 8601 timestamp") from None
        out["timestamp"] = ts
    footer = raw.get("footer")
    if isinstance(footer, dict) and footer.get("text"):
        out["footer"] = {"text": str(footer["text"])}
        if footer.get("iconUrl") or footer.get("icon_url"):
            out["footer"]["icon_url"] = footer.get("iconUrl") or footer.get("icon_url")
    for key in ("image", "thumbnail"):
        part = raw.get(key)
        if isinstance(part, dict) and part.get("url"):
            out[key] = {"url": str(part["url"])}
    author = raw.get("author")
    if isinstance(author, dict) and author.get("name"):
        out["author"] = {"name": str(author["name"])}
        if author.get("url"):
            out["author"]["url"] = author["url"]
        if author.get("iconUrl") or author.get("icon_url"):
            out["author"]["icon_url"] = author.get("iconUrl") or author.get("icon_url")
    fields = raw.get("fields")
    if fields is not None:
        if not isinstance(fields, list):
            raise invalid("embeds[].fields", "expected an array")
        out["fields"] = []
        for f in fields:
            if not isinstance(f, dict) or "name" not in f or "value" not in f:
                raise invalid("embeds[].fields", "each field needs a name and a value")
            out["fields"].append({"name": str(f["name"]), "value": str(f["value"]), "inline": bool(f.get("inline", False))})
    return out


def build_components(raw: Any) -> list[dict]:
    """Builder JSON -> Discord components; bare buttons/selects are wrapped in an action row."""
    if not isinstance(raw, list):
        raise invalid("components", "expected an array")
    out = []
    for comp in raw:
        if hasattr(comp, "get") and isinstance(comp, dict):
            kind = comp.get("type")
        else:
            raise OpError("INVALID_INPUT", "Component missing numeric type")
        if not isinstance(kind, int) or isinstance(kind, bool):
            raise OpError("INVALID_INPUT", "Component missing numeric type")
        if kind == 2 or kind in SELECT_TYPES:
            out.append({"type": 1, "components": [comp]})
        elif kind == 11:
            raise OpError("INVALID_INPUT", "Thumbnail components are only valid as section accessories")
        elif kind in (4, 19):
            raise OpError("INVALID_INPUT", f"Unsupported component type {kind}")
        else:
            out.append(comp)
    return out


def allowed_mentions(raw: Any) -> dict | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid("allowed_mentions", "expected an object")
    out: dict[str, Any] = {"parse": [p for p in raw.get("parse", []) if p in ("everyone", "users", "roles")]}
    for key in ("users", "roles"):
        if raw.get(key) is not None:
            out[key] = [str(x) for x in raw[key] if SNOWFLAKE.match(str(x))]
    if raw.get("repliedUser") is not None:
        out["replied_user"] = bool(raw["repliedUser"])
    return out


def message_body(args: dict, *, empty_message: str, allow_tts: bool = True) -> dict:
    """Common body of sends, interaction responses and follow-ups."""
    body: dict[str, Any] = {}
    if args.get("content") is not None:
        body["content"] = _string(args["content"], "content")
    if args.get("embeds") is not None:
        if not isinstance(args["embeds"], list):
            raise invalid("embeds", "expected an array")
        body["embeds"] = [build_embed(e, i) for i, e in enumerate(args["embeds"])]
    if args.get("components") is not None:
        body["components"] = build_components(args["components"])
    if args.get("attachments"):
        raise invalid("attachments", "attachments are not supported by this runtime version yet")
    if allow_tts and args.get("tts") is not None:
        body["tts"] = bool(args["tts"])
    mentions = allowed_mentions(args.get("allowedMentions"))
    if mentions is not None:
        body["allowed_mentions"] = mentions
    if args.get("flags") is not None:
        flags = args["flags"]
        if not isinstance(flags, int) or isinstance(flags, bool) or flags < 0:
            raise invalid("flags", "expected a non-negative integer")
        body["flags"] = flags & KNOWN_FLAGS
    if not (body.get("content") or body.get("embeds") or body.get("components")):
        raise invalid("message", empty_message)
    return body


def edit_body(args: dict) -> dict:
    """Body of a message edit: at least one of content, embeds, components, allowed mentions, flags."""
    body: dict[str, Any] = {}
    if args.get("content") is not None:
        body["content"] = _string(args["content"], "content")
    if args.get("embeds") is not None:
        if not isinstance(args["embeds"], list):
            raise invalid("embeds", "expected an array")
        body["embeds"] = [build_embed(e, i) for i, e in enumerate(args["embeds"])]
    if args.get("components") is not None:
        body["components"] = build_components(args["components"])
    mentions = allowed_mentions(args.get("allowedMentions"))
    if mentions is not None:
        body["allowed_mentions"] = mentions
    if args.get("flags") is not None:
        flags = args["flags"]
        if not isinstance(flags, int) or isinstance(flags, bool) or flags < 0:
            raise invalid("flags", "expected a non-negative integer")
        body["flags"] = flags & KNOWN_FLAGS
    if not body:
        raise invalid("message", "edit must include content, embeds, components, allowed mentions, or flags")
    return body
