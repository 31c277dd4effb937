//! Benchmark of the token broker (run: `cargo run --release -p pbi-auth --example broker_bench [connections]`).
//! 1. Warm: access tokens served per second from memory (no network, no disk), one task and many.
//! 2. Cold: every connection's token expired at once; all refresh together against the sandbox.

use pbi_auth::{Auth, AuthSettings, Callback, StartOptions};
use pbi_crypto::KeyRing;
use pbi_sandbox::{Command, Sandbox, SandboxConfig, demo};
use pbi_store::{NewRegistration, Store};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

#[tokio::main]
async fn main() {
    let connections: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(1000);
    let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("sandbox");
    let base = sandbox.base_url().to_owned();
    let tenant = pbi_sandbox::demo_id("tenant:contoso");
    let db = std::env::temp_dir().join(format!("pbi-broker-bench-{}.db", Uuid::new_v4()));
    let keys = KeyRing::parse(&KeyRing::new_key_line(1)).expect("keys");
    let store = Store::connect(&format!("sqlite://{}", db.display()), keys).await.expect("store");
    let now = sandbox.clock().unix();
    let registration = store
        .add_registration(
            &NewRegistration {
                name: "bench".into(),
                client_id: pbi_sandbox::demo_client_id().to_string(),
                tenant: demo::CONTOSO_DOMAIN.into(),
                cloud: "public".into(),
                redirect_urls: vec![format!("{base}/_sandbox/callback")],
                scopes: vec!["Dashboard.Read.All".into(), "offline_access".into()],
                authorize_url: Some(format!("{base}/{}/oauth2/v2.0/authorize", demo::CONTOSO_DOMAIN)),
                token_url: Some(format!("{base}/{}/oauth2/v2.0/token", demo::CONTOSO_DOMAIN)),
                api_base: Some(base.clone()),
                enabled: true,
            },
            now,
        )
        .await
        .expect("registration");
    store.add_secret(registration.id, &SecretString::from(demo::APP_SECRET.to_owned()), now + 365 * 86_400, now).await.expect("secret");
    let auth = Arc::new(Auth::new(store.clone(), sandbox.clock().clone(), AuthSettings::default()));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");

    let started = Instant::now();
    let mut ids = Vec::with_capacity(connections);
    for i in 0..connections {
        let upn = format!("bench{i}@{}", demo::CONTOSO_DOMAIN);
        let created = sandbox
            .control(Command::CreateUser {
                id: None,
                tenant,
                upn: upn.clone(),
                display_name: None,
                password: "p".into(),
                power_bi_licensed: true,
                power_bi_admin: false,
                directory_admin: false,
            })
            .expect("user");
        let user: Uuid = serde_json::from_value(created["id"].clone()).expect("id");
        sandbox
            .control(Command::GrantConsent {
                tenant,
                client_id: pbi_sandbox::demo_client_id(),
                user: Some(user),
                scopes: vec!["Dashboard.Read.All".into()],
            })
            .expect("consent");
        let url = auth
            .start_authorization(registration.id, &pbi_store::Owner::User(uuid::Uuid::new_v4()), &upn, "/", &StartOptions::default())
            .await
            .expect("start");
        let page = http.get(url).send().await.expect("authorize").text().await.expect("page");
        let ctx = page.split(r#"name="ctx" value=""#).nth(1).and_then(|r| r.split('"').next()).expect("ctx").to_owned();
        let answer = http
            .post(format!("{base}/{}/login", demo::CONTOSO_DOMAIN))
            .form(&[("ctx", ctx.as_str()), ("login", upn.as_str()), ("passwd", "p")])
            .send()
            .await
            .expect("login");
        let location = answer.headers()["location"].to_str().expect("location").to_owned();
        let pairs: Vec<(String, String)> = url::Url::parse(&location).expect("url").query_pairs().into_owned().collect();
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let completed = auth
            .complete_authorization(&upn, &Callback { code: get("code"), state: get("state"), ..Default::default() }, None)
            .await
            .expect("connected");
        ids.push(completed.connection.id);
    }
    println!("connected {connections} users through the full sign-in flow in {:.2} s", started.elapsed().as_secs_f64());

    // 1. Warm.
    let rounds = 1_000_000usize;
    let started = Instant::now();
    let mut bytes = 0usize;
    for i in 0..rounds {
        bytes += auth.access_token(ids[i % ids.len()], None).await.expect("warm token").expose_secret().len();
    }
    let single = rounds as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let (auth, ids) = (auth.clone(), ids.clone());
            tokio::spawn(async move {
                for i in 0..rounds / 8 {
                    auth.access_token(ids[(i + t) % ids.len()], None).await.expect("warm token");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    let parallel = rounds as f64 / started.elapsed().as_secs_f64();
    println!("warm: {single:.0} tokens/s from one task, {parallel:.0} tokens/s from 8 tasks ({bytes} token bytes served)");

    // 2. Cold: all expire, all refresh together.
    sandbox.clock().advance(time::Duration::hours(2)).expect("manual clock");
    sandbox.clear_requests();
    let started = Instant::now();
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| (auth.clone(), *id))
        .map(|(auth, id)| tokio::spawn(async move { auth.access_token(id, None).await.map(|_| ()) }))
        .collect();
    let mut failures = 0;
    for task in tasks {
        if task.await.expect("task").is_err() {
            failures += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let token_requests = sandbox.requests().iter().filter(|r| r.path.ends_with("/oauth2/v2.0/token")).count();
    println!(
        "cold: {connections} connections refreshed together in {elapsed:.2} s ({:.0} refreshes/s), {token_requests} token requests, {failures} failures",
        connections as f64 / elapsed
    );
    store.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}
