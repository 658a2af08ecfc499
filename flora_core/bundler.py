"""Turn a deployment's TypeScript/JavaScript files into one script for an isolate.

Uses ``deno bundle`` (the pinned ``deno`` wheel from PyPI) with IIFE output:
ES imports, types, interfaces and enums become one classic script. Results
are cached by a hash of the inputs, so redeploying the same files costs
nothing. Errors come back as :class:`BundleError` with ``file:line:col``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

MODULE_EXTENSIONS = (".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class BundleError(Exception):
    """The files could not be bundled; the message is for the user."""


def normalize_path(path: str) -> str:
    """flora's path rules: relative only, ``.`` dropped, ``..`` may not escape the root."""
    if not isinstance(path, str) or not path.strip():
        raise BundleError("invalid file path: path must not be empty")
    if "\x00" in path or path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        raise BundleError(f"invalid file path: {path}")
    parts: list[str] = []
    for seg in path.replace("\\", "/").split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if not parts:
                raise BundleError(f"invalid file path: {path} escapes the project root")
            parts.pop()
            continue
        parts.append(seg)
    if not parts:
        raise BundleError(f"invalid file path: {path}")
    return "/".join(parts)


_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


def _key_lock(key: str) -> threading.Lock:
    with _locks_guard:
        if len(_locks) > 1024:
            for k in [k for k, lock in _locks.items() if not lock.locked()]:
                del _locks[k]
        return _locks.setdefault(key, threading.Lock())


def deno_dir() -> str:
    """Where deno keeps esbuild (fetched once from the npm registry) and its caches.

    Shared by every data folder of the user (``DENO_DIR`` wins), so the one-time
    download happens once per machine, not once per deployment folder.
    """
    if os.environ.get("DENO_DIR"):
        return os.environ["DENO_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flora", "deno")


def _deno_bin() -> str:
    from deno import find_deno_bin

    return find_deno_bin()


class Bundler:
    def __init__(self, cache_dir: str | os.PathLike, max_files: int = 200, max_total_bytes: int = 1024 * 1024, timeout: float = 60.0):
        self.cache_dir = Path(cache_dir)
        self.max_files = max_files
        self.max_total_bytes = max_total_bytes
        self.timeout = timeout

    def script_from_bundle(self, bundle: str, max_bytes: int) -> str:
        """A prebuilt bundle (flora's build service makes ES modules) as a classic script.

        mini-racer evaluates scripts, not modules, so ``export``/``import`` statements of an
        ESM bundle would be syntax errors; deno turns the module into an IIFE (module
        semantics kept: strict mode, top-level names stay local).
        """
        return self.bundle("bundle.js", [{"path": "bundle.js", "contents": bundle}], max_total_bytes=max_bytes)

    def bundle(self, entry: str, files: list[dict], *, max_total_bytes: int | None = None) -> str:
        """Bundle ``files`` (``[{path, contents}]``) starting at ``entry``; returns JS source."""
        max_total = max_total_bytes or self.max_total_bytes
        if len(files) > self.max_files:
            raise BundleError(f"too many files (max {self.max_files})")
        normalized: dict[str, str] = {}
        total = 0
        for f in files:
            path = normalize_path(f.get("path", ""))
            if path in normalized:
                raise BundleError(f"duplicate file path: {path}")
            contents = f.get("contents")
            if not isinstance(contents, str):
                raise BundleError(f"file {path}: contents must be a string")
            total += len(contents.encode("utf-8"))
            normalized[path] = contents
        if total > max_total:
            raise BundleError(f"bundle exceeds size limit (max {max_total} bytes)")
        entry_path = normalize_path(entry)
        if entry_path not in normalized:
            raise BundleError(f"entry file not found: {entry}")
        if not entry_path.endswith(MODULE_EXTENSIONS):
            raise BundleError(f"entry file must be a script ({', '.join(MODULE_EXTENSIONS)}): {entry}")

        key = hashlib.sha256(json.dumps([entry_path, sorted(normalized.items())]).encode()).hexdigest()
        cached = self.cache_dir / f"{key}.js"
        with _key_lock(key):  # the same files bundled by two threads at once: the second reads the cache
            if cached.exists():
                return cached.read_text(encoding="utf-8")
            # A fixed folder per input hash keeps deno's own caches from growing with random paths.
            work = Path(tempfile.gettempdir()) / "flora-bundle" / f"{key[:24]}-{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            try:
                return self._bundle_in(work, entry_path, normalized, cached)
            finally:
                shutil.rmtree(work, ignore_errors=True)

    def _bundle_in(self, work: Path, entry_path: str, normalized: dict[str, str], cached: Path) -> str:
        root = work / "project"
        for path, contents in normalized.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(contents, encoding="utf-8")
        out_file = work / "bundle.js"
        env = dict(os.environ, NO_COLOR="1", DENO_NO_UPDATE_CHECK="1", DENO_DIR=deno_dir())
        cmd = [
            _deno_bin(), "bundle", "--quiet", "--format", "iife", "--platform", "browser",
            "--no-config", "--no-lock", "--no-remote", "--no-npm", "-o", str(out_file), entry_path,
        ]
        try:
            proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise BundleError(f"bundling timed out after {self.timeout:.0f}s") from None
        except OSError as exc:
            raise BundleError(f"the bundler could not start: {exc}") from None
        if proc.returncode != 0 or not out_file.exists():
            raise BundleError(self._error_text(proc.stderr, root))
        js = out_file.read_text(encoding="utf-8")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp_cached = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp_cached.write_text(js, encoding="utf-8")
        os.replace(tmp_cached, cached)
        return js

    @staticmethod
    def _error_text(stderr: str, root: Path) -> str:
        text = _ANSI.sub("", stderr or "")
        root_url = root.as_uri() + "/"
        text = text.replace(root_url, "").replace(str(root) + os.sep, "")
        lines = [ln.rstrip() for ln in text.splitlines()]
        lines = [ln for ln in lines if ln.strip() and "experimental" not in ln and not ln.startswith("Stack backtrace")]
        # Drop the backtrace deno prints after the message, and the redundant last line.
        cut = next((i for i, ln in enumerate(lines) if re.match(r"^\s*\d+: ", ln)), len(lines))
        lines = [ln for ln in lines[:cut] if ln.strip() != "error: bundling failed"]
        message = "\n".join(lines).strip() or "bundling failed"
        at = re.search(r"at (\S+?):(\d+):(\d+)", message)
        if at:
            first, *rest = message.splitlines()
            rest = [ln for ln in rest if not re.match(r"^\s*at \S+:\d+:\d+$", ln)]
            return "\n".join([f"{at.group(1)}:{at.group(2)}:{at.group(3)}: {first.removeprefix('error: ')}", *rest]).rstrip()
        return message.removeprefix("error: ")
