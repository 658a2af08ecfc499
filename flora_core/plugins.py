"""The plugin manager and a typed facade over it.

Built-in capabilities and third-party packages are both found through the ``flora`` entry-point
group and loaded the same way (built-ins, the entry points of the ``flora-runtime`` distribution,
first; then the others by name). The rest of flora talks to plugins only through :class:`Plugins`,
which calls every hook through pluggy (``pm.hook.<name>(...)``), so ``tryfirst``/``trylast``,
wrappers and pluggy's call tracing work (``FLORA_TRACE_PLUGINS=1`` prints every hook call).

A broken plugin never takes the host down: an import error, an exception inside one of its hooks,
or a clash (an op, JS source, type declarations, event source, config key or a name of a registration
hook a plugin declares, e.g. the kv plugin's KV backends, that another plugin already registered)
disables that plugin with one line naming it and what went wrong, and the host goes on without it.
On a clash the plugin loaded later loses, so a built-in always keeps its names. With
``FLORA_STRICT_PLUGINS=1`` (the tests) the same line is fatal instead (:class:`PluginError`, exit 2).
"""

from __future__ import annotations

import contextvars
import functools
import importlib.metadata
import logging
import os
import re
import sys
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs

log = logging.getLogger("flora.plugins")

ENTRY_POINT_GROUP = "flora"
DISTRIBUTION = "flora-runtime"  # whose entry points are the built-ins
REPORTED_ENV = "FLORA_PLUGIN_PROBLEMS_REPORTED"
OP_NAME = re.compile(r"^op_[a-z][a-z0-9_]*$")
_said: set[str] = set()  # problem lines this process has logged (several Plugins() may meet the same one)
_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("flora_plugin", default=None)


class PluginError(Exception):
    """A plugin could not be loaded or registered something invalid (one line, names the plugin)."""


@dataclass
class LoadedPlugin:
    name: str
    version: str | None
    module: str
    builtin: bool = False
    registered: dict[str, list[str]] = field(default_factory=dict)


def _disabled() -> set[str]:
    raw = os.environ.get("FLORA_DISABLE_PLUGINS", "")
    return {p.strip() for p in raw.split(",") if p.strip()}


def strict() -> bool:
    return os.environ.get("FLORA_STRICT_PLUGINS", "").lower() in ("1", "true", "yes")


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    """The ``flora`` entry points, built-ins first, then by name; the first of a duplicated name wins."""
    seen: set[str] = set()
    found = []
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (not _is_builtin(e), e.name)):
        if ep.name not in seen:
            seen.add(ep.name)
            found.append(ep)
    return found


def _is_builtin(ep: importlib.metadata.EntryPoint) -> bool:
    return ep.dist is not None and ep.dist.name == DISTRIBUTION


def registration(kind: str, validate: Callable[..., tuple[str, Any]] | None = None):
    """Mark a hookspec a plugin declares (``flora_add_hookspecs``) as a registration hook like the core's
    ``flora_register_*``: its ``register`` is collected at start in every process, what is registered is
    validated and recorded as ``kind`` (``flora plugins`` shows it), and a name another plugin registered
    first disables the plugin loaded later. ``validate(*args, **kwargs)`` returns ``(name, value)`` or
    raises ``ValueError`` with a short reason; by default ``register(name, value)`` with a non-empty name.
    Read the result with :meth:`Plugins.collected`."""

    def mark(spec: Callable) -> Callable:
        spec.flora_registration = (kind, validate)  # type: ignore[attr-defined]
        return spec

    return mark


def _named(kind: str) -> Callable[..., tuple[str, Any]]:
    def validate(name, value=None, *rest):
        if not isinstance(name, str) or not name:
            raise ValueError(f"invalid {kind} name {name!r}")
        if rest:
            raise ValueError(f"{kind} {name!r}: register(name, value) takes one value")
        return name, value

    return validate


class _Disable(Exception):
    """Raised inside a collection to disable the plugin named and start over."""

    def __init__(self, plugin: str, reason: str):
        super().__init__(reason)
        self.plugin = plugin
        self.reason = reason


