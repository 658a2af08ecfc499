"""The hooks the kv plugin declares (``flora_add_hookspecs``), for other plugins to implement.

A KV backend plugin implements ``flora_register_kv_backends`` with ``@hookimpl(optionalhook=True)``, so
that it still loads (and simply does nothing) while the kv plugin is disabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from flora_core.plugins import registration

if TYPE_CHECKING:
    from flora_core.host import Register

hookspec = pluggy.HookspecMarker("flora")


def _backend(name, factory):
    if not isinstance(name, str) or not name:
        raise ValueError(f"invalid KV backend name {name!r}")
    if not callable(factory):
        raise ValueError(f"KV backend {name!r} is not callable")
    return name, factory


@registration("kv_backend", _backend)
@hookspec
def flora_register_kv_backends(register: Register) -> None:
    """Register KV storage backends: ``register(name, factory)``; ``factory(config)`` returns a
    ``flora_plugins.kv.backend.KvBackend`` (``KV_BACKEND`` picks one). Declared by the kv plugin;
    collected at start in every process, used wherever KV is (workers, API, CLI)."""
