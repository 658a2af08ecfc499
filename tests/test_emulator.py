"""The local Discord emulator, exercised with real disnake clients (no mocks)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import disnake
import pytest
from disnake.ext import commands

from flora_dev.emulator import Emulator, EmulatorServer, shard_for

TOKEN = "emu-token"
REPO = Path(__file__).resolve().parents[1]


# --- helpers -----------------------------------------------------------------------


def _intents(message_content: bool = True) -> disnake.Intents:
    intents = disnake.Intents.default()
    intents.message_content = message_content
    intents.members = True
    return intents


class FastClient(disnake.Client):
    async def before_identify_hook(self, shard_id, *, initial=False):  # no 5 s sleep
        return None


class FastShardedClient(disnake.AutoShardedClient):
    async def before_identify_hook(self, shard_id, *, initial=False):
        return None


class FastInteractionBot(commands.InteractionBot):
    async def before_identify_hook(self, shard_id, *, initial=False):
        return None


class BotRunner:
    """Runs a disnake client on its own event loop in a thread (built on that loop)."""

    def __init__(self, factory: Callable[[], disnake.Client]) -> None:
        self.factory = factory
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-bot", daemon=True)
        self.client: disnake.Client | None = None
        self.start_future = None

    def start(self, token: str = TOKEN) -> BotRunner:
        self.thread.start()

        async def make() -> disnake.Client:
            client = self.factory()
            client.add_listener(self._on_ready, "on_ready")
            return client

        self.client = self.call(make())
        self.start_future = asyncio.run_coroutine_threadsafe(self.client.start(token), self.loop)
        return self

    async def _on_ready(self) -> None:
        self.ready.set()

    def wait_ready(self, timeout: float = 10.0) -> disnake.Client:
        if not self.ready.wait(timeout):
            if self.start_future.done():
                self.start_future.result()
            raise TimeoutError("bot did not become ready")
        return self.client

    def call(self, coro, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.client is not None and not self.client.is_closed():
            try:
                self.call(self.client.close())
            except Exception:
                pass
        if self.start_future is not None:
            try:
                self.start_future.result(5)
            except Exception:
                pass

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self.thread.is_alive():
            self.call(drain())
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
        self.loop.close()


def http(
    emu: Emulator,
    method: str,
    path: str,
    body: Any = None,
    *,
    auth: bool = True,
    headers: dict | None = None,
    raw: bytes | None = None,
) -> tuple[int, dict, Any]:
    """Plain urllib call to the emulator's API (path relative to /api/v10, or absolute /_emu)."""
    url = (emu.url if path.startswith("/_emu") else emu.api_base) + path
    hdrs = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
        hdrs["Content-Type"] = "application/json"
    if auth:
        hdrs.setdefault("Authorization", f"Bot {TOKEN}")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            status, rh, text = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        status, rh, text = err.code, dict(err.headers), err.read()
    return status, rh, (json.loads(text) if text else None)


@pytest.fixture
def emu(monkeypatch):
    emulator = Emulator(token=TOKEN).start()
    monkeypatch.setattr(disnake.http.Route, "BASE", emulator.api_base)
    runners: list[BotRunner] = []
    emulator.runners = runners  # type: ignore[attr-defined]
    try:
        yield emulator
    finally:
        for runner in runners:
            runner.stop()
        emulator.stop()
    assert not [t for t in threading.enumerate() if t.name in ("flora-emulator", "test-bot")]


def run_bot(emu: Emulator, factory: Callable[[], disnake.Client], *, wait: bool = True, token: str = TOKEN) -> BotRunner:
    runner = BotRunner(factory)
    emu.runners.append(runner)
    runner.start(token)
    if wait:
        runner.wait_ready()
    return runner


