"""What a guild's files may make the bundler read: their own files, nothing else (SECURITY.md).

Every escape route is tried against the real bundler (deno, esbuild), once inside bubblewrap and
once without it, so each of the other layers (the module-graph check, deno's read permission, the
source-map check) is shown to hold on its own; then through the API, with files and with a
prebuilt bundle. Each test plants a marker in the file the script tries to read and asserts the
marker is nowhere in what comes back.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from conftest import IN_CI
from test_http_api import GUILD, RuntimeDouble  # noqa: F401 - the API fixtures below reuse its double

from flora_core.bundler import BUNDLER_VERSION, BundleError, Bundler
from flora_core.config import ConfigError, load_config
from flora_core.sandbox import ToolSandbox
from flora_core.storage import repo

MARKER = "FLORA-SECRET-MARKER-7f3a"
SECRETS = ("DISCORD_TOKEN", "SECRETS_MASTER_KEY", "API_SECRET", "API_OPERATOR_SECRET", "DATABASE_URL", "REDIS_URL")


def _bwrap_works() -> bool:
    return ToolSandbox("auto").kind == "bwrap"


if not _bwrap_works() and IN_CI:
    pytest.fail("bubblewrap (bwrap) is required in CI: .ci/run installs Debian's bubblewrap", pytrace=False)

MODES = [pytest.param("bwrap", marks=pytest.mark.skipif(not _bwrap_works(), reason="bwrap not available")), "none"]


@pytest.fixture(scope="module")
def secret_files(tmp_path_factory):
    """Files a script must never read: another guild's KV store, the data folder's database, a plain file."""
    data = tmp_path_factory.mktemp("data")
    kv = data / "kv" / "999" / "store.sqlite"
    kv.parent.mkdir(parents=True)
    conn = sqlite3.connect(kv)
    conn.execute("CREATE TABLE kv (k TEXT, v TEXT)")
    conn.execute("INSERT INTO kv VALUES ('token', ?)", (MARKER,))
    conn.commit()
    conn.close()
    db = data / "flora.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE api_tokens (token_hash TEXT)")
    conn.execute("INSERT INTO api_tokens VALUES (?)", (MARKER,))
    conn.commit()
    conn.close()
    plain = data / "secret.ts"
    plain.write_text(f'export default "{MARKER}";\n', encoding="utf-8")
    return {"kv": kv, "db": db, "plain": plain}


@pytest.fixture(params=MODES)
def bundler(request, tmp_path, monkeypatch):
    monkeypatch.setenv("FLORA_TEST_ENV_MARKER", MARKER)  # so /proc/self/environ would hold the marker
    for name in SECRETS:
        monkeypatch.setenv(name, f"{name}-{MARKER}")
    return Bundler(tmp_path / "cache", sandbox=request.param)


def _escapes(secret_files) -> dict[str, str]:
    kv, db, plain = (str(secret_files[k]) for k in ("kv", "db", "plain"))
    up = "../" * 12
    return {
        "absolute path": f'import s from "{plain}";\nconsole.log(s);\n',
        "dot-dot traversal": f'import s from "{up}{plain.lstrip("/")}";\nconsole.log(s);\n',
        "file: URL": f'import s from "file://{plain}";\nconsole.log(s);\n',
        "/proc/self/environ as text": 'import env from "/proc/self/environ" with { type: "text" };\nconsole.log(env);\n',
        "/proc/self/environ as json": 'import env from "/proc/self/environ" with { type: "json" };\nconsole.log(env);\n',
        "/proc/self/fd/0": 'import s from "/proc/self/fd/0" with { type: "text" };\nconsole.log(s);\n',
        "/proc/self/fd/3": 'import s from "/proc/self/fd/3" with { type: "text" };\nconsole.log(s);\n',
        "/proc/self/cwd/../..": 'import s from "/proc/self/cwd/../../etc/hostname" with { type: "text" };\nconsole.log(s);\n',
        "another guild's KV file as text": f'import s from "{kv}" with {{ type: "text" }};\nconsole.log(s);\n',
        "another guild's KV file as bytes": f'import s from "{kv}" with {{ type: "bytes" }};\nconsole.log(s);\n',
        "the data folder's database": f'import s from "{db}" with {{ type: "text" }};\nconsole.log(s);\n',
        "dynamic import()": f'import("{plain}").then((m) => console.log(m));\n',
        "dynamic import() with attributes": f'import("{kv}", {{ with: {{ type: "text" }} }}).then(console.log);\n',
        "require()": f'const s = require("{plain}");\nconsole.log(s);\n',
        "re-export": f'export * from "{plain}";\n',
        "/dev/stdin": 'import s from "/dev/stdin" with { type: "text" };\nconsole.log(s);\n',
    }


ESCAPE_NAMES = list(_escapes({"kv": Path("/k"), "db": Path("/d"), "plain": Path("/p")}))


@pytest.mark.parametrize("route", ESCAPE_NAMES)
def test_escape_route_is_refused_with_the_import_and_its_position(bundler, secret_files, route):
    source = _escapes(secret_files)[route]
    with pytest.raises(BundleError) as info:
        bundler.bundle("src/main.ts", [{"path": "src/main.ts", "contents": source}])
    message = str(info.value)
    assert MARKER not in message
    assert message.startswith("src/main.ts:1:"), message
    assert "outside the project" in message or "is not allowed" in message, message
    assert not list((bundler.cache_dir).rglob("*.js"))  # nothing cached


@pytest.mark.parametrize("route", ESCAPE_NAMES)
def test_with_top_level_await_each_route_is_refused_by_the_other_layers_too(bundler, secret_files, route, monkeypatch):
    """A script with top-level await is bundled a second time, as an ES module (bundle_driver.js): with the
    module-graph check switched off, deno's permissions, the sandbox and the source map still refuse."""
    monkeypatch.setattr(Bundler, "_check_graph", staticmethod(lambda info, root, allowed: None))
    source = "await Promise.resolve();\n" + _escapes(secret_files)[route]
    with pytest.raises(BundleError) as info:
        bundler.bundle("src/main.ts", [{"path": "src/main.ts", "contents": source}])
    assert MARKER not in str(info.value)
    assert "Top-level await" not in str(info.value)  # not a problem any more: the read is the one named
    assert not list((bundler.cache_dir).rglob("*.js"))  # nothing cached


