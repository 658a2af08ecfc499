"""``flora deployments list|history|show|rollback`` and ``flora logs [-f]`` against a real `flora serve`."""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time

from conftest import deploy_files, emulator_guild

V1 = "on('messageCreate', (ctx) => { if (!ctx.msg.author.bot) console.log('v1 heard', ctx.msg.content); });\n"
V2 = "on('messageCreate', (ctx) => { if (!ctx.msg.author.bot) console.log('v2 heard', ctx.msg.content); });\n"


def _cli(stack, *args, check=True):
    return stack.cli(*args, "--api", stack.api, "--token", stack.token, check=check)


def test_deployments_history_show_rollback(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "CLI Guild")
    assert deploy_files(stack, g["id"], {"src/main.ts": V1})[0] == 200
    assert deploy_files(stack, g["id"], {"src/main.ts": V2})[0] == 200

    listed = json.loads(_cli(stack, "deployments", "list", "--json").stdout)
    assert g["id"] in {d["guild_id"] for d in listed}
    assert g["id"] in _cli(stack, "deployments", "list").stdout

    revs = json.loads(_cli(stack, "deployments", "history", "--guild-id", g["id"], "--json").stdout)
    assert [r["status"] for r in revs][:2] == ["success", "success"]
    v2, v1 = revs[0], revs[1]
    text = _cli(stack, "deployments", "history", "--guild-id", g["id"], "-n", "1", "--all").stdout
    assert v1["id"] in text and v2["id"] in text

    shown = _cli(stack, "deployments", "show", v1["id"], "--guild-id", g["id"]).stdout
    assert f"Revision {v1['id']} (success)" in shown and "entry: src/main.ts" in shown
    current = _cli(stack, "deployments", "show", "--guild-id", g["id"]).stdout
    assert f"Guild {g['id']}" in current

    out = _cli(stack, "deployments", "rollback", v1["id"], "--guild-id", g["id"]).stdout
    assert f"Rolled back guild {g['id']} to {v1['id']}" in out
    newest = json.loads(_cli(stack, "deployments", "history", "--guild-id", g["id"], "-n", "1", "--json").stdout)[0]
    assert newest["deploy_source"] == "cli" and newest["base_revision_id"] == v2["id"]
    emu.user_says(g["channel_id"], g["user_id"], "after rollback")
    stack.wait_log(g["id"], "v1 heard after rollback")

    bad = _cli(stack, "deployments", "show", "nope", "--guild-id", g["id"], check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == "Error: Bad request: Invalid revision ID"
    bad = _cli(stack, "deployments", "rollback", "00000000-0000-0000-0000-000000000000", "--guild-id", g["id"], check=False)
    assert bad.returncode == 1 and bad.stderr.strip() == "Error: Bad request: Rollback target must be a successful revision"
    bad = _cli(stack, "deployments", "history", "--guild-id", "x", check=False)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_logs_and_follow(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Logs CLI Guild")
    assert deploy_files(stack, g["id"], {"src/main.ts": V1})[0] == 200
    emu.user_says(g["channel_id"], g["user_id"], "first")
    stack.wait_log(g["id"], "v1 heard first")
    out = _cli(stack, "logs", "--guild-id", g["id"], "-n", "5").stdout
    line = next(ln for ln in out.splitlines() if "v1 heard first" in ln)
    assert line.endswith(f"INFO  [{g['id']}] flora:js: v1 heard first") and line[4] == "-" and line[19] == "."
    assert _cli(stack, "logs", "--guild-id", g["id"], "-n", "0").stdout.strip() == "No logs found"

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flora_cli",
            "logs",
            "--guild-id",
            g["id"],
            "-n",
            "0",
            "-f",
            "--api",
            stack.api,
            "--token",
            stack.token,
        ],
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        opened = selectors.DefaultSelector()
        opened.register(proc.stderr, selectors.EVENT_READ)
        assert opened.select(timeout=30), "the CLI did not open the stream within 30 s"
        assert proc.stderr.readline().startswith(f"Following the log of guild {g['id']}")  # the stream is open
        emu.user_says(g["channel_id"], g["user_id"], "followed")
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        deadline, seen = time.monotonic() + 15, ""
        while time.monotonic() < deadline and "v1 heard followed" not in seen:
            if sel.select(timeout=0.5):
                seen += proc.stdout.readline()
        assert "v1 heard followed" in seen, (seen, proc.poll())
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    no_token = subprocess.run(
        [sys.executable, "-m", "flora_cli", "logs", "--guild-id", g["id"], "--api", stack.api],
        env={k: v for k, v in stack.env.items() if k != "FLORA_TOKEN"},
        capture_output=True,
        text=True,
    )
    assert (
        no_token.returncode == 1
        and no_token.stderr.strip() == "Error: Missing API token; run `flora login`, pass --token or set FLORA_TOKEN"
    )
