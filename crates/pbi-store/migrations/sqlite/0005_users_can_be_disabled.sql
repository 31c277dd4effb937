-- Users can be disabled.
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
