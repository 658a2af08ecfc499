"""``flora dev``: emulator, runtime, watcher and the web console for a project."""

from __future__ import annotations

from pathlib import Path

import click

from flora_core.sandbox import ToolSandbox

from ..base import _config, _plugins


# -- dev -----------------------------------------------------------------------
@click.command()
@click.argument("project_dir", default=".", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", type=click.IntRange(0, 65535), default=8780, show_default=True,
              help="Port of the web console (0: any free port).")
@click.option("--emulator-port", type=click.IntRange(0, 65535), default=0,
              help="Port of the built-in Discord emulator (default: any free port).")
@click.pass_context
def dev(ctx, project_dir, port, emulator_port):
    """Run PROJECT_DIR against the built-in Discord emulator, redeploy on save, open a web console."""
    from flora_core.declarations import refresh
    from flora_dev.console import run_dev

    config = _config(ctx)
    ToolSandbox(config.bundler_sandbox).check()
    plugins = _plugins(ctx)
    if refresh(project_dir / "flora.d.ts", plugins):  # written by `flora types`: follow the enabled plugins
        click.echo(f"Updated {project_dir / 'flora.d.ts'} (the declarations of the enabled plugins)")
    code = run_dev(project_dir, config, plugins, port=port, emulator_port=emulator_port)
    if code:
        ctx.exit(code)
