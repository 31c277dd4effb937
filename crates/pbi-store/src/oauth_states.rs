//! Pending authorizations (OAuth `state`s): single-use, short-lived, bound to the browser session that started
//! them, with the PKCE verifier encrypted.

use crate::db::{DbRow, on_pool};
use crate::{Owner, Result, Store, uuid_of};
use secrecy::SecretString;
use uuid::Uuid;

/// A pending authorization: single-use, short-lived, bound to the browser session that started it.
#[derive(Debug, Clone)]
pub struct PendingState {
    /// The SHA-256 of the `state` sent to Entra, never the value itself.
    pub state_hash: String,
    pub browser_session: String,
    pub owner: Owner,
    pub registration_id: Uuid,
    pub pkce_verifier: SecretString,
    pub return_to: String,
    pub created_at: i64,
    pub expires_at: i64,
}

pub(crate) fn state_context(state_hash: impl std::fmt::Display) -> String {
    format!("oauth_state:{state_hash}")
}

impl Store {
    pub async fn put_state(&self, state: &PendingState) -> Result<()> {
        let verifier = self.keys.encrypt_str(&state.pkce_verifier, &state_context(&state.state_hash));
        on_pool!(&self.pool, |pool| {
            sqlx::query("INSERT INTO oauth_states (state_hash, browser_session, owner, registration_id, pkce_verifier, return_to, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(&state.state_hash)
                .bind(&state.browser_session)
                .bind(state.owner.to_string())
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
    /// someone else's callback URL cannot burn their sign-in; `state_owner` tells the two apart). Whether
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
                owner: row.field::<String>("owner")?.parse()?,
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

    /// Whose the pending state is, without taking it: the callback asks it to know which browser session (a
    /// pbi-bridge user's, or an end user's on the connect page) must take it.
    pub async fn state_owner(&self, state_hash: &str) -> Result<Option<Owner>> {
        let found: Option<String> = on_pool!(&self.pool, |pool| sqlx::query_scalar("SELECT owner FROM oauth_states WHERE state_hash = $1")
            .bind(state_hash)
            .fetch_optional(pool)
            .await?);
        found.map(|text| text.parse()).transpose()
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