@pytest.fixture
def world(emu):
    g = emu.create_guild("Test Guild")
    ch = emu.create_channel(g["id"], "general")
    role = emu.create_role(g["id"], "Mod", permissions="8")
    alice = emu.create_user("alice")
    bob = emu.create_user("bob")
    emu.add_member(g["id"], alice["id"], roles=[role["id"]])
    emu.add_member(g["id"], bob["id"])
    return {"guild": g, "channel": ch, "role": role, "alice": alice, "bob": bob}


def identifies(emu: Emulator) -> int:
    return sum(1 for e in emu.gateway_log if e["op"] == 2)


# --- login / READY ---------------------------------------------------------------------


def test_login_ready_and_guild_create(emu, world):
    seen_members = []

    def factory():
        client = FastClient(intents=_intents(), guild_ready_timeout=0.1)

        @client.event
        async def on_guild_available(guild):
            seen_members.append(len(guild.members))

        return client

    bot = run_bot(emu, factory).client
    assert bot.user.id == int(emu.bot_user["id"])
    assert bot.application_id == int(emu.application_id)
    [guild] = bot.guilds
    assert guild.id == int(world["guild"]["id"]) and guild.name == "Test Guild"
    assert [c.name for c in guild.text_channels] == ["general"]
    # members were chunked with op 8 -> GUILD_MEMBERS_CHUNK
    assert {m.name for m in guild.members} == {"alice", "bob", "flora-bot"}
    assert guild.get_member(int(world["alice"]["id"])).guild_permissions.administrator
    assert guild.get_role(int(world["role"]["id"])).name == "Mod"
    assert any(e["op"] == 8 for e in emu.gateway_log)
    [session] = emu.connected_sessions
    assert session["shard"] == [0, 1] and session["intents"] == bot.intents.value
    # live events after READY: a new channel and member show up in the cache
    ch2 = emu.create_channel(world["guild"]["id"], "later")
    carol = emu.create_user("carol")
    emu.add_member(world["guild"]["id"], carol["id"])
    emu.wait_for(lambda: guild.get_channel(int(ch2["id"])) and guild.get_member(int(carol["id"])))
    assert emu.unknown_routes == []


def test_bad_token_raises_login_failure(emu, world):
    runner = run_bot(emu, lambda: FastClient(intents=_intents()), wait=False, token="wrong")
    with pytest.raises(disnake.LoginFailure):
        runner.start_future.result(10)
    assert emu.requests[0]["path"] == "/users/@me" and emu.requests[0]["status"] == 401


def test_gateway_rejects_bad_token_and_bad_shard(emu):
    async def attempt(identify: dict) -> int | None:
        async with aiohttp.ClientSession() as session, session.ws_connect(emu.ws_url + "?v=10&encoding=json") as ws:
            hello = await ws.receive_json()
            assert hello["op"] == 10 and hello["d"]["heartbeat_interval"] == 41250
            await ws.send_json({"op": 1, "d": None})
            assert (await ws.receive_json())["op"] == 11
            await ws.send_json({"op": 2, "d": identify})
            msg = await ws.receive()
            assert msg.type == aiohttp.WSMsgType.CLOSE
            return ws.close_code

    assert asyncio.run(attempt({"token": "nope", "intents": 513})) == 4004
    assert asyncio.run(attempt({"token": TOKEN, "intents": 513, "shard": [2, 2]})) == 4010


# --- messages -------------------------------------------------------------------------


