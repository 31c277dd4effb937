//! Captures everything a test binary logs, for tests that prove what is and is not logged (test support).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The test binary's log output, kept in memory.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far, by every test of the binary.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
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

/// Installs the binary's one global subscriber with `filter` (an `EnvFilter` directive; the first call's
/// wins) and returns what it captures. Global, because tracing caches each callsite's interest globally:
/// a thread-scoped subscriber misses events when tests run in parallel.
pub fn capture(filter: &str) -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let subscriber = tracing_subscriber::fmt().with_env_filter(filter).with_writer(logs.clone()).with_ansi(false).finish();
        // Another global subscriber would mean the binary set one up itself; the capture then stays empty and
        // the tests that read it fail, which says so.
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn captures_events_that_pass_the_filter() {
        let logs = super::capture("pbi_testlog=debug");
        tracing::debug!(answer = 42, "captured");
        tracing::trace!("too detailed");
        let text = logs.text();
        assert!(text.contains("captured answer=42"), "{text}");
        assert!(!text.contains("too detailed"), "{text}");
    }
}
