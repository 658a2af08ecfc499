"""Who is calling, and may they touch this guild (flora §3.2).

Identity, in order:

* a web session (cookie ``flora_session=<sid>.<sig>``, made by Discord login, see
  :mod:`flora_http.oauth`) — kind ``"session"``;
* ``Authorization: Bearer <token_id>.<secret>`` (flora's exact ``Bearer `` prefix), checked
  against the API tokens table — kind ``"token"``.

Guild access (:func:`require_guild_access`), needing ADMINISTRATOR (0x8) or MANAGE_GUILD (0x20):

* session: the user's guild list from ``GET /users/@me/guilds`` with their OAuth token must list
  the guild with one of those bits (403 ``User is not in guild`` / ``Admin permission required``),
  and the bot must see it (403 ``Bot not in guild``). Both answers are cached for 30 s in the API's
  shared cache (:mod:`flora_http.cache`), so every API worker sees the same and Discord is asked
  once per TTL (it allows ``/users/@me/guilds`` about once a second per token): the guild list under
  ``user-guilds:<user id>:<SHA-256 of the token>`` (never the token itself; a refreshed token is a
  new entry), the bot's view under ``bot-in-guild:<guild id>``;
* a user-owned API token (``user_id`` set, created with ``POST /api/tokens``): the bot fetches
  the member and computes its permissions from the guild's roles (owner → all);
* **operator tokens** — made on the server with ``flora tokens create``, ``user_id`` NULL — keep
  full access to every guild. This is a flora-Python extension (flora has no such tokens): whoever
  can run the CLI on the server already controls the bot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flask import g, request

from flora_core.storage import repo

from . import errors
from .app import state
from .cache import get_or_fill, hashed
from .discord_api import discord_call
from .sessions import SESSION_COOKIE, load_session

SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")
ADMINISTRATOR = 0x8
MANAGE_GUILD = 0x20
ADMIN_BITS = ADMINISTRATOR | MANAGE_GUILD
ALL_PERMISSIONS = (1 << 53) - 1
GUILDS_CACHE_TTL = 30.0
# Discord answers for sure about the bot and a guild with these; anything else (unreachable, 429, 5xx) is not cached
_DEFINITE = {200, 403, 404}


@dataclass(frozen=True)
class Identity:
    kind: str  # "token" or "session"
    token_id: str | None = None
    user_id: str | None = None
    label: str | None = None
    session: dict | None = field(default=None, compare=False, hash=False)
    scope: str = "admin"  # read < deploy < admin (repo.TOKEN_SCOPES)
    guild_ids: tuple[str, ...] | None = None  # the only guilds a token reaches; None: no such limit

    @property
    def is_operator(self) -> bool:
        """A token of the server (``flora tokens create``): every guild, or the guilds it names."""
        return self.kind == "token" and self.user_id is None


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization")
    if header is None or not header.startswith("Bearer "):
        return None
    return header[len("Bearer ") :]


def _session_identity() -> Identity | None:

    row = load_session()
    if row is None:
        return None
    return Identity("session", user_id=row["user_id"], session=row)


def require_identity() -> Identity:
    """Session cookie first, then a bearer API token; else 401 ``Unauthorized: Login required``."""
    cached = g.get("flora_identity")
    if cached is not None:
        return cached
    identity = _session_identity()
    if identity is None:
        token = _bearer_token()
        row = repo.verify_token(state().db, token) if token else None
        if row is None:
            # flora answers "Login required" for a wrong token too; a token made in another data folder
            # (the CLI run elsewhere) then looks like a login problem, so say what is wrong
            raise errors.unauthorized("invalid or unknown token" if token else "Login required")
        identity = Identity(
            "token",
            token_id=row["token_id"],
            user_id=row.get("user_id"),
            label=row.get("label"),
            scope=row.get("scope") or "admin",
            guild_ids=tuple(row["guild_ids"]) if row.get("guild_ids") else None,
        )
    g.flora_identity = identity
    return identity


def require_session() -> Identity:
    """A web session (``/api/tokens*``): 401 ``Login required`` without cookie, ``Session expired`` otherwise."""
    cached = g.get("flora_identity")
    if cached is not None and cached.kind == "session":
        return cached

    if not request.cookies.get(SESSION_COOKIE):
        raise errors.unauthorized("Login required")
    identity = _session_identity()
    if identity is None:
        raise errors.unauthorized("Session expired")
    g.flora_identity = identity
    return identity


def validate_guild_id(guild_id: str) -> str:
    if not SNOWFLAKE.match(guild_id or ""):
        raise errors.bad_request("Invalid guild ID")
    return guild_id


def _perm_value(entry: dict) -> int:
    raw = entry.get("permissions_new", entry.get("permissions", 0))
    try:
        return int(raw)
    except (TypeError, ValueError):
        return 0


def _user_guilds(identity: Identity) -> list[dict]:
    user_id = identity.user_id
    token = identity.session["access_token"]

    def fetch() -> tuple[dict, bool]:
        status, body = discord_call("GET", "/users/@me/guilds", bearer=token)
        if status != 200 or not isinstance(body, list):
            raise errors.forbidden(f"User guild fetch failed: {status}")
        return {"user_id": user_id, "guilds": body}, True

    cache = state().cache
    key = f"user-guilds:{user_id}:{hashed(token)}"
    entry = get_or_fill(cache, key, GUILDS_CACHE_TTL, fetch)
    if not isinstance(entry, dict) or entry.get("user_id") != user_id or not isinstance(entry.get("guilds"), list):
        entry, _ = fetch()  # never another user's list, nor a damaged one: ask Discord (cannot happen with this key)
    return entry["guilds"]


def bot_in_guild(guild_id: str) -> bool | None:
    """Whether the bot is in ``guild_id`` (Discord's ``GET /guilds/{id}`` with the bot token, cached),
    or ``None`` when Discord did not say (unreachable, rate-limited, failing)."""

    def fetch() -> tuple[bool | None, bool]:
        status, _ = discord_call("GET", f"/guilds/{guild_id}", bot=True)
        return (status == 200 if status in _DEFINITE else None), status in _DEFINITE

    return get_or_fill(state().cache, f"bot-in-guild:{guild_id}", GUILDS_CACHE_TTL, fetch)


def _bot_sees_guild(guild_id: str) -> bool:
    return bot_in_guild(guild_id) is True


def require_bot_in_guild(guild_id: str) -> None:
    """Before a deploy: the bot must be in the guild, or the script would never run (flora's text;
    404, since for a token of the server the guild does not exist). Without a bot token there is no
    one to ask (a runtime without Discord): nothing is checked."""
    if not state().config.discord_token:
        return
    seen = bot_in_guild(guild_id)
    if seen is False:
        raise errors.ApiError(404, "Bot not in guild")
    if seen is None:
        raise errors.unavailable(f"Discord did not answer whether the bot is in guild {guild_id}; try again")


def _error_text(status: int, body) -> str:
    if isinstance(body, dict) and body.get("message"):
        return f"{status} {body['message']}"
    return f"{status} {body}" if status else str(body)


def member_permissions(guild_id: str, user_id: str) -> int:
    """The bot's view of ``user_id``'s guild-level permissions (owner → all)."""

    if not SNOWFLAKE.match(user_id or ""):
        raise errors.bad_request("Invalid user ID")
    status, member = discord_call("GET", f"/guilds/{guild_id}/members/{user_id}", bot=True)
    if status != 200 or not isinstance(member, dict):
        raise errors.forbidden(f"Member fetch failed: {_error_text(status, member)}")
    if member.get("permissions") is not None:
        return _perm_value(member)
    status, guild = discord_call("GET", f"/guilds/{guild_id}", bot=True)
    if status != 200 or not isinstance(guild, dict):
        raise errors.forbidden(f"Guild fetch failed: {_error_text(status, guild)}")
    if str(guild.get("owner_id")) == str(user_id):
        return ALL_PERMISSIONS
    roles = {str(r["id"]): r for r in guild.get("roles") or []}
    perms = _perm_value(roles.get(str(guild_id), {}))
    for rid in member.get("roles") or []:
        role = roles.get(str(rid))
        if role is not None:
            perms |= _perm_value(role)
    return ALL_PERMISSIONS if perms & ADMINISTRATOR else perms


def user_admin_guilds(identity: Identity) -> list[dict]:
    """``GET /api/guilds``: the session user's guilds with 0x8|0x20 that the bot can see."""
    out = []
    for entry in _user_guilds(identity):
        perms = _perm_value(entry)
        gid = str(entry.get("id"))
        if perms & ADMIN_BITS and SNOWFLAKE.match(gid) and _bot_sees_guild(gid):
            out.append({"id": gid, "name": entry.get("name"), "icon": entry.get("icon"), "permissions": perms})
    return out


_DEPLOY_ROUTE = re.compile(r"^/api/(deployments/[^/]+(/rollback/[^/]+)?|builds)/?$")


def required_scope() -> str:
    """What the current request needs of a token: ``read`` for GET/HEAD, ``deploy`` for a deploy, a
    rollback or a build, ``admin`` for anything else that changes a guild (KV and secrets writes, plugins' routes)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return "read"
    if request.method == "POST" and _DEPLOY_ROUTE.match(request.path):
        return "deploy"
    return "admin"


def _check_token_limits(identity: Identity, guild_id: str) -> None:
    if identity.guild_ids is not None and guild_id not in identity.guild_ids:
        raise errors.forbidden("this token does not reach this guild")
    need = required_scope()
    if repo.TOKEN_SCOPES.index(identity.scope) < repo.TOKEN_SCOPES.index(need):
        raise errors.forbidden(f"this token's scope is {identity.scope}; this needs {need}")


def require_guild_access(guild_id: str) -> Identity:
    """The caller may manage ``guild_id`` (400 for a malformed id, 401/403 otherwise)."""
    identity = require_identity()
    validate_guild_id(guild_id)
    _check_token_limits(identity, guild_id)
    if identity.is_operator:
        return identity
    if identity.kind == "session":
        entry = next((e for e in _user_guilds(identity) if str(e.get("id")) == guild_id), None)
        if entry is None:
            raise errors.forbidden("User is not in guild")
        if not _perm_value(entry) & ADMIN_BITS:
            raise errors.forbidden("Admin permission required")
        if not _bot_sees_guild(guild_id):
            raise errors.forbidden("Bot not in guild")
        return identity
    if not member_permissions(guild_id, identity.user_id) & ADMIN_BITS:
        raise errors.forbidden("Admin permission required")
    return identity
