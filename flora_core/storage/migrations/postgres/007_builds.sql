CREATE TABLE builds (
    build_id TEXT PRIMARY KEY,
    guild_id TEXT NOT NULL,
    entry TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    bundle TEXT,
    source_map TEXT,
    error TEXT
);
CREATE INDEX builds_guild ON builds (guild_id, created_at);
CREATE INDEX builds_created ON builds (created_at);
CREATE TABLE build_logs (
    id BIGSERIAL PRIMARY KEY,
    build_id TEXT NOT NULL,
    line TEXT NOT NULL
);
CREATE INDEX build_logs_build ON build_logs (build_id, id);
