"""flora's build API (§3.3 routes 4–6, §3.6): a project uploaded as a zip, bundled on the server.

The original CLI's ``flora deploy`` (§7.3) uploads the project (``POST /api/builds``, multipart
``guild_id``, ``entry``, ``project_zip``), follows ``GET /api/builds/{id}/logs`` until ``event: done``,
reads ``GET /api/builds/{id}`` and posts ``artifact.bundle`` to ``/api/deployments/{guild}``.

* **Bad input is refused before anything is stored**: the archive is checked and extracted
  (:mod:`flora_core.project_zip`: traversal, absolute paths, NUL, symbolic links, > 1,000 files, sizes
  declared and actual, disallowed files) and the entry checked while the request waits; a refusal is one
  400 with flora's message and leaves no row and no file behind.
* **State is in the database** (tables ``builds`` and ``build_logs``, migration 007), so every API
  process (``flora api -w N``, the API of ``flora serve``) answers for a build another one runs.
* **A build runs in the API process that accepted it**, outside the request: under gevent a greenlet
  drives it, the archive is inflated on gevent's pool of OS threads (CPU work that would stall the
  loop), and the bundler's deno processes are waited for cooperatively (gevent's subprocess; its child
  watchers exist on the main loop only, so they cannot be waited for from an OS thread). At most
  :data:`BUILDS_PER_PROCESS` bundle at once per process; the others stay ``queued``.
* **Statuses** ``queued`` → ``running`` → ``done`` | ``failed``; log lines are ANSI-stripped (2,000 kept);
  the whole build has :data:`BUILD_TIMEOUT_SECS` (``Build timed out``), and a build whose process died
  is failed the same way once that time and a grace have passed, by whoever reads it. Finished builds
  are kept an hour, 500 at most (flora's retention).
* flora's limits on creation: 5 s between builds of a guild (429), 2 active per guild (429), 8 active
  in all (503), bundle ≤ 25 MiB.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from flask import Response, request

from flora_core.bundler import MODULE_EXTENSIONS, BundleError, Bundler, normalize_path
from flora_core.project_zip import Extracted, ProjectZipError, extract
from flora_core.storage import Database, utcnow

from . import errors, logstream
from .app import state

log = logging.getLogger("flora.api.builds")

BUILD_TIMEOUT_SECS = 120.0
STEP_TIMEOUT_SECS = 60.0  # each of the bundler's two deno runs, at most what is left of the build's time
STALE_GRACE_SECS = 30.0  # a build still active this long after its timeout lost its process
MAX_BUNDLE_BYTES = 25 * 1024 * 1024
MAX_LOG_LINES = 2000
RETENTION_SECS = 3600.0
MAX_RETAINED_BUILDS = 500
MIN_INTERVAL_SECS = 5.0
MAX_ACTIVE_PER_GUILD = 2
MAX_ACTIVE_GLOBAL = 8
BUILDS_PER_PROCESS = 2
POLL_INTERVAL = 0.2
ACTIVE = ("queued", "running")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def iso_now() -> str:
    """flora's timestamps for builds (JavaScript's ``toISOString()``: milliseconds, ``Z``)."""
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _iso_ago(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def format_bytes(n: int) -> str:
    """flora's ``formatBytes``."""
    if n < 1024:
        return f"{n}B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f}kb"
    return f"{n / (1024 * 1024):.1f}MB"


# -- the store (every API process reads and writes the same rows) -----------------------------------
def get_build(db: Database, build_id: str) -> dict | None:
    row = db.fetchone("SELECT * FROM builds WHERE build_id = ?", (build_id,))
    if row is not None and row["status"] in ACTIVE and row["created_at"] < _iso_ago(BUILD_TIMEOUT_SECS + STALE_GRACE_SECS):
        _finish(db, row["build_id"], "failed", error="Build timed out")  # its process is gone
        row = db.fetchone("SELECT * FROM builds WHERE build_id = ?", (build_id,))
    return row


def build_lines(db: Database, build_id: str, after_id: int = 0) -> list[dict]:
    return db.fetchall("SELECT id, line FROM build_logs WHERE build_id = ? AND id > ? ORDER BY id", (build_id, int(after_id)))


