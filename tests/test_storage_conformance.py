"""flora's relational storage backends against the conformance suite (``flora_plugins.storage.conformance``):
SQLite (a real file) and PostgreSQL (a fresh schema per test on a real server, dropped afterwards)."""

from __future__ import annotations

import pytest

from flora_plugins.storage.conformance import *  # noqa: F403 - the suite's tests and fixtures


@pytest.fixture(params=["sqlite", "postgres"])
def storage_env(request, tmp_path):
    """A fresh, empty database of each backend (``postgres_url``, from conftest, makes and drops a schema)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'db' / 'flora.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    return {"DATABASE_URL": url, "FLORA_DATA_DIR": str(tmp_path / "data")}
