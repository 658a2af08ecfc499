"""KV_BACKEND=lmdb through the real stack (flora's test kit): a deployed script's kv calls land in the
LMDB files, and the CLI and the API, other processes, read and write the same data."""

from __future__ import annotations

import pytest
from flora_kv_lmdb.backend import read_entries

SCRIPT = """
const notes = kv.store("notes");

on("messageCreate", async (ctx) => {
  if (ctx.msg.author.bot) return;
  const [cmd, key, ...rest] = ctx.msg.content.split(" ");
  if (cmd === "!put") {
    await notes.set(key, rest.join(" "), { metadata: { by: ctx.msg.author.id } });
    await ctx.reply(`stored ${key}`);
  }
  if (cmd === "!get") await ctx.reply(`${key} = ${(await notes.get(key)) ?? "nothing"}`);
  if (cmd === "!fill") {  // three values of 600 kB: more than the 1 MiB map the store starts with
    for (let i = 0; i < 3; i++) await notes.set(`${key}${i}`, String(i).repeat(600_000));
    const page = await notes.list({ prefix: key });
    await ctx.reply(`filled ${page.keys.map((k) => k.name).join(",")}`);
  }
});
"""


@pytest.fixture
def flora_server_env():
    return {"KV_BACKEND": "lmdb", "KV_LMDB_MAP_SIZE_MB": "1"}


def test_a_script_writes_and_reads_kv_that_lands_in_the_lmdb_files(flora_server, flora_guild):
    guild = flora_guild.id
    flora_server.cli("kv", "create", "--guild-id", guild, "--store", "notes")
    flora_server.deploy(guild, {"src/main.ts": SCRIPT})

    flora_guild.say("!put greeting héllo from lmdb")
    assert flora_guild.wait_reply() == "stored greeting"
    flora_guild.say("!get greeting")
    assert flora_guild.wait_reply(count=2) == "greeting = héllo from lmdb"

    store = flora_server.data_dir / "kv-lmdb" / guild / "notes"
    assert read_entries(store) == {
        "greeting": {"value": "héllo from lmdb", "expiration": None, "metadata": {"by": flora_guild.user_id}}
    }
    assert not (flora_server.data_dir / "kv").exists()  # the default backend's folder: nothing went there

    # the CLI and the API (under gevent) are other processes on the same files, both ways
    assert flora_server.cli("kv", "get", "--guild-id", guild, "--store", "notes", "greeting").stdout.strip() == "héllo from lmdb"
    assert flora_server.api("GET", f"/kv/{guild}/notes/greeting") == (200, {"value": "héllo from lmdb"})
    flora_server.cli("kv", "set", "--guild-id", guild, "--store", "notes", "greeting", "set by the CLI")
    flora_guild.say("!get greeting")
    assert flora_guild.wait_reply(count=3) == "greeting = set by the CLI"
    assert flora_server.api("PUT", f"/kv/{guild}/notes/greeting", {"value": "set by the API"})[0] == 200
    flora_guild.say("!get greeting")
    assert flora_guild.wait_reply(count=4) == "greeting = set by the API"

    # the worker grows the store's map as the script writes past it
    flora_guild.say("!fill big")
    assert flora_guild.wait_reply(count=5) == "filled big0,big1,big2"
    entries = read_entries(store)
    assert {k: len(e["value"]) for k, e in entries.items()} == {
        "big0": 600_000,
        "big1": 600_000,
        "big2": 600_000,
        "greeting": len("set by the API"),
    }
    assert (store / "data.mdb").stat().st_size > 1024 * 1024
