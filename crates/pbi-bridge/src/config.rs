//! Where pbi-bridge keeps its data: the database URL and the encryption keys, from flags, then the
//! environment (`PBI_BRIDGE__…`), then defaults under the data directory. Read once, here; libraries get
//! typed values.
//!
//! Only the commands that start pbi-bridge or first add data may create the data directory, the key file
//! and the database (`Create::Yes`), and they say so; the others refuse when these are not there, so that a
//! command run in the wrong folder cannot quietly start an empty installation with a key of its own. What is
//! created is its owner's only: the directory 0700, the key file and the database 0600 (SQLite gives its
//! `-wal` and `-shm` files the database's mode), set exactly whatever the umask.

use crate::powerbi::usage_error;
use anyhow::Context as _;
use clap::Args;
use pbi_crypto::KeyRing;
use pbi_store::Store;
use secrecy::SecretString;
use std::path::{Path, PathBuf};

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

/// Whether a command may create the data directory, the key file and the database when they are not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Commands over existing data: they refuse, saying where they looked.
    No,
    /// `up`, `serve`, `keys add`, and the commands that first add data (`registration add`, `users add`).
    Yes,
}

/// What a command created, in words for the person who ran it ("created the data directory …").
#[derive(Debug, Default)]
pub struct Created(Vec<String>);

impl Created {
    pub fn lines(&self) -> &[String] {
        &self.0
    }

    /// On stdout, or on stderr when stdout carries JSON (so that it stays one JSON document).
    pub fn say(&self, json_output: bool) {
        for line in &self.0 {
            if json_output {
                eprintln!("{line}");
            } else {
                println!("{line}");
            }
        }
    }
}

/// The database a URL names, as far as files go.
enum Database {
    /// A SQLite file (the path as SQLite will open it).
    File(PathBuf),
    /// SQLite in memory: nothing on disk.
    InMemory,
    /// PostgreSQL: nothing here to create or check before connecting.
    Server,
}

/// The keys as configuration text (`PBI_BRIDGE__CRYPTO__KEYS`), which wins over any key file.
fn keys_from_environment() -> Option<SecretString> {
    std::env::var("PBI_BRIDGE__CRYPTO__KEYS").ok().filter(|v| !v.trim().is_empty()).map(|v| SecretString::from(v.replace(',', "\n")))
}

/// A path as people should read it in a message: absolute, since the mistake being explained is often the
/// folder the command was run from.
fn shown(path: &Path) -> String {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()).display().to_string()
}

/// `%XX` escapes decoded, as sqlx decodes a SQLite URL's path.
fn percent_decoded(text: &str) -> anyhow::Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let byte = hex.ok_or_else(|| usage_error(format!("--database: '{text}' has a % that is not followed by two hex digits")))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| usage_error("--database: the SQLite path is not UTF-8 once its % escapes are decoded").into())
}

/// The modes pbi-bridge gives what it creates.
const PRIVATE_DIR: u32 = 0o700;
const PRIVATE_FILE: u32 = 0o600;

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// The file's permission bits, when it is there.
#[cfg(unix)]
fn mode_of(path: &Path) -> Option<u32> {
    std::fs::metadata(path).ok().map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
}

#[cfg(not(unix))]
fn mode_of(_path: &Path) -> Option<u32> {
    None
}

/// Makes `dir` (and any missing parent) readable by its owner only, and says so; an existing folder is left
/// as it is (it is the owner's choice, and what pbi-bridge puts in it is private anyway).
fn create_private_dir(dir: &Path, data_dir: &Path, created: &mut Created) -> anyhow::Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, PRIVATE_DIR);
    builder.create(dir).with_context(|| format!("creating the directory {}", shown(dir)))?;
    // The umask can only take bits away; setting the mode again makes it exact.
    set_mode(dir, PRIVATE_DIR).with_context(|| format!("making {} private", shown(dir)))?;
    let what = if dir == data_dir { "the data directory" } else { "the directory" };
    created.0.push(format!("created {what} {} (mode 0700)", shown(dir)));
    Ok(())
}

/// Creates an empty SQLite database file with mode 0600 before SQLite opens it: SQLite would create it 0644
/// (less the umask), and gives the `-wal` and `-shm` files it makes beside it the database's own mode.
fn create_private_database(path: &Path, created: &mut Created) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, PRIVATE_FILE);
    options.open(path).with_context(|| format!("creating the database {}", shown(path)))?;
    set_mode(path, PRIVATE_FILE).with_context(|| format!("making {} private", shown(path)))?;
    created.0.push(format!("created the database {} (mode 0600)", shown(path)));
    Ok(())
}

