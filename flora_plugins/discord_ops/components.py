"""Component parsing (reference §2.5): builder JSON (Discord snake_case) -> the components Discord receives.

flora's rules and messages are kept: a bare button or select is wrapped in an action row; an action row
keeps only its select when it has one; a section needs a button or thumbnail accessory; a thumbnail is
only valid as an accessory; text inputs and file uploads only live inside labels (and, for modals, the
legacy one-text-input action row). Unknown keys are dropped, as serenity's re-serialisation did.
"""

from __future__ import annotations

import re
from typing import Any

from flora_core.errors import INVALID_INPUT, OpError, invalid

from .common import SNOWFLAKE

SELECT_TYPES = {3, 5, 6, 7, 8}
# select type -> default value types it can carry
_DEFAULT_TYPES = {5: ("user",), 6: ("role",), 7: ("user", "role"), 8: ("channel",)}
_CUSTOM_EMOJI = re.compile(r"^<(a?):([^:<>]+):(\d{1,20})>$")


def fail(message: str) -> OpError:
    return OpError(INVALID_INPUT, message)


def kind_of(comp: Any) -> int:
    if not isinstance(comp, dict):
        raise fail("Component missing numeric type")
    kind = comp.get("type")
    if isinstance(kind, float) and kind.is_integer():
        kind = int(kind)
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise fail("Component missing numeric type")
    return kind


# -- small typed readers ---------------------------------------------------------
def _str(comp: dict, key: str, what: str, *, required: bool = False) -> str | None:
    value = comp.get(key)
    if value is None or (required and value == ""):
        if required:
            raise fail(f"{what} requires {key}")
        return None
    if not isinstance(value, str):
        raise fail(f"{what} {key} must be a string")
    return value


def _int(comp: dict, key: str, what: str) -> int | None:
    value = comp.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise fail(f"{what} {key} must be a number")
    return value


def _bool(comp: dict, key: str, what: str) -> bool | None:
    value = comp.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise fail(f"{what} {key} must be a boolean")
    return value


def _copy(out: dict, comp: dict, what: str, *, strings=(), ints=(), bools=()) -> dict:
    for key in strings:
        if (v := _str(comp, key, what)) is not None:
            out[key] = v
    for key in ints:
        if (v := _int(comp, key, what)) is not None:
            out[key] = v
    for key in bools:
        if (v := _bool(comp, key, what)) is not None:
            out[key] = v
    return out


def _base(comp: dict, kind: int) -> dict:
    out: dict[str, Any] = {"type": kind}
    cid = comp.get("id")
    if isinstance(cid, int) and not isinstance(cid, bool) and cid >= 0:
        out["id"] = cid  # the optional numeric component id of components v2
    return out


def parse_emoji(raw: Any) -> dict:
    """A unicode emoji, ``<:name:id>`` / ``<a:name:id>``, or a raw emoji object."""
    if isinstance(raw, str):
        text = raw.strip()
        m = _CUSTOM_EMOJI.match(text)
        if m:
            return {"id": m.group(3), "name": m.group(2), "animated": bool(m.group(1))}
        if not text:
            raise fail("Emoji must not be empty")
        return {"name": text}
    if isinstance(raw, dict):
        out: dict[str, Any] = {}
        if raw.get("id") is not None:
            if not SNOWFLAKE.match(str(raw["id"])):
                raise fail("Emoji id must be a snowflake")
            out["id"] = str(raw["id"])
        if raw.get("name") is not None:
            out["name"] = str(raw["name"])
        if raw.get("animated") is not None:
            out["animated"] = bool(raw["animated"])
        if not out:
            raise fail("Emoji needs an id or a name")
        return out
    raise fail("Emoji must be a string or an emoji object")


def _media(comp: dict, key: str, what: str) -> dict:
    media = comp.get(key)
    url = media.get("url") if isinstance(media, dict) else None
    if not isinstance(url, str) or not url:
        raise fail(f"{what} requires {key}.url")
    return {"url": url}


def _children(comp: dict, what: str) -> list:
    children = comp.get("components")
    if children is None:
        return []
    if not isinstance(children, list):
        raise fail(f"{what} components must be an array")
    return children


# -- interactive components ---------------------------------------------------------
def button(comp: dict) -> dict:
    style = comp.get("style")
    if style is None:
        style = 1
    if isinstance(style, float) and style.is_integer():
        style = int(style)
    if not isinstance(style, int) or isinstance(style, bool):
        raise fail("Button style must be a number")
    out = _base(comp, 2)
    out["style"] = style
    if style == 5:
        out["url"] = _str(comp, "url", "Link button", required=True)
    elif style == 6:
        sku = comp.get("sku_id")
        if sku is None or sku == "":
            raise fail("Premium button requires sku_id")
        if not SNOWFLAKE.match(str(sku)):
            raise fail("Premium button sku_id must be a snowflake")
        out["sku_id"] = str(sku)
    else:
        out["custom_id"] = _str(comp, "custom_id", "Button", required=True)
    _copy(out, comp, "Button", strings=("label",), bools=("disabled",))
    if comp.get("emoji") is not None:
        out["emoji"] = parse_emoji(comp["emoji"])
    return out


