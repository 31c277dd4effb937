//! Registrations (the Entra ID applications pbi-bridge signs in through) and their application keys, each key
//! encrypted and bound to its row.

use crate::audit::{self, NewAuditEntry};
use crate::db::{DbRow, on_pool, on_tx};
use crate::{Result, Store, StoreError, StoreTx, json_list, list_of, one_changed, uuid_of};
use secrecy::SecretString;
use uuid::Uuid;

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

pub(crate) fn secret_context(id: impl std::fmt::Display) -> String {
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
