CREATE TABLE deployments (
    guild_id TEXT PRIMARY KEY,
    entry TEXT NOT NULL,
    revision_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE deployment_revisions (
    id TEXT PRIMARY KEY,
    guild_id TEXT NOT NULL,
    entry TEXT NOT NULL,
    status TEXT NOT NULL,
    deployed_at TEXT NOT NULL,
    deploy_source TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_user_id TEXT,
    actor_username TEXT,
    error_message TEXT,
    base_revision_id TEXT,
    change_summary TEXT,
    files TEXT,
    bundle TEXT,
    source_map TEXT
);
CREATE INDEX deployment_revisions_guild ON deployment_revisions (guild_id, deployed_at DESC, id DESC);
CREATE TABLE api_tokens (
    token_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT,
    user_id TEXT,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);
CREATE TABLE guild_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    guild_id TEXT,
    timestamp BIGINT NOT NULL,
    level TEXT NOT NULL,
    target TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX guild_logs_guild ON guild_logs (guild_id, id);
