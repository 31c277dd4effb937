//! Background care of connections: the keep-alive refreshes every active connection daily so that Entra's 90
//! days without use never end one that is still wanted; a grant that is gone shows its user a banner on every
//! page and, after 4 days, is reported to administrators; application keys are announced before they expire.

use crate::connect::{World, working_world};
use pbi_jobs::{Engine, JobState};
use pbi_store::ConnectionStatus;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const ALICE: &str = "alice@contoso.onmicrosoft.com";

/// Connects Alice's Power BI account through the sandbox; returns her session and the connection.
pub(crate) async fn alice_connected(world: &World) -> (String, Uuid) {
    let alice = world.app.session("alice").await;
    let back = world.get_started(&alice, ALICE).await;
    world.app.http.get(&back).header("cookie", &alice).send().await.expect("callback");
    let connection = world.app.store.all_connections().await.expect("list").first().expect("connected").id;
    (alice, connection)
}

fn engine(world: &World) -> Arc<Engine> {
    world.app.engine()
}

/// Makes every schedule that is due by the clock run, and waits for every job that work enqueues (the
/// keep-alive's refreshes) to finish: driven by the engine's events, never by sleeping.
pub(crate) async fn run_due_work(engine: &Engine) {
    engine.sweep().await.expect("swept");
    loop {
        let waiting = engine.list(&[], &[JobState::Available, JobState::Running], 100, None).await.expect("list");
        if waiting.is_empty() {
            return;
        }
        for job in waiting {
            engine
                .wait_for(job.id, Duration::from_secs(30), |j| j.state != JobState::Available && j.state != JobState::Running)
                .await
                .expect("ran");
        }
    }
}

/// Moves the sandbox's clock (which the server and the engine read) one day on, and runs what is due.
async fn next_day(world: &World, engine: &Engine) {
    world.app.clock.advance(time::Duration::days(1)).expect("manual clock");
    run_due_work(engine).await;
}

