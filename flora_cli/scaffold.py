"""``flora plugins new NAME``: a plugin package that works and is tested as generated.

It holds a ``pyproject.toml`` with the ``flora`` entry point, an op, a JS source that gives scripts a
friendly function for it (extending the SDK with ``__floraProvide``), its ``.d.ts`` fragment
(``flora_register_type_declarations``), a config key, and tests on flora's kit
(``flora_dev.pytest_plugin``) that deploy a script calling the op, read the bot's reply, and find the
declarations in ``flora types``.
"""

from __future__ import annotations

import re
from pathlib import Path

NAME = re.compile(r"^[a-z][a-z0-9_-]{1,40}$")


class ScaffoldError(Exception):
    pass


def _files(dist: str, pkg: str) -> dict[str, str]:
    env = pkg.upper()
    return {
        "pyproject.toml": f'''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "A flora plugin: the op op_{pkg}_greet and the script global {pkg}Greet()"
requires-python = ">=3.11"
dependencies = ["flora-runtime"]

[project.entry-points.flora]
{pkg} = "{pkg}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
{pkg} = ["*.js", "*.d.ts"]
''',
        "README.md": f"""# {dist}

A [flora](https://github.com/uwu/flora) plugin. Scripts get `{pkg}Greet(name)`:

```ts
on("messageCreate", async (ctx) => {{
  if (ctx.msg.content === "!greet") await ctx.reply(await {pkg}Greet(ctx.msg.author.username));
}});
```

The greeting is the config key `{env}_GREETING` (`[{pkg}] greeting` in `config.toml`). Declarations for
editors: `src/{pkg}/{pkg}.d.ts`, registered with flora, so `flora types -o flora.d.ts` includes them.

    pip install -e .        # next to flora
    python -m pytest -q     # flora's test kit starts a real flora against its Discord emulator
""",
        f"src/{pkg}/__init__.py": f'''"""{dist}: a flora plugin (see README.md). Hooks: docs/plugins.md in flora."""

from __future__ import annotations

from importlib import resources

from flora_core import hookimpl
from flora_core.errors import invalid


async def op_{pkg}_greet(ctx, args):
    """``{{name}}`` -> the greeting; runs in a flora worker, on its event loop."""
    name = args.get("name") if isinstance(args, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise invalid("name", "expected a non-empty string")
    return f"{{ctx.config.{pkg}_greeting}}, {{name}}!"


@hookimpl
def flora_register_ops(register):
    register("op_{pkg}_greet", op_{pkg}_greet)


@hookimpl
def flora_register_js_sources(register):
    # order 50: after the SDK (20), which {pkg}.js extends
    register("{pkg}", resources.files(__name__).joinpath("{pkg}.js").read_text(encoding="utf-8"), order=50)


@hookimpl
def flora_register_type_declarations(register):
    # what {pkg}.js gives scripts; it builds on the SDK's declarations (the `flora` object)
    register("{pkg}", resources.files(__name__).joinpath("{pkg}.d.ts"), requires=["flora:sdk"])


@hookimpl
def flora_register_config_keys(register):
    from flora_core.config import Key, text

    register(Key("{pkg}_greeting", "{pkg}.greeting", "{env}_GREETING", text, "Hello"))
''',
        f"src/{pkg}/{pkg}.js": f'''// Loaded into every guild's isolate before the guild's script: {pkg}Greet(name), a global and a
// member of `flora`, through the SDK's extension point (nothing without the sdk plugin).
(function () {{
  const provide = globalThis.__floraProvide;
  if (typeof provide !== "function") return;
  provide("{pkg}Greet", (name) => __floraOp("op_{pkg}_greet", {{ name }}));
}})();
''',
        f"src/{pkg}/{pkg}.d.ts": f"""/** Greets `name` with the server's configured greeting ({dist}). */
declare function {pkg}Greet(name: string): Promise<string>;

interface FloraSdk {{
  {pkg}Greet: typeof {pkg}Greet;
}}
""",
        "tests/test_plugin.py": f'''"""{dist} against a real flora (flora's test kit: flora_server, flora_guild)."""

import subprocess
import sys

import pytest

SCRIPT = """
on("messageCreate", async (ctx) => {{
  if (ctx.msg.author.bot) return;
  if (ctx.msg.content === "!greet") await ctx.reply(await {pkg}Greet("tester"));
  if (ctx.msg.content === "!bad") {{
    try {{ await {pkg}Greet(""); }} catch (e) {{ await ctx.reply(`${{e.code}}`); }}
  }}
}});
"""


@pytest.fixture
def flora_server_env():
    return {{"{env}_GREETING": "Howdy"}}


def test_the_op_answers_a_script(flora_server, flora_guild):
    flora_server.deploy(flora_guild.id, {{"src/main.ts": SCRIPT}})
    flora_guild.say("!greet")
    assert flora_guild.wait_reply() == "Howdy, tester!"
    flora_guild.say("!bad")
    assert flora_guild.wait_reply(count=2) == "INVALID_INPUT"


def test_the_plugin_is_loaded(flora_server):
    status, plugins = flora_server.api("GET", "/plugins")
    assert status == 200
    mine = next(p for p in plugins if p["name"] == "{pkg}")
    assert mine["registered"]["op"] == ["op_{pkg}_greet"]
    assert mine["registered"]["type_declarations"] == ["{pkg}"]


def test_flora_types_declares_the_global():
    out = subprocess.run([sys.executable, "-m", "flora_cli", "types"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "declare function {pkg}Greet(name: string): Promise<string>;" in out.stdout
''',
    }


def new_plugin(name: str, where: Path) -> Path:
    """Write the package ``flora-<name>`` into ``where/<name>``; returns that folder."""
    if not NAME.match(name):
        raise ScaffoldError(f"invalid plugin name {name!r}: use lower-case letters, digits, - and _ (e.g. acme)")
    pkg = name.replace("-", "_")
    dist = name if name.startswith("flora-") else f"flora-{name}"
    target = where / name
    if target.exists():
        raise ScaffoldError(f"{target} already exists")
    for rel, text in _files(dist, pkg).items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return target
