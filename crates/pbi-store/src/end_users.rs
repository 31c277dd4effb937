//! An app's end users: the app's own users, known by the app's id for them, who own their Power BI connections
//! (`Owner::EndUser`).

use crate::db::{DbRow, on_pool};
use crate::{Owner, Result, Store, StoreError, uuid_of};
use uuid::Uuid;

/// One of an app's own users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndUser {
    pub id: Uuid,
    pub app_id: Uuid,
    /// The app's id for them, as the app sent it.
    pub external_id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl EndUser {
    /// The end user as the owner of their Power BI connections.
    pub fn as_owner(&self) -> Owner {
        Owner::EndUser(self.id)
    }
}

/// An end user as the app describes them; `None` leaves what is stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndUserDetails {
    pub external_id: String,
    pub email: Option<String>,
    pub display_name: Option<String>,
}

macro_rules! end_user_columns {
    () => {
        "id, app_id, external_id, email, display_name, created_at, updated_at"
    };
}

fn end_user_from(row: &impl DbRow) -> Result<EndUser> {
    Ok(EndUser {
        id: uuid_of(row, "id")?,
        app_id: uuid_of(row, "app_id")?,
        external_id: row.field("external_id")?,
        email: row.field("email")?,
        display_name: row.field("display_name")?,
        created_at: row.field("created_at")?,
        updated_at: row.field("updated_at")?,
    })
}

impl Store {
    /// The app's end user with this external id, made the first time; an e-mail or display name given
    /// replaces the stored one.
    pub async fn upsert_end_user(&self, app: Uuid, details: &EndUserDetails, now: i64) -> Result<EndUser> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "INSERT INTO end_users (id, app_id, external_id, email, display_name, created_at, updated_at) ",
            "VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (app_id, external_id) DO UPDATE SET ",
            "email = COALESCE(excluded.email, end_users.email), ",
            "display_name = COALESCE(excluded.display_name, end_users.display_name), updated_at = excluded.updated_at ",
            "RETURNING ",
            end_user_columns!()
        ))
        .bind(Uuid::new_v4().to_string())
        .bind(app.to_string())
        .bind(&details.external_id)
        .bind(&details.email)
        .bind(&details.display_name)
        .bind(now)
        .fetch_one(pool)
        .await
        .map_err(StoreError::from)
        .and_then(|row| end_user_from(&row)))
    }

    pub async fn end_user(&self, id: Uuid) -> Result<EndUser> {
        let found = on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", end_user_columns!(), " FROM end_users WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?
            .map(|row| end_user_from(&row))
            .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("end user {id}")))
    }
}
