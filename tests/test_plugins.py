"""The plugin manager: entry points, isolation of broken plugins, registration rules."""

from __future__ import annotations

import sys
import textwrap

import pytest

from flora_core import hookimpl
from flora_core.plugins import PluginError, Plugins, build_plugin_manager

BUILTINS = {"sqlite_storage", "postgres_storage", "discord_gateway", "sdk", "discord_ops", "api_core"}


def test_builtins_load_through_entry_points():
    plugins = Plugins()
    assert BUILTINS <= set(plugins.loaded)
    ops = plugins.ops()
    for name in ("op_log", "op_send_message", "op_edit_message", "op_delete_message", "op_add_reaction",
                 "op_send_interaction_response", "op_defer_interaction_response", "op_upsert_guild_commands"):
        assert name in ops
    described = {p["name"]: p for p in plugins.describe()}
    assert "op_send_message" in described["discord_ops"]["registered"]["op"]
    assert described["discord_ops"]["version"] == "0.1.0"
    assert [n for n, _ in plugins.js_sources()][:3] == ["flora:web", "flora:prelude", "flora:sdk"]
    assert "discord" in plugins.event_sources()


def test_disable_plugins_env(monkeypatch):
    monkeypatch.setenv("FLORA_DISABLE_PLUGINS", "discord_ops, sdk")
    plugins = Plugins()
    assert "discord_ops" not in plugins.loaded and "sdk" not in plugins.loaded
    assert "op_send_message" not in plugins.ops()


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """Install a distribution on sys.path the way pip would lay out its metadata."""

    def make(name: str, module_source: str):
        pkg = tmp_path / f"{name}.py"
        pkg.write_text(textwrap.dedent(module_source))
        info = tmp_path / f"{name}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[flora]\n{name} = {name}\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        return name

    yield make
    for mod in [m for m in sys.modules if m.startswith("fake_")]:
        del sys.modules[mod]


def test_broken_plugin_is_skipped_unless_strict(fake_dist, monkeypatch, caplog):
    fake_dist("fake_broken", "raise RuntimeError('kaboom')\n")
    monkeypatch.setenv("FLORA_STRICT_PLUGINS", "0")
    pm, loaded = build_plugin_manager()
    assert "fake_broken" not in loaded and "discord_ops" in loaded
    assert "plugin fake_broken failed to load and was skipped: kaboom" in caplog.text
    monkeypatch.setenv("FLORA_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="fake_broken"):
        build_plugin_manager()


def test_misspelled_hook_fails_loudly(fake_dist):
    fake_dist("fake_typo", """
        from flora_core import hookimpl
        @hookimpl
        def flora_register_opz(register):
            pass
    """)
    with pytest.raises(PluginError, match="flora_register_opz"):
        build_plugin_manager()


def test_third_party_op_is_recorded_with_its_version(fake_dist):
    fake_dist("fake_hello", """
        from flora_core import hookimpl
        async def op_hello(ctx, args):
            return "hi"
        @hookimpl
        def flora_register_ops(register):
            register("op_hello", op_hello)
    """)
    plugins = Plugins()
    assert "op_hello" in plugins.ops()
    entry = {p["name"]: p for p in plugins.describe()}["fake_hello"]
    assert entry["version"] == "1.2.3" and entry["registered"] == {"op": ["op_hello"]}


class Duplicate:
    @hookimpl
    def flora_register_ops(self, register):
        async def op_send_message(ctx, args):
            return None

        register("op_send_message", op_send_message)


class BadName:
    @hookimpl
    def flora_register_ops(self, register):
        register("sendMessage", lambda ctx, args: None)


@pytest.mark.parametrize("plugin,message", [
    (Duplicate(), "op 'op_send_message' from plugin 'dup' is already registered by 'discord_ops'"),
    (BadName(), "invalid op name 'sendMessage'"),
])
def test_bad_registrations_are_rejected(plugin, message):
    pm, loaded = build_plugin_manager()
    pm.register(plugin, name="dup")
    try:
        with pytest.raises(PluginError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Plugins(pm, loaded).ops()
    finally:
        pm.unregister(plugin)
