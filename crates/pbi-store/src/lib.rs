//! All of pbi-bridge's SQL: SQLite or PostgreSQL, migrations, and repositories that encrypt secrets at rest.

mod audit;
mod migrate;
mod settings;
mod workspaces;

pub use audit::{AuditCursor, AuditEntry, NewAuditEntry};
pub use workspaces::{Pin, Workspace};

use pbi_crypto::{CryptoError, KeyRing};
use secrecy::{ExposeSecret, SecretString};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::sync::Arc;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} was not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the database: {0}")]
    Database(String),
    #[error("a stored secret could not be decrypted: {0}")]
    Crypto(#[from] CryptoError),
    #[error("a stored row is not valid: {0}")]
    Corrupt(String),
    #[error("unsupported database URL scheme '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(db.message().to_owned()),
            _ => StoreError::Database(error.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn blob_type(self) -> &'static str {
        match self {
            Backend::Sqlite => "BLOB",
            Backend::Postgres => "BYTEA",
        }
    }
}

/// The database and the keys that protect what it stores. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    keys: Arc<KeyRing>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).field("keys", &self.keys).finish()
    }
}

impl Store {
    /// Opens `url` (`sqlite://PATH`, created if missing, or `postgres://…`) and applies the migrations.
    pub async fn connect(url: &str, keys: KeyRing) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            // Only the scheme: a database URL may carry a password.
            return Err(StoreError::UnsupportedUrl(url.split(':').next().unwrap_or_default().to_owned()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" }),
            _ => url.to_owned(),
        };
        let options =
            AnyPoolOptions::new().max_connections(if backend == Backend::Sqlite { 4 } else { 10 }).after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Writers wait for each other instead of failing; foreign keys are off by default in SQLite.
                        sqlx::query("PRAGMA busy_timeout = 10000").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA foreign_keys = ON").execute(&mut *conn).await?;
                        sqlx::query("PRAGMA journal_mode = WAL").execute(&mut *conn).await?;
                    }
                    Ok(())
                })
            });
        let pool = options.connect(&url).await?;
        migrate::run(&pool, backend).await?;
        Ok(Self { pool, backend, keys: Arc::new(keys) })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The newest schema version this build knows (what `schema_version` reads after `connect`).
    pub fn latest_schema_version() -> i64 {
        migrate::latest()
    }

    pub async fn schema_version(&self) -> Result<i64> {
        let (version,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(version), 0) FROM pbi_schema").fetch_one(&self.pool).await?;
        Ok(version)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// An UPDATE that changed no row addressed a row that does not exist.
fn one_changed(result: sqlx::any::AnyQueryResult, what: impl FnOnce() -> String) -> Result<()> {
    if result.rows_affected() == 0 { Err(StoreError::NotFound(what())) } else { Ok(()) }
}

fn uuid_of(row: &AnyRow, column: &str) -> Result<Uuid> {
    let text: String = row.try_get(column)?;
    Uuid::parse_str(&text).map_err(|_| StoreError::Corrupt(format!("{column} '{text}' is not a UUID")))
}

fn list_of(row: &AnyRow, column: &str) -> Result<Vec<String>> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|_| StoreError::Corrupt(format!("{column} is not a JSON list")))
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

// ---------------------------------------------------------------- registrations
// Booleans are stored as BIGINT 0/1: sqlx's Any driver cannot decode SQLite's BOOLEAN.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRegistration {
    pub name: String,
    pub client_id: String,
    /// A tenant id or domain, or `organizations` / `common` for multi-tenant use.
    pub tenant: String,
    pub cloud: String,
    pub redirect_urls: Vec<String>,
    pub scopes: Vec<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    /// The Power BI API base to call instead of the cloud's (the sandbox, say).
    pub api_base: Option<String>,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub id: Uuid,
    pub details: NewRegistration,
    pub created_at: i64,
    pub updated_at: i64,
    /// Unregistered: kept (with its connections) so that what stopped working can say why.
    pub removed_at: Option<i64>,
}

/// A client secret's metadata; the value is only ever returned by `current_secret`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretInfo {
    pub id: Uuid,
    pub registration_id: Uuid,
    pub expires_at: i64,
    pub created_at: i64,
}

const REGISTRATION_COLUMNS: &str = "id, name, client_id, tenant, cloud, redirect_urls, scopes, authorize_url, token_url, api_base, enabled, created_at, updated_at, removed_at";

