"""``flora dev``: emulator, runtime, watcher and the web console for a project."""

from __future__ import annotations

from pathlib import Path

import click

from flora_core.sandbox import ToolSandbox

from ..base import CliFailure, _config, _plugins, port_is_free, require_free_port


# -- dev -----------------------------------------------------------------------
@click.command()
@click.argument("project_dir", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8780, show_default=True, help="Port of the web console (0: any free port)."
)
@click.option(
    "--emulator-port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Port of the built-in Discord emulator (default: any free port).",
)
@click.pass_context
def dev(ctx, project_dir, port, emulator_port):
    """Run PROJECT_DIR against the built-in Discord emulator, redeploy on save, open a web console."""
    from flora_core.declarations import refresh
    from flora_dev.console import run_dev

    config = _config(ctx)
    ToolSandbox(config.bundler_sandbox).check()
    why = port_is_free("127.0.0.1", port)
    if why is not None:
        if ctx.get_parameter_source("port") is not click.core.ParameterSource.DEFAULT:
            raise CliFailure(f"cannot listen on 127.0.0.1:{port} for the console: {why} (change it with --port)")
        click.echo(
            f"Port {port} is taken (another flora dev?); the console takes a free port instead (choose one with --port).",
            err=True,
        )
        port = 0
    require_free_port("127.0.0.1", emulator_port, "Discord emulator", "--emulator-port")
    plugins = _plugins(ctx)
    if refresh(project_dir / "flora.d.ts", plugins):  # written by `flora types`: follow the enabled plugins
        click.echo(f"Updated {project_dir / 'flora.d.ts'} (the declarations of the enabled plugins)")
    code = run_dev(project_dir, config, plugins, port=port, emulator_port=emulator_port)
    if code:
        ctx.exit(code)
