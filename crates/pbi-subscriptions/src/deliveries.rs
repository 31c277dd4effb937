//! The delivery job (`deliveries.run`): one subscription's item rendered and its pin's push table replaced,
//! with every fault turned into the subscription's state (`outcome::decide`) rather than a loop of failures.
//!
//! An attempt: the subscription (gone: the job cancels; not active: nothing to do), the delivery under way
//! (at most one per subscription: a job that finds another job's delivery under way leaves it to it), the
//! owner's connection and the registration it was made through (the broker's own errors say whether the user
//! must sign in again or the integration is gone), the item rendered from its source and checked against its
//! columns, then `delivery::Progress`'s steps against the pin target. The progress is stored before the first
//! step and again at a snooze, so a retried delivery converges on exactly the rendered rows.

use crate::delivery::{Progress, Step};
use crate::frequency::Frequency;
use crate::http_source::{self, HttpSource};
use crate::item::{Item, ItemSpec};
use crate::outcome::{Decision, Fault, decide, delivery_error, fault_from_power_bi};
use crate::push_target;
use crate::query::{Dialect, prepare};
use crate::rows::Row;
use crate::spool::{Spool, SpoolError, SpooledRows};
use crate::sql_source::{self, SourceError, SqlSource};
use pbi_auth::{Auth, AuthError, ConnectionTokens, cloud_of};
use pbi_clock::Clock;
use pbi_jobs::{Engine, Failure, Handler, Job, JobsError, Outcome, Running, ScheduleSpec};
use pbi_powerbi::{PowerBiClient, RetryPolicy, Workspace};
use pbi_store::{DataSourceKind, Delivery, DeliveryUpdate, ItemSource, Store, StoreError, StoredItem, Subscription, SubscriptionState};
use serde_json::{Map, Value};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use uuid::Uuid;

/// Delivers one subscription now: a schedule's occurrence, or "run now".
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Deliver {
    pub subscription: Uuid,
}

impl Job for Deliver {
    const KIND: &'static str = "deliveries.run";
    /// Outages are retried with River's backoff (attempt⁴ seconds): eight attempts span about an hour and a
    /// half, after which the run fails and the next scheduled one tries again.
    const MAX_ATTEMPTS: u16 = 8;
}

/// The owner of a subscription's schedule in the engine.
pub fn schedule_owner(subscription: Uuid) -> String {
    format!("subscription:{subscription}")
}

/// The engine's schedule for a subscription: its frequency in its time zone.
pub fn schedule_of(subscription: &Subscription) -> Result<ScheduleSpec, JobsError> {
    let frequency: Frequency = serde_json::from_str(&subscription.details.frequency)
        .map_err(|e| JobsError::Invalid(format!("subscription {}: its frequency: {e}", subscription.id)))?;
    let schedule = frequency.schedule(&subscription.details.time_zone).map_err(|e| JobsError::Invalid(e.to_string()))?;
    Ok(ScheduleSpec {
        kind: Deliver::KIND,
        owner: schedule_owner(subscription.id),
        args: serde_json::json!({ "subscription": subscription.id }),
        schedule,
    })
}

/// How deliveries are paced and bounded.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// How long connecting to a data source, and its query or endpoint, may take each.
    pub source_timeout: Duration,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self { source_timeout: Duration::from_secs(60) }
    }
}

/// The most RequestIds a delivery keeps (a 1,500,000-row delivery makes 151 calls).
const MAX_REQUEST_IDS: usize = 200;

/// What deliveries need, shared by the job and the operations that start or stop them.
pub struct Deliveries {
    store: Store,
    auth: Arc<Auth>,
    http: reqwest::Client,
    clock: Clock,
    settings: DeliverySettings,
    /// The engine, set once it has started (the job is registered before it exists).
    engine: OnceLock<Weak<Engine>>,
}

/// Why an attempt did not deliver (the progress to keep is in the `Tally`).
struct Stopped {
    fault: Fault,
}

