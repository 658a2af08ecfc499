"""Guild log lines while the database cannot be written: kept (bounded, the oldest dropped and counted)
and stored in order when it is back (``flora_core/runtime/logsink.py``)."""

from __future__ import annotations

import asyncio

from flora_core.config import load_config
from flora_core.plugins import Plugins
from flora_core.runtime import logsink
from flora_core.storage import open_database, repo


class Flaky:
    """A database whose writes fail while ``down``: the real one behind it otherwise."""

    def __init__(self, db):
        self.db, self.down = db, True

    def transaction(self):
        if self.down:
            raise ConnectionError("server closed the connection unexpectedly")
        return self.db.transaction()


def test_lines_wait_for_the_database_and_the_oldest_beyond_the_bound_are_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(logsink, "MAX_BUFFERED", 100)
    db = open_database(load_config(env={"FLORA_DATA_DIR": str(tmp_path)}), Plugins())
    flaky = Flaky(db)
    logs = logsink.GuildLogs(retention=1000)

    async def main() -> None:
        for i in range(60):
            logs.add("1", "info", "flora:js", f"line {i}")
        await logs.flush(flaky)  # fails: kept
        for i in range(60, 130):
            logs.add("1", "info", "flora:js", f"line {i}")
        await logs.flush(flaky)
        assert logs.backlog == (100, 30)
        flaky.down = False
        await logs.flush(flaky)
        assert logs.backlog == (0, 0)

    asyncio.run(main())
    stored = [e["message"] for e in repo.recent_logs(db, "1", limit=1000)]
    assert stored == [f"line {i}" for i in range(30, 130)]  # in order, the 30 oldest dropped
    db.close()
