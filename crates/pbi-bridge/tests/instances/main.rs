//! Several instances (issue 11): three `pbi-bridge serve` processes on one PostgreSQL database share the
//! background work. 1,000 connections are due a keep-alive; one process is killed with SIGKILL while the
//! refreshes run; every connection is still refreshed, and at most twice (the at-least-once of a job whose
//! process died mid-run), as the sandbox's request log shows.
//!
//! A test binary of its own: cargo runs test binaries one after another, so these three servers have the
//! machine to themselves instead of sharing two cores with the `it` binary's other tests (under that load a
//! live instance's jobs outlived the rescue window and were run again).

#[path = "../support/serve.rs"]
mod serve;

use serve::{Folder, Instance, consented_app, sandbox_registration};

use pbi_sandbox::Command as SandboxCommand;
use pbi_sandbox::{Sandbox, SandboxConfig, SandboxHandle, demo};
use pbi_store::sqlx::{self, PgPool};
use pbi_store::{Account, ConnectionStatus, Store, Tokens};
use secrecy::SecretString;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CONNECTIONS: usize = 1000;
const INSTANCES: usize = 3;
/// The refreshes seen before one instance is killed.
const KILL_AFTER: usize = 300;
const SCOPE: &str = "openid profile offline_access https://analysis.windows.net/powerbi/api/Dashboard.Read.All";

/// The successful refresh-token requests in the sandbox's log, by caller (each connection is a user of its own).
fn refreshes_by_user(sandbox: &SandboxHandle, token_path: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for request in sandbox.requests() {
        if request.method == "POST" && request.path == token_path && request.status == 200 {
            *counts.entry(request.caller.unwrap_or_default()).or_insert(0) += 1;
        }
    }
    counts
}

