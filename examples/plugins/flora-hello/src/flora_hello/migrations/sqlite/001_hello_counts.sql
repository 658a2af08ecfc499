-- How many greetings op_hello gave each guild (flora hello counts)
CREATE TABLE hello_counts (
    guild_id TEXT PRIMARY KEY,
    greetings BIGINT NOT NULL,
    last_name TEXT NOT NULL
)
