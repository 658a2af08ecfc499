"""Local Discord API v10 + gateway emulator for offline tests and ``flora dev``.

Point disnake at it with ``disnake.http.Route.BASE = emu.api_base``; the gateway URL follows
from ``GET /gateway/bot``::

    with Emulator(token="emu-token") as emu:          # threaded, sync, thread-safe driver
        g = emu.create_guild("Test Guild")
        ch = emu.create_channel(g["id"], "general")
        alice = emu.create_user("alice")
        emu.add_member(g["id"], alice["id"])
        disnake.http.Route.BASE = emu.api_base
        ...  # start a disnake client with token "emu-token"
        emu.user_says(ch["id"], alice["id"], "!ping")
        emu.wait_for(lambda: len(emu.messages(ch["id"])) == 2)

``EmulatorServer`` is the asyncio-native core (``await server.start()`` inside a running loop;
its methods must then be called on that loop). ``python -m flora_dev.emulator`` runs it
standalone with ``/_emu/*`` JSON control routes.

Modules: snowflake (ids), models (payload builders, constants, ApiError), state + messages +
commands + interactions (the in-memory world), gateway (websocket sessions), rest (API v10
routes), ratelimit (headers, injected 429/5xx, buckets), control (/_emu), server, driver.
"""

from .driver import Emulator
from .models import ApiError
from .server import EmulatorServer
from .snowflake import SnowflakeGenerator, shard_for

__all__ = [
    "Emulator",
    "EmulatorServer",
    "ApiError",
    "SnowflakeGenerator",
    "shard_for",
    "seed_dev_world",
    "world_ids",
    "load_world_ids",
    "save_world_ids",
]


def seed_dev_world(emu: "Emulator | EmulatorServer", ids: dict | None = None) -> dict:
    """One guild "flora dev" with #general and #bot-commands, alice (admin role) and bob.
    Works with the threaded driver or (on its loop) with the server itself. ``ids`` (what
    :func:`world_ids` returned for an earlier world) gives everything the ids it had, so deployments,
    KV and secrets stored for that guild still belong to it."""
    ids = ids or {}
    guild = emu.create_guild("flora dev", ids.get("guild"))
    general = emu.create_channel(guild["id"], "general", channel_id=ids.get("general"))
    bot_commands = emu.create_channel(guild["id"], "bot-commands", channel_id=ids.get("bot-commands"))
    admin = emu.create_role(guild["id"], "admin", permissions="8", role_id=ids.get("admin"))
    alice = emu.create_user("alice", user_id=ids.get("alice"))
    bob = emu.create_user("bob", user_id=ids.get("bob"))
    emu.add_member(guild["id"], alice["id"], roles=[admin["id"]])
    emu.add_member(guild["id"], bob["id"])
    return {
        "guild": guild,
        "channels": {"general": general, "bot-commands": bot_commands},
        "roles": {"admin": admin},
        "users": {"alice": alice, "bob": bob},
    }


def world_ids(world: dict) -> dict:
    """The ids of a seeded world, to seed the same world again (``seed_dev_world(emu, ids)``)."""
    out = {"guild": world["guild"]["id"]}
    for group in ("channels", "roles", "users"):
        out.update({name: item["id"] for name, item in world.get(group, {}).items()})
    return out


def load_world_ids(path) -> dict | None:
    """The ids saved at ``path`` by :func:`save_world_ids`, or ``None`` (none saved, or unreadable:
    then a new world is made and saved over it)."""
    import json
    from pathlib import Path

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not all(isinstance(v, str) and v.isdigit() for v in data.values()):
        return None
    return data


def save_world_ids(path, ids: dict) -> None:
    import json
    import os
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(ids, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
