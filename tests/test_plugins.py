"""The plugin manager: entry points, isolation of broken plugins, registration rules."""

from __future__ import annotations

import sys
import textwrap

import pytest

from flora_core import hookimpl
from flora_core.plugins import PluginError, Plugins

BUILTINS = {"sqlite_storage", "postgres_storage", "discord_gateway", "sdk", "discord_ops", "api_core"}


def test_builtins_load_through_entry_points():
    plugins = Plugins()
    assert set(plugins.loaded) >= BUILTINS
    ops = plugins.ops()
    for name in (
        "op_log",
        "op_send_message",
        "op_edit_message",
        "op_delete_message",
        "op_add_reaction",
        "op_send_interaction_response",
        "op_defer_interaction_response",
        "op_upsert_guild_commands",
    ):
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
    plugins = Plugins()
    assert "fake_broken" not in plugins.loaded and "discord_ops" in plugins.loaded
    assert "plugin fake_broken failed to load and was skipped: kaboom" in caplog.text
    monkeypatch.setenv("FLORA_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="fake_broken"):
        Plugins()


def test_misspelled_hook_disables_the_plugin_or_is_fatal_when_strict(fake_dist, monkeypatch, caplog):
    fake_dist(
        "fake_typo",
        """
        from flora_core import hookimpl
        @hookimpl
        def flora_register_opz(register):
            pass
    """,
    )
    with pytest.raises(PluginError, match="flora_register_opz"):
        Plugins()
    monkeypatch.setenv("FLORA_STRICT_PLUGINS", "0")
    plugins = Plugins()
    assert "fake_typo" not in plugins.loaded and "flora_register_opz" in plugins.failed["fake_typo"]
    assert "op_send_message" in plugins.ops()


def test_third_party_op_is_recorded_with_its_version(fake_dist):
    fake_dist(
        "fake_hello",
        """
        from flora_core import hookimpl
        async def op_hello(ctx, args):
            return "hi"
        @hookimpl
        def flora_register_ops(register):
            register("op_hello", op_hello)
    """,
    )
    plugins = Plugins()
    assert "op_hello" in plugins.ops()
    entry = {p["name"]: p for p in plugins.describe()}["fake_hello"]
    assert entry["version"] == "1.2.3" and entry["registered"] == {"op": ["op_hello"]} and entry["builtin"] is False
    assert {p["name"]: p for p in plugins.describe()}["discord_ops"]["builtin"] is True


DUPLICATE = """
    from flora_core import hookimpl
    async def op_send_message(ctx, args):
        return None
    async def op_fake_extra(ctx, args):
        return None
    @hookimpl
    def flora_register_ops(register):
        register("op_fake_extra", op_fake_extra)
        register("op_send_message", op_send_message)
"""


def test_a_duplicate_op_disables_the_third_party_plugin_and_the_built_in_keeps_it(fake_dist, monkeypatch, caplog):
    fake_dist("fake_aaa_dup", DUPLICATE)  # sorts before every built-in: load order, not names, decides
    monkeypatch.setenv("FLORA_STRICT_PLUGINS", "0")
    plugins = Plugins()
    line = "plugin fake_aaa_dup was disabled: its op 'op_send_message' is already registered by discord_ops"
    assert plugins.failed == {"fake_aaa_dup": line} and line in caplog.text
    assert "fake_aaa_dup" not in plugins.loaded and "op_fake_extra" not in plugins.ops()
    assert plugins.ops()["op_send_message"].__module__.startswith("flora_plugins.discord_ops")
    monkeypatch.setenv("FLORA_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match=line):
        Plugins()


class BadName:
    @hookimpl
    def flora_register_ops(self, register):
        register("sendMessage", lambda ctx, args: None)


class Raises:
    @hookimpl
    def flora_register_js_sources(self, register):
        raise RuntimeError("no JS today")


@pytest.mark.parametrize(
    "plugin,message",
    [
        (BadName(), "plugin bad: invalid op name 'sendMessage'"),
        (Raises(), "plugin bad was disabled: it failed in flora_register_js_sources: no JS today"),
    ],
)
def test_bad_registrations_disable_the_plugin(plugin, message, monkeypatch):
    monkeypatch.setenv("FLORA_STRICT_PLUGINS", "0")
    plugins = Plugins()
    plugins.add(plugin, "bad")
    plugins._settle()
    assert plugins.failed["bad"].startswith(message) and "bad" not in plugins.loaded
    assert "op_send_message" in plugins.ops() and plugins.js_sources()


class Declares:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    @hookimpl
    def flora_register_type_declarations(self, register):
        register(*self.args, **self.kwargs)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((5, "declare const x: 1"), {}, "plugin bad: invalid type declarations name 5"),
        (("x", 5), {}, "plugin bad: type declarations 'x' must be a string or a path to a .d.ts file"),
        (("x", "declare const x: 1"), {"requires": "flora:sdk"}, "plugin bad: type declarations 'x': requires must be a list"),
        (
            ("flora:kv", "declare const x: 1"),
            {},
            "plugin bad was disabled: its type_declarations 'flora:kv' is already registered by kv",
        ),
    ],
)
def test_bad_type_declarations_disable_the_plugin(args, kwargs, message, monkeypatch):
    monkeypatch.setenv("FLORA_STRICT_PLUGINS", "0")
    plugins = Plugins()
    plugins.add(Declares(*args, **kwargs), "bad")
    plugins._settle()
    assert plugins.failed["bad"].startswith(message) and "bad" not in plugins.loaded
    assert "flora:kv" in dict(plugins.type_declarations())


