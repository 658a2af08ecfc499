"""sdk/index.d.ts (with sdk/web.d.ts) says what the runtime really installs: a strict type check of a
script that uses every web global, fetch and every error code, and the error codes compared with the
ones the Python side can raise."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
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


def _dts_codes() -> set[str]:
    text = (ROOT / "sdk" / "index.d.ts").read_text(encoding="utf-8")
    union = re.search(r"type FloraErrorCode =(.*?)\n\n", text, re.S).group(1)
    return set(re.findall(r"'([A-Z_]+)'", union))


def _python_codes() -> set[str]:
    """Code constants (``NAME = "NAME"``) and literal codes given to OpError/KvError."""
    found = set()
    for path in [*(ROOT / "flora_core").rglob("*.py"), *(ROOT / "flora_plugins").rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Constant) and node.value.value == node.targets[0].id
                    and re.fullmatch(r"[A-Z][A-Z_]+", node.targets[0].id) and not node.targets[0].id.startswith("FLORA_")):
                found.add(node.value.value)
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("OpError", "KvError") and node.args
                    and isinstance(node.args[0], ast.Constant)):
                found.add(node.args[0].value)
    return found


def test_the_error_codes_of_the_d_ts_are_the_ones_the_runtime_raises():
    python, declared = _python_codes(), _dts_codes()
    assert "INVALID_INPUT" in python and "KV_NOT_FOUND" in python  # the scan finds codes at all
    assert python == declared, f"only in Python: {sorted(python - declared)}; only in the .d.ts: {sorted(declared - python)}"


def test_a_script_using_every_web_global_fetch_and_error_code_type_checks(tmp_path):
    try:
        from deno import find_deno_bin

        deno = find_deno_bin()
    except Exception:  # noqa: BLE001 - no deno wheel
        deno = shutil.which("deno")
    if not deno:
        pytest.skip("deno is not installed")
    cases = "\n".join(f'    case "{c}": return "{c.lower()}";' for c in sorted(_dts_codes()))
    (tmp_path / "deno.json").write_text(json.dumps({"compilerOptions": {"lib": ["es2023"], "strict": True}}))
    (tmp_path / "check.ts").write_text(f'/// <reference path="{(ROOT / "sdk" / "index.d.ts").as_posix()}" />\n'
                                       + EVERYTHING % cases)
    env = dict(os.environ, NO_COLOR="1", DENO_NO_UPDATE_CHECK="1", DENO_DIR=str(tmp_path / "deno"))
    proc = subprocess.run([deno, "check", "--config", "deno.json", "check.ts"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # and a misuse is caught (the check is not vacuous)
    (tmp_path / "bad.ts").write_text(f'/// <reference path="{(ROOT / "sdk" / "index.d.ts").as_posix()}" />\n'
                                     "const n: number = new TextEncoder().encode('x');\n")
    bad = subprocess.run([deno, "check", "--config", "deno.json", "bad.ts"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "number[]" in bad.stderr
