//! The engine on both backends: run now and later, unique keys, the delay an error asks for, snooze, cancel,
//! discard after the last attempt, and enqueueing inside a transaction that rolls back.

mod support;

use pbi_clock::Clock;
use pbi_jobs::{Engine, EngineConfig, Failure, Handler, Job, JobState, NewJob, Outcome, Registry, Running};
use pbi_store::StoreTx;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::TestDb;

const WITHIN: Duration = Duration::from_secs(30);

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Ping {
    n: u32,
}

impl Job for Ping {
    const KIND: &'static str = "tests.ping";
    const MAX_ATTEMPTS: u16 = 3;
}

/// What a test's handler answers to an attempt.
type Script = dyn Fn(&Running<Ping>) -> Result<Outcome, Failure> + Send + Sync;

/// Answers each attempt with what `script` says for that attempt number, and counts attempts.
#[derive(Clone)]
struct Scripted {
    runs: Arc<AtomicUsize>,
    script: Arc<Script>,
}

impl Handler<Ping> for Scripted {
    async fn run(&self, job: Running<Ping>) -> Result<Outcome, Failure> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        (self.script)(&job)
    }
}

async fn engine(
    db: &TestDb,
    script: impl Fn(&Running<Ping>) -> Result<Outcome, Failure> + Send + Sync + 'static,
) -> (Engine, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let handler = Scripted { runs: runs.clone(), script: Arc::new(script) };
    let registry = Registry::new().with::<Ping, _>(handler).expect("registered");
    let engine = Engine::start(db.store().await, Clock::system(), registry, &EngineConfig::default()).await.expect("engine");
    (engine, runs)
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(false).await } )* }
        mod postgres { $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)] async fn $name() { super::$name(true).await } )* }
    };
}

on_both!(
    a_job_runs_and_completes,
    a_job_for_later_waits_until_it_is_due,
    a_unique_key_enqueues_once_until_the_job_finishes,
    a_failure_is_retried_after_the_delay_it_asks_for,
    a_snooze_spends_no_attempt,
    cancelled_jobs_do_not_run,
    a_job_that_keeps_failing_ends_discarded_with_its_errors,
    a_job_enqueued_in_a_rolled_back_transaction_never_exists,
    a_waiting_job_is_made_due_only_while_it_waits,
);

async fn a_job_runs_and_completes(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let (engine, runs) = engine(&db, |_| Ok(Outcome::Done)).await;
    let job = engine.enqueue(NewJob::now(Ping { n: 1 })).await.expect("enqueued");
    let done = engine.wait_for(job.id, WITHIN, |j| j.state.is_finished()).await.expect("finished");
    assert_eq!((done.state, done.attempt, done.kind.as_str()), (JobState::Completed, 1, "tests.ping"));
    assert_eq!(done.args, serde_json::json!({"n": 1}));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.stop().await.expect("stopped");
}

async fn a_job_for_later_waits_until_it_is_due(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let (engine, runs) = engine(&db, |_| Ok(Outcome::Done)).await;
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let job = engine.enqueue(NewJob::now(Ping { n: 2 }).at(later)).await.expect("enqueued");
    let info = engine.get(job.id).await.expect("read").expect("there");
    assert_eq!(info.state, JobState::Scheduled);
    assert!((info.scheduled_at - later).abs() < time::Duration::milliseconds(1), "{info:?}");
    // Made due now (as the schedules' sweeper does when pbi-bridge's clock says so), it runs.
    engine.retry(job.id).await.expect("made due");
    let done = engine.wait_for(job.id, WITHIN, |j| j.state.is_finished()).await.expect("finished");
    assert_eq!((done.state, runs.load(Ordering::SeqCst)), (JobState::Completed, 1));
    engine.stop().await.expect("stopped");
}

