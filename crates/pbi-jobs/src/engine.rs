//! The engine: River's client on the store's database, behind pbi-bridge's own types.

use crate::metrics::{AttemptOutcome, JobMetrics};
use crate::schedules::Occurrence;
use crate::{Failure, Handler, Job, Outcome, Running};
use futures_util::future::BoxFuture;
use pbi_clock::Clock;
use pbi_store::{Pool, Store, StoreTx};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The engine's database failed or could not be reached; nothing was changed.
    #[error("the job engine's database: {0}")]
    Database(String),
    /// The job cannot be enqueued as given (bad arguments, an unknown kind, a bad option).
    #[error("the job cannot be enqueued: {0}")]
    Invalid(String),
    #[error("there is no such job")]
    NotFound,
    #[error("the job engine: {0}")]
    Engine(String),
}

impl From<riverqueue::Error> for JobsError {
    fn from(error: riverqueue::Error) -> Self {
        match &error {
            riverqueue::Error::Database(_) => JobsError::Database(error.to_string()),
            riverqueue::Error::InvalidJob(_) | riverqueue::Error::UnknownJobKind { .. } => JobsError::Invalid(error.to_string()),
            riverqueue::Error::NotFound(_) => JobsError::NotFound,
            _ => JobsError::Engine(error.to_string()),
        }
    }
}

impl From<pbi_store::StoreError> for JobsError {
    fn from(error: pbi_store::StoreError) -> Self {
        JobsError::Database(error.to_string())
    }
}

pub type Result<T, E = JobsError> = std::result::Result<T, E>;

/// River's arguments for a job of ours: the job's own arguments and its unique key.
#[derive(Serialize, Deserialize)]
#[serde(bound = "J: Job")]
struct Envelope<J> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    /// Set when the job is a schedule's occurrence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    occurrence: Option<Occurrence>,
    args: J,
}

impl<J: Job> riverqueue::JobArgs for Envelope<J> {
    const KIND: &'static str = J::KIND;

    fn default_insert_opts() -> riverqueue::InsertOpts {
        riverqueue::InsertOpts::default().with_max_attempts(i32::from(J::MAX_ATTEMPTS))
    }

    /// Only the key: a job enqueued with a key is unique by that key alone.
    fn unique_fields() -> &'static [&'static [&'static str]] {
        &[&["key"]]
    }
}

/// A job to enqueue: its arguments, when it may run, and an optional unique key (a second job of the same kind
/// with the same key, while the first is not finished, is not enqueued).
pub struct NewJob<J> {
    pub args: J,
    pub run_at: Option<OffsetDateTime>,
    pub unique_key: Option<String>,
}

impl<J: Job> NewJob<J> {
    pub fn now(args: J) -> Self {
        Self { args, run_at: None, unique_key: None }
    }

    pub fn at(mut self, run_at: OffsetDateTime) -> Self {
        self.run_at = Some(run_at);
        self
    }

    pub fn unique(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    fn into_river(self) -> Result<(Envelope<J>, riverqueue::InsertOpts)> {
        let mut opts = <Envelope<J> as riverqueue::JobArgs>::default_insert_opts();
        if let Some(at) = self.run_at {
            opts = opts.with_scheduled_at(timestamp(at)?);
        }
        if self.unique_key.is_some() {
            // Unique among jobs not yet finished; once one has completed, the same key may be enqueued again.
            opts = opts.with_unique(riverqueue::UniqueOpts::default().with_by_args(true).with_by_state(UNFINISHED));
        }
        Ok((Envelope { key: self.unique_key, occurrence: None, args: self.args }, opts))
    }
}

const UNFINISHED: [riverqueue::JobState; 5] = [
    riverqueue::JobState::Available,
    riverqueue::JobState::Pending,
    riverqueue::JobState::Retryable,
    riverqueue::JobState::Running,
    riverqueue::JobState::Scheduled,
];

/// The result of an enqueue: the job's id, and whether a job with the same unique key was already there (then
/// the id is that job's and nothing new was enqueued).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: i64,
    pub duplicate: bool,
}

fn timestamp(at: OffsetDateTime) -> Result<riverqueue::jiff::Timestamp> {
    let nanos = at.unix_timestamp_nanos();
    riverqueue::jiff::Timestamp::from_nanosecond(nanos).map_err(|e| JobsError::Invalid(format!("run time {at}: {e}")))
}

