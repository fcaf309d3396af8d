-- API keys (SQLite). Only the HMAC of the secret is stored, never the secret or the full key.
-- roles and scopes are JSON arrays of strings, stored as text.
-- Times are unix seconds.
CREATE TABLE api_keys (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE CHECK (length(id) = 12),
    secret_hash  BLOB    NOT NULL CHECK (length(secret_hash) = 32),
    name         TEXT    NOT NULL,
    subject      TEXT    NOT NULL,
    roles        TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    rotated_from TEXT REFERENCES api_keys (id)
) STRICT;

CREATE INDEX api_keys_created ON api_keys (created_at DESC, seq DESC);
