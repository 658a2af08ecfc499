"""The ``cron_jobs``, ``cron_loads`` and ``cron_claims`` tables.

A job row belongs to the script load that registered it (``load_id``).
``cron_loads`` names, per guild, the load whose jobs run (the last one that
loaded successfully) and the one before it. Rows of a load that is still
loading wait; rows of a load that failed are removed; when a load succeeds its
rows take over ``last_run``/``next_run`` from the rows of the same name and
expression of the load before it, so neither a redeploy nor a restart repeats
or loses an occurrence.

Registration (in a worker) and activation (in the supervisor) may arrive in
either order: a row inherits at insert from the best row of another load, and
activation inherits again from the load it replaces. The previous load's rows
are kept (never scheduled) until the next activation, for late registrations.

A run is **claimed** before it is dispatched (:func:`claim`): one transaction moves the row's
``next_run`` on from the value the scheduler read (compare-and-set, so of two schedulers that read the
same row only one moves it) and raises the job's entry in ``cron_claims`` (one per guild and name,
whatever the load) to the occurrence, only if that is later than the one there. The second condition
covers what the first cannot see: a new load's row inherits ``next_run`` from the old load's row, so
while a load takes over (a redeploy, a node taking over a guild) both rows can say the same occurrence
is due, and whichever claims it second does not run it.
"""

from __future__ import annotations

import time


def _ms() -> int:
    return int(time.time() * 1000)


def _source(cur, guild_id: str, name: str, expr: str, exclude_load: str) -> dict | None:
    """The row whose schedule a new registration continues: the running load's, else the previous one's."""
    cur.execute(
        "SELECT c.next_run, c.last_run FROM cron_jobs c LEFT JOIN cron_loads l ON l.guild_id = c.guild_id"
        " WHERE c.guild_id = ? AND c.name = ? AND c.expr = ? AND c.load_id <> ?"
        " ORDER BY CASE WHEN c.load_id = l.load_id THEN 0 WHEN c.load_id = l.previous_load_id THEN 1 ELSE 2 END,"
        " c.next_run DESC LIMIT 1",
        (guild_id, name, expr, exclude_load),
    )
    return cur.fetchone()


def register_job(
    db, guild_id: str, load_id: str, name: str, expr: str, skip_if_running: bool, catch_up: str, fresh_next_run: int
) -> dict:
    """Insert the job of one load (or refresh it when a rebuilt isolate of that load registers it again)."""
    with db.transaction() as cur:
        cur.execute(
            "SELECT expr, next_run, last_run FROM cron_jobs WHERE guild_id = ? AND load_id = ? AND name = ?",
            (guild_id, load_id, name),
        )
        row = cur.fetchone()
        if row is not None:
            if row["expr"] == expr:
                cur.execute(
                    "UPDATE cron_jobs SET skip_if_running = ?, catch_up = ? WHERE guild_id = ? AND load_id = ? AND name = ?",
                    (int(skip_if_running), catch_up, guild_id, load_id, name),
                )
                return {"next_run": row["next_run"], "last_run": row["last_run"]}
            cur.execute(
                "UPDATE cron_jobs SET expr = ?, skip_if_running = ?, catch_up = ?, next_run = ?, last_run = NULL"
                " WHERE guild_id = ? AND load_id = ? AND name = ?",
                (expr, int(skip_if_running), catch_up, fresh_next_run, guild_id, load_id, name),
            )
            return {"next_run": fresh_next_run, "last_run": None}
        src = _source(cur, guild_id, name, expr, load_id)
        next_run, last_run = (src["next_run"], src["last_run"]) if src else (fresh_next_run, None)
        cur.execute(
            "INSERT INTO cron_jobs (guild_id, name, load_id, expr, skip_if_running, catch_up, last_run, next_run, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (guild_id, name, load_id, expr, int(skip_if_running), catch_up, last_run, next_run, _ms()),
        )
        return {"next_run": next_run, "last_run": last_run}


