"""``flora serve``: the runtime (supervisor, workers, gateway, API); ``flora api``: the API alone under gunicorn."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from flora_core.config import require_redis_client
from flora_core.sandbox import ToolSandbox

from ..base import SERVE_HINT, CliFailure, _config, _plugins, require_free_port


# -- serve ---------------------------------------------------------------------
@click.command()
@click.option(
    "--emulator",
    "use_emulator",
    is_flag=True,
    help="Connect to the built-in Discord emulator instead of Discord (no bot token needed).",
)
@click.option(
    "--emulator-port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port of the built-in Discord emulator.",
)
@click.pass_context
def serve(ctx, use_emulator, emulator_port):
    """Run flora: HTTP API, Discord gateway and script workers under one supervisor."""
    config = _config(ctx)
    if not use_emulator:
        config.require("discord_token", hint=SERVE_HINT)
    require_redis_client(config)  # the API's caches and the workers' scope cache use it
    config_path = (ctx.obj or {}).get("config_path")
    if config_path:  # the API and worker processes read the same file
        os.environ["FLORA_CONFIG"] = str(Path(config_path).resolve())
    ToolSandbox(config.bundler_sandbox).check()
    if use_emulator and "api_address" not in config.sources:
        # the emulator is for trying flora on this machine: its API is not offered to the network unless asked
        config = config.replace(api_address="127.0.0.1")
        os.environ["API_ADDRESS"] = "127.0.0.1"  # for the API process
    require_free_port(config.api_address, config.api_port, "API", "API_PORT or [api] port in config.toml")
    if use_emulator:
        require_free_port("127.0.0.1", emulator_port, "Discord emulator", "--emulator-port")
    plugins = _plugins(ctx)
    try:
        from flora_core.runtime.supervisor import serve as run_supervisor
    except ImportError as exc:
        raise CliFailure(f"the runtime supervisor is not available: {exc}") from None
    companion = None
    if use_emulator:
        from flora_dev.serve_emulator import emulator_companion

        companion = emulator_companion(emulator_port)
    code = run_supervisor(config, plugins, companion=companion)
    if code:
        ctx.exit(code)


# -- api -----------------------------------------------------------------------
@click.command("api")
@click.option("--workers", "-w", type=click.IntRange(1, 64), default=2, show_default=True, help="gunicorn worker processes.")
@click.pass_context
def api_command(ctx, workers):
    """Run the HTTP API alone under gunicorn with gevent workers (the runtime runs elsewhere: `flora serve`)."""
    config = _config(ctx)  # fail here, in one line, rather than in every gunicorn worker
    require_redis_client(config)  # the API's shared caches are in Redis when REDIS_URL is set
    ToolSandbox(config.bundler_sandbox).check()  # the API bundles what guilds deploy
    config_path = (ctx.obj or {}).get("config_path")
    if config_path:
        os.environ["FLORA_CONFIG"] = str(Path(config_path).resolve())
    require_free_port(config.api_address, config.api_port, "API", "API_PORT or [api] port in config.toml")
    from importlib import resources

    conf = str(resources.files("flora_http").joinpath("gunicorn.conf.py"))
    click.echo(f"flora api on http://{config.api_address}:{config.api_port}/api (gunicorn, {workers} gevent worker(s))", err=True)
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "-c", conf, "-w", str(workers)])
