-- Cron jobs, one row per job and per script load that registered it. Times are UNIX seconds (UTC), created_at is milliseconds
CREATE TABLE IF NOT EXISTS cron_jobs (
    guild_id TEXT NOT NULL,
    name TEXT NOT NULL,
    load_id TEXT NOT NULL,
    expr TEXT NOT NULL,
    skip_if_running INTEGER NOT NULL DEFAULT 0,
    catch_up TEXT NOT NULL DEFAULT 'none',
    last_run BIGINT,
    next_run BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (guild_id, load_id, name)
);
CREATE INDEX IF NOT EXISTS cron_jobs_due ON cron_jobs (next_run);
-- The load whose jobs run, per guild, and the one before it (kept as the source of last_run/next_run for late registrations)
CREATE TABLE IF NOT EXISTS cron_loads (
    guild_id TEXT PRIMARY KEY,
    load_id TEXT NOT NULL,
    previous_load_id TEXT,
    activated_at BIGINT NOT NULL
)
