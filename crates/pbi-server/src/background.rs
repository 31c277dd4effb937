//! The background work pbi-bridge runs on the job engine (`pbi-jobs`): what each kind does, and the schedules
//! the server keeps.
//!
//! - `housekeeping.purge`, every hour: forgets expired sign-in states and sessions (River's own cleaner, run by
//!   the leader, deletes finished jobs: `EngineConfig::finished_retention`, `discarded_retention`).
//! - `connections.keepalive`, every hour: finds the active connections whose tokens were last issued longer ago
//!   than `keepalive_every` less an hour, and enqueues one `connections.refresh` for each (unique by connection,
//!   so a sweep never doubles one still waiting). Entra ends a refresh token unused for 90 days; refreshing
//!   daily keeps every wanted connection alive however long its user stays away.
//! - `connections.refresh`: refreshes one connection through the broker. A grant that is gone marks it "needs
//!   sign-in" (its owner sees a banner on every page); an outage is retried with backoff and marks nothing.
//! - `connections.report`, daily: logs the connections that have not worked for `REPORT_FAILING_AFTER` (admins
//!   see them on every admin page too).
//! - `registrations.key_check`, daily: logs a warning 30, 7 and 1 days before an application key expires, and
//!   an error once it has (admins see it on every admin page, and as a metric).

use crate::notices;
use pbi_auth::{Auth, AuthError, KeptAlive};
use pbi_clock::Clock;
use pbi_jobs::schedule::Schedule;
use pbi_jobs::{Engine, EngineConfig, Failure, Handler, Job, JobsError, NewJob, Outcome, Registry, Running, ScheduleSpec};
use pbi_store::Store;
use pbi_subscriptions::deliveries::{Deliver, Deliveries, DeliverySettings};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use uuid::Uuid;

/// How background work is paced.
#[derive(Debug, Clone)]
pub struct BackgroundSettings {
    /// Every active connection is refreshed at least this often (Entra's limit is 90 days without use).
    pub keepalive_every: Duration,
    pub engine: EngineConfig,
    pub deliveries: DeliverySettings,
}

impl Default for BackgroundSettings {
    fn default() -> Self {
        Self { keepalive_every: Duration::from_secs(86_400), engine: EngineConfig::default(), deliveries: DeliverySettings::default() }
    }
}

/// How often housekeeping runs.
pub const PURGE_EVERY: Duration = Duration::from_secs(3600);
/// How often the keep-alive looks for connections to refresh.
pub const KEEPALIVE_SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// How often the daily checks (failing connections, application keys) run.
pub const DAILY: Duration = Duration::from_secs(86_400);
/// A connection that has not worked for this long is reported to administrators.
pub const REPORT_FAILING_AFTER: Duration = Duration::from_secs(4 * 86_400);
/// The most connections one keep-alive sweep enqueues (the rest wait for the next sweep, an hour later).
const KEEPALIVE_BATCH_LIMIT: u32 = 100_000;
/// Refresh jobs enqueued per statement.
const ENQUEUE_CHUNK: usize = 1000;

/// Forgets what has expired: OAuth `state`s of sign-ins never finished, and sessions past their end.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Purge {}

impl Job for Purge {
    const KIND: &'static str = "housekeeping.purge";
    const MAX_ATTEMPTS: u16 = 5;
}

/// Finds the connections due a refresh and enqueues one `RefreshConnection` each.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct KeepAlive {}

impl Job for KeepAlive {
    const KIND: &'static str = "connections.keepalive";
    const MAX_ATTEMPTS: u16 = 5;
}

/// Refreshes one connection, so that its grant does not die of disuse.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RefreshConnection {
    pub connection: Uuid,
}

impl Job for RefreshConnection {
    const KIND: &'static str = "connections.refresh";
    /// With River's backoff (attempt⁴ seconds) ten attempts span about four hours; the next sweep starts again.
    const MAX_ATTEMPTS: u16 = 10;
}

/// Logs the connections that have not worked for days.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ReportFailing {}

impl Job for ReportFailing {
    const KIND: &'static str = "connections.report";
    const MAX_ATTEMPTS: u16 = 5;
}

