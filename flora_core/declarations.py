"""The TypeScript declarations scripts are checked against: the core's own (``runtime/core.d.ts``) and
those of every enabled plugin (``flora_register_type_declarations``), assembled into one global ``.d.ts``.

``flora types`` writes it, ``flora dev`` refreshes a project's copy, the tests type-check scripts with
it; so what an editor or ``deno check`` sees is what the isolate really has with these plugins.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .plugins import Plugins

#: First line of an assembled file: ``flora dev`` only rewrites files that start with it.
HEADER = "// flora type declarations, assembled from the enabled plugins: regenerate with `flora types -o FILE`."


def core_declarations() -> str:
    return resources.files("flora_core.runtime").joinpath("core.d.ts").read_text(encoding="utf-8")


def assemble(plugins: Plugins) -> str:
    """One ``.d.ts``: the core's declarations, then each plugin's by name (each under a comment naming it)."""
    parts = [
        HEADER,
        "// Do not edit: what a plugin declares is its own (docs/plugins.md, flora_register_type_declarations).",
        "",
        "// ---- flora core (flora_core/runtime/core.d.ts) ----",
        core_declarations().rstrip(),
        "",
    ]
    owners = {name: plugin for plugin, names in _owners(plugins).items() for name in names}
    for name, text in plugins.type_declarations():
        parts += [f"// ---- {name} (plugin {owners.get(name, '?')}) ----", text.rstrip(), ""]
    return "\n".join(parts)


def _owners(plugins: Plugins) -> dict[str, list[str]]:
    return {p.name: p.registered.get("type_declarations", []) for p in plugins.loaded.values()}


def refresh(path, plugins: Plugins) -> bool:
    """Rewrite ``path`` with the current declarations if it is a file flora assembled (it starts with
    :data:`HEADER`) and they changed; True if it was rewritten. Anything else is left alone."""
    from pathlib import Path

    target = Path(path)
    try:
        current = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if not current.startswith(HEADER):
        return False
    text = assemble(plugins)
    if text == current:
        return False
    target.write_text(text, encoding="utf-8")
    return True