def append_line(db: Database, build_id: str, line: str) -> None:
    line = strip_ansi(line)
    with db.transaction() as cur:
        cur.execute("INSERT INTO build_logs (build_id, line) VALUES (?, ?)", (build_id, line.replace("\x00", "\ufffd")))
        cur.execute(
            "DELETE FROM build_logs WHERE build_id = ? AND id <= (SELECT id FROM build_logs WHERE build_id = ?"
            " ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (build_id, build_id, MAX_LOG_LINES),
        )


def _set_running(db: Database, build_id: str) -> None:
    db.execute(
        "UPDATE builds SET status = 'running', started_at = ? WHERE build_id = ? AND status = 'queued'", (iso_now(), build_id)
    )


def _finish(
    db: Database,
    build_id: str,
    status: str,
    *,
    error: str | None = None,
    bundle: str | None = None,
    source_map: str | None = None,
    last_line: str | None = None,
) -> None:
    """The terminal status, its last log line in the same transaction (a follower sees both or neither)."""
    with db.transaction() as cur:
        cur.execute(
            "UPDATE builds SET status = ?, finished_at = ?, error = ?, bundle = ?, source_map = ?"
            " WHERE build_id = ? AND status IN ('queued', 'running')",
            (status, iso_now(), error, bundle, source_map, build_id),
        )
        if cur.rowcount and last_line is not None:
            cur.execute("INSERT INTO build_logs (build_id, line) VALUES (?, ?)", (build_id, strip_ansi(last_line)))


def prune(db: Database) -> None:
    """flora's retention: finished builds older than an hour go, and all but the newest 500."""
    cutoff = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=RETENTION_SECS)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    with db.transaction() as cur:
        cur.execute("DELETE FROM builds WHERE status IN ('done', 'failed') AND finished_at < ?", (cutoff,))
        cur.execute(
            "DELETE FROM builds WHERE status IN ('done', 'failed') AND build_id NOT IN"
            " (SELECT build_id FROM (SELECT build_id FROM builds ORDER BY created_at DESC LIMIT ?) AS kept)",
            (MAX_RETAINED_BUILDS,),
        )
        cur.execute("DELETE FROM build_logs WHERE build_id NOT IN (SELECT build_id FROM builds)")


def check_limits(db: Database, guild_id: str) -> None:
    """flora's ``assertCanCreateBuild``: 429 / 503 with its messages."""
    last = db.fetchone("SELECT MAX(created_at) AS at FROM builds WHERE guild_id = ?", (guild_id,))
    if last and last["at"] and last["at"] > _iso_ago(MIN_INTERVAL_SECS):
        raise errors.ApiError(429, "Build creation is rate limited for this guild")
    fresh = _iso_ago(BUILD_TIMEOUT_SECS + STALE_GRACE_SECS)
    rows = db.fetchall("SELECT guild_id FROM builds WHERE status IN ('queued', 'running') AND created_at > ?", (fresh,))
    if sum(1 for r in rows if r["guild_id"] == guild_id) >= MAX_ACTIVE_PER_GUILD:
        raise errors.ApiError(429, "Too many active builds for this guild")
    if len(rows) >= MAX_ACTIVE_GLOBAL:
        raise errors.ApiError(503, "Too many active builds")


def status_response(db: Database, row: dict) -> dict:
    """BuildStatusResponse (absent fields omitted, as flora's ``skip_serializing_if``)."""
    out: dict = {
        "build_id": row["build_id"],
        "guild_id": row["guild_id"],
        "entry": row["entry"],
        "status": row["status"],
        "logs": [r["line"] for r in build_lines(db, row["build_id"])],
    }
    for field in ("started_at", "finished_at"):
        if row[field] is not None:
            out[field] = row[field]
    if row["status"] == "done" and row["bundle"] is not None:
        out["artifact"] = {"bundle": row["bundle"], "source_map": row["source_map"] or "{}"}
    if row["error"] is not None:
        out["error"] = row["error"]
    return out


