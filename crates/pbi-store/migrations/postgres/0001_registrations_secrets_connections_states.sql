-- Registrations, secrets, connections, oauth states.
CREATE TABLE registrations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    client_id TEXT NOT NULL,
    tenant TEXT NOT NULL,
    cloud TEXT NOT NULL,
    redirect_urls TEXT NOT NULL,
    scopes TEXT NOT NULL,
    authorize_url TEXT,
    token_url TEXT,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    removed_at BIGINT
);
CREATE UNIQUE INDEX registrations_name ON registrations (name);
CREATE TABLE registration_secrets (
    id TEXT PRIMARY KEY,
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    secret BYTEA NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX registration_secrets_registration ON registration_secrets (registration_id);
CREATE TABLE connections (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    registration_id TEXT NOT NULL REFERENCES registrations (id),
    tenant_id TEXT NOT NULL,
    object_id TEXT NOT NULL,
    upn TEXT NOT NULL,
    scopes TEXT NOT NULL,
    access_token BYTEA,
    access_expires_at BIGINT,
    refresh_token BYTEA,
    refresh_expires_at BIGINT,
    status TEXT NOT NULL,
    status_reason TEXT,
    last_refresh_at BIGINT,
    last_error TEXT,
    refresh_lease_until BIGINT NOT NULL DEFAULT 0,
    refresh_lease_owner TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX connections_owner ON connections (owner);
CREATE UNIQUE INDEX connections_account ON connections (owner, registration_id, tenant_id, object_id);
CREATE TABLE oauth_states (
    state_hash TEXT PRIMARY KEY,
    browser_session TEXT NOT NULL,
    owner TEXT NOT NULL,
    registration_id TEXT NOT NULL,
    pkce_verifier BYTEA NOT NULL,
    return_to TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