async fn a_unique_key_enqueues_once_until_the_job_finishes(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let (engine, runs) = engine(&db, |_| Ok(Outcome::Done)).await;
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let first = engine.enqueue(NewJob::now(Ping { n: 1 }).at(later).unique("schedule-7@2026-12-02T10:00Z")).await.expect("enqueued");
    let again = engine.enqueue(NewJob::now(Ping { n: 2 }).at(later).unique("schedule-7@2026-12-02T10:00Z")).await.expect("enqueued");
    assert_eq!((again.id, again.duplicate, first.duplicate), (first.id, true, false), "one occurrence, whatever the other arguments");
    let other = engine.enqueue(NewJob::now(Ping { n: 1 }).at(later).unique("schedule-7@2026-12-02T11:00Z")).await.expect("enqueued");
    assert!(!other.duplicate && other.id != first.id, "another key is another job");
    let many = engine
        .enqueue_many((0..3).map(|n| NewJob::now(Ping { n }).at(later).unique("schedule-7@2026-12-02T10:00Z")).collect())
        .await
        .expect("enqueued");
    assert!(many.iter().all(|e| e.duplicate && e.id == first.id), "{many:?}");
    engine.retry(first.id).await.expect("due");
    engine.wait_for(first.id, WITHIN, |j| j.state == JobState::Completed).await.expect("ran");
    let after = engine.enqueue(NewJob::now(Ping { n: 1 }).at(later).unique("schedule-7@2026-12-02T10:00Z")).await.expect("enqueued");
    assert!(!after.duplicate, "a finished job's key can be used again");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.stop().await.expect("stopped");
}

async fn a_failure_is_retried_after_the_delay_it_asks_for(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let (engine, _) = engine(&db, |_| Err(Failure::retry_after("Power BI answered 429", Duration::from_secs(30)))).await;
    let job = engine.enqueue(NewJob::now(Ping { n: 1 })).await.expect("enqueued");
    let failed = engine.wait_for(job.id, WITHIN, |j| j.state == JobState::Retryable).await.expect("failed once");
    assert_eq!(failed.errors, ["Power BI answered 429"]);
    let attempted = failed.attempted_at.expect("attempted");
    let delay = failed.scheduled_at - attempted;
    assert!(delay >= time::Duration::seconds(30) && delay < time::Duration::seconds(31), "retried after {delay}, not River's backoff");
    engine.stop().await.expect("stopped");
}

async fn a_snooze_spends_no_attempt(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let (engine, _) = engine(&db, |_| Ok(Outcome::Snooze(Duration::from_secs(600)))).await;
    let job = engine.enqueue(NewJob::now(Ping { n: 1 })).await.expect("enqueued");
    let snoozed = engine.wait_for(job.id, WITHIN, |j| j.state == JobState::Scheduled).await.expect("snoozed");
    assert!(snoozed.errors.is_empty(), "{snoozed:?}");
    let delay = snoozed.scheduled_at - snoozed.attempted_at.expect("attempted");
    assert!(delay >= time::Duration::seconds(600) && delay < time::Duration::seconds(601), "{delay}");
    // Made due again, it still has all its attempts: the snooze did not count.
    engine.retry(job.id).await.expect("due");
    let again = engine
        .wait_for(job.id, WITHIN, |j| j.state == JobState::Scheduled && j.attempted_at != snoozed.attempted_at)
        .await
        .expect("snoozed again");
    let left = |j: &pbi_jobs::JobInfo| i32::from(j.max_attempts) - i32::from(j.attempt);
    assert_eq!(left(&again), left(&snoozed), "the attempts left are the same after a second snooze: {snoozed:?} {again:?}");
    engine.stop().await.expect("stopped");
}

