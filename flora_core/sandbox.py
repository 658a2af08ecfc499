"""Run a host tool on tenant input so that the operating system stops it reading anything else.

A guild's files reach host tools (the bundler today; the type checker, the build API and
package installs later). Each such tool runs through :class:`ToolSandbox`:

* **bubblewrap** (``bwrap``, Debian's ``bubblewrap``, the sandbox Flatpak uses), when it is on
  ``PATH`` and works here: a fresh mount namespace that holds ``/usr`` (read-only), an empty
  ``/tmp``, a minimal ``/dev`` and ``/proc`` of its own pid namespace, and only the paths the
  caller lists, at the same paths as on the host; no network, no other process visible, every
  capability dropped, its own session, killed with its parent.
* otherwise nothing more than the clean environment: the tool's own checks must hold alone
  (the bundler's do: deno's read permission, the module-graph check and the source-map check).

Either way the tool's environment is only what the caller passes: no ``DISCORD_TOKEN``,
``SECRETS_MASTER_KEY``, ``API_SECRET``, ``DATABASE_URL``… ever reaches it.

``BUNDLER_SANDBOX`` chooses: ``auto`` (bubblewrap when it works, else a warning and the clean
environment alone), ``bwrap`` (required: tools refuse to run without it), ``none``.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass

log = logging.getLogger("flora.sandbox")

MODES = ("auto", "bwrap", "none")
# What any dynamically linked tool needs to start; none of it is secret.
_SYSTEM_RO = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d")


class SandboxUnavailable(Exception):
    """``BUNDLER_SANDBOX=bwrap`` but bubblewrap cannot run here (the message says why)."""


@dataclass(frozen=True)
class Bind:
    """``path`` of the host visible in the sandbox, at ``target`` (default: the same path)."""

    path: str
    target: str | None = None
    writable: bool = False


_probe_lock = threading.Lock()
_probe_result: dict[str, str | None] = {}


def _probe_bwrap() -> str | None:
    """``None`` when the ``bwrap`` on ``PATH`` works here, else why not (cached per binary)."""
    exe = shutil.which("bwrap")
    with _probe_lock:
        if f"bwrap:{exe}" in _probe_result:
            return _probe_result[f"bwrap:{exe}"]
        if exe is None:
            reason: str | None = "bwrap is not installed (Debian: apt install bubblewrap)"
        else:
            try:
                proc = subprocess.run(
                    [exe, *_base_args(), "--", "/usr/bin/env", "true"], capture_output=True, text=True, timeout=30, env={}
                )
                reason = (
                    None
                    if proc.returncode == 0
                    else (
                        f"bwrap cannot create its namespaces here: {(proc.stderr or '').strip().splitlines()[-1:] or proc.returncode}"
                    )
                )
            except (OSError, subprocess.SubprocessError) as exc:
                reason = f"bwrap failed to start: {exc}"
        _probe_result[f"bwrap:{exe}"] = reason
        return reason


def _base_args() -> list[str]:
    args = ["--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--clearenv"]
    for path in _SYSTEM_RO:
        if os.path.lexists(path):
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            else:
                args += ["--ro-bind", path, path]
    return args + ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]


class ToolSandbox:
    def __init__(self, mode: str = "auto"):
        if mode not in MODES:
            raise ValueError(f"sandbox mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode

    @property
    def kind(self) -> str:
        """``bwrap`` or ``none``: what :meth:`run` will use (raises when bwrap is required and broken)."""
        if self.mode == "none":
            return "none"
        reason = _probe_bwrap()
        if reason is None:
            return "bwrap"
        if self.mode == "bwrap":
            raise SandboxUnavailable(f"BUNDLER_SANDBOX=bwrap but {reason}")
        if not _probe_result.get("warned"):
            _probe_result["warned"] = "yes"
            log.warning(
                "tenant files are bundled without an OS sandbox (%s); deno's read permission and "
                "flora's import checks still apply. Set BUNDLER_SANDBOX=bwrap to require it.",
                reason,
            )
        return "none"

    def check(self) -> None:
        """At start: a required sandbox that cannot run is a configuration error (one line, exit 2)."""
        from .config import ConfigError

        try:
            _ = self.kind  # raises when a required sandbox cannot run
        except SandboxUnavailable as exc:
            raise ConfigError(str(exc)) from None

    def command(self, argv: list[str], *, binds: list[Bind], env: dict[str, str], cwd: str) -> tuple[list[str], dict[str, str]]:
        """The command line and environment that run ``argv`` in the sandbox."""
        if self.kind == "none":
            return argv, dict(env)
        args = [shutil.which("bwrap") or "bwrap", *_base_args()]
        for bind in binds:
            args += ["--bind" if bind.writable else "--ro-bind", bind.path, bind.target or bind.path]
        for name, value in env.items():
            args += ["--setenv", name, value]
        args += ["--chdir", cwd, "--", *argv]
        return args, {}

    def run(
        self, argv: list[str], *, binds: list[Bind], env: dict[str, str], cwd: str, timeout: float
    ) -> subprocess.CompletedProcess:
        cmd, proc_env = self.command(argv, binds=binds, env=env, cwd=cwd)
        return subprocess.run(
            cmd, cwd=cwd, env=proc_env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