fn instant(at: riverqueue::jiff::Timestamp) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(at.as_nanosecond()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Runs our handler as River's worker for that kind.
struct Adapter<J, H> {
    handler: Arc<H>,
    metrics: Arc<JobMetrics>,
    core: Arc<OnceLock<Arc<Core>>>,
    kind: PhantomData<fn() -> J>,
}

impl<J: Job, H: Handler<J>> riverqueue::Worker<Envelope<J>> for Adapter<J, H> {
    type Error = Failure;

    /// The delay a failure asks for (e.g. `Retry-After`), else River's backoff.
    fn next_retry(
        &self,
        _job: &riverqueue::Job<Envelope<J>>,
        error: &riverqueue::WorkError,
        _now: riverqueue::jiff::Timestamp,
    ) -> Option<Duration> {
        error.downcast_ref::<Failure>().and_then(|f| f.retry_after)
    }

    async fn work(&self, context: riverqueue::WorkContext, job: riverqueue::Job<Envelope<J>>) -> Result<riverqueue::WorkOutcome, Failure> {
        let last_attempt = job.row.attempt >= job.row.max_attempts;
        let occurrence = job.args.occurrence;
        let running = Running {
            id: job.row.id,
            attempt: u16::try_from(job.row.attempt).unwrap_or(u16::MAX),
            unique_key: job.args.key,
            args: job.args.args,
        };
        let args = serde_json::to_string(&running.args).unwrap_or_default();
        if let (Some(occurrence), Some(core)) = (occurrence, self.core.get())
            && core.is_stale(occurrence).await.map_err(|e| Failure::new(format!("reading the occurrence's schedule: {e}")))?
        {
            // The schedule was edited (or deleted) after this occurrence was enqueued: its next run is another
            // one, which the sweeper enqueues; this one must not run as well.
            let _ = context.record_output(serde_json::json!({ "cancelled": "the schedule moved on to another occurrence" }));
            return Ok(riverqueue::WorkOutcome::Cancel);
        }
        let late = OffsetDateTime::now_utc() - instant(job.row.scheduled_at);
        self.metrics.started(J::KIND, late.try_into().unwrap_or_default());
        let result = self.handler.run(running).await;
        self.metrics.ended(
            J::KIND,
            match &result {
                Ok(Outcome::Done) => AttemptOutcome::Completed,
                Ok(Outcome::Snooze(_)) => AttemptOutcome::Snoozed,
                Ok(Outcome::Cancel(_)) => AttemptOutcome::Cancelled,
                Err(_) if last_attempt => AttemptOutcome::Discarded,
                Err(_) => AttemptOutcome::Failed,
            },
        );
        if let (Some(occurrence), Some(core)) = (occurrence, self.core.get()) {
            // An occurrence that ended (done, cancelled, or failed for the last time) hands over to the next one.
            let ended = match &result {
                Ok(Outcome::Done) => Some(("completed", None, true)),
                Ok(Outcome::Cancel(reason)) => Some(("cancelled", Some(reason.clone()), false)),
                Err(failure) if last_attempt => Some(("failed", Some(failure.message.clone()), false)),
                _ => None,
            };
            if let Some((outcome, error, complete)) = ended {
                let end = OccurrenceEnd { kind: J::KIND, args: &args, occurrence, outcome, error: error.as_deref() };
                core.end_occurrence(&context, end, complete).await.map_err(|e| Failure::new(format!("recording the occurrence: {e}")))?;
            }
        }
        match result? {
            Outcome::Done => Ok(riverqueue::WorkOutcome::Complete),
            Outcome::Snooze(delay) => Ok(riverqueue::WorkOutcome::Snooze(delay.min(MAX_SNOOZE))),
            Outcome::Cancel(reason) => {
                // River keeps no reason with a cancel: it is recorded as the job's output.
                let _ = context.record_output(serde_json::json!({ "cancelled": reason }));
                Ok(riverqueue::WorkOutcome::Cancel)
            }
        }
    }
}

/// How a schedule's occurrence ended.
pub(crate) struct OccurrenceEnd<'a> {
    pub kind: &'static str,
    pub args: &'a str,
    pub occurrence: Occurrence,
    pub outcome: &'static str,
    pub error: Option<&'a str>,
}

