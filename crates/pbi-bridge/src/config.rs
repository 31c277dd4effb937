//! Where pbi-bridge keeps its data: the database URL and the encryption keys, from flags, then the
//! environment (`PBI_BRIDGE__…`), then defaults under the data directory. Read once, here; libraries get
//! typed values.

use anyhow::Context as _;
use clap::Args;
use pbi_crypto::KeyRing;
use pbi_store::Store;
use secrecy::SecretString;
use std::path::PathBuf;

#[derive(Args, Clone)]
pub struct StoreArgs {
    /// The data directory (the default database and key file live here).
    #[arg(long, global = true, env = "PBI_BRIDGE__DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,
    /// sqlite://PATH or postgres://…; default: sqlite in the data directory.
    #[arg(long, global = true, env = "PBI_BRIDGE__DATABASE__URL", hide_env_values = true)]
    pub database: Option<String>,
    /// The encryption key file (ID:BASE64 lines); default: DATA_DIR/keys, created with mode 0600.
    #[arg(long, global = true, env = "PBI_BRIDGE__CRYPTO__KEY_FILE")]
    pub key_file: Option<PathBuf>,
}

/// The keys as configuration text (`PBI_BRIDGE__CRYPTO__KEYS`), which wins over any key file.
fn keys_from_environment() -> Option<SecretString> {
    std::env::var("PBI_BRIDGE__CRYPTO__KEYS").ok().filter(|v| !v.trim().is_empty()).map(|v| SecretString::from(v.replace(',', "\n")))
}

impl StoreArgs {
    pub fn key_file(&self) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| self.data_dir.join("keys"))
    }

    pub fn keys(&self) -> anyhow::Result<KeyRing> {
        if let Some(text) = keys_from_environment() {
            return KeyRing::parse(&text).context("PBI_BRIDGE__CRYPTO__KEYS");
        }
        let path = self.key_file();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        KeyRing::load_or_create(&path).with_context(|| format!("the key file {}", path.display()))
    }

    pub fn database_url(&self) -> String {
        self.database.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("pbi-bridge.db").display()))
    }

    pub async fn open(&self) -> anyhow::Result<Store> {
        let keys = self.keys()?;
        std::fs::create_dir_all(&self.data_dir).with_context(|| format!("creating {}", self.data_dir.display()))?;
        Store::connect(&self.database_url(), keys).await.context("opening the database")
    }
}
