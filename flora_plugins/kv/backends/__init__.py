"""The built-in KV backends (each its own plugin) and the choice among installed ones."""

from __future__ import annotations

from ..backend import KvBackend
from ..errors import unavailable

# earlier names still accepted in KV_BACKEND: the default was called sqlitedict, but it never used
# sqlitedict to write (see sqlite_backend.py); its files are the same
ALIASES = {"sqlitedict": "sqlite"}


def installed_backends(plugins) -> dict:
    """``{name: factory}`` of the KV backends plugins registered (``flora_register_kv_backends``)."""
    return plugins.collected("flora_register_kv_backends")


def open_backend(config, plugins) -> KvBackend:
    """The backend ``KV_BACKEND`` names, built by the plugin that registered it."""
    backends = installed_backends(plugins)
    name = ALIASES.get(config.kv_backend, config.kv_backend) if config.kv_backend not in backends else config.kv_backend
    factory = backends.get(name)
    if factory is None:
        installed = ", ".join(sorted(backends)) or "none"
        raise unavailable(f"KV_BACKEND={config.kv_backend!r} is not an installed KV backend (installed: {installed})")
    backend = factory(config)
    if not isinstance(backend, KvBackend):
        raise unavailable(f"KV backend {config.kv_backend!r} did not return a KvBackend (flora_plugins.kv.backend)")
    return backend
