-- Guild secrets: values encrypted with SECRETS_MASTER_KEY (AEAD, random nonce, guild id + name as associated data), base64 text
CREATE TABLE IF NOT EXISTS guild_secrets (
    guild_id TEXT NOT NULL,
    name TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    allowed_hosts TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (guild_id, name)
)
