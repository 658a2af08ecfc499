"""``flora types``: the TypeScript declarations of the enabled plugins, for editors and type checks."""

from __future__ import annotations

from pathlib import Path

import click

from ..base import CliFailure, _plugins


@click.command("types")
@click.option(
    "-o",
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the declarations to this file (e.g. flora.d.ts, then include it in tsconfig.json) instead of printing them.",
)
@click.pass_context
def types_command(ctx, out):
    """Print the declarations of every global a script has with the enabled plugins (one .d.ts)."""
    from flora_core.declarations import assemble

    text = assemble(_plugins(ctx))
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliFailure(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"Wrote {out} ({len(text.splitlines())} lines)")
