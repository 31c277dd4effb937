//! Connections: a user's Power BI account through a registration, with its encrypted tokens, its status and
//! the refresh lease that keeps one refresh in flight across instances.

use crate::db::{DbRow, on_pool};
use crate::{Result, Store, StoreError, json_list, list_of, one_changed, uuid_of};
use secrecy::SecretString;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
    Active,
    /// The user must sign in again; `status_reason` says why.
    NeedsSignIn,
    /// Disconnected: the tokens are gone.
    Revoked,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
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

/// Who a connection belongs to (`DESIGN.md`): a pbi-bridge user (seeds 000 and 001), or an app's end user
/// (seed 002). Every access check is one comparison of owners. Stored in one column as text: a user's id as it
/// always was, an end user's as `end-user:<id>` (the end user's row says which app).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Owner {
    User(Uuid),
    EndUser(Uuid),
}

const END_USER_PREFIX: &str = "end-user:";

impl Owner {
    /// The end user's id, for an app's end user.
    pub fn end_user(&self) -> Option<Uuid> {
        match self {
            Owner::EndUser(id) => Some(*id),
            Owner::User(_) => None,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owner::User(id) => write!(f, "{id}"),
            Owner::EndUser(id) => write!(f, "{END_USER_PREFIX}{id}"),
        }
    }
}

impl std::str::FromStr for Owner {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self> {
        let corrupt = || StoreError::Corrupt(format!("connection owner '{text}'"));
        match text.strip_prefix(END_USER_PREFIX) {
            Some(id) => Uuid::parse_str(id).map(Owner::EndUser).map_err(|_| corrupt()),
            None => Uuid::parse_str(text).map(Owner::User).map_err(|_| corrupt()),
        }
    }
}

/// Whose Power BI account a connection is, through which registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub owner: Owner,
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
    /// Since when the connection has not worked (a refresh failed, or it needs sign-in); `None` while it works.
    pub failing_since: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Where a page of connections goes on (`Store::app_connections`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionCursor {
    created_at: i64,
    id: Uuid,
}

impl ConnectionCursor {
    /// `created.id`, as it travels in a URL.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }

    pub fn parse(text: &str) -> Option<Self> {
        let (at, id) = text.split_once('.')?;
        Some(Self { created_at: at.parse().ok()?, id: Uuid::parse_str(id).ok()? })
    }
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
        "id, owner, registration_id, tenant_id, object_id, upn, scopes, access_expires_at, refresh_expires_at, status, status_reason, last_refresh_at, last_error, failing_since, created_at, updated_at"
    };
}

