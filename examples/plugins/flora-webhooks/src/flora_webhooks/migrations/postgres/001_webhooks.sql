-- One row per webhook a guild created (only a SHA-256 of its secret is kept)
CREATE TABLE webhook_endpoints (
    guild_id TEXT NOT NULL,
    name TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (guild_id, name)
);
-- Received calls, until the supervisor has handed them to the guild's script (the outbox)
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    guild_id TEXT NOT NULL,
    name TEXT NOT NULL,
    body TEXT NOT NULL,
    headers TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (delivered_at, id)
