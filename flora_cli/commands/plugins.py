"""``flora plugins``: what is loaded; ``flora plugins new``: start a plugin package."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..base import CliFailure, _plugins


# -- plugins -------------------------------------------------------------------
@click.group("plugins", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def plugins_command(ctx, as_json):
    """List loaded plugins, their versions and what each registered (`flora plugins new NAME` starts one)."""
    if ctx.invoked_subcommand is not None:
        return
    described = _plugins(ctx).describe()
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for p in described:
        click.echo(f"{p['name']} {p['version'] or '-'} ({p['module']})")
        for kind, names in sorted(p["registered"].items()):
            click.echo(f"  {kind}: {', '.join(names)}")


@plugins_command.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "where",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to create the package in.",
)
def plugins_new(name, where):
    """Create a plugin package NAME (an op, its JS and .d.ts, a config key, a test on flora's kit)."""
    from ..scaffold import ScaffoldError, new_plugin

    try:
        target = new_plugin(name, where)
    except ScaffoldError as exc:
        raise CliFailure(str(exc)) from None
    except OSError as exc:
        raise CliFailure(f"cannot write {where}: {exc.strerror or exc}") from None
    click.echo(f"Created {target}")
    click.echo(f"  cd {target} && pip install -e . && python -m pytest -q")