/// Enqueues an occurrence of one kind from its stored (JSON) arguments: what the sweeper and the end of an
/// occurrence use, knowing the kind only by name.
pub(crate) trait OccurrenceKind: Send + Sync {
    fn enqueue<'a>(
        &'a self,
        client: &'a riverqueue::Client,
        tx: &'a mut StoreTx<'static>,
        args: &'a str,
        occurrence: Occurrence,
        run_at: Option<OffsetDateTime>,
    ) -> BoxFuture<'a, Result<Enqueued>>;
}

struct KindOf<J>(PhantomData<fn() -> J>);

impl<J: Job> OccurrenceKind for KindOf<J> {
    fn enqueue<'a>(
        &'a self,
        client: &'a riverqueue::Client,
        tx: &'a mut StoreTx<'static>,
        args: &'a str,
        occurrence: Occurrence,
        run_at: Option<OffsetDateTime>,
    ) -> BoxFuture<'a, Result<Enqueued>> {
        Box::pin(async move {
            let args: J = serde_json::from_str(args).map_err(|e| JobsError::Invalid(format!("{}: stored arguments: {e}", J::KIND)))?;
            let mut job = NewJob::now(args).unique(occurrence.unique_key());
            job.run_at = run_at;
            let (mut envelope, opts) = job.into_river()?;
            envelope.occurrence = Some(occurrence);
            insert_in(client, tx, envelope, opts).await
        })
    }
}

async fn insert_in<J: Job>(
    client: &riverqueue::Client,
    tx: &mut StoreTx<'_>,
    envelope: Envelope<J>,
    opts: riverqueue::InsertOpts,
) -> Result<Enqueued> {
    let request = client.insert(envelope).opts(opts);
    let result = match tx {
        StoreTx::Sqlite(tx) => request.tx(tx).await?,
        StoreTx::Postgres(tx) => request.tx(tx).await?,
    };
    Ok(Enqueued { id: result.id(), duplicate: result.unique_skipped_as_duplicate })
}

/// A snooze parks a job for at most an hour; a longer wait is the owner's schedule's business.
pub const MAX_SNOOZE: Duration = Duration::from_secs(3600);

/// The handlers an engine runs, one per kind. Every instance registers every kind: River's leader discards a
/// stuck job whose kind it does not know.
#[derive(Default)]
pub struct Registry {
    workers: riverqueue::Workers,
    kinds: Schedulable,
    core: Arc<OnceLock<Arc<Core>>>,
    metrics: Arc<JobMetrics>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with<J: Job, H: Handler<J>>(mut self, handler: H) -> Result<Self> {
        self.workers.add(Adapter::<J, H> {
            handler: Arc::new(handler),
            metrics: self.metrics.clone(),
            core: self.core.clone(),
            kind: PhantomData,
        })?;
        self.kinds = self.kinds.with::<J>();
        Ok(self)
    }
}

/// The kinds an engine may schedule: a registry's, or those given to an insert-only engine (the CLI resuming
/// subscriptions schedules their deliveries; `serve` or `up` run them, having registered their handlers).
#[derive(Default)]
pub struct Schedulable {
    kinds: HashMap<&'static str, Arc<dyn OccurrenceKind>>,
}

impl Schedulable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with<J: Job>(mut self) -> Self {
        self.kinds.insert(J::KIND, Arc::new(KindOf::<J>(PhantomData)));
        self
    }
}

/// How the engine works. The defaults follow the River measurements in docs/design/jobs-on-river.md; they are
/// not yet measured with pbi-bridge's own jobs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Jobs one instance runs at once.
    pub workers: usize,
    /// The least time between two fetches of available jobs.
    pub fetch_cooldown: Duration,
    /// How often due scheduled jobs are made available (River's default is 5 s).
    pub scheduler_interval: Duration,
    /// How often an idle instance asks for available jobs when nothing told it of new ones (River's default is
    /// 1 s). PostgreSQL's notifications usually come first; SQLite has none, so this bounds its start lateness.
    pub fetch_poll_interval: Duration,
    /// A job running longer than this is cancelled and retried.
    pub job_timeout: Duration,
    /// A job still running this long after it started (its instance died) is rescued by the leader.
    pub rescue_after: Duration,
    /// How often the leader looks for such jobs.
    pub rescuer_interval: Duration,
    /// How often (on pbi-bridge's clock) due schedules are checked for a waiting occurrence.
    pub sweep_every: Duration,
    /// How long River's cleaner (run by the leader) keeps completed and cancelled jobs, and discarded ones
    /// (longer, so that an administrator sees what failed).
    pub finished_retention: Duration,
    pub discarded_retention: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            workers: 100,
            fetch_cooldown: Duration::from_millis(5),
            scheduler_interval: Duration::from_millis(500),
            fetch_poll_interval: Duration::from_millis(200),
            job_timeout: Duration::from_secs(300),
            rescue_after: Duration::from_secs(360),
            rescuer_interval: Duration::from_secs(30),
            sweep_every: Duration::from_secs(1),
            finished_retention: Duration::from_secs(86_400),
            discarded_retention: Duration::from_secs(30 * 86_400),
        }
    }
}

