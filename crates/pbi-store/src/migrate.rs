//! Schema migrations: numbered steps applied once each, in order, inside a transaction.

use crate::db::{on_pool, on_tx};
use crate::{Backend, Pool, StoreError, StoreTx};
use sqlx::AssertSqlSafe;

/// `{blob}` becomes the backend's binary type.
const STEPS: &[(i64, &str, &str)] = &[
    (
        1,
        "registrations, secrets, connections, oauth states",
        r"
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
    secret {blob} NOT NULL,
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
    access_token {blob},
    access_expires_at BIGINT,
    refresh_token {blob},
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
    pkce_verifier {blob} NOT NULL,
    return_to TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
",
    ),
    (
        2,
        "pbi-bridge's own users and their sessions",
        r"
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    is_admin BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (username);
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
",
    ),
    (
        3,
        "workspaces with pinned Power BI tiles; a registration's API base",
        r"
ALTER TABLE registrations ADD COLUMN api_base TEXT;
CREATE TABLE workspaces (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    company_filter TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX workspaces_owner ON workspaces (owner);
CREATE TABLE pins (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    connection_id TEXT NOT NULL REFERENCES connections (id),
    group_id TEXT,
    dashboard_id TEXT NOT NULL,
    tile_id TEXT NOT NULL,
    title TEXT NOT NULL,
    row_span BIGINT NOT NULL,
    col_span BIGINT NOT NULL,
    embed_url TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX pins_workspace ON pins (workspace_id);
",
    ),
    (
        4,
        "API tokens for scripts, stored as hashes",
        r"
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    hint TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    last_used_at BIGINT,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (token_hash);
CREATE INDEX api_tokens_user ON api_tokens (user_id);
",
    ),
    (
        5,
        "users can be disabled",
        r"
ALTER TABLE users ADD COLUMN disabled_at BIGINT;
",
    ),
    (
        6,
        "application keys in the order entered, user names unique whatever their case, the audit log, settings",
        r"
ALTER TABLE registration_secrets ADD COLUMN entered BIGINT NOT NULL DEFAULT 0;
UPDATE registration_secrets SET entered = (SELECT COUNT(*) FROM registration_secrets o WHERE o.registration_id = registration_secrets.registration_id AND (o.expires_at < registration_secrets.expires_at OR (o.expires_at = registration_secrets.expires_at AND o.id <= registration_secrets.id)));
UPDATE users SET username = username || '-' || substr(id, 1, 8) WHERE EXISTS (SELECT 1 FROM users o WHERE lower(o.username) = lower(users.username) AND (o.created_at < users.created_at OR (o.created_at = users.created_at AND o.id < users.id)));
CREATE UNIQUE INDEX users_username_folded ON users (lower(username));
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    old_value TEXT,
    new_value TEXT
);
CREATE INDEX audit_log_seq ON audit_log (seq, id);
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
",
    ),
    (
        7,
        "workspace names unique per owner whatever their case, a tile pinned once per workspace",
        r"
CREATE TEMPORARY TABLE workspace_repeats AS SELECT id, (SELECT COUNT(*) FROM workspaces o WHERE o.owner = w.owner AND lower(o.name) = lower(w.name) AND (o.created_at < w.created_at OR (o.created_at = w.created_at AND o.id < w.id))) AS earlier FROM workspaces w;
UPDATE workspaces SET name = name || ' (' || CAST((SELECT r.earlier + 1 FROM workspace_repeats r WHERE r.id = workspaces.id) AS TEXT) || ')' WHERE id IN (SELECT r.id FROM workspace_repeats r WHERE r.earlier > 0);
DROP TABLE workspace_repeats;
UPDATE workspaces SET name = name || ' ' || substr(id, 1, 8) WHERE EXISTS (SELECT 1 FROM workspaces o WHERE o.owner = workspaces.owner AND lower(o.name) = lower(workspaces.name) AND (o.created_at < workspaces.created_at OR (o.created_at = workspaces.created_at AND o.id < workspaces.id)));
CREATE UNIQUE INDEX workspaces_owner_name ON workspaces (owner, lower(name));
DELETE FROM pins WHERE EXISTS (SELECT 1 FROM pins o WHERE o.workspace_id = pins.workspace_id AND o.dashboard_id = pins.dashboard_id AND o.tile_id = pins.tile_id AND (o.position < pins.position OR (o.position = pins.position AND o.id < pins.id)));
CREATE UNIQUE INDEX pins_workspace_tile ON pins (workspace_id, dashboard_id, tile_id);
",
    ),
    (
        8,
        "the dataset behind each pinned tile (the company filter lists its Company[ID] values)",
        r"
ALTER TABLE pins ADD COLUMN dataset_id TEXT;
",
    ),
];

pub async fn run(pool: &Pool) -> Result<u32, StoreError> {
    let blob = match pool.backend() {
        Backend::Sqlite => "BLOB",
        Backend::Postgres => "BYTEA",
    };
    let mut tx = pool.begin().await?;
    if let StoreTx::Postgres(tx) = &mut tx {
        // Several instances may start at once: one migrates, the others wait, then find nothing to do.
        sqlx::query("SELECT pg_advisory_xact_lock(7301984)").execute(&mut **tx).await?;
    }
    let count = on_tx!(&mut tx, |conn| {
        sqlx::query("CREATE TABLE IF NOT EXISTS pbi_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)")
            .execute(&mut *conn)
            .await?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM pbi_schema").fetch_all(&mut *conn).await?;
        let mut count = 0;
        for (version, name, sql) in STEPS {
            if applied.contains(version) {
                continue;
            }
            let sql = sql.replace("{blob}", blob);
            for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                // Built at run time, but only from the constant steps above with `{blob}` replaced by a type name.
                sqlx::query(AssertSqlSafe(statement.to_owned())).execute(&mut *conn).await?;
            }
            sqlx::query("INSERT INTO pbi_schema (version, name, applied_at) VALUES ($1, $2, 0)")
                .bind(version)
                .bind(*name)
                .execute(&mut *conn)
                .await?;
            count += 1;
            tracing::info!(version, name, "applied migration");
        }
        count
    });
    tx.commit().await?;
    Ok(count)
}

/// The newest schema version applied to the database.
pub async fn applied(pool: &Pool) -> Result<i64, StoreError> {
    Ok(on_pool!(pool, |pool| sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM pbi_schema").fetch_one(pool).await?))
}

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    STEPS.last().map_or(0, |(v, _, _)| *v)
}
