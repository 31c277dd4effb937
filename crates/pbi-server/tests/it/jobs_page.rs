//! Background jobs for administrators: the page and the API show the queue, the schedules and failed jobs,
//! and retry or cancel them; nobody else may look or act.

use crate::{App, hidden};
use pbi_jobs::{Engine, EngineConfig, Failure, Handler, Job, JobState, NewJob, Outcome, Registry, Running};
use reqwest::StatusCode;
use std::time::Duration;

/// A job that fails as Power BI would when throttling: retried after an hour.
#[derive(serde::Serialize, serde::Deserialize)]
struct Throttled {}

impl Job for Throttled {
    const KIND: &'static str = "test.throttled";
    const MAX_ATTEMPTS: u16 = 3;
}

/// A job whose one attempt fails: it ends discarded.
#[derive(serde::Serialize, serde::Deserialize)]
struct Doomed {}

impl Job for Doomed {
    const KIND: &'static str = "test.doomed";
    const MAX_ATTEMPTS: u16 = 1;
}

struct Fails;

impl Handler<Throttled> for Fails {
    async fn run(&self, _job: Running<Throttled>) -> Result<Outcome, Failure> {
        Err(Failure::retry_after("Power BI answered 429 Too Many Requests", Duration::from_secs(3600)))
    }
}

impl Handler<Doomed> for Fails {
    async fn run(&self, _job: Running<Doomed>) -> Result<Outcome, Failure> {
        Err(Failure::new("the dataset was deleted"))
    }
}

/// Another process's engine on the same database, running the test's kinds.
async fn worker(app: &App) -> Engine {
    let registry = Registry::new().with::<Throttled, _>(Fails).expect("kind").with::<Doomed, _>(Fails).expect("kind");
    Engine::start(app.store.clone(), app.clock.clone(), registry, &EngineConfig::default()).await.expect("engine")
}