def test_type_declarations_are_read_when_assembled_and_need_what_they_require(tmp_path, monkeypatch):
    from flora_core.declarations import HEADER, assemble

    monkeypatch.setenv("FLORA_STRICT_PLUGINS", "0")
    (tmp_path / "hello.d.ts").write_text("declare function hello(): string\n", encoding="utf-8")
    plugins = Plugins()
    plugins.add(Declares("acme:hello", tmp_path / "hello.d.ts", requires=["flora:sdk"]), "hello")
    plugins.add(Declares("acme:more", "interface FloraSdk { more: 1 }", requires=["acme:hello"]), "more")
    plugins.add(Declares("acme:gone", tmp_path / "gone.d.ts"), "gone")
    plugins._settle()
    text = assemble(plugins)
    assert text.startswith(HEADER) and "declare function __floraOp" in text
    assert "// ---- acme:hello (plugin hello) ----\ndeclare function hello(): string\n" in text
    assert "interface FloraSdk { more: 1 }" in text and "acme:gone" not in text
    assert (
        plugins.failed["gone"]
        == "plugin gone was disabled: cannot read its type declarations 'acme:gone': No such file or directory"
    )
    assert {p["name"]: p for p in plugins.describe()}["hello"]["registered"] == {"type_declarations": ["acme:hello"]}

    monkeypatch.setenv("FLORA_DISABLE_PLUGINS", "sdk")
    bare = Plugins()
    bare.add(Declares("acme:hello", tmp_path / "hello.d.ts", requires=["flora:sdk"]), "hello")
    bare.add(Declares("acme:more", "interface FloraSdk { more: 1 }", requires=["acme:hello"]), "more")
    # without the SDK nothing that builds on it is declared: not the plugins' fragments, not what needs them
    assert bare.type_declarations() == []


def test_hooks_go_through_pluggy_tryfirst_and_wrappers_work():
    """The facade calls pm.hook: a tryfirst implementation runs first even when registered first
    (pluggy otherwise calls the latest first), and a wrapper sees every result."""
    from types import SimpleNamespace

    import flora_plugins.secrets as secrets

    calls: list = []

    class Early:
        @hookimpl(tryfirst=True)
        def flora_isolate_globals(self, guild_id, services):
            calls.append("early")
            return {"early": 1}

    class Plain:
        @hookimpl
        def flora_isolate_globals(self, guild_id, services):
            calls.append("plain")
            return {"plain": 2}

    class Wrapper:
        @hookimpl(wrapper=True)
        def flora_isolate_globals(self, guild_id, services):
            calls.append("wrapper-before")
            results = yield
            calls.append(("wrapper-after", results))
            return results

    plugins = Plugins(entry_points=False)
    plugins.add(Early(), "early")
    plugins.add(Plain(), "plain-first")
    plugins.add(secrets, "secrets")
    plugins.add(Wrapper(), "wrapper")
    merged = plugins.isolate_globals("1", SimpleNamespace(resources={}))
    # "early" was registered first: only tryfirst puts it before the others (pluggy calls the latest
    # first), here before the built-in secrets plugin's implementation (no database here: no names)
    assert calls == ["wrapper-before", "early", "plain", ("wrapper-after", [{"early": 1}, {}, {"plain": 2}])]
    assert merged == {"early": 1, "plain": 2}


