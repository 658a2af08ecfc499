"""Type errors before a deploy: ``deno check`` of the project on the author's machine, against the
declarations of the enabled plugins (``flora types``), strict, as an editor would show them.

The server never type-checks (as flora): this runs where the author's files are, ``flora deploy`` refuses
a project with errors unless ``--no-check``, ``flora dev`` shows them after each reload without holding
the reload back.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

CHECK_TIMEOUT_SECS = 120
# deno: "TS2322 [ERROR]: <message>" … "    at file:///…/src/main.ts:2:7"
_ERROR = re.compile(r"^(TS\d+) \[ERROR\]: (.*)$")
_AT = re.compile(r"^\s+at (file://\S+?):(\d+):(\d+)$")


@dataclass(frozen=True)
class TypeError_:
    path: str  # relative to the project
    line: int
    col: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col}: {self.code} {self.message}"


class CheckUnavailable(Exception):
    """The type checker could not run (no deno, a timeout); the message says why."""


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flora", "deno-check")


def check(root: Path, entry: str, declarations: str) -> list[TypeError_]:
    """The type errors of the project under ``root`` from ``entry`` (empty: none)."""
    from deno import find_deno_bin

    root = root.resolve()
    with tempfile.TemporaryDirectory(prefix="flora-check-") as tmp:
        dts = Path(tmp) / "flora.d.ts"
        dts.write_text(declarations, encoding="utf-8")
        config = Path(tmp) / "deno.json"
        config.write_text(json.dumps({"compilerOptions": {"lib": ["es2023"], "strict": True, "types": [str(dts)]}}))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", tmp),
            "NO_COLOR": "1",
            "DENO_DIR": _cache_dir(),
            "DENO_NO_UPDATE_CHECK": "1",
            "DENO_NO_PROMPT": "1",
        }
        try:
            proc = subprocess.run(
                [
                    find_deno_bin(),
                    "check",
                    "--config",
                    str(config),
                    "--unstable-sloppy-imports",
                    "--no-lock",
                    "--no-remote",
                    "--no-npm",
                    entry,
                ],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=CHECK_TIMEOUT_SECS,
                stdin=subprocess.DEVNULL,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise CheckUnavailable(f"the type checker could not run: {exc}") from None
    if proc.returncode == 0:
        return []
    errors = parse(proc.stdout + proc.stderr, root)
    if not errors:  # not type errors: a file that does not parse, an import that is missing…
        lines = [
            line
            for line in (proc.stdout + proc.stderr).splitlines()
            if line.strip() and not line.startswith(("Stack backtrace", "   0:", "Check "))
        ]
        raise CheckUnavailable("the type checker failed: " + (lines[0] if lines else f"exit {proc.returncode}"))
    return errors


def parse(output: str, root: Path) -> list[TypeError_]:
    errors: list[TypeError_] = []
    pending: tuple[str, str] | None = None
    for line in output.splitlines():
        found = _ERROR.match(line)
        if found:
            pending = (found.group(1), found.group(2))
            continue
        at = _AT.match(line)
        if at and pending is not None:
            path = Path(urllib.parse.unquote(urllib.parse.urlsplit(at.group(1)).path))
            if path.is_relative_to(root):  # else related information (in the declarations), not an error of its own
                errors.append(TypeError_(path.relative_to(root).as_posix(), int(at.group(2)), int(at.group(3)), *pending))
            pending = None
    return errors
