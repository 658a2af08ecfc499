"""flora's JavaScript SDK, shipped as package data (importable as ``flora_sdk``); the ``sdk`` plugin
(``flora_plugins/sdk``) registers it.

Files:

* ``prelude.js`` - runtime globals (``on``, ``console``, ``registerSlashCommands``) and the context
  handlers receive; needs the core's ``glue.js`` and ``events.js`` first.
* ``flora.js`` - the SDK (``createBot``, ``embed``, components...) and ``__floraProvide``, through which
  plugins add theirs (``kv``, ``rest``, ``cron``, ``secrets``).
* ``index.d.ts`` / ``web.d.ts`` / ``tsconfig.json`` - TypeScript declarations of this SDK and of the web
  globals; the plugins' own are theirs (``flora types`` assembles the declarations of the enabled plugins).
* ``starter/src/*.ts`` - the bot deployed to guilds that have no deployment.
"""

from __future__ import annotations

from importlib import resources

#: Loaded into every isolate, in this order, after the runtime's own JavaScript.
SDK_SCRIPTS = ("prelude.js", "flora.js")

#: Entry of the starter project (paths are relative to ``starter/``).
STARTER_ENTRY = "src/main.ts"
STARTER_FILES = ("src/main.ts", "src/utils/reply.ts")


def read(name: str) -> str:
    """Return the text of an SDK file, e.g. ``read("prelude.js")``."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def scripts() -> list[tuple[str, str]]:
    """``[(name, source)]`` of the SDK scripts, in load order."""
    return [(name, read(name)) for name in SDK_SCRIPTS]


def starter_files() -> list[dict]:
    """The starter project as ``[{path, contents}]`` (bundle with entry :data:`STARTER_ENTRY`)."""
    return [{"path": path, "contents": read(f"starter/{path}")} for path in STARTER_FILES]