/// A job as the engine keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    pub id: i64,
    pub kind: String,
    pub state: JobState,
    pub attempt: u16,
    pub max_attempts: u16,
    /// Each failed attempt's error, oldest first.
    pub errors: Vec<String>,
    pub created_at: OffsetDateTime,
    /// When it may run (for a retryable or snoozed job: when it runs next).
    pub scheduled_at: OffsetDateTime,
    pub attempted_at: Option<OffsetDateTime>,
    pub finalized_at: Option<OffsetDateTime>,
    pub args: serde_json::Value,
    pub unique_key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobState {
    Available,
    Scheduled,
    Running,
    Retryable,
    Pending,
    Completed,
    Cancelled,
    Discarded,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Available,
        JobState::Scheduled,
        JobState::Running,
        JobState::Retryable,
        JobState::Pending,
        JobState::Completed,
        JobState::Cancelled,
        JobState::Discarded,
    ];

    pub fn name(self) -> &'static str {
        match self {
            JobState::Available => "available",
            JobState::Scheduled => "scheduled",
            JobState::Running => "running",
            JobState::Retryable => "retryable",
            JobState::Pending => "pending",
            JobState::Completed => "completed",
            JobState::Cancelled => "cancelled",
            JobState::Discarded => "discarded",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(self, JobState::Completed | JobState::Cancelled | JobState::Discarded)
    }

    fn from_river(state: riverqueue::JobState) -> Self {
        match state {
            riverqueue::JobState::Available => JobState::Available,
            riverqueue::JobState::Cancelled => JobState::Cancelled,
            riverqueue::JobState::Completed => JobState::Completed,
            riverqueue::JobState::Discarded => JobState::Discarded,
            riverqueue::JobState::Pending => JobState::Pending,
            riverqueue::JobState::Retryable => JobState::Retryable,
            riverqueue::JobState::Running => JobState::Running,
            riverqueue::JobState::Scheduled => JobState::Scheduled,
            // A state added by a later River: shown as pending (parked) until this build learns it.
            _ => JobState::Pending,
        }
    }

    fn to_river(self) -> riverqueue::JobState {
        match self {
            JobState::Available => riverqueue::JobState::Available,
            JobState::Cancelled => riverqueue::JobState::Cancelled,
            JobState::Completed => riverqueue::JobState::Completed,
            JobState::Discarded => riverqueue::JobState::Discarded,
            JobState::Pending => riverqueue::JobState::Pending,
            JobState::Retryable => riverqueue::JobState::Retryable,
            JobState::Running => riverqueue::JobState::Running,
            JobState::Scheduled => riverqueue::JobState::Scheduled,
        }
    }
}

pub(crate) fn state_of(row: &riverqueue::JobRow) -> JobState {
    JobState::from_river(row.state)
}

fn job_info(row: riverqueue::JobRow) -> JobInfo {
    let envelope: serde_json::Value = serde_json::from_str(row.encoded_args.get()).unwrap_or_default();
    JobInfo {
        id: row.id,
        kind: row.kind,
        state: JobState::from_river(row.state),
        attempt: u16::try_from(row.attempt).unwrap_or(u16::MAX),
        max_attempts: u16::try_from(row.max_attempts).unwrap_or(u16::MAX),
        errors: row.errors.into_iter().map(|e| e.error).collect(),
        created_at: instant(row.created_at),
        scheduled_at: instant(row.scheduled_at),
        attempted_at: row.attempted_at.map(instant),
        finalized_at: row.finalized_at.map(instant),
        unique_key: envelope.get("key").and_then(serde_json::Value::as_str).map(str::to_owned),
        args: envelope.get("args").cloned().unwrap_or_default(),
    }
}

