"""``flora login``: store an API token and URL for the other commands."""

from __future__ import annotations

import json
import os
import sys

import click

from ..base import CliFailure, _cli_store_path, _stored


# -- login ---------------------------------------------------------------------
@click.command("login")
@click.argument("token_arg", metavar="[TOKEN]", required=False)
@click.option("--token", metavar="TOKEN", help="The API token to store (flora's `flora login --token`).")
@click.option("--api", "-a", "api_url", metavar="URL", help="API base URL including /api, stored with the token.")
def login_command(token_arg, token, api_url):
    """Store an API token (and the API URL) for the other commands.

    Without a token: opens the server's Discord login in a browser when a display is available (or prints
    its address), then asks for a token made there (POST /api/tokens) or with `flora tokens create`.
    """
    from flora_cli.client import DEFAULT_API_URL

    api_url = (api_url or os.environ.get("FLORA_API_URL") or _stored().get("api") or DEFAULT_API_URL).rstrip("/")
    token = token or token_arg
    if not token:
        login_url = f"{api_url}/auth/login"
        opened = False
        if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
            import webbrowser

            opened = webbrowser.open(login_url)
        click.echo(f"{'Opened' if opened else 'Log in with Discord at'} {login_url}", err=True)
        if not sys.stdin.isatty():
            raise CliFailure("missing required value: token (pass it as an argument or with --token)")
        token = click.prompt("API token", hide_input=True).strip()
    if len(token) < 20 or "." not in token:
        raise CliFailure("that does not look like a flora API token (<id>.<secret>)")
    path = _cli_store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = dict(_stored(), token=token, api=api_url)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(stored, f)
    click.echo(f"Saved token to {path} (API {api_url})")