/// The `connections.refresh` jobs by state.
async fn refresh_jobs(pool: &PgPool) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>("SELECT state::text, count(*) FROM river_job WHERE kind = 'connections.refresh' GROUP BY state")
        .fetch_all(pool)
        .await
        .expect("river_job")
        .into_iter()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_share_the_keep_alive_and_survive_one_killed_mid_run() {
    let started = Instant::now();
    let db = pbi_testdb::TestDb::new(true, "instances").await;
    let folder = Folder(std::env::temp_dir().join(format!("pbi-instances-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&folder.0).expect("folder");
    let key_file = folder.0.join("keys");
    pbi_crypto::KeyRing::write_new_key_file(&key_file, &pbi_crypto::KeyRing::new_key_line(1)).expect("key file");
    let keys = pbi_crypto::KeyRing::load(&key_file).expect("keys");
    let store = Store::connect(&db.url, keys).await.expect("store");

    // The sandbox: an app with admin consent in Contoso, and one user per connection.
    let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("sandbox");
    let tenant = pbi_sandbox::demo_id("tenant:contoso");
    let (client_id, secret) = consented_app(&sandbox, "ERP", &["Dashboard.Read.All"]);
    let token_path = format!("/{}/oauth2/v2.0/token", demo::CONTOSO_DOMAIN);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let registration = sandbox_registration(&sandbox, "erp", client_id, &["Dashboard.Read.All", "offline_access"]);
    let registration = store.add_registration(&registration, now).await.expect("registration");
    store.add_secret(registration.id, &SecretString::from(secret), now + 365 * 86_400, now).await.expect("secret");

    // 1,000 connections whose tokens were issued two days ago: all due a keep-alive.
    let two_days_ago = now - 2 * 86_400;
    for n in 0..CONNECTIONS {
        let upn = format!("keepalive{n:04}@{}", demo::CONTOSO_DOMAIN);
        let user = sandbox
            .control(SandboxCommand::CreateUser {
                id: None,
                tenant,
                upn: upn.clone(),
                display_name: None,
                password: "unused-password".into(),
                power_bi_licensed: true,
                power_bi_admin: false,
                directory_admin: false,
            })
            .expect("user")["id"]
            .as_str()
            .expect("id")
            .parse::<uuid::Uuid>()
            .expect("uuid");
        let refresh = sandbox
            .control(SandboxCommand::IssueRefreshToken { user, client_id, scope: SCOPE.into() })
            .expect("refresh token")["refreshToken"]
            .as_str()
            .expect("token")
            .to_owned();
        let account = Account {
            owner: pbi_store::Owner::User(uuid::Uuid::from_u128(n as u128)),
            registration_id: registration.id,
            tenant_id: tenant.to_string(),
            object_id: user.to_string(),
            upn,
        };
        let tokens = Tokens {
            access: SecretString::from("expired-access-token"),
            access_expires_at: two_days_ago + 3600,
            refresh: Some(SecretString::from(refresh)),
            refresh_expires_at: Some(two_days_ago + 90 * 86_400),
        };
        store.save_connection(&account, &["Dashboard.Read.All".into()], &tokens, two_days_ago).await.expect("connection");
    }
    sandbox.clear_requests();
    let seeded = started.elapsed();

    let mut instances: Vec<Instance> = (0..INSTANCES).map(|n| Instance::start(&folder.0, n, &db.url, &key_file)).collect();
    for instance in &instances {
        let health = reqwest::get(format!("{}/healthz", instance.url)).await.expect("healthz");
        assert!(health.status().is_success(), "{}: {}", instance.url, health.status());
    }
    let pool = PgPool::connect(&db.url).await.expect("pool");
    // The keep-alive's first run is an hour after the first start: make it due now (the sweepers, every second
    // on every instance, enqueue it once).
    let run_from = time::OffsetDateTime::now_utc().unix_timestamp();
    let updated = sqlx::query("UPDATE schedules SET next_run_at = $1 WHERE kind = 'connections.keepalive'")
        .bind(run_from)
        .execute(&pool)
        .await
        .expect("make the keep-alive due");
    assert_eq!(updated.rows_affected(), 1, "one keep-alive schedule for the three instances");
    let due_at = Instant::now();

    // Neither the sandbox nor the processes announce a refresh, so the log is polled (50 ms), bounded by a
    // deadline that only a bug would reach: a refresh that failed twice waits River's third backoff (81 s).
    let deadline = Instant::now() + Duration::from_secs(300);
    let poll = Duration::from_millis(50);
    while refreshes_by_user(&sandbox, &token_path).len() < KILL_AFTER {
        assert!(Instant::now() < deadline, "only {} refreshes", refreshes_by_user(&sandbox, &token_path).len());
        tokio::time::sleep(poll).await;
    }
    let victim = instances.remove(0);
    let mut victim = victim;
    victim.child.kill().expect("SIGKILL");
    victim.child.wait().expect("reaped");
    let killed_at = Instant::now();
    let at_kill = refreshes_by_user(&sandbox, &token_path).len();
    let running_at_kill: i64 =
        sqlx::query_scalar("SELECT count(*) FROM river_job WHERE kind = 'connections.refresh' AND state = 'running'")
            .fetch_one(&pool)
            .await
            .expect("running jobs");

    // Every connection refreshed, and every refresh job finished (a rescued one may find its work done).
    loop {
        let refreshed = refreshes_by_user(&sandbox, &token_path).len();
        let jobs = refresh_jobs(&pool).await;
        let total: i64 = jobs.values().sum();
        if refreshed == CONNECTIONS && total == CONNECTIONS as i64 && jobs.get("completed") == Some(&total) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {:?}: {refreshed} connections refreshed, jobs {jobs:?}; logs: {}",
            started.elapsed(),
            instances.iter().map(Instance::log).collect::<Vec<_>>().join("\n---\n")
        );
        tokio::time::sleep(poll).await;
    }
    let all_done = killed_at.elapsed();

    let counts = refreshes_by_user(&sandbox, &token_path);
    let twice = counts.values().filter(|&&c| c == 2).count();
    let more = counts.values().filter(|&&c| c > 2).count();
    let rescued: i64 = sqlx::query_scalar("SELECT count(*) FROM river_job WHERE kind = 'connections.refresh' AND attempt > 1")
        .fetch_one(&pool)
        .await
        .expect("rescued jobs");
    let rescue_errors: i64 =
        sqlx::query_scalar("SELECT count(*) FROM river_job WHERE kind = 'connections.refresh' AND COALESCE(cardinality(errors), 0) > 0")
            .fetch_one(&pool)
            .await
            .expect("jobs with errors");
    // What the failed attempts said, and the highest attempt: for the report below.
    let errors: Vec<(String, i64)> = sqlx::query_as(
        "SELECT left(e->>'error', 120), count(*) FROM river_job, unnest(errors) AS e WHERE kind = 'connections.refresh' GROUP BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("errors");
    let max_attempt: i16 = sqlx::query_scalar("SELECT max(attempt) FROM river_job WHERE kind = 'connections.refresh'")
        .fetch_one(&pool)
        .await
        .expect("attempts");
    let leader: Option<String> = sqlx::query_scalar("SELECT leader_id FROM river_leader").fetch_optional(&pool).await.expect("leader");
    eprintln!(
        "seeded in {seeded:?}; {at_kill} refreshed at the kill ({:?} after due), {running_at_kill} refresh jobs running then; \
         all {CONNECTIONS} done {all_done:?} after the kill; refreshed twice: {twice}, more: {more}; jobs attempted more than once: \
         {rescued}, with errors: {rescue_errors} ({errors:?}, highest attempt {max_attempt}); leader now {leader:?}; whole test {:?}",
        killed_at - due_at,
        started.elapsed()
    );
    assert_eq!(counts.len(), CONNECTIONS, "every connection was refreshed");
    assert_eq!(more, 0, "no connection was refreshed more than twice: {counts:?}");
    assert!(twice as i64 <= rescued, "{twice} refreshed twice, {rescued} jobs rescued, {running_at_kill} running at the kill");

    let jobs = refresh_jobs(&pool).await;
    assert_eq!(jobs, HashMap::from([("completed".to_owned(), CONNECTIONS as i64)]), "every refresh job completed, none discarded");
    let connections = store.all_connections().await.expect("connections");
    assert_eq!(connections.len(), CONNECTIONS);
    for connection in &connections {
        assert_eq!(connection.status, ConnectionStatus::Active, "{connection:?}");
        assert!(connection.last_refresh_at.is_some_and(|t| t >= run_from), "{connection:?}");
    }
    pool.close().await;
    store.close().await;
    drop(instances);
}
