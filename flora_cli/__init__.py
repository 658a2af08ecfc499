"""The ``flora`` command line: ``main.py`` holds the command group and the built-in commands,
``client.py`` the HTTP client for a flora API (stdlib only), ``remote.py`` revisions and logs read
through it. Plugins add commands with the ``flora_register_commands`` hook.

Nothing here imports Flask or the server package ``flora_http``.
"""

__all__ = ["CliFailure", "cli", "main"]


def __getattr__(name: str):
    # lazy, so that the console script (``entry.py``) can catch a Ctrl-C while the CLI imports
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("flora_cli.main"), name)
    raise AttributeError(f"module 'flora_cli' has no attribute {name!r}")
