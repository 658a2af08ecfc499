"""The documentation keeps up with the code: every hook in docs/plugins.md with its exact signature
and a test that uses it (the core's, and those the built-in plugins declare with flora_add_hookspecs),
every configuration key in docs/configuration.md (as datasette checks its plugin hooks and settings)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from flora_core import hookspecs
from flora_core.config import all_keys, reference_table
from flora_core.plugins import Plugins
from flora_dev.console import hookspecs as console_hookspecs

ROOT = Path(__file__).resolve().parent.parent
PLUGINS_MD = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
# flora's hooks, and the hooks flora's own packages declare at start (the console's)
SPEC_MODULES = (hookspecs, console_hookspecs)
FLORA_HOOKS = {
    name: fn
    for module in SPEC_MODULES
    for name, fn in vars(module).items()
    if name.startswith("flora_") and callable(fn) and hasattr(fn, "flora_spec")
}
# hooks the built-in plugins declare (flora_add_hookspecs): every spec pluggy holds that is not one of those
PLUGIN_HOOKS = {
    name: caller.spec.function
    for name, caller in vars(Plugins().pm.hook).items()
    if getattr(caller, "spec", None) is not None
    and name not in FLORA_HOOKS
    and caller.spec.function.__module__.startswith("flora_plugins.")
}
SPECS = {**FLORA_HOOKS, **PLUGIN_HOOKS}
HOOKS = sorted(SPECS)


def signature(name: str) -> str:
    fn = SPECS[name]
    params = ", ".join(f"{p}: {a}" for p, a in fn.__annotations__.items() if p != "return")
    return f"{name}({params}) -> {fn.__annotations__['return']}"


def test_there_are_hooks_to_check():
    assert len(HOOKS) >= 14 and "flora_register_ops" in HOOKS
    assert PLUGIN_HOOKS["flora_register_kv_backends"].__module__ == "flora_plugins.kv.hookspecs"


def test_the_core_declares_nothing_of_kv():
    assert "kv" not in (ROOT / "flora_core" / "hookspecs.py").read_text(encoding="utf-8").lower()


@pytest.mark.parametrize("hook", sorted(PLUGIN_HOOKS))
def test_a_hook_a_plugin_declares_says_which_plugin_declares_it(hook):
    module = PLUGIN_HOOKS[hook].__module__.replace(".", "/") + ".py"
    section = PLUGINS_MD.split(f"### `{signature(hook)}`", 1)[1].split("\n### ", 1)[0]
    assert f"`{module}`" in section, f"the section of {hook} does not name {module}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_with_its_exact_signature(hook):
    assert f"### `{signature(hook)}`" in PLUGINS_MD, f"docs/plugins.md has no heading for {signature(hook)}"


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_docstring_saying_where_it_runs(hook):
    doc = inspect.getdoc(SPECS[hook]) or ""
    assert re.search(r"supervisor|worker|API|CLI|every process|flora dev", doc), hook


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_used_by_a_test(hook):
    """A test (other than this file) implements or calls it, or a plugin it exercises does."""
    tests = [p for p in (ROOT / "tests").rglob("*.py") if p.name != "test_docs.py"]
    users = [p for p in tests if hook in p.read_text(encoding="utf-8")]
    implemented_by = [p for p in (ROOT / "flora_plugins").rglob("*.py") if f"def {hook}(" in p.read_text(encoding="utf-8")]
    assert users or implemented_by, f"no test uses {hook} and no built-in plugin implements it"


def test_no_documented_hook_is_missing_from_the_code():
    documented = set(re.findall(r"^### `(flora_\w+)\(", PLUGINS_MD, re.M))
    assert documented == set(HOOKS)


def test_the_configuration_reference_matches_the_code():
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert reference_table(all_keys()) in doc, "regenerate the table: python -m flora_core.config"
    for key in all_keys():
        assert f"`{key.env}`" in doc