/// Logs application keys that expire soon or have expired.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct KeyCheck {}

impl Job for KeyCheck {
    const KIND: &'static str = "registrations.key_check";
    const MAX_ATTEMPTS: u16 = 5;
}

fn failed(what: &str) -> impl Fn(pbi_store::StoreError) -> Failure + '_ {
    move |e| Failure::new(format!("{what}: {e}"))
}

struct PurgeExpired {
    store: Store,
    clock: Clock,
}

impl Handler<Purge> for PurgeExpired {
    async fn run(&self, _job: Running<Purge>) -> Result<Outcome, Failure> {
        let now = self.clock.unix();
        let states = self.store.purge_states(now).await.map_err(failed("purging sign-in states"))?;
        let sessions = self.store.purge_sessions(now).await.map_err(failed("purging sessions"))?;
        tracing::info!(states, sessions, "housekeeping: forgot what had expired");
        Ok(Outcome::Done)
    }
}

/// A connection counts as renewed when its tokens were issued within `keepalive_every` less one sweep
/// interval: so each is refreshed by the first sweep after it turns that old, within `keepalive_every`.
fn renewed_since(now: i64, keepalive_every: Duration) -> i64 {
    let window = keepalive_every.saturating_sub(KEEPALIVE_SWEEP_EVERY).max(Duration::from_secs(60));
    now - i64::try_from(window.as_secs()).unwrap_or(i64::MAX)
}

struct EnqueueRefreshes {
    store: Store,
    clock: Clock,
    keepalive_every: Duration,
    /// The engine, set once it has started (the handler is registered before it exists).
    engine: Arc<OnceLock<Weak<Engine>>>,
}

impl Handler<KeepAlive> for EnqueueRefreshes {
    async fn run(&self, _job: Running<KeepAlive>) -> Result<Outcome, Failure> {
        let engine = self.engine.get().and_then(Weak::upgrade).ok_or_else(|| Failure::new("the engine is stopping"))?;
        let due = self
            .store
            .connections_to_keep_alive(renewed_since(self.clock.unix(), self.keepalive_every), KEEPALIVE_BATCH_LIMIT)
            .await
            .map_err(failed("finding the connections to keep alive"))?;
        let mut enqueued = 0;
        for chunk in due.chunks(ENQUEUE_CHUNK) {
            let jobs = chunk
                .iter()
                .map(|&connection| NewJob::now(RefreshConnection { connection }).unique(format!("refresh:{connection}")))
                .collect();
            let results = engine.enqueue_many(jobs).await.map_err(|e| Failure::new(format!("enqueueing refreshes: {e}")))?;
            enqueued += results.iter().filter(|r| !r.duplicate).count();
        }
        tracing::info!(due = due.len(), enqueued, "keep-alive: connections to refresh");
        Ok(Outcome::Done)
    }
}

struct RefreshOne {
    auth: Arc<Auth>,
    clock: Clock,
    keepalive_every: Duration,
}

impl Handler<RefreshConnection> for RefreshOne {
    async fn run(&self, job: Running<RefreshConnection>) -> Result<Outcome, Failure> {
        let id = job.args.connection;
        match self.auth.keep_alive(id, renewed_since(self.clock.unix(), self.keepalive_every)).await {
            Ok(KeptAlive::Renewed) => {
                tracing::info!(connection = %id, "keep-alive: refreshed");
                Ok(Outcome::Done)
            }
            Ok(KeptAlive::AlreadyRenewed | KeptAlive::NotActive(_)) => Ok(Outcome::Done),
            // Marked by the broker; its owner sees the banner, and nothing is retried until they sign in.
            Err(AuthError::NeedsSignIn { reason, .. }) => {
                tracing::warn!(connection = %id, %reason, "keep-alive: the connection needs its user to sign in again");
                Ok(Outcome::Done)
            }
            Err(AuthError::NotFound(_)) => Ok(Outcome::Cancel("the connection no longer exists".into())),
            // The registration must be fixed by an administrator (the key check and the report say so): the
            // next sweep tries again.
            Err(error @ (AuthError::RegistrationDisabled(_) | AuthError::RegistrationRemoved { .. } | AuthError::SecretExpired { .. })) => {
                Ok(Outcome::Cancel(error.to_string()))
            }
            Err(error) => Err(Failure::new(error.to_string())),
        }
    }
}