/// What an attempt has done so far, for the delivery's row.
struct Tally {
    delivery: Delivery,
    progress: Option<Progress>,
    request_ids: Vec<String>,
    posts: i64,
    rows: Option<i64>,
}

impl Tally {
    fn note(&mut self, request_id: Option<String>) {
        if let Some(id) = request_id
            && self.request_ids.len() < MAX_REQUEST_IDS
        {
            self.request_ids.push(id);
        }
    }

    fn update(&self, outcome: &str, error: Option<String>, ended_at: Option<i64>, progress: Option<&Progress>) -> DeliveryUpdate {
        DeliveryUpdate {
            ended_at,
            row_count: self.rows,
            post_count: self.posts,
            request_ids: self.request_ids.clone(),
            outcome: outcome.to_owned(),
            error,
            progress: progress.and_then(|p| serde_json::to_string(p).ok()),
        }
    }
}

fn store_failure(what: &'static str) -> impl Fn(StoreError) -> Failure {
    move |e| Failure::new(format!("{what}: {e}"))
}

impl Deliveries {
    pub fn new(store: Store, auth: Arc<Auth>, http: reqwest::Client, clock: Clock, settings: DeliverySettings) -> Arc<Self> {
        Arc::new(Self { store, auth, http, clock, settings, engine: OnceLock::new() })
    }

    /// Gives the deliveries the engine their job runs on (to stop a paused subscription's schedule).
    pub fn attach(&self, engine: &Arc<Engine>) {
        let _ = self.engine.set(Arc::downgrade(engine));
    }

    /// The job's handler.
    pub fn job(self: &Arc<Self>) -> DeliveryJob {
        DeliveryJob(self.clone())
    }

    fn engine(&self) -> Result<Arc<Engine>, Failure> {
        self.engine.get().and_then(Weak::upgrade).ok_or_else(|| Failure::new("the engine is stopping"))
    }

    /// One attempt of `job`.
    async fn run(&self, job: &Running<Deliver>) -> Result<Outcome, Failure> {
        let id = job.args.subscription;
        let subscription = match self.store.subscription(id).await {
            Ok(subscription) => subscription,
            Err(StoreError::NotFound(_)) => return Ok(Outcome::Cancel("the subscription was deleted".into())),
            Err(e) => return Err(store_failure("reading the subscription")(e)),
        };
        if subscription.state != SubscriptionState::Active {
            // Its schedule was stopped with the state; an occurrence already waiting finds it so.
            return Ok(Outcome::Done);
        }
        let Some(mut tally) = self.claim(&subscription, job.id).await? else {
            tracing::info!(subscription = %id, job = job.id, "a delivery of this subscription is already under way");
            return Ok(Outcome::Done);
        };
        let item = self.store.item(subscription.details.item_id).await.map_err(store_failure("reading the item"))?;
        match self.attempt(&subscription, &item, &mut tally).await {
            Ok(()) => self.delivered(&subscription, &tally).await,
            Err(Stopped { fault }) => self.stopped(job, &subscription, &item, &tally, fault).await,
        }
    }

    /// The delivery this job carries: the one under way (its own, or one whose job has ended), else a new one;
    /// `None` when another job is carrying one.
    async fn claim(&self, subscription: &Subscription, job: i64) -> Result<Option<Tally>, Failure> {
        let tally = |delivery: Delivery| {
            let progress = delivery.progress.as_deref().and_then(|p| serde_json::from_str(p).ok());
            Tally { request_ids: delivery.request_ids.clone(), posts: delivery.post_count, rows: delivery.row_count, progress, delivery }
        };
        for _ in 0..3 {
            match self.store.open_delivery(subscription.id).await.map_err(store_failure("reading the delivery under way"))? {
                Some(open) if open.job_id == Some(job) => return Ok(Some(tally(open))),
                Some(open) => {
                    if let Some(other) = open.job_id
                        && self.engine()?.get(other).await.map_err(|e| Failure::new(e.to_string()))?.is_some_and(|j| !j.state.is_finished())
                    {
                        return Ok(None);
                    }
                    if self.store.take_delivery(open.id, open.job_id, job).await.map_err(store_failure("taking the delivery over"))? {
                        return Ok(Some(tally(Delivery { job_id: Some(job), ..open })));
                    }
                }
                None => match self.store.start_delivery(subscription.id, job, self.clock.unix()).await {
                    Ok(started) => return Ok(Some(tally(started))),
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => return Err(store_failure("starting the delivery")(e)),
                },
            }
        }
        Ok(None)
    }

