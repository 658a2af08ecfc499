"""Stopping flora: SIGTERM or SIGINT to `flora serve` or to its whole process group (what systemd and
Ctrl-C do) stops it in order, fast, with no worker restarted and no process left; a SIGKILL of the
supervisor takes its children with it. Real processes, every wait bounded.

STOP_SECS: the supervisor's stop is bounded at 4 s (``supervisor.STOP_BUDGET_SECS``: at most 2.5 s for
requests in flight, 1 s for the workers to exit, 0.5 s to reap what had to be killed) and takes well
under 1 s when nothing is in flight; the rest is the interpreter's exit. 5 s leaves room for a busy
machine and still fails the 10-35 s flora took before.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import bot_replies, deploy_files, free_port, http_json, start_flora, stop_flora, wait_for

STOP_SECS = 5.0
GONE_SECS = 5.0  # children of a killed supervisor are gone within this (the kernel kills them at once)

SCRIPT = """
on('messageCreate', async (ctx) => {
  if (ctx.msg.author.bot) return;
  const text = ctx.msg.content;
  if (text === '!slow') {
    console.log('slow: started');
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await ctx.reply('slow: done');
  } else if (text.startsWith('!ping ')) {
    await ctx.reply('pong: ' + text.slice(6));
  }
});
"""


# -- processes -----------------------------------------------------------------------------------
def _live_in_group(pgid: int) -> list[str]:
    """The processes of group ``pgid`` still running ("pid cmdline"); zombies are dead already (a
    container's pid 1 may never reap them)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(f"{stat.parent.name} {cmdline}")
    return out


def _assert_group_gone(pgid: int, timeout: float = GONE_SECS) -> None:
    deadline = time.monotonic() + timeout
    while (left := _live_in_group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        raise AssertionError(f"still running {timeout:g} s after flora serve exited:\n" + "\n".join(left))


def _workers(pgid: int) -> list[int]:
    return [int(p.split()[0]) for p in _live_in_group(pgid) if "multiprocessing.spawn" in p]


class Serve:
    """`flora serve --emulator` in ``folder`` (its data in ./data), in its own process group."""

    def __init__(self, folder: Path, emu_port: int | None = None, api_port: int | None = None):
        self.folder = folder
        self.emu_port, self.api_port = emu_port or free_port(), api_port or free_port()
        self.emu = f"http://127.0.0.1:{self.emu_port}"
        self.api = f"http://127.0.0.1:{self.api_port}/api"
        env = {k: v for k, v in os.environ.items() if k not in ("DISCORD_TOKEN", "DATABASE_URL", "FLORA_DISCORD_API_BASE")}
        env.update(API_PORT=str(self.api_port), API_ADDRESS="127.0.0.1", RUNTIME_MAX_WORKERS="2", FLORA_LOG_LEVEL="info")
        self.env = env
        self.proc: subprocess.Popen | None = None
        self.log_path = folder / "serve.log"
        self.token: str | None = None

    def start(self) -> Serve:
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "flora_cli", "serve", "--emulator", "--emulator-port", str(self.emu_port)],
                cwd=self.folder,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._up, timeout=90, interval=0.1, message=f"flora serve up:\n{self.log}")
        state = http_json("GET", f"{self.emu}/_emu/state")[1]
        guild = next(g for g in state["guilds"] if g["name"] == "flora dev")
        self.guild = guild["id"]
        self.channel = next(c for c in guild["channels"] if c["name"] == "general")["id"]
        self.alice = next(m for m in guild["members"] if m["user"]["username"] == "alice")["user"]["id"]
        return self

    def _up(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"flora serve exited with {self.proc.returncode}:\n{self.log}")
        try:
            return http_json("GET", f"{self.api}/health", timeout=2)[0] == 200 and bool(
                http_json("GET", f"{self.emu}/_emu/sessions", timeout=2)[1]
            )
        except OSError:
            return False

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def pgid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def deploy(self, script: str = SCRIPT) -> None:
        out = subprocess.run(
            [sys.executable, "-m", "flora_cli", "tokens", "create", "--label", "stop-tests"],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        self.token = out.stdout.strip().splitlines()[-1]
        body = {"entry": "src/main.ts", "files": [{"path": "src/main.ts", "contents": script}]}
        status, answer = http_json("POST", f"{self.api}/deployments/{self.guild}", body, token=self.token)
        assert status == 200, answer

    def say(self, content: str) -> None:
        status, body = http_json(
            "POST", f"{self.emu}/_emu/say", {"channel_id": self.channel, "user_id": self.alice, "content": content}
        )
        assert status == 201, body

    def replies(self) -> list[str]:
        status, messages = http_json("GET", f"{self.emu}/_emu/messages/{self.channel}")
        assert status == 200, messages
        return [m["content"] for m in messages if m["author"].get("bot")]

    def ping(self, word: str, timeout: float = 30) -> None:
        self.say(f"!ping {word}")
        wait_for(
            lambda: f"pong: {word}" in self.replies(),
            timeout=timeout,
            interval=0.05,
            message=f"the deployed script's reply to !ping {word}:\n{self.log}",
        )

    def signal(self, sig: int, group: bool = True) -> tuple[int, float]:
        """Send ``sig`` to the process group (or the supervisor alone); its exit code and how long it took."""
        assert self.proc is not None
        started = time.monotonic()
        if group:
            os.killpg(self.pgid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            raise AssertionError(f"flora serve did not exit within 30 s of {signal.Signals(sig).name}:\n{self.log}") from None
        return code, time.monotonic() - started

    def kill_all(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def _assert_orderly(log: str) -> None:
    """What the log of an orderly stop holds, and what it does not."""
    assert "Traceback" not in log, log
    assert "restarting it" not in log and " restarted; " not in log, log  # no worker restarted
    assert "killing it" not in log, log  # nothing needed SIGKILL: every child stopped when asked
    assert "flora api stopping (asked by the supervisor)" in log, log  # not by the signal itself
    assert "isolate closed" in log and "(shutdown)" in log, log  # the workers' orderly shutdown
    assert "stopped in " in log, log


# -- SIGTERM / SIGINT ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sig, group",
    [(signal.SIGTERM, True), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["sigterm-to-the-group", "sigint-to-the-group", "sigterm-to-the-supervisor"],
)
def test_a_stop_signal_stops_flora_serve_in_order_and_fast(tmp_path, sig, group):
    serve = Serve(tmp_path).start()
    try:
        serve.deploy()
        serve.ping("before")
        members = _live_in_group(serve.pgid)
        assert len(_workers(serve.pgid)) == 2 and any("flora_http.serve" in p for p in members), members
        # the API serves a guild's log stream, a request that never ends by itself
        stream = socket.create_connection(("127.0.0.1", serve.api_port), timeout=10)
        stream.sendall(
            f"GET /api/logs/{serve.guild}/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {serve.token}\r\n\r\n".encode()
        )
        assert stream.recv(64).startswith(b"HTTP/1.1 200"), "the log stream did not start"
        code, took = serve.signal(sig, group=group)
        stream.close()
        assert code == 0, serve.log
        assert took < STOP_SECS, f"flora serve took {took:.2f} s to exit:\n{serve.log}"
        _assert_orderly(serve.log)
        assert f"{signal.Signals(sig).name}: stopping" in serve.log
        _assert_group_gone(serve.pgid)
    finally:
        serve.kill_all()


def test_a_dispatch_in_flight_at_sigterm_sends_its_reply_before_flora_exits(emulator, guild, tmp_path):
    """The emulator lives in the test, so what the bot sent is still there after flora serve exited."""
    server = start_flora(emulator, tmp_path)
    try:
        assert deploy_files(server, guild["id"], {"src/main.ts": SCRIPT})[0] == 200
        emulator.user_says(guild["channel"]["id"], guild["user"]["id"], "!slow")
        wait_for(lambda: "slow: started" in server.logs(), timeout=30, message="the handler started")
        started = time.monotonic()
        os.killpg(server.proc.pid, signal.SIGTERM)
        code = server.proc.wait(timeout=30)
        took = time.monotonic() - started
        assert code == 0, server.logs()
        assert took < STOP_SECS, f"{took:.2f} s:\n{server.logs()}"
        assert "slow: done" in [m["content"] for m in bot_replies(emulator, guild["channel"]["id"])], server.logs()
        assert "cut off" not in server.logs()
        assert "stopping: waiting up to" in server.logs()  # it did wait for the dispatch
    finally:
        stop_flora(server)  # exited already: checks that nothing of its group is left


def test_a_stop_while_a_worker_is_being_replaced_neither_waits_for_it_nor_restores_it(tmp_path):
    serve = Serve(tmp_path).start()
    try:
        serve.deploy()
        serve.ping("before")
        os.kill(_workers(serve.pgid)[0], signal.SIGKILL)  # a crash: the supervisor starts a replacement
        wait_for(lambda: "restarting it" in serve.log, timeout=30, interval=0.005, message="the replacement started")
        code, took = serve.signal(signal.SIGTERM)
        assert code == 0 and took < STOP_SECS, (took, serve.log)
        after = serve.log.split("SIGTERM: stopping", 1)[1]
        # whether the replacement had connected yet or not: nothing is restarted or restored from the stop on
        assert "restarting it" not in after and " restarted; " not in after, serve.log
        assert "Traceback" not in serve.log, serve.log
        _assert_group_gone(serve.pgid)
    finally:
        serve.kill_all()


# -- SIGKILL ---------------------------------------------------------------------------------------
def test_sigkill_of_the_supervisor_takes_its_children_and_the_next_start_is_clean(tmp_path):
    first = Serve(tmp_path).start()
    try:
        first.deploy()
        first.ping("one")
        children = [p for p in _live_in_group(first.pgid) if not p.startswith(f"{first.pgid} ")]
        assert len(children) >= 3, children  # two workers and the API (and multiprocessing's resource tracker)
        assert first.proc is not None
        first.proc.kill()
        first.proc.wait(timeout=10)
        _assert_group_gone(first.pgid)
    finally:
        first.kill_all()
    # the same data folder and ports: nothing of the first run is in the way
    second = Serve(tmp_path, first.emu_port, first.api_port)
    second.log_path = tmp_path / "serve-2.log"
    second.start()
    try:
        second.ping("two")  # the deployed script answers, restored from storage
        code, took = second.signal(signal.SIGTERM)
        assert code == 0 and took < STOP_SECS, (took, second.log)
        _assert_orderly(second.log)
        _assert_group_gone(second.pgid)
    finally:
        second.kill_all()


# -- a child on its own ----------------------------------------------------------------------------
def test_a_worker_sent_sigterm_alone_exits_after_its_grace_and_is_replaced(tmp_path):
    """Only a group signal is meant to wait for the supervisor: a SIGTERM to one worker still ends it,
    after ``lifeline.CHILD_STOP_GRACE_SECS`` (10 s), and the supervisor replaces it."""
    from flora_core.runtime.lifeline import CHILD_STOP_GRACE_SECS

    serve = Serve(tmp_path).start()
    try:
        serve.deploy()
        serve.ping("before")
        victim = _workers(serve.pgid)[0]
        os.kill(victim, signal.SIGTERM)
        wait_for(
            lambda: "got SIGTERM and no orderly stop from the supervisor" in serve.log,
            timeout=CHILD_STOP_GRACE_SECS + 20,
            interval=0.1,
            message=f"the worker's exit:\n{serve.log}",
        )
        wait_for(
            lambda: "exited with code 143; restarting it" in serve.log and " restarted; " in serve.log,
            timeout=60,
            interval=0.1,
            message=f"the worker replaced:\n{serve.log}",
        )
        assert victim not in _workers(serve.pgid)
        serve.ping("after")
        code, took = serve.signal(signal.SIGTERM)
        assert code == 0 and took < STOP_SECS, (took, serve.log)
    finally:
        serve.kill_all()


def test_the_api_process_stops_when_its_supervisor_pipe_closes_not_on_a_group_signal(tmp_path):
    """The API as the supervisor starts it (``apiproc.py``), with this test as its supervisor."""
    from flora_core.runtime.lifeline import SUPERVISOR_FD_ENV, SUPERVISOR_PID_ENV

    port = free_port()
    read_end, write_end = os.pipe()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        {
            "FLORA_DATA_DIR": str(tmp_path / "data"),
            "API_PORT": str(port),
            "API_ADDRESS": "127.0.0.1",
            "DISCORD_TOKEN": "x",
            SUPERVISOR_PID_ENV: str(os.getpid()),
            SUPERVISOR_FD_ENV: str(read_end),
        }
    )
    log_path = tmp_path / "api.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flora_http.serve"],
            env=env,
            pass_fds=(read_end,),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    os.close(read_end)
    try:
        wait_for(lambda: _health(f"http://127.0.0.1:{port}/api"), timeout=60, interval=0.1, message="the API up")
        os.killpg(proc.pid, signal.SIGTERM)  # what a group signal does to it
        os.close(write_end)  # the supervisor's orderly stop
        write_end = -1
        assert proc.wait(timeout=STOP_SECS) == 0, log_path.read_text()
        text = log_path.read_text()
        assert "flora api stopping (asked by the supervisor)" in text, text
        assert "flora api stopping (signal" not in text, text
    finally:
        if write_end >= 0:
            os.close(write_end)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# -- the lifeline itself, in plain processes --------------------------------------------------------
PIPE_FD = 10
PARENT = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())], pass_fds=PASS,
                         stderr=open(sys.argv[2], "w"))