/// What the engine's workers and sweeper share.
pub(crate) struct Core {
    pub(crate) client: riverqueue::Client,
    pub(crate) store: Store,
    pub(crate) clock: Clock,
    pub(crate) kinds: HashMap<&'static str, Arc<dyn OccurrenceKind>>,
    pub(crate) metrics: Arc<JobMetrics>,
    /// This instance's name in River (its leader row says which instance leads).
    pub(crate) client_id: String,
}

/// River's client, working: owned by the engine, stopped by `stop`, with the schedules' sweeper.
pub struct Engine {
    core: Arc<Core>,
    run: tokio::sync::Mutex<Option<riverqueue::RunHandle>>,
    sweeper: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Serialises River's migrations across instances starting at once on one PostgreSQL database (its migrator
/// races otherwise: two fresh instances failed 3 of 3 times here).
const MIGRATION_LOCK: i64 = 7_301_985;

fn database_error(error: impl std::fmt::Display) -> JobsError {
    JobsError::Database(error.to_string())
}

impl Engine {
    /// Creates or upgrades River's tables (beside the store's; none of their names clash).
    pub async fn migrate(pool: &Pool) -> Result<()> {
        match pool {
            Pool::Sqlite(pool) => {
                riverqueue::migrate::SqliteMigrator::new(pool.clone()).migrate_up().await.map_err(database_error)?;
            }
            Pool::Postgres(pool) => {
                let mut lock = pool.acquire().await.map_err(database_error)?;
                pbi_store::sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(MIGRATION_LOCK)
                    .execute(&mut *lock)
                    .await
                    .map_err(database_error)?;
                let migrated = riverqueue::migrate::PostgresMigrator::new(pool.clone()).migrate_up().await;
                let _ = pbi_store::sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *lock).await;
                migrated.map_err(database_error)?;
            }
        }
        Ok(())
    }

    /// Migrates, then works the registry's kinds and sweeps the schedules every `config.sweep_every` of `clock`.
    pub async fn start(store: Store, clock: Clock, registry: Registry, config: &EngineConfig) -> Result<Self> {
        Self::migrate(store.pool()).await?;
        let maintenance = riverqueue::MaintenanceConfig::default()
            .with_scheduler_interval(config.scheduler_interval)
            .with_rescue_after(config.rescue_after)
            .with_rescuer_interval(config.rescuer_interval)
            .with_completed_job_retention(riverqueue::Retention::DeleteAfter(config.finished_retention))
            .with_cancelled_job_retention(riverqueue::Retention::DeleteAfter(config.finished_retention))
            .with_discarded_job_retention(riverqueue::Retention::DeleteAfter(config.discarded_retention));
        let client_id = format!("pbi-bridge-{}", uuid::Uuid::new_v4().simple());
        let client = builder(store.pool())
            .id(client_id.clone())
            .workers(registry.workers)
            // A job of a kind this build does not know stays available, for an instance that knows it.
            .fetch_only_known_kinds(true)
            .queue(
                "default",
                riverqueue::QueueConfig::new(config.workers)
                    .with_fetch_cooldown(config.fetch_cooldown)
                    .with_fetch_poll_interval(config.fetch_poll_interval),
            )
            .fetch_cooldown(config.fetch_cooldown)
            .job_timeout(config.job_timeout)
            .maintenance(maintenance)
            .build()?;
        let run = client.start()?;
        let core = Arc::new(Core { client, store, clock, kinds: registry.kinds.kinds, metrics: registry.metrics, client_id });
        let _ = registry.core.set(core.clone());
        let sweeper = tokio::spawn(sweep_forever(core.clone(), config.sweep_every));
        Ok(Self { core, run: tokio::sync::Mutex::new(Some(run)), sweeper: std::sync::Mutex::new(Some(sweeper)) })
    }

    /// An engine that enqueues and manages jobs but runs none and sweeps nothing (the CLI).
    pub async fn insert_only(store: Store, clock: Clock) -> Result<Self> {
        Self::insert_only_scheduling(store, clock, Schedulable::new()).await
    }

