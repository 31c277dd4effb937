//! Settings an administrator changes at run time (not configuration files): one row per setting, each with a
//! typed accessor here, so that no caller reads a setting by a string of its own.

use crate::audit::{self, NewAuditEntry};
use crate::db::{on_pool, on_tx};
use crate::{Result, Store};

const SHARED_ACCOUNTS: &str = "connections.shared_accounts";

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

    /// Whether one Power BI account may be connected for several pbi-bridge users (off unless an administrator
    /// turns it on: one person's Power BI content should not silently become another's).
    pub async fn shared_accounts_allowed(&self) -> Result<bool> {
        Ok(self.setting(SHARED_ACCOUNTS).await?.as_deref() == Some("true"))
    }

    pub async fn set_shared_accounts_allowed(&self, allowed: bool, audit: &[NewAuditEntry], now: i64) -> Result<()> {
        self.set_setting(SHARED_ACCOUNTS, if allowed { "true" } else { "false" }, audit, now).await
    }
}
