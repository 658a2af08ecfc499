"""The built-in KV backends (each its own plugin) and the choice among installed ones."""

from __future__ import annotations

from ..backend import KvBackend
from ..errors import unavailable


def open_backend(config, plugins) -> KvBackend:
    """The backend ``KV_BACKEND`` names, built by the plugin that registered it."""
    backends = plugins.kv_backends()
    factory = backends.get(config.kv_backend)
    if factory is None:
        installed = ", ".join(sorted(backends)) or "none"
        raise unavailable(f"KV_BACKEND={config.kv_backend!r} is not an installed KV backend (installed: {installed})")
    backend = factory(config)
    if not isinstance(backend, KvBackend):
        raise unavailable(f"KV backend {config.kv_backend!r} did not return a KvBackend (flora_plugins.kv.backend)")
    return backend
