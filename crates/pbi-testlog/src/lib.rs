//! Test support for proving where secrets never appear: everything a test binary logs, and the bytes of a
//! database as they lie on disk.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use tracing_subscriber::layer::SubscriberExt;

/// What every capture records: pbi-bridge's own crates and the HTTP connection pool and SQL library under
/// them (reqwest logs through `log`, not tracing), at every level. One filter for the whole binary, because a global subscriber is installed once: a per-call filter
/// would silently keep whichever test asked first (and miss the crates the others named).
pub const FILTER: &str = "pbi_=trace,hyper_util=trace,sqlx=trace";

/// The test binary's log output, kept in memory, and the crates that have logged anything.
#[derive(Clone, Default)]
pub struct Captured {
    text: Arc<Mutex<Vec<u8>>>,
    crates: Arc<Mutex<BTreeSet<String>>>,
}

impl Captured {
    /// Everything logged so far, by every test of the binary.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.text.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }

    /// Panics unless each of `crates` (a target's first segment, e.g. `pbi_auth`) has logged at least one
    /// event. A scan of the logs for secrets means nothing for a crate whose events never arrived.
    pub fn assert_heard_from(&self, crates: &[&str]) {
        let heard = self.crates.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let missing: Vec<&&str> = crates.iter().filter(|c| !heard.contains(**c)).collect();
        assert!(missing.is_empty(), "no event was captured from {missing:?}; captured crates: {heard:?}");
    }

    /// Panics if `secret` (or its tail: see [`holds`]) is anywhere in the logs.
    pub fn assert_lacks(&self, what: &str, secret: &str) {
        let text = self.text.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(!holds(&text, secret), "the {what} is in the logs");
    }
}

/// The bytes of an SQLite database as they lie on disk: the main file and its `-wal` and `-shm` files. In
/// WAL mode a committed row can live only in `-wal` until a checkpoint, so a scan of the main file alone
/// would pass with the plaintext still on disk.
pub struct DatabaseFiles {
    bytes: Vec<u8>,
}

impl DatabaseFiles {
    /// Reads `path` and its companions, whether or not the store is still open. Panics when the main file is
    /// missing or smaller than one page: a scan of nothing proves nothing.
    pub fn read(path: &Path) -> Self {
        let main = std::fs::read(path).unwrap_or_else(|e| panic!("reading the database file {}: {e}", path.display()));
        assert!(main.len() >= 4096, "the database file {} holds {} bytes: nothing to scan", path.display(), main.len());
        let mut bytes = main;
        for suffix in ["-wal", "-shm"] {
            bytes.extend(std::fs::read(format!("{}{suffix}", path.display())).unwrap_or_default());
        }
        Self { bytes }
    }

    /// Panics if `secret` (or its tail) is anywhere in the files.
    pub fn assert_lacks(&self, what: &str, secret: &str) {
        assert!(!holds(&self.bytes, secret), "the {what} is readable in the database files");
    }

    /// Whether `needle` is in the files as it is: to show a scan can see what it looks for.
    pub fn contains(&self, needle: &[u8]) -> bool {
        find(&self.bytes, needle)
    }
}

/// Whether `haystack` holds `secret` whole or its last 24 bytes (the signature part of a JWT, the end of a
/// secret cut by a log line): a leak of a part is still a leak.
pub fn holds(haystack: &[u8], secret: &str) -> bool {
    assert!(!secret.is_empty(), "scanning for an empty secret proves nothing");
    let secret = secret.as_bytes();
    find(haystack, secret) || find(haystack, &secret[secret.len().saturating_sub(24)..])
}

fn find(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Notes the crate of every event that passes the filter.
struct CrateRecorder(Arc<Mutex<BTreeSet<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for CrateRecorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let target = event.metadata().target();
        let name = target.split("::").next().unwrap_or(target);
        let mut crates = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !crates.contains(name) {
            crates.insert(name.to_owned());
        }
    }
}

/// Installs the binary's one global subscriber (filtered by [`FILTER`]) and returns what it captures.
/// Global, because tracing caches each callsite's interest globally: a thread-scoped subscriber misses
/// events when tests run in parallel.
pub fn capture() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new(FILTER))
            .with(CrateRecorder(logs.crates.clone()))
            .with(tracing_subscriber::fmt::layer().with_writer(logs.clone()).with_ansi(false));
        // Another global subscriber would mean the binary set one up itself; the capture then stays empty and
        // the tests that read it fail (`assert_heard_from` says so).
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn captures_every_level_of_our_crates_and_names_the_crates_heard_from() {
        let logs = super::capture();
        tracing::trace!(answer = 42, "captured");
        tracing::info!(target: "h2::codec", "someone else's chatter");
        let text = logs.text();
        assert!(text.contains("captured answer=42"), "{text}");
        assert!(!text.contains("someone else's chatter"), "{text}");
        logs.assert_heard_from(&["pbi_testlog"]);
        let unheard = std::panic::catch_unwind(|| logs.assert_heard_from(&["pbi_testlog", "pbi_nowhere"]));
        assert!(unheard.is_err(), "a crate that logged nothing fails the check");
    }

    #[test]
    fn a_secret_or_its_tail_is_found_wherever_it_lies() {
        let secret = "eyJhbGciOi.payload-part.signature-of-the-token-xyz";
        assert!(super::holds(format!("token={secret} end").as_bytes(), secret));
        assert!(super::holds(b"...signature-of-the-token-xyz", secret), "the tail alone");
        assert!(!super::holds(b"eyJhbGciOi.payload-part.", secret));
    }

    #[test]
    fn database_files_include_the_write_ahead_log() {
        let dir = std::env::temp_dir().join(format!("pbi-testlog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let db = dir.join("x.db");
        std::fs::write(&db, vec![0u8; 4096]).expect("main");
        std::fs::write(dir.join("x.db-wal"), b"plaintext-only-in-the-wal").expect("wal");
        let files = super::DatabaseFiles::read(&db);
        let leaked = std::panic::catch_unwind(|| files.assert_lacks("token", "plaintext-only-in-the-wal"));
        assert!(leaked.is_err(), "a row only in -wal is found");
        std::fs::write(&db, b"tiny").expect("main");
        assert!(std::panic::catch_unwind(|| super::DatabaseFiles::read(&db)).is_err(), "an empty file is no scan");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