def _select_option(raw: Any) -> dict:
    if not isinstance(raw, dict):
        raise fail("Select option must be an object")
    out = {
        "label": _str(raw, "label", "Select option", required=True),
        "value": _str(raw, "value", "Select option", required=True),
    }
    _copy(out, raw, "Select option", strings=("description",), bools=("default",))
    if raw.get("emoji") is not None:
        out["emoji"] = parse_emoji(raw["emoji"])
    return out


def select(comp: dict) -> dict:
    kind = kind_of(comp)
    out = _base(comp, kind)
    out["custom_id"] = _str(comp, "custom_id", "Select menu", required=True)
    _copy(out, comp, "Select menu", strings=("placeholder",), ints=("min_values", "max_values"), bools=("disabled", "required"))
    if kind == 3:
        options = comp.get("options")
        if not isinstance(options, list) or not options:
            raise fail("String select requires options")
        out["options"] = [_select_option(o) for o in options]
        return out
    if kind == 8 and comp.get("channel_types") is not None:
        types = comp["channel_types"]
        if not isinstance(types, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in types):
            raise fail("Select menu channel_types must be an array of numbers")
        out["channel_types"] = list(types)
    allowed = _DEFAULT_TYPES[kind]
    defaults: list[dict] = []
    raw_values = comp.get("default_values")
    if isinstance(raw_values, list):
        for v in raw_values:
            if isinstance(v, dict) and v.get("type") in allowed and SNOWFLAKE.match(str(v.get("id", ""))):
                defaults.append({"id": str(v["id"]), "type": v["type"]})
    for key, vtype in (("default_users", "user"), ("default_roles", "role"), ("default_channels", "channel")):
        ids = comp.get(key)
        if vtype in allowed and isinstance(ids, list):
            defaults.extend(
                {"id": str(i), "type": vtype}
                for i in ids
                if isinstance(i, (str, int)) and not isinstance(i, bool) and SNOWFLAKE.match(str(i))
            )
    if defaults:
        seen: set[tuple[str, str]] = set()
        out["default_values"] = [d for d in defaults if (d["id"], d["type"]) not in seen and not seen.add((d["id"], d["type"]))]
    return out


def input_text(comp: dict) -> dict:
    out = _base(comp, 4)
    out["custom_id"] = _str(comp, "custom_id", "Input text", required=True)
    out["style"] = _int(comp, "style", "Input text") or 1
    return _copy(
        out, comp, "Input text", strings=("label", "value", "placeholder"), ints=("min_length", "max_length"), bools=("required",)
    )


def file_upload(comp: dict) -> dict:
    out = _base(comp, 19)
    out["custom_id"] = _str(comp, "custom_id", "File upload", required=True)
    return _copy(out, comp, "File upload", ints=("min_values", "max_values"), bools=("required",))


# -- layout and content components (components v2) -----------------------------------
def action_row(comp: dict) -> dict:
    buttons, selects = [], []
    for child in _children(comp, "Action row"):
        kind = kind_of(child)
        if kind == 2:
            buttons.append(button(child))
        elif kind in SELECT_TYPES:
            selects.append(select(child))
        else:
            raise fail(f"Unsupported action row component type {kind}")
    if len(selects) > 1:
        raise fail("Action row supports only one select menu")
    out = _base(comp, 1)
    out["components"] = selects if selects else buttons  # with a select, buttons are dropped (flora)
    return out


def text_display(comp: dict) -> dict:
    out = _base(comp, 10)
    content = comp.get("content")
    if not isinstance(content, str):
        raise fail("Text display requires content")
    out["content"] = content
    return out


def thumbnail(comp: dict) -> dict:
    out = _base(comp, 11)
    out["media"] = _media(comp, "media", "Thumbnail")
    return _copy(out, comp, "Thumbnail", strings=("description",), bools=("spoiler",))


def section(comp: dict) -> dict:
    texts = []
    for child in _children(comp, "Section"):
        kind = kind_of(child)
        if kind != 10:
            raise fail(f"Section components must be text displays (type 10), got type {kind}")
        texts.append(text_display(child))
    accessory = comp.get("accessory")
    kind = kind_of(accessory)  # null -> "Component missing numeric type" (flora)
    if kind == 2:
        acc = button(accessory)
    elif kind == 11:
        acc = thumbnail(accessory)
    else:
        raise fail(f"Unsupported section accessory type {kind}")
    out = _base(comp, 9)
    out["components"] = texts
    out["accessory"] = acc
    return out


