//! A database of each test's own, on SQLite or PostgreSQL, removed when the test ends (test support).

use sqlx::AssertSqlSafe;

/// The machine's PostgreSQL, where each test creates a database of its own (`./scripts/test` starts it).
pub const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A test's database: `url` opens it; dropping the guard removes it.
pub struct TestDb {
    pub url: String,
    postgres_name: Option<String>,
}

impl TestDb {
    /// A fresh database named after `prefix` (letters, digits and `_`): on PostgreSQL when `postgres`, else
    /// a SQLite file in the temporary directory.
    pub async fn new(postgres: bool, prefix: &str) -> Self {
        let unique = uuid::Uuid::new_v4().simple();
        if postgres {
            let name = format!("{prefix}_{unique}");
            let admin = sqlx::PgPool::connect(POSTGRES_ADMIN).await.expect("PostgreSQL on 127.0.0.1:5432 (./scripts/test starts it)");
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create database");
            admin.close().await;
            TestDb { url: format!("postgres://postgres@127.0.0.1:5432/{name}"), postgres_name: Some(name) }
        } else {
            let path = std::env::temp_dir().join(format!("{prefix}-{unique}.db"));
            TestDb { url: format!("sqlite://{}", path.display()), postgres_name: None }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.postgres_name {
            Some(name) => {
                // Drop runs outside any runtime the test may still be in: a thread of its own does the async work.
                let name = name.clone();
                let _ = std::thread::spawn(move || {
                    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
                    runtime.block_on(async {
                        if let Ok(admin) = sqlx::PgPool::connect(POSTGRES_ADMIN).await {
                            let _ =
                                sqlx::query(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&admin).await;
                        }
                    });
                })
                .join();
            }
            None => {
                let path = self.url.trim_start_matches("sqlite://").to_owned();
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
        }
    }
}
