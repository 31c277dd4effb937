//! Durable background work for pbi-bridge on River (`riverqueue`): jobs that run later, again, or on another
//! instance, with retries, snoozes, unique keys and transactional enqueueing. The rest of pbi-bridge names only
//! the types here, never River's.

mod engine;
pub mod metrics;
pub mod schedule;
mod schedules;

pub use engine::{Engine, EngineConfig, Enqueued, JobInfo, JobState, JobsError, MAX_SNOOZE, NewJob, Registry, Schedulable};
pub use schedules::{Occurrence, ScheduleSpec, parse_stored, recurrence_text};

use std::time::Duration;

/// A kind of background work: its arguments, stored as JSON, and its name, by area (`connections.keepalive`,
/// `housekeeping.purge`). A job never holds a token or a secret: it names what it acts as.
pub trait Job: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {
    const KIND: &'static str;
    /// Attempts before the job ends `discarded` with its last error.
    const MAX_ATTEMPTS: u16 = 10;
}

/// What a handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Run again after this long without spending an attempt (a 429's `Retry-After`, at most an hour).
    Snooze(Duration),
    /// Stop for good: nothing to do any more (the owner is gone, say). Kept as `cancelled` with the reason.
    Cancel(String),
}

/// A failed attempt: retried with backoff (or exactly after `retry_after`) until the job's attempts run out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), retry_after: None }
    }

    /// Retried after exactly `delay` (for instance Power BI's `Retry-After`).
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        Self { message: message.into(), retry_after: Some(delay) }
    }
}

/// One attempt of a job, as its handler sees it.
#[derive(Debug, Clone)]
pub struct Running<J> {
    pub id: i64,
    pub args: J,
    /// Counts from 1.
    pub attempt: u16,
    pub unique_key: Option<String>,
}

/// Runs the jobs of one kind.
pub trait Handler<J: Job>: Send + Sync + 'static {
    fn run(&self, job: Running<J>) -> impl Future<Output = Result<Outcome, Failure>> + Send;
}
