"""Built-in plugin ``kv``: flora's per-guild key-value stores (``kv.store(name)`` in scripts).

Registers:

* ops ``op_kv_get``, ``op_kv_get_with_metadata``, ``op_kv_set``, ``op_kv_update_metadata``,
  ``op_kv_delete``, ``op_kv_list_keys`` (flora's) and ``op_kv_incr``, ``op_kv_cas`` (ours) — ``ops.py``;
* the script API over them, ``kv``, ``store``, ``KvStore`` — ``kv.js``, which extends the SDK
  (``__floraProvide``);
* the blueprint ``flora_kv``: ``/api/kv/stores…`` and ``/api/kv/{guild}/{store}…`` — ``routes.py``;
* the command group ``flora kv`` — ``cli.py``;
* at ``flora serve`` start, one log line naming the KV backend, or saying why it cannot be used.

Where things live: the semantics (registry check, validation, limits, quotas,
listing) in ``service.py``; flora's limits and messages in ``limits.py``; the
counts of the write rate and export limits, shared by every process, in
``rate.py`` (Redis with ``REDIS_URL``, else a file of the data folder); the
store registry (table ``kv_stores``, ``migrations/``) in
``registry.py``; the storage interface in ``backend.py`` (quotas are checked
by the backend inside the write: ``atomic_quotas``; ``locks.py`` is the
per-guild file lock of the file backends). The storage itself
is chosen by ``KV_BACKEND`` among the backends plugins register with
``flora_register_kv_backends``, a hook this plugin declares (``hookspecs.py``); the built-in ones are separate plugins in
``backends/``: ``sqlite`` (default; ``sqlitedict`` is its earlier name), ``postgres`` and ``redis``.
"""

from __future__ import annotations

import logging

from flora_core import hookimpl

log = logging.getLogger("flora.kv")


@hookimpl
def flora_add_hookspecs(pm):
    from . import hookspecs  # flora_register_kv_backends: the KV backends are this plugin's interface

    pm.add_hookspecs(hookspecs)


@hookimpl
def flora_register_config_keys(register):
    from flora_core.config import Key, text

    register(Key("kv_backend", "kv.backend", "KV_BACKEND", text, "sqlite"))
    register(Key("kv_url", "kv.url", "KV_URL", text, None))


@hookimpl
def flora_register_migrations(register):
    from importlib import resources

    register(resources.files(__name__).joinpath("migrations"))  # table kv_stores


@hookimpl
def flora_register_ops(register):
    from .ops import OPS

    for name, fn in OPS.items():
        register(name, fn)


@hookimpl
def flora_register_js_sources(register):
    from importlib import resources

    # kv, store, KvStore for scripts: extends the SDK (flora.js, order 20), so after it
    register("flora:kv", resources.files(__name__).joinpath("kv.js").read_text(encoding="utf-8"), order=50)


@hookimpl
def flora_register_type_declarations(register):
    from importlib import resources

    register("flora:kv", resources.files(__name__).joinpath("kv.d.ts"), requires=["flora:sdk"])


@hookimpl
def flora_register_blueprints(register):
    from .routes import build_blueprint  # only the API process needs Flask

    register(build_blueprint())


@hookimpl
def flora_register_commands(cli):
    from .cli import kv_group

    cli.add_command(kv_group)


@hookimpl
def flora_startup(runtime):
    from .backends import open_backend
    from .errors import KvError

    try:
        backend = open_backend(runtime.config, runtime.plugins)  # no I/O: servers are reached on first use
    except KvError as exc:
        log.error("%s; scripts' KV calls fail with this message until it is fixed", exc.message)
        return
    except Exception as exc:  # noqa: BLE001 - a third-party backend's bug must not stop flora serve
        log.error("KV backend %r could not be built: %s", runtime.config.kv_backend, exc)
        return
    log.info("KV backend: %s", backend.name)
    backend.close()


# in flora dev's console: the stores a project names, and their entries (console.py)
from .console import flora_console_deployed, flora_console_state  # noqa: E402, F401
