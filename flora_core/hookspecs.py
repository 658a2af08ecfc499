"""Every hook flora offers. Built-in capabilities use these same hooks (docs/plugins.md explains each).

Capability hooks (``flora_register_*``) take a ``register`` callable: the plugin calls
``register(thing, ...)`` and the host validates the thing, refuses a name another plugin already
registered (the plugin loaded later is disabled) and records which plugin supplied it.

Each docstring says in which process the hook runs and when: the **supervisor** (``flora serve``:
gateway, routing, the embedded bus), a **worker** (V8 isolates and ops), the **API** (Flask), the
**CLI** (any ``flora`` command). A hook may run in several; plugins must not assume they share memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click

    from .bus import RuntimeBus
    from .config import Config
    from .host import Register, RuntimeAPI
    from .storage import Database

hookspec = pluggy.HookspecMarker("flora")


@hookspec(historic=True)
def flora_add_hookspecs(pm: pluggy.PluginManager) -> None:
    """Declare hooks of your own, for other plugins to implement: call ``pm.add_hookspecs(module)`` with a
    module of functions marked ``pluggy.HookspecMarker("flora")`` (as pytest's ``pytest_addhooks``).
    Called in every process when the plugin is registered, before any other hook; call them through
    ``Plugins.hook.<name>(...)``."""


@hookspec
def flora_register_ops(register: Register) -> None:
    """Register ops callable from scripts: ``register(name, async_fn)``, ``name`` like ``op_hello``,
    ``async_fn(ctx: OpContext, args) -> JSON value``. Collected in every process at start (so a clash
    is found the same way everywhere); ops run in workers, on the worker's main asyncio loop."""


@hookspec
def flora_register_js_sources(register: Register) -> None:
    """Register JavaScript evaluated in every isolate before the guild's script, after the core's own
    (``__floraOp``, ``__floraOn``…): ``register(name, source, order=100)`` (lower ``order`` runs first,
    ties by name; the SDK uses 5–30, the sources that extend it through ``__floraProvide`` 50).
    Collected at start in every process; evaluated in workers at each isolate build."""


@hookspec
def flora_register_type_declarations(register: Register) -> None:
    """Register TypeScript declarations of what the plugin gives scripts (its JS sources' globals, its
    events' payloads): ``register(name, declarations)``, the text of a global ``.d.ts`` or a path to one
    (read when the declarations are assembled). Collected at start in every process; ``flora types``,
    type checks and generated projects use the declarations of the enabled plugins, assembled into one file."""


@hookspec
def flora_isolate_globals(guild_id: str, services: Any) -> dict | None:
    """Return JSON values to set as globals in ``guild_id``'s isolate before the JS sources run.
    Called in the worker at every isolate build (a deploy, a restart after a deadline, a restore);
    ``services`` is the worker's shared state (config, database, HTTP session, plugin ``resources``)."""


@hookspec
def flora_isolate_built(guild_id: str, load_id: str, services: Any) -> None:
    """Called in the worker once per isolate build of ``guild_id`` (a deploy, a restart after a deadline,
    a restore), after the runtime's and every plugin's JavaScript was evaluated and before the guild's
    script runs, so before any op of that build; ``load_id`` names the load it runs. Called off the
    worker's event loop; ``services`` as for ``flora_isolate_globals``. The cron plugin counts builds with it."""


@hookspec(firstresult=True)
def flora_starter_files() -> list[dict] | None:
    """Return the files (``[{path, contents}]``, entry ``src/main.ts``) deployed to a guild that has no
    deployment yet, or ``None``; the first plugin that answers wins. Called in the supervisor when a
    guild without a deployment gets its first event. The ``sdk`` plugin returns flora's starter script."""


@hookspec(firstresult=True)
def flora_storage_backend(url: str, config: Config) -> Database | None:
    """Return a ``Database`` for the ``DATABASE_URL`` ``url`` if this plugin serves its scheme, else
    ``None``; the first plugin that answers wins. Called in every process that opens the database."""


@hookspec(firstresult=True)
def flora_runtime_bus(config: Config) -> RuntimeBus | None:
    """Return the bus between the API and the runtime (``flora_core.bus.RuntimeBus``) if this plugin
    provides one for ``config`` (e.g. when ``REDIS_URL`` is set), else ``None``; the first plugin that
    answers wins, and without one flora uses its embedded Unix-socket bus. Called in the supervisor at
    start (``serve(node)``) and in the API process when the app is built (``client()``)."""


@hookspec
def flora_register_migrations(register: Register) -> None:
    """Register the plugin's SQL migrations: ``register(folder)``, a folder (an ``importlib.resources``
    path) holding ``sqlite/`` and ``postgres/`` with ``NNN_name.sql`` files, applied in name order after
    the core's, once each, in every process that opens the database. Statements are split on ``;``.
    Use ``CREATE TABLE IF NOT EXISTS`` for tables an older flora may have created already."""


@hookspec
def flora_register_config_keys(register: Register) -> None:
    """Register the plugin's configuration keys: ``register(Key(attr, toml, env, parse, default))``
    (``flora_core.config.Key``). They are read, validated and reported like the core's (one line,
    exit 2) and become attributes of ``Config``. Collected in every process, before the config is read."""


@hookspec
def flora_register_event_sources(register: Register) -> None:
    """Register an event source: ``register(name, factory)``; ``factory(config)`` returns an
    ``EventSource`` (``async start(emit)``, ``async stop()``). Started by the supervisor after the
    workers are ready; ``emit(event, payload)`` routes an event to the guild's script (``payload`` holds
    ``guild_id``; Discord dispatches keep their gateway type and raw payload)."""


@hookspec
def flora_register_blueprints(register: Register) -> None:
    """Register Flask blueprints served by the HTTP API: ``register(blueprint)``. Called in the API
    process when the app is built; import Flask inside the hook, not at module level."""


@hookspec
def flora_register_commands(cli: click.Group) -> None:
    """Add click commands to the ``flora`` command group ``cli``. Called in the CLI before the
    command line is parsed; a command whose name is taken disables the plugin."""


@hookspec
def flora_startup(runtime: RuntimeAPI) -> None:
    """Called in the supervisor once the runtime is up (workers ready, deployments restored, event
    sources started). ``runtime`` is the host API: spawn tasks, log to guilds, dispatch, fail."""


@hookspec
def flora_shutdown(runtime: RuntimeAPI) -> None:
    """Called in the supervisor when the runtime begins to stop, before event sources and workers."""


@hookspec
def flora_script_loaded(runtime: RuntimeAPI, guild_id: str, load_id: str, ok: bool) -> None:
    """Called in the supervisor after a guild's script was loaded (``ok``) or failed to load;
    ``load_id`` names that load (cron uses it to know which registrations are current)."""


@hookspec
def flora_deployment_changed(guild_id: str, revision: dict) -> None:
    """Called in the supervisor after a guild's script was (re)deployed; ``revision`` is a dict with at
    least ``guild_id`` (the stored revision's fields when it is known)."""
