//! What the engine's and the schedules' suites share: a database of each test's own, on either backend.

use pbi_store::Store;
use pbi_store::sqlx::{self, AssertSqlSafe};
use secrecy::{ExposeSecret, SecretString};

const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database of the test's own: a SQLite file, or a PostgreSQL database created for it and dropped after.
pub struct TestDb {
    pub url: String,
    postgres_name: Option<String>,
}

impl TestDb {
    pub async fn new(postgres: bool) -> Self {
        let unique = uuid::Uuid::new_v4().simple().to_string();
        if postgres {
            let name = format!("pbi_jobs_{unique}");
            let admin = sqlx::PgPool::connect(POSTGRES_ADMIN).await.expect("PostgreSQL on 127.0.0.1:5432 (./scripts/test starts it)");
            sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.expect("create database");
            admin.close().await;
            TestDb { url: format!("postgres://postgres@127.0.0.1:5432/{name}"), postgres_name: Some(name) }
        } else {
            let path = std::env::temp_dir().join(format!("pbi-jobs-{unique}.db"));
            TestDb { url: format!("sqlite://{}", path.display()), postgres_name: None }
        }
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.url, keys()).await.expect("store")
    }
}

fn keys() -> pbi_crypto::KeyRing {
    let line = pbi_crypto::KeyRing::new_key_line(1).expose_secret().to_owned();
    pbi_crypto::KeyRing::parse(&SecretString::from(line)).expect("keys")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.postgres_name {
            Some(name) => {
                let name = name.clone();
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
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
