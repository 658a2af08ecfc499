"""flora: one Discord bot, many guilds, each guild's own script in its own V8 isolate."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("flora")

__all__ = ["hookimpl", "__version__"]