    /// Renders the item and replaces the pin's rows.
    async fn attempt(&self, subscription: &Subscription, item: &StoredItem, tally: &mut Tally) -> Result<(), Stopped> {
        let stop = |fault| Stopped { fault };
        let client = self.client_for(subscription).await.map_err(stop)?;
        let dataset = dataset_of(subscription).map_err(stop)?;
        if subscription.target.tile_id.is_none() {
            self.look_for_tile(&client, subscription, &dataset).await;
        }
        let checked = checked_item(item).map_err(stop)?;
        let values = parameter_values(item, subscription);
        let mut rows = self.render(item, &checked, &values).await.map_err(stop)?;
        tally.rows = Some(rows.len() as i64);
        let mut progress = Progress::resume(tally.progress.take(), rows.len());
        // Stored before any step: a crash from here on restarts the delivery with the clear.
        self.save(tally, "running", None, &progress).await.map_err(stop)?;
        let workspace = workspace_of(subscription);
        loop {
            let now = self.clock.now();
            let step = progress.next(now);
            let answer = match &step {
                Step::Done => break,
                Step::Wait(wait) => {
                    tally.progress = Some(progress.paused());
                    return Err(stop(Fault::Throttled { retry_after: *wait }));
                }
                Step::Clear => push_target::clear(&client, workspace, &dataset).await,
                Step::Post(range) => {
                    let batch = rows.batch(range.clone()).map_err(|e| stop(spool_fault(SpoolError::from(e))))?;
                    push_target::post(&client, workspace, &dataset, &batch).await
                }
            };
            match answer {
                Ok(request_id) => {
                    tally.note(request_id);
                    if matches!(step, Step::Post(_)) {
                        tally.posts += 1;
                    }
                    progress.done(&step, now);
                }
                Err(error) => {
                    tally.note(error.request_id.clone());
                    let fault = fault_from_power_bi(&error, "dataset");
                    // A 429 leaves the table as the progress says: the next attempt goes on from there.
                    tally.progress = Some(if matches!(fault, Fault::Throttled { .. }) { progress.paused() } else { progress });
                    return Err(stop(fault));
                }
            }
        }
        Ok(())
    }

    /// A "pin once" subscription waits for the tile its owner pins in Power BI: each delivery looks for it
    /// (best effort: a failure to look is logged, and the delivery goes on, filling the dataset either way).
    async fn look_for_tile(&self, client: &PowerBiClient, subscription: &Subscription, dataset: &str) {
        match crate::pins::tile_pinned_by_hand(client, subscription, dataset).await {
            Ok(Some(target)) => {
                if let Err(error) = self.store.set_pin_target(subscription.id, &target, self.clock.unix()).await {
                    tracing::warn!(subscription = %subscription.id, %error, "recording the tile pinned by hand");
                }
            }
            Ok(None) => {}
            Err(error) => tracing::info!(subscription = %subscription.id, %error, "looking for the tile pinned by hand"),
        }
    }

    async fn save(&self, tally: &Tally, outcome: &str, error: Option<String>, progress: &Progress) -> Result<(), Fault> {
        self.store
            .update_delivery(tally.delivery.id, &tally.update(outcome, error, None, Some(progress)))
            .await
            .map_err(|e| Fault::Outage { message: format!("recording the delivery's progress: {e}") })
    }

