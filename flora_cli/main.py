"""The ``flora`` command.

Every failure a user can cause (bad config, unreachable database or API, a
usage mistake) ends as one line on stderr and a non-zero exit code (2 for
configuration and usage errors), never a traceback. Plugins add commands
through ``flora_register_commands``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from flora_core import __version__
from flora_core.config import ConfigError, load_config
from flora_core.errors import RuntimeStartError
from flora_core.plugins import PluginError, Plugins
from flora_core.sandbox import ToolSandbox
from flora_core.storage import StorageError

SERVE_HINT = "run `flora serve --emulator` to try flora offline against the built-in Discord emulator"


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


class CliFailure(click.ClickException):
    """A command failed; the message is printed as is (it may be a server's multi-line error)."""

    exit_code = 1


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


def _config(ctx: click.Context):
    return load_config((ctx.obj or {}).get("config_path"))


def _plugins(ctx: click.Context) -> Plugins:
    obj = ctx.ensure_object(dict)
    if obj.get("plugins") is None:
        obj["plugins"] = Plugins()
    return obj["plugins"]


def _open_db(ctx: click.Context):
    from flora_core.storage import open_database

    return open_database(_config(ctx), _plugins(ctx))


# -- serve ---------------------------------------------------------------------
@click.command()
@click.option("--emulator", "use_emulator", is_flag=True,
              help="Connect to the built-in Discord emulator instead of Discord (no bot token needed).")
@click.option("--emulator-port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port of the built-in Discord emulator.")
@click.pass_context
def serve(ctx, use_emulator, emulator_port):
    """Run flora: HTTP API, Discord gateway and script workers under one supervisor."""
    config = _config(ctx)
    if not use_emulator:
        config.require("discord_token", hint=SERVE_HINT)
    config_path = (ctx.obj or {}).get("config_path")
    if config_path:  # the API and worker processes read the same file
        os.environ["FLORA_CONFIG"] = str(Path(config_path).resolve())
    ToolSandbox(config.bundler_sandbox).check()
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
    from flora_dev.console import run_dev

    config = _config(ctx)
    ToolSandbox(config.bundler_sandbox).check()
    code = run_dev(project_dir, config, _plugins(ctx), port=port, emulator_port=emulator_port)
    if code:
        ctx.exit(code)


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


# -- api -----------------------------------------------------------------------
@click.command("api")
@click.option("--workers", "-w", type=click.IntRange(1, 64), default=2, show_default=True, help="gunicorn worker processes.")
@click.pass_context
def api_command(ctx, workers):
    """Run the HTTP API alone under gunicorn with gevent workers (the runtime runs elsewhere: `flora serve`)."""
    config = _config(ctx)  # fail here, in one line, rather than in every gunicorn worker
    ToolSandbox(config.bundler_sandbox).check()  # the API bundles what guilds deploy
    config_path = (ctx.obj or {}).get("config_path")
    if config_path:
        os.environ["FLORA_CONFIG"] = str(Path(config_path).resolve())
    from importlib import resources

    conf = str(resources.files("flora_http").joinpath("gunicorn.conf.py"))
    click.echo(f"flora api on http://{config.api_address}:{config.api_port}/api (gunicorn, {workers} gevent worker(s))", err=True)
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "-c", conf, "-w", str(workers)])


# -- deploy --------------------------------------------------------------------
def _server_data_dirs(ctx) -> tuple[Path, ...]:
    """The local server's data folder, never uploaded (``flora serve`` often runs in the project folder)."""
    try:
        return (_config(ctx).data_path,)
    except ConfigError:
        return (Path("data").resolve(),)


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / (1024 * 1024):.1f} MiB"


