//! Schedules on both backends: each occurrence runs once, on pbi-bridge's clock (the test moves it; nothing
//! waits for real time to pass), and its outcome and the next run are recorded with it.

mod support;

use pbi_clock::Clock;
use pbi_jobs::schedule::Schedule;
use pbi_jobs::{Engine, EngineConfig, Failure, Handler, Job, JobState, Outcome, Registry, Running, ScheduleSpec};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::TestDb;

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Tick {
    fail: bool,
    /// Snooze ten minutes (as a throttled delivery does) instead of ending.
    #[serde(default)]
    snooze: bool,
}

impl Job for Tick {
    const KIND: &'static str = "tests.tick";
    const MAX_ATTEMPTS: u16 = 1;
}

struct Counting(Arc<AtomicUsize>);

impl Handler<Tick> for Counting {
    async fn run(&self, job: Running<Tick>) -> Result<Outcome, Failure> {
        self.0.fetch_add(1, Ordering::SeqCst);
        if job.args.snooze {
            return Ok(Outcome::Snooze(Duration::from_secs(600)));
        }
        if job.args.fail { Err(Failure::new("the tick failed")) } else { Ok(Outcome::Done) }
    }
}

async fn start(db: &TestDb, clock: &Clock) -> (Engine, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let registry = Registry::new().with::<Tick, _>(Counting(runs.clone())).expect("registered");
    let engine = Engine::start(db.store().await, clock.clone(), registry, &EngineConfig::default()).await.expect("engine");
    (engine, runs)
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(false).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(true).await } )* }
    };
}

on_both!(
    each_occurrence_runs_once_and_records_its_outcome_and_the_next_run,
    a_failed_occurrence_is_recorded_and_the_schedule_goes_on,
    an_instance_that_does_not_lead_does_not_sweep,
    a_snoozed_occurrence_waits_for_its_time_not_for_the_sweeper,
    an_occurrence_of_an_edited_schedule_does_not_run_beside_the_new_one,
    an_unscheduled_schedules_waiting_occurrence_is_cancelled,
);

async fn an_unscheduled_schedules_waiting_occurrence_is_cancelled(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let clock = Clock::manual(time::macros::datetime!(2026-12-02 09:30 UTC));
    let (engine, runs) = start(&db, &clock).await;
    let spec = ScheduleSpec {
        kind: Tick::KIND,
        owner: "subscription:1".into(),
        args: serde_json::json!({"fail": false}),
        schedule: Schedule::cron("0 * * * *", "UTC").expect("cron"),
    };
    let row = engine.schedule(&spec).await.expect("scheduled");
    let waiting = row.pending_job_id.expect("its first occurrence");
    assert!(engine.unschedule(Tick::KIND, "subscription:1").await.expect("unscheduled"));
    assert!(!engine.unschedule(Tick::KIND, "subscription:1").await.expect("asked"), "nothing left to unschedule");
    assert_eq!(engine.get(waiting).await.expect("read").expect("kept").state, JobState::Cancelled);
    assert!(engine.store().schedule(row.id).await.expect("read").is_none());
    clock.set(time::macros::datetime!(2026-12-02 10:00 UTC)).expect("manual clock");
    assert_eq!(engine.sweep().await.expect("swept"), 0, "nothing of it is due");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    engine.stop().await.expect("stopped");
}

async fn an_occurrence_of_an_edited_schedule_does_not_run_beside_the_new_one(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let clock = Clock::manual(time::macros::datetime!(2026-12-02 09:30 UTC));
    let (engine, runs) = start(&db, &clock).await;
    let spec = |cron: &str| ScheduleSpec {
        kind: Tick::KIND,
        owner: "edited".into(),
        args: serde_json::json!({"fail": false}),
        schedule: Schedule::cron(cron, "UTC").expect("cron"),
    };
    let first = engine.schedule(&spec("0 * * * *")).await.expect("scheduled");
    let stale = first.pending_job_id.expect("the 10:00 occurrence waits");
    // Edited before 10:00 to run at half past: its next run is 10:30; the 10:00 job still waits in River.
    let edited = engine.schedule(&spec("30 * * * *")).await.expect("edited");
    assert_eq!(edited.next_run_at, time::macros::datetime!(2026-12-02 10:30 UTC).unix_timestamp());
    clock.set(time::macros::datetime!(2026-12-02 10:30 UTC)).expect("manual clock");
    engine.sweep().await.expect("swept");
    let ended = engine.wait_for(stale, Duration::from_secs(30), |j| j.state.is_finished()).await.expect("the old occurrence ended");
    assert_eq!((ended.state, runs.load(Ordering::SeqCst)), (JobState::Cancelled, 0), "the old occurrence did not run: {ended:?}");
    let ran = run_next(&engine, &clock, first.id).await;
    assert_eq!((ran.state, runs.load(Ordering::SeqCst)), (JobState::Completed, 1), "the edited schedule's occurrence ran once");
    engine.stop().await.expect("stopped");
}

