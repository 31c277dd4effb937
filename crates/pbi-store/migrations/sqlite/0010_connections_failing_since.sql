-- Since when a connection has not worked (a refresh failed, or it needs sign-in): NULL while it works.
-- The keep-alive reports connections failing for days to administrators.
ALTER TABLE connections ADD COLUMN failing_since BIGINT;
CREATE INDEX connections_keepalive ON connections (status, last_refresh_at);