def test_prefix_reply_and_reactions(emu, world):
    echoes, reactions = [], []

    def factory():
        client = FastClient(intents=_intents(), guild_ready_timeout=0.1)

        @client.event
        async def on_message(message):
            if message.author.bot:
                echoes.append(message.content)
                return
            if message.content.startswith("!ping"):
                reply = await message.reply("pong")
                await reply.add_reaction("👍")

        @client.event
        async def on_raw_reaction_add(payload):
            reactions.append((payload.user_id, str(payload.emoji)))

        return client

    run_bot(emu, factory)
    ch = world["channel"]["id"]
    original = emu.user_says(ch, world["alice"]["id"], "!ping a b")
    msgs = emu.wait_for(lambda: len(emu.messages(ch)) == 2 and emu.messages(ch))
    reply = msgs[1]
    assert reply["content"] == "pong" and reply["type"] == 19
    assert reply["author"]["bot"] is True and reply["author"]["id"] == emu.bot_user["id"]
    assert reply["message_reference"]["message_id"] == original["id"]
    assert reply["referenced_message"]["id"] == original["id"]
    assert [u["id"] for u in reply["mentions"]] == [world["alice"]["id"]]
    emu.wait_for(lambda: echoes == ["pong"])  # the bot's own message came back over the gateway
    emu.wait_for(lambda: emu.messages(ch)[1]["reactions"])
    assert emu.messages(ch)[1]["reactions"][0]["me"] is True
    emu.react(ch, reply["id"], world["bob"]["id"], "🎉")
    emu.wait_for(lambda: (int(world["bob"]["id"]), "🎉") in reactions)
    assert (int(emu.bot_user["id"]), "👍") in reactions
    req = emu.wait_for_request("PUT", r"/reactions/.+/@me$")
    assert req["status"] == 204


def test_message_content_intent_blanks_content(emu, world):
    got = []

    def factory():
        client = FastClient(intents=_intents(message_content=False), guild_ready_timeout=0.1)

        @client.event
        async def on_message(message):
            got.append(message.content)

        return client

    run_bot(emu, factory)
    ch = world["channel"]["id"]
    emu.user_says(ch, world["alice"]["id"], "secret words")
    emu.user_says(ch, world["alice"]["id"], f"hey <@{emu.bot_user['id']}> hi")
    emu.wait_for(lambda: len(got) == 2)
    assert got == ["", f"hey <@{emu.bot_user['id']}> hi"]
    assert emu.messages(ch)[0]["content"] == "secret words"  # stored unblanked


# --- slash commands & interactions ----------------------------------------------------------


def make_interaction_bot(guild_id: str, log: list) -> Callable[[], commands.InteractionBot]:
    def factory():
        bot = FastInteractionBot(intents=_intents(), guild_ready_timeout=0.1, test_guilds=[int(guild_id)])

        @bot.slash_command(description="Say hello")
        async def hello(inter: disnake.ApplicationCommandInteraction, name: str):
            await inter.response.send_message(f"hello {name}", ephemeral=True)

        @bot.slash_command(description="Slow answer")
        async def slow(inter: disnake.ApplicationCommandInteraction):
            await inter.response.defer()
            await inter.edit_original_response(content="done thinking")
            await inter.followup.send("and a follow-up")

        @bot.slash_command(description="Buttons")
        async def panel(inter: disnake.ApplicationCommandInteraction):
            await inter.response.send_message(
                "panel",
                components=[disnake.ui.Button(label="Go", custom_id="go"), disnake.ui.Button(label="Form", custom_id="form")],
            )

        @bot.listen("on_button_click")
        async def on_button(inter: disnake.MessageInteraction):
            if inter.component.custom_id == "go":
                await inter.response.edit_message(content=f"clicked by {inter.author.name}")
            else:
                await inter.response.send_modal(
                    title="Form", custom_id="feedback", components=[disnake.ui.TextInput(label="Say", custom_id="text")]
                )

        @bot.listen("on_modal_submit")
        async def on_modal(inter: disnake.ModalInteraction):
            log.append(dict(inter.text_values))
            await inter.response.send_message(f"thanks: {inter.text_values['text']}")

        return bot

    return factory


@pytest.fixture
def slash_bot(emu, world):
    log: list = []
    run_bot(emu, make_interaction_bot(world["guild"]["id"], log))
    emu.wait_for(lambda: len(emu.commands(world["guild"]["id"])) == 3)
    return log


