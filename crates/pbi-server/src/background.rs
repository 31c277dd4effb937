//! The background work pbi-bridge runs on the job engine (`pbi-jobs`): what each kind does, and the schedules
//! the server keeps. Today: housekeeping, which forgets expired sign-in states and sessions every hour.

use pbi_clock::Clock;
use pbi_jobs::schedule::Schedule;
use pbi_jobs::{Engine, EngineConfig, Failure, Handler, Job, JobsError, Outcome, Registry, Running, ScheduleSpec};
use pbi_store::Store;
use std::time::Duration;

/// Forgets what has expired: OAuth `state`s of sign-ins never finished, and sessions past their end.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Purge {}

impl Job for Purge {
    const KIND: &'static str = "housekeeping.purge";
    const MAX_ATTEMPTS: u16 = 5;
}

struct PurgeExpired {
    store: Store,
    clock: Clock,
}

impl Handler<Purge> for PurgeExpired {
    async fn run(&self, _job: Running<Purge>) -> Result<Outcome, Failure> {
        let now = self.clock.unix();
        let states = self.store.purge_states(now).await.map_err(|e| Failure::new(format!("purging sign-in states: {e}")))?;
        let sessions = self.store.purge_sessions(now).await.map_err(|e| Failure::new(format!("purging sessions: {e}")))?;
        tracing::info!(states, sessions, "housekeeping: forgot what had expired");
        Ok(Outcome::Done)
    }
}

/// How often housekeeping runs.
pub const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Starts the engine with every kind pbi-bridge runs, and makes sure the server's own schedules exist.
pub async fn start(store: Store, clock: Clock) -> Result<Engine, JobsError> {
    let registry = Registry::new().with::<Purge, _>(PurgeExpired { store: store.clone(), clock: clock.clone() })?;
    let engine = Engine::start(store, clock, registry, &EngineConfig::default()).await?;
    let purge = ScheduleSpec {
        kind: Purge::KIND,
        owner: "system".into(),
        args: serde_json::json!({}),
        schedule: Schedule::every(PURGE_EVERY, "UTC").map_err(|e| JobsError::Invalid(e.to_string()))?,
    };
    engine.schedule(&purge).await?;
    Ok(engine)
}
