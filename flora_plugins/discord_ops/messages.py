"""Validation and conversion of script input into Discord message bodies (reference §1.8, §1.9, §2.5, §2.6)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from flora_core.errors import OpError, invalid

from .attachments import AttachmentSpec, parse_attachments, size_cap, url_guard
from .common import SNOWFLAKE, require_dict, snake, snowflake  # noqa: F401 - re-exported for older imports
from .components import build_components

KNOWN_FLAGS = 1 | 2 | 4 | 8 | 16 | 32 | 64 | 128 | 256 | 4096 | 8192 | 32768
EPHEMERAL = 64

EMPTY_MESSAGE = "message must include content, embeds, attachments, or components"
EMPTY_RESPONSE = "Response must include content, embeds, attachments, or components"
EMPTY_FOLLOWUP = "Followup must include content, embeds, attachments, or components"
EMPTY_WEBHOOK = "webhook must include content, embeds, attachments, or components"
EMPTY_EDIT = "edit must include content, embeds, components, allowed mentions, or flags"
EMPTY_EDIT_RESPONSE = "edit must include content, embeds, components, allowed mentions, flags, or attachments"


def _string(value: Any, field_name: str) -> str:
    if not isinstance(value, str):
        raise invalid(field_name, "expected a string")
    return value


def _url_of(part: Any) -> str | None:
    if isinstance(part, dict) and part.get("url"):
        return str(part["url"])
    return None


def build_embed(raw: Any, index: int) -> dict:
    """flora's ``build_embed``: footer needs text, author needs name, image/thumbnail need url, timestamp
    must be ISO 8601, field ``inline`` defaults to false; lengths are left to Discord."""
    if not isinstance(raw, dict):
        raise invalid(f"embeds[{index}]", "expected an object")
    out: dict[str, Any] = {}
    for key in ("title", "description", "url"):
        if raw.get(key) is not None:
            out[key] = _string(raw[key], f"embeds[].{key}")
    if raw.get("color") is not None:
        color = raw["color"]
        if isinstance(color, float) and color.is_integer():
            color = int(color)
        if not isinstance(color, int) or isinstance(color, bool) or not 0 <= color <= 0xFFFFFFFF:
            raise invalid("embeds[].color", "expected an integer colour")
        out["color"] = color
    if raw.get("timestamp") is not None:
        ts = raw["timestamp"]
        try:
            if not isinstance(ts, str):
                raise ValueError
            dt.datetime.fromisoformat(ts.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise invalid("embeds[].timestamp", "expected an ISO 8601 timestamp") from None
        out["timestamp"] = ts
    footer = raw.get("footer")
    if isinstance(footer, dict) and footer.get("text"):
        out["footer"] = {"text": str(footer["text"])}
        icon = footer.get("iconUrl") or footer.get("icon_url")
        if icon:
            out["footer"]["icon_url"] = str(icon)
    for key in ("image", "thumbnail"):
        url = _url_of(raw.get(key))
        if url:
            out[key] = {"url": url}
    author = raw.get("author")
    if isinstance(author, dict) and author.get("name"):
        out["author"] = {"name": str(author["name"])}
        if author.get("url"):
            out["author"]["url"] = str(author["url"])
        icon = author.get("iconUrl") or author.get("icon_url")
        if icon:
            out["author"]["icon_url"] = str(icon)
    fields = raw.get("fields")
    if fields is not None:
        if not isinstance(fields, list):
            raise invalid("embeds[].fields", "expected an array")
        out["fields"] = []
        for f in fields:
            if not isinstance(f, dict) or f.get("name") is None or f.get("value") is None:
                raise invalid("embeds[].fields", "each field needs a name and a value")
            out["fields"].append({"name": str(f["name"]), "value": str(f["value"]), "inline": bool(f.get("inline", False))})
    return out


def build_embeds(raw: Any) -> list[dict]:
    if not isinstance(raw, list):
        raise invalid("embeds", "expected an array")
    return [build_embed(e, i) for i, e in enumerate(raw)]


def allowed_mentions(raw: Any) -> dict | None:
    """``{parse?, users?, roles?, repliedUser?}``: unknown parse values ignored, unparsable ids dropped."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise invalid("allowed_mentions", "expected an object")
    parse = raw.get("parse") or []
    if not isinstance(parse, list):
        raise invalid("allowed_mentions.parse", "expected an array")
    out: dict[str, Any] = {"parse": [p for p in dict.fromkeys(parse) if p in ("everyone", "users", "roles")]}
    for key in ("users", "roles"):
        if raw.get(key) is not None:
            if not isinstance(raw[key], list):
                raise invalid(f"allowed_mentions.{key}", "expected an array")
            out[key] = [
                str(x) for x in raw[key] if isinstance(x, (str, int)) and not isinstance(x, bool) and SNOWFLAKE.match(str(x))
            ]
    replied = raw.get("repliedUser", raw.get("replied_user"))
    if replied is not None:
        out["replied_user"] = bool(replied)
    return out