def test_slash_command_ephemeral_reply(emu, world, slash_bot):
    put = emu.wait_for_request("PUT", r"/guilds/\d+/commands$")
    assert {c["name"] for c in put["json"]} == {"hello", "slow", "panel"}
    g, ch = world["guild"]["id"], world["channel"]["id"]
    inter = emu.invoke_slash(g, ch, world["alice"]["id"], "hello", options=[{"name": "name", "type": 3, "value": "x"}])
    view = emu.wait_for(lambda: emu.interaction(inter["id"])["acknowledged"] and emu.interaction(inter["id"]))
    [resp] = view["responses"]
    assert resp["type"] == 4 and resp["data"]["flags"] == 64
    assert resp["data"]["content"] == "hello x"
    assert view["original"]["flags"] & 64 and view["original"]["content"] == "hello x"
    assert emu.messages(ch) == []  # ephemeral: not in channel history
    with pytest.raises(LookupError, match="nope"):
        emu.invoke_slash(g, ch, world["alice"]["id"], "nope")


def test_defer_edit_original_then_followup(emu, world, slash_bot):
    g, ch = world["guild"]["id"], world["channel"]["id"]
    inter = emu.invoke_slash(g, ch, world["bob"]["id"], "slow")
    view = emu.wait_for(lambda: emu.interaction(inter["id"])["followups"] and emu.interaction(inter["id"]))
    assert [r["type"] for r in view["responses"]] == [5]
    assert view["original"]["content"] == "done thinking"
    assert not view["original"]["flags"] & 128  # loading flag cleared by the edit
    assert [m["content"] for m in view["followups"]] == ["and a follow-up"]
    assert [m["content"] for m in emu.messages(ch)] == ["done thinking", "and a follow-up"]
    assert emu.messages(ch)[0]["interaction_metadata"]["id"] == inter["id"]
    # answering again: 40060; wrong token or unknown id: 10062
    path = f"/interactions/{inter['id']}/{inter['token']}/callback"
    status, headers, body = http(emu, "POST", path, {"type": 4, "data": {"content": "x"}}, auth=False)
    assert (status, body["code"]) == (400, 40060)
    assert body["message"] == "Interaction has already been acknowledged"
    assert headers["Content-Type"] == "application/json"
    status, _, body = http(emu, "POST", f"/interactions/{inter['id']}/bad/callback", {"type": 1}, auth=False)
    assert (status, body["code"]) == (404, 10062)


def test_components_and_modal(emu, world, slash_bot):
    g, ch = world["guild"]["id"], world["channel"]["id"]
    alice = world["alice"]["id"]
    inter = emu.invoke_slash(g, ch, alice, "panel")
    panel = emu.wait_for(lambda: emu.interaction(inter["id"])["original"])
    assert panel["components"][0]["components"][0]["custom_id"] == "go"
    click = emu.click_component(ch, panel["id"], alice, "go")
    emu.wait_for(lambda: emu.interaction(click["id"])["acknowledged"])
    assert emu.interaction(click["id"])["responses"][0]["type"] == 7
    assert emu.get_message(panel["id"])["content"] == "clicked by alice"
    with pytest.raises(LookupError, match="custom_id"):
        emu.click_component(ch, panel["id"], alice, "missing")
    form = emu.click_component(ch, panel["id"], alice, "form")
    modal = emu.wait_for(lambda: emu.interaction(form["id"])["modal"])
    assert modal["custom_id"] == "feedback"
    sub = emu.submit_modal(g, ch, alice, "feedback", fields={"text": "great"}, message_id=panel["id"])
    emu.wait_for(lambda: emu.interaction(sub["id"])["acknowledged"])
    assert slash_bot == [{"text": "great"}]
    assert emu.interaction(sub["id"])["original"]["content"] == "thanks: great"


# --- rate limits --------------------------------------------------------------------


