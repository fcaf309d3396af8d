-- The fingerprint of the pepper that made secret_hash (16 hex digits, not a secret), so a
-- pepper rotation can tell which keys still need the old pepper. NULL for keys made before
-- this column existed: the gateway records it at their next successful verification.
ALTER TABLE api_keys ADD COLUMN pepper_id TEXT;