async fn cancelled_jobs_do_not_run(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let (engine, runs) =
        engine(&db, |job| if job.args.n == 9 { Ok(Outcome::Cancel("the owner is gone".into())) } else { Ok(Outcome::Done) }).await;
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let job = engine.enqueue(NewJob::now(Ping { n: 1 }).at(later)).await.expect("enqueued");
    let cancelled = engine.cancel(job.id).await.expect("cancelled");
    assert_eq!(cancelled.state, JobState::Cancelled);
    let by_handler = engine.enqueue(NewJob::now(Ping { n: 9 })).await.expect("enqueued");
    let ended = engine.wait_for(by_handler.id, WITHIN, |j| j.state.is_finished()).await.expect("ended");
    assert_eq!(ended.state, JobState::Cancelled);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "only the second ran");
    assert_eq!(engine.get(job.id).await.expect("read").expect("kept").state, JobState::Cancelled);
    engine.stop().await.expect("stopped");
}

async fn a_job_that_keeps_failing_ends_discarded_with_its_errors(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let (engine, runs) = engine(&db, |job| Err(Failure::retry_after(format!("attempt {} failed", job.attempt), Duration::ZERO))).await;
    let job = engine.enqueue(NewJob::now(Ping { n: 1 })).await.expect("enqueued");
    let ended = engine.wait_for(job.id, WITHIN, |j| j.state.is_finished()).await.expect("ended");
    assert_eq!(ended.state, JobState::Discarded, "{ended:?}");
    assert_eq!(ended.errors, ["attempt 1 failed", "attempt 2 failed", "attempt 3 failed"]);
    assert_eq!(runs.load(Ordering::SeqCst), 3, "Ping::MAX_ATTEMPTS");
    engine.stop().await.expect("stopped");
}

async fn a_job_enqueued_in_a_rolled_back_transaction_never_exists(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let (engine, runs) = engine(&db, |_| Ok(Outcome::Done)).await;
    let mut tx: StoreTx<'static> = engine.store().begin().await.expect("begin");
    let gone = engine.enqueue_in(&mut tx, NewJob::now(Ping { n: 1 })).await.expect("enqueued");
    tx.rollback().await.expect("rollback");
    let mut tx = engine.store().begin().await.expect("begin");
    let kept = engine.enqueue_in(&mut tx, NewJob::now(Ping { n: 2 })).await.expect("enqueued");
    tx.commit().await.expect("commit");
    engine.wait_for(kept.id, WITHIN, |j| j.state == JobState::Completed).await.expect("ran");
    // SQLite may hand the rolled-back job's id to the next job: look for the rolled-back one by its arguments.
    let all = engine.list(&[], &[], 100, None).await.expect("list");
    assert_eq!(all.iter().map(|j| j.args.clone()).collect::<Vec<_>>(), [serde_json::json!({"n": 2})], "{gone:?} {all:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.stop().await.expect("stopped");
}

async fn a_waiting_job_is_made_due_only_while_it_waits(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let (engine, runs) = engine(&db, |_| Ok(Outcome::Done)).await;
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let job = engine.enqueue(NewJob::now(Ping { n: 1 }).at(later)).await.expect("enqueued");
    assert!(engine.make_due(job.id).await.expect("made due"), "a scheduled job is made due");
    let done = engine.wait_for(job.id, WITHIN, |j| j.state.is_finished()).await.expect("finished");
    assert_eq!((done.state, runs.load(Ordering::SeqCst)), (JobState::Completed, 1));
    // What the schedules' sweeper does when it read the job as waiting just before it ran: nothing changes now
    // (River's `retry` would make the finished job available, and it would run a second time).
    assert!(!engine.make_due(job.id).await.expect("asked"), "a finished job is not made due");
    assert_eq!(engine.get(job.id).await.expect("read").expect("kept").state, JobState::Completed);
    let cancelled = engine.enqueue(NewJob::now(Ping { n: 2 }).at(later)).await.expect("enqueued");
    engine.cancel(cancelled.id).await.expect("cancelled");
    assert!(!engine.make_due(cancelled.id).await.expect("asked"));
    assert_eq!(engine.get(cancelled.id).await.expect("read").expect("kept").state, JobState::Cancelled);
    assert!(!engine.make_due(i64::MAX).await.expect("asked"), "no such job");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    engine.stop().await.expect("stopped");
}
