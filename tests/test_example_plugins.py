"""The example third-party packages under examples/plugins/, each installed by pip into a folder of its
own (the shared environment is not changed) and tested with its own suite on flora's test kit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT


@pytest.mark.parametrize("example", ["flora-webhooks", "flora-kv-lmdb", "flora-hello"])
def test_an_example_plugin_passes_its_own_tests(example, tmp_path):
    source = tmp_path / example
    shutil.copytree(
        ROOT / "examples" / "plugins" / example, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("FLORA_PLUGIN_PROBLEMS_REPORTED", None)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=source,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