def activate(db, guild_id: str, load_id: str) -> None:
    """``load_id`` loaded successfully: its jobs run from now on, continuing the schedule of the load it replaces."""
    now = _ms()
    with db.transaction() as cur:
        cur.execute("SELECT load_id FROM cron_loads WHERE guild_id = ?", (guild_id,))
        row = cur.fetchone()
        current = row["load_id"] if row else None
        if current == load_id:
            return
        if current is not None:
            cur.execute(
                "SELECT n.name, p.next_run, p.last_run FROM cron_jobs n JOIN cron_jobs p"
                " ON p.guild_id = n.guild_id AND p.name = n.name AND p.expr = n.expr AND p.load_id = ?"
                " WHERE n.guild_id = ? AND n.load_id = ?",
                (current, guild_id, load_id),
            )
            for r in cur.fetchall():
                cur.execute(
                    "UPDATE cron_jobs SET next_run = ?, last_run = ? WHERE guild_id = ? AND load_id = ? AND name = ?",
                    (r["next_run"], r["last_run"], guild_id, load_id, r["name"]),
                )
        cur.execute(
            "INSERT INTO cron_loads (guild_id, load_id, previous_load_id, activated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (guild_id) DO UPDATE SET load_id = excluded.load_id, previous_load_id = excluded.previous_load_id,"
            " activated_at = excluded.activated_at",
            (guild_id, load_id, current, now),
        )
        # Older generations, and rows of loads that failed, registered before this activation.
        cur.execute(
            "DELETE FROM cron_jobs WHERE guild_id = ? AND load_id <> ? AND load_id <> ? AND created_at <= ?",
            (guild_id, load_id, current or "", now),
        )
        # The claims of jobs no row has any more.
        cur.execute(
            "DELETE FROM cron_claims WHERE guild_id = ? AND name NOT IN (SELECT name FROM cron_jobs WHERE guild_id = ?)",
            (guild_id, guild_id),
        )


def discard(db, guild_id: str, load_id: str) -> int:
    """``load_id`` failed to load: its jobs go; the running load's stay."""
    return db.execute(
        "DELETE FROM cron_jobs WHERE guild_id = ? AND load_id = ?"
        " AND NOT EXISTS (SELECT 1 FROM cron_loads l WHERE l.guild_id = ? AND l.load_id = ?)",
        (guild_id, load_id, guild_id, load_id),
    )


def due_jobs(db, now: int) -> list[dict]:
    """Jobs of the running loads whose ``next_run`` has come."""
    return db.fetchall(
        "SELECT c.guild_id, c.name, c.load_id, c.expr, c.skip_if_running, c.catch_up, c.last_run, c.next_run"
        " FROM cron_jobs c JOIN cron_loads l ON l.guild_id = c.guild_id AND l.load_id = c.load_id"
        " WHERE c.next_run <= ? ORDER BY c.next_run, c.guild_id, c.name",
        (now,),
    )


def advance(db, job: dict, next_run: int, last_run: int | None) -> bool:
    """Move a job past occurrences it does not run (skipped, missed); False if the row changed since it was read."""
    return (
        db.execute(
            "UPDATE cron_jobs SET next_run = ?, last_run = ? WHERE guild_id = ? AND load_id = ? AND name = ? AND next_run = ?",
            (next_run, last_run, job["guild_id"], job["load_id"], job["name"], job["next_run"]),
        )
        > 0
    )


def claim(db, job: dict, next_run: int, scheduled: int) -> bool:
    """Claim the run of ``job``'s occurrence ``scheduled`` and move the job on to ``next_run``, in one transaction.

    True: this scheduler runs it. False: the row changed since it was read (another scheduler moved it,
    nothing is written), or ``scheduled`` or a later occurrence of the job was claimed already through
    another load's row (the row still moves on, so it is not due again)."""
    with db.transaction() as cur:
        cur.execute(
            "UPDATE cron_jobs SET next_run = ?, last_run = ? WHERE guild_id = ? AND load_id = ? AND name = ? AND next_run = ?",
            (next_run, scheduled, job["guild_id"], job["load_id"], job["name"], job["next_run"]),
        )
        if cur.rowcount == 0:
            return False
        cur.execute(
            "INSERT INTO cron_claims (guild_id, name, scheduled_at, claimed_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (guild_id, name) DO UPDATE SET scheduled_at = excluded.scheduled_at, claimed_at = excluded.claimed_at"
            " WHERE cron_claims.scheduled_at < excluded.scheduled_at",
            (job["guild_id"], job["name"], scheduled, _ms()),
        )
        return cur.rowcount > 0


def jobs_of(db, guild_id: str) -> list[dict]:
    """Every row of a guild (for tests and diagnostics)."""
    return db.fetchall("SELECT * FROM cron_jobs WHERE guild_id = ? ORDER BY load_id, name", (guild_id,))


def running_load(db, guild_id: str) -> str | None:
    row = db.fetchone("SELECT load_id FROM cron_loads WHERE guild_id = ?", (guild_id,))
    return row["load_id"] if row else None
