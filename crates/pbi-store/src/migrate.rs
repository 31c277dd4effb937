//! Schema migrations: sqlx's migrator over one folder per backend (`migrations/sqlite`, `migrations/postgres`:
//! the same steps under the same numbers, the binary type the one word that differs), run in one transaction
//! under a lock, and the adoption of databases that pbi-bridge's own migrator (before sqlx 0.9) brought up.
//!
//! What sqlx's migrator does not do on its own, and how it is done here:
//! - **One transaction for every step**: sqlx commits each migration by itself; here it is handed the
//!   connection of a transaction that also holds the adoption, so a failed step leaves the database as it
//!   was (each migration becomes a savepoint).
//! - **Several instances starting at once**: sqlx locks PostgreSQL but not SQLite. The transaction takes
//!   `pg_advisory_xact_lock(7301984)` (the lock the old migrator took, so an older build starting at the same
//!   moment waits too) on PostgreSQL and begins with `BEGIN IMMEDIATE` on SQLite: whoever comes second waits,
//!   then finds nothing to do.
//! - **A database a newer build migrated** still opens (as before): versions this build does not know are
//!   ignored (`set_ignore_missing`), and `Store::schema_version` says the database is ahead.
//!
//! sqlx adds one check the old migrator did not have: a step whose file changed after it was applied fails
//! `connect` (its checksum differs). A migration that cannot run inside a transaction (`-- no-transaction`)
//! would need this runner changed.

use crate::db::{on_pool, on_tx};
use crate::{Backend, Pool, StoreError, StoreTx};
use sqlx::migrate::{Migrate, MigrateError, Migrator};

/// sqlx's bookkeeping table (its default name).
const TABLE: &str = "_sqlx_migrations";

/// The PostgreSQL advisory lock held while migrating; the same number as pbi-bridge's own migrator took.
const LOCK: i64 = 7301984;

fn migrator(backend: Backend) -> Migrator {
    let mut migrator = match backend {
        Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.set_ignore_missing(true);
    migrator
}

fn failed(error: MigrateError) -> StoreError {
    StoreError::Database(format!("migrating: {error}"))
}

/// Adopts a database of the old migrator, then applies what is missing: all in one transaction, one instance
/// at a time.
pub async fn run(pool: &Pool) -> Result<(), StoreError> {
    let backend = pool.backend();
    let migrator = migrator(backend);
    let old_table_exists = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'pbi_schema'",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'pbi_schema'"
        }
    };
    let mut tx = pool.begin().await?;
    if let StoreTx::Postgres(tx) = &mut tx {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(LOCK).execute(&mut **tx).await?;
    }
    on_tx!(&mut tx, |conn| {
        conn.ensure_migrations_table(TABLE).await.map_err(failed)?;
        let before: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations").fetch_all(&mut *conn).await?;
        // Adoption: a database the old migrator brought up records its steps in `pbi_schema`. The same steps are
        // recorded as sqlx's, with the checksums sqlx computes for their files, so none of them runs again. Once
        // sqlx's table has rows this is never done again; `pbi_schema` is left as it was.
        let mut adopted = Vec::new();
        if before.is_empty() && sqlx::query_scalar::<_, i64>(old_table_exists).fetch_one(&mut *conn).await? > 0 {
            let old: Vec<i64> = sqlx::query_scalar("SELECT version FROM pbi_schema").fetch_all(&mut *conn).await?;
            for migration in migrator.iter().filter(|m| old.contains(&m.version)) {
                conn.skip(TABLE, migration).await.map_err(failed)?;
                adopted.push(migration.version);
            }
            tracing::info!(?adopted, "adopted the schema versions applied by pbi-bridge's own migrator");
        }
        migrator.run(&mut *conn).await.map_err(failed)?;
        for migration in migrator.iter().filter(|m| !before.contains(&m.version) && !adopted.contains(&m.version)) {
            tracing::info!(version = migration.version, name = %migration.description, "applied migration");
        }
    });
    tx.commit().await?;
    Ok(())
}

/// The newest schema version applied to the database.
pub async fn applied(pool: &Pool) -> Result<i64, StoreError> {
    Ok(on_pool!(pool, |pool| sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await?))
}

/// The newest schema version this build knows.
pub fn latest() -> i64 {
    migrator(Backend::Sqlite).iter().map(|m| m.version).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two folders are one list of steps: the same versions and names, and the same SQL but for the
    /// binary type's name.
    #[test]
    fn both_backends_have_the_same_steps() {
        let (sqlite, postgres) = (migrator(Backend::Sqlite), migrator(Backend::Postgres));
        let steps = |m: &Migrator| m.iter().map(|m| (m.version, m.description.to_string())).collect::<Vec<_>>();
        assert_eq!(steps(&sqlite), steps(&postgres));
        assert_eq!(steps(&sqlite).iter().map(|(v, _)| *v).collect::<Vec<_>>(), (1..=latest()).collect::<Vec<_>>(), "numbered 1, 2, …");
        for (s, p) in sqlite.iter().zip(postgres.iter()) {
            assert_eq!(s.sql.as_str().replace("BLOB", "BYTEA"), p.sql.as_str(), "migration {}", s.version);
            assert!(!s.no_tx, "migration {} must run in the one transaction", s.version);
        }
    }
}
