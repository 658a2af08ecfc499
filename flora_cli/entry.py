"""The ``flora`` console script: Ctrl-C while the CLI is still importing is a quiet exit 130, not a
traceback (importing click, the plugins and their dependencies takes a moment)."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from .main import main as run
    except KeyboardInterrupt:
        sys.stderr.write("Aborted.\n")
        sys.exit(130)
    run()
