"""A third-party plugin, installed by pip like any package: examples/plugins/flora-hello.

It goes into a private --target folder (the shared virtualenv is not changed) that is put on
PYTHONPATH for the flora processes; flora finds it through its `flora` entry point."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import (
    BOT_TOKEN,
    IN_CI,
    ROOT,
    bot_replies,
    deploy_files,
    emulator_guild,
    http_json,
    start_flora,
    stop_flora,
    wait_for,
)

EXAMPLE = ROOT / "examples" / "plugins" / "flora-hello"

SCRIPT = """
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot || ctx.msg.content !== 'hello?') return;
  try {
    await ctx.reply(await __floraOp('op_hello', { name: 'x' }));
  } catch (e) {
    await ctx.reply(`${e.code}: ${e.message}`);
  }
});
"""


def _can_build_wheels() -> bool:
    """--no-build-isolation builds with this environment's setuptools, which needs `wheel` before setuptools 70.1."""
    if importlib.util.find_spec("wheel") is not None:
        return True
    import setuptools

    return tuple(int(x) for x in setuptools.__version__.split(".")[:2]) >= (70, 1)


@pytest.fixture(scope="module")
def hello_site(tmp_path_factory):
    if not _can_build_wheels():
        message = "pip cannot build flora-hello here: install `wheel` (part of the dev extras) or setuptools>=70.1"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    tmp = tmp_path_factory.mktemp("hello")
    source = tmp / "flora-hello"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))  # pip builds in-tree
    site = tmp / "site"
    out = subprocess.run(
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
    assert out.returncode == 0, out.stdout + out.stderr
    assert (site / "flora_hello-0.4.0.dist-info").is_dir()
    return site


def _pythonpath(site) -> str:
    return os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)


def _hello_entry(described: list[dict]) -> dict | None:
    return next((p for p in described if p["name"] == "hello"), None)


def test_flora_plugins_lists_the_installed_package(hello_site):
    assert importlib.util.find_spec("flora_hello") is None  # not in the shared environment
    env = dict(os.environ, PYTHONPATH=_pythonpath(hello_site), FLORA_STRICT_PLUGINS="1")
    out = subprocess.run(
        [sys.executable, "-m", "flora_cli", "plugins", "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert _hello_entry(json.loads(out.stdout)) == {
        "name": "hello",
        "version": "0.4.0",
        "module": "flora_hello",
        "builtin": False,
        "registered": {
            "blueprint": ["flora_hello"],
            "command": ["hello"],
            "config_key": ["HELLO_GREETING"],
            "js_source": ["hello"],
            "migrations": ["hello"],
            "op": ["op_hello"],
            "type_declarations": ["hello"],
        },
    }
    out = subprocess.run([sys.executable, "-m", "flora_cli", "plugins"], env=env, capture_output=True, text=True, timeout=120)
    assert "hello 0.4.0 (flora_hello)" in out.stdout


def test_flora_serves_the_route_and_scripts_call_the_op_until_disabled(hello_site, tmp_path):
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    g = emulator_guild(emu, "Third party")
    server = start_flora(emu, tmp_path, PYTHONPATH=_pythonpath(hello_site))
    try:
        assert http_json("GET", f"{server.api}/hello") == (200, {"hello": "world", "plugin": "flora-hello"})
        status, plugins = http_json("GET", f"{server.api}/plugins", token=server.token)
        assert status == 200 and _hello_entry(plugins)["version"] == "0.4.0"
        assert _hello_entry(plugins)["registered"]["op"] == ["op_hello"]

        server.wait_log(g["id"], "starter script deployed")
        assert deploy_files(server, g["id"], {"src/main.ts": SCRIPT})[0] == 200
        emu.user_says(g["channel_id"], g["user_id"], "hello?")
        reply = wait_for(lambda: bot_replies(emu, g["channel_id"]), message="op_hello reply")[0]
        assert reply["content"] == "hello, x!"
    finally:
        stop_flora(server)

    server = start_flora(emu, tmp_path, PYTHONPATH=_pythonpath(hello_site), FLORA_DISABLE_PLUGINS="hello")
    try:
        assert http_json("GET", f"{server.api}/hello")[0] == 404
        status, plugins = http_json("GET", f"{server.api}/plugins", token=server.token)
        assert status == 200 and _hello_entry(plugins) is None
        emu.user_says(g["channel_id"], g["user_id"], "hello?")
        reply = wait_for(lambda: bot_replies(emu, g["channel_id"])[1:], message="reply without the plugin")[0]
        assert reply["content"].startswith("OP_UNAVAILABLE: op_hello is not available")
    finally:
        stop_flora(server)
        emu.stop()