fn connection_from(row: &impl DbRow) -> Result<Connection> {
    Ok(Connection {
        id: uuid_of(row, "id")?,
        account: Account {
            owner: row.field::<String>("owner")?.parse()?,
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
        failing_since: row.field("failing_since")?,
        created_at: row.field("created_at")?,
        updated_at: row.field("updated_at")?,
    })
}

pub(crate) fn token_context(id: impl std::fmt::Display, which: &str) -> String {
    format!("connection:{id}:{which}")
}

impl Store {
    /// Whether the Power BI account of `account` (its registration, tenant and object id) is connected, and not
    /// disconnected, for another pbi-bridge user than `account.owner` (an app's end users' connections are the
    /// app's business, not pbi-bridge users').
    pub async fn account_connected_by_others(&self, account: &Account) -> Result<bool> {
        Ok(on_pool!(&self.pool, |pool| {
            sqlx::query(
            "SELECT 1 FROM connections WHERE registration_id = $1 AND tenant_id = $2 AND object_id = $3 AND owner <> $4 AND status <> $5 AND owner NOT LIKE 'end-user:%'",
        )
        .bind(account.registration_id.to_string())
        .bind(&account.tenant_id)
        .bind(&account.object_id)
        .bind(account.owner.to_string())
        .bind(ConnectionStatus::Revoked.as_str())
        .fetch_optional(pool)
        .await?
        .is_some()
        }))
    }

    /// Records a completed sign-in: a new connection, or fresh tokens on the same account's connection.
    pub async fn save_connection(&self, account: &Account, scopes: &[String], tokens: &Tokens, now: i64) -> Result<Connection> {
        let existing = on_pool!(&self.pool, |pool| sqlx::query(
            "SELECT id FROM connections WHERE owner = $1 AND registration_id = $2 AND tenant_id = $3 AND object_id = $4"
        )
        .bind(account.owner.to_string())
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
                                    .bind(account.owner.to_string())
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
            "UPDATE connections SET access_token = $1, access_expires_at = $2, refresh_token = COALESCE($3, refresh_token), refresh_expires_at = COALESCE($4, refresh_expires_at), status = $5, status_reason = NULL, last_refresh_at = $6, last_error = NULL, failing_since = NULL, updated_at = $6 WHERE id = $7",
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
    pub async fn connections_of(&self, owner: &Owner) -> Result<Vec<Connection>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE owner = $1 ORDER BY created_at"
        ))
        .bind(owner.to_string())
        .fetch_all(pool)
        .await?
        .iter()
        .map(connection_from)
        .collect())
    }

    /// A page of the connections of `app`'s end users, oldest first, after `after`: with `end_user` (the app's
    /// id for them) and `status`, only theirs and only those; and where the next page starts, if there is one.
    pub async fn app_connections(
        &self,
        app: Uuid,
        end_user: Option<&str>,
        status: Option<ConnectionStatus>,
        after: Option<ConnectionCursor>,
        limit: u32,
    ) -> Result<(Vec<Connection>, Option<ConnectionCursor>)> {
        let limit = i64::from(limit.clamp(1, 100));
        // Without a cursor: from the start (no time is before i64::MIN, and every UUID sorts after "").
        let (at, id) = after.map_or((i64::MIN, String::new()), |c| (c.created_at, c.id.to_string()));
        let mut page: Vec<Connection> = on_pool!(&self.pool, |pool| {
            sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE owner IN (SELECT 'end-user:' || id FROM end_users WHERE app_id = $1 AND ($2 IS NULL OR external_id = $2)) ",
            "AND ($3 IS NULL OR status = $3) AND (created_at > $4 OR (created_at = $4 AND id > $5)) ORDER BY created_at, id LIMIT $6"
        ))
        .bind(app.to_string())
        .bind(end_user)
        .bind(status.map(ConnectionStatus::as_str))
        .bind(at)
        .bind(id)
        .bind(limit + 1)
        .fetch_all(pool)
        .await?
        .iter()
        .map(connection_from)
        .collect::<Result<_>>()?
        });
        let more = page.len() as i64 > limit;
        page.truncate(limit as usize);
        let next = more.then(|| page.last().map(|c| ConnectionCursor { created_at: c.created_at, id: c.id })).flatten();
        Ok((page, next))
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
            sqlx::query("UPDATE connections SET status = $1, status_reason = $2, access_token = NULL, access_expires_at = NULL, last_error = $2, failing_since = COALESCE(failing_since, $3), updated_at = $3 WHERE id = $4")
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
            sqlx::query(
                "UPDATE connections SET last_error = $1, failing_since = COALESCE(failing_since, $2), updated_at = $2 WHERE id = $3",
            )
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

    /// Active connections with a refresh token whose tokens were last issued (at sign-in or by a refresh) at
    /// or before `renewed_before`, oldest first: those the keep-alive refreshes next.
    pub async fn connections_to_keep_alive(&self, renewed_before: i64, limit: u32) -> Result<Vec<Uuid>> {
        on_pool!(&self.pool, |pool| {
            sqlx::query(
            "SELECT id FROM connections WHERE status = $1 AND refresh_token IS NOT NULL AND COALESCE(last_refresh_at, created_at) <= $2 ORDER BY COALESCE(last_refresh_at, created_at), id LIMIT $3",
        )
        .bind(ConnectionStatus::Active.as_str())
        .bind(renewed_before)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?
        .iter()
        .map(|row| uuid_of(row, "id"))
        .collect()
        })
    }

    /// Connections not disconnected that have not worked since `failing_before` or earlier, longest failing
    /// first: what administrators are told about.
    pub async fn failing_connections(&self, failing_before: i64) -> Result<Vec<Connection>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE status <> $1 AND failing_since IS NOT NULL AND failing_since <= $2 ORDER BY failing_since, id"
        ))
        .bind(ConnectionStatus::Revoked.as_str())
        .bind(failing_before)
        .fetch_all(pool)
        .await?
        .iter()
        .map(connection_from)
        .collect())
    }

    /// One owner's connections that need them to sign in again (what the banner on every page names).
    pub async fn connections_needing_sign_in(&self, owner: &Owner) -> Result<Vec<Connection>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            connection_columns!(),
            " FROM connections WHERE owner = $1 AND status = $2 ORDER BY created_at"
        ))
        .bind(owner.to_string())
        .bind(ConnectionStatus::NeedsSignIn.as_str())
        .fetch_all(pool)
        .await?
        .iter()
        .map(connection_from)
        .collect())
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

#[cfg(test)]
mod tests {
    use super::Owner;
    use uuid::Uuid;

    #[test]
    fn an_owner_reads_back_as_written_and_a_user_id_keeps_its_old_form() {
        let id = Uuid::from_u128(0x1234);
        for owner in [Owner::User(id), Owner::EndUser(id)] {
            assert_eq!(owner.to_string().parse::<Owner>().expect("parses"), owner);
        }
        assert_eq!(Owner::User(id).to_string(), id.to_string(), "rows written before end users existed still read");
        assert_ne!(Owner::User(id), Owner::EndUser(id), "the same id in two roles is two owners");
        for bad in ["", "alice", "end-user:", "end-user:alice", "app:1"] {
            assert!(bad.parse::<Owner>().is_err(), "{bad}");
        }
    }
}
