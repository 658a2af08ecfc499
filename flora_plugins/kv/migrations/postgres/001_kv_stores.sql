CREATE TABLE IF NOT EXISTS kv_stores (
    id TEXT PRIMARY KEY,
    guild_id TEXT NOT NULL,
    store_name TEXT COLLATE "C" NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (guild_id, store_name)
);
