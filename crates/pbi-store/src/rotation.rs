//! Key rotation: re-encrypting every stored secret and token under the newest key.

use crate::connections::token_context;
use crate::data_sources::credential_context;
use crate::db::on_pool;
use crate::oauth_states::state_context;
use crate::registrations::secret_context;
use crate::{Result, Store};
use secrecy::ExposeSecret;

/// What `rotate_keys` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rotation {
    pub examined: u64,
    pub rewritten: u64,
}

/// An encrypted column: the statements that read and swap its values, and the context each row's value in it
/// is bound to.
struct EncryptedColumn {
    /// `SELECT key, column FROM table WHERE column IS NOT NULL`.
    select: &'static str,
    /// `UPDATE table SET column = $1 WHERE key = $2 AND column = $3`.
    swap: &'static str,
    context: fn(&str) -> String,
}

/// Builds an `EncryptedColumn`'s statements with `concat!`, so they stay static SQL.
macro_rules! encrypted_column {
    ($table:literal, $key:literal, $column:literal, $context:expr) => {
        EncryptedColumn {
            select: concat!("SELECT ", $key, ", ", $column, " FROM ", $table, " WHERE ", $column, " IS NOT NULL"),
            swap: concat!("UPDATE ", $table, " SET ", $column, " = $1 WHERE ", $key, " = $2 AND ", $column, " = $3"),
            context: $context,
        }
    };
}

const ENCRYPTED: &[EncryptedColumn] = &[
    encrypted_column!("registration_secrets", "id", "secret", |id| secret_context(id)),
    encrypted_column!("connections", "id", "access_token", |id| token_context(id, "access_token")),
    encrypted_column!("connections", "id", "refresh_token", |id| token_context(id, "refresh_token")),
    encrypted_column!("oauth_states", "state_hash", "pkce_verifier", |hash| state_context(hash)),
    encrypted_column!("data_sources", "id", "credential", |id| credential_context(id)),
];

impl Store {
    /// Re-encrypts every value written under an older key with the newest one. Each row is swapped only if
    /// it still holds the value read (so a concurrent token refresh is never overwritten); a run stopped
    /// half-way leaves every row readable, and the next run finishes.
    pub async fn rotate_keys(&self) -> Result<Rotation> {
        let mut report = Rotation::default();
        for EncryptedColumn { select, swap, context } in ENCRYPTED {
            let rows: Vec<(String, Vec<u8>)> = on_pool!(&self.pool, |pool| sqlx::query_as(*select).fetch_all(pool).await?);
            for (id, old) in rows {
                report.examined += 1;
                if !self.keys.needs_rotation(&old)? {
                    continue;
                }
                let plaintext = self.keys.decrypt(&old, &context(&id))?;
                let new = self.keys.encrypt(plaintext.expose_secret(), &context(&id));
                report.rewritten +=
                    on_pool!(&self.pool, |pool| sqlx::query(*swap).bind(new).bind(&id).bind(old).execute(pool).await?.rows_affected());
            }
        }
        Ok(report)
    }
}
