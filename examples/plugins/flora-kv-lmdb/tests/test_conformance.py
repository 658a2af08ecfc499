"""flora's KV conformance suite (flora_plugins.kv.conformance) against KV_BACKEND=lmdb, with the default
map and with a 1 MiB map that every larger write has to grow (in this process and in the suite's children)."""

from __future__ import annotations

import pytest

from flora_plugins.kv.conformance import *  # noqa: F403 - the suite's tests and fixtures


@pytest.fixture(params=["default-map", "1MiB-map"])
def kv_env(request, tmp_path):
    env = {
        "FLORA_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'flora.db'}",
        "KV_BACKEND": "lmdb",
        "FLORA_STRICT_PLUGINS": "1",
    }
    if request.param == "1MiB-map":
        env["KV_LMDB_MAP_SIZE_MB"] = "1"
    return env
