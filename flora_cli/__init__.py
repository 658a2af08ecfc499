"""The ``flora`` command line: ``main.py`` holds the command group and the built-in commands,
``client.py`` the HTTP client for a flora API (stdlib only), ``remote.py`` revisions and logs read
through it. Plugins add commands with the ``flora_register_commands`` hook.

Nothing here imports Flask or the server package ``flora_http``.
"""

from .main import CliFailure, cli, main

__all__ = ["CliFailure", "cli", "main"]
