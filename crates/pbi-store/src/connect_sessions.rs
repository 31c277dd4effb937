//! Connect sessions: one end user's permission, for 30 minutes, to connect (or reconnect) a Power BI account
//! to an app on pbi-bridge's connect page. The token is kept only as a SHA-256 hash; the first browser that
//! opens the session is bound to it; it ends once, with an outcome the app is told.

use crate::db::{DbRow, on_pool};
use crate::{Result, Store, StoreError, optional_uuid_of, uuid_of};
use uuid::Uuid;

/// A connect session as the app asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConnectSession {
    pub app_id: Uuid,
    pub end_user_id: Uuid,
    /// Where the connect page sends the browser when it is done (among the app's allowed origins).
    pub return_url: Option<String>,
    /// The end user's connection this session signs in again (a reconnect session).
    pub reconnect_connection_id: Option<Uuid>,
}

/// How a connect session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOutcome {
    /// `connected`, or the failure's code (`consent_declined`, `admin_consent_required`, …).
    pub code: String,
    pub message: String,
    pub connection_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectSession {
    pub id: Uuid,
    pub details: NewConnectSession,
    /// The SHA-256 of the browser cookie of the first browser that opened it.
    pub browser_hash: Option<String>,
    pub outcome: Option<SessionOutcome>,
    pub created_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
}

macro_rules! session_columns {
    () => {
        "id, app_id, end_user_id, return_url, reconnect_connection_id, browser_hash, outcome, outcome_message, connection_id, created_at, expires_at, ended_at"
    };
}

fn session_from(row: &impl DbRow) -> Result<ConnectSession> {
    let outcome: Option<String> = row.field("outcome")?;
    Ok(ConnectSession {
        id: uuid_of(row, "id")?,
        details: NewConnectSession {
            app_id: uuid_of(row, "app_id")?,
            end_user_id: uuid_of(row, "end_user_id")?,
            return_url: row.field("return_url")?,
            reconnect_connection_id: optional_uuid_of(row, "reconnect_connection_id")?,
        },
        browser_hash: row.field("browser_hash")?,
        outcome: match outcome {
            Some(code) => Some(SessionOutcome {
                code,
                message: row.field::<Option<String>>("outcome_message")?.unwrap_or_default(),
                connection_id: optional_uuid_of(row, "connection_id")?,
            }),
            None => None,
        },
        created_at: row.field("created_at")?,
        expires_at: row.field("expires_at")?,
        ended_at: row.field("ended_at")?,
    })
}

/// How long an ended or expired session is kept (for the app to read its outcome), in seconds.
const KEPT_SECONDS: i64 = 7 * 86_400;

impl Store {
    /// Adds a session whose token hashes to `token_hash`; forgets sessions that expired a week ago.
    pub async fn add_connect_session(
        &self,
        new: &NewConnectSession,
        token_hash: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<ConnectSession> {
        let id = Uuid::new_v4();
        on_pool!(&self.pool, |pool| {
            sqlx::query("DELETE FROM connect_sessions WHERE expires_at < $1").bind(now - KEPT_SECONDS).execute(pool).await?;
            sqlx::query(
                "INSERT INTO connect_sessions (id, token_hash, app_id, end_user_id, return_url, reconnect_connection_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id.to_string())
            .bind(token_hash)
            .bind(new.app_id.to_string())
            .bind(new.end_user_id.to_string())
            .bind(&new.return_url)
            .bind(new.reconnect_connection_id.map(|c| c.to_string()))
            .bind(now)
            .bind(expires_at)
            .execute(pool)
            .await?;
        });
        self.connect_session(id).await
    }

    pub async fn connect_session(&self, id: Uuid) -> Result<ConnectSession> {
        let found =
            on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", session_columns!(), " FROM connect_sessions WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
                .map(|row| session_from(&row))
                .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("connect session {id}")))
    }

    pub async fn connect_session_by_token(&self, token_hash: &str) -> Result<Option<ConnectSession>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", session_columns!(), " FROM connect_sessions WHERE token_hash = $1"))
            .bind(token_hash)
            .fetch_optional(pool)
            .await?
            .map(|row| session_from(&row))
            .transpose())
    }

    /// The newest open session of `end_user` that the browser whose cookie hashes to `browser_hash` holds: the
    /// one an end user's sign-in that comes back to that browser completes.
    pub async fn open_connect_session_of_browser(&self, browser_hash: &str, end_user: Uuid, now: i64) -> Result<Option<ConnectSession>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM connect_sessions WHERE browser_hash = $1 AND end_user_id = $2 AND ended_at IS NULL AND expires_at > $3 ",
            "ORDER BY created_at DESC, id LIMIT 1"
        ))
        .bind(browser_hash)
        .bind(end_user.to_string())
        .bind(now)
        .fetch_optional(pool)
        .await?
        .map(|row| session_from(&row))
        .transpose())
    }

    /// Binds the session to the browser whose cookie hashes to `browser_hash`, if no other browser holds it:
    /// whether this browser now holds it.
    pub async fn bind_connect_session(&self, id: Uuid, browser_hash: &str) -> Result<bool> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query(
            "UPDATE connect_sessions SET browser_hash = $1 WHERE id = $2 AND (browser_hash IS NULL OR browser_hash = $1)"
        )
        .bind(browser_hash)
        .bind(id.to_string())
        .execute(pool)
        .await?
        .rows_affected());
        Ok(changed == 1)
    }

    /// Ends the session with its outcome, once: whether this call ended it.
    pub async fn end_connect_session(&self, id: Uuid, outcome: &SessionOutcome, now: i64) -> Result<bool> {
        let changed = on_pool!(&self.pool, |pool| {
            sqlx::query(
            "UPDATE connect_sessions SET outcome = $1, outcome_message = $2, connection_id = $3, ended_at = $4 WHERE id = $5 AND ended_at IS NULL"
        )
        .bind(&outcome.code)
        .bind(&outcome.message)
        .bind(outcome.connection_id.map(|c| c.to_string()))
        .bind(now)
        .bind(id.to_string())
        .execute(pool)
        .await?
        .rows_affected()
        });
        Ok(changed == 1)
    }
}
