"""``GET /api/logs/<guild>/stream``: live guild log entries as Server-Sent Events (flora §3.5).

The runtime process writes log entries to the ``guild_logs`` table; this
polls the table by id (every :data:`POLL_INTERVAL` seconds) and sends each
new entry of the guild as ``data: <LogEntry JSON>\\n\\n`` — flora's format, no
``event:``/``id:`` lines, live only (nothing written before the request is
replayed). A keep-alive comment goes out every :data:`KEEPALIVE_INTERVAL`
seconds (one also opens the stream, so the headers go out at once). The stream ends when the client disconnects: noticed at once when
the server exposes the client socket (gevent's pywsgi, gunicorn), else at the
next write.
"""

from __future__ import annotations

import _socket
import json
import logging
import select
import socket
import time

from flask import Response, request

from flora_core.storage import repo

log = logging.getLogger("flora.api.logs")

POLL_INTERVAL = 0.25
KEEPALIVE_INTERVAL = 15.0
BATCH = 500


def cooperative_sleep(seconds: float) -> None:
    """Cooperative under gevent (the API process is monkey-patched; this makes it explicit)."""
    try:
        from gevent import monkey

        if monkey.is_module_patched("time"):
            import gevent

            gevent.sleep(seconds)
            return
    except ImportError:  # pragma: no cover - gevent is a dependency
        pass
    time.sleep(seconds)


def client_socket(environ) -> _socket.socket | None:
    """The raw client socket, when the WSGI server lets us find it."""
    sock = environ.get("gunicorn.socket")
    if sock is None:
        rfile = getattr(environ.get("wsgi.input"), "rfile", None)
        raw = getattr(rfile, "raw", None)
        sock = getattr(raw, "_sock", None)
    real = getattr(sock, "_sock", sock)  # gevent's socket wraps the real one
    return real if isinstance(real, _socket.socket) else None


def peer_closed(sock: _socket.socket | None) -> bool:
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except (OSError, ValueError):
        return True


def format_entry(row: dict) -> str:
    entry = {
        "timestamp": int(row["timestamp"]),
        "level": row["level"],
        "target": row["target"],
        "guild_id": row["guild_id"],
        "message": row["message"],
    }
    return "data: " + json.dumps(entry, separators=(",", ":"), ensure_ascii=False) + "\n\n"


def stream_response(db, guild_id: str) -> Response:
    start_id = repo.last_log_id(db)
    sock = client_socket(request.environ)

    def events():
        last_id = start_id
        last_write = time.monotonic()
        try:
            # WSGI servers send the headers with the first non-empty chunk: a comment
            # (ignored by SSE clients) lets the client see 200 before any entry exists.
            yield ":\n\n"
            while True:
                rows = repo.logs_after(db, guild_id, last_id, BATCH)
                if rows:
                    last_id = rows[-1]["id"]
                    yield "".join(format_entry(r) for r in rows)
                    last_write = time.monotonic()
                    if len(rows) == BATCH:
                        continue
                elif time.monotonic() - last_write >= KEEPALIVE_INTERVAL:
                    yield ":\n\n"
                    last_write = time.monotonic()
                if peer_closed(sock):
                    return
                cooperative_sleep(POLL_INTERVAL)
        except GeneratorExit:  # the server closed the response: client gone
            return
        finally:
            log.debug("log stream for guild %s closed", guild_id)

    resp = Response(events(), mimetype="text/event-stream")
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["X-Accel-Buffering"] = "no"
    return resp