@pytest.mark.parametrize("kind", ["text", "bytes"])
def test_only_json_attributes_even_for_the_projects_own_files(bundler, kind):
    files = [
        {"path": "src/main.ts", "contents": f'import s from "./notes.txt" with {{ type: "{kind}" }};\nconsole.log(s);\n'},
        {"path": "src/notes.txt", "contents": "hello"},
    ]
    with pytest.raises(BundleError, match=rf'^src/main.ts:1:15: import "./notes.txt" with {{ type: "{kind}" }} is not allowed'):
        bundler.bundle("src/main.ts", files)


@pytest.mark.parametrize(
    "specifier, reason",
    [
        ("npm:left-pad", "npm: packages are not supported"),
        ("jsr:@std/path", "jsr: packages are not supported"),
        ("https://deno.land/x/y.ts", "remote imports are not supported"),
        ("node:fs", "Node.js built-in modules do not exist"),
        ("data:text/javascript,export default 1", "is not a file of the project"),
    ],
)
def test_remote_and_package_specifiers_are_refused(bundler, specifier, reason):
    files = [{"path": "src/main.ts", "contents": f'\nimport x from "{specifier}";\nconsole.log(x);\n'}]
    with pytest.raises(BundleError) as info:
        bundler.bundle("src/main.ts", files)
    assert str(info.value).startswith(f'src/main.ts:2:15: import "{specifier}"') and reason in str(info.value)


def test_an_import_of_a_missing_project_file_says_so(bundler):
    files = [{"path": "src/main.ts", "contents": 'import { x } from "./lib/nope";\nconsole.log(x);\n'}]
    with pytest.raises(BundleError, match=r'^src/main.ts:1:19: import "./lib/nope": no such file in the project$'):
        bundler.bundle("src/main.ts", files)


def test_the_projects_own_files_still_bundle(bundler):
    files = [
        {
            "path": "src/main.ts",
            "contents": 'import cfg from "./config.json" with { type: "json" };\n'
            'import { add } from "./lib/math";\nimport * as all from "./lib";\n'
            "enum Color { Red }\ninterface P { n: number }\nconst p: P = { n: add(1, 2) };\n"
            "console.log(cfg.name, p.n, all.add, Color.Red);\n",
        },
        {"path": "src/config.json", "contents": '{"name": "flora-json"}'},
        {"path": "src/lib/math.ts", "contents": "export const add = (a: number, b: number): number => a + b;\n"},
        {"path": "src/lib/index.ts", "contents": 'export * from "./math.ts";\n'},
    ]
    js = bundler.bundle("src/main.ts", files)
    assert "flora-json" in js and "a + b" in js and ": number" not in js
    assert bundler.bundle("src/main.ts", files) == js  # cached


