"""The ``flora`` command: one line on stderr for every user error, never a traceback."""

from __future__ import annotations

import json
import os
import re
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from werkzeug.serving import make_server

from flora_cli.client import collect_files
from flora_cli.main import cli, make_cli
from flora_core import hookimpl
from flora_core.bus import UnixSocketClient
from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.storage import open_database, repo
from flora_dev.testing import http_json
from flora_http import create_app

GUILD = "123456789012345678"
FLORA_BIN = Path(sys.executable).parent / "flora"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A clean folder and environment: data in tmp, no token, no config file."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith(("RUNTIME_", "API_", "DATABASE_", "FLORA_", "DISCORD_")):
            monkeypatch.delenv(key)
    monkeypatch.setenv("FLORA_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture
def runner():
    return CliRunner()


def error_lines(result) -> list[str]:
    """stderr lines written by the CLI itself (plugin loading may log on its own)."""
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


def assert_one_line_error(result, code: int, text: str):
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    [line] = error_lines(result)
    assert text in line, line


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the command itself ---------------------------------------------------------------
def test_help_and_version_from_the_console_script():
    out = subprocess.run([str(FLORA_BIN), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("serve", "deploy", "tokens", "plugins"):
        assert re.search(rf"^\s+{command}\b", out.stdout, re.M)
    version = subprocess.run([str(FLORA_BIN), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == "flora, version 0.1.0"


def test_usage_error_is_one_line_exit_2(env, runner):
    result = runner.invoke(cli, ["deploy", "--bogus"])
    assert_one_line_error(result, 2, "No such option")
    assert "flora deploy --help" in result.stderr


def test_unknown_command_is_one_line_exit_2(env, runner):
    assert_one_line_error(runner.invoke(cli, ["nope"]), 2, "No such command")


# -- config errors -------------------------------------------------------------------------
def test_serve_without_discord_token_points_at_flora_dev(env, runner):
    result = runner.invoke(cli, ["serve"])
    assert_one_line_error(result, 2, "DISCORD_TOKEN is required")
    assert "flora serve --emulator" in error_lines(result)[0]


@pytest.mark.parametrize("args", [["serve"], ["tokens", "list"]])
def test_invalid_config_value_is_one_line_exit_2(env, runner, monkeypatch, args):
    monkeypatch.setenv("RUNTIME_MAX_WORKERS", "0")
    monkeypatch.setenv("DISCORD_TOKEN", "x")
    result = runner.invoke(cli, args)
    assert_one_line_error(result, 2, "invalid RUNTIME_MAX_WORKERS: must be between 1 and 64, got 0")


def test_invalid_config_file_is_one_line_exit_2(env, runner):
    (env / "config.toml").write_text("[api\nport = 1\n")
    assert_one_line_error(runner.invoke(cli, ["tokens", "list"]), 2, "invalid TOML")


def test_missing_config_file_given_with_config_is_exit_2(env, runner):
    assert_one_line_error(runner.invoke(cli, ["--config", "nope.toml", "tokens", "list"]), 2, "does not exist")


def test_console_script_config_error_has_no_traceback(env):
    out = subprocess.run(
        [str(FLORA_BIN), "tokens", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RUNTIME_MAX_WORKERS": "0"},
    )
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "Error: invalid RUNTIME_MAX_WORKERS: must be between 1 and 64, got 0" in out.stderr.splitlines()


# -- tokens ------------------------------------------------------------------------------------
def test_tokens_create_list_revoke_round_trip(env, runner):
    config = load_config()
    db = open_database(config, Plugins())  # the server's database (flora serve made it)
    created = runner.invoke(cli, ["tokens", "create", "--label", "ci"])
    assert created.exit_code == 0, created.stderr
    token = created.stdout.strip()
    assert created.stdout == token + "\n"  # only the token on stdout
    assert re.fullmatch(r"[A-Za-z0-9]{12}\.[A-Za-z0-9]{32}", token)
    token_id = token.split(".")[0]
    assert token_id in created.stderr
    assert f"Using the database at {config.data_path / 'flora.db'}" in created.stderr.splitlines()

    assert repo.verify_token(db, token)["label"] == "ci"

    listed = runner.invoke(cli, ["tokens", "list", "--json"])
    assert listed.exit_code == 0
    [item] = json.loads(listed.stdout)
    assert item["token_id"] == token_id and item["label"] == "ci" and item["last_used_at"] is not None
    assert set(item) == {"token_id", "label", "scope", "guild_ids", "created_at", "last_used_at"}
    assert (item["scope"], item["guild_ids"]) == ("admin", None)
    table = runner.invoke(cli, ["tokens", "list"])
    assert token_id in table.stdout and "ci" in table.stdout and token.split(".")[1] not in table.stdout

    revoked = runner.invoke(cli, ["tokens", "revoke", token_id])
    assert revoked.exit_code == 0 and token_id in revoked.stdout
    assert repo.verify_token(db, token) is None
    assert runner.invoke(cli, ["tokens", "list"]).stdout.strip() == "No tokens."
    assert_one_line_error(runner.invoke(cli, ["tokens", "revoke", token_id]), 1, f"Token not found: {token_id}")


@pytest.mark.parametrize(
    "args",
    [["tokens", "list"], ["tokens", "create"], ["kv", "stores", "--guild-id", GUILD], ["secrets", "list", "--guild-id", GUILD]],
)
def test_data_commands_in_a_folder_without_the_servers_data_create_nothing(env, args):
    out = subprocess.run(
        [sys.executable, "-m", "flora_cli", *args], capture_output=True, text=True, timeout=120, env=dict(os.environ), cwd=env
    )
    assert (out.returncode, out.stderr) == (
        1,
        f"Error: no flora database at {env / 'data' / 'flora.db'}: run this where "
        "`flora serve` runs, or point FLORA_DATA_DIR (or --config) at the "
        "server's data folder\n",
    )
    assert not (env / "data").exists()


def test_tokens_create_a_guild_scoped_deploy_token_and_list_shows_it(env, runner):
    open_database(load_config(), Plugins()).close()
    created = runner.invoke(
        cli, ["tokens", "create", "--label", "ci", "--guild-id", GUILD, "--guild-id", "223456789012345678", "--scope", "deploy"]
    )
    assert created.exit_code == 0, created.stderr
    assert f"scope deploy, guild(s) {GUILD}, 223456789012345678" in created.stderr
    [item] = json.loads(runner.invoke(cli, ["tokens", "list", "--json"]).stdout)
    assert (item["scope"], item["guild_ids"]) == ("deploy", [GUILD, "223456789012345678"])
    header, row = runner.invoke(cli, ["tokens", "list"]).stdout.splitlines()
    assert header.split() == ["TOKEN", "ID", "LABEL", "SCOPE", "GUILDS", "CREATED", "LAST", "USED"]
    assert header.index("SCOPE") == row.index("deploy") and header.index("GUILDS") == row.index(GUILD)
    bad = runner.invoke(cli, ["tokens", "create", "--guild-id", "abc"])
    assert_one_line_error(bad, 2, "'abc' is not a Discord snowflake (digits)")
    assert_one_line_error(runner.invoke(cli, ["tokens", "create", "--scope", "root"]), 2, "'root' is not one of")


# -- plugins -----------------------------------------------------------------------------------
def test_plugins_json_lists_built_ins(env, runner):
    result = runner.invoke(cli, ["plugins", "--json"])
    assert result.exit_code == 0
    described = {p["name"]: p for p in json.loads(result.stdout)}
    assert described["api_core"]["registered"] == {"blueprint": ["flora_api"]}
    assert described["sqlite_storage"]["module"] == "flora_plugins.storage.sqlite"
    assert all("version" in p for p in described.values())


def test_plugins_add_commands_and_a_broken_one_does_not_break_the_cli(env, runner, monkeypatch):
    monkeypatch.delenv("FLORA_STRICT_PLUGINS", raising=False)  # production mode: log and go on

    class Greeter:
        @hookimpl
        def flora_register_commands(self, cli):
            @cli.command()
            def hello():
                click.echo("hello from a plugin")

    class Broken:
        @hookimpl
        def flora_register_commands(self, cli):
            raise RuntimeError("boom")

    plugins = Plugins()
    plugins.add(Greeter(), "greeter")
    plugins.add(Broken(), "broken")
    try:
        group = make_cli()
        plugins.register_commands(group)
        result = runner.invoke(group, ["hello"], obj={"plugins": plugins})
        assert result.exit_code == 0 and result.stdout == "hello from a plugin\n"
        described = {
            p["name"]: p for p in json.loads(runner.invoke(group, ["plugins", "--json"], obj={"plugins": plugins}).stdout)
        }
        assert described["greeter"]["registered"]["command"] == ["hello"]
    finally:
        plugins.remove("greeter")
        plugins.remove("broken")


# -- deploy: local problems ---------------------------------------------------------------------
def write_project(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_deploy_without_token(env, runner):
    write_project(env, {"src/main.ts": "console.log(1);\n"})
    assert_one_line_error(
        runner.invoke(cli, ["deploy", "--guild-id", GUILD]),
        1,
        "Missing API token; run `flora login`, pass --token or set FLORA_TOKEN",
    )


def test_deploy_without_entry_file(env, runner, monkeypatch):
    monkeypatch.setenv("FLORA_TOKEN", "abcdefghijkl.abcdefghijklmnopqrstuvwxyz012345")
    write_project(env, {"src/other.ts": "console.log(1);\n"})
    assert_one_line_error(runner.invoke(cli, ["deploy", "--guild-id", GUILD]), 1, "Entry file not found: src/main.ts")


def test_deploy_without_guild(env, runner):
    assert_one_line_error(runner.invoke(cli, ["deploy", "--token", "t"]), 2, "Missing option '--guild-id'")


def test_deploy_with_unreachable_api(env, runner):
    write_project(env, {"src/main.ts": "console.log(1);\n"})
    api = f"http://127.0.0.1:{free_port()}/api"
    result = runner.invoke(cli, ["deploy", "--guild-id", GUILD, "--token", "t", "--api", api])
    assert_one_line_error(result, 1, f"Cannot reach the flora API at {api}: connection refused")


def test_collect_files_like_flora(tmp_path):
    write_project(
        tmp_path,
        {
            "src/main.ts": "import './util';\n",
            "src/util.mts": "export {};\n",
            "src/view.tsx": "export {};\n",
            "src/readme.md": "# not code\n",
            "src/ignored.ts": "nope\n",
            "src/generated/x.ts": "nope\n",
            "scripts/tool.cjs": "module.exports = 1;\n",
            "package.json": "{}\n",
            "tsconfig.json": "{}\n",
            "node_modules/dep/index.js": "nope\n",
            "dist/bundle.js": "nope\n",
            ".git/hooks/x.js": "nope\n",
            "data/cache/bundles/abc.js": "the server's cache\n",
            ".gitignore": "# comment\nignored.ts\n/src/generated/\n",
        },
    )
    paths = [f["path"] for f in collect_files(tmp_path, exclude=(tmp_path / "data",))]
    assert paths == ["package.json", "scripts/tool.cjs", "src/main.ts", "src/util.mts", "src/view.tsx", "tsconfig.json"]


# -- deploy: against a real API ------------------------------------------------------------------
class RuntimeDouble:
    """The runtime's control socket: every load succeeds; bundles are kept."""

    def __init__(self):
        self.bundles: list[str] = []
        self.dir = tempfile.mkdtemp(prefix="flora-rt-", dir="/tmp")
        self.path = os.path.join(self.dir, "rt.sock")
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                double.bundles.append(body.get("bundle"))
                data = b'{"ok": true}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(self.path, Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def api(env):
    """A real API (werkzeug server in a thread) on a tmp database, with a token."""
    config = load_config()
    plugins = Plugins()
    db = open_database(config, plugins)
    runtime = RuntimeDouble()
    server = make_server("127.0.0.1", 0, create_app(config, plugins, db, UnixSocketClient(runtime.path)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield {
            "url": f"http://127.0.0.1:{server.server_port}/api",
            "token": repo.create_token(db)[0],
            "db": db,
            "runtime": runtime,
        }
    finally:
        server.shutdown()
        runtime.close()


def test_deploy_uploads_the_project_and_prints_the_result(api, env, runner, monkeypatch):
    monkeypatch.setenv("FLORA_TOKEN", api["token"])
    monkeypatch.setenv("FLORA_API_URL", api["url"])
    write_project(
        env,
        {
            "src/main.ts": 'import { n } from "./n";\nconsole.log(n);\n',
            "src/n.ts": "export const n: number = 41 + 1;\n",
            "flora.toml": f'[deploy]\nguild_id = "{GUILD}"\n',
        },
    )
    result = runner.invoke(cli, ["deploy"])
    assert result.exit_code == 0, result.stderr
    assert "Collected 2 files" in result.stderr and "Deploying src/main.ts" in result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Deployed guild {GUILD}" and lines[1] == "  entry: src/main.ts" and lines[2].startswith("  updated: ")
    assert "41 + 1" in api["runtime"].bundles[0]
    rev = repo.latest_success(api["db"], GUILD)
    assert rev["deploy_source"] == "cli"
    assert sorted(f["path"] for f in rev["files"]) == ["src/main.ts", "src/n.ts"]

    as_json = runner.invoke(cli, ["deploy", "--json", "src/main.ts"])
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["guild_id"] == GUILD


def test_deploy_uploads_what_the_entry_imports_json_included_and_not_unrelated_files(api, env, runner):
    files = {f"docs/example{i}.ts": f"export const x{i} = {i};\n" for i in range(300)}  # beyond the server's 200
    files.update(
        {
            "src/main.ts": 'import { n } from "./n";\nimport data from "./data.json" with { type: "json" };\n'
            "console.log(n, data.greeting);\n",
            "src/n.ts": "export type N = number;\nexport const n: N = 42;\n",
            "src/data.json": '{"greeting": "hej"}\n',
            "src/unused.json": '{"secret": "not uploaded"}\n',
            "package.json": "{}\n",
        }
    )
    write_project(env, files)
    result = runner.invoke(cli, ["deploy", "--guild-id", GUILD, "--api", api["url"], "--token", api["token"]])
    assert result.exit_code == 0, result.stderr
    assert "Collected 4 files" in result.stderr
    rev = repo.latest_success(api["db"], GUILD)
    assert sorted(f["path"] for f in rev["files"]) == ["package.json", "src/data.json", "src/main.ts", "src/n.ts"]
    assert "hej" in api["runtime"].bundles[-1]


def test_deploy_shows_the_servers_typescript_error(api, env, runner):
    write_project(env, {"src/main.ts": "const ok = 1;\nconst broken: = ;\n"})
    result = runner.invoke(cli, ["deploy", "--guild-id", GUILD, "--api", api["url"], "--token", api["token"]])
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert re.search(r"^Error: Bad request: invalid deployment files: src/main\.ts:2:\d+: ", result.stderr, re.M)


def test_deploy_with_a_bad_token_shows_the_server_message(api, env, runner):
    write_project(env, {"src/main.ts": "console.log(1);\n"})
    result = runner.invoke(
        cli, ["deploy", "--guild-id", GUILD, "--api", api["url"], "--token", "abcdefghijkl.abcdefghijklmnopqrstuvwxyz012345"]
    )
    assert_one_line_error(result, 1, "Unauthorized: invalid or unknown token")


def test_login_stores_the_token_for_the_other_commands(env, runner, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.delenv("FLORA_TOKEN", raising=False)
    bad = runner.invoke(cli, ["login", "nonsense"])
    assert bad.exit_code == 1 and "does not look like a flora API token" in bad.output
    token = "abcdefghijkl." + "x" * 32
    result = runner.invoke(cli, ["login", token, "--api", "http://127.0.0.1:9/api"])
    assert result.exit_code == 0, result.output
    stored = tmp_path / "cfg" / "flora" / "cli.json"
    assert json.loads(stored.read_text()) == {"token": token, "api": "http://127.0.0.1:9/api"}
    assert stored.stat().st_mode & 0o777 == 0o600
    # the stored token and API are used: the error is now about reaching that API, not a missing token
    out = runner.invoke(cli, ["deployments", "list"])
    assert out.exit_code == 1 and "Missing API token" not in out.output and "127.0.0.1:9" in out.output


# -- Ctrl-C ------------------------------------------------------------------------------------
def _wait_line(proc, needle: str, timeout: float = 60) -> None:
    import select

    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stderr.fileno(), 4096).decode()
            if not chunk:
                break
            seen += chunk
            if needle in seen:
                return
    raise AssertionError(f"{needle!r} not printed within {timeout}s; got {seen!r}")


def test_ctrl_c_stops_logs_follow_quietly_with_exit_0(api, env):
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "flora_cli", "logs", "--guild-id", GUILD, "-f", "--api", api["url"], "--token", api["token"]],
        cwd=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_line(proc, "Following the log")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and b"Aborted" not in err and b"Traceback" not in err, err


def test_ctrl_c_during_a_deploy_says_the_server_may_have_applied_it(env):
    import signal

    got_request = threading.Event()
    release = threading.Event()

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the upload arrives, the answer never comes (until the test ends)
            self.rfile.read(int(self.headers["Content-Length"]))
            got_request.set()
            release.wait(60)

        def log_message(self, *args):
            pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    write_project(env, {"src/main.ts": "console.log(1);\n"})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flora_cli",
            "deploy",
            "--guild-id",
            GUILD,
            "--api",
            f"http://127.0.0.1:{server.server_address[1]}/api",
            "--token",
            "t" * 45,
        ],
        cwd=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert got_request.wait(60), "the upload never arrived"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        release.set()
        server.shutdown()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.decode().strip().splitlines()[-1] == (
        f"Error: Aborted: the server may have applied this deploy anyway; check with "
        f"`flora deployments history --guild-id {GUILD}`"
    )
    assert b"Traceback" not in err and b"success" not in out


def test_deploy_warns_about_kv_stores_the_script_names_that_do_not_exist(api, env, runner):
    write_project(env, {"src/main.ts": "const notes = kv.store('notes')\nconst logs = kv.store(\"logs\")\n"})
    args = ["deploy", "--guild-id", GUILD, "--api", api["url"], "--token", api["token"]]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings == [
        f"Warning: the script uses the KV store {name!r}, which guild {GUILD} does not have yet; create it with "
        f"`flora kv create --guild-id {GUILD} --store {name}` (flora dev creates the stores a project names)"
        for name in ("logs", "notes")
    ]
    for name in ("logs", "notes"):
        status, _ = http_json("POST", f"{api['url']}/kv/stores", {"guild_id": GUILD, "store_name": name}, token=api["token"])
        assert status in (200, 201)
    again = runner.invoke(cli, args)
    assert again.exit_code == 0 and "Warning:" not in again.stderr


def test_deploy_refuses_type_errors_unless_no_check(api, env, runner):
    write_project(
        env,
        {
            "src/main.ts": 'import { x } from "./util"\nconst n: number = "text"\n'
            "on('messageCreate', async (ctx) => { await ctx.reply(x + n) })\n",
            "src/util.ts": "export const x: string = 5\n",
        },
    )
    args = ["deploy", "--guild-id", GUILD, "--api", api["url"], "--token", api["token"]]
    refused = runner.invoke(cli, args)
    assert refused.exit_code == 1
    assert refused.stderr.splitlines()[-3:] == [
        "Error: 2 type error(s), nothing deployed (deploy anyway with --no-check):",
        "  src/main.ts:2:7: TS2322 Type 'string' is not assignable to type 'number'.",
        "  src/util.ts:1:14: TS2322 Type 'number' is not assignable to type 'string'.",
    ]
    assert api["runtime"].bundles == [] and repo.latest_success(api["db"], GUILD) is None
    anyway = runner.invoke(cli, [*args, "--no-check"])
    assert anyway.exit_code == 0, anyway.stderr
    assert len(api["runtime"].bundles) == 1
