"""Built-in plugin: per-guild secrets, and ``fetch()`` for scripts.

* Values live in ``guild_secrets``, encrypted with ``SECRETS_MASTER_KEY``
  (``store.py``). Without a key, the routes, the CLI and a fetch that uses a
  secret answer ``secrets are disabled: set SECRETS_MASTER_KEY``.
* Scripts never see a value: ``secrets.get(name)`` (``secrets.js``, an extension of
  the SDK) gives a placeholder (``placeholders.py``) that
  ``op_fetch`` (``fetch.py``, ``fetch.js``) replaces in URLs and header values
  for the hosts the secret allows, behind the core's SSRF guard (``flora_core.netguard``).
* ``__floraSecretNames`` is set at each load so that ``secrets.get`` returns
  ``undefined`` for unknown names, as in flora. Values and allowed hosts are
  read at every fetch, so changing them needs no redeploy; a *new* name is
  known to ``secrets.get`` from the script's next load (deploy or restart).
* HTTP routes ``/api/secrets/...`` (``routes.py``) and ``flora secrets`` (``cli.py``).
"""

from __future__ import annotations

import logging
from importlib import resources

from flora_core import hookimpl

from .store import SecretsError, box_from_config, load_secrets, parse_master_key

log = logging.getLogger("flora.secrets")


def _master_key(raw) -> str:
    """SECRETS_MASTER_KEY as given, once it is known to parse (64 hex characters or 32 bytes)."""
    try:
        parse_master_key(str(raw))
    except SecretsError as exc:
        raise ValueError(f"{exc}: give 64 hex characters or exactly 32 bytes") from None
    return str(raw)


@hookimpl
def flora_register_config_keys(register):
    from flora_core.config import Key

    register(Key("secrets_master_key", "secrets.master_key", "SECRETS_MASTER_KEY", _master_key, None))


@hookimpl
def flora_register_migrations(register):
    register(resources.files(__name__).joinpath("migrations"))  # table guild_secrets


@hookimpl
def flora_register_ops(register):
    from .fetch import op_fetch

    register("op_fetch", op_fetch)


@hookimpl
def flora_register_js_sources(register):
    register("flora:fetch", resources.files(__name__).joinpath("fetch.js").read_text(encoding="utf-8"), order=30)
    # secrets.get for scripts: extends the SDK (flora.js, order 20), so after it
    register("flora:secrets", resources.files(__name__).joinpath("secrets.js").read_text(encoding="utf-8"), order=50)


@hookimpl
def flora_register_type_declarations(register):
    register("flora:fetch", resources.files(__name__).joinpath("fetch.d.ts"), requires=["flora:web"])  # URL, URLSearchParams
    register("flora:secrets", resources.files(__name__).joinpath("secrets.d.ts"), requires=["flora:sdk"])


# optionalhook: the hook is called by the worker at each isolate build; marked optional so this
# plugin still loads on a core whose hookspecs.py does not declare it.
@hookimpl(optionalhook=True)
def flora_isolate_globals(guild_id, services):
    """``__floraSecretNames``: the names that decrypt with the current key (runs in the worker, off its loop)."""
    db = getattr(services, "db", None)
    if db is None:
        return {}
    try:
        box = box_from_config(services.config)
    except SecretsError:
        return {}  # disabled: every name gives a placeholder, and fetch() explains why it cannot be used
    found, _ = load_secrets(db, box, guild_id)
    return {"__floraSecretNames": sorted(found)}


@hookimpl
def flora_register_blueprints(register):
    from .routes import build_blueprint

    register(build_blueprint())


@hookimpl
def flora_register_commands(cli):
    from .cli import secrets_group

    cli.add_command(secrets_group)


@hookimpl
def flora_startup(runtime):
    """A malformed key stops flora at start, as in flora (an absent one only disables secrets)."""
    try:
        parse_master_key(runtime.config.secrets_master_key)
    except SecretsError as exc:
        runtime.fail(str(exc))