    /// A client acting as the subscription's owner through its connection; the broker's refusals as faults.
    async fn client_for(&self, subscription: &Subscription) -> Result<PowerBiClient, Fault> {
        let owner = pbi_auth::Owner::User(subscription.details.owner);
        let connection_id = subscription.details.connection_id;
        let connection = self.auth.connection(connection_id, Some(&owner)).await.map_err(broker_fault)?;
        let registration = match self.store.registration(connection.account.registration_id).await {
            Ok(registration) => registration,
            Err(StoreError::NotFound(_)) => {
                return Err(Fault::IntegrationUnavailable { reason: "the Power BI registration it used no longer exists".into() });
            }
            Err(e) => return Err(Fault::Outage { message: e.to_string() }),
        };
        // The broker's hot cache may still hold a token of a registration disabled a moment ago.
        self.auth.usable(&registration).map_err(broker_fault)?;
        // Asked first, so that a connection that needs its user is said as such, not as a failed call.
        self.auth.access_token(connection_id, Some(&owner)).await.map_err(broker_fault)?;
        let cloud = cloud_of(&registration).map_err(broker_fault)?;
        let tokens = ConnectionTokens::new(self.auth.clone(), connection_id, owner);
        // No retries inside the attempt: the engine retries an outage with backoff, and a 429 snoozes the job.
        Ok(PowerBiClient::sharing(self.http.clone(), &cloud, Arc::new(tokens)).with_retry(RetryPolicy::none()))
    }

    /// The item's rows from its source, checked against its columns (a row that does not fit stops the
    /// delivery before anything is sent), as push rows in a spool. A query's rows are checked and spooled as
    /// they are read: none is held in memory.
    async fn render(&self, item: &StoredItem, checked: &Item, values: &Map<String, Value>) -> Result<SpooledRows, Fault> {
        let mut spool = Spool::create(checked, self.clock.now()).map_err(spool_fault)?;
        let mut refused = None;
        let mut keep = |row: Row| match spool.push(&row) {
            Ok(()) => true,
            Err(error) => {
                refused = Some(error);
                false
            }
        };
        if let Some(rows) = self.read_source(item, checked, values, &mut keep).await? {
            for row in rows {
                if !keep(row) {
                    break;
                }
            }
        }
        match refused {
            Some(error) => Err(spool_fault(error)),
            None => spool.finish().map_err(spool_fault),
        }
    }

    /// Reads the item's source: a query's rows go to `on_row` as they are read (`None` then); an endpoint's
    /// and the application's rows come back whole.
    async fn read_source(
        &self,
        item: &StoredItem,
        checked: &Item,
        values: &Map<String, Value>,
        on_row: &mut (dyn FnMut(Row) -> bool + Send),
    ) -> Result<Option<Vec<Row>>, Fault> {
        let source_fault = |e: SourceError| Fault::Source { message: e.to_string() };
        match item.details.source {
            ItemSource::Pushed => pushed_rows(&self.store, item).await.map(Some),
            ItemSource::Query | ItemSource::Http => {
                let Some(source_id) = item.details.data_source_id else {
                    return Err(Fault::Source { message: "the item has no data source".into() });
                };
                let source = self.store.data_source(source_id).await.map_err(|e| match e {
                    StoreError::NotFound(_) => Fault::Source { message: "its data source was deleted".into() },
                    other => Fault::Outage { message: other.to_string() },
                })?;
                let credential =
                    self.store.data_source_credential(source_id).await.map_err(|e| Fault::Outage { message: e.to_string() })?;
                let name = &source.details.name;
                let needs_credential = source.details.kind != DataSourceKind::Sqlite;
                if needs_credential && credential.is_none() {
                    return Err(Fault::Source {
                        message: format!(
                            "the data source '{name}' has no stored credentials (an administrator enters them on Admin → Data sources)"
                        ),
                    });
                }
                let query = item.details.query.as_deref().unwrap_or_default();
                match (item.details.source, source.details.kind) {
                    (ItemSource::Http, DataSourceKind::Http) => {
                        let endpoint = HttpSource {
                            base: &source.details.location,
                            path: query,
                            header: source.details.credential_header.as_deref(),
                            credential: credential.as_ref(),
                            timeout: self.settings.source_timeout,
                        };
                        http_source::fetch(&self.http, &endpoint, checked, values).await.map(Some).map_err(source_fault)
                    }
                    (ItemSource::Query, kind @ (DataSourceKind::Postgres | DataSourceKind::Sqlite)) => {
                        let dialect = if kind == DataSourceKind::Postgres { Dialect::Postgres } else { Dialect::Sqlite };
                        let prepared = prepare(query, dialect).map_err(|e| Fault::Source { message: e.to_string() })?;
                        let database = SqlSource {
                            dialect,
                            location: &source.details.location,
                            username: source.details.username.as_deref(),
                            password: credential.as_ref(),
                            timeout: self.settings.source_timeout,
                        };
                        sql_source::each_row(&database, &prepared, values, on_row).await.map(|()| None).map_err(source_fault)
                    }
                    (_, kind) => Err(Fault::Source {
                        message: format!("the data source '{name}' is a {} source, which this item's source cannot use", kind.as_str()),
                    }),
                }
            }
        }
    }