fn refresh_grants(world: &World) -> usize {
    world.sandbox.requests().iter().filter(|r| r.path.ends_with("/oauth2/v2.0/token") && r.status == 200).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_stay_alive_through_200_days_without_their_users() {
    let world = working_world().await;
    let (_, connection) = alice_connected(&world).await;
    let engine = engine(&world);
    let issued_at_sign_in = refresh_grants(&world);
    for day in 1..=200 {
        next_day(&world, &engine).await;
        let now = world.app.clock.unix();
        let stored = world.app.store.connection(connection).await.expect("read");
        assert_eq!(stored.status, ConnectionStatus::Active, "day {day}: {stored:?}");
        let renewed = stored.last_refresh_at.expect("refreshed");
        assert!(now - renewed < 86_400, "day {day}: refreshed within the last day ({} s ago)", now - renewed);
    }
    assert_eq!(refresh_grants(&world) - issued_at_sign_in, 200, "one refresh a day, never two");
    let failed = engine.list(&[], &[JobState::Retryable, JobState::Discarded], 10, None).await.expect("list");
    assert!(failed.is_empty(), "nothing failed: {failed:?}");
    let metrics = world.app.http.get(world.app.url("/metrics")).send().await.expect("GET").text().await.expect("text");
    for line in [
        r#"pbi_bridge_job_attempts_total{kind="connections.refresh"} 200"#,
        r#"pbi_bridge_job_outcomes_total{kind="connections.refresh",outcome="completed"} 200"#,
        r#"pbi_bridge_job_outcomes_total{kind="connections.refresh",outcome="failed"} 0"#,
        r#"pbi_bridge_job_start_lateness_seconds_count{kind="connections.refresh"} 200"#,
        r#"pbi_bridge_job_start_lateness_seconds_bucket{le="+Inf",kind="connections.refresh"} 200"#,
        r#"pbi_bridge_jobs{kind="connections.refresh",state="completed"} 200"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    // After 200 days away, Alice's connection works: a call through it gets a token from Entra at once.
    assert!(world.app.auth().access_token(connection, None).await.is_ok());
    engine.stop().await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_grant_shows_its_user_a_banner_and_is_reported_to_admins_after_4_days() {
    let world = working_world().await;
    let (_, connection) = alice_connected(&world).await;
    let engine = engine(&world);
    world
        .sandbox
        .control(pbi_sandbox::Command::RevokeGrants { user: pbi_sandbox::demo_id(&format!("user:{ALICE}")), client_id: None })
        .expect("revoked");
    next_day(&world, &engine).await;
    let stored = world.app.store.connection(connection).await.expect("read");
    assert_eq!(stored.status, ConnectionStatus::NeedsSignIn, "{stored:?}");

    // Sessions last 12 hours: sign in again each time a page is looked at.
    let alice = world.app.session("alice").await;
    for path in ["/workspaces", "/settings", "/"] {
        let (_, page) = world.app.page(&alice, path).await;
        let banner = page.split(r#"id="notices""#).nth(1).unwrap_or_else(|| panic!("{path}: a banner: {page}"));
        assert!(banner.contains(&format!("Your Power BI connection ({ALICE}) needs you to sign in again")), "{path}: {banner}");
        assert!(banner.contains(r#"<a href="/settings">Sign in again on My settings</a>"#), "{path}: {banner}");
    }
    let bob = world.app.session("bob").await;
    let (_, bobs) = world.app.page(&bob, "/workspaces").await;
    assert!(!bobs.contains(r#"id="notices""#), "Bob's pages say nothing of Alice's connection: {bobs}");

    let admin = world.app.session("admin").await;
    let (_, early) = world.app.page(&admin, "/admin/users").await;
    assert!(!early.contains("not worked for 4 days"), "one day is not yet reported: {early}");
    for _ in 0..3 {
        next_day(&world, &engine).await;
    }
    let admin = world.app.session("admin").await;
    let (_, three_days) = world.app.page(&admin, "/admin/users").await;
    assert!(!three_days.contains("not worked for 4 days"), "three days are not yet reported: {three_days}");
    next_day(&world, &engine).await;
    let admin = world.app.session("admin").await;
    for path in ["/admin/users", "/admin/powerbi", "/admin/audit", "/admin/jobs"] {
        let (_, page) = world.app.page(&admin, path).await;
        let notices = page.split(r#"id="notices""#).nth(1).unwrap_or_else(|| panic!("{path}: the report: {page}"));
        assert!(
            notices.contains("1 Power BI connection has not worked for 4 days or more") && notices.contains(ALICE),
            "{path}: {notices}"
        );
    }
    let (_, jobs) = world.app.page(&admin, "/admin/jobs").await;
    let failing = jobs.split(r#"id="failing""#).nth(1).expect("the failing connections table");
    assert!(failing.contains(ALICE) && failing.contains("AADSTS50173"), "{failing}");
    let (_, own) = world.app.page(&admin, "/workspaces").await;
    assert!(!own.contains("not worked for 4 days"), "the report is for admin pages: {own}");
    let alice = world.app.session("alice").await;
    let (_, alices) = world.app.page(&alice, "/admin/users").await;
    assert!(!alices.contains("not worked for 4 days"), "nor for someone who is not an admin");
    let metrics = world.app.http.get(world.app.url("/metrics")).send().await.expect("GET").text().await.expect("text");
    assert!(metrics.contains("pbi_bridge_connections_failing 1"), "{metrics}");

    // Alice signs in again: the banner and the report go.
    // Her consent was withdrawn with the grant: the sign-in asks for it again, and she accepts.
    let back = world.get_started(&alice, ALICE).await;
    world.app.http.get(&back).header("cookie", &alice).send().await.expect("callback");
    assert_eq!(world.app.store.connection(connection).await.expect("read").status, ConnectionStatus::Active);
    let (_, page) = world.app.page(&alice, "/workspaces").await;
    assert!(!page.contains(r#"id="notices""#), "{page}");
    let (_, page) = world.app.page(&admin, "/admin/users").await;
    assert!(!page.contains("not worked for 4 days"), "{page}");
    engine.stop().await.expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_are_warned_30_7_and_1_days_before_the_application_key_expires_and_once_it_has() {
    let logs = pbi_testlog::capture();
    let world = working_world().await;
    let engine = engine(&world);
    let registration = world.app.store.registrations(false).await.expect("list").remove(0);
    let now = world.app.clock.unix();
    // The key in use now expires in 31 days.
    world
        .app
        .store
        .add_secret(registration.id, &secrecy::SecretString::from("a newer key".to_owned()), now + 31 * 86_400, now)
        .await
        .expect("key");
    let admin_notices =
        |page: &str| page.split(r#"id="notices""#).nth(1).map(|n| n.split("</div></div>").next().unwrap_or_default().to_owned());
    let look = || async {
        let admin = world.app.session("admin").await;
        world.app.page(&admin, "/admin/users").await.1
    };
    assert_eq!(admin_notices(&look().await), None, "31 days ahead: nothing yet");
    for (days, expected, kind) in [
        (1, "expires in 30 days", "message-warning"),
        (23, "expires in 7 days", "message-warning"),
        (6, "expires in 24 hours", "message-warning"),
        (1, "expired on", "message-error"),
    ] {
        for _ in 0..days {
            next_day(&world, &engine).await;
        }
        let notices = admin_notices(&look().await).unwrap_or_else(|| panic!("{expected}: a warning"));
        assert!(notices.contains(expected) && notices.contains(kind) && notices.contains("&#39;erp&#39;"), "{expected}: {notices}");
        assert!(notices.contains(r#"<a href="/admin/powerbi">Open the Power BI configuration</a>"#), "{notices}");
        let metrics = world.app.http.get(world.app.url("/metrics")).send().await.expect("GET").text().await.expect("text");
        let left = (now + 31 * 86_400) - world.app.clock.unix();
        assert!(metrics.contains(&format!(r#"pbi_bridge_application_key_expires_in_seconds{{registration="erp"}} {left}"#)), "{metrics}");
    }
    let alice = world.app.session("alice").await;
    let (_, alices) = world.app.page(&alice, "/workspaces").await;
    assert!(!alices.contains("application key"), "only administrators are told: {alices}");
    let logged = logs.text();
    for line in ["expires in 30 days (on", "expires in 7 days (on", "expires in 24 hours (on", "'erp' expired on"] {
        assert!(logged.contains(line), "the daily check logged '{line}'");
    }
    engine.stop().await.expect("stopped");
}
