"""Discord drops an interaction not answered within 3 s. A slow handler still reaches its user:
the runtime defers it after RUNTIME_AUTO_DEFER_MS and the script's reply edits the deferred response."""

from __future__ import annotations

import time

from conftest import deploy_files, emulator_guild, wait_for

SCRIPT = """
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
createBot({ slashCommands: [
  slash({ name: 'slow', description: 'slow', run: async (ctx) => { await sleep(2800); await ctx.reply('slow answer'); } }),
  slash({ name: 'slowsecret', description: 'slow and ephemeral',
          run: async (ctx) => { await sleep(2800); await ctx.reply({ content: 'only you', ephemeral: true }); } }),
  slash({ name: 'fast', description: 'fast', run: async (ctx) => { await ctx.reply('fast answer'); } }),
  slash({ name: 'form', description: 'modal', run: async (ctx) => {
    await ctx.showModal({ customId: 'f1', title: 'Tell me', components: [label('Name').setComponent(inputText('name'))] });
  } }),
] });
"""


def _ready(stack, g):
    assert deploy_files(stack, g["id"], {"src/main.ts": SCRIPT})[0] == 200
    wait_for(
        lambda: {c["name"] for c in stack.emu.commands(g["id"])} >= {"slow", "slowsecret", "fast", "form"}, message="commands"
    )


def test_a_slow_slash_handler_still_answers(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Slow handlers")
    _ready(stack, g)
    start = time.monotonic()
    inter = emu.invoke_slash(g["id"], g["channel_id"], g["user_id"], "slow")
    state = wait_for(
        lambda: (s := emu.interaction(inter["id"]))["original"] and s["original"].get("content") == "slow answer" and s,
        timeout=8,
        message="edited original",
    )
    assert [r["type"] for r in state["responses"]] == [5]  # deferred by the runtime, in time
    assert time.monotonic() - start >= 2.8
    stack.wait_log(g["id"], f"interaction {inter['id']} deferred automatically")


def test_an_ephemeral_reply_after_the_defer_stays_ephemeral(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Slow secrets")
    _ready(stack, g)
    inter = emu.invoke_slash(g["id"], g["channel_id"], g["user_id"], "slowsecret")
    state = wait_for(lambda: (s := emu.interaction(inter["id"]))["followups"] and s, timeout=8, message="follow-up")
    assert state["followups"][0]["content"] == "only you"
    assert state["followups"][0]["flags"] & 64
    assert state["original"] is None  # the public "thinking" message was removed
    assert not [m for m in emu.messages(g["channel_id"]) if m["content"] == "only you"]


def test_fast_answers_and_modals_are_not_deferred(stack):
    emu, g = stack.emu, emulator_guild(stack.emu, "Fast handlers")
    _ready(stack, g)
    fast = emu.invoke_slash(g["id"], g["channel_id"], g["user_id"], "fast")
    form = emu.invoke_slash(g["id"], g["channel_id"], g["user_id"], "form")
    wait_for(lambda: emu.interaction(fast["id"])["responses"] and emu.interaction(form["id"])["responses"], message="answers")
    time.sleep(3)  # past the automatic-defer point
    assert [r["type"] for r in emu.interaction(fast["id"])["responses"]] == [4]
    modal = emu.interaction(form["id"])["responses"]
    assert [r["type"] for r in modal] == [9]
    assert modal[0]["data"]["custom_id"] == "f1" and modal[0]["data"]["title"] == "Tell me"