    async fn delivered(&self, subscription: &Subscription, tally: &Tally) -> Result<Outcome, Failure> {
        let now = self.clock.unix();
        self.store
            .update_delivery(tally.delivery.id, &tally.update("delivered", None, Some(now), None))
            .await
            .map_err(store_failure("recording the delivery"))?;
        self.store.record_subscription_run(subscription.id, 0, None, now).await.map_err(store_failure("recording the run"))?;
        tracing::info!(subscription = %subscription.id, rows = tally.rows, posts = tally.posts, "delivered");
        Ok(Outcome::Done)
    }

    async fn stopped(
        &self,
        job: &Running<Deliver>,
        subscription: &Subscription,
        item: &StoredItem,
        tally: &Tally,
        fault: Fault,
    ) -> Result<Outcome, Failure> {
        let now = self.clock.unix();
        let line = delivery_error(&subscription.details.dashboard_name, &item.details.name, &fault);
        let missing_before = u32::try_from(subscription.missing_runs).unwrap_or(u32::MAX);
        let decision = match decide(&fault, missing_before) {
            // The last attempt: this run fails, and the next scheduled one tries again.
            Decision::Retry if job.attempt >= Deliver::MAX_ATTEMPTS => Decision::Fail { disable: false },
            decision => decision,
        };
        let progress = tally.progress.as_ref();
        let (outcome, ended) = match &decision {
            Decision::Snooze(_) => ("snoozed", None),
            Decision::Retry => ("retrying", None),
            Decision::Pause { .. } => ("paused", Some(now)),
            Decision::Fail { .. } => ("failed", Some(now)),
        };
        let error = if matches!(decision, Decision::Snooze(_)) { None } else { Some(line.clone()) };
        let update = tally.update(outcome, error, ended, if ended.is_none() { progress } else { None });
        self.store.update_delivery(tally.delivery.id, &update).await.map_err(store_failure("recording the delivery"))?;
        tracing::warn!(subscription = %subscription.id, outcome, error = %line, "a delivery did not complete");
        match decision {
            Decision::Snooze(wait) => Ok(Outcome::Snooze(wait)),
            Decision::Retry => Err(Failure::new(line)),
            Decision::Pause { reason } => {
                self.record_run(subscription, subscription.missing_runs, &line, now).await?;
                self.stop(subscription, SubscriptionState::Paused, &reason, now).await?;
                Ok(Outcome::Done)
            }
            Decision::Fail { disable } => {
                let missing = if matches!(fault, Fault::Missing { .. }) { subscription.missing_runs + 1 } else { 0 };
                self.record_run(subscription, missing, &line, now).await?;
                if disable {
                    let reason = format!(
                        "Disabled after {missing} runs in a row found the pin's content deleted in Power BI: pin the item again, or delete this subscription."
                    );
                    self.stop(subscription, SubscriptionState::Disabled, &reason, now).await?;
                }
                if job.attempt >= Deliver::MAX_ATTEMPTS && matches!(fault, Fault::Outage { .. }) {
                    return Err(Failure::new(line));
                }
                Ok(Outcome::Done)
            }
        }
    }

