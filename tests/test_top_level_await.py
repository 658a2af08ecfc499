"""Top-level await: a script whose module graph awaits at its top level is bundled as an ES module whose
body becomes an async function, and the load awaits it under the load deadline (bundle_driver.js,
isolate.py). End to end on the emulator: CLI/API -> bundler -> worker -> V8 -> ops -> emulator."""

from __future__ import annotations

import re
import time

import pytest
from conftest import BOT_TOKEN, bot_replies, deploy_files, emulator_guild, http_json, start_flora, stop_flora, wait_for

from flora_core.bundler import BundleError, Bundler
from flora_core.runtime.isolate import TOP_LEVEL_PREFIX, has_top_level_await

LOAD_TIMEOUT = 3

# flora's first KV example, with a handler reading what the top level wrote
DOC_EXAMPLE = """
const s = kv.store('x');
await s.set('k', 'v');
await new Promise((resolve) => setTimeout(resolve, 20));  // a timer at the top level, too
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot) return;
  await ctx.reply(`k=${await s.get('k')}`);
});
"""

PING = """
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot) return;
  await ctx.reply('previous: ' + ctx.msg.content);
});
"""


@pytest.fixture(scope="module")
def tla(tmp_path_factory):
    """One emulator + one `flora serve` with a short load deadline, shared by this module."""
    from flora_dev.emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    server = None
    try:
        server = start_flora(emu, tmp_path_factory.mktemp("flora-tla"), RUNTIME_LOAD_TIMEOUT_SECS=LOAD_TIMEOUT)
        server.emu = emu
        yield server
    finally:
        if server is not None:
            stop_flora(server)
        emu.stop()


def _create_store(server, guild_id: str, name: str) -> None:
    status, body = http_json("POST", f"{server.api}/kv/stores", {"guild_id": guild_id, "store_name": name}, token=server.token)
    assert status == 200, body


def _stored_bundle(server, guild_id: str) -> str:
    """The bundle of a guild's current deployment, as stored (what runs)."""
    status, dep = http_json("GET", f"{server.api}/deployments/{guild_id}?include_bundle=true", token=server.token)
    assert status == 200, dep
    return dep["bundle"]


def _answer(server, g, text: str, prefix: str) -> str:
    server.emu.user_says(g["channel_id"], g["user_id"], text)
    found = wait_for(
        lambda: [m for m in bot_replies(server.emu, g["channel_id"]) if m["content"].startswith(prefix)],
        message=f"a reply starting with {prefix!r}",
    )
    return found[-1]["content"]


def test_the_doc_kv_example_loads_and_answers(tla):
    g = emulator_guild(tla.emu, "TLA KV")
    _create_store(tla, g["id"], "x")
    status, body = deploy_files(tla, g["id"], {"src/main.ts": DOC_EXAMPLE})
    assert status == 200, body
    # the load awaited the top level: the value is there as soon as the deploy answered
    assert http_json("GET", f"{tla.api}/kv/{g['id']}/x/k", token=tla.token)[1] == {"value": "v"}
    assert has_top_level_await(_stored_bundle(tla, g["id"]))
    assert _answer(tla, g, "hello", "k=") == "k=v"


def test_awaits_in_imported_modules_and_a_rest_op_at_the_top_level(tla):
    g = emulator_guild(tla.emu, "TLA REST")
    files = {
        "src/config.ts": "export const greeting: string = await Promise.resolve('hi from config');\n",
        "src/main.ts": f"""
import {{ greeting }} from './config';
const sent = await rest.sendMessage({{ channelId: '{g["channel_id"]}', content: 'top level: ' + greeting }});
on('messageCreate', async (ctx) => {{
  if (ctx.msg.author.bot) return;
  await ctx.reply('first message was ' + sent.id);
}});
export const unused = 1;
""",
    }
    status, body = deploy_files(tla, g["id"], files)
    assert status == 200, body
    sent = [m for m in bot_replies(tla.emu, g["channel_id"]) if m["content"] == "top level: hi from config"]
    assert len(sent) == 1  # sent during the load, before the deploy answered
    assert _answer(tla, g, "which", "first message was") == f"first message was {sent[0]['id']}"


def test_a_top_level_that_never_settles_fails_the_load_in_time_and_the_previous_script_runs(tla):
    g = emulator_guild(tla.emu, "TLA forever")
    assert deploy_files(tla, g["id"], {"src/main.ts": PING})[0] == 200
    started = time.monotonic()
    status, body = deploy_files(
        tla,
        g["id"],
        {"src/main.ts": "console.log('waiting forever');\nawait new Promise(() => {});\n" + PING.replace("previous", "new")},
    )
    took = time.monotonic() - started
    assert status == 400, body
    assert body["message"].startswith("Bad request: deployment failed: ")
    assert f"the script's top level did not finish within the {LOAD_TIMEOUT}s load deadline" in body["message"]
    assert LOAD_TIMEOUT - 0.5 < took < LOAD_TIMEOUT + 8
    assert tla.wait_log(g["id"], "deploy failed: the script's top level did not finish")["level"] == "error"
    assert _answer(tla, g, "still", "previous:") == "previous: still"


def test_a_top_level_that_spins_after_an_await_is_stopped_by_the_load_deadline(tla):
    g = emulator_guild(tla.emu, "TLA spin")
    assert deploy_files(tla, g["id"], {"src/main.ts": PING})[0] == 200
    status, body = deploy_files(tla, g["id"], {"src/main.ts": "await null;\nwhile (true) {}\n"})
    assert status == 400, body
    assert f"in the script's top level, loading the script exceeded the {LOAD_TIMEOUT}s load deadline" in body["message"]
    assert _answer(tla, g, "alive", "previous:") == "previous: alive"