/// Moves the clock to the schedule's next run, sweeps, and waits for that occurrence's job to finish.
async fn run_next(engine: &Engine, clock: &Clock, schedule: uuid::Uuid) -> pbi_jobs::JobInfo {
    let row = engine.store().schedule(schedule).await.expect("read").expect("there");
    clock.set(time::OffsetDateTime::from_unix_timestamp(row.next_run_at).expect("instant")).expect("manual clock");
    // The engine's own sweeper wakes on the move too; whichever enqueues first, the unique key makes it one job.
    engine.sweep().await.expect("swept");
    // Found by its key, not by the schedule's pending job: by now the occurrence may have run already and the
    // pending job be the next one.
    let key = format!("schedule:{schedule}@{}", row.next_run_at);
    let jobs = engine.list(&[Tick::KIND], &[], 100, None).await.expect("list");
    let occurrence: Vec<_> = jobs.iter().filter(|j| j.unique_key.as_deref() == Some(key.as_str())).collect();
    assert_eq!(occurrence.len(), 1, "one job for the occurrence: {jobs:?}");
    engine.wait_for(occurrence[0].id, Duration::from_secs(30), |j| j.state.is_finished()).await.expect("the occurrence ran")
}

async fn each_occurrence_runs_once_and_records_its_outcome_and_the_next_run(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let clock = Clock::manual(time::macros::datetime!(2026-12-02 09:30 UTC));
    let (engine, runs) = start(&db, &clock).await;
    let hourly = Schedule::cron("0 * * * *", "UTC").expect("cron");
    let spec = ScheduleSpec { kind: Tick::KIND, owner: "system".into(), args: serde_json::json!({"fail": false}), schedule: hourly };
    let row = engine.schedule(&spec).await.expect("scheduled");
    assert_eq!(row.next_run_at, time::macros::datetime!(2026-12-02 10:00 UTC).unix_timestamp());
    // The first occurrence waits in River from the start (the sweeper would be late with many new schedules).
    let first = engine.get(row.pending_job_id.expect("the first occurrence is enqueued")).await.expect("read").expect("there");
    assert_eq!(
        (first.state, first.unique_key.as_deref()),
        (JobState::Scheduled, Some(format!("schedule:{}@{}", row.id, row.next_run_at).as_str()))
    );
    assert_eq!(engine.sweep().await.expect("swept"), 0, "nothing is due before 10:00");

    for (n, due) in [(1, time::macros::datetime!(2026-12-02 10:00 UTC)), (2, time::macros::datetime!(2026-12-02 11:00 UTC))] {
        let ran = run_next(&engine, &clock, row.id).await;
        assert_eq!(ran.state, JobState::Completed, "{ran:?}");
        assert_eq!(ran.unique_key.as_deref(), Some(format!("schedule:{}@{}", row.id, due.unix_timestamp()).as_str()));
        // Sweeping again at the same time enqueues nothing more: the occurrence has run.
        engine.sweep().await.expect("swept");
        let after = engine.store().schedule(row.id).await.expect("read").expect("there");
        assert_eq!((after.last_outcome.as_deref(), after.last_run_at), (Some("completed"), Some(due.unix_timestamp())));
        assert_eq!(after.next_run_at, due.unix_timestamp() + 3600, "the next run, computed with the outcome");
        let next = after.pending_job_id.expect("the next occurrence is enqueued with it");
        assert_ne!(next, ran.id);
        assert_eq!(engine.get(next).await.expect("read").expect("there").state, JobState::Scheduled);
        assert_eq!(runs.load(Ordering::SeqCst), n, "each occurrence ran once");
    }
    engine.stop().await.expect("stopped");
}

