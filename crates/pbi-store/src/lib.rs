//! All of pbi-bridge's SQL: SQLite or PostgreSQL, migrations, and repositories that encrypt secrets at rest.

mod api_tokens;
mod apps;
mod audit;
mod connect_sessions;
mod connections;
mod data_sources;
mod db;
mod end_users;
mod items;
mod jobs;
mod migrate;
mod oauth_states;
mod registrations;
mod rotation;
mod schedules;
mod settings;
mod subscriptions;
mod templates;
mod users;
mod workspaces;

pub use api_tokens::ApiToken;
pub use apps::{App, AppKey, KeyToStore, NewApp};
pub use audit::{AuditCursor, AuditEntry, NewAuditEntry};
pub use connect_sessions::{ConnectSession, NewConnectSession, SessionOutcome};
pub use connections::{Account, Connection, ConnectionCursor, ConnectionStatus, Owner, Tokens};
pub use data_sources::{DataSource, DataSourceKind, NewDataSource};
pub use db::{Pool, StoreTx};
pub use end_users::{EndUser, EndUserDetails};
pub use items::{ItemSource, NewItem, StoredItem};
pub use jobs::JobCount;
pub use oauth_states::PendingState;
pub use registrations::{NewRegistration, Registration, SecretInfo};
pub use rotation::Rotation;
pub use schedules::{NewSchedule, ScheduleRow};
pub use settings::SharedKey;
pub use subscriptions::{Delivery, DeliveryUpdate, NewSubscription, PinTarget, Subscription, SubscriptionState};
pub use templates::TemplateRow;
pub use users::{Session, User};
pub use workspaces::{Pin, Workspace};

/// The sqlx the store is built on, so that a component writing in the store's transactions (`Store::begin`)
/// uses the very same version.
pub use sqlx;

use db::DbRow;
use pbi_crypto::{CryptoError, KeyRing};
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

    /// The typed pool, for a component that needs sqlx's own pool type (a job engine, say). What it writes
    /// there is its own tables' business: the store's tables are written through the store.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A transaction on the store's database (`BEGIN IMMEDIATE` on SQLite), for a component that writes its
    /// rows in the same transaction as something else it does there; `commit` or `rollback` it (dropped, it
    /// rolls back). The store's own methods each use a transaction of their own.
    pub async fn begin(&self) -> Result<StoreTx<'static>> {
        self.pool.begin().await
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

/// A statement meant to change one row changed it, or there is no `what` (`data source <id>`, `item <id>`).
fn changed_one(changed: u64, what: impl std::fmt::Display) -> Result<()> {
    if changed == 0 { Err(StoreError::NotFound(what.to_string())) } else { Ok(()) }
}

fn uuid_of(row: &impl DbRow, column: &str) -> Result<Uuid> {
    let text: String = row.field(column)?;
    parse_uuid(&text, column)
}

/// A nullable UUID column.
fn optional_uuid_of(row: &impl DbRow, column: &str) -> Result<Option<Uuid>> {
    let text: Option<String> = row.field(column)?;
    text.map(|t| parse_uuid(&t, column)).transpose()
}

/// A stored UUID, read back (`column` names it if the row is corrupt).
fn parse_uuid(text: &str, column: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|_| StoreError::Corrupt(format!("{column} '{text}' is not a UUID")))
}

fn list_of(row: &impl DbRow, column: &str) -> Result<Vec<String>> {
    let text: String = row.field(column)?;
    serde_json::from_str(&text).map_err(|_| StoreError::Corrupt(format!("{column} is not a JSON list")))
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}
