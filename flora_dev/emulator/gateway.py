"""Gateway v10 over websocket: HELLO / IDENTIFY / RESUME / heartbeats, sessions with
per-session sequence numbers and replay buffers, shard routing and intent filtering."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import zlib
from collections import deque
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from .models import EVENT_INTENTS, GUILD_MEMBERS, MESSAGE_CONTENT, PRIVILEGED_INTENTS

if TYPE_CHECKING:
    from .server import EmulatorServer

log = logging.getLogger(__name__)
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_TRACE = ["flora-emulator"]
_BLANKED = {"content": "", "embeds": [], "attachments": [], "components": []}


class Session:
    __slots__ = (
        "id",
        "shard_id",
        "shard_count",
        "intents",
        "identified_at",
        "seq",
        "buffer",
        "conn",
        "disconnected_at",
        "resumes",
        "heartbeats",
        "invalid",
    )

    def __init__(self, shard_id: int, shard_count: int, intents: int, buffer_size: int) -> None:
        self.id = secrets.token_hex(16)
        self.shard_id = shard_id
        self.shard_count = shard_count
        self.intents = intents
        self.identified_at = time.time()
        self.seq = 0
        self.buffer: deque[tuple[int, str]] = deque(maxlen=buffer_size)
        self.conn: Connection | None = None
        self.disconnected_at: float | None = None
        self.resumes = 0
        self.heartbeats = 0
        self.invalid = False

    def push(self, event: str, data_json: str) -> None:
        self.seq = seq = self.seq + 1
        frame = f'{{"op":0,"t":"{event}","s":{seq},"d":{data_json}}}'
        self.buffer.append((seq, frame))
        conn = self.conn
        if conn is not None:
            conn.send(frame)

    def info(self) -> dict:
        return {
            "session_id": self.id,
            "shard": [self.shard_id, self.shard_count],
            "intents": self.intents,
            "identified_at": self.identified_at,
            "seq": self.seq,
            "resumes": self.resumes,
            "heartbeats": self.heartbeats,
            "connected": self.conn is not None,
        }


class Connection:
    """One websocket. Every outgoing frame goes through one ordered queue and writer task."""

    __slots__ = ("ws", "queue", "wakeup", "task", "session", "zlib", "heartbeats", "server_closed")

    def __init__(self, ws: web.WebSocketResponse, compress: bool) -> None:
        self.ws = ws
        self.queue: deque[str | tuple[int, str]] = deque()
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.session: Session | None = None
        self.zlib = zlib.compressobj() if compress else None
        self.heartbeats = 0
        self.server_closed = False

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._write_loop())

    def send(self, frame: str) -> None:
        self.queue.append(frame)
        self.wakeup.set()

    def send_op(self, op: int, data: Any) -> None:
        self.send(_dumps({"op": op, "d": data, "s": None, "t": None}))

    def close(self, code: int, reason: str = "", *, drop_pending: bool = False) -> None:
        if drop_pending:
            self.queue.clear()
        self.server_closed = True
        self.queue.append((code, reason))
        self.wakeup.set()

    async def _write_loop(self) -> None:
        ws, queue, wakeup, z = self.ws, self.queue, self.wakeup, self.zlib
        try:
            while True:
                while queue:
                    item = queue.popleft()
                    if item.__class__ is tuple:
                        await ws.close(code=item[0], message=item[1].encode())
                        return
                    if z is None:
                        await ws.send_str(item)
                    else:
                        await ws.send_bytes(z.compress(item.encode()) + z.flush(zlib.Z_SYNC_FLUSH))
                wakeup.clear()
                await wakeup.wait()
        except asyncio.CancelledError:
            raise
        except Exception:  # peer went away mid-send
            log.debug("gateway writer stopped", exc_info=True)


class GatewayHub:
    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.state = server.state
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self.log: deque[dict] = deque(maxlen=10_000)
        self.buffer_size = server.replay_buffer
        self.resume_window = 300.0

    # --- dispatch ------------------------------------------------------------
    def dispatch(self, event: str, data: Any, guild_id: str | int | None = None, *, dm: bool = False) -> None:
        """Send a dispatch to every session that should see it (shard + intents)."""
        sessions = self.sessions
        if not sessions:
            return
        need = EVENT_INTENTS.get(event)
        need = 0 if need is None else need[1 if dm else 0]
        ts = int(guild_id) >> 22 if guild_id is not None else None
        may_blank = event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not dm and self._needs_blanking(data)
        full = blank = None
        for s in tuple(sessions.values()):
            if s.invalid:
                continue
            if ts is not None:
                if ts % s.shard_count != s.shard_id:
                    continue
            elif dm and s.shard_id != 0:
                continue
            if need and not s.intents & need:
                continue
            if may_blank and not s.intents & MESSAGE_CONTENT:
                if blank is None:
                    blank = _dumps(dict(data, **_BLANKED))
                s.push(event, blank)
            else:
                if full is None:
                    full = _dumps(data)
                s.push(event, full)

    def _needs_blanking(self, data: dict) -> bool:
        bot_id = self.state.bot_id
        author = data.get("author")
        if author is None or author.get("id") == bot_id:
            return False
        return not any(m.get("id") == bot_id for m in data.get("mentions") or ())

    # --- control -------------------------------------------------------------
    def _live(self, shard: int | None) -> list[Session]:
        return [s for s in self.sessions.values() if s.conn is not None and (shard is None or s.shard_id == shard)]

    def send_reconnect(self, shard: int | None = None) -> int:
        sessions = self._live(shard)
        for s in sessions:
            s.conn.send_op(7, None)
        return len(sessions)

    def invalidate_session(self, resumable: bool = True, shard: int | None = None) -> int:
        sessions = self._live(shard)
        for s in sessions:
            s.conn.send_op(9, bool(resumable))
            if not resumable:
                self._forget(s)
        return len(sessions)

    def drop_connections(self, code: int = 4000, shard: int | None = None) -> int:
        """Close live sockets with ``code`` (default 4000, resumable), discarding frames not yet
        written; the sessions stay resumable and keep buffering dispatches for replay."""
        sessions = self._live(shard)
        for s in sessions:
            s.conn.close(code, "dropped by emulator", drop_pending=True)
        return len(sessions)

    def _forget(self, session: Session) -> None:
        session.invalid = True
        self.sessions.pop(session.id, None)

    def connected_sessions(self) -> list[dict]:
        return [s.info() for s in self.sessions.values() if s.conn is not None]

    async def close_all(self) -> None:
        conns = list(self.connections)
        for conn in conns:
            conn.close(1001, "emulator shutting down", drop_pending=True)
        tasks = [c.task for c in conns if c.task is not None and not c.task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=3.0)
        for task in tasks:
            task.cancel()

    # --- websocket handler -----------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=True, compress=False, max_msg_size=16 * 1024 * 1024, timeout=2.0)
        await ws.prepare(request)
        compress = request.query.get("compress") == "zlib-stream" and self.server.gateway_compression
        conn = Connection(ws, compress)
        self.connections.add(conn)
        conn.start()
        conn.send_op(10, {"heartbeat_interval": self.server.heartbeat_interval_ms, "_trace": _TRACE})
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    raw = msg.data
                elif msg.type == WSMsgType.BINARY:
                    raw = msg.data.decode("utf-8", "replace")
                else:
                    break
                try:
                    payload = json.loads(raw)
                    op = payload["op"]
                except (ValueError, KeyError, TypeError):
                    conn.close(4002, "Error while decoding payload.")
                    break
                if not self._on_payload(conn, op, payload.get("d")):
                    break
        finally:
            self.connections.discard(conn)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                session.disconnected_at = time.monotonic()
                if not conn.server_closed and ws.close_code in (1000, 1001):
                    self._forget(session)  # a clean client close ends the session, as on Discord
            task = conn.task
            if task is not None and not task.done():
                try:
                    if conn.queue and not ws.closed:  # let a queued close frame go out
                        await asyncio.wait_for(asyncio.shield(task), 2.0)
                except TimeoutError:
                    pass
                finally:
                    task.cancel()
        return ws

    def _on_payload(self, conn: Connection, op: int, d: Any) -> bool:
        """Handle one client payload; False = stop reading (connection is closing)."""
        if op == 1:
            conn.heartbeats += 1
            if conn.session is not None:
                conn.session.heartbeats += 1
            conn.send_op(11, None)
            return True
        session = conn.session
        self.log.append(
            {
                "op": op,
                "time": time.time(),
                "session_id": session.id if session else None,
                "shard": [session.shard_id, session.shard_count] if session else None,
            }
        )
        if op == 2:
            return self._identify(conn, d if isinstance(d, dict) else {})
        if op == 6:
            return self._resume(conn, d if isinstance(d, dict) else {})
        if session is None:
            conn.close(4003, "Not authenticated.")
            return False
        if op == 8:
            self._request_members(session, d if isinstance(d, dict) else {})
            return True
        if op in (3, 4):
            return True
        conn.close(4001, "Unknown opcode.")
        return False

    def _check_token(self, conn: Connection, token: Any) -> bool:
        if isinstance(token, str) and token.removeprefix("Bot ") == self.state.token:
            return True
        conn.close(4004, "Authentication failed.")
        return False

    def _identify(self, conn: Connection, d: dict) -> bool:
        if conn.session is not None:
            conn.close(4005, "Already authenticated.")
            return False
        if not self._check_token(conn, d.get("token")):
            return False
        shard = d.get("shard") or [0, 1]
        try:
            shard_id, shard_count = int(shard[0]), int(shard[1])
            valid = 0 <= shard_id < shard_count
        except (TypeError, ValueError, IndexError):
            valid = False
        if not valid:
            conn.close(4010, "Invalid shard.")
            return False
        if shard_count < self.server.required_shards:
            conn.close(4011, "Sharding required.")
            return False
        intents = d.get("intents")
        if not isinstance(intents, int) or intents < 0:
            conn.close(4013, "Invalid intent(s).")
            return False
        allowed = self.server.allowed_intents
        if allowed is not None and intents & PRIVILEGED_INTENTS & ~allowed:
            conn.close(4014, "Disallowed intent(s).")
            return False
        self._prune(shard_id, shard_count)
        session = Session(shard_id, shard_count, intents, self.buffer_size)
        session.conn = conn
        conn.session = session
        self.sessions[session.id] = session
        if self.log:
            self.log[-1]["session_id"] = session.id
            self.log[-1]["shard"] = [shard_id, shard_count]
        st = self.state
        owned = [gid for gid in st.guilds if (int(gid) >> 22) % shard_count == shard_id]
        ready = {
            "v": 10,
            "user": st.bot_user,
            "user_settings": {},
            "session_type": "normal",
            "session_id": session.id,
            "resume_gateway_url": self.server.ws_url,
            "guilds": [{"id": gid, "unavailable": True} for gid in owned],
            "private_channels": [],
            "presences": [],
            "relationships": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": ["local"],
            "application": {"id": st.application_id, "flags": self.server.application_flags},
            "auth": {},
            "_trace": _TRACE,
        }
        if d.get("shard") is not None:
            ready["shard"] = [shard_id, shard_count]
        session.push("READY", _dumps(ready))
        if intents & 1:
            for gid in owned:
                session.push("GUILD_CREATE", _dumps(st.guild_create_payload(gid)))
        return True

    def _prune(self, shard_id: int, shard_count: int) -> None:
        now = time.monotonic()
        for s in list(self.sessions.values()):
            if (
                s.conn is None
                and s.disconnected_at is not None
                and (now - s.disconnected_at > self.resume_window or (s.shard_id, s.shard_count) == (shard_id, shard_count))
            ):
                self._forget(s)

    def _resume(self, conn: Connection, d: dict) -> bool:
        if conn.session is not None:
            conn.close(4005, "Already authenticated.")
            return False
        if not self._check_token(conn, d.get("token")):
            return False
        session = self.sessions.get(str(d.get("session_id")))
        seq = d.get("seq")
        seq = 0 if seq is None else seq
        ok = session is not None and not session.invalid and isinstance(seq, int) and seq <= session.seq
        if ok and seq < session.seq:
            ok = bool(session.buffer) and session.buffer[0][0] <= seq + 1
        if not ok:
            conn.send_op(9, False)
            return True
        old = session.conn
        if old is not None and old is not conn:
            old.session = None
            old.close(4000, "Session resumed elsewhere.", drop_pending=True)
        session.conn = conn
        session.disconnected_at = None
        session.resumes += 1
        conn.session = session
        for frame_seq, frame in session.buffer:
            if frame_seq > seq:
                conn.send(frame)
        session.push("RESUMED", _dumps({"_trace": _TRACE}))
        return True

    def _request_members(self, session: Session, d: dict) -> None:
        gids = d.get("guild_id")
        gids = gids if isinstance(gids, list) else [gids]
        user_ids = d.get("user_ids")
        if user_ids is not None and not isinstance(user_ids, list):
            user_ids = [user_ids]
        for gid in gids:
            gid = str(gid)
            if gid not in self.state.guilds:
                continue
            members, not_found = self.state.query_members(
                gid, query=str(d.get("query") or ""), limit=int(d.get("limit") or 0), user_ids=user_ids
            )
            if not session.intents & GUILD_MEMBERS and not user_ids:
                members = [m for m in members if m["user"]["id"] == self.state.bot_id]
            chunks = [members[i : i + 1000] for i in range(0, len(members), 1000)] or [[]]
            for index, chunk in enumerate(chunks):
                body: dict[str, Any] = {"guild_id": gid, "members": chunk, "chunk_index": index, "chunk_count": len(chunks)}
                if index == 0 and not_found:
                    body["not_found"] = not_found
                if d.get("presences"):
                    body["presences"] = []
                if d.get("nonce") is not None:
                    body["nonce"] = d["nonce"]
                session.push("GUILD_MEMBERS_CHUNK", _dumps(body))