async fn a_failed_occurrence_is_recorded_and_the_schedule_goes_on(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let clock = Clock::manual(time::macros::datetime!(2026-12-02 09:30 UTC));
    let (engine, _) = start(&db, &clock).await;
    let every = Schedule::every(Duration::from_secs(900), "UTC").expect("interval");
    let spec = ScheduleSpec { kind: Tick::KIND, owner: "failing".into(), args: serde_json::json!({"fail": true}), schedule: every };
    let row = engine.schedule(&spec).await.expect("scheduled");
    let ran = run_next(&engine, &clock, row.id).await;
    assert_eq!((ran.state, ran.errors.as_slice()), (JobState::Discarded, ["the tick failed".to_owned()].as_slice()), "{ran:?}");
    let after = engine.store().schedule(row.id).await.expect("read").expect("there");
    assert_eq!((after.last_outcome.as_deref(), after.last_error.as_deref()), (Some("failed"), Some("the tick failed")));
    assert_eq!(after.next_run_at, row.next_run_at + 900);
    assert!(after.pending_job_id.is_some_and(|next| next != ran.id), "{after:?}");
    engine.stop().await.expect("stopped");
}

async fn a_snoozed_occurrence_waits_for_its_time_not_for_the_sweeper(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let clock = Clock::manual(time::macros::datetime!(2026-12-02 09:30 UTC));
    let (engine, runs) = start(&db, &clock).await;
    let every = Schedule::every(Duration::from_secs(900), "UTC").expect("interval");
    let spec = ScheduleSpec {
        kind: Tick::KIND,
        owner: "throttled".into(),
        args: serde_json::json!({"fail": false, "snooze": true}),
        schedule: every,
    };
    let row = engine.schedule(&spec).await.expect("scheduled");
    let job = row.pending_job_id.expect("the first occurrence is enqueued");
    clock.set(time::OffsetDateTime::from_unix_timestamp(row.next_run_at).expect("instant")).expect("manual clock");
    engine.sweep().await.expect("swept");
    let snoozed = engine
        .wait_for(job, Duration::from_secs(30), |j| j.state == JobState::Scheduled && j.attempted_at.is_some())
        .await
        .expect("the occurrence ran and snoozed");
    // Its schedule is still due by pbi-bridge's clock, but the job waits for the time it asked for: sweeping
    // again (as the engine does every second) must not make it due.
    assert_eq!(engine.sweep().await.expect("swept"), 0, "a snoozed occurrence is not made due again");
    let still = engine.get(job).await.expect("read").expect("there");
    assert_eq!((still.state, still.scheduled_at), (JobState::Scheduled, snoozed.scheduled_at), "{still:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.stop().await.expect("stopped");
}

/// Another instance's lease, as River's elector writes it, valid for an hour.
async fn another_instance_leads(store: &pbi_store::Store) {
    match store.pool() {
        pbi_store::Pool::Sqlite(pool) => pbi_store::sqlx::query(
            "INSERT INTO river_leader (leader_id, elected_at, expires_at) \
             VALUES ('another-instance', strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now', '+1 hour'))",
        )
        .execute(pool)
        .await
        .map(drop),
        pbi_store::Pool::Postgres(pool) => pbi_store::sqlx::query(
            "INSERT INTO river_leader (leader_id, elected_at, expires_at) VALUES ('another-instance', now(), now() + interval '1 hour')",
        )
        .execute(pool)
        .await
        .map(drop),
    }
    .expect("a lease of another instance's");
}

async fn nobody_leads(store: &pbi_store::Store) {
    match store.pool() {
        pbi_store::Pool::Sqlite(pool) => pbi_store::sqlx::query("DELETE FROM river_leader").execute(pool).await.map(drop),
        pbi_store::Pool::Postgres(pool) => pbi_store::sqlx::query("DELETE FROM river_leader").execute(pool).await.map(drop),
    }
    .expect("the lease removed");
}

async fn an_instance_that_does_not_lead_does_not_sweep(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = db.store().await;
    Engine::migrate(store.pool()).await.expect("migrated");
    // The lease is taken before this instance starts, so its elector cannot win while the lease lasts.
    another_instance_leads(&store).await;
    let clock = Clock::manual(time::macros::datetime!(2026-12-02 09:30 UTC));
    let (engine, _) = start(&db, &clock).await;
    assert_eq!(store.job_leader().await.expect("read").as_deref(), Some("another-instance"));
    assert!(!engine.sweeps_here().await.expect("asked"), "the leader sweeps, not this instance");
    // Without a leader (before an election, or after the leader died), every instance sweeps: it is safe.
    nobody_leads(&store).await;
    assert!(engine.sweeps_here().await.expect("asked"), "nobody leads, so this instance sweeps");
    engine.stop().await.expect("stopped");
}
