"""Every hook flora offers. Built-in capabilities use these same hooks.

Capability hooks take a ``register`` callable: the plugin calls
``register(thing, ...)`` and the host validates the thing, rejects duplicates
and records which plugin supplied it (see ``flora_core.plugins``).
"""

import pluggy

hookspec = pluggy.HookspecMarker("flora")


@hookspec
def flora_register_ops(register):
    """Register ops callable from scripts: ``register(name, async_fn)``; ``async_fn(ctx, args)``."""


@hookspec
def flora_register_js_sources(register):
    """Register JavaScript loaded into every isolate before the guild's script: ``register(name, source, order=100)``."""


@hookspec
def flora_isolate_globals(guild_id, services):
    """Return a dict of JSON values set as globals in a guild's isolate before the SDK runs (called in the worker at each load)."""


@hookspec(firstresult=True)
def flora_starter_files():
    """Return the files (``[{path, contents}]``, entry ``src/main.ts``) deployed to a guild that has no deployment
    yet, or ``None``; called in the supervisor. The ``sdk`` plugin returns flora's starter script."""


@hookspec(firstresult=True)
def flora_storage_backend(url, config):
    """Return a ``Database`` for the ``DATABASE_URL`` ``url`` if this plugin serves its scheme, else ``None``."""


@hookspec
def flora_register_kv_backends(register):
    """Register KV storage backends: ``register(name, factory)``; ``factory(config)`` returns a KV backend (``KV_BACKEND`` picks one)."""


@hookspec
def flora_register_event_sources(register):
    """Register an event source factory: ``register(name, factory)``; ``factory(config)`` returns an object with ``async start(emit)`` and ``async stop()``."""


@hookspec
def flora_register_blueprints(register):
    """Register Flask blueprints served by the HTTP API: ``register(blueprint)``."""


@hookspec
def flora_register_commands(cli):
    """Add click commands to the ``flora`` command group ``cli``."""


@hookspec
def flora_startup(runtime):
    """Called in the supervisor once the runtime is up."""


@hookspec
def flora_shutdown(runtime):
    """Called in the supervisor before the runtime stops."""


@hookspec
def flora_script_loaded(runtime, guild_id, load_id, ok):
    """Called in the supervisor after a guild's script was loaded (``ok``) or failed to load; ``load_id`` names that load."""


@hookspec
def flora_deployment_changed(guild_id, revision):
    """Called in the supervisor after a guild's script was (re)deployed; ``revision`` is a dict."""
