-- Auto content keys shared by every origin node (drm-origin [keystore] backend = "postgres").
-- A label names what a key protects (asset:{id}/{class} or group:{name}/{class}); its first
-- writer wins (INSERT ... ON CONFLICT DO NOTHING) and a row is never updated afterwards, so
-- nodes that raced to create it all read the same KID and key.
CREATE TABLE IF NOT EXISTS drm_content_keys (
    label      text PRIMARY KEY,
    kid        bytea NOT NULL UNIQUE CHECK (length(kid) = 16),
    key        bytea NOT NULL CHECK (length(key) = 16),
    origin     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
