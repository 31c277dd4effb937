//! pbi-bridge's own users and their browser sessions.

use crate::db::{DbRow, on_pool, on_tx};
use crate::{Result, Store, StoreError, uuid_of};
use uuid::Uuid;

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

impl User {
    /// The user as the owner of their Power BI connections.
    pub fn as_owner(&self) -> crate::Owner {
        crate::Owner::User(self.id)
    }
}

/// A signed-in browser. The cookie's token is stored only as a hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_hash: String,
    pub user: User,
    pub csrf_token: String,
    pub expires_at: i64,
}

pub(crate) fn user_from(row: &impl DbRow) -> Result<User> {
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
