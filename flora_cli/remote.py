"""Client side of the deployment-history and log commands (``flora deployments …``, ``flora logs``).

Plain ``urllib`` like :mod:`flora_cli.client`, whose :class:`ApiClient` does
the JSON calls; this adds the log line format (flora's CLI:
``<YYYY-MM-DD HH:MM:SS.mmm> <LEVEL> [<guild_id or ->] <target>: <message>``)
and reading the Server-Sent Events log stream.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from urllib.parse import urlencode

from flora_core import __version__

from .client import ApiClient, ApiRequestError, ClientError, _error_message, _reason

STREAM_READ_TIMEOUT = 60.0  # the server sends a keep-alive every 15 s


def format_log(entry: dict) -> str:
    ts = dt.datetime.fromtimestamp(int(entry.get("timestamp") or 0) / 1000, dt.UTC)
    when = ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
    level = str(entry.get("level", "")).upper()
    return f"{when} {level:<5} [{entry.get('guild_id') or '-'}] {entry.get('target', '')}: {entry.get('message', '')}"


def format_revision(rev: dict) -> str:
    line = f"{rev['id']}  {rev['status']:<7}  {rev['deployed_at']}  {rev['deploy_source']:<9}  {rev['entry']}"
    if rev.get("error_message"):
        line += f"  error: {rev['error_message'].splitlines()[0] if rev['error_message'] else ''}"
    return line


def describe_revision(rev: dict) -> list[str]:
    lines = [
        f"Revision {rev['id']} ({rev['status']})",
        f"  guild: {rev['guild_id']}",
        f"  entry: {rev['entry']}",
        f"  deployed: {rev['deployed_at']} via {rev['deploy_source']} by {rev.get('actor', {}).get('actor_type', '?')}",
    ]
    if rev.get("base_revision_id"):
        lines.append(f"  base: {rev['base_revision_id']}")
    summary = rev.get("change_summary")
    if summary:
        for key, label in (("added_files", "added"), ("removed_files", "removed"), ("modified_files", "modified")):
            if summary.get(key):
                lines.append(f"  {label}: {', '.join(summary[key])}")
    if rev.get("files"):
        lines.append(f"  files: {len(rev['files'])}")
    if rev.get("error_message"):
        lines.append(f"  error: {rev['error_message']}")
    return lines


def history(api: ApiClient, guild_id: str, limit: int, cursor: tuple[str, str] | None = None) -> list[dict]:
    query = {"limit": limit}
    if cursor:
        query.update(cursor_deployed_at=cursor[0], cursor_id=cursor[1])
    return api.request("GET", f"deployments/{guild_id}/history?{urlencode(query)}")


def stream_logs(api: ApiClient, guild_id: str, on_open=None) -> Iterator[dict]:
    """Yield LogEntry objects from ``GET /logs/<guild>/stream`` until the server ends the stream;
    ``on_open()`` is called once the server answered (from then on no new entry is missed)."""
    url = f"{api.base_url}/logs/{guild_id}/stream"
    req = urllib.request.Request(url, method="GET")
    req.add_header("Authorization", f"Bearer {api.token}")
    req.add_header("Accept", "text/event-stream")
    req.add_header("User-Agent", f"flora-cli/{__version__}")
    try:
        resp = urllib.request.urlopen(req, timeout=STREAM_READ_TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise ApiRequestError(exc.code, _error_message(exc)) from None
    except urllib.error.URLError as exc:
        raise ClientError(f"Cannot reach the flora API at {api.base_url}: {_reason(exc.reason)}") from None
    except OSError as exc:
        raise ClientError(f"Cannot reach the flora API at {api.base_url}: {_reason(exc)}") from None
    if on_open is not None:
        on_open()
    with resp:
        data: list[str] = []
        while True:
            try:
                raw = resp.readline()
            except TimeoutError:
                raise ClientError(f"The log stream from {api.base_url} went silent for {STREAM_READ_TIMEOUT:.0f}s") from None
            except OSError as exc:
                raise ClientError(f"The log stream from {api.base_url} broke: {_reason(exc)}") from None
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
            elif line == "" and data:
                payload, data = "\n".join(data), []
                try:
                    entry = json.loads(payload)
                except ValueError:
                    continue
                if isinstance(entry, dict):
                    yield entry
