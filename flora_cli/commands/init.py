"""``flora init [DIR]``: a bot project that ``flora dev`` runs at once and ``flora deploy`` deploys."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..base import CliFailure, _plugins

TSCONFIG = {
    # the SDK's compiler options (sdk/tsconfig.json), written out so the project does not depend on where
    # flora is installed; flora.d.ts declares every global a script has with the enabled plugins
    "compilerOptions": {
        "target": "ES2022",
        "lib": ["ES2023"],
        "module": "ESNext",
        "moduleResolution": "Bundler",
        "strict": True,
        "noEmit": True,
        "isolatedModules": True,
        "allowImportingTsExtensions": True,
        "skipLibCheck": True,
    },
    "include": ["src", "flora.d.ts"],
}
GITIGNORE = "# flora dev's emulator ids and a local server's data\n.flora/\ndata/\nnode_modules/\n"
README = """# {name}

A Discord bot for [flora](https://github.com/uwu/flora): TypeScript in `src/`, entry `src/main.ts`.

    flora dev .                       # run it against flora's built-in Discord emulator, reload on save
    flora deploy --guild-id <GUILD>   # deploy it to a guild of a running flora server
    flora types -o flora.d.ts         # refresh the declarations for your editor (flora dev does it too)

`flora.toml` holds the deploy settings (`entry`, `guild_id`, `api`).
"""
FLORA_TOML = """[deploy]
entry = "src/main.ts"
# guild_id = "123456789012345678"   # then `flora deploy` needs no --guild-id
# api = "https://flora.example.com/api"
"""


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def init_command(ctx, directory: Path):
    """Create a bot project in DIRECTORY (default: here): src/main.ts, tsconfig.json, flora.toml, flora.d.ts."""
    from flora_core.declarations import assemble

    plugins = _plugins(ctx)
    starter = plugins.starter_files() or [{"path": "src/main.ts", "contents": _MINIMAL}]
    files = {f["path"]: f["contents"] for f in starter}
    files.update(
        {
            "tsconfig.json": json.dumps(TSCONFIG, indent=2) + "\n",
            "flora.toml": FLORA_TOML,
            ".gitignore": GITIGNORE,
            "README.md": README.format(name=directory.resolve().name),
            "flora.d.ts": assemble(plugins),
        }
    )
    taken = [p for p in files if (directory / p).exists()]
    if taken:
        raise CliFailure(
            f"{directory / taken[0]} exists already; flora init writes only into a new or empty project "
            "(use another DIR, or `flora types -o flora.d.ts` to refresh the declarations)"
        )
    try:
        for rel, text in files.items():
            target = directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliFailure(f"cannot write {exc.filename or directory}: {exc.strerror or exc}") from None
    shown = "." if directory == Path(".") else str(directory)
    click.echo(
        f"Created a flora bot in {shown} ({len(files)} files). Next:\n"
        f"  flora dev {shown}                       # try it against the built-in Discord emulator\n"
        f"  flora deploy --root {shown} --guild-id <GUILD>  # deploy it to a server"
    )


_MINIMAL = """on('messageCreate', async (ctx) => {
  if (ctx.msg.content === '!ping') await ctx.reply('pong')
})
"""
