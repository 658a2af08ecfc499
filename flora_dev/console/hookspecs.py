"""Hooks of ``flora dev``'s console, for plugins that want a place in it (the ``kv`` plugin's store view).

The console declares them when it starts (``DevSession.start``); nothing else calls them, so a plugin
implements them with ``@hookimpl(optionalhook=True)`` and loads fine where no console runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from flora_core.host import RuntimeAPI

hookspec = pluggy.HookspecMarker("flora")


@hookspec
def flora_console_deployed(runtime: RuntimeAPI, guild_id: str, files: list[dict]) -> None:
    """Called in ``flora dev`` (one process) after the project's files were deployed to the console's
    guild, in a thread (blocking calls are fine). The ``kv`` plugin creates the stores the files name."""


@hookspec
def flora_console_state(runtime: RuntimeAPI, guild_id: str) -> dict | None:
    """Return ``{panel: data}`` for the console to show (called in ``flora dev``, in a thread, when the
    page asks); the console shows ``kv`` (a list of ``{name, entries}``) in its KV panel."""