def test_inject_429_is_retried_after_retry_after(emu, world):
    ch = world["channel"]["id"]
    runner = run_bot(emu, lambda: FastClient(intents=_intents(), guild_ready_timeout=0.1))
    emu.inject_429("POST", rf"^/channels/{ch}/messages$", count=1, retry_after=0.5)
    channel = runner.client.get_channel(int(ch))
    runner.call(channel.send("after a 429"))
    hits = emu.find_requests("POST", rf"^/channels/{ch}/messages$")
    assert [h["status"] for h in hits] == [429, 200]
    assert hits[1]["time"] - hits[0]["time"] >= 0.5
    assert [m["content"] for m in emu.messages(ch)] == ["after a 429"]


def test_bucket_headers_make_disnake_wait(emu, world):
    ch = world["channel"]["id"]
    runner = run_bot(emu, lambda: FastClient(intents=_intents(), guild_ready_timeout=0.1))
    emu.set_bucket("POST", r"/channels/\d+/messages$", limit=3, per_seconds=0.4)
    channel = runner.client.get_channel(int(ch))

    async def burst():
        for i in range(7):
            await channel.send(f"m{i}")

    t0 = time.monotonic()
    runner.call(burst())
    assert time.monotonic() - t0 >= 0.75  # 7 sends at 3 per 0.4 s span three windows
    assert emu.bucket_rejections == 0
    assert len(emu.messages(ch)) == 7


# --- gateway sessions -----------------------------------------------------------------------


def test_reconnect_resumes_without_identify(emu, world):
    seen = []

    def factory():
        client = FastClient(intents=_intents(), guild_ready_timeout=0.1)

        @client.event
        async def on_message(message):
            if not message.author.bot:
                seen.append(message.content)
                await message.channel.send(f"ack {message.content}")

        return client

    run_bot(emu, factory)
    ch, alice = world["channel"]["id"], world["alice"]["id"]
    assert identifies(emu) == 1
    assert emu.send_reconnect() == 1
    emu.wait_for(lambda: any(e["op"] == 6 for e in emu.gateway_log))
    emu.wait_for(lambda: emu.connected_sessions and emu.connected_sessions[0]["resumes"] == 1)
    emu.user_says(ch, alice, "one")
    emu.wait_for(lambda: "ack one" in [m["content"] for m in emu.messages(ch)])
    # a dropped socket: dispatches sent meanwhile are replayed on RESUME
    emu.drop_connections()
    emu.user_says(ch, alice, "two")
    emu.wait_for(lambda: "ack two" in [m["content"] for m in emu.messages(ch)])
    assert seen == ["one", "two"]
    assert identifies(emu) == 1
    assert emu.connected_sessions[0]["resumes"] == 2
    # a non-resumable invalid session makes the client IDENTIFY again
    emu.invalidate_session(resumable=False)
    emu.wait_for(lambda: identifies(emu) == 2 and emu.connected_sessions)
    emu.user_says(ch, alice, "three")
    emu.wait_for(lambda: "ack three" in [m["content"] for m in emu.messages(ch)])


def test_two_shards_each_see_only_their_guild(emu):
    g0 = emu.create_guild("zero", shard=(0, 2))
    g1 = emu.create_guild("one", shard=(1, 2))
    assert shard_for(g0["id"], 2) == 0 and shard_for(g1["id"], 2) == 1
    alice = emu.create_user("alice")
    chans = {}
    for g in (g0, g1):
        chans[g["id"]] = emu.create_channel(g["id"], "general")["id"]
        emu.add_member(g["id"], alice["id"])

    def factory(shard_ids):
        def make():
            client = FastShardedClient(intents=_intents(), shard_ids=shard_ids, shard_count=2, guild_ready_timeout=0.1)

            @client.event
            async def on_message(message):
                if not message.author.bot:
                    await message.channel.send(f"pong shard={message.guild.shard_id}")

            return client

        return make

    both = run_bot(emu, factory([0, 1])).client
    assert {g.name: g.shard_id for g in both.guilds} == {"zero": 0, "one": 1}
    assert sorted(s["shard"] for s in emu.connected_sessions) == [[0, 2], [1, 2]]
    for g, shard in ((g0, 0), (g1, 1)):
        emu.user_says(chans[g["id"]], alice["id"], "ping")
        emu.wait_for(lambda: len(emu.messages(chans[g["id"]])) == 2)
        assert emu.messages(chans[g["id"]])[1]["content"] == f"pong shard={shard}"
    emu.runners.pop().stop()
    emu.wait_for(lambda: not emu.connected_sessions)
    # two processes' worth of clients, one shard each: each sees only its own guild
    zero = run_bot(emu, factory([0])).client
    one = run_bot(emu, factory([1])).client
    assert [g.name for g in zero.guilds] == ["zero"]
    assert [g.name for g in one.guilds] == ["one"]