def test_a_symlink_in_the_project_folder_is_not_followed(bundler, secret_files, tmp_path):
    """What a future archive extraction could let through: each remaining layer refuses it."""
    work = tmp_path / "work"
    (work / "project" / "src").mkdir(parents=True)
    (work / "project" / "src" / "main.ts").write_text('import s from "./leak.ts";\nconsole.log(s);\n', encoding="utf-8")
    os.symlink(secret_files["plain"], work / "project" / "src" / "leak.ts")
    with pytest.raises(BundleError) as info:
        bundler.bundle_folder(work, "src/main.ts", {"src/main.ts", "src/leak.ts"})
    assert MARKER not in str(info.value)


def test_a_prebuilt_bundle_goes_through_the_same_checks(bundler, secret_files):
    esm = f'import s from "{secret_files["kv"]}" with {{ type: "text" }};\nexport const x = s;\n'
    with pytest.raises(BundleError, match="outside the project"):
        bundler.script_from_bundle(esm, 1024 * 1024)


@pytest.mark.parametrize("mode", MODES)
def test_the_bundlers_processes_get_no_secret_from_the_environment(mode, tmp_path, monkeypatch):
    """A stand-in for deno records the environment both bundler processes really get."""
    for name in SECRETS:
        monkeypatch.setenv(name, f"{name}-{MARKER}")
    fake = tmp_path / "fake-deno"
    fake.write_text(
        "#!/usr/bin/python3\n"
        "import json, os, sys\n"
        "if sys.argv[1] == 'info':\n"
        "    print(json.dumps({'modules': [], 'env_info': dict(os.environ)}))\n"
        "else:\n"
        "    out = sys.argv[-1]\n"
        "    sources = [os.path.relpath(os.path.join(os.getcwd(), 'src/main.ts'), os.path.dirname(out))]\n"
        "    print(json.dumps({'success': True, 'js': json.dumps(dict(os.environ)),\n"
        "                      'map': json.dumps({'version': 3, 'sources': sources})}))\n",
        encoding="utf-8",
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    bundler = Bundler(tmp_path / "cache", sandbox=mode, deno_bin=str(fake))
    env = json.loads(bundler.bundle("src/main.ts", [{"path": "src/main.ts", "contents": "console.log(1)"}]))
    # PWD and LC_CTYPE are added by the stand-in's own interpreter (PEP 538), not by the bundler
    assert set(env) <= {"PATH", "DENO_DIR", "HOME", "NO_COLOR", "DENO_NO_UPDATE_CHECK", "DENO_NO_PROMPT", "PWD", "LC_CTYPE"}, env
    assert "DENO_DIR" in env and not any(name in env for name in SECRETS)
    assert MARKER not in json.dumps(env)


def test_bundles_cached_by_the_old_bundler_are_never_served(tmp_path):
    files = [{"path": "src/main.ts", "contents": 'console.log("fresh");\n'}]
    cache = tmp_path / "cache"
    cache.mkdir()
    old_key = hashlib.sha256(json.dumps(["src/main.ts", sorted((f["path"], f["contents"]) for f in files)]).encode()).hexdigest()
    (cache / f"{old_key}.js").write_text(f'console.log("{MARKER}");', encoding="utf-8")
    js = Bundler(cache).bundle("src/main.ts", files)
    assert "fresh" in js and MARKER not in js
    assert not (cache / f"{old_key}.js").exists()
    assert [p.parent.name for p in cache.rglob("*.js")] == [f"v{BUNDLER_VERSION}"]


def test_a_required_sandbox_that_cannot_run_is_a_one_line_config_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap here
    config = load_config(env={"BUNDLER_SANDBOX": "bwrap", "FLORA_DATA_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"^BUNDLER_SANDBOX=bwrap but bwrap is not installed"):
        ToolSandbox(config.bundler_sandbox).check()
    with pytest.raises(BundleError, match="the bundler cannot run safely on this server: BUNDLER_SANDBOX=bwrap"):
        Bundler(tmp_path / "c", sandbox="bwrap").bundle("a.js", [{"path": "a.js", "contents": "1"}])
    with pytest.raises(ConfigError, match=r"^invalid BUNDLER_SANDBOX: expected one of auto, bwrap, none"):
        load_config(env={"BUNDLER_SANDBOX": "maybe"})


# -- through the API, and bundles stored before the checks ---------------------------------
@pytest.fixture
def api(tmp_path, monkeypatch):
    from flora_core.plugins import Plugins
    from flora_core.storage import open_database
    from flora_http import create_app

    monkeypatch.chdir(tmp_path)
    config = load_config(env={"FLORA_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": f"sqlite:///{tmp_path / 'flora.db'}"})
    plugins = Plugins()
    db = open_database(config, plugins)
    runtime = RuntimeDouble()
    token = repo.create_token(db, label="t")[0]
    app = create_app(config, plugins, db, runtime.client())
    yield app.test_client(), {"Authorization": f"Bearer {token}"}, db, runtime
    runtime.close()
    db.close()


def test_api_refuses_files_that_read_outside_the_project(api, secret_files):
    client, auth, db, runtime = api
    files = [
        {"path": "src/main.ts", "contents": f'import s from "{secret_files["kv"]}" with {{ type: "text" }};\nconsole.log(s);\n'}
    ]
    resp = client.post(f"/api/deployments/{GUILD}", json={"entry": "src/main.ts", "files": files}, headers=auth)
    assert resp.status_code == 400
    message = resp.get_json()["message"]
    assert message == (
        f'Bad request: invalid deployment files: src/main.ts:1:15: import "{secret_files["kv"]}" '
        "is outside the project (a script may import only its own files)"
    )
    assert MARKER not in resp.get_data(as_text=True)
    assert runtime.calls == [] and db.fetchall("SELECT id FROM deployment_revisions") == []


def test_api_refuses_a_prebuilt_bundle_that_reads_outside_the_project(api):
    client, auth, db, runtime = api
    body = {
        "entry": "src/main.ts",
        "bundle": 'import env from "/proc/self/environ" with { type: "text" };\nexport default env;\n',
    }
    resp = client.post(f"/api/deployments/{GUILD}", json=body, headers=auth)
    assert resp.status_code == 400
    assert resp.get_json()["message"].startswith(
        'Bad request: invalid deployment bundle: bundle.js:1:17: import "/proc/self/environ"'
    )
    assert runtime.calls == []


def _legacy_revision(db, files, bundle):
    """A revision as stored before the checks: no bundler version, a bundle that may hold anything."""
    return repo.record_revision(db, GUILD, entry="src/main.ts", status="success", bundle=bundle, files=files)


def test_legacy_bundles_are_never_served_and_rollback_rebuilds_them(api, secret_files):
    client, auth, db, runtime = api
    good = _legacy_revision(db, [{"path": "src/main.ts", "contents": 'console.log("rebuilt");\n'}], f'console.log("{MARKER}")')
    evil = _legacy_revision(
        db,
        [{"path": "src/main.ts", "contents": f'import s from "{secret_files["plain"]}";\nconsole.log(s);\n'}],
        f'console.log("{MARKER}")',
    )
    bare = repo.record_revision(db, GUILD, entry="src/main.ts", status="success", bundle=f'console.log("{MARKER}")')
    assert repo.current_bundles(db) == {} and repo.current_bundle(db, GUILD) is None
    for path in (
        f"/api/deployments/{GUILD}?include_bundle=true",
        f"/api/deployments/{GUILD}/history?include_bundle=true",
        f"/api/deployments/{GUILD}/revisions/{good['id']}?include_bundle=true",
    ):
        resp = client.get(path, headers=auth)
        assert resp.status_code == 200 and MARKER not in resp.get_data(as_text=True), path

    resp = client.post(f"/api/deployments/{GUILD}/rollback/{evil['id']}", headers=auth)
    assert (
        resp.status_code == 400
        and "cannot be rebuilt" in resp.get_json()["message"]
        and "outside the project" in resp.get_json()["message"]
    )
    resp = client.post(f"/api/deployments/{GUILD}/rollback/{bare['id']}", headers=auth)
    assert resp.status_code == 400 and "no source files to rebuild it from" in resp.get_json()["message"]
    assert runtime.calls == []

    resp = client.post(f"/api/deployments/{GUILD}/rollback/{good['id']}", headers=auth)
    assert resp.status_code == 200, resp.get_json()
    [(_, sent)] = runtime.calls
    assert "rebuilt" in sent["bundle"] and MARKER not in sent["bundle"]
    assert repo.get_revision(db, GUILD, good["id"])["bundler_version"] == BUNDLER_VERSION
    assert repo.current_bundle(db, GUILD) == sent["bundle"]


def test_verified_bundle_rebuilds_what_the_runtime_would_load(api, secret_files, tmp_path):
    _, _, db, _ = api
    rev = _legacy_revision(db, [{"path": "src/main.ts", "contents": 'console.log("again");\n'}], f'"{MARKER}"')
    [legacy] = repo.legacy_current_revisions(db)
    assert legacy["id"] == rev["id"]
    js = repo.verified_bundle(db, legacy, Bundler(tmp_path / "c").bundle, BUNDLER_VERSION)
    assert "again" in js and MARKER not in js
    assert repo.legacy_current_revisions(db) == [] and repo.current_bundle(db, GUILD) == js


def test_no_bundler_work_folder_is_left_behind(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    b = Bundler(tmp_path / "cache")
    b.bundle("a.ts", [{"path": "a.ts", "contents": "const a: number = 1; console.log(a);"}])
    with pytest.raises(BundleError):
        b.bundle("a.ts", [{"path": "a.ts", "contents": 'import "/etc/passwd";'}])
    assert list((tmp_path / "tmp").iterdir()) == []


def test_flora_serve_rebuilds_legacy_deployments_at_start_and_leaves_refused_ones_unloaded(tmp_path, secret_files):
    """The upgrade path end to end: two deployments stored by an earlier flora, one clean, one that read a file."""
    from conftest import BOT_TOKEN, bot_replies, deploy_files, emulator_guild, http_json, start_flora, stop_flora, wait_for

    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    try:
        clean, evil = emulator_guild(emu, "Clean"), emulator_guild(emu, "Evil")
        server = start_flora(emu, tmp_path)
        try:
            script = "on('messageCreate', (ctx) => { if (ctx.msg.content === '!v') ctx.reply('clean v1'); });"
            for g in (clean, evil):
                assert deploy_files(server, g["id"], {"src/main.ts": script})[0] == 200
        finally:
            stop_flora(server)
        leaked = f"on('messageCreate', (ctx) => ctx.reply('{MARKER}'));"
        evil_files = json.dumps(
            [{"path": "src/main.ts", "contents": f'import s from "{secret_files["plain"]}";\nconsole.log(s);\n'}]
        )
        conn = sqlite3.connect(tmp_path / "data" / "flora.db")
        with conn:  # as an earlier flora stored them: no bundler version, a bundle that may hold anything
            conn.execute("UPDATE deployment_revisions SET bundler_version = NULL, bundle = ?", (leaked,))
            conn.execute("UPDATE deployment_revisions SET files = ? WHERE guild_id = ?", (evil_files, evil["id"]))
        conn.close()

        server = start_flora(emu, tmp_path)
        try:
            emu.user_says(clean["channel_id"], clean["user_id"], "!v")
            reply = wait_for(lambda: bot_replies(emu, clean["channel_id"]), timeout=30, message="the rebuilt script's reply")
            assert reply[0]["content"] == "clean v1"
            status, body = http_json("GET", f"{server.api}/deployments/{clean['id']}?include_bundle=true", token=server.token)
            assert status == 200 and "clean v1" in body["bundle"] and MARKER not in json.dumps(body)
            line = server.wait_log(evil["id"], "the stored deployment is not loaded", timeout=30)
            assert "outside the project" in line["message"] and line["level"] == "error"
            emu.user_says(evil["channel_id"], evil["user_id"], "!v")
            emu.user_says(clean["channel_id"], clean["user_id"], "!v")  # the clean guild's second reply bounds the wait
            wait_for(lambda: len(bot_replies(emu, clean["channel_id"])) == 2, timeout=30, message="second reply")
            assert all(MARKER not in m["content"] for m in bot_replies(emu, evil["channel_id"]))
            status, body = http_json("GET", f"{server.api}/deployments/{evil['id']}?include_bundle=true", token=server.token)
            assert status == 200 and "bundle" not in body
        finally:
            stop_flora(server)
    finally:
        emu.stop()


# -- the other places tenant input could reach a host file --------------------------------------
@pytest.mark.parametrize(
    "url",
    ["file:///etc/hostname", "file://localhost/proc/self/environ", "/etc/hostname", "ftp://example.com/x", "data:text/plain,hi"],
)
def test_attachment_urls_never_name_a_host_file(url):
    from flora_core.errors import OpError
    from flora_core.netguard import Guard
    from flora_plugins.discord_ops.attachments import parse_attachments

    with pytest.raises(OpError, match="only http and https URLs can be downloaded|invalid URL"):
        parse_attachments([{"Url": {"url": url}}], cap=1024, guard=Guard())


@pytest.mark.parametrize("guild_id", ["..", "../..", "1/../../x", ".hidden", "12a"])
def test_kv_export_builds_no_path_from_a_guild_id_that_is_not_a_snowflake(guild_id, tmp_path):
    from flora_plugins.kv.errors import KvError
    from flora_plugins.kv.export import export_guild

    with pytest.raises(KvError, match="guild_id"):
        export_guild(None, tmp_path, guild_id, None)  # refused before the service is asked anything
    assert list(tmp_path.rglob("*")) == []
