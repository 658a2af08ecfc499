"""`flora plugins new NAME` makes a package whose own tests pass as generated, on flora's test kit."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_generated_plugin_installs_and_its_own_tests_pass(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "flora_cli", "plugins", "new", "acme", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and out.stdout.startswith(f"Created {tmp_path / 'acme'}"), out.stderr
    project = tmp_path / "acme"
    assert (project / "src" / "acme" / "acme.d.ts").read_text().startswith("/** Greets")
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
            str(project),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    env = dict(os.environ, PYTHONPATH=str(site))  # the package, next to the flora installed here
    env.pop("FLORA_PLUGIN_PROBLEMS_REPORTED", None)
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout


def test_a_bad_or_taken_name_is_one_line(tmp_path):
    bad = subprocess.run(
        [sys.executable, "-m", "flora_cli", "plugins", "new", "Bad Name!", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and bad.stderr.startswith("Error: invalid plugin name 'Bad Name!'")
    (tmp_path / "acme").mkdir()
    taken = subprocess.run(
        [sys.executable, "-m", "flora_cli", "plugins", "new", "acme", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert taken.returncode == 1 and taken.stderr.strip() == f"Error: {tmp_path / 'acme'} already exists"