# -- running a build -------------------------------------------------------------------------------
class _Runner:
    """Where builds run in this process: greenlets and gevent's OS thread pool under gevent, else threads."""

    def __init__(self) -> None:
        self.gevent = _gevent_patched()
        if self.gevent:
            import gevent.lock

            self.slots: threading.Semaphore | gevent.lock.BoundedSemaphore = gevent.lock.BoundedSemaphore(BUILDS_PER_PROCESS)
        else:
            self.slots = threading.BoundedSemaphore(BUILDS_PER_PROCESS)

    def spawn(self, fn, *args) -> None:
        if self.gevent:
            import gevent

            gevent.spawn(fn, *args)
        else:
            threading.Thread(target=fn, args=args, daemon=True, name="flora-build").start()

    def blocking(self, fn, *args):
        """Run CPU-bound ``fn`` off the gevent loop (on an OS thread), waiting cooperatively."""
        if self.gevent:
            import gevent

            return gevent.get_hub().threadpool.apply(fn, args)
        return fn(*args)


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return monkey.is_module_patched("threading")


def runner() -> _Runner:
    """This app's builds runner (``app.extensions["flora_builds"]``), made at the first build."""
    from flask import current_app

    with _RUNNER_LOCK:
        return current_app.extensions.setdefault("flora_builds", _Runner())


_RUNNER_LOCK = threading.Lock()


