"""What the bundler's checks cost: bundling examples/basic with nothing cached, three ways, in one run.

    python bench/bundle.py [--runs 15]

(a) baseline: ``deno bundle --format iife`` as flora ran it before it checked what a bundle reads
    (one process, the server's whole environment, no read restriction);
(b) flora's bundler without an OS sandbox (``BUNDLER_SANDBOX=none``): the module-graph check, then
    ``Deno.bundle`` under ``--allow-read=<project>``, then the source-map check;
(c) flora's bundler inside bubblewrap (``BUNDLER_SANDBOX=bwrap``), what CI and a careful operator run.
Prints the median and p90 wall time of each, and (b)/(a), (c)/(a).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flora_cli.client import collect_files  # noqa: E402
from flora_core.bundler import Bundler, _deno_bin, deno_dir  # noqa: E402


def baseline(files: list[dict], entry: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        for f in files:
            (root / f["path"]).parent.mkdir(parents=True, exist_ok=True)
            (root / f["path"]).write_text(f["contents"], encoding="utf-8")
        env = dict(os.environ, NO_COLOR="1", DENO_NO_UPDATE_CHECK="1", DENO_DIR=deno_dir())
        t0 = time.perf_counter()
        subprocess.run(
            [
                _deno_bin(),
                "bundle",
                "--quiet",
                "--format",
                "iife",
                "--platform",
                "browser",
                "--no-config",
                "--no-lock",
                "--no-remote",
                "--no-npm",
                "-o",
                str(Path(tmp) / "out.js"),
                entry,
            ],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - t0


def flora(files: list[dict], entry: str, sandbox: str) -> float:
    cache = tempfile.mkdtemp(prefix="flora-bench-cache-")
    try:
        t0 = time.perf_counter()
        Bundler(cache, sandbox=sandbox).bundle(entry, files)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    files = collect_files(ROOT / "examples" / "basic")
    entry = "src/main.ts"
    flora(files, entry, "none")  # warm: esbuild fetched once, the OS file cache filled
    kinds = {
        "baseline: deno bundle, no checks": lambda: baseline(files, entry),
        "flora, BUNDLER_SANDBOX=none": lambda: flora(files, entry, "none"),
    }
    if shutil.which("bwrap"):
        kinds["flora, BUNDLER_SANDBOX=bwrap"] = lambda: flora(files, entry, "bwrap")
    results: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(args.runs):  # interleaved, so a busy moment hurts every kind alike
        for name, run in kinds.items():
            results[name].append(run())
    base = summary(results["baseline: deno bundle, no checks"])[0]
    print(f"examples/basic ({len(files)} files), {args.runs} runs each, nothing cached")
    for name, times in results.items():
        median, p90 = summary(times)
        print(f"  {name:36s} median {median * 1000:6.0f} ms   p90 {p90 * 1000:6.0f} ms   x{median / base:4.2f}")


if __name__ == "__main__":
    main()
