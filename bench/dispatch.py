"""Event -> reply latency and throughput: a bare disnake bot vs flora, same emulator, same load.

    python bench/dispatch.py [--latency-events 300] [--burst-events 1000] [--workers 2]

(a) a bare disnake ``Client`` whose Python ``on_message`` answers ``!ping`` (bench/bare_bot.py);
(b) ``flora serve`` with ``examples/basic`` deployed, whose TypeScript answers ``!ping``.
Both run as separate processes against the project's Discord emulator, which runs here and
timestamps every REST request it receives. Latency: one message at a time, time from the
emulator sending MESSAGE_CREATE to the reply POST arriving. Throughput: a burst spread over
the channels of ``--guilds`` guilds (one channel each), replies per second from the first send
to the last reply. (One guild's events all go to that guild's one isolate, so a single guild
cannot use more than one worker; a real bot serves many guilds.)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flora_dev.emulator import Emulator  # noqa: E402

TOKEN = "bench-bot-token"
REPLY = r"^/channels/\d+/messages$"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_replies(emu: Emulator, since: float, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = emu.find_requests("POST", REPLY, since=since)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.002)


def measure(emu: Emulator, channels: list[str], user: str, n_latency: int, n_burst: int) -> dict:
    # warm up: the first events pay for imports, JIT and connection setup
    for i in range(20):
        t0 = time.time()
        emu.user_says(channels[i % len(channels)], user, f"!ping warm{i}")
        wait_replies(emu, t0, 1, 10)
    latencies = []
    for i in range(n_latency):
        t0 = time.time()
        emu.user_says(channels[0], user, f"!ping {i}")
        got = wait_replies(emu, t0, 1, 10)
        if not got:
            raise SystemExit(f"no reply to message {i} within 10 s")
        latencies.append((got[0]["time"] - t0) * 1000)
    time.sleep(0.5)
    t0 = time.time()
    for i in range(n_burst):
        emu.user_says(channels[i % len(channels)], user, f"!ping b{i}")
    sent = time.time()
    got = wait_replies(emu, t0, n_burst, 120)
    if len(got) < n_burst:
        raise SystemExit(f"only {len(got)} of {n_burst} burst replies arrived")
    last = max(r["time"] for r in got)
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "events_per_s": n_burst / (last - t0),
        "send_rate": n_burst / (sent - t0),
    }


def wait_connected(emu: Emulator, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not emu.connected_sessions:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the bot did not connect to the emulator")
        time.sleep(0.05)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency-events", type=int, default=300)
    ap.add_argument("--burst-events", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--guilds", type=int, default=8)
    args = ap.parse_args()

    emu = Emulator(token=TOKEN)
    emu.start()
    user = emu.create_user("bencher")["id"]
    guilds, channels = [], []
    for i in range(args.guilds):
        guild = emu.create_guild(f"Bench {i}")
        guilds.append(guild["id"])
        channels.append(emu.create_channel(guild["id"], "general")["id"])
        emu.add_member(guild["id"], user)
    base_env = dict(os.environ, DISCORD_TOKEN=TOKEN, FLORA_DISCORD_API_BASE=emu.api_base, FLORA_LOG_LEVEL="warning")
    results = {}
    try:
        # (a) bare disnake
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bare_bot.py")],
            env=base_env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_connected(emu, proc)
            results["disnake"] = measure(emu, channels, user, args.latency_events, args.burst_events)
        finally:
            stop(proc)
        emu.clear_requests()
        time.sleep(1)

        # (b) flora
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            env = dict(
                base_env,
                FLORA_DATA_DIR=tmp,
                API_PORT=str(port),
                API_ADDRESS="127.0.0.1",
                RUNTIME_MAX_WORKERS=str(args.workers),
                RUNTIME_WORKER_QUEUE_CAPACITY="1000000",
            )  # measure, do not shed load
            proc = subprocess.Popen(
                [sys.executable, "-m", "flora_cli", "serve"],
                env=env,
                start_new_session=True,
                cwd=tmp,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                wait_connected(emu, proc)
                token = subprocess.run(
                    [sys.executable, "-m", "flora_cli", "tokens", "create"],
                    env=env,
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                api = f"http://127.0.0.1:{port}/api"
                for _ in range(100):
                    try:
                        urllib.request.urlopen(f"{api}/health", timeout=1)
                        break
                    except OSError:
                        time.sleep(0.1)
                for guild_id in guilds:
                    subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "flora_cli",
                            "deploy",
                            "--guild-id",
                            guild_id,
                            "--root",
                            str(ROOT / "examples" / "basic"),
                            "--api",
                            api,
                            "--token",
                            token,
                        ],
                        env=env,
                        cwd=tmp,
                        check=True,
                        capture_output=True,
                    )
                emu.clear_requests()
                results["flora"] = measure(emu, channels, user, args.latency_events, args.burst_events)
            finally:
                stop(proc)
    finally:
        emu.stop()

    a, b = results["disnake"], results["flora"]
    print(
        f"!ping load: {args.latency_events} sequential events for latency, a burst of {args.burst_events} over {args.guilds} guilds "
        f"for throughput; flora with {args.workers} worker(s); one emulator process shares the machine"
    )
    print(f"{'':10} {'p50 ms':>8} {'p99 ms':>8} {'events/s':>9}")
    for name, r in results.items():
        print(f"{name:10} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f} {r['events_per_s']:9.0f}")
    print(
        f"{'flora/bare':10} {b['p50_ms'] / a['p50_ms']:7.2f}x {b['p99_ms'] / a['p99_ms']:7.2f}x "
        f"{b['events_per_s'] / a['events_per_s']:8.2f}x"
    )
    print(f"(burst send rate of the driver: {a['send_rate']:.0f}/s and {b['send_rate']:.0f}/s)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
