//! What this instance's workers did, for `/metrics`: attempts started, how they ended, and how late each
//! started after it was due. Counted in memory since the engine started (one set per process, as Prometheus
//! expects); the queue's depth is read from the database instead (`Store::job_counts`), since it is shared.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The upper bounds (seconds) of the start-lateness histogram: from "at once" to "five minutes late".
pub const LATENESS_BUCKETS: [f64; 12] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AttemptOutcome {
    Completed,
    Snoozed,
    Cancelled,
    /// Failed, and will be retried.
    Failed,
    /// Failed on its last attempt: the job ends `discarded`.
    Discarded,
}

impl AttemptOutcome {
    pub const ALL: [AttemptOutcome; 5] =
        [AttemptOutcome::Completed, AttemptOutcome::Snoozed, AttemptOutcome::Cancelled, AttemptOutcome::Failed, AttemptOutcome::Discarded];

    pub fn name(self) -> &'static str {
        match self {
            AttemptOutcome::Completed => "completed",
            AttemptOutcome::Snoozed => "snoozed",
            AttemptOutcome::Cancelled => "cancelled",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Discarded => "discarded",
        }
    }
}

/// One kind's figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindFigures {
    /// Attempts started.
    pub attempts: u64,
    /// Attempts ended, by outcome (every outcome is present, zero or not).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Attempts that started within each bound of `LATENESS_BUCKETS` (not cumulative), and those later than
    /// the last bound.
    pub lateness_buckets: [u64; LATENESS_BUCKETS.len() + 1],
    pub lateness_sum_seconds: f64,
}

impl KindFigures {
    fn with_every_outcome() -> Self {
        Self { outcomes: AttemptOutcome::ALL.iter().map(|o| (o.name(), 0)).collect(), ..Self::default() }
    }
}

/// The figures of every kind this instance has started an attempt of.
#[derive(Debug, Default)]
pub struct JobMetrics {
    kinds: Mutex<BTreeMap<&'static str, KindFigures>>,
}

impl JobMetrics {
    fn with_kind(&self, kind: &'static str, change: impl FnOnce(&mut KindFigures)) {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        change(kinds.entry(kind).or_insert_with(KindFigures::with_every_outcome));
    }

    /// An attempt of `kind` started `late` after it was due.
    pub(crate) fn started(&self, kind: &'static str, late: Duration) {
        let seconds = late.as_secs_f64();
        let bucket = LATENESS_BUCKETS.iter().position(|bound| seconds <= *bound).unwrap_or(LATENESS_BUCKETS.len());
        self.with_kind(kind, |figures| {
            figures.attempts += 1;
            figures.lateness_buckets[bucket] += 1;
            figures.lateness_sum_seconds += seconds;
        });
    }

    pub(crate) fn ended(&self, kind: &'static str, outcome: AttemptOutcome) {
        self.with_kind(kind, |figures| *figures.outcomes.entry(outcome.name()).or_default() += 1);
    }

    /// A copy of the figures, by kind.
    pub fn snapshot(&self) -> BTreeMap<&'static str, KindFigures> {
        self.kinds.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_falls_in_the_first_bucket_that_holds_it() {
        let metrics = JobMetrics::default();
        for late in [0, 10, 11, 999, 1000, 400_000] {
            metrics.started("k", Duration::from_millis(late));
        }
        metrics.ended("k", AttemptOutcome::Discarded);
        let figures = &metrics.snapshot()["k"];
        assert_eq!(figures.attempts, 6);
        assert_eq!(figures.lateness_buckets, [2, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 1], "10 ms is in the first, 11 ms in the second");
        assert_eq!(figures.outcomes["discarded"], 1);
        assert_eq!(figures.outcomes["completed"], 0, "every outcome is there, zero or not");
        assert!((figures.lateness_sum_seconds - 402.02).abs() < 1e-9);
    }
}
