"""The client side of the API, used by ``flora deploy``: project files and JSON calls.

Stdlib only (``urllib``), so the CLI needs nothing the server doesn't.
File collection follows flora's CLI (``collectFiles``): script sources plus
``package.json``/``tsconfig.json`` anywhere under the root, build and
dependency folders skipped, a top-level ``.gitignore``/``.ignore`` honoured; then only
what the entry's module graph uses is uploaded (:func:`imported_files`; flora's CLI sends
everything, so unrelated files counted against the server's 200-file limit), JSON
modules included (flora's CLI never sent them, so ``import x from "./x.json"`` failed).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import socket
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from flora_core import __version__
from flora_core.bundler import MODULE_EXTENSIONS

DEFAULT_API_URL = "http://127.0.0.1:3000/api"
SNOWFLAKE = re.compile(r"^[0-9]{1,20}$")  # a Discord id, as the API checks it
PROJECT_CONFIG = "flora.toml"
EXTRA_FILE_NAMES = ("package.json", "tsconfig.json")
SKIP_DIRS = frozenset(
    {
        "node_modules",
        "target",
        "dist",
        ".output",
        ".next",
        ".nuxt",
        ".svelte-kit",
        "build",
        "out",
        ".turbo",
        ".cache",
        "coverage",
        ".parcel-cache",
        ".vite",
        ".git",
    }
)
# a walk that finds more script files than this is in the wrong folder (a home directory, say)
MAX_CANDIDATES = 20_000
GRAPH_TIMEOUT_SECS = 60


class ClientError(Exception):
    """Something the user must fix or know; the message is for them."""


class ApiRequestError(ClientError):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# -- project -------------------------------------------------------------------
def load_project_config(root: Path) -> dict:
    """The ``[deploy]`` table of ``flora.toml`` in ``root`` (``entry``, ``guild_id``, ``api``)."""
    path = root / PROJECT_CONFIG
    if not path.is_file():
        return {}
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ClientError(f"{path}: invalid TOML: {exc}") from None
    deploy = table.get("deploy", {})
    if not isinstance(deploy, dict):
        raise ClientError(f"{path}: [deploy] must be a table")
    return {k: str(v) for k, v in deploy.items() if k in ("entry", "guild_id", "api") and v is not None}


class IgnoreRules:
    """The simple part of gitignore: globs, ``/``-anchored paths, ``dir/`` patterns; no ``!`` negation."""

    def __init__(self, patterns: list[tuple[str, bool, bool]]):
        self.patterns = patterns  # (glob, anchored, dir_only)

    @classmethod
    def from_root(cls, root: Path) -> IgnoreRules:
        patterns = []
        for name in (".gitignore", ".ignore"):
            path = root / name
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                line = line.strip()
                if not line or line.startswith(("#", "!")):
                    continue
                dir_only = line.endswith("/")
                line = line.rstrip("/")
                anchored = "/" in line
                line = line.lstrip("/")
                if line:
                    patterns.append((line, anchored, dir_only))
        return cls(patterns)

    def ignored(self, rel: str, is_dir: bool) -> bool:
        name = rel.rsplit("/", 1)[-1]
        for glob, anchored, dir_only in self.patterns:
            if dir_only and not is_dir:
                continue
            if fnmatch.fnmatchcase(rel if anchored else name, glob):
                return True
        return False


def collect_files(root: Path, exclude: tuple[Path, ...] = ()) -> list[dict]:
    """``[{path, contents}]`` for the project under ``root``, paths relative with ``/``.

    ``exclude`` lists folders to leave out whatever the ignore files say (the
    server's data folder when ``flora serve`` runs in the project folder).
    """
    root = root.resolve()
    rules = IgnoreRules.from_root(root)
    excluded = {p.resolve() for p in exclude}
    found: list[dict] = []
    for current, dirnames, filenames in os.walk(root):
        base = Path(current)
        rel_base = base.relative_to(root).as_posix()
        prefix = "" if rel_base == "." else rel_base + "/"
        dirnames[:] = sorted(
            d
            for d in dirnames
            if d not in SKIP_DIRS
            and not (base / d).is_symlink()
            and not rules.ignored(prefix + d, True)
            and (base / d) not in excluded
        )
        for name in sorted(filenames):
            rel = prefix + name
            if not (name.endswith(MODULE_EXTENSIONS) or name.endswith(".json")):
                continue  # .json: a script may import one (with { type: "json" }); imported_files() keeps those
            if (base / name).is_symlink() or rules.ignored(rel, False):
                continue
            try:
                contents = (base / name).read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise ClientError(f"{rel} is not UTF-8 text") from None
            except OSError as exc:
                raise ClientError(f"cannot read {rel}: {exc.strerror}") from None
            found.append({"path": rel, "contents": contents})
            if len(found) > MAX_CANDIDATES:
                raise ClientError(f"more than {MAX_CANDIDATES} script files under {root}: is it the project's folder?")
    if not found:
        raise ClientError(f"No files found under {root}")
    return sorted(found, key=lambda f: f["path"])


def imported_files(root: Path, entry: str, files: list[dict]) -> list[dict]:
    """The files of ``files`` that the bundle can use: the entry's module graph (what ``deno info``, the
    bundler's own tool, resolves from it: imports, re-exports, JSON imports, type-only imports) plus
    ``package.json``/``tsconfig.json``. Unrelated files (docs, tests, other bots) are not uploaded and
    do not count against the server's limits. If the graph cannot be read (the entry does not parse),
    every file goes, and the server reports the error with its ``file:line``."""
    import subprocess
    import tempfile

    from deno import find_deno_bin

    root = root.resolve()
    with tempfile.TemporaryDirectory(prefix="flora-graph-") as denodir:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DENO_DIR": denodir,
            "NO_COLOR": "1",
            "DENO_NO_UPDATE_CHECK": "1",
            "DENO_NO_PROMPT": "1",
            "HOME": denodir,
        }
        try:
            proc = subprocess.run(
                [
                    find_deno_bin(),
                    "info",
                    "--json",
                    "--unstable-sloppy-imports",
                    "--no-config",
                    "--no-lock",
                    "--no-remote",
                    "--no-npm",
                    entry,
                ],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=GRAPH_TIMEOUT_SECS,
                stdin=subprocess.DEVNULL,
            )
            info = json.loads(proc.stdout)
        except (OSError, subprocess.SubprocessError, ValueError):
            return _without_data_files(files)
    used = set(EXTRA_FILE_NAMES)
    for module in info.get("modules") or []:
        spec = str(module.get("specifier", ""))
        if spec.startswith("file://"):
            path = Path(urllib.parse.unquote(urllib.parse.urlsplit(spec).path))
            if path.is_relative_to(root):
                used.add(path.relative_to(root).as_posix())
    if entry not in used:
        return _without_data_files(files)
    return [f for f in files if f["path"] in used]


def _without_data_files(files: list[dict]) -> list[dict]:
    """Script files and package.json/tsconfig.json: what goes when the graph is unknown."""
    return [f for f in files if f["path"].endswith(MODULE_EXTENSIONS) or f["path"].rsplit("/", 1)[-1] in EXTRA_FILE_NAMES]


def resolve_entry(entry: str, root: Path) -> str:
    """``entry`` relative to ``root`` (given relative to the root, the current folder, or absolute)."""
    root = root.resolve()
    given = Path(entry)
    candidates = [given] if given.is_absolute() else [root / given, Path.cwd() / given]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        raise ClientError(f"Entry file not found: {entry} (under {root})")
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        raise ClientError(f"Entry {entry} is outside the project root {root}") from None


# -- HTTP ----------------------------------------------------------------------
class ApiClient:
    def __init__(self, base_url: str, token: str, timeout: float = 120.0):
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict | None = None, headers: dict | None = None):
        url = f"{self.base_url}/{path.lstrip('/')}"
        data = json.dumps(body).encode("utf-8") if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("User-Agent", f"flora-cli/{__version__}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiRequestError(exc.code, _error_message(exc)) from None
        except urllib.error.URLError as exc:
            raise ClientError(f"Cannot reach the flora API at {self.base_url}: {_reason(exc.reason)}") from None
        except TimeoutError:
            raise ClientError(f"The flora API at {self.base_url} did not answer within {self.timeout:.0f}s") from None
        except (ConnectionError, OSError) as exc:
            raise ClientError(f"Cannot reach the flora API at {self.base_url}: {_reason(exc)}") from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw.decode("utf-8", "replace")

    def deploy(self, guild_id: str, entry: str, files: list[dict]) -> dict:
        return self.request("POST", f"deployments/{guild_id}", {"entry": entry, "files": files}, {"x-flora-deploy-source": "cli"})


def _reason(reason) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (is `flora serve` running?)"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, socket.gaierror):
        return f"unknown host ({reason.strerror})"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"null")
    except (ValueError, OSError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return f"Request failed: {exc.code} {exc.reason}"