class Plugins:
    """Typed access to what plugins registered, and the one caller of hooks."""

    def __init__(self, *, entry_points: bool = True):
        self.pm = pluggy.PluginManager("flora")
        self.pm.add_hookspecs(hookspecs)
        self.loaded: dict[str, LoadedPlugin] = {}
        self.failed: dict[str, str] = {}  # plugin -> the line that disabled it
        self._order: dict[str, int] = {}
        self._cache: dict[str, Any] = {}
        if os.environ.get("FLORA_TRACE_PLUGINS", "").lower() in ("1", "true", "yes"):
            self.pm.trace.root.setwriter(lambda text: sys.stderr.write(f"flora plugins: {text}"))
            self.pm.enable_tracing()
        # historic: every plugin registered from now on gets it at registration, before its other hooks
        self.pm.hook.flora_add_hookspecs.call_historic(kwargs={"pm": self.pm})
        if entry_points:
            self._load_entry_points()
        self._check_pending()
        self._settle()
        if entry_points:
            from .config import remember_plugin_keys

            remember_plugin_keys(self.config_keys())
        os.environ.setdefault(REPORTED_ENV, str(os.getpid()))

    # -- loading -------------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        disabled = _disabled()
        for ep in _entry_points():
            if ep.name in disabled:
                log.info("plugin %s disabled by FLORA_DISABLE_PLUGINS", ep.name)
                continue
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - isolate broken plugins
                self._fail(ep.name, f"plugin {ep.name} failed to load and was skipped: {exc}", loaded=False)
                continue
            version = ep.dist.version if ep.dist is not None else None
            self.add(module, ep.name, version=version, module=ep.value, builtin=_is_builtin(ep))

    def add(
        self, plugin: object, name: str, *, version: str | None = None, module: str | None = None, builtin: bool = False
    ) -> None:
        """Register ``plugin`` (a module or an object with hook implementations) under ``name``."""
        try:
            self.pm.register(_guarded(self, name, plugin), name=name)
        except (pluggy.PluginValidationError, ValueError) as exc:
            self._fail(name, f"plugin {name} was not loaded: {exc}", loaded=False)
            return
        self._order[name] = len(self._order)
        shown = module or str(getattr(plugin, "__name__", type(plugin).__name__))
        self.loaded[name] = LoadedPlugin(name, version, shown, builtin)
        self._cache.clear()

    def remove(self, name: str) -> None:
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.loaded.pop(name, None)
        self._cache.clear()

    def _check_pending(self) -> None:
        """A hook implementation with no spec (a misspelled hook name) disables its plugin."""
        for _ in range(len(self.loaded) + 1):
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                offender = (self.pm.get_name(exc.plugin) if exc.plugin is not None else None) or "?"
                self._fail(offender, f"plugin {offender}: {exc}")

    def _fail(self, plugin: str, line: str, *, loaded: bool = True) -> None:
        """Disable ``plugin`` with ``line`` (fatal when strict)."""
        if strict():
            raise PluginError(line)
        # said once per process tree: the processes a reporting one starts (workers, the API) stay quiet
        reported = os.environ.get(REPORTED_ENV, str(os.getpid())) != str(os.getpid()) or line in _said
        _said.add(line)
        log.log(logging.DEBUG if reported else logging.ERROR, "%s", line)
        self.failed[plugin] = line
        if loaded:
            self.remove(plugin)

    # -- registration hooks --------------------------------------------------------------------
    def _settle(self) -> None:
        """Collect every process-independent registration once, so that a clash disables the same
        plugin in every process (supervisor, workers, API, CLI) before anything uses it."""
        for _ in range(len(self.loaded) + 1):
            try:
                self.ops(), self.js_sources(), self._type_declarations(), self.event_sources()
                self.config_keys(), self.migrations()
                for hook_name in self._registration_hooks():
                    self.collected(hook_name)
                return
            except _Disable as exc:
                self._fail(exc.plugin, exc.reason)

    def _collect(self, hook_name: str, validate: Callable[..., tuple[str, Any]], kind: str) -> dict[str, tuple[Any, str]]:
        """Call a ``flora_register_*`` hook through pluggy; ``register`` records who registered what."""
        if hook_name in self._cache:
            return self._cache[hook_name]
        out: dict[str, tuple[Any, str]] = {}
        records: list[tuple[str, str]] = []

        def register(*args, **kwargs):
            plugin = _current.get() or "?"
            try:
                key, value = validate(*args, **kwargs)
            except PluginError as exc:
                raise _Disable(plugin, f"plugin {plugin}: {exc}") from None
            if key in out:
                owner = out[key][1]
                # the plugin loaded later loses (pluggy calls the latest first, so it may be either)
                loser, winner = (plugin, owner) if self._rank(plugin) > self._rank(owner) else (owner, plugin)
                raise _Disable(loser, f"plugin {loser} was disabled: its {kind} {key!r} is already registered by {winner}")
            out[key] = (value, plugin)
            records.append((plugin, key))

        self._call(hook_name, register=register)
        for plugin, key in records:
            self._record(plugin, kind, key)
        self._cache[hook_name] = out
        return out

    def _rank(self, plugin: str) -> int:
        return self._order.get(plugin, len(self._order))

    @property
    def hook(self):
        """pluggy's hook relay, for the hooks plugins declare themselves (``flora_add_hookspecs``)."""
        return self.pm.hook

    def _call(self, hook_name: str, **kwargs):
        return getattr(self.pm.hook, hook_name)(**kwargs)

    def _record(self, plugin: str, kind: str, what: str) -> None:
        entry = self.loaded.get(plugin)
        if entry is not None and what not in entry.registered.setdefault(kind, []):
            entry.registered[kind].append(what)

    # -- capabilities --------------------------------------------------------------------------
    def ops(self) -> dict[str, Callable]:
        def validate(name, fn):
            if not isinstance(name, str) or not OP_NAME.match(name):
                raise PluginError(f"invalid op name {name!r}: must match {OP_NAME.pattern}")
            if not callable(fn):
                raise PluginError(f"op {name!r} is not callable")
            return name, fn

        return {k: v[0] for k, v in self._collect("flora_register_ops", validate, "op").items()}

    def js_sources(self) -> list[tuple[str, str]]:
        def validate(name, source, order=100):
            if not isinstance(source, str):
                raise PluginError(f"js source {name!r} must be a string")
            return name, (order, source)

        found = self._collect("flora_register_js_sources", validate, "js_source")
        return [(name, src) for name, ((order, src), _) in sorted(found.items(), key=lambda kv: (kv[1][0][0], kv[0]))]

    def _type_declarations(self) -> dict[str, tuple[Any, str]]:
        def validate(name, declarations, requires=()):
            if not isinstance(name, str) or not name:
                raise PluginError(f"invalid type declarations name {name!r}")
            if not isinstance(declarations, str) and not callable(getattr(declarations, "read_text", None)):
                raise PluginError(f"type declarations {name!r} must be a string or a path to a .d.ts file")
            if isinstance(requires, str) or not all(isinstance(r, str) for r in requires):
                raise PluginError(f"type declarations {name!r}: requires must be a list of declaration names")
            return name, (declarations, tuple(requires))

        return self._collect("flora_register_type_declarations", validate, "type_declarations")

    def type_declarations(self) -> list[tuple[str, str]]:
        """``[(name, text)]`` of the plugins' TypeScript declarations, by name. A path is read here, not
        at start; one that cannot be read disables its plugin. Declarations whose ``requires`` are not all
        there (their plugin is disabled) are left out: they build on names nobody declares."""
        for _ in range(len(self.loaded) + 1):
            found = self._type_declarations()
            present = set(found)
            while True:  # what requires something left out is left out too
                gone = {n for n in present if not set(found[n][0][1]) <= present}
                if not gone:
                    break
                present -= gone
            out = []
            for name in sorted(present):
                (declarations, _), plugin = found[name]
                if not isinstance(declarations, str):
                    try:
                        declarations = declarations.read_text(encoding="utf-8")
                    except (OSError, UnicodeDecodeError) as exc:
                        self._fail(
                            plugin,
                            f"plugin {plugin} was disabled: cannot read its type declarations "
                            f"{name!r}: {getattr(exc, 'strerror', None) or exc}",
                        )
                        break
                out.append((name, declarations))
            else:
                return out
        return []

    def event_sources(self) -> dict[str, Callable]:
        def validate(name, factory):
            if not callable(factory):
                raise PluginError(f"event source {name!r} is not callable")
            return name, factory

        return {k: v[0] for k, v in self._collect("flora_register_event_sources", validate, "event_source").items()}

    def _registration_hooks(self) -> list[str]:
        """The declared hooks marked with :func:`registration` (plugins' own registration hooks)."""
        found = []
        for name, caller in vars(self.pm.hook).items():
            spec = getattr(caller, "spec", None)
            if spec is not None and getattr(spec.function, "flora_registration", None) is not None:
                found.append(name)
        return sorted(found)

    def collected(self, hook_name: str) -> dict[str, Any]:
        """``{name: value}`` registered through a registration hook a plugin declared (:func:`registration`),
        e.g. ``collected("flora_register_kv_backends")``; empty when no enabled plugin declares the hook."""
        caller = getattr(self.pm.hook, hook_name, None)
        spec = getattr(caller, "spec", None)
        marker = getattr(spec.function, "flora_registration", None) if spec is not None else None
        if marker is None:
            return {}
        kind, check = marker
        check = check or _named(kind)

        def validate(*args, **kwargs):
            try:
                return check(*args, **kwargs)
            except ValueError as exc:
                raise PluginError(str(exc)) from None

        return {k: v[0] for k, v in self._collect(hook_name, validate, kind).items()}

    def config_keys(self) -> list:
        """Keys plugins add to the configuration; one that reuses a core key's name disables its plugin."""
        from .config import KEYS, Key

        def validate(key):
            if not isinstance(key, Key):
                raise PluginError(f"config key {key!r} is not a flora_core.config.Key")
            for core in KEYS:
                if key.attr == core.attr or key.env == core.env or key.toml == core.toml:
                    raise PluginError(f"config key {key.env} clashes with flora's own {core.env}")
            return key.env, key

        return [v[0] for v in self._collect("flora_register_config_keys", validate, "config_key").values()]

    def migrations(self) -> list[tuple[str, Any]]:
        """``[(plugin, folder)]`` in load order (built-ins first)."""

        def validate(folder):
            if not hasattr(folder, "joinpath"):
                raise PluginError(f"migrations folder {folder!r} must be a path")
            return _current.get() or "?", folder

        found = self._collect("flora_register_migrations", validate, "migrations")
        return sorted(((plugin, folder) for plugin, (folder, _) in found.items()), key=lambda pf: self._rank(pf[0]))

    def blueprints(self) -> list:
        """The API's blueprints; a plugin whose blueprint name clashes is disabled (in the API process)."""

        def validate(blueprint):
            return blueprint.name, blueprint

        for _ in range(len(self.loaded) + 1):
            try:
                return [v[0] for v in self._collect("flora_register_blueprints", validate, "blueprint").values()]
            except _Disable as exc:
                self._fail(exc.plugin, exc.reason)
        return []

    def isolate_globals(self, guild_id: str, services) -> dict:
        out: dict = {}
        for result in self._call("flora_isolate_globals", guild_id=guild_id, services=services):
            if result:
                out.update(result)
        return out

    def isolate_built(self, guild_id: str, load_id: str, services) -> None:
        self._call("flora_isolate_built", guild_id=guild_id, load_id=load_id, services=services)

    def storage_backend(self, url: str, config):
        return self._call("flora_storage_backend", url=url, config=config)

    def starter_files(self) -> list[dict] | None:
        return self._call("flora_starter_files")

    def runtime_bus(self, config):
        """The bus a plugin provides (``flora_runtime_bus``), or ``None`` for the embedded one."""
        return self._call("flora_runtime_bus", config=config)

    def register_commands(self, cli) -> None:
        """Let plugins add CLI commands to the ``flora`` group ``cli``; a plugin that fails, or adds a
        command whose name is taken, is disabled (its commands are taken back)."""
        self._call("flora_register_commands", cli=cli)

    # -- lifecycle -------------------------------------------------------------------------------
    def startup(self, runtime) -> None:
        self._call("flora_startup", runtime=runtime)

    def shutdown(self, runtime) -> None:
        self._call("flora_shutdown", runtime=runtime)

    def script_loaded(self, runtime, guild_id: str, load_id: str, ok: bool) -> None:
        self._call("flora_script_loaded", runtime=runtime, guild_id=guild_id, load_id=load_id, ok=ok)

    def deployment_changed(self, guild_id: str, revision: dict) -> None:
        self._call("flora_deployment_changed", guild_id=guild_id, revision=revision)

    # -- introspection ---------------------------------------------------------------------------
    def describe(self) -> list[dict]:
        """Every loaded plugin with its version and what it registered."""
        self.blueprints()
        return [
            {
                "name": p.name,
                "version": p.version,
                "module": p.module,
                "builtin": p.builtin,
                "registered": {k: sorted(v) for k, v in p.registered.items() if v},
            }
            for p in sorted(self.loaded.values(), key=lambda p: p.name)
        ]

    def names(self) -> Iterator[str]:
        return iter(self.loaded)


