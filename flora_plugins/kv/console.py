"""The ``kv`` plugin in ``flora dev``'s console (hooks declared by ``flora_dev/console/hookspecs.py``):
the stores a project names literally are created for it, and the console shows their entries."""

from __future__ import annotations

import re

from flora_core import hookimpl

from .backends import open_backend
from .service import KvService

KV_STORE = re.compile(r"""kv\.store\(\s*['"`]([^'"`$]+)['"`]\s*\)""")
SHOWN_KEYS = 100


@hookimpl(optionalhook=True)
def flora_console_deployed(runtime, guild_id: str, files: list[dict]) -> None:
    """Create the KV stores the project names literally (``kv.store('notes')``), as an admin would."""
    names = sorted({n for f in files for n in KV_STORE.findall(f["contents"])})
    if not names:
        return
    backend = open_backend(runtime.config, runtime.plugins)
    try:
        svc = KvService(runtime.db, backend)
        have = {s["store_name"] for s in svc.list_stores(guild_id)}
        for name in names:
            if name in have:
                continue
            try:
                svc.create_store(guild_id, name)
                runtime.guild_log(guild_id, "info", "flora:dev", f"created KV store {name!r}")
            except Exception as exc:  # noqa: BLE001 - e.g. an invalid name: the script will say
                runtime.guild_log(guild_id, "warn", "flora:dev", f"could not create KV store {name!r}: {exc}")
    finally:
        backend.close()


@hookimpl(optionalhook=True)
def flora_console_state(runtime, guild_id: str) -> dict:
    backend = open_backend(runtime.config, runtime.plugins)
    try:
        svc = KvService(runtime.db, backend)
        stores = []
        for store in svc.list_stores(guild_id):
            name = store["store_name"]
            keys = svc.list(guild_id, name, limit=SHOWN_KEYS)["keys"]
            stores.append({"name": name, "entries": [dict(k, value=svc.get(guild_id, name, k["name"])) for k in keys]})
        return {"kv": stores}
    finally:
        backend.close()
