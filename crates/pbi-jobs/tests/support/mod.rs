//! What the engine's and the schedules' suites share: a database of each test's own, on either backend.

use pbi_store::Store;
use secrecy::{ExposeSecret, SecretString};

/// A database of the test's own (a SQLite file, or a PostgreSQL database created for it and dropped after),
/// and a store on it.
pub struct TestDb(pbi_testdb::TestDb);

impl TestDb {
    pub async fn new(postgres: bool) -> Self {
        TestDb(pbi_testdb::TestDb::new(postgres, "pbi_jobs").await)
    }

    #[allow(dead_code)]
    pub async fn store(&self) -> Store {
        Self::store_at(&self.0.url).await
    }

    /// A store on the database at `url` (the test's own, reached another way).
    #[allow(dead_code)] // Each test binary compiles this module; not every one uses everything.
    pub async fn store_at(url: &str) -> Store {
        Store::connect(url, keys()).await.expect("store")
    }

    #[allow(dead_code)]
    pub fn url(&self) -> &str {
        &self.0.url
    }
}

fn keys() -> pbi_crypto::KeyRing {
    let line = pbi_crypto::KeyRing::new_key_line(1).expose_secret().to_owned();
    pbi_crypto::KeyRing::parse(&SecretString::from(line)).expect("keys")
}