async fn post(app: &App, cookie: &str, path: &str, csrf: &str) -> reqwest::Response {
    app.http.post(app.url(path)).header("cookie", cookie).form(&[("csrf", csrf)]).send().await.expect("POST")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_see_failed_jobs_and_retry_or_cancel_them() {
    let app = App::start_working(pbi_clock::Clock::manual_from_now()).await;
    let worker = worker(&app).await;
    let throttled = worker.enqueue(NewJob::now(Throttled {})).await.expect("enqueued").id;
    let doomed = worker.enqueue(NewJob::now(Doomed {})).await.expect("enqueued").id;
    let within = Duration::from_secs(30);
    worker.wait_for(throttled, within, |j| j.state == JobState::Retryable).await.expect("failed once");
    worker.wait_for(doomed, within, |j| j.state == JobState::Discarded).await.expect("discarded");

    let admin = app.session("admin").await;
    let (status, page) = app.page(&admin, "/admin/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(r#"id="area-jobs" aria-current="page""#), "the page has its place in the top bar");
    for kind in ["housekeeping.purge", "connections.keepalive", "connections.report", "registrations.key_check"] {
        assert!(page.split(r#"id="schedules""#).nth(1).expect("schedules").contains(kind), "{kind} is scheduled: {page}");
    }
    let queue = page.split(r#"id="queue""#).nth(1).expect("the queue").split("</table>").next().expect("table");
    assert!(queue.contains("<code>test.throttled</code>") && queue.contains("<code>test.doomed</code>"), "{queue}");
    let row = |id: i64| page.split(&format!(r#"id="job-{id}""#)).nth(1).expect("a row").split("</tr>").next().expect("row").to_owned();
    let first = row(throttled);
    assert!(first.contains("retryable") && first.contains("1 of 3") && first.contains("Power BI answered 429"), "{first}");
    assert!(first.contains(&format!(r#"id="retry-{throttled}""#)) && first.contains(&format!(r#"id="cancel-{throttled}""#)), "{first}");
    let second = row(doomed);
    assert!(second.contains("discarded") && second.contains("1 of 1") && second.contains("the dataset was deleted"), "{second}");
    assert!(!second.contains("cancel-"), "a finished job cannot be cancelled: {second}");

    // Cancel the throttled job: it will not run again; cancelling it twice says why not.
    let csrf = hidden(&page, "csrf").expect("csrf");
    let cancelled = post(&app, &admin, &format!("/admin/jobs/{throttled}/cancel"), &csrf).await;
    assert_eq!((cancelled.status(), cancelled.headers()["location"].to_str().expect("ascii")), (StatusCode::SEE_OTHER, "/admin/jobs"));
    let (_, after) = app.page(&admin, "/admin/jobs").await;
    assert!(after.contains(&format!("Job {throttled} (test.throttled) is cancelled")), "{after}");
    assert_eq!(worker.get(throttled).await.expect("read").expect("there").state, JobState::Cancelled);
    post(&app, &admin, &format!("/admin/jobs/{throttled}/cancel"), &csrf).await;
    let (_, again) = app.page(&admin, "/admin/jobs").await;
    assert!(again.contains(&format!("Job {throttled} has already finished (cancelled): there is nothing to cancel.")), "{again}");

    // Retry the discarded one: it runs again (and fails again, with its second error kept).
    post(&app, &admin, &format!("/admin/jobs/{doomed}/retry"), &csrf).await;
    let (_, retried) = app.page(&admin, "/admin/jobs").await;
    assert!(retried.contains(&format!("Job {doomed} (test.doomed) will run again now.")), "{retried}");
    let ran = worker.wait_for(doomed, within, |j| j.errors.len() == 2 && j.state.is_finished()).await.expect("ran again");
    assert_eq!(ran.state, JobState::Discarded);

    // An old form (another session's token) changes nothing.
    let stale = post(&app, &admin, &format!("/admin/jobs/{doomed}/retry"), "not the session's token").await;
    assert_eq!(stale.status(), StatusCode::FORBIDDEN);
    assert_eq!(worker.get(doomed).await.expect("read").expect("there").errors.len(), 2);

    // Nobody else sees or acts on the jobs.
    let alice = app.session("alice").await;
    let (status, refused) = app.page(&alice, "/admin/jobs").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (_, alices) = app.page(&alice, "/settings").await;
    assert!(!alices.contains(r#"id="area-jobs""#), "the top bar offers it to administrators only");
    let alice_csrf = hidden(&alices, "csrf").expect("csrf");
    assert_eq!(post(&app, &alice, &format!("/admin/jobs/{doomed}/retry"), &alice_csrf).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(worker.get(doomed).await.expect("read").expect("there").errors.len(), 2, "Alice's retry did nothing");
    worker.stop().await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_gives_the_same_overview_and_refuses_bad_ids_by_name() {
    let app = App::start_working(pbi_clock::Clock::manual_from_now()).await;
    let worker = worker(&app).await;
    let doomed = worker.enqueue(NewJob::now(Doomed {})).await.expect("enqueued").id;
    worker.wait_for(doomed, Duration::from_secs(30), |j| j.state == JobState::Discarded).await.expect("discarded");
    let admin = app.session("admin").await;
    let get = |path: &str| {
        let request = app.http.get(app.url(path)).header("cookie", &admin);
        async move {
            let response = request.send().await.expect("GET");
            (response.status(), response.json::<serde_json::Value>().await.expect("JSON"))
        }
    };
    // A subscription's schedule (a user's, not pbi-bridge's own) is counted, not listed: there may be 10,000.
    let subscription = pbi_store::NewSchedule {
        kind: "deliveries.run".into(),
        owner: "subscription:1".into(),
        args: "{}".into(),
        recurrence: "0 * * * *".into(),
        time_zone: "UTC".into(),
        next_run_at: app.clock.unix() + 3600,
    };
    app.store.upsert_schedule(&subscription, app.clock.unix()).await.expect("a subscription's schedule");
    let (status, overview) = get("/api/v1/admin/jobs").await;
    assert_eq!(status, StatusCode::OK, "{overview}");
    assert_eq!(overview["schedules"].as_array().map(Vec::len), Some(4), "{overview}");
    assert_eq!(overview["otherSchedules"], serde_json::json!([{"kind": "deliveries.run", "count": 1}]));
    let (_, page) = app.page(&admin, "/admin/jobs").await;
    assert!(page.contains("And 1 schedule(s) of <code>deliveries.run</code>") && !page.contains("subscription:1"), "{page}");
    let failed = &overview["failed"][0];
    assert_eq!(
        (failed["id"].as_i64(), failed["state"].as_str(), failed["errors"][0].as_str()),
        (Some(doomed), Some("discarded"), Some("the dataset was deleted"))
    );
    assert!(
        overview["counts"]
            .as_array()
            .expect("counts")
            .iter()
            .any(|c| c["kind"] == "test.doomed" && c["state"] == "discarded" && c["count"] == 1)
    );
    let (status, one) = get(&format!("/api/v1/admin/jobs/{doomed}")).await;
    assert_eq!((status, one["maxAttempts"].as_u64()), (StatusCode::OK, Some(1)));
    let (status, bad) = get("/api/v1/admin/jobs/twelve").await;
    assert_eq!((status, bad["error"]["field"].as_str()), (StatusCode::BAD_REQUEST, Some("id")), "{bad}");
    let (status, missing) = get("/api/v1/admin/jobs/987654321").await;
    assert_eq!((status, missing["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")), "{missing}");

    // A session changes something only with its CSRF token in the header.
    let (_, settings) = app.page(&admin, "/settings").await;
    let csrf = hidden(&settings, "csrf").expect("csrf");
    let cancel = |header: Option<&str>| {
        let mut request = app.http.post(app.url(&format!("/api/v1/admin/jobs/{doomed}/cancel"))).header("cookie", &admin);
        if let Some(token) = header {
            request = request.header("x-csrf-token", token);
        }
        async move { request.send().await.expect("POST") }
    };
    assert_eq!(cancel(None).await.status(), StatusCode::FORBIDDEN);
    let finished = cancel(Some(&csrf)).await;
    assert_eq!(finished.status(), StatusCode::CONFLICT, "a discarded job has finished: nothing to cancel");
    let retried = app
        .http
        .post(app.url(&format!("/api/v1/admin/jobs/{doomed}/retry")))
        .header("cookie", &admin)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("POST");
    assert_eq!(retried.status(), StatusCode::OK);
    worker.stop().await.expect("stopped");
}
