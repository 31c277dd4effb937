-- Seed 002's apps (issue 13): an application that connects its own end users' Power BI accounts through one
-- registration, and the secret keys its backend authenticates with (kept as SHA-256 hashes; a rotated key
-- works on until its expires_at, then is refused).
CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    name_folded TEXT NOT NULL,
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    allowed_origins TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX apps_name ON apps (name_folded);

CREATE TABLE app_keys (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL,
    hint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);
CREATE UNIQUE INDEX app_keys_hash ON app_keys (key_hash);
CREATE INDEX app_keys_app ON app_keys (app_id);
