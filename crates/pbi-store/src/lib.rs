//! All of pbi-bridge's SQL: SQLite or PostgreSQL, migrations, and repositories that encrypt secrets at rest.

mod audit;
mod db;
mod migrate;
mod settings;
mod workspaces;

pub use audit::{AuditCursor, AuditEntry, NewAuditEntry};
pub use db::{Pool, StoreTx};
pub use workspaces::{Pin, Workspace};

use db::{DbRow, on_pool, on_tx};
use pbi_crypto::{CryptoError, KeyRing};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
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

/// The database and the keys that protect what it stores. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    keys: Arc<KeyRing>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend()).field("keys", &self.keys).finish()
    }
}

impl Store {
    /// Opens `url` (`sqlite://PATH`, created if missing, or `postgres://…`) and applies the migrations.
    pub async fn connect(url: &str, keys: KeyRing) -> Result<Self> {
        let pool = if url.starts_with("sqlite:") {
            let mut options = SqliteConnectOptions::from_str(url)?;
            if !url.contains("mode=") {
                // A `mode=` in the URL (read-only, say) is the caller's; without one the file is made if missing.
                options = options.create_if_missing(true);
            }
            // Writers wait for each other instead of failing; foreign keys are off by default in SQLite.
            let options = options.busy_timeout(Duration::from_secs(10)).foreign_keys(true).journal_mode(SqliteJournalMode::Wal);
            Pool::Sqlite(SqlitePoolOptions::new().max_connections(4).connect_with(options).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(PgPoolOptions::new().max_connections(10).connect(url).await?)
        } else {
            // Only the scheme: a database URL may carry a password.
            return Err(StoreError::UnsupportedUrl(url.split(':').next().unwrap_or_default().to_owned()));
        };
        migrate::run(&pool).await?;
        Ok(Self { pool, keys: Arc::new(keys) })
    }

    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The newest schema version this build knows (what `schema_version` reads after `connect`).
    pub fn latest_schema_version() -> i64 {
        migrate::latest()
    }

    /// The newest schema version applied to the database.
    pub async fn schema_version(&self) -> Result<i64> {
        migrate::applied(&self.pool).await
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// An UPDATE or DELETE that changed no row addressed a row that does not exist.
fn one_changed(rows_affected: u64, what: impl FnOnce() -> String) -> Result<()> {
    if rows_affected == 0 { Err(StoreError::NotFound(what())) } else { Ok(()) }
}

fn uuid_of(row: &impl DbRow, column: &str) -> Result<Uuid> {
    let text: String = row.field(column)?;
    Uuid::parse_str(&text).map_err(|_| StoreError::Corrupt(format!("{column} '{text}' is not a UUID")))
}

fn list_of(row: &impl DbRow, column: &str) -> Result<Vec<String>> {
    let text: String = row.field(column)?;
    serde_json::from_str(&text).map_err(|_| StoreError::Corrupt(format!("{column} is not a JSON list")))
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

// ---------------------------------------------------------------- registrations
// Booleans are stored as BIGINT 0/1 (what the schema has always had; the Any driver could not decode SQLite's
// BOOLEAN).

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

/// A macro rather than a `const`, so that `concat!` keeps every statement that lists them static SQL.
macro_rules! registration_columns {
    () => {
        "id, name, client_id, tenant, cloud, redirect_urls, scopes, authorize_url, token_url, api_base, enabled, created_at, updated_at, removed_at"
    };
}

const INSERT_REGISTRATION: &str = "INSERT INTO registrations (name, client_id, tenant, cloud, redirect_urls, scopes, authorize_url, token_url, enabled, api_base, id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)";

fn registration_from(row: &impl DbRow) -> Result<Registration> {
    Ok(Registration {
        id: uuid_of(row, "id")?,
        details: NewRegistration {
            name: row.field("name")?,
            client_id: row.field("client_id")?,
            tenant: row.field("tenant")?,
            cloud: row.field("cloud")?,
            redirect_urls: list_of(row, "redirect_urls")?,
            scopes: list_of(row, "scopes")?,
            authorize_url: row.field("authorize_url")?,
            token_url: row.field("token_url")?,
            api_base: row.field("api_base")?,
            enabled: row.field::<i64>("enabled")? != 0,
        },
        created_at: row.field("created_at")?,
        updated_at: row.field("updated_at")?,
        removed_at: row.field("removed_at")?,
    })
}

fn secret_info_from(row: &impl DbRow) -> Result<SecretInfo> {
    Ok(SecretInfo {
        id: uuid_of(row, "id")?,
        registration_id: uuid_of(row, "registration_id")?,
        expires_at: row.field("expires_at")?,
        created_at: row.field("created_at")?,
    })
}

/// Binds a registration's details as `$1`..`$10`, in the column order both INSERT and UPDATE use.
macro_rules! bind_details {
    ($query:expr, $details:expr) => {{
        let details: &NewRegistration = $details;
        $query
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
    }};
}

/// A unique violation on a registration's name, in the words of the one who chose it.
fn registration_name_taken(error: sqlx::Error, name: &str) -> StoreError {
    match StoreError::from(error) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a registration named '{name}' already exists")),
        other => other,
    }
}

fn secret_context(id: impl std::fmt::Display) -> String {
    format!("registration_secret:{id}")
}

impl Store {
    pub async fn add_registration(&self, new: &NewRegistration, now: i64) -> Result<Registration> {
        let id = Uuid::new_v4();
        on_pool!(&self.pool, |pool| {
            bind_details!(sqlx::query(INSERT_REGISTRATION), new)
                .bind(id.to_string())
                .bind(now)
                .execute(pool)
                .await
                .map_err(|e| registration_name_taken(e, &new.name))?;
        });
        Ok(Registration { id, details: new.clone(), created_at: now, updated_at: now, removed_at: None })
    }

    pub async fn registration(&self, id: Uuid) -> Result<Registration> {
        let found =
            on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", registration_columns!(), " FROM registrations WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
                .map(|row| registration_from(&row))
                .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("registration {id}")))
    }

    pub async fn registration_by_name(&self, name: &str) -> Result<Registration> {
        let found =
            on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", registration_columns!(), " FROM registrations WHERE name = $1"))
                .bind(name)
                .fetch_optional(pool)
                .await?
                .map(|row| registration_from(&row))
                .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("registration '{name}'")))
    }

    pub async fn registrations(&self, include_removed: bool) -> Result<Vec<Registration>> {
        let all: Vec<Registration> =
            on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", registration_columns!(), " FROM registrations ORDER BY name"))
                .fetch_all(pool)
                .await?
                .iter()
                .map(registration_from)
                .collect::<Result<_>>()?);
        Ok(all.into_iter().filter(|r| include_removed || r.removed_at.is_none()).collect())
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
                let changed = on_tx!(&mut tx, |conn| bind_details!(sqlx::query(update), details)
                    .bind(now)
                    .bind(id.to_string())
                    .execute(&mut *conn)
                    .await?
                    .rows_affected());
                if changed == 0 {
                    return Err(StoreError::NotFound(format!("registration {id}")));
                }
                id
            }
            None => {
                let id = Uuid::new_v4();
                on_tx!(&mut tx, |conn| {
                    bind_details!(sqlx::query(INSERT_REGISTRATION), details)
                        .bind(id.to_string())
                        .bind(now)
                        .execute(&mut *conn)
                        .await
                        .map_err(|e| registration_name_taken(e, &details.name))?;
                });
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
        let changed = on_pool!(&self.pool, |pool| sqlx::query(
            "UPDATE registrations SET enabled = $1, removed_at = $2, updated_at = $2 WHERE id = $3"
        )
        .bind(0i64)
        .bind(now)
        .bind(id.to_string())
        .execute(pool)
        .await?
        .rows_affected());
        one_changed(changed, || format!("registration {id}"))
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
        tx: &mut StoreTx<'_>,
        registration_id: Uuid,
        secret: &SecretString,
        expires_at: i64,
        now: i64,
    ) -> Result<SecretInfo> {
        let id = Uuid::new_v4();
        let envelope = self.keys.encrypt_str(secret, &secret_context(id));
        on_tx!(tx, |conn| {
            sqlx::query("INSERT INTO registration_secrets (id, registration_id, secret, expires_at, created_at, entered) VALUES ($1, $2, $3, $4, $5, (SELECT COALESCE(MAX(entered), 0) + 1 FROM registration_secrets WHERE registration_id = $2))")
                .bind(id.to_string())
                .bind(registration_id.to_string())
                .bind(envelope)
                .bind(expires_at)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        });
        Ok(SecretInfo { id, registration_id, expires_at, created_at: now })
    }

    /// Forgets an older application key. The key in use cannot be removed: enter a new one instead.
    pub async fn remove_secret(&self, registration_id: Uuid, secret_id: Uuid) -> Result<()> {
        if self.current_secret_id(registration_id).await? == Some(secret_id) {
            return Err(StoreError::Conflict("the application key in use cannot be removed: enter a new one, then remove this one".into()));
        }
        let changed = on_pool!(&self.pool, |pool| sqlx::query("DELETE FROM registration_secrets WHERE id = $1 AND registration_id = $2")
            .bind(secret_id.to_string())
            .bind(registration_id.to_string())
            .execute(pool)
            .await?
            .rows_affected());
        one_changed(changed, || format!("application key {secret_id}"))
    }

    async fn current_secret_id(&self, registration_id: Uuid) -> Result<Option<Uuid>> {
        Ok(self.secrets(registration_id).await?.first().map(|s| s.id))
    }

    /// The registration's application keys, the one in use (entered last) first.
    pub async fn secrets(&self, registration_id: Uuid) -> Result<Vec<SecretInfo>> {
        on_pool!(&self.pool, |pool| sqlx::query(
            "SELECT id, registration_id, expires_at, created_at FROM registration_secrets WHERE registration_id = $1 ORDER BY entered DESC",
        )
        .bind(registration_id.to_string())
        .fetch_all(pool)
        .await?
        .iter()
        .map(secret_info_from)
        .collect())
    }

    /// The secret to use: the one entered last (expired or not: the caller says what expiry means).
    pub async fn current_secret(&self, registration_id: Uuid) -> Result<Option<(SecretInfo, SecretString)>> {
        let found: Option<(SecretInfo, Vec<u8>)> = on_pool!(&self.pool, |pool| {
            sqlx::query("SELECT id, registration_id, secret, expires_at, created_at FROM registration_secrets WHERE registration_id = $1 ORDER BY entered DESC LIMIT 1")
            .bind(registration_id.to_string())
            .fetch_optional(pool)
            .await?
            .map(|row| Ok::<_, StoreError>((secret_info_from(&row)?, row.field("secret")?)))
            .transpose()?
        });
        let Some((info, envelope)) = found else { return Ok(None) };
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

/// A macro rather than a `const`, so that `concat!` keeps every statement that lists them static SQL.
macro_rules! connection_columns {
    () => {
        "id, owner, registration_id, tenant_id, object_id, upn, scopes, access_expires_at, refresh_expires_at, status, status_reason, last_refresh_at, last_error, created_at, updated_at"
    };
}

fn connection_from(row: &impl DbRow) -> Result<Connection> {
    Ok(Connection {
        id: uuid_of(row, "id")?,
        account: Account {
            owner: row.field("owner")?,
            registration_id: uuid_of(row, "registration_id")?,
            tenant_id: row.field("tenant_id")?,
            object_id: row.field("object_id")?,
            upn: row.field("upn")?,
        },
        scopes: list_of(row, "scopes")?,
        access_expires_at: row.field("access_expires_at")?,
        refresh_expires_at: row.field("refresh_expires_at")?,
        status: ConnectionStatus::parse(&row.field::<String>("status")?)?,
        status_reason: row.field("status_reason")?,
        last_refresh_at: row.field("last_refresh_at")?,
        last_error: row.field("last_error")?,
        created_at: row.field("created_at")?,
        updated_at: row.field("updated_at")?,
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
        Ok(on_pool!(&self.pool, |pool| sqlx::query(
            "SELECT 1 FROM connections WHERE registration_id = $1 AND tenant_id = $2 AND object_id = $3 AND owner <> $4 AND status <> $5",
        )
        .bind(account.registration_id.to_string())
        .bind(&account.tenant_id)
        .bind(&account.object_id)
        .bind(&account.owner)
        .bind(ConnectionStatus::Revoked.as_str())
        .fetch_optional(pool)
        .await?
        .is_some()))
    }

    /// Records a completed sign-in: a new connection, or fresh tokens on the same account's connection.
    pub async fn save_connection(&self, account: &Account, scopes: &[String], tokens: &Tokens, now: i64) -> Result<Connection> {
        let existing = on_pool!(&self.pool, |pool| sqlx::query(
            "SELECT id FROM connections WHERE owner = $1 AND registration_id = $2 AND tenant_id = $3 AND object_id = $4"
        )
        .bind(&account.owner)
        .bind(account.registration_id.to_string())
        .bind(&account.tenant_id)
        .bind(&account.object_id)
        .fetch_optional(pool)
        .await?
        .map(|row| uuid_of(&row, "id"))
        .transpose()?);
        let id = match existing {
            Some(id) => id,
            None => {
                let id = Uuid::new_v4();
                on_pool!(&self.pool, |pool| {
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
                                    .execute(pool)
                                    .await?;
                });
                id
            }
        };
        on_pool!(&self.pool, |pool| {
            sqlx::query("UPDATE connections SET upn = $1, scopes = $2 WHERE id = $3")
                .bind(&account.upn)
                .bind(json_list(scopes))
                .bind(id.to_string())
                .execute(pool)
                .await?;
        });
        self.store_tokens(id, tokens, now).await?;
        self.connection(id).await
    }

    /// Stores refreshed tokens (the new refresh token and access token in one write) and marks the
    /// connection active. Callers hand out the access token only after this returns.
    pub async fn store_tokens(&self, id: Uuid, tokens: &Tokens, now: i64) -> Result<()> {
        let access = self.keys.encrypt_str(&tokens.access, &token_context(id, "access_token"));
        let refresh = tokens.refresh.as_ref().map(|r| self.keys.encrypt_str(r, &token_context(id, "refresh_token")));
        let changed = on_pool!(&self.pool, |pool| {
            sqlx::query(
            "UPDATE connections SET access_token = $1, access_expires_at = $2, refresh_token = COALESCE($3, refresh_token), refresh_expires_at = COALESCE($4, refresh_expires_at), status = $5, status_reason = NULL, last_refresh_at = $6, last_error = NULL, updated_at = $6 WHERE id = $7",
        )
        .bind(access)
        .bind(tokens.access_expires_at)
        .bind(refresh)
        .bind(tokens.refresh_expires_at)
        .bind(ConnectionStatus::Active.as_str())
        .bind(now)
        .bind(id.to_string())
        .execute(pool)
        .await?
        .rows_affected()
        });
        one_changed(changed, || format!("connection {id}"))
    }

    pub async fn connection(&self, id: Uuid) -> Result<Connection> {
        let found = on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", connection_columns!(), " FROM connections WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?
            .map(|row| connection_from(&row))
            .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("connection {id}")))
    }

    /// One user's connections (what the UI and API list for them).
    pub async fn connections_of(&self, owner: &str) -> Result<Vec<Connection>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE owner = $1 ORDER BY created_at"
        ))
        .bind(owner)
        .fetch_all(pool)
        .await?
        .iter()
        .map(connection_from)
        .collect())
    }

    pub async fn all_connections(&self) -> Result<Vec<Connection>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", connection_columns!(), " FROM connections ORDER BY created_at"))
            .fetch_all(pool)
            .await?
            .iter()
            .map(connection_from)
            .collect())
    }

    /// The decrypted tokens of a connection (access token, refresh token), if it has them.
    pub async fn connection_tokens(&self, id: Uuid) -> Result<(Option<SecretString>, Option<SecretString>)> {
        // The encrypted access and refresh tokens.
        type Envelopes = (Option<Vec<u8>>, Option<Vec<u8>>);
        let found: Option<Envelopes> =
            on_pool!(&self.pool, |pool| sqlx::query_as("SELECT access_token, refresh_token FROM connections WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?);
        let (access, refresh) = found.ok_or_else(|| StoreError::NotFound(format!("connection {id}")))?;
        let decrypt = |envelope: Option<Vec<u8>>, which: &str| -> Result<Option<SecretString>> {
            envelope.map(|e| self.keys.decrypt_str(&e, &token_context(id, which)).map_err(StoreError::from)).transpose()
        };
        Ok((decrypt(access, "access_token")?, decrypt(refresh, "refresh_token")?))
    }

    /// The user must sign in again (refresh token expired, revoked, consent withdrawn): says why.
    pub async fn mark_needs_sign_in(&self, id: Uuid, reason: &str, now: i64) -> Result<()> {
        on_pool!(&self.pool, |pool| {
            sqlx::query("UPDATE connections SET status = $1, status_reason = $2, access_token = NULL, access_expires_at = NULL, last_error = $2, updated_at = $3 WHERE id = $4")
                .bind(ConnectionStatus::NeedsSignIn.as_str())
                .bind(reason)
                .bind(now)
                .bind(id.to_string())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A transient failure: recorded, the status unchanged.
    pub async fn record_refresh_error(&self, id: Uuid, error: &str, now: i64) -> Result<()> {
        on_pool!(&self.pool, |pool| {
            sqlx::query("UPDATE connections SET last_error = $1, updated_at = $2 WHERE id = $3")
                .bind(error)
                .bind(now)
                .bind(id.to_string())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Disconnects: the tokens are deleted, the record stays as revoked.
    pub async fn disconnect(&self, id: Uuid, now: i64) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| {
            sqlx::query("UPDATE connections SET access_token = NULL, refresh_token = NULL, access_expires_at = NULL, refresh_expires_at = NULL, status = $1, status_reason = $2, updated_at = $3 WHERE id = $4")
            .bind(ConnectionStatus::Revoked.as_str())
            .bind("disconnected by the user")
            .bind(now)
            .bind(id.to_string())
            .execute(pool)
            .await?
            .rows_affected()
        });
        one_changed(changed, || format!("connection {id}"))
    }

    /// Takes the right to refresh `id` until `until`, unless another holder's lease is still running.
    /// This is what keeps one refresh in flight across several pbi-bridge instances.
    pub async fn try_lease_refresh(&self, id: Uuid, holder: &str, until: i64, now: i64) -> Result<bool> {
        let changed = on_pool!(&self.pool, |pool| {
            sqlx::query("UPDATE connections SET refresh_lease_until = $1, refresh_lease_owner = $2 WHERE id = $3 AND (refresh_lease_until <= $4 OR refresh_lease_owner = $2)")
            .bind(until)
            .bind(holder)
            .bind(id.to_string())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(changed == 1)
    }

    pub async fn release_lease(&self, id: Uuid, holder: &str) -> Result<()> {
        on_pool!(&self.pool, |pool| {
            sqlx::query(
                "UPDATE connections SET refresh_lease_until = 0, refresh_lease_owner = NULL WHERE id = $1 AND refresh_lease_owner = $2",
            )
            .bind(id.to_string())
            .bind(holder)
            .execute(pool)
            .await?;
        });
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
        on_pool!(&self.pool, |pool| {
            sqlx::query("INSERT INTO oauth_states (state_hash, browser_session, owner, registration_id, pkce_verifier, return_to, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&state.state_hash)
                .bind(&state.browser_session)
                .bind(&state.owner)
                .bind(state.registration_id.to_string())
                .bind(verifier)
                .bind(&state.return_to)
                .bind(state.created_at)
                .bind(state.expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Removes and returns the state if it exists and was started in `browser_session`: a second take of the
    /// same state finds nothing, and a take from another browser session leaves it for its own (so opening
    /// someone else's callback URL cannot burn their sign-in; `state_exists` tells the two apart). Whether
    /// it expired is the caller's to judge from the fields.
    pub async fn take_state(&self, state_hash: &str, browser_session: &str) -> Result<Option<PendingState>> {
        // One statement that deletes and returns: of two takes at once, exactly one gets the row. (A read then a
        // delete in one transaction would also fail under SQLite when another write lands in between.)
        on_pool!(&self.pool, |pool| {
            sqlx::query(
            "DELETE FROM oauth_states WHERE state_hash = $1 AND browser_session = $2 RETURNING state_hash, browser_session, owner, registration_id, pkce_verifier, return_to, created_at, expires_at",
        )
        .bind(state_hash)
        .bind(browser_session)
        .fetch_optional(pool)
        .await?
        .map(|row| {
            let envelope: Vec<u8> = row.field("pkce_verifier")?;
            Ok(PendingState {
                state_hash: row.field("state_hash")?,
                browser_session: row.field("browser_session")?,
                owner: row.field("owner")?,
                registration_id: uuid_of(&row, "registration_id")?,
                pkce_verifier: self.keys.decrypt_str(&envelope, &state_context(state_hash))?,
                return_to: row.field("return_to")?,
                created_at: row.field("created_at")?,
                expires_at: row.field("expires_at")?,
            })
        })
        .transpose()
        })
    }

    /// Whether a state is pending (in any browser session).
    pub async fn state_exists(&self, state_hash: &str) -> Result<bool> {
        Ok(on_pool!(&self.pool, |pool| sqlx::query("SELECT 1 FROM oauth_states WHERE state_hash = $1")
            .bind(state_hash)
            .fetch_optional(pool)
            .await?
            .is_some()))
    }

    /// Forgets states that expired before `now`.
    pub async fn purge_states(&self, now: i64) -> Result<u64> {
        Ok(on_pool!(&self.pool, |pool| sqlx::query("DELETE FROM oauth_states WHERE expires_at < $1")
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()))
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

fn user_from(row: &impl DbRow) -> Result<User> {
    Ok(User {
        id: uuid_of(row, "id")?,
        username: row.field("username")?,
        display_name: row.field("display_name")?,
        is_admin: row.field::<i64>("is_admin")? != 0,
        created_at: row.field("created_at")?,
        disabled_at: row.field("disabled_at")?,
    })
}

/// A macro rather than a `const`, so that `concat!` keeps every statement that lists them static SQL.
macro_rules! user_columns {
    () => {
        "id, username, display_name, is_admin, created_at, disabled_at"
    };
}

/// The change `change_user` makes to a user's row.
#[derive(Debug, Clone, Copy)]
enum UserUpdate<'a> {
    Disabled(Option<i64>),
    PasswordHash(&'a str),
}

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
    /// Adds a user; `password_hash` is a PHC string (argon2), never a password. User names are unique whatever
    /// their case (`Alice` and `alice` are one account).
    pub async fn add_user(&self, username: &str, display_name: &str, password_hash: &str, is_admin: bool, now: i64) -> Result<User> {
        let id = Uuid::new_v4();
        on_pool!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO users (id, username, display_name, password_hash, is_admin, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id.to_string())
            .bind(username)
            .bind(display_name)
            .bind(password_hash)
            .bind(i64::from(is_admin))
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("a user named '{username}' already exists (user names are the same whatever their case)"))
                }
                other => other,
            })?;
        });
        Ok(User { id, username: username.to_owned(), display_name: display_name.to_owned(), is_admin, created_at: now, disabled_at: None })
    }

    /// A user and their password hash, by user name in any case (for signing in).
    pub async fn user_credentials(&self, username: &str) -> Result<Option<(User, String)>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", password_hash FROM users WHERE lower(username) = lower($1)"
        ))
        .bind(username)
        .fetch_optional(pool)
        .await?
        .map(|r| Ok((user_from(&r)?, r.field("password_hash")?)))
        .transpose())
    }

    pub async fn users(&self) -> Result<Vec<User>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", user_columns!(), " FROM users ORDER BY username"))
            .fetch_all(pool)
            .await?
            .iter()
            .map(user_from)
            .collect())
    }

    pub async fn user(&self, id: Uuid) -> Result<User> {
        let found = on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?
            .map(|row| user_from(&row))
            .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("user {id}")))
    }

    /// Disables (`Some(now)`) or enables (`None`) an account. Disabling ends its sessions and revokes its API
    /// tokens for good: enabling the account again does not bring them back.
    pub async fn set_user_disabled(&self, id: Uuid, disabled_at: Option<i64>) -> Result<()> {
        let ends = match disabled_at {
            Some(at) => Ends::SessionsAndTokens { at },
            None => Ends::Nothing,
        };
        self.change_user(id, UserUpdate::Disabled(disabled_at), ends).await
    }

    /// Sets a new password hash (PHC string) and ends the account's sessions, so the old password's sign-ins
    /// end too. API tokens are credentials of their own and keep working (revoke them, or disable the user).
    pub async fn set_password_hash(&self, id: Uuid, password_hash: &str) -> Result<()> {
        self.change_user(id, UserUpdate::PasswordHash(password_hash), Ends::Sessions).await
    }

    /// Makes `update` to one user's row and ends what `ends` says, in one transaction.
    async fn change_user(&self, id: Uuid, update: UserUpdate<'_>, ends: Ends) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let changed = on_tx!(&mut tx, |conn| match update {
            UserUpdate::Disabled(at) => sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2").bind(at),
            UserUpdate::PasswordHash(hash) => sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash),
        }
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?
        .rows_affected());
        if changed == 0 {
            return Err(StoreError::NotFound(format!("user {id}")));
        }
        if ends != Ends::Nothing {
            on_tx!(&mut tx, |conn| {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id.to_string()).execute(&mut *conn).await?;
            });
        }
        if let Ends::SessionsAndTokens { at } = ends {
            on_tx!(&mut tx, |conn| {
                sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                    .bind(at)
                    .bind(id.to_string())
                    .execute(&mut *conn)
                    .await?;
            });
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn put_session(&self, token_hash: &str, user: Uuid, csrf_token: &str, now: i64, expires_at: i64) -> Result<()> {
        on_pool!(&self.pool, |pool| {
            sqlx::query("INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(token_hash)
                .bind(user.to_string())
                .bind(csrf_token)
                .bind(now)
                .bind(expires_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The live session with that token hash, and its user.
    pub async fn session(&self, token_hash: &str, now: i64) -> Result<Option<Session>> {
        on_pool!(&self.pool, |pool| {
            sqlx::query(
            "SELECT s.token_hash, s.csrf_token, s.expires_at, u.id, u.username, u.display_name, u.is_admin, u.created_at, u.disabled_at FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(pool)
        .await?
        .map(|r| {
            Ok(Session {
                token_hash: r.field("token_hash")?,
                user: user_from(&r)?,
                csrf_token: r.field("csrf_token")?,
                expires_at: r.field("expires_at")?,
            })
        })
        .transpose()
        })
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        on_pool!(&self.pool, |pool| {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(pool).await?;
        });
        Ok(())
    }

    pub async fn purge_sessions(&self, now: i64) -> Result<u64> {
        Ok(on_pool!(&self.pool, |pool| sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()))
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

/// A macro rather than a `const`, so that `concat!` keeps every statement that lists them static SQL.
macro_rules! api_token_columns {
    () => {
        "id, user_id, name, hint, created_at, expires_at, last_used_at"
    };
}

fn api_token_from(row: &impl DbRow) -> Result<ApiToken> {
    Ok(ApiToken {
        id: uuid_of(row, "id")?,
        user_id: uuid_of(row, "user_id")?,
        name: row.field("name")?,
        hint: row.field("hint")?,
        created_at: row.field("created_at")?,
        expires_at: row.field("expires_at")?,
        last_used_at: row.field("last_used_at")?,
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
        on_pool!(&self.pool, |pool| {
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
            .execute(pool)
            .await?;
        });
        Ok(token)
    }

    /// A user's tokens that are not revoked (expired ones included, so their owner sees them lapse), newest first.
    pub async fn api_tokens_of(&self, user: Uuid) -> Result<Vec<ApiToken>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            api_token_columns!(),
            " FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC, id"
        ))
        .bind(user.to_string())
        .fetch_all(pool)
        .await?
        .iter()
        .map(api_token_from)
        .collect())
    }

    /// Revokes one of `user`'s tokens; another user's token, or one already revoked, is "not found".
    pub async fn revoke_api_token(&self, id: Uuid, user: Uuid, now: i64) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL"
        )
        .bind(now)
        .bind(id.to_string())
        .bind(user.to_string())
        .execute(pool)
        .await?
        .rows_affected());
        one_changed(changed, || format!("API token {id}"))
    }

    /// The live (not revoked, not expired) token with that hash and its user; notes when it was used.
    pub async fn use_api_token(&self, token_hash: &str, now: i64) -> Result<Option<(ApiToken, User)>> {
        let found = on_pool!(&self.pool, |pool| sqlx::query(
            "SELECT t.id AS token_id, t.user_id, t.name, t.hint, t.created_at AS token_created_at, t.expires_at, t.last_used_at, \
             u.id, u.username, u.display_name, u.is_admin, u.created_at, u.disabled_at \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2) AND u.disabled_at IS NULL",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(pool)
        .await?
        .map(|row| {
            let token = ApiToken {
                id: uuid_of(&row, "token_id")?,
                user_id: uuid_of(&row, "user_id")?,
                name: row.field("name")?,
                hint: row.field("hint")?,
                created_at: row.field("token_created_at")?,
                expires_at: row.field("expires_at")?,
                last_used_at: row.field("last_used_at")?,
            };
            Ok::<_, StoreError>((token, user_from(&row)?))
        })
        .transpose()?);
        let Some((token, user)) = found else { return Ok(None) };
        if token.last_used_at.is_none_or(|t| now - t >= LAST_USED_GRANULARITY_SECONDS) {
            on_pool!(&self.pool, |pool| {
                sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(token.id.to_string())
                    .execute(pool)
                    .await?;
            });
        }
        Ok(Some((token, user)))
    }
}

// ---------------------------------------------------------------- key rotation

/// What `rotate_keys` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rotation {
    pub examined: u64,
    pub rewritten: u64,
}

/// An encrypted column: the statements that read and swap its values, and the context each row's value in it
/// is bound to.
struct EncryptedColumn {
    /// `SELECT key, column FROM table WHERE column IS NOT NULL`.
    select: &'static str,
    /// `UPDATE table SET column = $1 WHERE key = $2 AND column = $3`.
    swap: &'static str,
    context: fn(&str) -> String,
}

/// Builds an `EncryptedColumn`'s statements with `concat!`, so they stay static SQL.
macro_rules! encrypted_column {
    ($table:literal, $key:literal, $column:literal, $context:expr) => {
        EncryptedColumn {
            select: concat!("SELECT ", $key, ", ", $column, " FROM ", $table, " WHERE ", $column, " IS NOT NULL"),
            swap: concat!("UPDATE ", $table, " SET ", $column, " = $1 WHERE ", $key, " = $2 AND ", $column, " = $3"),
            context: $context,
        }
    };
}

const ENCRYPTED: &[EncryptedColumn] = &[
    encrypted_column!("registration_secrets", "id", "secret", |id| secret_context(id)),
    encrypted_column!("connections", "id", "access_token", |id| token_context(id, "access_token")),
    encrypted_column!("connections", "id", "refresh_token", |id| token_context(id, "refresh_token")),
    encrypted_column!("oauth_states", "state_hash", "pkce_verifier", |hash| state_context(hash)),
];

impl Store {
    /// Re-encrypts every value written under an older key with the newest one. Each row is swapped only if
    /// it still holds the value read (so a concurrent token refresh is never overwritten); a run stopped
    /// half-way leaves every row readable, and the next run finishes.
    pub async fn rotate_keys(&self) -> Result<Rotation> {
        let mut report = Rotation::default();
        for EncryptedColumn { select, swap, context } in ENCRYPTED {
            let rows: Vec<(String, Vec<u8>)> = on_pool!(&self.pool, |pool| sqlx::query_as(*select).fetch_all(pool).await?);
            for (id, old) in rows {
                report.examined += 1;
                if !self.keys.needs_rotation(&old)? {
                    continue;
                }
                let plaintext = self.keys.decrypt(&old, &context(&id))?;
                let new = self.keys.encrypt(plaintext.expose_secret(), &context(&id));
                report.rewritten +=
                    on_pool!(&self.pool, |pool| sqlx::query(*swap).bind(new).bind(&id).bind(old).execute(pool).await?.rows_affected());
            }
        }
        Ok(report)
    }
}