def test_a_top_level_that_throws_after_an_await_reports_where(tla, tmp_path):
    g = emulator_guild(tla.emu, "TLA throws")
    assert deploy_files(tla, g["id"], {"src/main.ts": PING})[0] == 200
    files = {
        "src/util.ts": "export function check(v: string): string {\n  if (v !== 'ok') throw new Error('tla boom: ' + v);\n"
        "  return v;\n}\n",
        "src/main.ts": "import { check } from './util';\nconst v = await Promise.resolve('bad');\ncheck(v);\n",
    }
    status, body = deploy_files(tla, g["id"], files)
    assert status == 400, body
    message = body["message"]
    assert "the script's top level failed: Error: tla boom: bad" in message
    # the position is the bundle's (as for any error of a script): the line of the throw, then of the call
    bundle = Bundler(tmp_path / "cache").bundle("src/main.ts", [{"path": p, "contents": c} for p, c in files.items()])
    lines = bundle.splitlines()
    throw_line = next(i for i, ln in enumerate(lines, 1) if "throw new Error" in ln)
    call_line = next(i for i, ln in enumerate(lines, 1) if ln.strip() == "check(v);")
    positions = [int(n) for n in re.findall(rf"guild/{g['id']}/bundle\.js:(\d+):\d+", message)]
    assert positions[:2] == [throw_line, call_line], message
    assert _answer(tla, g, "kept", "previous:") == "previous: kept"


def test_a_prebuilt_esm_bundle_with_top_level_await(tla):
    """flora's CLI uploads an ES module from its build service: with top-level await it loads the same way."""
    g = emulator_guild(tla.emu, "TLA bundle")
    _create_store(tla, g["id"], "x")
    bundle = """
const s = kv.store("x");
await s.set("from-bundle", "yes");
const greet = (args) => `esm ${args.join(",")}: ${seen}`;
const seen = await s.get("from-bundle");
createBot({ commands: [prefix({ name: "ping", run: (ctx) => ctx.reply(greet(ctx.args)) })] });
export { greet };
export default greet;
"""
    status, body = http_json(
        "POST",
        f"{tla.api}/deployments/{g['id']}",
        {"entry": "src/main.ts", "bundle": bundle},
        token=tla.token,
        headers={"x-flora-deploy-source": "cli"},
    )
    assert status == 200, body
    assert http_json("GET", f"{tla.api}/kv/{g['id']}/x/from-bundle", token=tla.token)[1] == {"value": "yes"}
    assert _answer(tla, g, "!ping 1 2", "esm ") == "esm 1,2: yes"


def test_a_script_without_top_level_await_is_bundled_and_runs_as_before(tla):
    g = emulator_guild(tla.emu, "No TLA")
    script = "var counter = 0;\n" + PING.replace(
        "'previous: ' + ctx.msg.content", "`plain ${++counter} ${typeof globalThis.counter}`"
    )
    assert deploy_files(tla, g["id"], {"src/main.ts": script})[0] == 200
    bundle = _stored_bundle(tla, g["id"])
    assert bundle.startswith("(() => {") and "__floraTopLevel" not in bundle and not has_top_level_await(bundle)
    # a top-level var of the script stays the script's own, as it always was in an IIFE
    assert _answer(tla, g, "one", "plain ") == "plain 1 undefined"


# -- the bundler alone ---------------------------------------------------------------------------------
def test_the_bundle_of_a_script_with_top_level_await(tmp_path):
    bundler = Bundler(tmp_path / "cache")
    js = bundler.bundle(
        "src/main.ts",
        [
            {
                "path": "src/main.ts",
                "contents": "#!/usr/bin/env flora\nimport { n } from './n';\nexport default n;\n"
                "export const shown = await Promise.resolve(n);\n",
            },
            {"path": "src/n.ts", "contents": "export const n: number = 1;\n"},
        ],
    )
    first, rest = js.split("\n", 1)
    assert first == "#!/usr/bin/env flora" and rest.startswith(TOP_LEVEL_PREFIX) and has_top_level_await(js)
    assert rest.rstrip().endswith("});") and "export" not in rest  # the entry's export clause is gone

    with pytest.raises(BundleError, match="import.meta cannot be used in a script with top-level await"):
        bundler.bundle("src/main.ts", [{"path": "src/main.ts", "contents": "await 1;\nconsole.log(import.meta.url);\n"}])
    # other errors are reported as before, with the position
    with pytest.raises(BundleError, match=r"src/main\.ts:2:\d+: "):
        bundler.bundle("src/main.ts", [{"path": "src/main.ts", "contents": "await 1;\nconst x: number = ;\n"}])
    with pytest.raises(BundleError, match=r"^src/main\.ts:2:\d+: .*No matching export") as info:
        bundler.bundle(
            "src/main.ts",
            [
                {"path": "src/main.ts", "contents": "await 1;\nimport { nope } from './n';\nnope();\n"},
                {"path": "src/n.ts", "contents": "export const n = 1;\n"},
            ],
        )
    assert "Top-level await" not in str(info.value)  # only the script's real problem is named


def test_flora_deploy_uploads_a_project_with_top_level_await(tla, tmp_path):
    g = emulator_guild(tla.emu, "TLA CLI")
    _create_store(tla, g["id"], "x")
    (tmp_path / "bot" / "src").mkdir(parents=True)
    (tmp_path / "bot" / "src" / "main.ts").write_text(DOC_EXAMPLE)
    out = tla.deploy_dir(g["id"], tmp_path / "bot")
    assert f"Deployed guild {g['id']}" in out.stdout
    assert http_json("GET", f"{tla.api}/kv/{g['id']}/x/k", token=tla.token)[1] == {"value": "v"}
    assert _answer(tla, g, "cli", "k=") == "k=v"