def media_gallery(comp: dict) -> dict:
    items = comp.get("items")
    if not isinstance(items, list):
        raise fail("Media gallery requires items")
    parsed = []
    for item in items:
        if not isinstance(item, dict):
            raise fail("Media gallery item must be an object")
        entry = {"media": _media(item, "media", "Media gallery item")}
        parsed.append(_copy(entry, item, "Media gallery item", strings=("description",), bools=("spoiler",)))
    out = _base(comp, 12)
    out["items"] = parsed
    return out


def file_component(comp: dict) -> dict:
    out = _base(comp, 13)
    out["file"] = _media(comp, "file", "File component")
    return _copy(out, comp, "File component", bools=("spoiler",))


def separator(comp: dict) -> dict:
    divider = comp.get("divider")
    if not isinstance(divider, bool):
        raise fail("Separator requires divider")
    out = _base(comp, 14)
    out["divider"] = divider
    spacing = comp.get("spacing")
    if spacing is not None:
        if isinstance(spacing, str):
            named = {"small": 1, "large": 2}.get(spacing.lower())
            if named is None:
                raise fail(f"Invalid separator spacing '{spacing}' (expected 1, 2, 'small' or 'large')")
            spacing = named
        elif isinstance(spacing, float) and spacing.is_integer():
            spacing = int(spacing)
        if not isinstance(spacing, int) or isinstance(spacing, bool):
            raise fail("Separator spacing must be a number or 'small' / 'large'")
        out["spacing"] = spacing  # other numbers pass through (flora: Unknown(n))
    return out


_CONTAINER_CHILDREN = {1: action_row, 9: section, 10: text_display, 12: media_gallery, 13: file_component, 14: separator}


def container(comp: dict) -> dict:
    children = []
    for child in _children(comp, "Container"):
        kind = kind_of(child)
        parse = _CONTAINER_CHILDREN.get(kind)
        if parse is None:
            raise fail(f"Unsupported container component type {kind}")
        children.append(parse(child))
    out = _base(comp, 17)
    out["components"] = children
    if comp.get("accent_color") is not None:
        color = _int(comp, "accent_color", "Container")
        if not 0 <= color <= 0xFFFFFF:
            raise fail("Container accent_color must be between 0 and 0xFFFFFF")
        out["accent_color"] = color
    return _copy(out, comp, "Container", bools=("spoiler",))


def label(comp: dict) -> dict:
    out = _base(comp, 18)
    out["label"] = _str(comp, "label", "Label", required=True)
    _copy(out, comp, "Label", strings=("description",))
    inner = comp.get("component")
    kind = kind_of(inner)  # null -> "Component missing numeric type" (flora)
    if kind in SELECT_TYPES:
        out["component"] = select(inner)
    elif kind == 4:
        out["component"] = input_text(inner)
    elif kind == 19:
        out["component"] = file_upload(inner)
    else:
        raise fail(f"Unsupported label component type {kind}")
    return out


_TOP_LEVEL = {
    1: action_row,
    9: section,
    10: text_display,
    12: media_gallery,
    13: file_component,
    14: separator,
    17: container,
    18: label,
}


def parse_component(comp: Any) -> dict:
    kind = kind_of(comp)
    if kind == 2:
        return {"type": 1, "components": [button(comp)]}
    if kind in SELECT_TYPES:
        return {"type": 1, "components": [select(comp)]}
    if kind == 11:
        raise fail("Thumbnail components are only valid as section accessories")
    parse = _TOP_LEVEL.get(kind)
    if parse is None:
        raise fail(f"Unsupported component type {kind}")
    return parse(comp)


def build_components(raw: Any) -> list[dict]:
    """Message components (channel sends, edits, interaction responses, follow-ups, webhooks)."""
    if not isinstance(raw, list):
        raise invalid("components", "expected an array")
    return [parse_component(c) for c in raw]


def _modal_row(comp: dict) -> dict:
    children = _children(comp, "Action row")
    if len(children) != 1 or kind_of(children[0]) != 4:
        kinds = [kind_of(c) for c in children]
        raise fail(f"Modal action rows must hold exactly one input text, got types {kinds}")
    out = _base(comp, 1)
    out["components"] = [input_text(children[0])]
    return out


def build_modal_components(raw: Any) -> list[dict]:
    """Modal components: labels (wrapping an input text, a select or a file upload), text displays, and the
    legacy action row holding one input text (a bare input text is wrapped in one)."""
    if not isinstance(raw, list):
        raise invalid("components", "expected an array")
    if not raw:
        raise invalid("components", "a modal needs at least one component")
    out = []
    for comp in raw:
        kind = kind_of(comp)
        if kind == 18:
            out.append(label(comp))
        elif kind == 10:
            out.append(text_display(comp))
        elif kind == 1:
            out.append(_modal_row(comp))
        elif kind == 4:
            out.append({"type": 1, "components": [input_text(comp)]})
        else:
            raise fail(f"Unsupported modal component type {kind}")
    return out
