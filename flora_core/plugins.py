"""The plugin manager and a typed facade over it.

Built-in capabilities and third-party packages are both found through the
``flora`` entry-point group and loaded the same way. The rest of flora talks to
plugins only through :class:`Plugins`, never through ``pm.hook`` directly.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from . import hookspecs

log = logging.getLogger("flora.plugins")

ENTRY_POINT_GROUP = "flora"
OP_NAME = re.compile(r"^op_[a-z][a-z0-9_]*$")


class PluginError(Exception):
    """A plugin could not be loaded or registered something invalid."""


@dataclass
class LoadedPlugin:
    name: str
    version: str | None
    module: str
    registered: dict[str, list[str]] = field(default_factory=dict)


def _disabled() -> set[str]:
    raw = os.environ.get("FLORA_DISABLE_PLUGINS", "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def _strict() -> bool:
    return os.environ.get("FLORA_STRICT_PLUGINS", "").lower() in ("1", "true", "yes")


def build_plugin_manager(load_entry_points: bool = True) -> tuple[pluggy.PluginManager, dict[str, LoadedPlugin]]:
    """Create the manager and load every entry point of the ``flora`` group, one at a time.

    A plugin that fails to import is logged and skipped (unless
    ``FLORA_STRICT_PLUGINS`` is set, as in the tests), so one broken
    third-party package cannot take the runtime down.
    """
    pm = pluggy.PluginManager("flora")
    pm.add_hookspecs(hookspecs)
    loaded: dict[str, LoadedPlugin] = {}
    if not load_entry_points:
        return pm, loaded
    disabled = _disabled()
    seen: set[str] = set()
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in seen:
            continue
        seen.add(ep.name)
        if ep.name in disabled:
            log.info("plugin %s disabled by FLORA_DISABLE_PLUGINS", ep.name)
            continue
        try:
            module = ep.load()
            pm.register(module, name=ep.name)
        except Exception as exc:  # noqa: BLE001 - isolate broken plugins
            if _strict():
                raise PluginError(f"plugin {ep.name!r} failed to load: {exc}") from exc
            log.error("plugin %s failed to load and was skipped: %s", ep.name, exc)
            continue
        version = ep.dist.version if ep.dist is not None else None
        loaded[ep.name] = LoadedPlugin(ep.name, version, ep.value)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    return pm, loaded


class Plugins:
    """Typed access to what plugins registered."""

    def __init__(self, pm: pluggy.PluginManager | None = None, loaded: dict[str, LoadedPlugin] | None = None):
        if pm is None:
            pm, loaded = build_plugin_manager()
        self.pm = pm
        self.loaded = loaded or {}

    # -- helpers ---------------------------------------------------------
    def _plugin_name(self, impl) -> str:
        return self.pm.get_name(impl.plugin) or repr(impl.plugin)

    def _record(self, plugin: str, kind: str, what: str) -> None:
        entry = self.loaded.get(plugin)
        if entry is None:
            entry = self.loaded[plugin] = LoadedPlugin(plugin, None, plugin)
        entry.registered.setdefault(kind, []).append(what)

    def _collect(self, hook_name: str, validate: Callable[..., tuple[str, Any]], kind: str) -> dict[str, tuple[Any, str]]:
        """Call a ``flora_register_*`` hook on each plugin with its own ``register``."""
        out: dict[str, tuple[Any, str]] = {}
        caller = getattr(self.pm.hook, hook_name)
        for impl in caller.get_hookimpls():  # registration order: the first plugin wins
            plugin = self._plugin_name(impl)

            def register(*args, _plugin=plugin, **kwargs):
                key, value = validate(*args, **kwargs)
                if key in out:
                    raise PluginError(f"{kind} {key!r} from plugin {_plugin!r} is already registered by {out[key][1]!r}")
                out[key] = (value, _plugin)
                self._record(_plugin, kind, key)

            try:
                impl.function(register=register)
            except PluginError:
                raise
            except Exception as exc:  # noqa: BLE001
                if _strict():
                    raise PluginError(f"plugin {plugin!r} failed in {hook_name}: {exc}") from exc
                log.error("plugin %s failed in %s: %s", plugin, hook_name, exc)
        return out

    # -- capabilities ----------------------------------------------------
    def ops(self) -> dict[str, Callable]:
        def validate(name, fn):
            if not isinstance(name, str) or not OP_NAME.match(name):
                raise PluginError(f"invalid op name {name!r}: must match {OP_NAME.pattern}")
            if not callable(fn):
                raise PluginError(f"op {name!r} is not callable")
            return name, fn

        if not hasattr(self, "_ops"):
            self._ops = {k: v[0] for k, v in self._collect("flora_register_ops", validate, "op").items()}
        return self._ops

    def js_sources(self) -> list[tuple[str, str]]:
        def validate(name, source, order=100):
            if not isinstance(source, str):
                raise PluginError(f"js source {name!r} must be a string")
            return name, (order, source)

        if not hasattr(self, "_js"):
            found = self._collect("flora_register_js_sources", validate, "js_source")
            self._js = [(name, src) for name, ((order, src), _) in sorted(found.items(), key=lambda kv: (kv[1][0][0], kv[0]))]
        return self._js

    def event_sources(self) -> dict[str, Callable]:
        def validate(name, factory):
            if not callable(factory):
                raise PluginError(f"event source {name!r} is not callable")
            return name, factory

        if not hasattr(self, "_sources"):
            self._sources = {k: v[0] for k, v in self._collect("flora_register_event_sources", validate, "event_source").items()}
        return self._sources

    def blueprints(self) -> list:
        def validate(blueprint):
            return blueprint.name, blueprint

        if not hasattr(self, "_blueprints"):
            self._blueprints = [v[0] for v in self._collect("flora_register_blueprints", validate, "blueprint").values()]
        return self._blueprints

    def kv_backends(self) -> dict[str, Callable]:
        def validate(name, factory):
            if not isinstance(name, str) or not name:
                raise PluginError(f"invalid KV backend name {name!r}")
            if not callable(factory):
                raise PluginError(f"KV backend {name!r} is not callable")
            return name, factory

        if not hasattr(self, "_kv_backends"):
            self._kv_backends = {k: v[0] for k, v in self._collect("flora_register_kv_backends", validate, "kv_backend").items()}
        return self._kv_backends

    def isolate_globals(self, guild_id: str, services) -> dict:
        out: dict = {}
        for result in self.pm.hook.flora_isolate_globals(guild_id=guild_id, services=services):
            if result:
                out.update(result)
        return out

    def starter_files(self) -> list[dict] | None:
        return self.pm.hook.flora_starter_files()

    def storage_backend(self, url: str, config):
        return self.pm.hook.flora_storage_backend(url=url, config=config)

    def register_commands(self, cli) -> None:
        for impl in self.pm.hook.flora_register_commands.get_hookimpls():
            before = set(cli.commands)
            try:
                impl.function(cli=cli)
            except Exception as exc:  # noqa: BLE001
                if _strict():
                    raise
                log.error("plugin %s failed to add CLI commands: %s", self._plugin_name(impl), exc)
            for name in sorted(set(cli.commands) - before):
                self._record(self._plugin_name(impl), "command", name)

    # -- lifecycle -------------------------------------------------------
    def startup(self, runtime) -> None:
        self.pm.hook.flora_startup(runtime=runtime)

    def shutdown(self, runtime) -> None:
        self.pm.hook.flora_shutdown(runtime=runtime)

    def script_loaded(self, runtime, guild_id: str, load_id: str, ok: bool) -> None:
        self.pm.hook.flora_script_loaded(runtime=runtime, guild_id=guild_id, load_id=load_id, ok=ok)

    def deployment_changed(self, guild_id: str, revision: dict) -> None:
        self.pm.hook.flora_deployment_changed(guild_id=guild_id, revision=revision)

    # -- introspection ---------------------------------------------------
    def describe(self) -> list[dict]:
        """Every loaded plugin with its version and what it registered."""
        self.ops(), self.js_sources(), self.event_sources(), self.blueprints(), self.kv_backends()
        return [
            {"name": p.name, "version": p.version, "module": p.module, "registered": {k: sorted(v) for k, v in p.registered.items()}}
            for p in sorted(self.loaded.values(), key=lambda p: p.name)
        ]