    async fn record_run(&self, subscription: &Subscription, missing: i64, line: &str, now: i64) -> Result<(), Failure> {
        self.store.record_subscription_run(subscription.id, missing, Some(line), now).await.map_err(store_failure("recording the run"))
    }

    /// Pauses or disables a subscription and stops its schedule (resuming or enabling it schedules it again).
    async fn stop(&self, subscription: &Subscription, state: SubscriptionState, reason: &str, now: i64) -> Result<(), Failure> {
        self.store.set_subscription_state(subscription.id, state, Some(reason), now).await.map_err(store_failure("recording the state"))?;
        self.engine()?
            .unschedule(Deliver::KIND, &schedule_owner(subscription.id))
            .await
            .map_err(|e| Failure::new(format!("stopping the schedule: {e}")))?;
        Ok(())
    }
}

/// The broker's refusal as a delivery fault.
fn broker_fault(error: AuthError) -> Fault {
    match error {
        AuthError::NeedsSignIn { reason, .. } => Fault::NeedsSignIn { reason },
        AuthError::NotFound(_) => Fault::NeedsSignIn { reason: "your Power BI connection was removed".into() },
        error @ (AuthError::RegistrationDisabled(_)
        | AuthError::RegistrationRemoved { .. }
        | AuthError::SecretExpired { .. }
        | AuthError::Setup(_)) => Fault::IntegrationUnavailable { reason: error.to_string() },
        AuthError::Refused(explained) => Fault::Refused { message: explained.to_string() },
        other => Fault::Outage { message: other.to_string() },
    }
}

/// A row that does not fit stops the delivery for its owner to fix; a temporary file that cannot be written
/// is an outage of this machine, retried with backoff.
fn spool_fault(error: SpoolError) -> Fault {
    match error {
        SpoolError::Row(error) => Fault::Rows(error),
        error @ SpoolError::Io { .. } => Fault::Outage { message: error.to_string() },
    }
}

/// The pin's push dataset: what a delivery fills (a "pin once" subscription has it before its tile).
fn dataset_of(subscription: &Subscription) -> Result<String, Fault> {
    subscription.target.dataset_id.clone().ok_or_else(|| Fault::Source {
        message: "the pin made no dataset in Power BI: delete this subscription and pin the item again".into(),
    })
}

fn checked_item(item: &StoredItem) -> Result<Item, Fault> {
    serde_json::from_str::<ItemSpec>(&item.details.definition)
        .map_err(|e| e.to_string())
        .and_then(|spec| spec.check().map_err(|e| e.to_string()))
        .map_err(|message| Fault::Source { message: format!("the item's definition cannot be read ({message}): save the item again") })
}

/// The item's parameter defaults, overridden by the values the pin fixed.
fn parameter_values(item: &StoredItem, subscription: &Subscription) -> Map<String, Value> {
    let object = |text: &str| serde_json::from_str::<Map<String, Value>>(text).unwrap_or_default();
    let mut values = object(&item.details.parameters);
    values.extend(object(&subscription.details.parameters));
    values
}

async fn pushed_rows(store: &Store, item: &StoredItem) -> Result<Vec<Row>, Fault> {
    let stored = store.pushed_rows(item.id).await.map_err(|e| Fault::Outage { message: e.to_string() })?;
    let Some(text) = stored else {
        return Err(Fault::Source {
            message: format!("the application has not sent this item's rows yet (PUT /api/v1/items/{}/rows)", item.id),
        });
    };
    serde_json::from_str(&text).map_err(|e| Fault::Source { message: format!("the rows the application sent cannot be read: {e}") })
}

pub(crate) fn workspace_of(subscription: &Subscription) -> Workspace {
    subscription.details.workspace_id.map_or(Workspace::My, Workspace::Group)
}

/// The job's handler (the engine holds it; it holds the deliveries).
pub struct DeliveryJob(Arc<Deliveries>);

impl Handler<Deliver> for DeliveryJob {
    async fn run(&self, job: Running<Deliver>) -> Result<Outcome, Failure> {
        self.0.run(&job).await
    }
}
