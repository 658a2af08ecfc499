"""``flora serve --emulator``: the project's Discord emulator in the supervisor's loop, seeded, with flora
pointed at it (the runtime itself knows nothing about the emulator)."""

from __future__ import annotations

import os

from flora_core.config import Config

EMULATOR_TOKEN = "flora-emulator-token"


def emulator_companion(port: int):
    """A companion for :func:`flora_core.runtime.supervisor.serve` that runs the emulator on ``port``."""

    async def start(config: Config):
        from .emulator import EmulatorServer, load_world_ids, save_world_ids, seed_dev_world, world_ids

        # the same ids at every start of this data folder: its deployments, KV and secrets stay the guild's
        saved_at = config.data_path / "emulator" / "world.json"
        ids = load_world_ids(saved_at) or {}
        emu = EmulatorServer(EMULATOR_TOKEN, application_id=ids.get("application"))
        await emu.start("127.0.0.1", port)
        world = seed_dev_world(emu, ids)
        save_world_ids(saved_at, dict(world_ids(world), application=emu.state.application_id))
        values = dict(config.to_dict(), discord_api_base=emu.api_base, discord_token=EMULATOR_TOKEN)
        os.environ["FLORA_DISCORD_API_BASE"] = emu.api_base  # for the API process
        os.environ["DISCORD_TOKEN"] = EMULATOR_TOKEN
        ch = world["channels"]["general"]["id"]
        alice = world["users"]["alice"]["id"]
        print(
            f"""
  Discord emulator: {emu.url}  (no Discord account needed; nothing leaves this machine)
  guild "flora dev": {world["guild"]["id"]}   #general: {ch}   alice: {alice}   bob: {world["users"]["bob"]["id"]}
  say something as alice:
    curl -s -X POST {emu.url}/_emu/say -H 'Content-Type: application/json' \\
      -d '{{"channel_id": "{ch}", "user_id": "{alice}", "content": "!ping hello"}}'
  read the channel:  curl -s {emu.url}/_emu/messages/{ch}
  run a slash command as alice (its answer, ephemeral ones too, is in the interaction it returns):
    curl -s -X POST {emu.url}/_emu/slash -H 'Content-Type: application/json' \\
      -d '{{"guild_id": "{world["guild"]["id"]}", "channel_id": "{ch}", "user_id": "{alice}", "name": "hello"}}'
    curl -s {emu.url}/_emu/interactions/<id from that answer>
  a Discord-like window on all this: `flora dev PROJECT` (its console)
""",
            flush=True,
        )
        return Config.from_dict(values), emu.stop

    return start