print(child.pid, flush=True)
time.sleep(120)
"""


def _parent_then_kill(tmp_path: Path, child_code: str, with_pipe: bool) -> tuple[int, str]:
    """Start a parent whose child runs ``child_code`` (argv[1]: the parent's pid; with ``with_pipe`` the
    child's fd PIPE_FD is the read end of a pipe only the parent holds), SIGKILL the parent, wait for the child
    to be gone; returns the child's pid and its stderr."""
    err = tmp_path / "child.err"
    ready = tmp_path / "child.ready"
    code = PARENT.replace("PASS", f"({PIPE_FD},)" if with_pipe else "()")
    if with_pipe:  # the write end stays in the parent alone (not inheritable)
        code = f"import os\nr, w = os.pipe()\nos.dup2(r, {PIPE_FD}, inheritable=False)\n" + code
    parent = subprocess.Popen(
        [sys.executable, "-c", code, child_code.replace("READY", str(ready)), str(err)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        wait_for(ready.exists, timeout=30, message="the child set itself up")
        parent.kill()
        parent.wait(timeout=10)
        _assert_group_gone(parent.pid)
        return child, err.read_text()
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_die_with_parent_kills_the_child_when_its_parent_is_killed(tmp_path):
    child = (
        "import sys, time, pathlib\nfrom flora_core.runtime.lifeline import die_with_parent\n"
        "assert die_with_parent(int(sys.argv[1]))\npathlib.Path('READY').touch()\ntime.sleep(120)\n"
    )
    _, err = _parent_then_kill(tmp_path, child, with_pipe=False)
    assert err == ""  # the kernel's SIGKILL: nothing said


def test_the_fallback_watch_ends_the_child_when_its_parent_is_gone(tmp_path):
    """Where there is no parent-death signal: the pipe only the parent held closes, the child exits."""
    child = (
        "import time, pathlib\nfrom flora_core.runtime.lifeline import exit_when_closed\n"
        f"exit_when_closed({PIPE_FD}, 'the child')\npathlib.Path('READY').touch()\ntime.sleep(120)\n"
    )
    _, err = _parent_then_kill(tmp_path, child, with_pipe=True)
    assert "the child: the supervisor is gone; exiting" in err


def test_a_child_whose_parent_died_before_it_armed_exits_at_once():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from flora_core.runtime.lifeline import die_with_parent\ndie_with_parent(-1)\nimport time; time.sleep(60)",
        ],
        timeout=30,
    )
    assert out.returncode == 1


# -- flora api (gunicorn) ---------------------------------------------------------------------------
def test_flora_api_under_gunicorn_stops_within_seconds_with_a_log_stream_open(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        {"FLORA_DATA_DIR": str(tmp_path / "data"), "API_PORT": str(port), "API_ADDRESS": "127.0.0.1", "DISCORD_TOKEN": "x"}
    )
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flora_cli", "api", "--workers", "2"],
            env=env,
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: _health(f"http://127.0.0.1:{port}/api"), timeout=60, interval=0.1, message="gunicorn up")
        token = (
            subprocess.run(
                [sys.executable, "-m", "flora_cli", "tokens", "create", "--label", "t"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        stream = socket.create_connection(("127.0.0.1", port), timeout=10)
        stream.sendall(
            f"GET /api/logs/123456789012345678/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
        )
        assert stream.recv(64).startswith(b"HTTP/1.1 200"), log_path.read_text()
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=30)
        took = time.monotonic() - started
        stream.close()
        # gunicorn.conf.py: graceful_timeout = 2, then the worker holding the stream is killed
        assert code == 0 and took < STOP_SECS, (took, log_path.read_text())
        _assert_group_gone(proc.pid)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _health(api: str) -> bool:
    try:
        return http_json("GET", f"{api}/health", timeout=2)[0] == 200
    except OSError:
        return False
