"""flora-kv-lmdb: a KV backend for flora on LMDB, a third-party flora plugin.

``KV_BACKEND=lmdb`` keeps each guild's stores in LMDB environments under
``$FLORA_DATA_DIR/kv-lmdb/<guild_id>/<store>/``; ``backend.py`` says how, ``records.py`` what the
files hold. Hooks used: ``flora_register_config_keys`` (the map's size) and
``flora_register_kv_backends``. ``lmdb`` is imported only when the backend is built, so loading the
plugin stays cheap for every ``flora`` command.
"""

from __future__ import annotations

from flora_core import hookimpl

__version__ = "0.1.0"
MB = 1024 * 1024


@hookimpl
def flora_register_config_keys(register):
    from flora_core.config import Key, int_range

    register(Key("kv_lmdb_map_size_mb", "kv.lmdb.map_size_mb", "KV_LMDB_MAP_SIZE_MB", int_range(1, 1 << 20), 64))
    register(Key("kv_lmdb_max_map_size_mb", "kv.lmdb.max_map_size_mb", "KV_LMDB_MAX_MAP_SIZE_MB", int_range(1, 1 << 24), 16384))


def factory(config):
    from flora_plugins.kv.errors import unavailable

    from .backend import LmdbBackend

    start, most = config.kv_lmdb_map_size_mb, config.kv_lmdb_max_map_size_mb
    if most < start:
        raise unavailable(f"KV_LMDB_MAX_MAP_SIZE_MB ({most}) is smaller than KV_LMDB_MAP_SIZE_MB ({start})")
    return LmdbBackend(config.data_path / "kv-lmdb", map_size=start * MB, max_map_size=most * MB)


@hookimpl
def flora_register_kv_backends(register):
    register("lmdb", factory)
