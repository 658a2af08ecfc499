"""The API's caches shared between API processes (flora_http/cache.py): sqlitedict in the data folder,
Redis when ``REDIS_URL`` is set; and how the servers start when Redis is asked for and missing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT, free_port

from flora_core.config import REDIS_MISSING


# -- REDIS_URL without redis-py: one line at start ------------------------------------------------
def _env_without_redis_py(tmp_path) -> dict:
    hide = tmp_path / "hide-redis"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['redis'] = None  # as if redis-py were not installed\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNTIME_", "API_", "DATABASE_", "FLORA_", "REDIS_", "KV_"))}
    env.update(PYTHONPATH=str(hide), FLORA_DATA_DIR=str(tmp_path / "data"), API_ADDRESS="127.0.0.1", API_PORT=str(free_port()),
               DISCORD_TOKEN="t", REDIS_URL="redis://127.0.0.1:6379/0")
    return env


@pytest.mark.parametrize("argv, prefix", [
    (["-m", "flora_cli", "api"], "Error: "),
    (["-m", "flora_cli", "serve"], "Error: "),
    (["-m", "flora_http.serve"], "flora api: "),
    (["-m", "gunicorn", "-c", str(ROOT / "flora_http" / "gunicorn.conf.py")], "flora api: "),
], ids=["flora api", "flora serve", "the API process", "gunicorn by hand"])
def test_redis_url_without_redis_py_stops_the_servers_at_start_in_one_line(tmp_path, argv, prefix):
    proc = subprocess.run([sys.executable, *argv], env=_env_without_redis_py(tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines() == [prefix + REDIS_MISSING]