    /// An insert-only engine that may also schedule `kinds`.
    pub async fn insert_only_scheduling(store: Store, clock: Clock, kinds: Schedulable) -> Result<Self> {
        Self::migrate(store.pool()).await?;
        let client = builder(store.pool()).build()?;
        let core = Arc::new(Core { client, store, clock, kinds: kinds.kinds, metrics: Arc::default(), client_id: String::new() });
        Ok(Self { core, run: tokio::sync::Mutex::new(None), sweeper: std::sync::Mutex::new(None) })
    }

    pub fn store(&self) -> &Store {
        &self.core.store
    }

    /// What this instance's workers did since the engine started (all zero for an insert-only engine).
    pub fn metrics(&self) -> &JobMetrics {
        &self.core.metrics
    }

    /// The kinds this engine runs.
    pub fn kinds(&self) -> Vec<&'static str> {
        let mut kinds: Vec<_> = self.core.kinds.keys().copied().collect();
        kinds.sort_unstable();
        kinds
    }

    pub fn clock(&self) -> &Clock {
        &self.core.clock
    }

    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    pub async fn enqueue<J: Job>(&self, job: NewJob<J>) -> Result<Enqueued> {
        let (args, opts) = job.into_river()?;
        let result = self.core.client.insert(args).opts(opts).await?;
        Ok(Enqueued { id: result.id(), duplicate: result.unique_skipped_as_duplicate })
    }

    /// Enqueues in the caller's transaction: the job exists only if the transaction commits.
    pub async fn enqueue_in<J: Job>(&self, tx: &mut StoreTx<'_>, job: NewJob<J>) -> Result<Enqueued> {
        let (envelope, opts) = job.into_river()?;
        insert_in(&self.core.client, tx, envelope, opts).await
    }

    /// Many jobs of one kind in one statement (far faster than one by one). A key given twice in the batch is
    /// enqueued once; the repeats are reported as duplicates of it, as River refuses a batch that repeats one.
    pub async fn enqueue_many<J: Job>(&self, jobs: Vec<NewJob<J>>) -> Result<Vec<Enqueued>> {
        let mut first_with_key: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        let mut sent_index = Vec::with_capacity(jobs.len());
        let mut items = Vec::with_capacity(jobs.len());
        for job in jobs {
            if let Some(key) = &job.unique_key {
                if let Some(&earlier) = first_with_key.get(key) {
                    sent_index.push(Err(earlier));
                    continue;
                }
                first_with_key.insert(key.clone(), items.len());
            }
            sent_index.push(Ok(items.len()));
            let (args, opts) = job.into_river()?;
            items.push(riverqueue::InsertManyItem::new(args, opts));
        }
        let results: Vec<Enqueued> = if items.is_empty() {
            Vec::new()
        } else {
            self.core
                .client
                .insert_many(items)
                .await?
                .into_iter()
                .map(|r| Enqueued { id: r.id(), duplicate: r.unique_skipped_as_duplicate })
                .collect()
        };
        sent_index
            .into_iter()
            .map(|at| match at {
                Ok(i) => results.get(i).copied().ok_or_else(|| JobsError::Engine("River returned fewer results than jobs".into())),
                Err(i) => results
                    .get(i)
                    .map(|r| Enqueued { id: r.id, duplicate: true })
                    .ok_or_else(|| JobsError::Engine("River returned fewer results than jobs".into())),
            })
            .collect::<Result<Vec<_>>>()
    }

    pub async fn get(&self, id: i64) -> Result<Option<JobInfo>> {
        match self.core.client.jobs().get(id).await {
            Ok(row) => Ok(Some(job_info(row))),
            Err(riverqueue::Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Jobs newest first, filtered by kind and state, `limit` at a time after the job `after` (a cursor).
    pub async fn list(&self, kinds: &[&str], states: &[JobState], limit: u32, after: Option<i64>) -> Result<Vec<JobInfo>> {
        let mut params = riverqueue::JobListParams::default().limit(limit.clamp(1, 1000));
        if !kinds.is_empty() {
            params = params.kinds(kinds.iter().map(|k| (*k).to_owned()));
        }
        if !states.is_empty() {
            params = params.states(states.iter().map(|s| s.to_river()));
        }
        if let Some(after) = after {
            params = params.after_id(after);
        }
        Ok(self.core.client.jobs().list(params).await?.jobs.into_iter().map(job_info).collect())
    }

    /// Cancels a job that has not finished (a running one is asked to stop).
    pub async fn cancel(&self, id: i64) -> Result<JobInfo> {
        Ok(job_info(self.core.client.jobs().cancel(id).await?))
    }

    /// Whether this instance's sweeper sweeps the schedules: it leads the engine's instances, or none does.
    pub async fn sweeps_here(&self) -> Result<bool> {
        self.core.leads_or_nobody_does().await
    }

    /// Makes a job that waits for its first run due now; false (and nothing changes) if it has run (finished,
    /// snoozed, waiting for a retry) or is running. Unlike `retry`, it never runs a finished job again.
    pub async fn make_due(&self, id: i64) -> Result<bool> {
        Ok(self.core.store.make_scheduled_job_due(id).await?)
    }

    /// Makes a job available to run now: a failed, discarded, cancelled or scheduled one.
    pub async fn retry(&self, id: i64) -> Result<JobInfo> {
        Ok(job_info(self.core.client.jobs().retry(id).await?))
    }

    /// Waits until job `id`, as this instance sees it finish attempts, satisfies `done` (at most `within`); gives
    /// the job as it was last seen. Driven by the engine's own events, never by polling.
    pub async fn wait_for(&self, id: i64, within: Duration, done: impl Fn(&JobInfo) -> bool) -> Result<JobInfo> {
        use riverqueue::EventKind as K;
        let mut events = self.core.client.subscribe(&[K::JobCancelled, K::JobCompleted, K::JobFailed, K::JobInterrupted, K::JobSnoozed])?;
        let mut seen = self.get(id).await?.ok_or_else(|| JobsError::Engine(format!("there is no job {id}")))?;
        let waited = tokio::time::timeout(within, async {
            while !done(&seen) {
                match events.recv().await {
                    Ok(riverqueue::Event::Job(event)) if event.job.id == id => seen = job_info(event.job),
                    Ok(_) => {}
                    // Events were dropped: read the job itself.
                    Err(riverqueue::EventRecvError::Lagged(_)) => {
                        seen = self.get(id).await?.ok_or_else(|| JobsError::Engine(format!("there is no job {id}")))?;
                    }
                    Err(e) => return Err(JobsError::Engine(e.to_string())),
                }
            }
            Ok::<_, JobsError>(())
        })
        .await;
        match waited {
            Ok(result) => result.map(|()| seen),
            Err(_) => Err(JobsError::Engine(format!("job {id} did not get there within {within:?}; last seen {seen:?}"))),
        }
    }

    /// Stops fetching, lets running jobs finish (up to River's soft-stop timeout), and waits.
    pub async fn stop(&self) -> Result<()> {
        let sweeper = self.sweeper.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if let Some(sweeper) = sweeper {
            sweeper.abort();
            let _ = sweeper.await;
        }
        if let Some(mut run) = self.run.lock().await.take() {
            run.stop().await?;
        }
        Ok(())
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(sweeper) = self.sweeper.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            sweeper.abort();
        }
    }
}

fn builder(pool: &Pool) -> riverqueue::ClientBuilder {
    match pool {
        Pool::Sqlite(pool) => riverqueue::Client::builder(pool.clone()),
        Pool::Postgres(pool) => riverqueue::Client::builder(pool.clone()),
    }
}

/// The sweeper: one sweep every `every` on pbi-bridge's clock (a test moves it; a failed sweep is logged and
/// the next one tries again), on the leader only, so that several instances do not all read the schedules.
async fn sweep_forever(core: Arc<Core>, every: Duration) {
    loop {
        match core.leads_or_nobody_does().await {
            Ok(true) => {
                if let Err(error) = crate::schedules::sweep(&core).await {
                    tracing::warn!(%error, "sweeping the schedules");
                }
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "reading which instance leads"),
        }
        core.clock.sleep(every).await;
    }
}

impl Core {
    /// Whether this instance should sweep: it leads, or no instance does (at start, before River's first
    /// election, or after a leader died and before the next one). Sweeping is safe on several instances at once
    /// (unique occurrences, conditional updates); leading only saves the others the work.
    pub(crate) async fn leads_or_nobody_does(&self) -> Result<bool> {
        Ok(self.store.job_leader().await?.is_none_or(|leader| leader == self.client_id))
    }
}
