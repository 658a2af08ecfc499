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

__all__ = ["Emulator", "EmulatorServer", "ApiError", "SnowflakeGenerator", "shard_for", "seed_dev_world"]


def seed_dev_world(emu: "Emulator | EmulatorServer") -> dict:
    """One guild "flora dev" with #general and #bot-commands, alice (admin role) and bob.
    Works with the threaded driver or (on its loop) with the server itself."""
    guild = emu.create_guild("flora dev")
    general = emu.create_channel(guild["id"], "general")
    bot_commands = emu.create_channel(guild["id"], "bot-commands")
    admin = emu.create_role(guild["id"], "admin", permissions="8")
    alice = emu.create_user("alice")
    bob = emu.create_user("bob")
    emu.add_member(guild["id"], alice["id"], roles=[admin["id"]])
    emu.add_member(guild["id"], bob["id"])
    return {"guild": guild, "channels": {"general": general, "bot-commands": bot_commands},
            "roles": {"admin": admin}, "users": {"alice": alice, "bob": bob}}