struct LogFailing {
    store: Store,
    clock: Clock,
}

impl Handler<ReportFailing> for LogFailing {
    async fn run(&self, _job: Running<ReportFailing>) -> Result<Outcome, Failure> {
        let failing = notices::failing_connections(&self.store, self.clock.unix()).await.map_err(failed("finding failing connections"))?;
        for connection in &failing {
            tracing::warn!(
                connection = %connection.id,
                account = %connection.account.upn,
                since = %crate::admin::date(connection.failing_since.unwrap_or_default()),
                error = connection.last_error.as_deref().unwrap_or("unknown"),
                "a Power BI connection has not worked for 4 days or more"
            );
        }
        Ok(Outcome::Done)
    }
}

struct LogKeys {
    store: Store,
    clock: Clock,
}

impl Handler<KeyCheck> for LogKeys {
    async fn run(&self, _job: Running<KeyCheck>) -> Result<Outcome, Failure> {
        let warnings = notices::key_warnings(&self.store, self.clock.unix()).await.map_err(failed("reading the application keys"))?;
        for warning in &warnings {
            if warning.expired() {
                tracing::error!(registration = %warning.registration, "{}", warning.sentence(self.clock.unix()));
            } else {
                tracing::warn!(registration = %warning.registration, "{}", warning.sentence(self.clock.unix()));
            }
        }
        Ok(Outcome::Done)
    }
}

fn every(kind: &'static str, interval: Duration) -> Result<ScheduleSpec, JobsError> {
    Ok(ScheduleSpec {
        kind,
        owner: "system".into(),
        args: serde_json::json!({}),
        schedule: Schedule::every(interval, "UTC").map_err(|e| JobsError::Invalid(e.to_string()))?,
    })
}

/// Starts the engine with every kind pbi-bridge runs, and makes sure the server's own schedules exist.
pub async fn start(store: Store, clock: Clock, auth: Arc<Auth>, settings: &BackgroundSettings) -> Result<Arc<Engine>, JobsError> {
    let engine_slot = Arc::new(OnceLock::new());
    let keepalive_every = settings.keepalive_every;
    // Deliveries call Power BI and the items' HTTP sources; neither is followed through a redirect.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default();
    let deliveries = Deliveries::new(store.clone(), auth.clone(), http, clock.clone(), settings.deliveries.clone());
    let registry = Registry::new()
        .with::<Purge, _>(PurgeExpired { store: store.clone(), clock: clock.clone() })?
        .with::<KeepAlive, _>(EnqueueRefreshes {
            store: store.clone(),
            clock: clock.clone(),
            keepalive_every,
            engine: engine_slot.clone(),
        })?
        .with::<RefreshConnection, _>(RefreshOne { auth, clock: clock.clone(), keepalive_every })?
        .with::<ReportFailing, _>(LogFailing { store: store.clone(), clock: clock.clone() })?
        .with::<KeyCheck, _>(LogKeys { store: store.clone(), clock: clock.clone() })?
        .with::<Deliver, _>(deliveries.job())?;
    let engine = Arc::new(Engine::start(store, clock, registry, &settings.engine).await?);
    let _ = engine_slot.set(Arc::downgrade(&engine));
    deliveries.attach(&engine);
    for spec in [
        every(Purge::KIND, PURGE_EVERY)?,
        every(KeepAlive::KIND, KEEPALIVE_SWEEP_EVERY)?,
        every(ReportFailing::KIND, DAILY)?,
        every(KeyCheck::KIND, DAILY)?,
    ] {
        engine.schedule(&spec).await?;
    }
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_due_once_its_tokens_are_a_day_less_an_hour_old() {
        let day = Duration::from_secs(86_400);
        assert_eq!(renewed_since(1_000_000, day), 1_000_000 - 23 * 3600);
        // A keep-alive asked for more often than the sweep still waits a minute between refreshes.
        assert_eq!(renewed_since(1_000_000, Duration::from_secs(600)), 1_000_000 - 60);
    }
}
