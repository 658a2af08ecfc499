"""Turn a deployment's TypeScript/JavaScript files into one script for an isolate.

A guild's files are tenant input, and bundling reads files: the bundler may read **nothing but the
project's own files**. Four independent layers hold that (``SECURITY.md``):

1. **The module graph** (``deno info --json``) is checked before anything is bundled: every import
   must resolve to a file of the project; absolute paths, ``..`` out of the root, ``file:`` URLs,
   remote, ``npm:``/``jsr:``/``node:``/``data:`` specifiers are refused with ``file:line:col``, and
   the only import attribute allowed is ``with { type: "json" }`` of a ``.json`` file.
2. **deno's own permissions**: the bundle is made by ``Deno.bundle`` inside
   ``deno run --allow-read=<project>`` with nothing else allowed (no env, net, run, write);
   Deno.bundle honours them (it refuses ``/proc/self/environ`` with "Requires read access").
3. **The operating system** (:mod:`flora_core.sandbox`): both deno processes run under
   bubblewrap, where only the project, the deno binary and esbuild exist, with no network,
   and with an environment that holds no secret (PATH, DENO_DIR, NO_COLOR, HOME).
4. **The source map** of the result lists every file esbuild inlined: each must be one of the
   project's files, or the bundle is refused.

Bundles are cached by a hash of the inputs and of :data:`BUNDLER_VERSION`, so redeploying the same
files costs nothing, and a bundle made by an older bundler is never served again.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .sandbox import Bind, SandboxUnavailable, ToolSandbox

MODULE_EXTENSIONS = (".ts", ".tsx", ".mts", ".cts", ".js", ".jsx", ".mjs", ".cjs")
# Bumped whenever what a bundle may contain changes; stored with each revision. Version 2 is the
# first that checks what the bundler reads: anything older is rebuilt from its files or refused.
BUNDLER_VERSION = 2
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OWN_FILES = "a script may import only its own files"
# Only for flora's one-time esbuild download (flora's own input, never a guild's).
_DOWNLOAD_ENV = (
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "NPM_CONFIG_REGISTRY",
    "DENO_CERT",
    "DENO_TLS_CA_STORE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)


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
_esbuild_lock = threading.Lock()


def _key_lock(key: str) -> threading.Lock:
    with _locks_guard:
        if len(_locks) > 1024:
            for k in [k for k, lock in _locks.items() if not lock.locked()]:
                del _locks[k]
        return _locks.setdefault(key, threading.Lock())


def deno_dir() -> str:
    """Where deno keeps esbuild (fetched once from the npm registry).

    Shared by every data folder of the user (``DENO_DIR`` wins), so the one-time download happens
    once per machine. Tenant bundles never write here: each gets a fresh DENO_DIR of its own that
    sees only this folder's ``dl/`` (esbuild), read-only.
    """
    if os.environ.get("DENO_DIR"):
        return os.environ["DENO_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "flora", "deno")


def _deno_bin() -> str:
    from deno import find_deno_bin

    return find_deno_bin()


def _driver_path() -> str:
    return str(resources.files("flora_core").joinpath("bundle_driver.js"))


def _position(span: dict | None) -> tuple[int, int]:
    start = (span or {}).get("start") or {}
    return int(start.get("line", 0)) + 1, int(start.get("character", 0)) + 1


def _file_path(specifier: str) -> str | None:
    """The local path of a ``file:`` URL, else ``None``."""
    parts = urlsplit(specifier)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    return os.path.normpath(unquote(parts.path))


class Bundler:
    def __init__(
        self,
        cache_dir: str | os.PathLike,
        max_files: int = 200,
        max_total_bytes: int = 1024 * 1024,
        timeout: float = 60.0,
        *,
        sandbox: ToolSandbox | str = "auto",
        deno_bin: str | None = None,
    ):
        self.cache_dir = Path(cache_dir)
        self.max_files = max_files
        self.max_total_bytes = max_total_bytes
        self.timeout = timeout
        self.sandbox = sandbox if isinstance(sandbox, ToolSandbox) else ToolSandbox(sandbox)
        self._deno = deno_bin
        self._purged = False

    @classmethod
    def from_config(cls, config) -> Bundler:
        """The bundler of a server: cache in the data folder, limits and sandbox from the config."""
        return cls(
            config.data_path / "cache" / "bundles",
            config.max_bundle_files,
            config.max_bundle_total_bytes,
            sandbox=config.bundler_sandbox,
        )

    def script_from_bundle(self, bundle: str, max_bytes: int) -> str:
        """A prebuilt bundle (flora's build service makes ES modules) as a classic script.

        mini-racer evaluates scripts, not modules, so ``export``/``import`` statements of an
        ESM bundle would be syntax errors; deno turns the module into an IIFE (top-level names
        stay local), or, if it uses top-level await, into an async function that the load
        awaits (``bundle_driver.js``). A prebuilt bundle is tenant input like any file: it goes
        through the same checks.
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

        key = hashlib.sha256(json.dumps([BUNDLER_VERSION, entry_path, sorted(normalized.items())]).encode()).hexdigest()
        cache = self.cache_dir / f"v{BUNDLER_VERSION}"
        cached = cache / f"{key}.js"
        self._purge_old_caches()
        with _key_lock(key):  # the same files bundled by two threads at once: the second reads the cache
            if cached.exists():
                js = cached.read_text(encoding="utf-8")
                os.utime(cached)  # last used: what trim_cache() goes by
                return js
            work = Path(tempfile.mkdtemp(prefix=f"flora-bundle-{key[:16]}-"))
            try:
                js = self._bundle_in(work, entry_path, normalized)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            cache.mkdir(parents=True, exist_ok=True)
            tmp_cached = cached.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp_cached.write_text(js, encoding="utf-8")
            os.replace(tmp_cached, cached)
            return js

    def trim_cache(self, max_age_secs: float) -> int:
        """Delete cached bundles not used for ``max_age_secs`` (the supervisor's housekeeping); returns
        how many. A bundle that is deployed is only ever read from the database, so nothing is lost."""
        cache = self.cache_dir / f"v{BUNDLER_VERSION}"
        if not cache.is_dir():
            return 0
        cutoff = time.time() - max_age_secs
        removed = 0
        for item in cache.iterdir():
            try:
                if item.stat().st_mtime < cutoff:
                    item.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # another process trimmed it
        return removed

    # -- the steps -----------------------------------------------------------------------------
    def _purge_old_caches(self) -> None:
        """Bundles cached by an older bundler (``cache/bundles/*.js``, ``v1/``…) are deleted, never read."""
        if self._purged:
            return
        self._purged = True
        if not self.cache_dir.is_dir():
            return
        for item in self.cache_dir.iterdir():
            if item.name == f"v{BUNDLER_VERSION}":
                continue
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            elif item.suffix in (".js", ".tmp"):
                item.unlink(missing_ok=True)

    def _bundle_in(self, work: Path, entry_path: str, files: dict[str, str]) -> str:
        root = work / "project"
        for path, contents in files.items():
            target = root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(contents, encoding="utf-8")
        return self.bundle_folder(work, entry_path, set(files))

    def bundle_folder(self, work: Path, entry_path: str, files: set[str]) -> str:
        """Bundle the project in ``work/project`` (its ``files``, relative paths) from ``entry_path``.

        Every layer applies here, whoever filled the folder (the uploaded files, or an archive extracted
        by the build API): what the project folder holds beyond ``files`` is not readable.
        """
        return self.bundle_folder_with_map(work, entry_path, files)[0]

    def bundle_folder_with_map(self, work: Path, entry_path: str, files: set[str]) -> tuple[str, str]:
        """:meth:`bundle_folder`, and the bundle's source map (JSON; ``sources`` relative to the project)."""
        work = Path(os.path.realpath(work))
        root = work / "project"
        allowed = {os.path.normpath(root / p) for p in files}
        for path in sorted(allowed):  # deno follows a symlink named like a module; nothing here may be one
            if os.path.realpath(path) != path or not os.path.isfile(path):
                shown = os.path.relpath(path, root)
                raise BundleError(f"{shown} is not a regular file of the project (a symbolic link, or missing); refused")
        esbuild = self._ensure_esbuild()
        denodir = work / "deno"
        dl = denodir / "dl" / esbuild.name
        dl.parent.mkdir(parents=True)
        deno = self._deno or _deno_bin()
        binds = [Bind(str(root)), Bind(str(denodir), writable=True), Bind(deno), Bind(_driver_path())]
        if self.sandbox_kind() == "bwrap":  # esbuild, read-only: a bind in the sandbox, a symlink without one
            dl.mkdir()
            binds.append(Bind(str(esbuild), target=str(dl)))
        else:
            dl.symlink_to(esbuild, target_is_directory=True)
        env = {
            "PATH": "/usr/bin:/bin",
            "DENO_DIR": str(denodir),
            "HOME": str(work),
            "NO_COLOR": "1",
            "DENO_NO_UPDATE_CHECK": "1",
            "DENO_NO_PROMPT": "1",
        }
        common = ["--no-config", "--no-lock", "--no-remote", "--no-npm"]

        graph = self._run([deno, "info", "--json", "--unstable-sloppy-imports", *common, entry_path], binds, env, str(root))
        try:
            info = json.loads(graph.stdout)
        except ValueError:
            info = None  # the entry does not parse: the bundle step below says where, then fails
        else:
            self._check_graph(info, root, allowed)

        out_path = work / "bundle.js"
        proc = self._run(
            [
                deno,
                "run",
                "--unstable-bundle",
                *common,
                "--no-prompt",
                f"--allow-read={root}",
                "--v8-flags=--max-old-space-size=512",
                _driver_path(),
                entry_path,
                str(out_path),
            ],
            binds,
            env,
            str(root),
        )
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            raise BundleError(self._error_text(proc.stderr, root)) from None
        if not result.get("success") or not result.get("js"):
            raise BundleError(self._messages(result.get("errors") or [], root) or "bundling failed")
        if info is None:
            raise BundleError(f"the bundler could not read the module graph: {_last_line(graph.stderr)}")
        self._check_sources(result.get("map"), work, allowed)
        return result["js"], _project_relative_map(result["map"])

    def sandbox_kind(self) -> str:
        try:
            return self.sandbox.kind
        except SandboxUnavailable as exc:
            raise BundleError(f"the bundler cannot run safely on this server: {exc}") from None

    def _run(self, argv: list[str], binds: list[Bind], env: dict[str, str], cwd: str) -> subprocess.CompletedProcess:
        self.sandbox_kind()
        try:
            return self.sandbox.run(argv, binds=binds, env=env, cwd=cwd, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise BundleError(f"bundling timed out after {self.timeout:.0f}s") from None
        except OSError as exc:
            raise BundleError(f"the bundler could not start: {exc}") from None

    def _ensure_esbuild(self) -> Path:
        """The folder holding deno's esbuild, downloaded once (flora's own input, outside any sandbox)."""
        with _esbuild_lock:
            found = self._find_esbuild()
            if found is not None:
                return found
            shared = deno_dir()
            with tempfile.TemporaryDirectory(prefix="flora-esbuild-") as tmp:
                Path(tmp, "warm.js").write_text("globalThis.flora = 1;\n", encoding="utf-8")
                env = {k: v for k, v in os.environ.items() if k in _DOWNLOAD_ENV}
                env.update(
                    PATH=os.environ.get("PATH", "/usr/bin:/bin"),
                    DENO_DIR=shared,
                    NO_COLOR="1",
                    DENO_NO_UPDATE_CHECK="1",
                    HOME=tmp,
                )
                # deno trusts only its own (Mozilla) roots unless told; a registry behind the operator's
                # proxy or mirror is trusted by the machine's store
                env.setdefault("DENO_TLS_CA_STORE", "mozilla,system")
                try:
                    proc = subprocess.run(
                        [self._deno or _deno_bin(), "bundle", "--quiet", "--no-config", "--no-lock", "-o", "out.js", "warm.js"],
                        cwd=tmp,
                        env=env,
                        capture_output=True,
                        text=True,
                        timeout=max(self.timeout, 120),
                        stdin=subprocess.DEVNULL,
                    )
                except (OSError, subprocess.SubprocessError) as exc:
                    raise BundleError(f"the bundler could not fetch esbuild: {exc}") from None
            found = self._find_esbuild()
            if found is None:
                raise BundleError(
                    "the bundler could not fetch esbuild from the npm registry "
                    f"into {shared}: {_last_line(_ANSI.sub('', proc.stderr)) or 'no esbuild after the download'}"
                )
            return found

    @staticmethod
    def _find_esbuild() -> Path | None:
        for folder in sorted(glob.glob(os.path.join(deno_dir(), "dl", "esbuild-*")), reverse=True):
            if any(Path(folder).glob("esbuild*")):
                return Path(folder).resolve()
        return None

    # -- the checks ----------------------------------------------------------------------------
    @staticmethod
    def _check_graph(info: dict, root: Path, allowed: set[str]) -> None:
        """Layer 1: every import of every project module resolves to a project file."""
        problems: list[str] = []
        for module in info.get("modules") or []:
            referrer = _file_path(module.get("specifier", ""))
            if referrer is None or referrer not in allowed:
                continue  # not a project file: only reached through an import refused below
            where = os.path.relpath(referrer, root)
            for dep in module.get("dependencies") or []:
                for part in ("code", "type"):
                    resolved = dep.get(part)
                    if not resolved:
                        continue
                    line, col = _position(resolved.get("span"))
                    problem = Bundler._refusal(dep, part, resolved.get("specifier", ""), root, allowed)
                    if problem:
                        problems.append(f"{where}:{line}:{col}: {problem}")
        if problems:
            raise BundleError("\n".join(dict.fromkeys(problems)))

    @staticmethod
    def _refusal(dep: dict, part: str, resolved: str, root: Path, allowed: set[str]) -> str | None:
        shown = json.dumps(dep.get("specifier", resolved))
        scheme = urlsplit(resolved).scheme
        if scheme in ("http", "https"):
            return f"import {shown}: remote imports are not supported ({_OWN_FILES})"
        if scheme in ("npm", "jsr"):
            return f"import {shown}: {scheme}: packages are not supported ({_OWN_FILES})"
        if scheme == "node":
            return f"import {shown}: Node.js built-in modules do not exist in a flora script"
        path = _file_path(resolved)
        if path is None:
            return f"import {shown} is not a file of the project ({_OWN_FILES})"
        if path not in allowed:
            if not path.startswith(f"{root}{os.sep}"):
                return f"import {shown} is outside the project ({_OWN_FILES})"
            return f"import {shown}: no such file in the project"
        kind = dep.get("assertionType")
        if part == "code" and kind is not None:
            if kind != "json":
                return (
                    f"import {shown} with {{ type: {json.dumps(kind)} }} is not allowed: "
                    'the only import attribute is { type: "json" }, for a .json file of the project'
                )
            if not path.endswith(".json"):
                return f'import {shown} with {{ type: "json" }} must name a .json file'
        return None

    @staticmethod
    def _check_sources(source_map: str | None, out_dir: Path, allowed: set[str]) -> None:
        """Layer 4: esbuild inlined nothing but project files (whatever the way it was reached)."""
        try:
            sources = json.loads(source_map or "")["sources"]
        except (ValueError, KeyError, TypeError):
            raise BundleError("the bundler produced no source map; refused") from None
        for source in sources:
            path = os.path.normpath(os.path.join(out_dir, unquote(str(source))))
            if path not in allowed:
                raise BundleError(f"the bundle would contain {source!r}, which is not a file of the project; refused")

    # -- error text ----------------------------------------------------------------------------
    @staticmethod
    def _messages(errors: list[dict], root: Path) -> str:
        """deno's messages as ``file:line:col: message``, paths relative to the project."""
        out = []
        for err in errors:
            text = _ANSI.sub("", str(err.get("text", ""))).strip()
            denied = re.match(r'Requires read access to "(.*?)"', text)
            if denied:
                text = f"reads {json.dumps(denied.group(1))}, outside the project ({_OWN_FILES})"
            text = text.replace(root.as_uri() + "/", "").replace(f"{root}{os.sep}", "")
            loc = err.get("location") or {}
            if loc.get("file"):
                where = str(loc["file"]).removeprefix(f"{root}{os.sep}")
                out.append(f"{where}:{loc.get('line', 0)}:{int(loc.get('column', 0)) + 1}: {text}")
                continue
            at = re.search(r"at (\S+?):(\d+):(\d+)", text)
            if at:  # a parse error: deno puts the position on the last line
                first, *rest = text.splitlines()
                rest = [ln for ln in rest if not re.match(r"^\s*at \S+:\d+:\d+$", ln)]
                text = "\n".join([f"{at.group(1)}:{at.group(2)}:{at.group(3)}: {first.removeprefix('error: ')}", *rest])
            out.append(text.rstrip())
        return "\n".join(out)

    @staticmethod
    def _error_text(stderr: str, root: Path) -> str:
        """deno failed before it could answer (it crashed, or ran out of memory): its last words."""
        text = _ANSI.sub("", stderr or "").replace(root.as_uri() + "/", "").replace(f"{root}{os.sep}", "")
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("Stack backtrace")]
        cut = next((i for i, ln in enumerate(lines) if re.match(r"^\d+: ", ln)), len(lines))
        return ("\n".join(lines[:cut]).removeprefix("error: ") or "the bundler failed").strip()


def _project_relative_map(source_map: str) -> str:
    """The map with ``sources`` as the project's own paths (``project/src/a.ts`` → ``src/a.ts``)."""
    parsed = json.loads(source_map)
    parsed["sources"] = [str(s).removeprefix("project/") for s in parsed.get("sources") or []]
    return json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)


def _last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""