def _guarded(host: Plugins, name: str, plugin: object) -> object:
    """``plugin`` with each hook implementation wrapped: it runs with its plugin's name known (for
    ``register``), and an exception inside it disables the plugin instead of breaking the hook call.
    Wrappers (``wrapper=True``/``hookwrapper=True``) are left as they are: they wrap the call itself."""
    proxy = types.SimpleNamespace(__name__=getattr(plugin, "__name__", type(plugin).__name__))
    for attr in dir(plugin):
        if attr.startswith("__"):
            continue
        try:
            fn = getattr(plugin, attr)
        except Exception:  # noqa: BLE001 - an odd attribute is not a hook
            continue
        opts = getattr(fn, "flora_impl", None)
        if not callable(fn) or not isinstance(opts, dict):
            continue
        if opts.get("wrapper") or opts.get("hookwrapper"):
            setattr(proxy, attr, fn)
        else:
            setattr(proxy, attr, _guard(host, name, attr, fn))
    return proxy


def _guard(host: Plugins, plugin: str, hook: str, fn: Callable) -> Callable:
    @functools.wraps(fn)
    def call(*args, **kwargs):
        token = _current.set(plugin)
        commands = _commands_of(hook, args, kwargs)
        before = dict(commands) if commands is not None else None
        try:
            result = fn(*args, **kwargs)
        except (_Disable, PluginError):
            raise
        except _host_errors():  # flora's own errors (a database that cannot be reached…) are for the caller
            raise
        except Exception as exc:  # noqa: BLE001 - one plugin's bug is not the host's
            if commands is not None:
                commands.clear()
                commands.update(before or {})
                host._fail(plugin, f"plugin {plugin} was disabled: it failed in {hook}: {exc}")
                return None
            if strict():
                raise PluginError(f"plugin {plugin} failed in {hook}: {exc}") from exc
            if hook.startswith("flora_register_"):
                raise _Disable(plugin, f"plugin {plugin} was disabled: it failed in {hook}: {exc}") from None
            log.error("plugin %s failed in %s: %s", plugin, hook, exc)
            return None
        finally:
            _current.reset(token)
        if commands is not None and before is not None:
            taken = sorted(n for n in before if commands.get(n) is not before[n])
            added = sorted(n for n in commands if n not in before)
            if taken:
                commands.clear()
                commands.update(before)
                host._fail(plugin, f"plugin {plugin} was disabled: its CLI command {taken[0]!r} already exists")
                return None
            for name in added:
                host._record(plugin, "command", name)
        return result

    return call


def _host_errors() -> tuple[type[BaseException], ...]:
    from .config import ConfigError
    from .storage import StorageError

    return (ConfigError, StorageError)


def _commands_of(hook: str, args: tuple, kwargs: dict) -> dict | None:
    """The click group's command table, for the hook that adds CLI commands."""
    if hook != "flora_register_commands":
        return None
    cli = kwargs.get("cli", args[0] if args else None)
    commands = getattr(cli, "commands", None)
    return commands if isinstance(commands, dict) else None
