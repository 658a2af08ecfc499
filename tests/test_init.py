"""``flora init``: a project that flora dev runs at once, that type-checks and bundles, never written over."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_dev.console.app import DevSession
from flora_dev.testing import free_port


def _flora(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "flora_cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("FLORA_")},
    )


def test_init_makes_a_project_that_type_checks_and_runs_in_flora_dev(tmp_path):
    out = _flora("init", "demo", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    demo = tmp_path / "demo"
    assert sorted(p.relative_to(demo).as_posix() for p in demo.rglob("*") if p.is_file()) == [
        ".gitignore",
        "README.md",
        "flora.d.ts",
        "flora.toml",
        "src/main.ts",
        "src/utils/reply.ts",
        "tsconfig.json",
    ]
    assert "flora dev demo" in out.stdout
    # the editor's view: strict TypeScript against the declarations flora init wrote
    from deno import find_deno_bin

    (demo / "deno.json").write_text(
        json.dumps({"compilerOptions": {"lib": ["es2023"], "strict": True, "types": ["./flora.d.ts"]}})
    )
    check = subprocess.run(
        [find_deno_bin(), "check", "--unstable-sloppy-imports", "--config", "deno.json", "src/main.ts"],
        cwd=demo,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, NO_COLOR="1", DENO_DIR=str(tmp_path / "deno")),
    )
    assert check.returncode == 0, check.stderr
    (demo / "deno.json").unlink()
    # flora dev runs it at once
    session = DevSession(demo, load_config(env={"FLORA_DATA_DIR": str(tmp_path / "data")}), Plugins(), port=free_port())

    async def run() -> dict:
        await session.start()
        try:
            return session.last_deploy
        finally:
            await session.stop()

    deployed = asyncio.run(run())
    assert deployed["ok"], deployed


def test_init_never_writes_over_a_project(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.ts").write_text("// mine\n", encoding="utf-8")
    out = _flora("init", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.startswith("Error: src/main.ts exists already; flora init writes only into a new or empty project")
    assert (tmp_path / "src" / "main.ts").read_text(encoding="utf-8") == "// mine\n"
    assert not (tmp_path / "flora.toml").exists()
