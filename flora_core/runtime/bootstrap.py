"""The starter script: a guild the bot is in that never had a deployment gets the script of the
``flora_starter_files`` hook (the ``sdk`` plugin's), as flora does, recorded as a ``bootstrap`` revision."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from flora_core.bundler import BUNDLER_VERSION, BundleError
from flora_core.storage import repo

if TYPE_CHECKING:
    from .supervisor import Runtime

ENTRY = "src/main.ts"


class Starter:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self._bundle: str | None = None  # bundled once per process
        self._busy: set[str] = set()

    async def bootstrap(self, guild_id: str) -> None:
        rt = self.runtime
        if rt.has_script(guild_id) or guild_id in self._busy:
            return
        self._busy.add(guild_id)
        loop = asyncio.get_running_loop()
        try:
            if await loop.run_in_executor(None, repo.latest_success, rt.db, guild_id):
                return
            files = rt.plugins.starter_files()
            if not files:
                return  # no plugin offers a starter script
            if self._bundle is None:
                self._bundle = await loop.run_in_executor(None, rt.bundler.bundle, ENTRY, files)
            bundle = self._bundle
            async with rt.guild_lock(guild_id):
                if rt.has_script(guild_id):
                    return  # a deploy arrived while the starter was being prepared: it wins
                ok, error = await rt.load_locked(guild_id, bundle)
                # recorded under the lock, so a deploy that follows is recorded after it
                rev = await loop.run_in_executor(
                    None,
                    lambda: repo.record_revision(
                        rt.db,
                        guild_id,
                        entry=ENTRY,
                        status="success" if ok else "failed",
                        bundle=bundle,
                        deploy_source="bootstrap",
                        actor_type="system",
                        actor_username="system",
                        error_message=error,
                        files=files,
                        bundler_version=BUNDLER_VERSION,
                    ),
                )
            if ok:
                rt.guild_log(guild_id, "info", "flora:runtime", "starter script deployed")
                rt.plugins.deployment_changed(guild_id, rev)
        except (BundleError, OSError) as exc:
            rt.guild_log(guild_id, "error", "flora:runtime", f"starter script could not be deployed: {exc}")
        finally:
            self._busy.discard(guild_id)