def _extract_checked(data: bytes, work: Path, entry: str) -> tuple[Extracted, str, int]:
    """On an OS thread: the archive into ``work/project``, the entry and package.json checked."""
    extracted = extract(data, work / "project")
    try:
        entry_path = normalize_path(entry)
    except BundleError:
        raise ProjectZipError(f"Entry file is not inside workspace: {entry}") from None
    if entry_path not in extracted.files:
        raise ProjectZipError(f"entry file not found: {entry}")
    if not entry_path.endswith(MODULE_EXTENSIONS):
        raise ProjectZipError(f"entry file must be a script ({', '.join(MODULE_EXTENSIONS)}): {entry}")
    deps = 0
    if "package.json" in extracted.files:
        try:
            pkg = json.loads((work / "project" / "package.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProjectZipError(f"package.json is not valid JSON: {exc}") from None
        if isinstance(pkg, dict) and isinstance(pkg.get("dependencies"), dict):
            deps = len(pkg["dependencies"])
        if deps:
            raise ProjectZipError(
                f"package.json lists {deps} dependencies; npm dependencies are not supported by "
                "this server yet (a script may import only its own files)"
            )
    return extracted, entry_path, deps


def create(st, guild_id: str, entry: str, data: bytes) -> dict:
    """Check and extract the archive (400 on refusal, nothing stored), then queue the build."""
    uploaded = time.monotonic()  # the build's 120 s count from here
    check_limits(st.db, guild_id)
    work = Path(tempfile.mkdtemp(prefix="flora-build-"))
    try:
        try:
            extracted, entry_path, deps = runner().blocking(_extract_checked, data, work, entry)
        except ProjectZipError as exc:
            raise errors.bad_request(str(exc)) from None
        prune(st.db)
        build_id = str(uuid.uuid4())
        st.db.execute(
            "INSERT INTO builds (build_id, guild_id, entry, status, created_at) VALUES (?, ?, ?, 'queued', ?)",
            (build_id, guild_id, entry, utcnow()),
        )
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    for line in ("Extracting project...", f"Extracted {len(extracted.files)} files ({format_bytes(extracted.total_size)})"):
        append_line(st.db, build_id, line)
    bundler = Bundler(st.bundler.cache_dir, timeout=STEP_TIMEOUT_SECS, sandbox=st.bundler.sandbox)
    run = runner()
    run.spawn(_run, run, st.db, bundler, build_id, work, entry_path, set(extracted.files), deps, uploaded)
    return {"build_id": build_id, "status": "queued"}


def _run(
    run: _Runner,
    db: Database,
    bundler: Bundler,
    build_id: str,
    work: Path,
    entry_path: str,
    files: set[str],
    deps: int,
    created: float,
) -> None:
    outcome: tuple[str, dict, str] = ("failed", {"error": "Internal server error"}, "Build failed: Internal server error")
    try:
        with run.slots:
            remaining = BUILD_TIMEOUT_SECS - (time.monotonic() - created)
            if remaining <= 0:  # it waited in the queue for all of its time
                raise BundleError("Build timed out")
            bundler.timeout = min(STEP_TIMEOUT_SECS, remaining)
            _set_running(db, build_id)
            append_line(db, build_id, "Validating package.json...")
            append_line(db, build_id, f"Found {deps} dependencies")
            append_line(db, build_id, f"Bundling {entry_path}")
            js, source_map = bundler.bundle_folder_with_map(work, entry_path, files)
            js = re.sub(r"\n?//# sourceMappingURL=\S*\s*$", "\n", js)  # the map travels beside it
            size = len(js.encode("utf-8"))
            append_line(db, build_id, f"Bundle size: {format_bytes(size)}")
            if time.monotonic() - created > BUILD_TIMEOUT_SECS:
                raise BundleError("Build timed out")
            if size > MAX_BUNDLE_BYTES:
                raise BundleError(f"Bundle size {format_bytes(size)} exceeds limit of {format_bytes(MAX_BUNDLE_BYTES)}")
            append_line(db, build_id, "Sourcemap generated")
            outcome = ("done", {"bundle": js, "source_map": source_map}, "Build complete")
    except BundleError as exc:
        message = strip_ansi(str(exc))
        outcome = ("failed", {"error": message}, f"Build failed: {message}")
    except Exception:  # noqa: BLE001 - a build must end; the detail goes to the server's log
        log.exception("build %s failed unexpectedly", build_id)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # before the status: a finished build has left nothing behind
    status, fields, last_line = outcome
    try:
        _finish(db, build_id, status, last_line=last_line, **fields)
    except Exception:  # noqa: BLE001 - the database is gone; readers fail the build as timed out
        log.exception("build %s: could not record its end", build_id)


# -- the request side ------------------------------------------------------------------------------
def form_fields() -> tuple[str, str, bytes]:
    """``guild_id``, ``entry``, ``project_zip`` of a multipart body, with flora's 400s."""
    if request.mimetype != "multipart/form-data":
        raise errors.bad_request("invalid multipart: expected a `multipart/form-data` body")
    form, files = request.form, request.files  # 413 beyond MAX_CONTENT_LENGTH
    guild_id, entry = form.get("guild_id"), form.get("entry")
    upload = files.get("project_zip")
    if guild_id is None:
        raise errors.bad_request("`guild_id` is required")
    if entry is None:
        raise errors.bad_request("`entry` is required")
    if upload is not None:
        data = upload.read()
    elif form.get("project_zip") is not None:
        data = form["project_zip"].encode("utf-8", "surrogateescape")
    else:
        raise errors.bad_request("`project_zip` is required")
    return guild_id, entry, data


def _event(name: str, data: str) -> str:
    return f"event: {name}\n" + "".join(f"data: {line}\n" for line in (data.split("\n") or [""])) + "\n"


def stream_response(db: Database, build_id: str) -> Response:
    """Replay the build's lines, then the new ones, then ``event: done`` with its status; then close."""
    sock = logstream.client_socket(request.environ)

    def events():
        last_id = 0
        try:
            while True:
                row = get_build(db, build_id)
                lines = build_lines(db, build_id, last_id)
                if lines:
                    last_id = lines[-1]["id"]
                    yield "".join(_event("log", r["line"]) for r in lines)
                if row is None or row["status"] not in ACTIVE:  # read before the lines: they are all sent
                    status = row["status"] if row is not None else "failed"
                    yield _event("done", json.dumps({"status": status}, separators=(",", ":")))
                    return
                if logstream.peer_closed(sock):
                    return
                logstream.cooperative_sleep(POLL_INTERVAL)
        except GeneratorExit:
            return

    resp = Response(events(), mimetype="text/event-stream")
    resp.headers["Content-Type"] = "text/event-stream"
    resp.headers["Cache-Control"] = "no-cache"
    # flora's headers; a hop-by-hop one, which gevent's server passes on and gunicorn leaves to itself
    resp.headers["Connection"] = "keep-alive"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp


def lookup(build_id: str) -> dict:
    try:
        known = str(uuid.UUID(build_id)) == build_id  # ids are made here; anything else names no build
    except ValueError:
        known = False
    row = get_build(state().db, build_id) if known else None
    if row is None:
        raise errors.not_found(f"build {build_id} not found")
    return row
