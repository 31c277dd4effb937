//! Seed 001's data sources: the databases an item's query runs on and the HTTP endpoints an item calls, each
//! with an optional credential (a password, or a header's value) encrypted and bound to its row. A source
//! without a stored credential is kept: its deliveries fail saying so.

use crate::db::{DbRow, on_pool};
use crate::{Result, Store, StoreError, changed_one, uuid_of};
use secrecy::SecretString;
use uuid::Uuid;

/// What a data source is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSourceKind {
    Postgres,
    Sqlite,
    Http,
}

impl DataSourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DataSourceKind::Postgres => "postgres",
            DataSourceKind::Sqlite => "sqlite",
            DataSourceKind::Http => "http",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [DataSourceKind::Postgres, DataSourceKind::Sqlite, DataSourceKind::Http].into_iter().find(|k| k.as_str() == text)
    }
}

/// A data source as submitted (the credential goes separately, never in a struct that may be printed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDataSource {
    pub name: String,
    pub kind: DataSourceKind,
    /// A database URL without its password, a SQLite file's path, or an endpoint's base URL.
    pub location: String,
    /// The database user (PostgreSQL).
    pub username: Option<String>,
    /// The header the credential is sent in (HTTP), such as `Authorization`.
    pub credential_header: Option<String>,
}

/// A stored data source. Whether it has a credential is said; the credential itself is read only by
/// `data_source_credential`, for the delivery that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSource {
    pub id: Uuid,
    pub details: NewDataSource,
    pub has_credential: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

pub(crate) fn credential_context(id: impl std::fmt::Display) -> String {
    format!("data_source_credential:{id}")
}

fn folded(name: &str) -> String {
    name.trim().to_lowercase()
}

macro_rules! data_source_columns {
    () => {
        "id, name, kind, location, username, credential_header, CAST(CASE WHEN credential IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_credential, created_at, updated_at"
    };
}

fn data_source_from(row: &impl DbRow) -> Result<DataSource> {
    let kind: String = row.field("kind")?;
    Ok(DataSource {
        id: uuid_of(row, "id")?,
        details: NewDataSource {
            name: row.field("name")?,
            kind: DataSourceKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("data source kind '{kind}'")))?,
            location: row.field("location")?,
            username: row.field("username")?,
            credential_header: row.field("credential_header")?,
        },
        has_credential: row.field::<i64>("has_credential")? == 1,
        created_at: row.field("created_at")?,
        updated_at: row.field("updated_at")?,
    })
}

fn name_taken(error: sqlx::Error, name: &str) -> StoreError {
    match StoreError::from(error) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a data source named '{name}' already exists")),
        other => other,
    }
}

impl Store {
    pub async fn add_data_source(&self, new: &NewDataSource, credential: Option<&SecretString>, now: i64) -> Result<DataSource> {
        let id = Uuid::new_v4();
        let sealed = credential.map(|c| self.keys.encrypt_str(c, &credential_context(id)));
        on_pool!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO data_sources (id, name, name_folded, kind, location, username, credential_header, credential, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
            )
            .bind(id.to_string())
            .bind(new.name.trim())
            .bind(folded(&new.name))
            .bind(new.kind.as_str())
            .bind(&new.location)
            .bind(&new.username)
            .bind(&new.credential_header)
            .bind(&sealed)
            .bind(now)
            .execute(pool)
            .await
            .map_err(|e| name_taken(e, &new.name))?;
        });
        self.data_source(id).await
    }

    pub async fn data_source(&self, id: Uuid) -> Result<DataSource> {
        let found =
            on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", data_source_columns!(), " FROM data_sources WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
                .map(|row| data_source_from(&row))
                .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("data source {id}")))
    }

    pub async fn data_sources(&self) -> Result<Vec<DataSource>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", data_source_columns!(), " FROM data_sources ORDER BY name_folded"))
            .fetch_all(pool)
            .await?
            .iter()
            .map(data_source_from)
            .collect())
    }

    /// Replaces a data source's details (its credential stays).
    pub async fn update_data_source(&self, id: Uuid, new: &NewDataSource, now: i64) -> Result<DataSource> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query(
            "UPDATE data_sources SET name = $1, name_folded = $2, kind = $3, location = $4, username = $5, credential_header = $6, \
             updated_at = $7 WHERE id = $8"
        )
        .bind(new.name.trim())
        .bind(folded(&new.name))
        .bind(new.kind.as_str())
        .bind(&new.location)
        .bind(&new.username)
        .bind(&new.credential_header)
        .bind(now)
        .bind(id.to_string())
        .execute(pool)
        .await
        .map_err(|e| name_taken(e, &new.name))?
        .rows_affected());
        changed_one(changed, format_args!("data source {id}"))?;
        self.data_source(id).await
    }

    /// Replaces the credential (`None`: the source has none stored any more).
    pub async fn set_data_source_credential(&self, id: Uuid, credential: Option<&SecretString>, now: i64) -> Result<()> {
        let sealed = credential.map(|c| self.keys.encrypt_str(c, &credential_context(id)));
        let changed = on_pool!(&self.pool, |pool| sqlx::query("UPDATE data_sources SET credential = $1, updated_at = $2 WHERE id = $3")
            .bind(&sealed)
            .bind(now)
            .bind(id.to_string())
            .execute(pool)
            .await?
            .rows_affected());
        changed_one(changed, format_args!("data source {id}"))
    }

    /// The credential in clear, for the delivery that connects with it; `None` when none is stored.
    pub async fn data_source_credential(&self, id: Uuid) -> Result<Option<SecretString>> {
        let sealed: Option<Option<Vec<u8>>> =
            on_pool!(&self.pool, |pool| sqlx::query_scalar("SELECT credential FROM data_sources WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?);
        match sealed {
            None => Err(StoreError::NotFound(format!("data source {id}"))),
            Some(None) => Ok(None),
            Some(Some(envelope)) => Ok(Some(self.keys.decrypt_str(&envelope, &credential_context(id))?)),
        }
    }

    /// Deletes a data source no item uses (one that is used is refused: `Conflict`).
    pub async fn delete_data_source(&self, id: Uuid) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query("DELETE FROM data_sources WHERE id = $1")
            .bind(id.to_string())
            .execute(pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                    StoreError::Conflict("items use this data source: change or delete them first".into())
                }
                _ => StoreError::from(e),
            })?
            .rows_affected());
        changed_one(changed, format_args!("data source {id}"))
    }
}
