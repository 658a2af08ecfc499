"""Argument helpers shared by every op family (reference §2 preamble: camelCase in, snake_case field names in errors)."""

from __future__ import annotations

import re
from typing import Any

from flora_core.errors import DISCORD_HTTP_ERROR, OpError, invalid

SNOWFLAKE = re.compile(r"^\d{1,20}$")


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def parse_snowflake(value: Any, field: str) -> str:
    """A snowflake from a string (or a safe integer); ``Invalid input for <field>: invalid snowflake`` otherwise."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not SNOWFLAKE.match(text) or int(text) >= 2**64:
        raise invalid(field, "invalid snowflake")
    return text


def snowflake(args: dict, key: str, *, required: bool = True) -> str | None:
    value = args.get(key)
    if value is None or value == "":
        if required:
            raise invalid(snake(key), "missing snowflake")
        return None
    return parse_snowflake(value, snake(key))


def snowflake_list(args: dict, key: str) -> list[str]:
    value = args.get(key)
    field = snake(key)
    if not isinstance(value, list):
        raise invalid(field, "expected an array of snowflakes")
    return [parse_snowflake(v, field) for v in value]


def require_dict(args: Any, op: str) -> dict:
    if not isinstance(args, dict):
        raise invalid(op, "expected an object")
    return args


def string(args: dict, key: str, *, required: bool = False, allow_empty: bool = False) -> str | None:
    value = args.get(key)
    if value is None:
        if required:
            raise invalid(snake(key), "missing")
        return None
    if not isinstance(value, str):
        raise invalid(snake(key), "expected a string")
    if not value and not allow_empty:
        if required:
            raise invalid(snake(key), "must not be empty")
        return None
    return value


def reason(args: dict) -> str | None:
    """Audit-log reason (``X-Audit-Log-Reason``); Discord caps it at 512 characters."""
    value = string(args, "reason")
    if value is not None and len(value) > 512:
        raise invalid("reason", "must be 512 or fewer characters")
    return value


def payload(args: dict, key: str = "payload", *, required: bool = True) -> dict:
    """A raw Discord JSON body passed through unchanged (member, channel, thread, webhook edits)."""
    value = args.get(key)
    if value is None:
        if required:
            raise invalid(snake(key), "expected an object")
        return {}
    if not isinstance(value, dict):
        raise invalid(snake(key), "expected an object")
    return value


def integer(args: dict, key: str, *, minimum: int = 0, maximum: int = 2**64 - 1, default: int | None = None) -> int | None:
    value = args.get(key)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= maximum:
        raise invalid(snake(key), f"expected an integer between {minimum} and {maximum}")
    return value


def token(args: dict, key: str = "token") -> str:
    value = args.get(key)
    if not isinstance(value, str) or not value:
        raise invalid(snake(key), "missing interaction token")
    if len(value) > 500 or "/" in value or "?" in value or "#" in value:
        raise invalid(snake(key), "invalid token")
    return value


def application_id(ctx, route: str) -> str:
    if not ctx.application_id:
        raise OpError(
            DISCORD_HTTP_ERROR, f"Discord HTTP error (500): application id unknown (route: {route})", status=500, discord_code=0
        )
    return ctx.application_id
