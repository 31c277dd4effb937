//! API tokens for scripts: only a hash and a short hint are kept.

use crate::db::{DbRow, on_pool};
use crate::users::{User, user_from};
use crate::{Result, Store, StoreError, one_changed, uuid_of};
use uuid::Uuid;

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
