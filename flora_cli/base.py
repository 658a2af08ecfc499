"""What every ``flora`` command shares: the group that turns every failure into one line, the
configuration, the plugins, the database, and the API client options."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from flora_core.config import ConfigError, load_config
from flora_core.errors import RuntimeStartError
from flora_core.plugins import PluginError, Plugins
from flora_core.storage import StorageError

SERVE_HINT = "run `flora serve --emulator` to try flora offline against the built-in Discord emulator"


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


class CliFailure(click.ClickException):
    """A command failed; the message is printed as is (it may be a server's multi-line error)."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class FloraGroup(click.Group):
    """Runs commands without click's standalone handling so every error becomes one line."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name or "flora", complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except _NO_ARGS_IS_HELP as exc:
            exc.show()  # a bare `flora` or `flora tokens` prints its help, as click does
            code = 2
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "flora"
            _error(f"{exc.format_message()} (see `{where} --help`)")
            code = 2
        except click.ClickException as exc:
            _error(exc.format_message())
            code = exc.exit_code
        except ConfigError as exc:
            _error(str(exc))
            code = 2
        except PluginError as exc:  # FLORA_STRICT_PLUGINS: a broken plugin is fatal
            _error(str(exc))
            code = 2
        except (StorageError, RuntimeStartError) as exc:
            _error(str(exc))
            code = 1
        except OSError as exc:  # e.g. a data folder that cannot be created
            _error(f"{exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}")
            code = 1
        except (click.Abort, KeyboardInterrupt):
            _error("Aborted.")
            code = 130
        if standalone_mode:
            sys.exit(code)
        return code


def _error(message: str) -> None:
    click.echo(f"Error: {message}", err=True)


def port_is_free(address: str, port: int) -> str | None:
    """``None`` when ``address:port`` can be listened on now, else why not (``Address already in use``)."""
    import socket

    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no obstacle
        try:
            sock.bind((address, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def require_free_port(address: str, port: int, what: str, how: str) -> None:
    """Stop with one line before anything starts when ``what`` cannot listen on ``address:port``."""
    why = port_is_free(address, port)
    if why is not None:
        raise CliFailure(f"cannot listen on {address}:{port} for the {what}: {why} (change it with {how})")


def _config(ctx: click.Context):
    config = load_config((ctx.obj or {}).get("config_path"))
    obj = ctx.ensure_object(dict)
    if not obj.get("config_warned"):  # once per command, however often it reads the config
        obj["config_warned"] = True
        for line in config.warnings:
            click.echo(f"Warning: {line}", err=True)
    return config


def _plugins(ctx: click.Context) -> Plugins:
    obj = ctx.ensure_object(dict)
    if obj.get("plugins") is None:
        obj["plugins"] = Plugins()
    return obj["plugins"]


def _open_db(ctx: click.Context):
    """The server's database, which must exist (a command run in another folder than ``flora serve``
    must not make a database of its own); says on stderr which one it is."""
    from flora_core.storage import describe_database, open_database

    config = _config(ctx)
    db = open_database(config, _plugins(ctx), must_exist=True)
    click.echo(f"Using the database at {describe_database(config)}", err=True)
    return db


# -- deployments / logs (API clients) -------------------------------------------
_API_OPTION = click.option(
    "--api",
    "-a",
    "api_url",
    metavar="URL",
    help="API base URL including /api (default: $FLORA_API_URL, http://127.0.0.1:3000/api).",
)
_TOKEN_OPTION = click.option("--token", metavar="TOKEN", help="API token (default: $FLORA_TOKEN).")
_JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")


def _cli_store_path() -> Path:
    """Where `flora login` keeps the API URL and token (flora kept them in its CLI config too)."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "flora" / "cli.json"


def _stored() -> dict:
    try:
        return json.loads(_cli_store_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _token(token: str | None) -> str:
    token = token or os.environ.get("FLORA_TOKEN") or _stored().get("token")
    if not token:
        raise CliFailure("Missing API token; run `flora login`, pass --token or set FLORA_TOKEN")
    return token


def _guild_option(required: bool = True):
    return click.option("--guild-id", "--guild", "guild_id", metavar="ID", required=required, help="The guild.")


def _api_client(api_url, token, guild_id=None):
    from flora_cli.client import DEFAULT_API_URL, SNOWFLAKE, ApiClient

    if guild_id is not None and not SNOWFLAKE.match(guild_id):
        raise click.UsageError(f"invalid guild id {guild_id!r}: expected a Discord snowflake (digits)")
    token = _token(token)
    return ApiClient(api_url or os.environ.get("FLORA_API_URL") or _stored().get("api") or DEFAULT_API_URL, token, timeout=60.0)


def _call(fn, *args, **kwargs):
    from flora_cli.client import ClientError

    try:
        return fn(*args, **kwargs)
    except ClientError as exc:
        raise CliFailure(str(exc)) from None


def _print_json(value) -> None:
    click.echo(json.dumps(value, indent=2))
