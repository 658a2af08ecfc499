"""The ``flora`` command.

Every failure a user can cause (bad config, unreachable database or API, a
usage mistake) ends as one line on stderr and a non-zero exit code (2 for
configuration and usage errors), never a traceback. Plugins add commands
through ``flora_register_commands``.
"""

from __future__ import annotations

import sys

import click

from flora_core import __version__
from flora_core.plugins import PluginError, Plugins

from .base import CliFailure, FloraGroup, _error
from .commands.deploy import deploy
from .commands.deployments import deployments, logs_command
from .commands.dev import dev
from .commands.init import init_command
from .commands.login import login_command
from .commands.plugins import plugins_command
from .commands.serve import api_command, serve
from .commands.tokens import tokens
from .commands.types import types_command

__all__ = ["CliFailure", "cli", "main", "make_cli"]


# -- the group -----------------------------------------------------------------
def make_cli() -> click.Group:
    """A fresh ``flora`` group with the built-in commands (plugins add theirs in :func:`main`)."""

    @click.group(cls=FloraGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, "--version", "-V", prog_name="flora")
    @click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        envvar="FLORA_CONFIG",
        help="Server config file (default: ./config.toml; environment variables win).",
    )
    @click.pass_context
    def flora(ctx, config_path):
        """flora: one Discord bot, programmed per guild in TypeScript."""
        ctx.ensure_object(dict)["config_path"] = config_path

    for command in (
        serve,
        api_command,
        dev,
        init_command,
        login_command,
        deploy,
        deployments,
        logs_command,
        tokens,
        plugins_command,
        types_command,
    ):
        flora.add_command(command)
    return flora


cli = make_cli()


def main(argv=None):
    group = make_cli()
    plugins = None
    try:
        plugins = Plugins()
        plugins.register_commands(group)
    except PluginError as exc:  # strict mode (FLORA_STRICT_PLUGINS=1): the broken plugin's one line, exit 2
        _error(str(exc))
        sys.exit(2)
    return group.main(args=argv, prog_name="flora", obj={"plugins": plugins})


if __name__ == "__main__":
    main()
