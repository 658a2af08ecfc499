-- The latest occurrence of each job (guild and name) that a scheduler claimed to run, whichever script load's row it
-- claimed it through and on whichever runtime node. A run is claimed only if it is later than this, so an occurrence
-- never runs twice even when two rows of one job (an old load's and a new load's) both say it is due. Times are UNIX
-- seconds (UTC), claimed_at is milliseconds
CREATE TABLE IF NOT EXISTS cron_claims (
    guild_id TEXT NOT NULL,
    name TEXT NOT NULL,
    scheduled_at BIGINT NOT NULL,
    claimed_at BIGINT NOT NULL,
    PRIMARY KEY (guild_id, name)
);
-- What ran before this table existed
INSERT INTO cron_claims (guild_id, name, scheduled_at, claimed_at)
SELECT guild_id, name, MAX(last_run), 0 FROM cron_jobs WHERE last_run IS NOT NULL GROUP BY guild_id, name
