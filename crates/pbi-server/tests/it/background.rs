//! The server's background work on the job engine: housekeeping runs on its schedule, on the server's clock.

use crate::App;
use pbi_jobs::Job as _;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn housekeeping_forgets_expired_sessions_and_states_every_hour() {
    let app = App::start().await;
    let engine =
        pbi_server::background::start(app.store.clone(), app.clock.clone(), app.auth(), &Default::default()).await.expect("engine");
    let schedule = app.store.schedule_of(pbi_server::background::Purge::KIND, "system").await.expect("read").expect("scheduled at start");
    // Starting again (a restart) keeps the one schedule and its next run.
    let restarted =
        pbi_server::background::start(app.store.clone(), app.clock.clone(), app.auth(), &Default::default()).await.expect("engine");
    restarted.stop().await.expect("stopped");
    assert_eq!(app.store.schedules().await.expect("list").len(), 4, "housekeeping, the keep-alive, the report and the key check");
    assert_eq!(app.store.schedule(schedule.id).await.expect("read").expect("there").next_run_at, schedule.next_run_at);

    // A session that has ended by the time the purge runs.
    let _cookie = app.session("alice").await;
    app.clock
        .set(time::OffsetDateTime::from_unix_timestamp(schedule.next_run_at).expect("instant") + time::Duration::days(30))
        .expect("manual");
    engine.sweep().await.expect("swept");
    // By its key: the occurrence may have run already, and the schedule's pending job be the next one.
    let key = format!("schedule:{}@{}", schedule.id, schedule.next_run_at);
    let jobs = engine.list(&[pbi_server::background::Purge::KIND], &[], 100, None).await.expect("list");
    let job = jobs.iter().find(|j| j.unique_key.as_deref() == Some(key.as_str())).map(|j| j.id).expect("the occurrence's job");
    let ran = engine.wait_for(job, Duration::from_secs(30), |j| j.state.is_finished()).await.expect("ran");
    assert_eq!(ran.state, pbi_jobs::JobState::Completed, "{ran:?}");
    let now = app.clock.unix();
    assert_eq!(app.store.purge_sessions(now).await.expect("purge"), 0, "the expired session was already gone");
    let after = app.store.schedule(schedule.id).await.expect("read").expect("there");
    assert_eq!(after.last_outcome.as_deref(), Some("completed"));
    assert!(after.next_run_at > now, "the next run is after now: {after:?}");
    engine.stop().await.expect("stopped");
}
