-- Seed 002's end users and connect sessions (issue 13). An end user is one of an app's own users, known by
-- the app's id for them (external_id); their connections have the owner 'end-user:<id>'. A connect session
-- lets one end user connect (or reconnect) a Power BI account for 30 minutes: its token is kept as a SHA-256
-- hash, the first browser that opens it is bound to it (browser_hash), and it ends with an outcome
-- (connected, or a failure the app is told).
CREATE TABLE end_users (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    external_id TEXT NOT NULL,
    email TEXT,
    display_name TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX end_users_app_external ON end_users (app_id, external_id);

CREATE TABLE connect_sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    app_id TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    end_user_id TEXT NOT NULL REFERENCES end_users (id) ON DELETE CASCADE,
    return_url TEXT,
    reconnect_connection_id TEXT,
    browser_hash TEXT,
    outcome TEXT,
    outcome_message TEXT,
    connection_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ended_at BIGINT
);
CREATE UNIQUE INDEX connect_sessions_token ON connect_sessions (token_hash);
CREATE INDEX connect_sessions_expiry ON connect_sessions (expires_at);
