"""A port that is taken is one line naming the address and what changes it, before anything starts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from conftest import free_port
from test_dev_console import DevProcess


def _occupy(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _flora(tmp_path, *args, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "DISCORD_", "FLORA_", "DATABASE_"))}
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "flora_cli", *args],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return out, time.monotonic() - started


@pytest.mark.parametrize("which", ["api", "emulator"])
def test_serve_with_a_taken_port_says_which_and_how_to_change_it(tmp_path, which):
    api_port, emu_port = free_port(), free_port()
    with _occupy(api_port if which == "api" else emu_port):
        out, _ = _flora(tmp_path, "serve", "--emulator", "--emulator-port", str(emu_port), API_PORT=str(api_port))
    expected = {
        "api": f"Error: cannot listen on 127.0.0.1:{api_port} for the API: Address already in use "
        "(change it with API_PORT or [api] port in config.toml)\n",
        "emulator": f"Error: cannot listen on 127.0.0.1:{emu_port} for the Discord emulator: Address already in use "
        "(change it with --emulator-port)\n",
    }[which]
    assert (out.returncode, out.stderr) == (1, expected)
    assert not (tmp_path / "data").exists()  # said before anything started


def test_flora_dev_with_an_explicit_taken_port_is_one_line(tmp_path):
    port = free_port()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.ts").write_text("console.log(1)\n", encoding="utf-8")
    with _occupy(port):
        out, _ = _flora(tmp_path, "dev", ".", "--port", str(port))
    assert (out.returncode, out.stderr) == (
        1,
        f"Error: cannot listen on 127.0.0.1:{port} for the console: Address already in use (change it with --port)\n",
    )


def test_flora_dev_takes_a_free_console_port_when_the_default_is_taken(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.ts").write_text("console.log(1)\n", encoding="utf-8")
    try:
        holder = _occupy(8780)
    except OSError:  # taken already (another flora dev): the situation under test
        holder = None
    try:
        dev = DevProcess(tmp_path, "--emulator-port", "0")  # the console on its default port
        try:
            line = dev.wait_output("console: http://", timeout=90)
            assert "Port 8780 is taken (another flora dev?); the console takes a free port instead" in dev.output
            assert ":8780/" not in line
        finally:
            assert dev.stop() == 0, dev.output
    finally:
        if holder is not None:
            holder.close()
