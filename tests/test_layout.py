"""The layout holds: the core is a host only, the CLI never needs the server package or Flask.

Every import statement of every module is read (function-level imports too), so a lazy import
cannot hide a dependency that points the wrong way.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> packages of this repository it must never import
FORBIDDEN = {
    "flora_core": {"flora_plugins", "flora_http", "flora_cli", "flora_dev", "flora_sdk"},
    "flora_plugins": {"flora_dev"},
    "flora_http": {"flora_cli", "flora_dev"},
    "flora_cli": {"flora_http"},
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _violations(package: str, forbidden: set[str]) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, name in _imports(path):
            if name.split(".")[0] in forbidden:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_points_the_wrong_way(package):
    assert _violations(package, FORBIDDEN[package]) == []


def test_the_walker_sees_lazy_imports(tmp_path, monkeypatch):
    """The check above cannot pass by not looking: a function-level import is found."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from flora_plugins.kv import ops\n", encoding="utf-8")
    assert _imports(module) == [(2, "flora_plugins.kv")]


def test_the_cli_never_loads_flask_the_server_or_v8():
    """The client commands (``flora plugins`` describes the server's own blueprints, so it may)."""
    code = (
        "import sys\n"
        "from flora_cli.main import main\n"
        "for argv in (['deploy', '--help'], ['logs', '--help'], ['deployments', 'list', '--help'], ['login', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'gevent', 'py_mini_racer')\n"
        "             or (m.startswith('flora_http.') and m != 'flora_http.plugin'))\n"
        "print('LOADED', bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert "LOADED []" in out.stdout, out.stdout + out.stderr


def test_every_built_in_plugin_lives_in_flora_plugins_or_its_own_package():
    """Built-ins are registered exactly like third-party plugins, from outside the core."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    entries = [line.split("=", 1) for line in cfg["options.entry_points"]["flora"].strip().splitlines()]
    modules = {name.strip(): target.strip() for name, target in entries}
    assert modules, "no entry points in the flora group"
    for name, target in modules.items():
        assert not target.startswith("flora_core"), f"plugin {name} lives in the core: {target}"
        assert target.split(".")[0] in ("flora_plugins", "flora_http"), f"plugin {name}: {target}"
