"""Who is calling, and may they touch this guild.

Identity comes from ``Authorization: Bearer <token_id>.<secret>`` (flora's
exact ``Bearer `` prefix), checked against the API tokens table. Tokens made by
the operator with ``flora tokens create`` have no ``user_id``: they are
operator tokens and may act on every guild. :func:`require_guild_access` is the
single place where a Discord user's guild-admin check will go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import g, request

from flora_core.storage import repo

from . import errors
from .app import state

SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")


@dataclass(frozen=True)
class Identity:
    kind: str  # "token" (a later milestone adds "session")
    token_id: str | None = None
    user_id: str | None = None
    label: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.kind == "token" and self.user_id is None


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization")
    if header is None or not header.startswith("Bearer "):
        return None
    return header[len("Bearer "):]


def require_identity() -> Identity:
    """The caller's identity for this request, or 401 ``Unauthorized: Login required``."""
    cached = g.get("flora_identity")
    if cached is not None:
        return cached
    token = _bearer_token()
    row = repo.verify_token(state().db, token) if token else None
    if row is None:
        # flora answers the same for a missing and an invalid token: no session either.
        raise errors.unauthorized("Login required")
    identity = Identity("token", token_id=row["token_id"], user_id=row.get("user_id"), label=row.get("label"))
    g.flora_identity = identity
    return identity


def validate_guild_id(guild_id: str) -> str:
    if not SNOWFLAKE.match(guild_id or ""):
        raise errors.bad_request("Invalid guild ID")
    return guild_id


def require_guild_access(guild_id: str) -> Identity:
    """The caller may manage ``guild_id`` (400 for a malformed id, 401/403 otherwise)."""
    identity = require_identity()
    validate_guild_id(guild_id)
    if identity.is_operator:
        return identity
    # Discord users (token with user_id, or a session) need ADMINISTRATOR or
    # MANAGE_GUILD in the guild; that check arrives with Discord login.
    raise errors.forbidden("Admin permission required")
