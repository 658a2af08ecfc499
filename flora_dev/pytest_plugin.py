"""flora's test kit for plugin authors: pytest fixtures, loaded automatically once flora is installed
(entry point ``flora`` in the ``pytest11`` group).

    def test_my_op(flora_server, flora_guild):
        flora_server.deploy(flora_guild.id, {"src/main.ts": "on('messageCreate', …)"})
        flora_guild.say("!hello")
        assert flora_guild.wait_reply().startswith("hello")

``flora_server`` is a real ``flora serve`` against flora's Discord emulator, with every plugin installed
in the environment loaded (yours included, and ``FLORA_STRICT_PLUGINS=1``: a clash or an exception in
your hooks fails the test with its one line). Nothing is mocked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest

from .testing import (
    BOT_TOKEN,
    FloraServer,
    bot_replies,
    deploy_files,
    emulator_guild,
    http_json,
    start_flora,
    stop_flora,
    wait_for,
)


@dataclass
class Guild:
    """A guild of the emulator with a ``#general`` channel and a member to act as."""

    emulator: object
    id: str
    channel_id: str
    user_id: str
    raw: dict = field(repr=False, default_factory=dict)

    def say(self, content: str) -> dict:
        """Post ``content`` in ``#general`` as the member (a ``messageCreate`` for the script)."""
        return self.emulator.user_says(self.channel_id, self.user_id, content)

    def replies(self) -> list[str]:
        """What the bot said in ``#general`` so far."""
        return [m["content"] for m in bot_replies(self.emulator, self.channel_id)]

    def wait_reply(self, timeout: float = 30.0, count: int = 1) -> str:
        """The bot's ``count``-th message in ``#general``, waiting for it at most ``timeout`` seconds."""

        def enough():
            replies = self.replies()
            return replies if len(replies) >= count else None

        got = wait_for(enough, timeout=timeout, message=f"reply {count} from the bot in guild {self.id}")
        return got[count - 1]


class Server:
    """``flora serve`` for a test: deploy, read logs, call the API."""

    def __init__(self, inner: FloraServer):
        self.inner = inner
        self.api_url = inner.api
        self.token = inner.token
        self.data_dir = inner.data_dir

    def deploy(self, guild_id: str, files: dict[str, str], entry: str = "src/main.ts") -> dict:
        """Deploy ``files`` (path → contents) to the guild; fails the test unless the API says 200."""
        status, body = deploy_files(self.inner, guild_id, files, entry)
        assert status == 200, f"deploy failed ({status}): {body}"
        return body

    def api(self, method: str, path: str, body=None) -> tuple[int, object]:
        """``(status, JSON body)`` of ``method path`` (relative to ``/api``) with the server's token."""
        return http_json(method, f"{self.api_url}{path}", body, token=self.token)

    def logs(self, guild_id: str) -> list[dict]:
        return self.inner.guild_logs(guild_id)

    def wait_log(self, guild_id: str, needle: str, timeout: float = 30.0) -> dict:
        return self.inner.wait_log(guild_id, needle, timeout)

    def cli(self, *args: str, check: bool = True):
        """Run ``flora ARGS`` against this server's data folder."""
        return self.inner.cli(*args, check=check)


@pytest.fixture
def flora_emulator():
    """flora's Discord emulator, started for the test (``flora_dev.emulator.Emulator``)."""
    from .emulator import Emulator

    emu = Emulator(token=BOT_TOKEN)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def flora_guild(flora_emulator) -> Guild:
    """A fresh guild with ``#general`` and one member."""
    g = emulator_guild(flora_emulator, "Plugin Test Guild")
    return Guild(flora_emulator, g["id"], g["channel_id"], g["user_id"], g)


@pytest.fixture
def flora_server_env() -> dict[str, str]:
    """Extra environment for ``flora_server`` (override this fixture to set your plugin's keys)."""
    return {}


@pytest.fixture
def flora_server(flora_emulator, flora_guild, flora_server_env, tmp_path):
    """A running ``flora serve`` (two workers, SQLite in ``tmp_path``) connected to ``flora_emulator``."""
    env = {"FLORA_STRICT_PLUGINS": os.environ.get("FLORA_STRICT_PLUGINS", "1"), **flora_server_env}
    server = start_flora(flora_emulator, tmp_path, **env)
    try:
        yield Server(server)
    finally:
        stop_flora(server)