fn registration_from(row: &AnyRow) -> Result<Registration> {
    Ok(Registration {
        id: uuid_of(row, "id")?,
        details: NewRegistration {
            name: row.try_get("name")?,
            client_id: row.try_get("client_id")?,
            tenant: row.try_get("tenant")?,
            cloud: row.try_get("cloud")?,
            redirect_urls: list_of(row, "redirect_urls")?,
            scopes: list_of(row, "scopes")?,
            authorize_url: row.try_get("authorize_url")?,
            token_url: row.try_get("token_url")?,
            api_base: row.try_get("api_base")?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
        },
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        removed_at: row.try_get("removed_at")?,
    })
}

/// Binds a registration's details as `$1`..`$10`, in the column order both INSERT and UPDATE use.
fn bind_details<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    details: &'q NewRegistration,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(&details.name)
        .bind(&details.client_id)
        .bind(&details.tenant)
        .bind(&details.cloud)
        .bind(json_list(&details.redirect_urls))
        .bind(json_list(&details.scopes))
        .bind(details.authorize_url.clone())
        .bind(details.token_url.clone())
        .bind(i64::from(details.enabled))
        .bind(details.api_base.clone())
}

fn secret_context(id: impl std::fmt::Display) -> String {
    format!("registration_secret:{id}")
}