# --- REST surface without disnake -------------------------------------------------------------


def test_rest_errors_headers_and_history(emu, world):
    g, ch = world["guild"]["id"], world["channel"]["id"]
    status, headers, me = http(emu, "GET", "/users/@me")
    assert status == 200 and headers["Content-Type"] == "application/json"
    for key in ("Limit", "Remaining", "Reset", "Reset-After", "Bucket"):
        assert f"X-RateLimit-{key}" in headers
    assert me["id"] == emu.bot_user["id"] and me["bot"] is True
    assert http(emu, "GET", "/users/@me", auth=False)[0] == 401
    assert http(emu, "GET", "/channels/1/messages")[2]["code"] == 10003
    assert http(emu, "GET", "/guilds/1")[2]["code"] == 10004
    assert http(emu, "GET", f"/guilds/{g}/members/1")[2]["code"] == 10007
    assert http(emu, "GET", f"/channels/{ch}/messages/1")[2]["code"] == 10008
    status, _, body = http(emu, "POST", f"/channels/{ch}/messages", {})
    assert (status, body["code"]) == (400, 50035)
    status, _, body = http(emu, "GET", "/not/a/route")
    assert (status, body) == (404, {"message": "404: Not Found", "code": 0})
    assert emu.unknown_routes[-1]["path"] == "/not/a/route"
    # history: newest first, before/after/limit
    ids = [emu.user_says(ch, world["alice"]["id"], f"m{i}")["id"] for i in range(5)]
    assert [m["id"] for m in http(emu, "GET", f"/channels/{ch}/messages?limit=2")[2]] == ids[:-3:-1]
    assert [m["content"] for m in http(emu, "GET", f"/channels/{ch}/messages?before={ids[2]}")[2]] == ["m1", "m0"]
    assert [m["content"] for m in http(emu, "GET", f"/channels/{ch}/messages?after={ids[2]}")[2]] == ["m4", "m3"]
    assert http(emu, "POST", f"/channels/{ch}/messages/bulk-delete", {"messages": ids[:2]})[0] == 204
    assert len(emu.messages(ch)) == 3
    # multipart upload: payload_json + files[0]
    boundary = uuid.uuid4().hex
    raw = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files[0]"; filename="a.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\nhello file\r\n"
        f'--{boundary}\r\nContent-Disposition: form-data; name="payload_json"\r\n\r\n'
        + json.dumps({"content": "with file", "attachments": [{"id": 0, "filename": "a.txt"}]})
        + f"\r\n--{boundary}--\r\n"
    ).encode()
    status, _, msg = http(
        emu, "POST", f"/channels/{ch}/messages", raw=raw, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    assert status == 200 and msg["attachments"][0]["filename"] == "a.txt"
    assert msg["attachments"][0]["size"] == len(b"hello file")
    with urllib.request.urlopen(msg["attachments"][0]["url"], timeout=5) as resp:
        assert resp.read() == b"hello file"
    roles = http(emu, "GET", f"/guilds/{g}/roles")[2]
    assert all("colors" in r for r in roles)
    # injected 5xx and 429 shapes
    emu.inject_status("GET", r"^/guilds/\d+$", 502)
    assert http(emu, "GET", f"/guilds/{g}")[0] == 502
    assert http(emu, "GET", f"/guilds/{g}")[0] == 200
    emu.inject_429(None, r"^/gateway/bot$", retry_after=0.25, is_global=True)
    status, headers, body = http(emu, "GET", "/gateway/bot")
    assert status == 429 and headers["Via"] == "1.1 google"
    assert body == {"message": "You are being rate limited.", "retry_after": 0.25, "global": True}


def test_oauth_bearer_calls_are_recorded_for_counting(emu, world):
    alice, bob = world["alice"]["id"], world["bob"]["id"]
    token_a = emu.in_loop(emu.server.oauth.issue, alice)["access_token"]
    token_b = emu.in_loop(emu.server.oauth.issue, bob)["access_token"]
    for token in (token_a, token_a, token_b):
        status, _, guilds = http(emu, "GET", "/users/@me/guilds", headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and [g["id"] for g in guilds] == [world["guild"]["id"]]
    assert http(emu, "GET", "/users/@me", headers={"Authorization": f"Bearer {token_a}"})[0] == 200
    assert http(emu, "GET", "/users/@me/guilds", headers={"Authorization": "Bearer nope"})[0] == 401
    assert http(emu, "GET", "/users/@me/guilds")[0] == 200  # the bot's own call is not a Bearer call
    calls = emu.oauth_requests("/users/@me/guilds")
    assert [(c["user_id"], c["status"]) for c in calls] == [(alice, 200), (alice, 200), (bob, 200), (None, 401)]
    assert len(emu.oauth_requests("/users/@me/guilds", user_id=alice)) == 2
    assert [c["path"] for c in emu.oauth_requests(user_id=alice)] == ["/users/@me/guilds"] * 2 + ["/users/@me"]
    assert all(c["method"] == "GET" and c["time"] <= time.time() for c in calls)


def test_control_routes_and_async_server():
    async def main():
        async with EmulatorServer(TOKEN) as server, aiohttp.ClientSession() as session:

            async def call(method, path, body=None):
                async with session.request(method, server.url + path, json=body) as resp:
                    return resp.status, await resp.json()

            _, guild = await call("POST", "/_emu/guilds", {"name": "ctl"})
            _, chan = await call("POST", "/_emu/channels", {"guild_id": guild["id"], "name": "general"})
            _, user = await call("POST", "/_emu/users", {"username": "dave"})
            await call("POST", "/_emu/members", {"guild_id": guild["id"], "user_id": user["id"]})
            status, msg = await call("POST", "/_emu/say", {"channel_id": chan["id"], "user_id": user["id"], "content": "hi"})
            assert status == 201 and msg["content"] == "hi"
            _, msgs = await call("GET", f"/_emu/messages/{chan['id']}")
            assert [m["id"] for m in msgs] == [msg["id"]]
            status, err = await call(
                "POST",
                "/_emu/slash",
                {"guild_id": guild["id"], "channel_id": chan["id"], "user_id": user["id"], "name": "missing"},
            )
            assert status == 404 and "missing" in err["error"]
            _, state = await call("GET", "/_emu/state")
            assert state["guilds"][0]["name"] == "ctl" and state["api_base"] == server.api_base
            async with session.get(server.api_base + "/users/@me", headers={"Authorization": f"Bot {TOKEN}"}) as resp:
                assert resp.headers["Content-Type"] == "application/json"
            _, reqs = await call("GET", "/_emu/requests?method=GET&path=users")
            assert [r["path"] for r in reqs] == ["/users/@me"]
            await server.wait_for_request("GET", "^/users/@me$", timeout=1)

    asyncio.run(main())


def test_cli_runs_standalone_with_seed():
    proc = subprocess.Popen(
        [sys.executable, "-m", "flora_dev.emulator", "--port", "0", "--seed"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        url = re.search(r"(http://127\.0\.0\.1:\d+)", line).group(1)
        with urllib.request.urlopen(url + "/_emu/state", timeout=5) as resp:
            state = json.loads(resp.read())
        [guild] = state["guilds"]
        assert guild["name"] == "flora dev"
        assert sorted(c["name"] for c in guild["channels"]) == ["bot-commands", "general"]
        names = {m["user"]["username"]: m for m in guild["members"]}
        assert {"alice", "bob"} <= set(names)
        admin = next(r for r in guild["roles"] if r["name"] == "admin")
        assert names["alice"]["roles"] == [admin["id"]]
    finally:
        proc.terminate()
        proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()


def test_gateway_resume_replays_and_filters_by_intent(emu, world):
    ch, alice = world["channel"]["id"], world["alice"]["id"]

    async def identify(ws, intents):
        await ws.receive_json()  # HELLO
        await ws.send_json({"op": 2, "d": {"token": TOKEN, "intents": intents, "properties": {}}})
        ready = await ws.receive_json()
        assert ready["t"] == "READY" and ready["s"] == 1
        assert ready["d"]["resume_gateway_url"] == emu.ws_url
        assert ready["d"]["guilds"] == [{"id": world["guild"]["id"], "unavailable": True}]
        create = await ws.receive_json()
        assert create["t"] == "GUILD_CREATE" and create["s"] == 2
        return ready["d"]["session_id"]

    async def main():
        async with aiohttp.ClientSession() as http_session:
            # no GUILD_MESSAGES intent: MESSAGE_CREATE is filtered out
            async with http_session.ws_connect(emu.ws_url) as quiet:
                await identify(quiet, 1)
                # full intents; then disconnect and miss two messages
                async with http_session.ws_connect(emu.ws_url) as ws:
                    session_id = await identify(ws, 1 | (1 << 9) | (1 << 15))
                    await ws.close(code=4000)  # 1000/1001 would end the session
                await asyncio.to_thread(emu.wait_for, lambda: len(emu.connected_sessions) == 1)
                await asyncio.to_thread(emu.user_says, ch, alice, "missed 1")
                await asyncio.to_thread(emu.user_says, ch, alice, "missed 2")
                async with http_session.ws_connect(emu.ws_url) as ws:
                    await ws.receive_json()
                    await ws.send_json({"op": 6, "d": {"token": TOKEN, "session_id": session_id, "seq": 2}})
                    frames = [await ws.receive_json() for _ in range(3)]
                    assert [(f["t"], f["s"]) for f in frames] == [("MESSAGE_CREATE", 3), ("MESSAGE_CREATE", 4), ("RESUMED", 5)]
                    assert [f["d"]["content"] for f in frames[:2]] == ["missed 1", "missed 2"]
                # the resumed socket closed with 1000 above, which ends the session; an
                # ended or unknown session cannot resume: op 9 d=false
                for sid in (session_id, "nope"):
                    async with http_session.ws_connect(emu.ws_url) as ws:
                        await ws.receive_json()
                        await ws.send_json({"op": 6, "d": {"token": TOKEN, "session_id": sid, "seq": 1}})
                        assert await ws.receive_json() == {"op": 9, "d": False, "s": None, "t": None}
                await quiet.send_json({"op": 1, "d": 2})
                assert (await quiet.receive_json())["op"] == 11  # nothing queued before the ACK

    asyncio.run(main())


def test_heartbeat_interval_and_latency():
    with Emulator(token=TOKEN, heartbeat_interval_ms=100) as emu:
        emu.create_guild("hb")
        old_base = disnake.http.Route.BASE
        disnake.http.Route.BASE = emu.api_base
        runner = BotRunner(lambda: FastClient(intents=_intents(), guild_ready_timeout=0.1))
        try:
            bot = runner.start().wait_ready()
            emu.wait_for(lambda: emu.connected_sessions[0]["heartbeats"] >= 4, timeout=3)
            assert 0 <= bot.latency < 1
        finally:
            runner.stop()
            disnake.http.Route.BASE = old_base
