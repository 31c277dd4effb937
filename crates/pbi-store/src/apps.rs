//! Seed 002's apps and their secret keys (only hashes and hints are kept). A rotation and the key it makes,
//! like the app and its first key, land in one transaction with their audit entry.

use crate::audit::{self, NewAuditEntry};
use crate::db::{DbRow, on_pool, on_tx};
use crate::{Result, Store, StoreError, json_list, list_of, uuid_of};
use uuid::Uuid;

/// An app as it is created or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApp {
    pub name: String,
    pub registration_id: Uuid,
    /// `scheme://host[:port]` each.
    pub allowed_origins: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub id: Uuid,
    pub details: NewApp,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One of an app's secret keys, without the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppKey {
    pub id: Uuid,
    pub app_id: Uuid,
    /// The key's first characters, so that its owner can tell keys apart.
    pub hint: String,
    pub created_at: i64,
    /// When a rotation made it stop working (`None`: the key in use).
    pub expires_at: Option<i64>,
}

/// A key to store: its hash and hint.
#[derive(Debug, Clone, Copy)]
pub struct KeyToStore<'a> {
    pub hash: &'a str,
    pub hint: &'a str,
}

macro_rules! app_columns {
    () => {
        "id, name, registration_id, allowed_origins, created_at, updated_at"
    };
}

fn app_from(row: &impl DbRow) -> Result<App> {
    Ok(App {
        id: uuid_of(row, "id")?,
        details: NewApp {
            name: row.field("name")?,
            registration_id: uuid_of(row, "registration_id")?,
            allowed_origins: list_of(row, "allowed_origins")?,
        },
        created_at: row.field("created_at")?,
        updated_at: row.field("updated_at")?,
    })
}

fn key_from(row: &impl DbRow) -> Result<AppKey> {
    Ok(AppKey {
        id: uuid_of(row, "id")?,
        app_id: uuid_of(row, "app_id")?,
        hint: row.field("hint")?,
        created_at: row.field("created_at")?,
        expires_at: row.field("expires_at")?,
    })
}

fn app_name_taken(error: sqlx::Error, name: &str) -> StoreError {
    match StoreError::from(error) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("an app named '{name}' already exists")),
        other => other,
    }
}

impl Store {
    /// Adds an app with its first secret key and the audit entry that records it.
    pub async fn add_app(&self, new: &NewApp, key: KeyToStore<'_>, audit: &NewAuditEntry, now: i64) -> Result<App> {
        let id = Uuid::new_v4();
        let mut tx = self.pool.begin().await?;
        on_tx!(&mut tx, |conn| {
            sqlx::query(
                "INSERT INTO apps (id, name, name_folded, registration_id, allowed_origins, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(id.to_string())
            .bind(&new.name)
            .bind(new.name.to_lowercase())
            .bind(new.registration_id.to_string())
            .bind(json_list(&new.allowed_origins))
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| app_name_taken(e, &new.name))?;
        });
        insert_key(&mut tx, id, key, now).await?;
        audit::insert(&mut tx, audit, now).await?;
        tx.commit().await?;
        self.app(id).await
    }

