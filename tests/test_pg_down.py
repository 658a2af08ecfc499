"""PostgreSQL away and back, for real: flora serve reaches the database through a TCP relay this test can
cut. Scripts keep answering, the API answers 503 with a clear body, guild log lines wait and are stored
when the database returns, and everything works again without a restart."""

from __future__ import annotations

import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

from conftest import bot_replies, deploy_files, emulator_guild, http_json, start_flora, stop_flora, wait_for


class Relay:
    """127.0.0.1:<port> → the real PostgreSQL; ``cut()`` drops every connection and refuses new ones
    (the port stays reserved by a socket that never listens), ``restore()`` serves again."""

    def __init__(self, target: tuple[str, int]):
        self.target = target
        self.port = 0
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.serve()

    def serve(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self.port = server.getsockname()[1]
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:
                server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            server.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def restore(self) -> None:
        self.serve()


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def test_postgres_away_and_back(emulator, tmp_path, postgres_url):
    parts = urlsplit(postgres_url)
    relay = Relay((parts.hostname or "127.0.0.1", parts.port or 5432))
    g = emulator_guild(emulator, "Through the relay")
    server = start_flora(emulator, tmp_path, DATABASE_URL=_through(postgres_url, relay.port))
    try:
        script = (
            "on('messageCreate', async (ctx) => { if (!ctx.msg.content.startsWith('!say')) return;\n"
            "  console.log('heard ' + ctx.msg.content); await ctx.reply('ok ' + ctx.msg.content) })\n"
        )
        assert deploy_files(server, g["id"], {"src/main.ts": script})[0] == 200
        relay.cut()
        # the script keeps answering with what it has
        emulator.user_says(g["channel_id"], g["user_id"], "!say while away")
        wait_for(
            lambda: [m for m in bot_replies(emulator, g["channel_id"]) if m["content"] == "ok !say while away"],
            timeout=30,
            message="a reply while PostgreSQL is away",
        )
        # the API says what is wrong, in one line, not 500
        status, body = http_json("GET", f"{server.api}/deployments/{g['id']}", token=server.token, timeout=60)
        assert status == 503 and body["message"].startswith("database unavailable: "), (status, body)
        relay.restore()
        back = time.monotonic()

        def works():
            status, _ = http_json("GET", f"{server.api}/deployments/{g['id']}", token=server.token, timeout=60)
            return status == 200

        wait_for(works, timeout=60, interval=0.5, message="the API works again")
        # the line logged while the database was away was kept and stored
        wait_for(
            lambda: any(e["message"] == "heard !say while away" for e in server.guild_logs(g["id"])),
            timeout=30,
            message="the buffered log line stored",
        )
        assert time.monotonic() - back < 60
    finally:
        if relay._server is None:
            relay.restore()
        stop_flora(server)
        relay.cut()
