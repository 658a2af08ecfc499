"""The whole path, end to end: CLI -> API (gevent) -> SQLite -> worker process -> V8
isolate -> ops -> disnake -> the Discord emulator. Nothing of ours is mocked."""

from __future__ import annotations

import time

from conftest import ROOT, bot_replies, deploy_files, emulator_guild, http_json, wait_for


def test_ping_through_the_whole_stack(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Ping Guild")
    out = stack.deploy_dir(g["id"], ROOT / "examples" / "basic")
    assert f"Deployed guild {g['id']}" in out.stdout
    status, deployments = http_json("GET", f"{stack.api}/deployments", token=stack.token)
    assert status == 200 and g["id"] in [d["guild_id"] for d in deployments]

    original = emu.user_says(g["channel_id"], g["user_id"], "!ping a b")
    reply = wait_for(
        lambda: [m for m in bot_replies(emu, g["channel_id"]) if m["content"].startswith("pong")], message="!ping reply"
    )[0]
    assert reply["content"] == "pong! args: a b"
    assert reply["message_reference"]["message_id"] == original["id"]
    assert reply["type"] == 19  # a reply


def test_slash_commands_with_options_and_subcommands(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Slash Guild")
    stack.deploy_dir(g["id"], ROOT / "examples" / "basic")
    wait_for(lambda: _has_command(emu, g["id"], "hello"), message="slash commands registered")

    inter = emu.invoke_slash(g["id"], g["channel_id"], g["user_id"], "hello", options=[{"name": "name", "type": 3, "value": "x"}])
    resp = wait_for(lambda: emu.interaction(inter["id"])["responses"], message="/hello response")[0]
    assert resp["type"] == 4
    assert resp["data"]["content"] == "Hello, x!"
    assert resp["data"]["flags"] & 64  # ephemeral honoured

    inter = emu.invoke_slash(
        g["id"],
        g["channel_id"],
        g["user_id"],
        "dice",
        options=[{"name": "roll", "type": 1, "options": [{"name": "sides", "type": 4, "value": 1}]}],
    )
    resp = wait_for(lambda: emu.interaction(inter["id"])["responses"], message="/dice roll response")[0]
    assert resp["data"]["content"] == "You rolled 1 (d1)"


def _has_command(emu, guild_id, name):
    return any(
        r["method"] == "PUT"
        and r["path"].endswith(f"/guilds/{guild_id}/commands")
        and any(c.get("name") == name for c in (r["json"] or []))
        for r in emu.requests
    )


def test_guild_without_deployment_gets_the_starter_script(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Fresh Guild")
    wait_for(
        lambda: any(e["message"] == "starter script deployed" for e in stack.guild_logs(g["id"])), message="starter deployed"
    )
    emu.user_says(g["channel_id"], g["user_id"], "!ping")
    emu.user_says(g["channel_id"], g["user_id"], "!ping a b")
    wait_for(lambda: len(bot_replies(emu, g["channel_id"])) >= 2, message="starter replies")
    assert sorted(m["content"] for m in bot_replies(emu, g["channel_id"])) == ["pong", "pong (a b)"]
    status, dep = http_json("GET", f"{stack.api}/deployments/{g['id']}", token=stack.token)
    assert status == 200 and dep["entry"] == "src/main.ts"


def test_a_script_cannot_touch_another_guilds_channel(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Attacker")
    victim = emulator_guild(stack.emu, "Victim")
    script = f"""
      on('messageCreate', async (ctx) => {{
        if (ctx.msg.author.bot || ctx.msg.content !== 'attack') return;
        try {{
          await __floraOp('op_send_message', {{ channelId: '{victim["channel_id"]}', content: 'pwned' }});
          await ctx.reply('sent');
        }} catch (e) {{
          await ctx.reply(`refused: ${{e.code}}: ${{e.message}}`);
        }}
      }});
    """
    status, body = deploy_files(stack, g["id"], {"src/main.ts": script})
    assert status == 200, body
    emu.user_says(g["channel_id"], g["user_id"], "attack")
    reply = wait_for(lambda: bot_replies(emu, g["channel_id"]), message="attack answer")[0]
    assert reply["content"] == "refused: SCOPE_FORBIDDEN: Forbidden: channel is outside runtime scope"
    assert not bot_replies(emu, victim["channel_id"])


def test_failed_deploys_keep_the_previous_script(stack, tmp_path):
    emu, g = stack.emu, emulator_guild(stack.emu, "Failing Deploys")
    stack.deploy_dir(g["id"], ROOT / "examples" / "basic")

    broken = tmp_path / "broken"
    (broken / "src").mkdir(parents=True)
    (broken / "src" / "main.ts").write_text("import { x } from './util';\nconsole.log(x);\n")
    (broken / "src" / "util.ts").write_text("export const x: number = ;\n")
    out = stack.deploy_dir(g["id"], broken, check=False)
    assert out.returncode != 0
    assert "src/util.ts:1:" in (out.stdout + out.stderr)

    status, body = deploy_files(stack, g["id"], {"src/main.ts": "throw new Error('nope at load');"})
    assert status == 400 and body["message"].startswith("Bad request: deployment failed: ") and "nope at load" in body["message"]

    emu.user_says(g["channel_id"], g["user_id"], "!ping still")
    reply = wait_for(lambda: bot_replies(emu, g["channel_id"]), message="reply from the previous script")[0]
    assert reply["content"] == "pong! args: still"


def test_runaway_handler_is_stopped_and_the_isolate_recreated(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Runaway")
    script = """
      on('messageCreate', async (ctx) => {
        if (ctx.msg.author.bot) return;
        if (ctx.msg.content === 'spin') { await ctx.reply('spinning'); while (true) {} }
        await ctx.reply('alive: ' + ctx.msg.content);
      });
    """
    assert deploy_files(stack, g["id"], {"src/main.ts": script})[0] == 200
    start = time.monotonic()
    emu.user_says(g["channel_id"], g["user_id"], "spin")
    entry = stack.wait_log(g["id"], "dispatch deadline")
    assert "messageCreate handler exceeded the 3s dispatch deadline" in entry["message"]
    assert time.monotonic() - start < 8
    stack.wait_log(g["id"], "isolate restarted after a dispatch timeout")
    emu.user_says(g["channel_id"], g["user_id"], "ok")
    wait_for(lambda: any(m["content"] == "alive: ok" for m in bot_replies(emu, g["channel_id"])), message="answer after restart")


def test_console_and_ready_events_reach_the_guild_log(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Logs")
    script = """
      console.log('loaded', {n: 1});
      on('messageCreate', (ctx) => { if (!ctx.msg.author.bot) console.error('got', ctx.msg.content); });
    """
    assert deploy_files(stack, g["id"], {"src/main.ts": script})[0] == 200
    entry = stack.wait_log(g["id"], 'loaded {"n":1}')
    assert entry["level"] == "info" and entry["target"] == "flora:js"
    emu.user_says(g["channel_id"], g["user_id"], "hello there")
    assert stack.wait_log(g["id"], "got hello there")["level"] == "error"


def test_only_subscribed_events_enter_the_isolate(stack):
    from flora_core.bus import UnixSocketClient

    emu, g = stack.emu, emulator_guild(stack.emu, "Subscriptions")
    script = "on('reactionAdd', (ctx) => console.log('reaction', ctx.msg.emoji.name));"
    assert deploy_files(stack, g["id"], {"src/main.ts": script})[0] == 200
    status = UnixSocketClient(stack.data_dir / "run" / "runtime.sock").status()
    assert status["subscriptions"][g["id"]] == ["reactionAdd"]
    msg = emu.user_says(g["channel_id"], g["user_id"], "not for the script")
    emu.react(g["channel_id"], msg["id"], g["user_id"], "👍")
    stack.wait_log(g["id"], "reaction 👍")


def test_a_prebuilt_esm_bundle_as_flora_cli_uploads_it(stack):
    """flora's CLI uploads an ES-module bundle from its build service; it must run here too."""
    emu, g = stack.emu, emulator_guild(stack.emu, "ESM bundle")
    bundle = """
const greet = (args) => `esm pong ${args.join(",")}`;
createBot({ commands: [prefix({ name: "ping", run: (ctx) => ctx.reply(greet(ctx.args)) })] });
export { greet };
export default greet;
"""
    status, body = http_json(
        "POST",
        f"{stack.api}/deployments/{g['id']}",
        {"entry": "src/main.ts", "bundle": bundle},
        token=stack.token,
        headers={"x-flora-deploy-source": "cli"},
    )
    assert status == 200, body
    emu.user_says(g["channel_id"], g["user_id"], "!ping 1 2")
    reply = wait_for(lambda: bot_replies(emu, g["channel_id"]), message="reply from the ESM bundle")[0]
    assert reply["content"] == "esm pong 1,2"


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(next(line for line in f if line.startswith("Threads:")).split()[1])


def test_ten_redeploys_reuse_nothing_and_leak_nothing(stack):
    """flora's `stress_redeploys_reuse_isolates_without_crash`: 10 redeploys of one guild each succeed and
    a dispatch after each works; here also: the worker's thread count does not grow (old isolates are closed)."""
    from flora_core.bus import UnixSocketClient

    emu, g = stack.emu, emulator_guild(stack.emu, "Redeploys")
    control = UnixSocketClient(stack.data_dir / "run" / "runtime.sock")
    counts = []
    for i in range(10):
        script = f"on('messageCreate', async (ctx) => {{ if (!ctx.msg.author.bot) await ctx.reply('v{i}'); }});"
        assert deploy_files(stack, g["id"], {"src/main.ts": script})[0] == 200
        emu.user_says(g["channel_id"], g["user_id"], f"ping {i}")
        wait_for(lambda i=i: [m for m in bot_replies(emu, g["channel_id"]) if m["content"] == f"v{i}"], message=f"reply v{i}")
        pids = [w["pid"] for w in control.status()["workers"]]
        counts.append(sum(_threads(p) for p in pids))
    assert [m["content"] for m in bot_replies(emu, g["channel_id"])] == [f"v{i}" for i in range(10)]
    assert max(counts[3:]) <= counts[2] + 2, counts  # no thread per replaced isolate left behind
