//! Settings an administrator changes at run time (not configuration files): one row per setting, each with a
//! typed accessor here, so that no caller reads a setting by a string of its own.

use crate::audit::{self, NewAuditEntry};
use crate::db::{on_pool, on_tx};
use crate::{Result, Store};

const SHARED_ACCOUNTS: &str = "connections.shared_accounts";

/// What a key every instance shares is for; each has its own row (`key.<purpose>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedKey {
    /// Signs the login form's CSRF cookie, so that a form one instance drew is accepted by another.
    LoginCsrf,
}

impl SharedKey {
    fn setting(self) -> &'static str {
        match self {
            SharedKey::LoginCsrf => "key.login_csrf",
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len()).step_by(2).map(|i| text.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok())).collect()
}

impl Store {
    async fn setting(&self, name: &str) -> Result<Option<String>> {
        Ok(on_pool!(&self.pool, |pool| sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?))
    }

    /// Sets `name` and records `audit` in one transaction.
    async fn set_setting(&self, name: &str, value: &str, audit: &[NewAuditEntry], now: i64) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        // Delete then insert: one statement text for both backends.
        on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM settings WHERE name = $1").bind(name).execute(&mut *conn).await?;
            sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2)").bind(name).bind(value).execute(&mut *conn).await?;
        });
        for entry in audit {
            audit::insert(&mut tx, entry, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The random key for `purpose` that every instance on this database shares: made by the first that asks
    /// (a race between two is decided by the insert that lands first), kept sealed by the store's key ring. A
    /// key the ring can no longer open (its key was retired) is replaced.
    pub async fn shared_key(&self, purpose: SharedKey) -> Result<secrecy::SecretBox<Vec<u8>>> {
        let name = purpose.setting();
        let context = format!("setting:{name}");
        for _ in 0..2 {
            let sealed = hex(&self.keys.new_sealed_key(&context));
            on_pool!(&self.pool, |pool| {
                sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(&sealed)
                    .execute(pool)
                    .await?;
            });
            let stored = self.setting(name).await?.unwrap_or_default();
            match unhex(&stored).map(|envelope| self.keys.decrypt(&envelope, &context)) {
                Some(Ok(key)) => return Ok(key),
                _ => {
                    tracing::warn!(setting = name, "a shared key could not be opened with the current keys: making a new one");
                    on_pool!(&self.pool, |pool| {
                        sqlx::query("DELETE FROM settings WHERE name = $1 AND value = $2").bind(name).bind(&stored).execute(pool).await?;
                    });
                }
            }
        }
        Err(crate::StoreError::Corrupt(format!("the shared key {name} cannot be made")))
    }

    /// Whether one Power BI account may be connected for several pbi-bridge users (off unless an administrator
    /// turns it on: one person's Power BI content should not silently become another's).
    pub async fn shared_accounts_allowed(&self) -> Result<bool> {
        Ok(self.setting(SHARED_ACCOUNTS).await?.as_deref() == Some("true"))
    }

    pub async fn set_shared_accounts_allowed(&self, allowed: bool, audit: &[NewAuditEntry], now: i64) -> Result<()> {
        self.set_setting(SHARED_ACCOUNTS, if allowed { "true" } else { "false" }, audit, now).await
    }
}
