"""Cron end to end through `flora serve`, with time moved by the test (FLORA_CRON_TEST_CLOCK):
runs, skipIfRunning, and a restart across occurrences with catchUp 'latest' and 'none'."""

from __future__ import annotations

import collections
import datetime as dt
import re
import sqlite3
import time

from conftest import BOT_TOKEN, deploy_files, emulator_guild, start_flora, stop_flora, wait_for

T0 = dt.datetime(2030, 1, 1, 12, 0, 30, tzinfo=dt.UTC).timestamp()

TICKS = """
cron('tick-latest', '* * * * *', (ctx) => { console.log(`RUN tick-latest ${ctx.scheduledAt}`); }, { catchUp: 'latest' });
cron('tick-none', '* * * * *', (ctx) => { console.log(`RUN tick-none ${ctx.scheduledAt}`); });
"""

# Takes longer than the test lets a "minute" last; cron's deadline (RUNTIME_CRON_TIMEOUT_SECS) is 5 s.
SLOW = """
cron('slow', '* * * * *', (ctx) => {
  console.log(`START slow ${ctx.scheduledAt}`);
  const end = Date.now() + 3000;
  while (Date.now() < end) {}
  console.log(`END slow ${ctx.scheduledAt}`);
}, { skipIfRunning: true });
"""


def at(minute: int, second: int = 0) -> float:
    return T0 - 30 + minute * 60 + second


def iso(minute: int) -> str:
    return dt.datetime.fromtimestamp(at(minute), dt.UTC).isoformat()


class ClockFile:
    def __init__(self, path):
        self.path = path

    def set(self, t: float) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(repr(t))
        tmp.replace(self.path)  # atomic: flora never reads half a number


def running_jobs(server, guild_id: str) -> list[str]:
    conn = sqlite3.connect(server.data_dir / "flora.db")
    try:
        rows = conn.execute(
            "SELECT c.name FROM cron_jobs c JOIN cron_loads l ON l.guild_id = c.guild_id AND l.load_id = c.load_id"
            " WHERE c.guild_id = ? ORDER BY c.name",
            (guild_id,),
        ).fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        conn.close()
    return [r[0] for r in rows]


def messages(server, guild_id: str) -> list[str]:
    return [e["message"] for e in server.guild_logs(guild_id)]


def wait_message(server, guild_id: str, needle: str, timeout: float = 15) -> None:
    wait_for(
        lambda: any(needle in m for m in messages(server, guild_id)),
        timeout=timeout,
        interval=0.1,
        message=f"log line {needle!r} in guild {guild_id}",
    )


def runs(server, guild_id: str, prefix: str) -> collections.Counter:
    """How many times each scheduledAt ran, from the script's own log lines."""
    pattern = re.compile(rf"^{re.escape(prefix)} (\S+)$")
    return collections.Counter(m.group(1) for m in (pattern.match(x) for x in messages(server, guild_id)) if m)