def flags(raw: Any) -> int:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw < 2**64:
        raise invalid("flags", "expected a non-negative integer")
    return raw & KNOWN_FLAGS  # flora truncates to the known bits


@dataclass
class Outgoing:
    """A message body and the attachments still to be loaded (URL downloads happen after the scope check)."""

    body: dict
    attachments: list[AttachmentSpec] = field(default_factory=list)

    def has_payload(self, *, components_may_be_empty: bool = False) -> bool:
        b = self.body
        has_components = ("components" in b) if components_may_be_empty else bool(b.get("components"))
        return bool(b.get("content") or b.get("embeds") or self.attachments or has_components)


def message_fields(args: dict, config=None, *, tts: bool = True, attachments: bool = True, extra_flags: int = 0) -> Outgoing:
    """Every message field a script may pass: content, embeds, components, attachments, tts,
    allowedMentions, flags. Input is validated here; nothing is sent."""
    body: dict[str, Any] = {}
    if args.get("content") is not None:
        body["content"] = _string(args["content"], "content")
    if args.get("embeds") is not None:
        body["embeds"] = build_embeds(args["embeds"])
    if args.get("components") is not None:
        body["components"] = build_components(args["components"])
    specs: list[AttachmentSpec] = []
    if attachments and args.get("attachments") is not None:
        specs = parse_attachments(args["attachments"], cap=size_cap(config), guard=url_guard(config))
    if tts and args.get("tts") is not None:
        body["tts"] = bool(args["tts"])
    mentions = allowed_mentions(args.get("allowedMentions"))
    if mentions is not None:
        body["allowed_mentions"] = mentions
    if args.get("flags") is not None:
        body["flags"] = flags(args["flags"])
    if extra_flags:
        body["flags"] = body.get("flags", 0) | extra_flags
    return Outgoing(body, specs)


def new_message(
    args: dict,
    config=None,
    *,
    empty_message: str,
    tts: bool = True,
    attachments: bool = True,
    extra_flags: int = 0,
    components_may_be_empty: bool = False,
    plain_empty_error: bool = False,
) -> Outgoing:
    """A message that must carry something: content, embeds, attachments or components."""
    out = message_fields(args, config, tts=tts, attachments=attachments, extra_flags=extra_flags)
    if not out.has_payload(components_may_be_empty=components_may_be_empty):
        if plain_empty_error:  # flora's follow-up ops threw plain errors with this message
            raise OpError("INVALID_INPUT", empty_message)
        raise invalid("message", empty_message)
    return out


def edited_message(args: dict, config=None, *, attachments: bool, empty_message: str) -> Outgoing:
    """An edit: at least one field present (empty strings and lists count: they clear)."""
    out = message_fields(args, config, tts=False, attachments=attachments)
    if not out.body and not out.attachments:
        raise invalid("message", empty_message)
    return out


# -- the original helpers, kept for callers of the first version ------------------------
def message_body(args: dict, *, empty_message: str, allow_tts: bool = True) -> dict:
    out = new_message(args, None, empty_message=empty_message, tts=allow_tts, attachments=False)
    return out.body


def edit_body(args: dict) -> dict:
    return edited_message(args, None, attachments=False, empty_message=EMPTY_EDIT).body