/// Files that hold secrets but can be read by others (as earlier versions of pbi-bridge left the database)
/// are made the owner's only, with a note on stderr.
fn make_private(files: &[PathBuf]) -> anyhow::Result<()> {
    for file in files {
        if let Some(mode) = mode_of(file).filter(|m| m & 0o077 != 0) {
            set_mode(file, PRIVATE_FILE).with_context(|| format!("making {} private", shown(file)))?;
            eprintln!("note: made {} private (mode 0600; it was {mode:04o}): it holds pbi-bridge's secrets", shown(file));
        }
    }
    Ok(())
}

impl StoreArgs {
    pub fn key_file(&self) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| self.data_dir.join("keys"))
    }

    pub fn database_url(&self) -> String {
        self.database.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("pbi-bridge.db").display()))
    }

    /// The database's file, read from the URL the way sqlx reads it.
    fn database(&self) -> anyhow::Result<Database> {
        let Some(url) = &self.database else { return Ok(Database::File(self.data_dir.join("pbi-bridge.db"))) };
        let Some(rest) = url.strip_prefix("sqlite:") else { return Ok(Database::Server) };
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() || path == ":memory:" || query.split('&').any(|p| p == "mode=memory") {
            return Ok(Database::InMemory);
        }
        Ok(Database::File(PathBuf::from(percent_decoded(path)?)))
    }

    /// Whether the database already holds pbi-bridge's data (so that its key must exist somewhere).
    async fn database_has_data(&self, database: &Database) -> anyhow::Result<bool> {
        match database {
            Database::File(path) => Ok(std::fs::metadata(path).is_ok_and(|m| m.len() > 0)),
            Database::InMemory => Ok(false),
            Database::Server => {
                // A key of no consequence: nothing is decrypted or written with it, only counted.
                let probe = KeyRing::parse(&KeyRing::new_key_line(1)).context("making a probe key")?;
                let store = Store::connect(&self.database_url(), probe).await.context("opening the database")?;
                let has_data = !store.users().await?.is_empty()
                    || !store.registrations(true).await?.is_empty()
                    || !store.all_connections().await?.is_empty();
                store.close().await;
                Ok(has_data)
            }
        }
    }

    /// Nothing found where the command looked: where that was, and how to point at the right place.
    fn not_here(&self, database: Option<&Path>, key_file: Option<&Path>) -> anyhow::Error {
        let mut missing = Vec::new();
        if let Some(path) = database {
            missing.push(format!("the database {}", shown(path)));
        }
        if let Some(path) = key_file {
            missing.push(format!("the key file {}", shown(path)));
        }
        usage_error(format!(
            "no pbi-bridge data in {}: {} {} not there. Run the command where your data is, or point at it with \
             --data-dir DIR (PBI_BRIDGE__DATA_DIR), and --database URL (PBI_BRIDGE__DATABASE__URL) or --key-file FILE \
             (PBI_BRIDGE__CRYPTO__KEY_FILE) for files kept elsewhere. To start afresh, `pbi-bridge up`, `pbi-bridge serve`, \
             `pbi-bridge registration add` or `pbi-bridge users add` create it.",
            shown(&self.data_dir),
            missing.join(" and "),
            if missing.len() > 1 { "are" } else { "is" },
        ))
        .into()
    }

    /// The database is there but its key is not: a new key could never read what is stored under the old one.
    fn key_missing(&self, database: &str) -> anyhow::Error {
        usage_error(format!(
            "the key file {} is not there, but the database {database} is: point at its key with --key-file FILE \
             (PBI_BRIDGE__CRYPTO__KEY_FILE) or give the keys in PBI_BRIDGE__CRYPTO__KEYS, or run the command with the \
             --data-dir (PBI_BRIDGE__DATA_DIR) that holds both. No new key was made: the secrets and tokens in the \
             database are encrypted under the old one.",
            shown(&self.key_file())
        ))
        .into()
    }

    fn database_name(&self, database: &Database) -> String {
        match database {
            Database::File(path) => shown(path),
            // Only the scheme: a database URL may carry a password.
            _ => format!("at {}://…", self.database_url().split(':').next().unwrap_or_default()),
        }
    }

    /// Opens the store. With `Create::No` nothing is created: a missing database file or key file is refused
    /// with where it was looked for. With `Create::Yes` what is missing is created privately and listed in the
    /// answer — except a key for a database that already holds data, which is refused the same way.
    /// For a process that works the database (`serve`, `up`): on a SQLite file, the right to be its only such
    /// process, held until the returned lock is dropped. SQLite has no way for several servers to share the
    /// background work (no row locks to claim jobs with, one writer at a time), so a second one refuses to
    /// start, saying what to do; PostgreSQL needs no lock (its instances share the work).
    pub fn single_instance(&self) -> anyhow::Result<Option<std::fs::File>> {
        let Database::File(path) = self.database()? else { return Ok(None) };
        let lock_path = PathBuf::from(format!("{}.instance-lock", path.display()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", shown(&lock_path)))?;
        set_mode(&lock_path, PRIVATE_FILE).with_context(|| format!("making {} private", shown(&lock_path)))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(anyhow::anyhow!(
                "another pbi-bridge server is already running on the SQLite database {}: SQLite serves one instance at a time. Stop the other one first, or, to run several instances, use PostgreSQL (--database-url postgres://…; see docs/scaling.md)",
                shown(&path)
            )),
            Err(std::fs::TryLockError::Error(error)) => Err(error).with_context(|| format!("locking {}", shown(&lock_path))),
        }
    }

    pub async fn open(&self, create: Create) -> anyhow::Result<(Store, Created)> {
        let mut created = Created::default();
        let database = self.database()?;
        let keys_text = keys_from_environment();
        let key_file = self.key_file();
        let database_file = match &database {
            Database::File(path) => Some(path.as_path()),
            _ => None,
        };
        let database_missing = database_file.filter(|p| !p.exists());
        let key_missing = keys_text.is_none() && !key_file.exists();
        if create == Create::No && (database_missing.is_some() || key_missing) {
            return Err(match database_missing {
                None => self.key_missing(&self.database_name(&database)),
                Some(path) => self.not_here(Some(path), Some(key_file.as_path()).filter(|_| key_missing)),
            });
        }
        let mut secret_files: Vec<PathBuf> = database_file
            .map(|db| ["", "-wal", "-shm"].iter().map(|suffix| PathBuf::from(format!("{}{suffix}", db.display()))).collect())
            .unwrap_or_default();
        if keys_text.is_none() {
            secret_files.push(key_file.clone());
        }
        make_private(&secret_files)?;

        // A key for a new database is made now and written once the database is known to be new.
        let new_key = if key_missing {
            if self.database_has_data(&database).await? {
                return Err(self.key_missing(&self.database_name(&database)));
            }
            Some(KeyRing::new_key_line(1))
        } else {
            None
        };
        let keys = match (&keys_text, &new_key) {
            (Some(text), _) => KeyRing::parse(text).context("PBI_BRIDGE__CRYPTO__KEYS")?,
            (None, Some(line)) => KeyRing::parse(line).context("the new key")?,
            (None, None) => KeyRing::load(&key_file).with_context(|| format!("the key file {}", shown(&key_file)))?,
        };
        if let Some(line) = &new_key {
            create_private_dir(key_file.parent().unwrap_or(Path::new("")), &self.data_dir, &mut created)?;
            KeyRing::write_new_key_file(&key_file, line)?;
            created.0.push(format!(
                "created the encryption key file {} (mode 0600): back it up with the database; without it the stored secrets and tokens cannot be read",
                shown(&key_file)
            ));
        }
        if let Some(path) = database_missing {
            create_private_dir(path.parent().unwrap_or(Path::new("")), &self.data_dir, &mut created)?;
            create_private_database(path, &mut created)?;
        }
        let store = Store::connect(&self.database_url(), keys).await.context("opening the database")?;
        Ok((store, created))
    }

    /// `keys add`: appends a key to the key file, or starts a key file with key 1 when there is none and no
    /// database holds data yet.
    pub async fn add_key(&self) -> anyhow::Result<(u32, Created)> {
        if keys_from_environment().is_some() {
            anyhow::bail!(usage_error(
                "the keys come from PBI_BRIDGE__CRYPTO__KEYS, not a key file: add the new key (ID:BASE64, the next id) to that \
                 setting yourself, or unset it to use the key file"
            ));
        }
        let path = self.key_file();
        let mut created = Created::default();
        if !path.exists() {
            let database = self.database()?;
            if self.database_has_data(&database).await? {
                return Err(self.key_missing(&self.database_name(&database)));
            }
            create_private_dir(path.parent().unwrap_or(Path::new("")), &self.data_dir, &mut created)?;
            KeyRing::write_new_key_file(&path, &KeyRing::new_key_line(1))?;
            created
                .0
                .push(format!("created the encryption key file {} (mode 0600) with key 1: back it up with the database", shown(&path)));
            return Ok((1, created));
        }
        make_private(std::slice::from_ref(&path))?;
        let id = KeyRing::load(&path).with_context(|| format!("the key file {}", shown(&path)))?.current_key_id() + 1;
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).with_context(|| format!("opening {}", shown(&path)))?;
        std::io::Write::write_all(&mut file, secrecy::ExposeSecret::expose_secret(&KeyRing::new_key_line(id)).as_bytes())
            .context("writing the key")?;
        Ok((id, created))
    }
}