def test_cron_runs_skips_and_survives_a_restart_across_occurrences(tmp_path):
    from flora_dev.emulator import Emulator

    clock = ClockFile(tmp_path / "clock")
    clock.set(at(0, 30))
    env = {"FLORA_CRON_TEST_CLOCK": str(tmp_path / "clock"), "FLORA_CRON_TEST_TICK_SECS": "0.2"}
    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    a, b = emulator_guild(emu, "Ticks"), emulator_guild(emu, "Slow")
    server = start_flora(emu, tmp_path, **env)
    try:
        for g in (a, b):
            server.wait_log(g["id"], "starter script deployed")
        assert deploy_files(server, a["id"], {"src/main.ts": TICKS})[0] == 200
        assert deploy_files(server, b["id"], {"src/main.ts": SLOW})[0] == 200
        wait_for(
            lambda: running_jobs(server, a["id"]) == ["tick-latest", "tick-none"] and running_jobs(server, b["id"]) == ["slow"],
            message="jobs registered",
        )

        clock.set(at(1, 5))
        wait_message(server, a["id"], f"RUN tick-latest {iso(1)}")
        wait_message(server, a["id"], f"RUN tick-none {iso(1)}")
        # started in the same tick as the ticks above; its log lines only appear once its busy loop ends
        clock.set(at(2, 5))  # so the 12:01 run of 'slow' is still going
        wait_message(
            server, b["id"], f"cron 'slow' skipped (scheduled {iso(2)}): its previous run is still in progress (skipIfRunning)"
        )
        wait_message(server, a["id"], f"RUN tick-none {iso(2)}")
        wait_message(server, a["id"], f"RUN tick-latest {iso(2)}")
        wait_message(server, b["id"], f"cron 'slow' ran (scheduled {iso(1)})")
    finally:
        stop_flora(server)

    # flora is down while 12:03, 12:04 and 12:05 pass
    clock.set(at(5, 30))
    server = start_flora(emu, tmp_path, **env)
    try:
        wait_message(server, a["id"], f"RUN tick-latest {iso(5)}")
        wait_message(
            server, a["id"], "cron 'tick-none': 3 occurrences missed while flora was not running, not run (catchUp: 'none')"
        )
        wait_message(server, b["id"], "cron 'slow': 3 occurrences missed while flora was not running, not run (catchUp: 'none')")
        clock.set(at(6, 5))
        wait_message(server, a["id"], f"RUN tick-latest {iso(6)}")
        wait_message(server, a["id"], f"RUN tick-none {iso(6)}")
        wait_message(server, b["id"], f"END slow {iso(6)}")
        time.sleep(0.6)  # a few more ticks: nothing else may run

        assert runs(server, a["id"], "RUN tick-latest") == {iso(1): 1, iso(2): 1, iso(5): 1, iso(6): 1}
        assert runs(server, a["id"], "RUN tick-none") == {iso(1): 1, iso(2): 1, iso(6): 1}
        assert runs(server, b["id"], "START slow") == {iso(1): 1, iso(6): 1}
        assert runs(server, b["id"], "END slow") == {iso(1): 1, iso(6): 1}
        catch_up = [m for m in messages(server, a["id"]) if m.startswith("cron 'tick-latest': catching up")]
        assert catch_up == [
            f"cron 'tick-latest': catching up the occurrence of {iso(5)}, the latest of 3 occurrences missed "
            "while flora was not running (catchUp: 'latest')"
        ]
    finally:
        stop_flora(server)
        emu.stop()


def test_a_redeploy_keeps_the_schedule_and_a_failed_one_keeps_the_jobs(tmp_path):
    from flora_dev.emulator import Emulator

    clock = ClockFile(tmp_path / "clock")
    clock.set(at(0, 30))
    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    g = emulator_guild(emu, "Redeploy")
    server = start_flora(emu, tmp_path, FLORA_CRON_TEST_CLOCK=str(tmp_path / "clock"), FLORA_CRON_TEST_TICK_SECS="0.2")
    try:
        server.wait_log(g["id"], "starter script deployed")
        assert deploy_files(server, g["id"], {"src/main.ts": TICKS})[0] == 200
        wait_for(lambda: running_jobs(server, g["id"]) == ["tick-latest", "tick-none"], message="jobs registered")
        clock.set(at(1, 5))
        wait_message(server, g["id"], f"RUN tick-none {iso(1)}")

        # the same jobs deployed again: 12:01 is not repeated, 12:02 is not lost
        assert deploy_files(server, g["id"], {"src/main.ts": TICKS + "\n// v2\n"})[0] == 200
        # a failing deploy: the running jobs stay (flora lost them)
        status, body = deploy_files(
            server, g["id"], {"src/main.ts": "cron('other', '* * * * *', () => {});\nthrow new Error('broken');"}
        )
        assert status == 400 and "broken" in body["message"]
        wait_for(lambda: running_jobs(server, g["id"]) == ["tick-latest", "tick-none"], message="jobs kept")
        # a job refused at registration is reported, and the script still loads
        bad = TICKS + "\ncron('bad', 'not a cron', () => {});\ncron('tick-none', '* * * * *', () => {});\n"
        assert deploy_files(server, g["id"], {"src/main.ts": bad})[0] == 200
        wait_message(server, g["id"], "cron 'bad' was not registered: invalid cron expression 'not a cron': expected 5 fields")
        wait_message(server, g["id"], "cron 'tick-none' was not registered: cron job with name 'tick-none' already exists")

        clock.set(at(2, 5))
        wait_message(server, g["id"], f"RUN tick-none {iso(2)}")
        wait_message(server, g["id"], f"RUN tick-latest {iso(2)}")
        time.sleep(0.6)
        assert runs(server, g["id"], "RUN tick-none") == {iso(1): 1, iso(2): 1}
        assert runs(server, g["id"], "RUN tick-latest") == {iso(1): 1, iso(2): 1}
    finally:
        stop_flora(server)
        emu.stop()
