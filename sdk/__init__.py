"""flora's JavaScript SDK, shipped as package data (importable as ``flora_sdk``).

Files:

* ``prelude.js`` - runtime globals (``on``, ``cron``, ``secrets``, ``console``,
  ``registerSlashCommands``, ``__floraDispatch``); needs ``__floraOp`` first.
* ``flora.js`` - the SDK (``createBot``, ``embed``, components, ``kv``, ``rest``...).
* ``index.d.ts`` / ``tsconfig.json`` - TypeScript declarations for script authors.
* ``starter/src/*.ts`` - the bot deployed to guilds that have no deployment.
"""

from __future__ import annotations

import re
from importlib import resources
from urllib.parse import quote, unquote

#: Loaded into every isolate, in this order, after the runtime glue.
SDK_SCRIPTS = ("prelude.js", "flora.js")

#: Entry of the starter project (paths are relative to ``starter/``).
STARTER_ENTRY = "src/main.ts"
STARTER_FILES = ("src/main.ts", "src/utils/reply.ts")

# secrets.get(name) -> "__FLORA_SECRET_<encodeURIComponent(name)>__"
_URI_COMPONENT_SAFE = "-_.!~*'()"
_TOKEN_CHARS = r"[A-Za-z0-9\-_.!~*'()%]"
#: Finds placeholders in a URL or header value; group 1 is the encoded name.
SECRET_PLACEHOLDER_RE = re.compile(rf"__FLORA_SECRET_({_TOKEN_CHARS}+?)__(?!{_TOKEN_CHARS})")


def read(name: str) -> str:
    """Return the text of an SDK file, e.g. ``read("prelude.js")``."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def scripts() -> list[tuple[str, str]]:
    """``[(name, source)]`` of the SDK scripts, in load order."""
    return [(name, read(name)) for name in SDK_SCRIPTS]


def starter_files() -> list[dict]:
    """The starter project as ``[{path, contents}]`` (bundle with entry :data:`STARTER_ENTRY`)."""
    return [{"path": path, "contents": read(f"starter/{path}")} for path in STARTER_FILES]


def secret_placeholder(name: str) -> str:
    """The placeholder ``secrets.get(name)`` returns inside an isolate."""
    return f"__FLORA_SECRET_{quote(name, safe=_URI_COMPONENT_SAFE)}__"


def replace_secret_placeholders(text: str, lookup) -> str:
    """Replace each placeholder in ``text`` by ``lookup(name)``; a ``None`` result leaves it as is."""

    def substitute(match: re.Match) -> str:
        value = lookup(unquote(match.group(1)))
        return match.group(0) if value is None else value

    return SECRET_PLACEHOLDER_RE.sub(substitute, text)