@click.command()
@click.argument("entry_arg", metavar="[ENTRY]", required=False)
@click.option("--guild-id", "--guild", "guild_id", metavar="ID", help="Guild to deploy to (or [deploy] guild_id in flora.toml).")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, help="Project folder (default: current folder).")
@click.option("--entry", "entry_opt", metavar="PATH", help="Entry file (default: [deploy] entry in flora.toml, else src/main.ts).")
@click.option("--api", "-a", "api_url", metavar="URL", help="API base URL including /api (default: $FLORA_API_URL, [deploy] api, http://127.0.0.1:3000/api).")
@click.option("--token", metavar="TOKEN", help="API token (default: $FLORA_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print the server's answer as JSON.")
@click.pass_context
def deploy(ctx, entry_arg, guild_id, root, entry_opt, api_url, token, as_json):
    """Bundle-and-deploy the project's TypeScript/JavaScript files to a guild."""
    from flora_cli.client import (
        DEFAULT_API_URL,
        SNOWFLAKE,
        ApiClient,
        ClientError,
        collect_files,
        load_project_config,
        resolve_entry,
    )

    if entry_arg and entry_opt and entry_arg != entry_opt:
        raise click.UsageError("give the entry once, either as ENTRY or with --entry")
    root = (root or Path(".")).resolve()
    client = None
    try:
        project = load_project_config(root)
        guild_id = guild_id or project.get("guild_id")
        if not guild_id:
            raise click.UsageError("Missing option '--guild-id' (or set guild_id under [deploy] in flora.toml)")
        if not SNOWFLAKE.match(guild_id):
            raise click.UsageError(f"invalid guild id {guild_id!r}: expected a Discord snowflake (digits)")
        api_url = api_url or os.environ.get("FLORA_API_URL") or project.get("api") or _stored().get("api") or DEFAULT_API_URL
        token = _token(token)
        entry = resolve_entry(entry_arg or entry_opt or project.get("entry") or "src/main.ts", root)
        files = collect_files(root, exclude=_server_data_dirs(ctx))
        if entry not in {f["path"] for f in files}:
            raise CliFailure(f"Entry {entry} is not among the collected files (ignored, or not a script file)")
        total = sum(len(f["contents"].encode("utf-8")) for f in files)
        click.echo(f"Collected {len(files)} file{'s' if len(files) != 1 else ''} ({_size(total)}) from {root}", err=True)
        click.echo(f"Deploying {entry} to guild {guild_id} via {api_url}…", err=True)
        client = ApiClient(api_url, token)
        result = client.deploy(guild_id, entry, files)
    except ClientError as exc:
        if "deployment failed:" in str(exc):  # a failed load is recorded as a revision too
            _print_latest_revision(client, guild_id)
        raise CliFailure(str(exc)) from None
    if not isinstance(result, dict):
        raise CliFailure(f"unexpected answer from {api_url}: {str(result)[:200]}")
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"Deployed guild {result.get('guild_id', guild_id)}")
    click.echo(f"  entry: {result.get('entry', entry)}")
    click.echo(f"  updated: {result.get('updated_at', '?')}")
    _print_latest_revision(client, guild_id)


def _print_latest_revision(client, guild_id: str) -> None:
    """The revision the deploy just recorded (success, or failed with its error), best effort."""
    if client is None:
        return
    try:
        rows = client.request("GET", f"/deployments/{guild_id}/history?limit=1")
    except Exception:  # noqa: BLE001 - the deploy's own outcome is what matters
        return
    if isinstance(rows, list) and rows:
        click.echo(f"  revision: {rows[0].get('id')} ({rows[0].get('status')})", err=True)


# -- tokens --------------------------------------------------------------------
@click.group()
def tokens():
    """Manage API tokens in the server's own database (operator tokens: every guild)."""


@tokens.command("create")
@click.option("--label", help="A note to recognise the token by.")
@click.pass_context
def tokens_create(ctx, label):
    """Create a token; only the token is printed on stdout (it is not stored in clear)."""
    from flora_core.storage import repo

    db = _open_db(ctx)
    try:
        token, row = repo.create_token(db, label=label)
    finally:
        db.close()
    click.echo(token)
    click.echo(f"Created token {row['token_id']}{f' ({label})' if label else ''}. It is shown only once; "
               "use it with `flora deploy --token …` or FLORA_TOKEN.", err=True)


@tokens.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def tokens_list(ctx, as_json):
    """List tokens (never their secret)."""
    from flora_core.storage import repo

    db = _open_db(ctx)
    try:
        rows = repo.list_tokens(db)
    finally:
        db.close()
    items = [{"token_id": r["token_id"], "label": r["label"], "created_at": r["created_at"], "last_used_at": r["last_used_at"]} for r in rows]
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    if not items:
        click.echo("No tokens.")
        return
    width = max(len(i["label"] or "-") for i in items)
    click.echo(f"{'TOKEN ID':<12}  {'LABEL':<{width}}  {'CREATED':<32}  LAST USED")
    for i in items:
        click.echo(f"{i['token_id']:<12}  {i['label'] or '-':<{width}}  {i['created_at']:<32}  {i['last_used_at'] or 'never'}")


@tokens.command("revoke")
@click.argument("token_id")
@click.pass_context
def tokens_revoke(ctx, token_id):
    """Delete a token by its id (the part before the dot)."""
    from flora_core.storage import repo

    db = _open_db(ctx)
    try:
        removed = repo.revoke_token(db, token_id.split(".", 1)[0])
    finally:
        db.close()
    if not removed:
        raise CliFailure(f"Token not found: {token_id}")
    click.echo(f"Revoked token {token_id}")



# -- deployments / logs (API clients) -------------------------------------------
_API_OPTION = click.option("--api", "-a", "api_url", metavar="URL",
                           help="API base URL including /api (default: $FLORA_API_URL, http://127.0.0.1:3000/api).")
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


@click.group()
def deployments():
    """Inspect deployments and their revisions; roll back."""


@deployments.command("list")
@_API_OPTION
@_TOKEN_OPTION
@_JSON_OPTION
def deployments_list(api_url, token, as_json):
    """Guilds with a deployment (those the token may manage)."""
    api = _api_client(api_url, token)
    rows = _call(api.request, "GET", "deployments")
    if as_json:
        _print_json(rows)
        return
    if not rows:
        click.echo("No deployments found.")
    for row in rows:
        click.echo(f"{row['guild_id']}  {row['entry']}  updated {row['updated_at']}")


