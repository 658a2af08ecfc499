"""flora_isolate_built: called once per isolate build, after the runtime's and the plugins' JavaScript and
before the guild's script (so before any op of that build); the cron plugin counts builds with it."""

from __future__ import annotations

import asyncio
import json

import pytest

from flora_core.runtime.isolate import GuildIsolate, ScriptError, StopInfo, init_v8

SOURCE = "globalThis.marks = ['plugin source'];"
BUNDLE = "marks.push('guild script'); __floraOp('op_mark', { marks });"


def _isolate(seen: list, on_built) -> GuildIsolate:
    async def run_op(iso, name, args_json):
        seen.append((name, json.loads(args_json)["marks"]))
        return json.dumps({"ok": True, "value": None})

    init_v8()
    return GuildIsolate("1", [("acme:mark", SOURCE)], run_op, asyncio.get_running_loop(), load_id="L1", on_built=on_built)


def test_it_runs_after_the_plugins_javascript_and_before_the_guilds_script():
    async def main():
        seen: list = []

        async def built(iso):
            await asyncio.sleep(0.05)  # the script waits for it, however long it takes (within the deadline)
            seen.append(("built", iso.guild_id, iso.load_id))

        iso = _isolate(seen, built)
        try:
            await iso.load(BUNDLE, 10)
            for _ in range(500):  # the op of the load is answered on this loop
                if len(seen) == 2:
                    break
                await asyncio.sleep(0.01)
        finally:
            await iso.close(StopInfo("closed", "test over"))
        assert seen == [("built", "1", "L1"), ("op_mark", ["plugin source", "guild script"])]

    asyncio.run(main())


def test_a_hook_that_never_returns_fails_the_load_at_its_deadline():
    async def main():
        seen: list = []

        async def stuck(iso):
            await asyncio.Event().wait()

        iso = _isolate(seen, stuck)
        try:
            with pytest.raises(ScriptError) as info:
                await iso.load(BUNDLE, 1)
        finally:
            await iso.close(StopInfo("closed", "test over"))
        assert str(info.value) == "the plugins' flora_isolate_built hooks did not return within the 1s load deadline"
        assert seen == []  # the guild's script never ran

    asyncio.run(main())
