"""``flora dev``: the emulator, the runtime, a file watcher and a web console in one process.

One asyncio loop runs the Discord emulator (seeded with ``seed_dev_world``), flora's runtime
pointed at it (data in a temporary folder, removed at exit), a poller that redeploys the project
when a file changes, and the console (``static/``) served by aiohttp with a websocket for live
updates. See :func:`flora_dev.console.app.run_dev`.
"""

from .app import DevSession, run_dev

__all__ = ["DevSession", "run_dev"]