impl Store {
    pub async fn add_registration(&self, new: &NewRegistration, now: i64) -> Result<Registration> {
        let id = Uuid::new_v4();
        let insert = "INSERT INTO registrations (name, client_id, tenant, cloud, redirect_urls, scopes, authorize_url, token_url, enabled, api_base, id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)";
        bind_details(sqlx::query(insert), new).bind(id.to_string()).bind(now).execute(&self.pool).await.map_err(
            |e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("a registration named '{}' already exists", new.name)),
                other => other,
            },
        )?;
        Ok(Registration { id, details: new.clone(), created_at: now, updated_at: now, removed_at: None })
    }

    pub async fn registration(&self, id: Uuid) -> Result<Registration> {
        let row = sqlx::query(&format!("SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        registration_from(&row.ok_or_else(|| StoreError::NotFound(format!("registration {id}")))?)
    }

    pub async fn registration_by_name(&self, name: &str) -> Result<Registration> {
        let row = sqlx::query(&format!("SELECT {REGISTRATION_COLUMNS} FROM registrations WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        registration_from(&row.ok_or_else(|| StoreError::NotFound(format!("registration '{name}'")))?)
    }

    pub async fn registrations(&self, include_removed: bool) -> Result<Vec<Registration>> {
        let rows = sqlx::query(&format!("SELECT {REGISTRATION_COLUMNS} FROM registrations ORDER BY name")).fetch_all(&self.pool).await?;
        rows.iter().map(registration_from).filter(|r| include_removed || r.as_ref().map_or(true, |r| r.removed_at.is_none())).collect()
    }

    pub async fn update_registration(&self, id: Uuid, details: &NewRegistration, now: i64) -> Result<Registration> {
        self.save_registration(Some(id), details, None, &[], now).await
    }

    /// Adds (`existing` is `None`) or updates a registration, with maybe a new application key and the audit
    /// entries that record the change, in one transaction: the change and its record land together or not
    /// at all.
    pub async fn save_registration(
        &self,
        existing: Option<Uuid>,
        details: &NewRegistration,
        key: Option<(&SecretString, i64)>,
        audit: &[NewAuditEntry],
        now: i64,
    ) -> Result<Registration> {
        let mut tx = self.pool.begin().await?;
        let id = match existing {
            Some(id) => {
                let update = "UPDATE registrations SET name = $1, client_id = $2, tenant = $3, cloud = $4, redirect_urls = $5, scopes = $6, authorize_url = $7, token_url = $8, enabled = $9, api_base = $10, updated_at = $11 WHERE id = $12";
                let changed =
                    bind_details(sqlx::query(update), details).bind(now).bind(id.to_string()).execute(&mut *tx).await?.rows_affected();
                if changed == 0 {
                    return Err(StoreError::NotFound(format!("registration {id}")));
                }
                id
            }
            None => {
                let id = Uuid::new_v4();
                let insert = "INSERT INTO registrations (name, client_id, tenant, cloud, redirect_urls, scopes, authorize_url, token_url, enabled, api_base, id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)";
                bind_details(sqlx::query(insert), details).bind(id.to_string()).bind(now).execute(&mut *tx).await.map_err(|e| {
                    match StoreError::from(e) {
                        StoreError::Conflict(_) => StoreError::Conflict(format!("a registration named '{}' already exists", details.name)),
                        other => other,
                    }
                })?;
                id
            }
        };
        if let Some((secret, expires_at)) = key {
            self.insert_secret(&mut tx, id, secret, expires_at, now).await?;
        }
        for entry in audit {
            audit::insert(&mut tx, entry, now).await?;
        }
        tx.commit().await?;
        self.registration(id).await
    }

    /// Unregisters: disables and marks the registration; its secrets, connections and everything that
    /// depends on them are kept, so they can say why they stopped working.
    pub async fn remove_registration(&self, id: Uuid, now: i64) -> Result<()> {
        one_changed(
            sqlx::query("UPDATE registrations SET enabled = $1, removed_at = $2, updated_at = $2 WHERE id = $3")
                .bind(0i64)
                .bind(now)
                .bind(id.to_string())
                .execute(&self.pool)
                .await?,
            || format!("registration {id}"),
        )
    }

    /// Adds an application key; the key entered last is the one in use, whatever its expiry.
    pub async fn add_secret(&self, registration_id: Uuid, secret: &SecretString, expires_at: i64, now: i64) -> Result<SecretInfo> {
        let mut tx = self.pool.begin().await?;
        let info = self.insert_secret(&mut tx, registration_id, secret, expires_at, now).await?;
        tx.commit().await?;
        Ok(info)
    }

    async fn insert_secret(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        registration_id: Uuid,
        secret: &SecretString,
        expires_at: i64,
        now: i64,
    ) -> Result<SecretInfo> {
        let id = Uuid::new_v4();
        let envelope = self.keys.encrypt_str(secret, &secret_context(id));
        sqlx::query("INSERT INTO registration_secrets (id, registration_id, secret, expires_at, created_at, entered) VALUES ($1, $2, $3, $4, $5, (SELECT COALESCE(MAX(entered), 0) + 1 FROM registration_secrets WHERE registration_id = $2))")
            .bind(id.to_string())
            .bind(registration_id.to_string())
            .bind(envelope)
            .bind(expires_at)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        Ok(SecretInfo { id, registration_id, expires_at, created_at: now })
    }

    /// Forgets an older application key. The key in use cannot be removed: enter a new one instead.
    pub async fn remove_secret(&self, registration_id: Uuid, secret_id: Uuid) -> Result<()> {
        if self.current_secret_id(registration_id).await? == Some(secret_id) {
            return Err(StoreError::Conflict("the application key in use cannot be removed: enter a new one, then remove this one".into()));
        }
        one_changed(
            sqlx::query("DELETE FROM registration_secrets WHERE id = $1 AND registration_id = $2")
                .bind(secret_id.to_string())
                .bind(registration_id.to_string())
                .execute(&self.pool)
                .await?,
            || format!("application key {secret_id}"),
        )
    }

    async fn current_secret_id(&self, registration_id: Uuid) -> Result<Option<Uuid>> {
        Ok(self.secrets(registration_id).await?.first().map(|s| s.id))
    }

    /// The registration's application keys, the one in use (entered last) first.
    pub async fn secrets(&self, registration_id: Uuid) -> Result<Vec<SecretInfo>> {
        let rows = sqlx::query(
            "SELECT id, registration_id, expires_at, created_at FROM registration_secrets WHERE registration_id = $1 ORDER BY entered DESC",
        )
        .bind(registration_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SecretInfo {
                    id: uuid_of(r, "id")?,
                    registration_id: uuid_of(r, "registration_id")?,
                    expires_at: r.try_get("expires_at")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// The secret to use: the one entered last (expired or not: the caller says what expiry means).
    pub async fn current_secret(&self, registration_id: Uuid) -> Result<Option<(SecretInfo, SecretString)>> {
        let row = sqlx::query("SELECT id, registration_id, secret, expires_at, created_at FROM registration_secrets WHERE registration_id = $1 ORDER BY entered DESC LIMIT 1")
            .bind(registration_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let info = SecretInfo {
            id: uuid_of(&row, "id")?,
            registration_id: uuid_of(&row, "registration_id")?,
            expires_at: row.try_get("expires_at")?,
            created_at: row.try_get("created_at")?,
        };
        let envelope: Vec<u8> = row.try_get("secret")?;
        let secret = self.keys.decrypt_str(&envelope, &secret_context(info.id))?;
        Ok(Some((info, secret)))
    }
}

// ---------------------------------------------------------------- connections

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Active,
    /// The user must sign in again; `status_reason` says why.
    NeedsSignIn,
    /// Disconnected: the tokens are gone.
    Revoked,
}

impl ConnectionStatus {
    fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::NeedsSignIn => "needs_sign_in",
            ConnectionStatus::Revoked => "revoked",
        }
    }

    fn parse(text: &str) -> Result<Self> {
        Ok(match text {
            "active" => ConnectionStatus::Active,
            "needs_sign_in" => ConnectionStatus::NeedsSignIn,
            "revoked" => ConnectionStatus::Revoked,
            other => return Err(StoreError::Corrupt(format!("connection status '{other}'"))),
        })
    }
}

/// Whose Power BI account a connection is, through which registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub owner: String,
    pub registration_id: Uuid,
    pub tenant_id: String,
    pub object_id: String,
    pub upn: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: Uuid,
    pub account: Account,
    pub scopes: Vec<String>,
    pub access_expires_at: Option<i64>,
    pub refresh_expires_at: Option<i64>,
    pub status: ConnectionStatus,
    pub status_reason: Option<String>,
    pub last_refresh_at: Option<i64>,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Tokens as the token endpoint gave them, with absolute expiry times.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: SecretString,
    pub access_expires_at: i64,
    pub refresh: Option<SecretString>,
    pub refresh_expires_at: Option<i64>,
}

const CONNECTION_COLUMNS: &str = "id, owner, registration_id, tenant_id, object_id, upn, scopes, access_expires_at, refresh_expires_at, status, status_reason, last_refresh_at, last_error, created_at, updated_at";

fn connection_from(row: &AnyRow) -> Result<Connection> {
    Ok(Connection {
        id: uuid_of(row, "id")?,
        account: Account {
            owner: row.try_get("owner")?,
            registration_id: uuid_of(row, "registration_id")?,
            tenant_id: row.try_get("tenant_id")?,
            object_id: row.try_get("object_id")?,
            upn: row.try_get("upn")?,
        },
        scopes: list_of(row, "scopes")?,
        access_expires_at: row.try_get("access_expires_at")?,
        refresh_expires_at: row.try_get("refresh_expires_at")?,
        status: ConnectionStatus::parse(&row.try_get::<String, _>("status")?)?,
        status_reason: row.try_get("status_reason")?,
        last_refresh_at: row.try_get("last_refresh_at")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn token_context(id: impl std::fmt::Display, which: &str) -> String {
    format!("connection:{id}:{which}")
}

fn state_context(state_hash: impl std::fmt::Display) -> String {
    format!("oauth_state:{state_hash}")
}

impl Store {
    /// Whether the Power BI account of `account` (its registration, tenant and object id) is connected, and not
    /// disconnected, for an owner other than `account.owner`.
    pub async fn account_connected_by_others(&self, account: &Account) -> Result<bool> {
        let row = sqlx::query(
            "SELECT 1 FROM connections WHERE registration_id = $1 AND tenant_id = $2 AND object_id = $3 AND owner <> $4 AND status <> $5",
        )
        .bind(account.registration_id.to_string())
        .bind(&account.tenant_id)
        .bind(&account.object_id)
        .bind(&account.owner)
        .bind(ConnectionStatus::Revoked.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Records a completed sign-in: a new connection, or fresh tokens on the same account's connection.
    pub async fn save_connection(&self, account: &Account, scopes: &[String], tokens: &Tokens, now: i64) -> Result<Connection> {
        let existing =
            sqlx::query("SELECT id FROM connections WHERE owner = $1 AND registration_id = $2 AND tenant_id = $3 AND object_id = $4")
                .bind(&account.owner)
                .bind(account.registration_id.to_string())
                .bind(&account.tenant_id)
                .bind(&account.object_id)
                .fetch_optional(&self.pool)
                .await?;
        let id = match existing {
            Some(row) => uuid_of(&row, "id")?,
            None => {
                let id = Uuid::new_v4();
                sqlx::query("INSERT INTO connections (id, owner, registration_id, tenant_id, object_id, upn, scopes, status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)")
                    .bind(id.to_string())
                    .bind(&account.owner)
                    .bind(account.registration_id.to_string())
                    .bind(&account.tenant_id)
                    .bind(&account.object_id)
                    .bind(&account.upn)
                    .bind(json_list(scopes))
                    .bind(ConnectionStatus::Active.as_str())
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                id
            }
        };
        sqlx::query("UPDATE connections SET upn = $1, scopes = $2 WHERE id = $3")
            .bind(&account.upn)
            .bind(json_list(scopes))
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        self.store_tokens(id, tokens, now).await?;
        self.connection(id).await
    }

    /// Stores refreshed tokens (the new refresh token and access token in one write) and marks the
    /// connection active. Callers hand out the access token only after this returns.
    pub async fn store_tokens(&self, id: Uuid, tokens: &Tokens, now: i64) -> Result<()> {
        let access = self.keys.encrypt_str(&tokens.access, &token_context(id, "access_token"));
        let refresh = tokens.refresh.as_ref().map(|r| self.keys.encrypt_str(r, &token_context(id, "refresh_token")));
        one_changed(sqlx::query(
            "UPDATE connections SET access_token = $1, access_expires_at = $2, refresh_token = COALESCE($3, refresh_token), refresh_expires_at = COALESCE($4, refresh_expires_at), status = $5, status_reason = NULL, last_refresh_at = $6, last_error = NULL, updated_at = $6 WHERE id = $7",
        )
        .bind(access)
        .bind(tokens.access_expires_at)
        .bind(refresh)
        .bind(tokens.refresh_expires_at)
        .bind(ConnectionStatus::Active.as_str())
        .bind(now)
        .bind(id.to_string())
        .execute(&self.pool).await?, || format!("connection {id}"))
    }

    pub async fn connection(&self, id: Uuid) -> Result<Connection> {
        let row = sqlx::query(&format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        connection_from(&row.ok_or_else(|| StoreError::NotFound(format!("connection {id}")))?)
    }

    /// One user's connections (what the UI and API list for them).
    pub async fn connections_of(&self, owner: &str) -> Result<Vec<Connection>> {
        let rows = sqlx::query(&format!("SELECT {CONNECTION_COLUMNS} FROM connections WHERE owner = $1 ORDER BY created_at"))
            .bind(owner)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(connection_from).collect()
    }

    pub async fn all_connections(&self) -> Result<Vec<Connection>> {
        let rows = sqlx::query(&format!("SELECT {CONNECTION_COLUMNS} FROM connections ORDER BY created_at")).fetch_all(&self.pool).await?;
        rows.iter().map(connection_from).collect()
    }

    /// The decrypted tokens of a connection (access token, refresh token), if it has them.
    pub async fn connection_tokens(&self, id: Uuid) -> Result<(Option<SecretString>, Option<SecretString>)> {
        let row = sqlx::query("SELECT access_token, refresh_token FROM connections WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        let row = row.ok_or_else(|| StoreError::NotFound(format!("connection {id}")))?;
        let decrypt = |column: &str, which: &str| -> Result<Option<SecretString>> {
            let envelope: Option<Vec<u8>> = row.try_get(column)?;
            envelope.map(|e| self.keys.decrypt_str(&e, &token_context(id, which)).map_err(StoreError::from)).transpose()
        };
        Ok((decrypt("access_token", "access_token")?, decrypt("refresh_token", "refresh_token")?))
    }

    /// The user must sign in again (refresh token expired, revoked, consent withdrawn): says why.
    pub async fn mark_needs_sign_in(&self, id: Uuid, reason: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE connections SET status = $1, status_reason = $2, access_token = NULL, access_expires_at = NULL, last_error = $2, updated_at = $3 WHERE id = $4")
            .bind(ConnectionStatus::NeedsSignIn.as_str())
            .bind(reason)
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A transient failure: recorded, the status unchanged.
    pub async fn record_refresh_error(&self, id: Uuid, error: &str, now: i64) -> Result<()> {
        sqlx::query("UPDATE connections SET last_error = $1, updated_at = $2 WHERE id = $3")
            .bind(error)
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Disconnects: the tokens are deleted, the record stays as revoked.
    pub async fn disconnect(&self, id: Uuid, now: i64) -> Result<()> {
        one_changed(sqlx::query("UPDATE connections SET access_token = NULL, refresh_token = NULL, access_expires_at = NULL, refresh_expires_at = NULL, status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
            .bind(ConnectionStatus::Revoked.as_str())
            .bind("disconnected by the user")
            .bind(now)
            .bind(id.to_string())
            .execute(&self.pool).await?, || format!("connection {id}"))
    }

    /// Takes the right to refresh `id` until `until`, unless another holder's lease is still running.
    /// This is what keeps one refresh in flight across several pbi-bridge instances.
    pub async fn try_lease_refresh(&self, id: Uuid, holder: &str, until: i64, now: i64) -> Result<bool> {
        let changed = sqlx::query("UPDATE connections SET refresh_lease_until = $1, refresh_lease_owner = $2 WHERE id = $3 AND (refresh_lease_until <= $4 OR refresh_lease_owner = $2)")
            .bind(until)
            .bind(holder)
            .bind(id.to_string())
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(changed == 1)
    }

    pub async fn release_lease(&self, id: Uuid, holder: &str) -> Result<()> {
        sqlx::query(
            "UPDATE connections SET refresh_lease_until = 0, refresh_lease_owner = NULL WHERE id = $1 AND refresh_lease_owner = $2",
        )
        .bind(id.to_string())
        .bind(holder)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------- OAuth states

/// A pending authorization: single-use, short-lived, bound to the browser session that started it.
#[derive(Debug, Clone)]
pub struct PendingState {
    /// The SHA-256 of the `state` sent to Entra, never the value itself.
    pub state_hash: String,
    pub browser_session: String,
    pub owner: String,
    pub registration_id: Uuid,
    pub pkce_verifier: SecretString,
    pub return_to: String,
    pub created_at: i64,
    pub expires_at: i64,
}

impl Store {
    pub async fn put_state(&self, state: &PendingState) -> Result<()> {
        let verifier = self.keys.encrypt_str(&state.pkce_verifier, &state_context(&state.state_hash));
        sqlx::query("INSERT INTO oauth_states (state_hash, browser_session, owner, registration_id, pkce_verifier, return_to, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&state.state_hash)
            .bind(&state.browser_session)
            .bind(&state.owner)
            .bind(state.registration_id.to_string())
            .bind(verifier)
            .bind(&state.return_to)
            .bind(state.created_at)
            .bind(state.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes and returns the state if it exists and was started in `browser_session`: a second take of the
    /// same state finds nothing, and a take from another browser session leaves it for its own (so opening
    /// someone else's callback URL cannot burn their sign-in; `state_exists` tells the two apart). Whether
    /// it expired is the caller's to judge from the fields.
    pub async fn take_state(&self, state_hash: &str, browser_session: &str) -> Result<Option<PendingState>> {
        // One statement that deletes and returns: of two takes at once, exactly one gets the row. (A read then a
        // delete in one transaction would also fail under SQLite when another write lands in between.)
        let row = sqlx::query(
            "DELETE FROM oauth_states WHERE state_hash = $1 AND browser_session = $2 RETURNING state_hash, browser_session, owner, registration_id, pkce_verifier, return_to, created_at, expires_at",
        )
        .bind(state_hash)
        .bind(browser_session)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let envelope: Vec<u8> = row.try_get("pkce_verifier")?;
        Ok(Some(PendingState {
            state_hash: row.try_get("state_hash")?,
            browser_session: row.try_get("browser_session")?,
            owner: row.try_get("owner")?,
            registration_id: uuid_of(&row, "registration_id")?,
            pkce_verifier: self.keys.decrypt_str(&envelope, &state_context(state_hash))?,
            return_to: row.try_get("return_to")?,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Whether a state is pending (in any browser session).
    pub async fn state_exists(&self, state_hash: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 FROM oauth_states WHERE state_hash = $1").bind(state_hash).fetch_optional(&self.pool).await?.is_some())
    }

    /// Forgets states that expired before `now`.
    pub async fn purge_states(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1").bind(now).execute(&self.pool).await?.rows_affected())
    }
}

// ---------------------------------------------------------------- users and sessions

/// A pbi-bridge account (not a Power BI one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub is_admin: bool,
    pub created_at: i64,
    /// When an administrator disabled the account: it can no longer sign in, and its sessions and API tokens stop working.
    pub disabled_at: Option<i64>,
}

/// A signed-in browser. The cookie's token is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_hash: String,
    pub user: User,
    pub csrf_token: String,
    pub expires_at: i64,
}

fn user_from(row: &AnyRow) -> Result<User> {
    Ok(User {
        id: uuid_of(row, "id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        is_admin: row.try_get::<i64, _>("is_admin")? != 0,
        created_at: row.try_get("created_at")?,
        disabled_at: row.try_get("disabled_at")?,
    })
}

const USER_COLUMNS: &str = "id, username, display_name, is_admin, created_at, disabled_at";

/// What a change to a user's row ends with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ends {
    Nothing,
    Sessions,
    /// Disabling: the sessions, and the API tokens revoked at `at`.
    SessionsAndTokens {
        at: i64,
    },
}

impl Store {
    /// Adds a user; `password_hash` is a PHC string (argon2), never a password.
    /// Adds a user; `password_hash` is a PHC string (argon2), never a password. User names are unique whatever
    /// their case (`Alice` and `alice` are one account).
    pub async fn add_user(&self, username: &str, display_name: &str, password_hash: &str, is_admin: bool, now: i64) -> Result<User> {
        let id = Uuid::new_v4();
        sqlx::query("INSERT INTO users (id, username, display_name, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id.to_string())
            .bind(username)
            .bind(display_name)
            .bind(password_hash)
            .bind(i64::from(is_admin))
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("a user named '{username}' already exists (user names are the same whatever their case)"))
                }
                other => other,
            })?;
        Ok(User { id, username: username.to_owned(), display_name: display_name.to_owned(), is_admin, created_at: now, disabled_at: None })
    }

    /// A user and their password hash, by user name in any case (for signing in).
    pub async fn user_credentials(&self, username: &str) -> Result<Option<(User, String)>> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS}, password_hash FROM users WHERE lower(username) = lower($1)"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((user_from(&r)?, r.try_get("password_hash")?))).transpose()
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY username")).fetch_all(&self.pool).await?;
        rows.iter().map(user_from).collect()
    }

    pub async fn user(&self, id: Uuid) -> Result<User> {
        let row =
            sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1")).bind(id.to_string()).fetch_optional(&self.pool).await?;
        user_from(&row.ok_or_else(|| StoreError::NotFound(format!("user {id}")))?)
    }

    /// Disables (`Some(now)`) or enables (`None`) an account. Disabling ends its sessions and revokes its API
    /// tokens for good: enabling the account again does not bring them back.
    pub async fn set_user_disabled(&self, id: Uuid, disabled_at: Option<i64>) -> Result<()> {
        let update = sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2").bind(disabled_at).bind(id.to_string());
        let ends = match disabled_at {
            Some(at) => Ends::SessionsAndTokens { at },
            None => Ends::Nothing,
        };
        self.change_user(id, update, ends).await
    }

    /// Sets a new password hash (PHC string) and ends the account's sessions, so the old password's sign-ins
    /// end too. API tokens are credentials of their own and keep working (revoke them, or disable the user).
    pub async fn set_password_hash(&self, id: Uuid, password_hash: &str) -> Result<()> {
        let update = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(password_hash).bind(id.to_string());
        self.change_user(id, update, Ends::Sessions).await
    }

    /// Runs `update` on one user's row and ends what `ends` says, in one transaction.
    async fn change_user<'q>(
        &self,
        id: Uuid,
        update: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
        ends: Ends,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if update.execute(&mut *tx).await?.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        if ends != Ends::Nothing {
            sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id.to_string()).execute(&mut *tx).await?;
        }
        if let Ends::SessionsAndTokens { at } = ends {
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                .bind(at)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn put_session(&self, token_hash: &str, user: Uuid, csrf_token: &str, now: i64, expires_at: i64) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(token_hash)
            .bind(user.to_string())
            .bind(csrf_token)
            .bind(now)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The live session with that token hash, and its user.
    pub async fn session(&self, token_hash: &str, now: i64) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT s.token_hash, s.csrf_token, s.expires_at, u.id, u.username, u.display_name, u.is_admin, u.created_at, u.disabled_at FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(Session {
                token_hash: r.try_get("token_hash")?,
                user: user_from(&r)?,
                csrf_token: r.try_get("csrf_token")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn purge_sessions(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= $1").bind(now).execute(&self.pool).await?.rows_affected())
    }
}

// ---------------------------------------------------------------- API tokens

/// A script's API token. The token itself is shown once when it is made; only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// The token's first characters, so its owner can tell tokens apart (too few to guess the rest).
    pub hint: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

const API_TOKEN_COLUMNS: &str = "id, user_id, name, hint, created_at, expires_at, last_used_at";

fn api_token_from(row: &AnyRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: uuid_of(row, "id")?,
        user_id: uuid_of(row, "user_id")?,
        name: row.try_get("name")?,
        hint: row.try_get("hint")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
    })
}

/// How often a token's "last used" time is written: reads of a busy script do not each cost a write.
const LAST_USED_GRANULARITY_SECONDS: i64 = 60;

impl Store {
    pub async fn add_api_token(
        &self,
        user: Uuid,
        name: &str,
        token_hash: &str,
        hint: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<ApiToken> {
        let token = ApiToken {
            id: Uuid::new_v4(),
            user_id: user,
            name: name.to_owned(),
            hint: hint.to_owned(),
            created_at: now,
            expires_at,
            last_used_at: None,
        };
        sqlx::query(
            "INSERT INTO api_tokens (id, user_id, name, token_hash, hint, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.id.to_string())
        .bind(user.to_string())
        .bind(name)
        .bind(token_hash)
        .bind(hint)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(token)
    }

    /// A user's tokens that are not revoked (expired ones included, so their owner sees them lapse), newest first.
    pub async fn api_tokens_of(&self, user: Uuid) -> Result<Vec<ApiToken>> {
        let rows = sqlx::query(&format!(
            "SELECT {API_TOKEN_COLUMNS} FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id"
        ))
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(api_token_from).collect()
    }

    /// Revokes one of `user`'s tokens; another user's token, or one already revoked, is "not found".
    pub async fn revoke_api_token(&self, id: Uuid, user: Uuid, now: i64) -> Result<()> {
        one_changed(
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL")
                .bind(now)
                .bind(id.to_string())
                .bind(user.to_string())
                .execute(&self.pool)
                .await?,
            || format!("API token {id}"),
        )
    }

    /// The live (not revoked, not expired) token with that hash and its user; notes when it was used.
    pub async fn use_api_token(&self, token_hash: &str, now: i64) -> Result<Option<(ApiToken, User)>> {
        let row = sqlx::query(
            "SELECT t.id AS token_id, t.user_id, t.name, t.hint, t.created_at AS token_created_at, t.expires_at, t.last_used_at, \
             u.id, u.username, u.display_name, u.is_admin, u.created_at, u.disabled_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2) AND u.disabled_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let token = ApiToken {
            id: uuid_of(&row, "token_id")?,
            user_id: uuid_of(&row, "user_id")?,
            name: row.try_get("name")?,
            hint: row.try_get("hint")?,
            created_at: row.try_get("token_created_at")?,
            expires_at: row.try_get("expires_at")?,
            last_used_at: row.try_get("last_used_at")?,
        };
        if token.last_used_at.is_none_or(|t| now - t >= LAST_USED_GRANULARITY_SECONDS) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(token.id.to_string())
                .execute(&self.pool)
                .await?;
        }
        Ok(Some((token, user_from(&row)?)))
    }
}

// ---------------------------------------------------------------- key rotation

/// What `rotate_keys` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rotation {
    pub examined: u64,
    pub rewritten: u64,
}

/// An encrypted column, and the context each row's value in it is bound to.
struct EncryptedColumn {
    table: &'static str,
    key: &'static str,
    column: &'static str,
    context: fn(&str) -> String,
}

const ENCRYPTED: &[EncryptedColumn] = &[
    EncryptedColumn { table: "registration_secrets", key: "id", column: "secret", context: |id| secret_context(id) },
    EncryptedColumn { table: "connections", key: "id", column: "access_token", context: |id| token_context(id, "access_token") },
    EncryptedColumn { table: "connections", key: "id", column: "refresh_token", context: |id| token_context(id, "refresh_token") },
    EncryptedColumn { table: "oauth_states", key: "state_hash", column: "pkce_verifier", context: |hash| state_context(hash) },
];

impl Store {
    /// Re-encrypts every value written under an older key with the newest one. Each row is swapped only if
    /// it still holds the value read (so a concurrent token refresh is never overwritten); a run stopped
    /// half-way leaves every row readable, and the next run finishes.
    pub async fn rotate_keys(&self) -> Result<Rotation> {
        let mut report = Rotation::default();
        for EncryptedColumn { table, key, column, context } in ENCRYPTED {
            let rows =
                sqlx::query(&format!("SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL")).fetch_all(&self.pool).await?;
            for row in rows {
                report.examined += 1;
                let id: String = row.try_get(*key)?;
                let old: Vec<u8> = row.try_get(*column)?;
                if !self.keys.needs_rotation(&old)? {
                    continue;
                }
                let plaintext = self.keys.decrypt(&old, &context(&id))?;
                let new = self.keys.encrypt(plaintext.expose_secret(), &context(&id));
                let swapped = sqlx::query(&format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2 AND {column} = $3"))
                    .bind(new)
                    .bind(&id)
                    .bind(old)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                report.rewritten += swapped;
            }
        }
        Ok(report)
    }
}