@deployments.command("history")
@_guild_option()
@click.option("--limit", "-n", type=click.IntRange(1, 100), default=25, show_default=True, help="Revisions per page.")
@click.option("--all", "all_pages", is_flag=True, help="Follow the cursor through every page.")
@_API_OPTION
@_TOKEN_OPTION
@_JSON_OPTION
def deployments_history(guild_id, limit, all_pages, api_url, token, as_json):
    """A guild's deployment revisions, newest first."""
    from flora_cli.remote import format_revision, history

    api = _api_client(api_url, token, guild_id)
    revs, cursor = [], None
    while True:
        page = _call(history, api, guild_id, limit, cursor)
        revs += page
        if not all_pages or len(page) < limit:
            break
        cursor = (page[-1]["deployed_at"], page[-1]["id"])
    if as_json:
        _print_json(revs)
        return
    if not revs:
        click.echo(f"No deployment revisions for guild {guild_id}")
    for rev in revs:
        click.echo(format_revision(rev))


@deployments.command("show")
@click.argument("revision_id", required=False)
@_guild_option()
@_API_OPTION
@_TOKEN_OPTION
@_JSON_OPTION
def deployments_show(revision_id, guild_id, api_url, token, as_json):
    """One revision, or the guild's current deployment without REVISION_ID."""
    from flora_cli.remote import describe_revision

    api = _api_client(api_url, token, guild_id)
    if revision_id:
        rev = _call(api.request, "GET", f"deployments/{guild_id}/revisions/{revision_id}")
        lines = describe_revision(rev)
    else:
        rev = _call(api.request, "GET", f"deployments/{guild_id}")
        lines = [f"Guild {rev['guild_id']}", f"  entry: {rev['entry']}", f"  created: {rev['created_at']}",
                 f"  updated: {rev['updated_at']}"]
        if rev.get("files"):
            lines.append(f"  files: {', '.join(f['path'] for f in rev['files'])}")
    if as_json:
        _print_json(rev)
        return
    for line in lines:
        click.echo(line)


@deployments.command("rollback")
@click.argument("revision_id")
@_guild_option()
@_API_OPTION
@_TOKEN_OPTION
@_JSON_OPTION
def deployments_rollback(revision_id, guild_id, api_url, token, as_json):
    """Redeploy a successful earlier revision (recorded as a new revision)."""
    api = _api_client(api_url, token, guild_id)
    rev = _call(api.request, "POST", f"deployments/{guild_id}/rollback/{revision_id}", None, {"x-flora-deploy-source": "cli"})
    if as_json:
        _print_json(rev)
        return
    click.echo(f"Rolled back guild {guild_id} to {revision_id}")
    click.echo(f"  new revision: {rev['id']}")
    click.echo(f"  entry: {rev['entry']}")


@click.command("logs")
@_guild_option()
@click.option("--limit", "-n", type=click.IntRange(0, 1000), default=100, show_default=True, help="Recent entries to print.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new entries as they are written (Ctrl-C stops).")
@_API_OPTION
@_TOKEN_OPTION
@_JSON_OPTION
def logs_command(guild_id, limit, follow, api_url, token, as_json):
    """A guild's recent script and runtime log entries."""
    from flora_cli.remote import format_log, stream_logs

    api = _api_client(api_url, token, guild_id)
    entries = _call(api.request, "GET", f"logs/{guild_id}?limit={limit}") if limit else []
    show = (lambda e: click.echo(json.dumps(e))) if as_json else (lambda e: click.echo(format_log(e)))
    if not entries and not follow and not as_json:
        click.echo("No logs found")
    for entry in entries:
        show(entry)
    if follow:
        def opened():
            click.echo(f"Following the log of guild {guild_id} (Ctrl-C stops)", err=True)

        stream = _call(stream_logs, api, guild_id, opened)
        while True:
            entry = _call(next, stream, None)
            if entry is None:
                raise CliFailure("the server closed the log stream")
            show(entry)

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
@click.option("--dir", "where", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="Folder to create the package in.")
def plugins_new(name, where):
    """Create a plugin package NAME (an op, its JS and .d.ts, a config key, a test on flora's kit)."""
    from .scaffold import ScaffoldError, new_plugin

    try:
        target = new_plugin(name, where)
    except ScaffoldError as exc:
        raise CliFailure(str(exc)) from None
    except OSError as exc:
        raise CliFailure(f"cannot write {where}: {exc.strerror or exc}") from None
    click.echo(f"Created {target}")
    click.echo(f"  cd {target} && pip install -e . && python -m pytest -q")


# -- the group -----------------------------------------------------------------
def make_cli() -> click.Group:
    """A fresh ``flora`` group with the built-in commands (plugins add theirs in :func:`main`)."""

    @click.group(cls=FloraGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, "--version", "-V", prog_name="flora")
    @click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar="FLORA_CONFIG",
                  help="Server config file (default: ./config.toml; environment variables win).")
    @click.pass_context
    def flora(ctx, config_path):
        """flora: one Discord bot, programmed per guild in TypeScript."""
        ctx.ensure_object(dict)["config_path"] = config_path

    for command in (serve, api_command, dev, login_command, deploy, deployments, logs_command, tokens, plugins_command):
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
