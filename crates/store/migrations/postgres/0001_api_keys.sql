-- API keys (PostgreSQL). Only the HMAC of the secret is stored, never the secret or the full key.
-- roles and scopes are JSON arrays of strings, stored as text (the same as on SQLite).
-- Times are unix seconds.
CREATE TABLE api_keys (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           TEXT   NOT NULL UNIQUE CHECK (char_length(id) = 12),
    secret_hash  BYTEA  NOT NULL CHECK (octet_length(secret_hash) = 32),
    name         TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    roles        TEXT   NOT NULL,
    scopes       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT,
    rotated_from TEXT REFERENCES api_keys (id)
);

CREATE INDEX api_keys_created ON api_keys (created_at DESC, seq DESC);