def test_trace_prints_every_hook_call(monkeypatch, capsys):
    monkeypatch.setenv("FLORA_TRACE_PLUGINS", "1")
    plugins = Plugins()
    plugins.starter_files()
    assert "flora_starter_files" in capsys.readouterr().err


def test_a_plugin_declares_a_hook_that_another_implements():
    """flora_add_hookspecs, as pytest's pytest_addhooks: order of registration does not matter."""
    import types

    import pluggy

    spec = pluggy.HookspecMarker("flora")
    specs = types.ModuleType("acme_specs")

    @spec
    def flora_acme_greeting(name: str) -> str:
        """Return a greeting for ``name``."""

    specs.flora_acme_greeting = flora_acme_greeting

    class Implementer:
        @hookimpl
        def flora_acme_greeting(self, name):
            return f"hi {name}"

    class Declarer:
        @hookimpl
        def flora_add_hookspecs(self, pm):
            pm.add_hookspecs(specs)

    plugins = Plugins()
    plugins.add(Implementer(), "implementer")  # before the spec exists: pending until check
    plugins.add(Declarer(), "declarer")
    plugins._check_pending()
    assert plugins.failed == {} and plugins.hook.flora_acme_greeting(name="x") == ["hi x"]


def test_a_registration_hook_a_plugin_declares_gets_the_hosts_rules(monkeypatch):
    """flora_core.plugins.registration: collected at start, validated, clashes disable the later plugin,
    `flora plugins` lists the names (as the kv plugin's flora_register_kv_backends)."""
    import types

    import pluggy

    from flora_core.plugins import registration

    spec = pluggy.HookspecMarker("flora")

    def check(name, colour):
        if colour not in ("red", "blue"):
            raise ValueError(f"paint {name!r}: unknown colour {colour!r}")
        return name, colour

    specs = types.ModuleType("acme_specs")

    @registration("paint", check)
    @spec
    def flora_register_paints(register):
        """Paints (every process)."""

    specs.flora_register_paints = flora_register_paints

    class Declares:
        @hookimpl
        def flora_add_hookspecs(self, pm):
            pm.add_hookspecs(specs)

    class Paints:
        def __init__(self, *args):
            self.args = args

        @hookimpl
        def flora_register_paints(self, register):
            register(*self.args)

    monkeypatch.setenv("FLORA_STRICT_PLUGINS", "0")
    plugins = Plugins()
    plugins.add(Paints("sky", "blue"), "first")  # registered before the spec exists: pluggy keeps it
    plugins.add(Declares(), "acme")
    plugins.add(Paints("sky", "red"), "second")
    plugins.add(Paints("grass", "green"), "bad")
    plugins._settle()
    assert plugins.collected("flora_register_paints") == {"sky": "blue"}
    assert plugins.failed["second"] == "plugin second was disabled: its paint 'sky' is already registered by first"
    assert plugins.failed["bad"] == "plugin bad: paint 'grass': unknown colour 'green'"
    assert {p["name"]: p for p in plugins.describe()}["first"]["registered"] == {"paint": ["sky"]}
    assert plugins.collected("flora_register_nothing_declared") == {}


def test_kv_backends_are_the_kv_plugins_hook_and_idle_while_it_is_disabled(monkeypatch):
    from flora_core import hookspecs
    from flora_plugins.kv.backends import installed_backends

    assert not hasattr(hookspecs, "flora_register_kv_backends")
    plugins = Plugins()
    assert {"sqlite", "postgres", "redis"} <= set(installed_backends(plugins))
    assert {p["name"]: p for p in plugins.describe()}["kv_sqlite"]["registered"] == {"kv_backend": ["sqlite"]}
    monkeypatch.setenv("FLORA_DISABLE_PLUGINS", "kv")
    quiet = Plugins()  # strict (conftest): the backends' optional hook is no error
    assert "kv_sqlite" in quiet.loaded and installed_backends(quiet) == {}
    assert not hasattr(quiet.hook, "flora_register_kv_backends") or quiet.hook.flora_register_kv_backends.spec is None