    pub async fn app(&self, id: Uuid) -> Result<App> {
        let row = on_pool!(&self.pool, |pool| {
            sqlx::query(concat!("SELECT ", app_columns!(), " FROM apps WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
                .map(|row| app_from(&row))
                .transpose()?
        });
        row.ok_or_else(|| StoreError::NotFound(format!("app {id}")))
    }

    /// Every app, by name.
    pub async fn apps(&self) -> Result<Vec<App>> {
        Ok(on_pool!(&self.pool, |pool| {
            sqlx::query(concat!("SELECT ", app_columns!(), " FROM apps ORDER BY name_folded"))
                .fetch_all(pool)
                .await?
                .iter()
                .map(app_from)
                .collect::<Result<Vec<_>>>()?
        }))
    }

    /// Replaces an app's details, with the audit entry that records it.
    pub async fn update_app(&self, id: Uuid, details: &NewApp, audit: &NewAuditEntry, now: i64) -> Result<App> {
        let mut tx = self.pool.begin().await?;
        let changed = on_tx!(&mut tx, |conn| sqlx::query(
            "UPDATE apps SET name = $1, name_folded = $2, registration_id = $3, allowed_origins = $4, updated_at = $5 WHERE id = $6"
        )
        .bind(&details.name)
        .bind(details.name.to_lowercase())
        .bind(details.registration_id.to_string())
        .bind(json_list(&details.allowed_origins))
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(|e| app_name_taken(e, &details.name))?
        .rows_affected());
        if changed == 0 {
            return Err(StoreError::NotFound(format!("app {id}")));
        }
        audit::insert(&mut tx, audit, now).await?;
        tx.commit().await?;
        self.app(id).await
    }

    /// Deletes an app and, by the foreign key's cascade, its keys (they stop working at once), its end users and
    /// their connect sessions, with the audit entry that records it. Refused while an end user has a connection
    /// that is not disconnected: those are deleted first, so that no token outlives its app.
    pub async fn delete_app(&self, id: Uuid, audit: &NewAuditEntry, now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let connected: i64 = on_tx!(&mut tx, |conn| {
            sqlx::query_scalar(
            "SELECT COUNT(*) FROM connections c JOIN end_users e ON c.owner = 'end-user:' || e.id WHERE e.app_id = $1 AND c.status <> 'revoked'"
        )
        .bind(id.to_string())
        .fetch_one(&mut *conn)
        .await?
        });
        if connected > 0 {
            return Err(StoreError::Conflict(format!(
                "the app still has {connected} Power BI connection(s) of its end users: delete them first (they are listed on the app's page)"
            )));
        }
        on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM connections WHERE owner IN (SELECT 'end-user:' || id FROM end_users WHERE app_id = $1)")
                .bind(id.to_string())
                .execute(&mut *conn)
                .await?;
        });
        let changed = on_tx!(&mut tx, |conn| sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?
            .rows_affected());
        if changed == 0 {
            return Err(StoreError::NotFound(format!("app {id}")));
        }
        audit::insert(&mut tx, audit, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An app's keys, the newest (the one in use) first; rotated ones with the time they stop working.
    pub async fn app_keys(&self, app: Uuid) -> Result<Vec<AppKey>> {
        Ok(on_pool!(&self.pool, |pool| {
            sqlx::query(concat!(
                "SELECT id, app_id, hint, created_at, expires_at FROM app_keys WHERE app_id = $1 ",
                // The key in use first even when a rotation made another in the same second.
                "ORDER BY CASE WHEN expires_at IS NULL THEN 0 ELSE 1 END, created_at DESC, expires_at DESC, id"
            ))
            .bind(app.to_string())
            .fetch_all(pool)
            .await?
            .iter()
            .map(key_from)
            .collect::<Result<Vec<_>>>()?
        }))
    }

    /// A new key for `app`; every key still working stops at `older_until` (now, or after an overlap).
    pub async fn rotate_app_key(
        &self,
        app: Uuid,
        key: KeyToStore<'_>,
        older_until: i64,
        audit: &NewAuditEntry,
        now: i64,
    ) -> Result<AppKey> {
        let mut tx = self.pool.begin().await?;
        let changed = on_tx!(&mut tx, |conn| sqlx::query("UPDATE apps SET updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(app.to_string())
            .execute(&mut *conn)
            .await?
            .rows_affected());
        if changed == 0 {
            return Err(StoreError::NotFound(format!("app {app}")));
        }
        on_tx!(&mut tx, |conn| {
            sqlx::query("UPDATE app_keys SET expires_at = $1 WHERE app_id = $2 AND (expires_at IS NULL OR expires_at > $1)")
                .bind(older_until)
                .bind(app.to_string())
                .execute(&mut *conn)
                .await?;
        });
        let made = insert_key(&mut tx, app, key, now).await?;
        audit::insert(&mut tx, audit, now).await?;
        tx.commit().await?;
        Ok(made)
    }

    /// The app a secret key (by its hash) belongs to, while the key works at `now`.
    pub async fn app_by_key(&self, hash: &str, now: i64) -> Result<Option<App>> {
        Ok(on_pool!(&self.pool, |pool| {
            sqlx::query(
                "SELECT a.id, a.name, a.registration_id, a.allowed_origins, a.created_at, a.updated_at FROM apps a \
                 JOIN app_keys k ON k.app_id = a.id WHERE k.key_hash = $1 AND (k.expires_at IS NULL OR k.expires_at > $2)",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(pool)
            .await?
            .map(|row| app_from(&row))
            .transpose()?
        }))
    }
}

async fn insert_key(tx: &mut crate::StoreTx<'_>, app: Uuid, key: KeyToStore<'_>, now: i64) -> Result<AppKey> {
    let made = AppKey { id: Uuid::new_v4(), app_id: app, hint: key.hint.to_owned(), created_at: now, expires_at: None };
    on_tx!(tx, |conn| {
        sqlx::query("INSERT INTO app_keys (id, app_id, key_hash, hint, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(made.id.to_string())
            .bind(app.to_string())
            .bind(key.hash)
            .bind(key.hint)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    });
    Ok(made)
}
