"""The declarations `flora types` assembles from the enabled plugins (the core's, sdk/index.d.ts,
sdk/web.d.ts and each plugin's own) say what the runtime really installs: a strict type check of a
script that uses every web global, fetch and every error code, the error codes compared with the
ones the Python side can raise, and a disabled plugin's names gone from the declarations too."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

EVERYTHING = """
const id = setTimeout((a: number) => console.log(a), 10, 1);
clearTimeout(id);
queueMicrotask(() => {});
const b64: string = btoa("hi") + atob("aGk=");
const bytes: number[] = new TextEncoder().encode("é");
const back: string = new TextDecoder().decode(bytes);
const copy: { a: number[] } = structuredClone({ a: [1] });
const uuid: string = crypto.randomUUID();
const url = new URL("/x?y=1#z", "https://example.com");
url.searchParams.append("k", "v");
const parts: string[] = [url.href, url.origin, url.host, url.pathname, url.search, url.hash, url.searchParams.toString()];
const form = new URLSearchParams({ a: "1" });
const headers = new Headers({ "x-a": "1" });
headers.append("x-b", "2");
async function call(): Promise<string> {
  const res: Response = await fetch(url, { method: "POST", headers, body: form, redirect: "manual" });
  const data = await res.clone().json<{ ok: boolean }>();
  return `${res.status} ${res.ok} ${res.headers.get("content-type")} ${data.ok} ${await res.text()}`;
}
function describe(code: FloraErrorCode): string {
  switch (code) {
%s
    default: {
      const unreachable: never = code;
      return unreachable;
    }
  }
}
console.log(b64, back, copy, uuid, parts, call, describe);
"""


def flora_types(out: Path, disabled: str = "") -> Path:
    """``flora types -o out`` with ``FLORA_DISABLE_PLUGINS=disabled``; returns ``out``."""
    env = dict(os.environ, FLORA_DISABLE_PLUGINS=disabled)
    proc = subprocess.run(
        [sys.executable, "-m", "flora_cli", "types", "-o", str(out)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.startswith(f"Wrote {out} ("), proc.stderr
    return out


def _dts_codes(text: str) -> set[str]:
    """The keys of every ``interface FloraErrorCodes`` (the core's and each plugin's)."""
    blocks = re.findall(r"^interface FloraErrorCodes \{(.*?)^\}", text, re.S | re.M)
    assert len(blocks) >= 2
    return {code for block in blocks for code in re.findall(r"^\s+([A-Z_]+): true$", block, re.M)}


def _deno() -> str:
    try:
        from deno import find_deno_bin

        deno = find_deno_bin()
    except Exception:  # noqa: BLE001 - no deno wheel
        deno = shutil.which("deno")
    if not deno:
        pytest.skip("deno is not installed")
    return deno


def _check(deno: str, folder: Path, name: str, code: str) -> subprocess.CompletedProcess:
    (folder / "deno.json").write_text(json.dumps({"compilerOptions": {"lib": ["es2023"], "strict": True}}))
    (folder / name).write_text('/// <reference path="./flora.d.ts" />\n' + code)
    env = dict(os.environ, NO_COLOR="1", DENO_NO_UPDATE_CHECK="1", DENO_DIR=str(folder / "deno"))
    return subprocess.run(
        [deno, "check", "--config", "deno.json", name], cwd=folder, env=env, capture_output=True, text=True, timeout=120
    )


def _python_codes() -> set[str]:
    """Code constants (``NAME = "NAME"``) and literal codes given to OpError/KvError."""
    found = set()
    for path in [*(ROOT / "flora_core").rglob("*.py"), *(ROOT / "flora_plugins").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Assign)
                and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and isinstance(node.value, ast.Constant)
                and node.value.value == node.targets[0].id
                and re.fullmatch(r"[A-Z][A-Z_]+", node.targets[0].id)
                and not node.targets[0].id.startswith("FLORA_")
            ):
                found.add(node.value.value)
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", None) in ("OpError", "KvError")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(node.args[0].value)
    return found


def test_the_error_codes_of_the_d_ts_are_the_ones_the_runtime_raises(tmp_path):
    python, declared = _python_codes(), _dts_codes(flora_types(tmp_path / "flora.d.ts").read_text(encoding="utf-8"))
    assert "INVALID_INPUT" in python and "KV_NOT_FOUND" in python  # the scan finds codes at all
    assert python == declared, f"only in Python: {sorted(python - declared)}; only in the .d.ts: {sorted(declared - python)}"


def test_a_script_using_every_web_global_fetch_and_error_code_type_checks(tmp_path):
    deno = _deno()
    text = flora_types(tmp_path / "flora.d.ts").read_text(encoding="utf-8")
    cases = "\n".join(f'    case "{c}": return "{c.lower()}";' for c in sorted(_dts_codes(text)))
    proc = _check(deno, tmp_path, "check.ts", EVERYTHING % cases)
    assert proc.returncode == 0, proc.stderr
    # and a misuse is caught (the check is not vacuous)
    bad = _check(deno, tmp_path, "bad.ts", "const n: number = new TextEncoder().encode('x');\n")
    assert bad.returncode != 0 and "number[]" in bad.stderr


PLUGIN_NAMES = """
import { kv as kvOfModule, rest as restOfModule, cron as cronOfModule, secrets as secretsOfModule, type CronOptions } from "@uwu/flora-sdk";
const options: CronOptions = { catchUp: "latest" };
console.log(kvOfModule === kv, restOfModule === rest, cronOfModule === cron, secretsOfModule === secrets, options);
const s: KvStore = kv.store("a");
const r: Promise<JsonValue> = rest.sendMessage({ channelId: "1", content: "x" });
const c: Promise<void> = cron("c", "* * * * *", (ctx: CronContext) => { console.log(ctx.scheduledAt); });
const t: string | undefined = secrets.get("T");
const f: Promise<Response> = fetch("https://example.com");
console.log(s, r, c, t, f, flora.kv === kv, flora.rest === rest);
"""


def test_each_plugin_declares_its_own_names_and_the_sdk_stands_without_them(tmp_path):
    deno = _deno()
    everything = tmp_path / "all"
    everything.mkdir()
    flora_types(everything / "flora.d.ts")
    assert _check(deno, everything, "plugins.ts", PLUGIN_NAMES).returncode == 0
    # the SDK's and the core's declarations alone: a script using only them checks, one using kv does not
    bare = tmp_path / "bare"
    bare.mkdir()
    text = flora_types(bare / "flora.d.ts", "kv,cron,secrets,discord_ops").read_text(encoding="utf-8")
    assert "flora:kv" not in text and "declare const rest" not in text and "declare function fetch" not in text
    sdk_only = (
        "createBot({ commands: [prefix({ name: 'p', run: (ctx) => ctx.reply('pong') })] });\n"
        "on('messageCreate', async (ctx) => { await ctx.reply(embed().setTitle(ctx.msg.content).toJSON().title ?? ''); });\n"
        "const e: FloraErrorCode = 'OP_UNAVAILABLE'; console.log(e, __floraGuildId, setTimeout);\n"
    )
    proc = _check(deno, bare, "sdk.ts", sdk_only)
    assert proc.returncode == 0, proc.stderr
    missing = _check(deno, bare, "kv.ts", "kv.store('a');\n")
    assert missing.returncode != 0 and "Cannot find name 'kv'" in missing.stderr
    # without the SDK: the core's own globals
    core = tmp_path / "core"
    core.mkdir()
    flora_types(core / "flora.d.ts", "sdk")
    raw = "__floraOn('messageCreate', (ctx) => __floraOp('op_send_message', { channelId: ctx.msg.channelId }));\n"
    assert _check(deno, core, "raw.ts", raw).returncode == 0
    assert "Cannot find name 'createBot'" in _check(deno, core, "sdk.ts", "createBot({});\n").stderr


def test_the_example_projects_tsconfig_includes_every_built_in_declaration_file():
    from flora_core.plugins import Plugins

    declared = {Path(str(path)).resolve() for (path, _), _ in Plugins()._type_declarations().values()}
    declared.add((ROOT / "flora_core" / "runtime" / "core.d.ts").resolve())
    project = ROOT / "examples" / "basic"
    include = json.loads((project / "tsconfig.json").read_text(encoding="utf-8"))["include"]
    assert {(project / p).resolve() for p in include if p.endswith(".d.ts")} == declared


def test_flora_dev_keeps_a_generated_flora_d_ts_up_to_date_and_leaves_other_files_alone(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import flora_dev.console
    from flora_cli.main import make_cli
    from flora_core.declarations import HEADER

    started = []
    monkeypatch.setattr(flora_dev.console, "run_dev", lambda project, *a, **k: started.append(project) or 0)
    monkeypatch.setenv("FLORA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("BUNDLER_SANDBOX", "none")
    generated = flora_types(tmp_path / "flora.d.ts", "kv")  # an older set of plugins
    assert "declare class KvStore" not in generated.read_text(encoding="utf-8")
    result = CliRunner().invoke(make_cli(), ["dev", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output == f"Updated {tmp_path / 'flora.d.ts'} (the declarations of the enabled plugins)\n"
    text = generated.read_text(encoding="utf-8")
    assert text.startswith(HEADER) and "declare class KvStore" in text and started == [tmp_path]
    assert CliRunner().invoke(make_cli(), ["dev", str(tmp_path)]).output == ""  # nothing changed: not rewritten
    generated.write_text("// my own declarations\n", encoding="utf-8")
    assert CliRunner().invoke(make_cli(), ["dev", str(tmp_path)]).exit_code == 0
    assert generated.read_text(encoding="utf-8") == "// my own declarations\n"
