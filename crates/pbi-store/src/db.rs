//! The backend shim: the typed pools and transactions of SQLite and PostgreSQL, and what lets each repository
//! function be written once for both (the `on_pool!`/`on_tx!` macros and the `DbRow` trait).
//!
//! sqlx's typed drivers have no common pool type, so a body that runs a query is written once inside
//! `on_pool!` and compiled once per backend; each copy decodes its rows (through `DbRow`) into the store's
//! own types before leaving the macro, so what comes out is the same type for both.

use crate::{Backend, Result};
use sqlx::postgres::{PgPool, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqlitePool, SqliteRow};
use sqlx::{Decode, Row, Transaction, Type};

/// The store's connection pool, typed by backend: what a component that takes sqlx's typed pools (a job
/// engine, say) is handed through `Store::pool`.
#[derive(Debug, Clone)]
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Pool {
    pub fn backend(&self) -> Backend {
        match self {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// A write transaction. On SQLite it begins with `BEGIN IMMEDIATE`, which takes the write lock at once
    /// (waiting up to the busy timeout for it): a deferred transaction that reads before it writes cannot
    /// upgrade its lock when another writer got in first, and fails with "database is locked" instead of
    /// waiting its turn.
    pub(crate) async fn begin(&self) -> Result<StoreTx<'static>> {
        Ok(match self {
            Pool::Sqlite(pool) => StoreTx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Pool::Postgres(pool) => StoreTx::Postgres(pool.begin().await?),
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

/// A transaction on the store's database, typed by backend (`Store::begin`), so that another component can
/// write in it with sqlx's typed transactions (`&mut Transaction<'_, Sqlite>` or `<'_, Postgres>`, what River
/// takes). Dropped without `commit`, it rolls back.
#[derive(Debug)]
pub enum StoreTx<'c> {
    Sqlite(Transaction<'c, Sqlite>),
    Postgres(Transaction<'c, Postgres>),
}

impl StoreTx<'_> {
    pub async fn commit(self) -> Result<()> {
        match self {
            StoreTx::Sqlite(tx) => tx.commit().await?,
            StoreTx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<()> {
        match self {
            StoreTx::Sqlite(tx) => tx.rollback().await?,
            StoreTx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// `on_pool!(pool, |name| body)` runs `body` with `name` bound to the backend's typed pool. It looks like a
/// closure so that rustfmt formats it, but is not one: `?` and `.await` act on the enclosing function. The body
/// is written once and compiled for each backend, so it must turn rows into backend-neutral values before it
/// ends.
macro_rules! on_pool {
    ($pool:expr, |$name:ident| $body:expr) => {
        match $pool {
            $crate::db::Pool::Sqlite($name) => $body,
            $crate::db::Pool::Postgres($name) => $body,
        }
    };
}

/// `on_tx!(tx, |conn| body)`: `on_pool!` for a transaction. `conn` is the transaction's connection
/// (`&mut SqliteConnection` or `&mut PgConnection`; pass it on as `&mut *conn`).
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::db::StoreTx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::db::StoreTx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

pub(crate) use {on_pool, on_tx};

/// A column type both backends decode: the few the store uses (`String`, `i64`, `Vec<u8>` and their
/// `Option`s).
pub(crate) trait Decodable: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres> {}

impl<T> Decodable for T where T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres> {}

/// A row of either backend, read by column name: row decoding is written once, over `&impl DbRow`.
pub(crate) trait DbRow {
    fn field<T: Decodable>(&self, column: &str) -> Result<T>;
}

impl DbRow for SqliteRow {
    fn field<T: Decodable>(&self, column: &str) -> Result<T> {
        Ok(self.try_get(column)?)
    }
}

impl DbRow for PgRow {
    fn field<T: Decodable>(&self, column: &str) -> Result<T> {
        Ok(self.try_get(column)?)
    }
}
