"""DevSession: emulator + runtime + watcher + console, all on one asyncio loop."""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web

from flora_cli.client import ClientError
from flora_core.bundler import BUNDLER_VERSION, BundleError
from flora_core.runtime.supervisor import Runtime
from flora_core.storage import repo
from flora_dev.emulator import EmulatorServer, load_world_ids, save_world_ids, seed_dev_world, world_ids
from flora_dev.emulator.models import EPHEMERAL, ApiError

from . import hookspecs as console_hookspecs

STATIC = Path(__file__).resolve().parent / "static"
EMULATOR_TOKEN = "flora-dev-token"
POLL_SECS = 0.3
SKIP_DIRS = {".flora", ".git", "node_modules", "__pycache__", "data"}
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(data).encode(), status=status, content_type="application/json")


def _say(line: str) -> None:
    print(line, flush=True)


class DevSession:
    def __init__(
        self,
        project_dir: str | os.PathLike,
        config,
        plugins=None,
        *,
        port: int = 8780,
        emulator_port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        self.root = Path(project_dir).resolve()
        self.base_config = config
        self.plugins = plugins
        self.host, self.port, self.emulator_port = host, port, emulator_port
        self.emu: EmulatorServer | None = None
        self.runtime: Runtime | None = None
        self.world: dict = {}
        self.guild_id = ""
        self.tmp: str | None = None
        self.sockets: set[web.WebSocketResponse] = set()
        self.logs: collections.deque = collections.deque(maxlen=1000)
        self.log_seq = 0
        self.last_deploy: dict = {}
        self.watched: dict[str, str] = {}  # interaction id -> user id (console-made interactions)
        self.modals_shown: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self.url = ""

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        from flora_core.config import Config
        from flora_core.plugins import Plugins

        self.tmp = tempfile.mkdtemp(prefix="flora-dev-")
        # the same ids at every start in this project (what the script stored, e.g. channel ids, stays valid)
        saved_at = self.root / ".flora" / "emulator.json"
        ids = load_world_ids(saved_at) or {}
        emu = self.emu = EmulatorServer(EMULATOR_TOKEN, application_id=ids.get("application"))
        await emu.start("127.0.0.1", self.emulator_port)
        self.world = world = seed_dev_world(emu, ids)
        self.guild_id = gid = world["guild"]["id"]
        world["channels"]["random"] = emu.create_channel(gid, "random", channel_id=ids.get("random"))
        member = emu.create_role(gid, "member", permissions="0", color=0x2ECC71, role_id=ids.get("member"))
        world["roles"]["member"] = member
        emu.update_member(gid, world["users"]["bob"]["id"], roles=[member["id"]])
        try:
            save_world_ids(saved_at, dict(world_ids(world), application=emu.state.application_id))
        except OSError as exc:  # a read-only project: the ids are new next time, nothing else changes
            _say(f"  note: could not save the emulator's ids in {saved_at}: {exc.strerror or exc}")
        emu.listeners.append(self._on_emulator_event)
        values = dict(
            self.base_config.to_dict(),
            data_dir=self.tmp,
            database_url=None,
            discord_api_base=emu.api_base,
            discord_token=EMULATOR_TOKEN,
            max_workers=1,
        )
        config = Config.from_dict(values)
        self.plugins = self.plugins or Plugins()
        if not hasattr(self.plugins.hook, "flora_console_state") or self.plugins.hook.flora_console_state.spec is None:
            self.plugins.pm.add_hookspecs(console_hookspecs)  # the console's own hooks (the kv view)
        # flora dev deploys the project itself: no starter script
        self.runtime = Runtime(config, self.plugins, starter=False)
        self.runtime.logs.subscribe(self._on_log)
        await self.runtime.start()
        await self._start_console()
        await self.deploy(initial=True)
        self._tasks.append(asyncio.create_task(self._watch()))
        self._tasks.append(asyncio.create_task(self._tick()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for ws in list(self.sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self.runtime is not None:
            await self.runtime.stop()
        if self.emu is not None:
            await self.emu.stop()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- deploy and watch -------------------------------------------------
    def _project_files(self) -> tuple[str, list[dict]]:
        from flora_cli.client import collect_files, imported_files, load_project_config, resolve_entry

        project = load_project_config(self.root)
        entry = resolve_entry(project.get("entry") or "src/main.ts", self.root)
        files = collect_files(self.root, exclude=(self.root / ".flora", self.root / "data"))
        return entry, imported_files(self.root, entry, files)

    async def deploy(self, initial: bool = False) -> bool:
        loop = asyncio.get_running_loop()
        rt = self.runtime
        t0 = time.monotonic()
        error = None
        try:
            entry, files = await loop.run_in_executor(None, self._project_files)
            bundle = await loop.run_in_executor(None, rt.bundler.bundle, entry, files)
            ok, error = await rt.load(self.guild_id, bundle)
            rev = await loop.run_in_executor(
                None,
                lambda: repo.record_revision(
                    rt.db,
                    self.guild_id,
                    entry=entry,
                    status="success" if ok else "failed",
                    bundle=bundle,
                    deploy_source="dev",
                    actor_type="system",
                    actor_username="flora dev",
                    error_message=error,
                    files=files,
                    bundler_version=BUNDLER_VERSION,
                ),
            )
            if ok:
                rt.plugins.deployment_changed(self.guild_id, rev)
                await loop.run_in_executor(None, self._deployed, files)
                self._check_types(entry)
        except (BundleError, OSError, ValueError, ClientError) as exc:  # the project's fault: its own words
            ok, error = False, str(exc)
        except Exception as exc:  # noqa: BLE001 - a broken project must not stop flora dev
            ok, error = False, f"{type(exc).__name__}: {exc}"
        ms = int((time.monotonic() - t0) * 1000)
        self.last_deploy = {"ok": ok, "ms": ms, "error": error, "at": time.time()}
        verb = "deployed" if initial else "reloaded"
        if ok:
            _say(f"  {verb} in {ms} ms")
            rt.guild_log(self.guild_id, "info", "flora:dev", f"{verb} in {ms} ms")
        else:
            _say(f"  deploy failed ({ms} ms):\n{_indent(error or 'unknown error')}")
            rt.guild_log(self.guild_id, "error", "flora:dev", f"deploy failed: {error}")
        self._broadcast({"t": "deploy", "d": self.last_deploy})
        return ok

    def _check_types(self, entry: str) -> None:
        """Type-check the project in the background after a reload (never holding it back); the errors, or
        that they are fixed, go to the terminal and the console's log. A newer reload's check wins."""
        self._checks = getattr(self, "_checks", 0) + 1
        mine = self._checks

        async def run() -> None:
            from flora_cli.typecheck import CheckUnavailable, check
            from flora_core.declarations import assemble

            rt = self.runtime
            try:
                errors = await asyncio.get_running_loop().run_in_executor(None, check, self.root, entry, assemble(rt.plugins))
            except CheckUnavailable:
                return  # a syntax error: the reload already said where
            if mine != self._checks:
                return
            had = getattr(self, "_type_errors", 0)
            self._type_errors = len(errors)
            if errors:  # each also printed as a log line of the guild
                _say(f"  {len(errors)} type error(s) (the script runs anyway):")
                for e in errors:
                    rt.guild_log(self.guild_id, "warn", "flora:types", str(e))
            elif had:
                rt.guild_log(self.guild_id, "info", "flora:types", "no type errors")

        self._tasks = [t for t in self._tasks if not t.done()]
        self._tasks.append(asyncio.create_task(run()))

    def _snapshot(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    st = os.stat(path)
                except OSError:
                    continue
                out[path] = (st.st_mtime_ns, st.st_size)
        return out

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        before = await loop.run_in_executor(None, self._snapshot)
        while True:
            await asyncio.sleep(POLL_SECS)
            now = await loop.run_in_executor(None, self._snapshot)
            if now != before:
                changed = sorted(os.path.relpath(p, self.root) for p in set(now) | set(before) if now.get(p) != before.get(p))
                _say(f"  changed: {', '.join(changed[:5])}{' …' if len(changed) > 5 else ''}")
                before = now
                await self.deploy()
                before = await loop.run_in_executor(None, self._snapshot)

    # -- live updates ---------------------------------------------------------
    def _broadcast(self, msg: dict) -> None:
        text = _dumps(msg)
        for ws in list(self.sockets):
            if not ws.closed:
                asyncio.ensure_future(ws.send_str(text))

    def _on_emulator_event(self, event: str, data: Any, guild_id: Any) -> None:
        if event.startswith("MESSAGE_") or event.startswith("CHANNEL_") or event.startswith("GUILD_"):
            cid = data.get("channel_id") if isinstance(data, dict) else None
            self._broadcast({"t": "event", "e": event, "channel_id": cid})

    def _on_log(self, entry: dict) -> None:
        self.log_seq += 1
        item = dict(entry, seq=self.log_seq)
        self.logs.append(item)
        if entry.get("target") not in ("flora:dev",):
            _say(f"  [{entry['level']}] {entry['target']}: {entry['message']}")
        self._broadcast({"t": "log", "d": item})

    def _signature(self) -> tuple:
        st = self.emu.state
        eph = tuple((m["id"], m.get("edited_timestamp"), len(m.get("content") or "")) for m in list(st.ephemeral.values())[-50:])
        cmds = len(self.emu.commands(self.guild_id)) + len(self.emu.commands(None))
        return (len(st.ephemeral), eph, cmds)

    async def _tick(self) -> None:
        """Ephemeral messages, modals and commands are not gateway events: poll for them."""
        sig = None
        while True:
            await asyncio.sleep(0.2)
            try:
                now = self._signature()
                if now != sig:
                    if sig is not None:
                        self._broadcast({"t": "refresh"})
                    sig = now
                for iid, uid in list(self.watched.items()):
                    rec = self.emu.state.interactions.get(iid)
                    if rec is None:
                        self.watched.pop(iid, None)
                        continue
                    if rec.modal and iid not in self.modals_shown:
                        self.modals_shown.add(iid)
                        self._broadcast(
                            {
                                "t": "modal",
                                "d": {
                                    "interaction_id": iid,
                                    "user_id": uid,
                                    "channel_id": rec.channel_id,
                                    "message_id": rec.message_id,
                                    "modal": rec.modal,
                                },
                            }
                        )
                    if time.monotonic() - rec.created > 30:
                        self.watched.pop(iid, None)
            except Exception:  # noqa: BLE001
                logging.getLogger("flora.dev").exception("console tick failed")

    # -- the console -----------------------------------------------------------
    async def _start_console(self) -> None:
        app = web.Application()
        app.router.add_get("/", self._index)
        app.router.add_static("/static", STATIC)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/api/world", self._api(self.api_world))
        app.router.add_get("/api/messages/{channel_id}", self._api(self.api_messages))
        app.router.add_get("/api/logs", self._api(lambda b: list(self.logs)))
        app.router.add_get("/api/kv", self._kv)
        app.router.add_post("/api/say", self._api(self.api_say))
        app.router.add_post("/api/slash", self._api(self.api_slash))
        app.router.add_post("/api/click", self._api(self.api_click))
        app.router.add_post("/api/modal", self._api(self.api_modal))
        app.router.add_post("/api/react", self._api(self.api_react))
        app.router.add_post("/api/redeploy", self._redeploy)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the real port when 0 was asked
        self.url = f"http://{self.host}:{port}/"

    async def _index(self, request: web.Request) -> web.Response:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        self.sockets.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.sockets.discard(ws)
        return ws

    def _api(self, fn):
        async def handler(request: web.Request) -> web.Response:
            body: dict = dict(request.query)
            if request.body_exists:
                try:
                    body.update(await request.json())
                except ValueError:
                    return _json({"error": "invalid JSON body"}, 400)
            body.update(request.match_info)
            try:
                return _json(fn(body))
            except ApiError as exc:
                return _json({"error": exc.message, "code": exc.code}, exc.status)
            except (LookupError, TypeError, ValueError) as exc:
                return _json({"error": str(exc)}, 400)

        return handler

    def api_world(self, b: dict) -> dict:
        st = self.emu.state
        snap = self.emu.snapshot()
        guild = next(g for g in snap["guilds"] if g["id"] == self.guild_id)
        roles = {r["id"]: r for r in guild.get("roles", [])}
        members = [
            {
                "id": m["user"]["id"],
                "username": m["user"]["username"],
                "roles": [roles[r]["name"] for r in m.get("roles", []) if r in roles],
            }
            for m in guild.get("members", [])
            if not m["user"].get("bot")
        ]
        channels = [{"id": c["id"], "name": c["name"]} for c in guild.get("channels", []) if c.get("type") in (0, 5)]
        commands = self.emu.commands(self.guild_id) + self.emu.commands(None)
        return {
            "guild": {"id": self.guild_id, "name": guild["name"]},
            "channels": channels,
            "members": members,
            "bot": st.bot_user,
            "commands": commands,
            "project": str(self.root),
            "deploy": self.last_deploy,
        }

    def api_messages(self, b: dict) -> list[dict]:
        cid, uid = b["channel_id"], b.get("user")
        msgs = list(self.emu.messages(cid))
        if uid:
            st = self.emu.state
            for rec in list(st.interactions.values()):
                if rec.user_id != uid or rec.channel_id != cid:
                    continue
                for mid in [rec.original_id, *rec.followup_ids]:
                    m = st.ephemeral.get(mid) if mid else None
                    if m is not None and m["flags"] & EPHEMERAL:
                        msgs.append(m)
        msgs.sort(key=lambda m: int(m["id"]))
        return msgs[-200:]

    def _watch_interaction(self, payload: dict, user_id: str) -> dict:
        self.watched[payload["id"]] = user_id
        return {"id": payload["id"]}

    def api_say(self, b: dict) -> dict:
        msg = self.emu.user_says(b["channel_id"], b["user_id"], b.get("content", ""))
        return {"id": msg["id"]}

    def api_slash(self, b: dict) -> dict:
        payload = self.emu.invoke_slash(self.guild_id, b["channel_id"], b["user_id"], b["name"], b.get("options") or None)
        return self._watch_interaction(payload, b["user_id"])

    def api_click(self, b: dict) -> dict:
        payload = self.emu.click_component(
            b["channel_id"], b["message_id"], b["user_id"], b["custom_id"], int(b.get("component_type", 2)), b.get("values")
        )
        return self._watch_interaction(payload, b["user_id"])

    def api_modal(self, b: dict) -> dict:
        payload = self.emu.submit_modal(
            self.guild_id, b["channel_id"], b["user_id"], b["custom_id"], b.get("fields") or {}, b.get("message_id")
        )
        return self._watch_interaction(payload, b["user_id"])

    def api_react(self, b: dict) -> dict:
        return {"added": self.emu.react(b["channel_id"], b["message_id"], b["user_id"], b["emoji"])}

    async def _redeploy(self, request: web.Request) -> web.Response:
        ok = await self.deploy()
        return _json(dict(self.last_deploy, ok=ok))

    async def _kv(self, request: web.Request) -> web.Response:
        if not self._kv_enabled():
            return _json({"error": "the kv plugin is not enabled", "stores": []})
        try:
            state = await asyncio.get_running_loop().run_in_executor(None, self._state)
        except Exception as exc:  # noqa: BLE001 - the view is best effort
            return _json({"error": str(exc), "stores": []})
        return _json({"stores": state.get("kv", [])})

    def _kv_enabled(self) -> bool:
        return self.runtime is not None and "kv" in self.runtime.plugins.loaded

    def _state(self) -> dict:
        """What plugins show in the console (``flora_console_state``), merged."""
        out: dict = {}
        for part in self.runtime.plugins.hook.flora_console_state(runtime=self.runtime, guild_id=self.guild_id):
            out.update(part or {})
        return out

    def _deployed(self, files: list[dict]) -> None:
        self.runtime.plugins.hook.flora_console_deployed(runtime=self.runtime, guild_id=self.guild_id, files=files)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in str(text).splitlines())


def run_dev(project_dir: str | os.PathLike, config, plugins=None, *, port: int = 8780, emulator_port: int = 0) -> int:
    """``flora dev``: run until SIGINT/SIGTERM; print the console's URL."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("disnake").setLevel(logging.ERROR)
    # guild log lines are printed by the session itself
    logging.getLogger("flora.runtime").addFilter(lambda r: not str(r.msg).startswith("[guild "))

    async def main() -> int:
        session = DevSession(project_dir, config, plugins, port=port, emulator_port=emulator_port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            stop.set()
            if session.runtime is not None:
                session.runtime.request_stop()  # from now on no worker is restarted, no event taken

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal)
        _say(f"flora dev: {session.root}")
        try:
            await session.start()
            _say(
                f"\n  console: {session.url}\n  (the bot runs against the built-in Discord emulator; "
                "files are watched, Ctrl-C stops)\n"
            )
            await stop.wait()
        finally:
            _say("  stopping")
            await session.stop()
        return 0

    return asyncio.run(main())
