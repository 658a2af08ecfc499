"""What a plugin may use of the host: typed, documented interfaces, nothing private.

Hooks receive these (``flora_core/hookspecs.py`` says which hook gets which); plugins never read or
write the runtime's own state. The runtime (``flora_core/runtime/supervisor.py``), the op context
(``flora_core/runtime/opctx.py``) and the API state implement them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .config import Config
    from .plugins import Plugins
    from .storage import Database

# ``emit(event, payload)`` — what an event source calls for each event: a raw Discord gateway dispatch
# (``"MESSAGE_CREATE"``, its ``d``), or an event of its own (``"webhook"``) whose payload holds ``guild_id``.
Emit = Callable[[str, dict], None]
# The ``register`` callable a ``flora_register_*`` hook receives.
Register = Callable[..., None]


class EventSource(Protocol):
    """What an event-source factory returns (``flora_register_event_sources``)."""

    async def start(self, emit: Emit) -> None: ...

    async def stop(self) -> None: ...


class RuntimeAPI(Protocol):
    """The runtime as the supervisor's hooks see it (``flora_startup``, ``flora_shutdown``,
    ``flora_script_loaded``). Runs in the supervisor process, on its asyncio loop."""

    config: Config
    plugins: Plugins
    db: Database  # the relational database (deployments, logs, plugin tables)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run a background task owned by the runtime; it is cancelled when the runtime stops."""

    def guild_log(self, guild_id: str | None, level: str, target: str, message: str) -> None:
        """Add a line to a guild's log (``level``: info, warn, error; ``target`` e.g. ``flora:cron``)."""

    async def dispatch(self, guild_id: str, event: str, payload: dict, timeout: float | None = None) -> dict:
        """Run the guild's handlers for ``event``; returns ``{"ok": bool, "error"?: str}``."""

    def skip_reason(self, guild_id: str) -> str | None:
        """Why events for ``guild_id`` would not run now (suspended, nothing deployed), or ``None``."""

    def owns(self, guild_id: str) -> bool:
        """Whether ``guild_id`` is this runtime node's: on one of its shards (``DISCORD_SHARD_IDS`` of
        ``DISCORD_SHARD_COUNT``), or any guild when the node runs every shard. Another node's guild is
        neither run nor skipped here (the cron scheduler leaves its jobs to that node)."""

    def fail(self, message: str) -> None:
        """Stop the runtime because of ``message`` (logged; ``flora serve`` exits 1)."""
