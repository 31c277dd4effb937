//! Request ids, structured request logs that hold no secrets, and Prometheus metrics.

use crate::PASSWORD;
use crate::connect::world;
use crate::hidden;
use crate::workspaces::{key_of, offered};
use reqwest::StatusCode;

#[tokio::test]
async fn requests_carry_an_id_into_the_logs_the_logs_hold_no_secret_and_metrics_count_it_all() {
    let logs = pbi_testlog::capture();
    let world = world().await;
    let alice = world.app.session("alice").await;
    let back = world.get_started(&alice, "alice@contoso.onmicrosoft.com").await;
    let code = url::Url::parse(&back).expect("url").query_pairs().find(|(k, _)| k == "code").expect("code").1.into_owned();
    world.app.http.get(&back).header("cookie", &alice).send().await.expect("callback");
    let workspace = world.new_workspace(&alice, "Observed").await;
    let (_, pin_page) = world.app.page(&alice, &format!("{workspace}/pin")).await;
    let csrf = hidden(&pin_page, "csrf").expect("csrf");
    world.post(&alice, &format!("{workspace}/pin"), &[("csrf", csrf.as_str()), ("tile", key_of(&offered(&pin_page), "Total Sales"))]).await;
    let (_, page) = world.app.page(&alice, &workspace).await;
    let pin = page.split(r#"data-pin=""#).nth(1).and_then(|r| r.split('"').next()).expect("pin").to_owned();
    let (_, token) = world.app.page(&alice, &format!("/api/v1{workspace}/pins/{pin}/token")).await;
    let token: serde_json::Value = serde_json::from_str(&token).expect("JSON");
    let access_token = token["accessToken"].as_str().expect("token").to_owned();

    let generated = world.app.http.get(world.app.url("/healthz")).send().await.expect("GET");
    let id = generated.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let traced = world
        .app
        .http
        .get(world.app.url("/workspaces"))
        .header("cookie", &alice)
        .header("x-request-id", "trace-4711")
        .send()
        .await
        .expect("GET");
    assert_eq!(traced.headers()["x-request-id"], "trace-4711", "a caller's plain request id is kept");
    let odd = world.app.http.get(world.app.url("/healthz")).header("x-request-id", "has spaces and \"quotes\"").send().await.expect("GET");
    assert_ne!(odd.headers()["x-request-id"], "has spaces and \"quotes\"", "an odd one is replaced");

    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("request_id=trace-4711") && l.contains("status="))
        .unwrap_or_else(|| panic!("no line for trace-4711 in\n{text}"));
    assert!(line.contains("path=/workspaces") && line.contains("status=200") && line.contains("method=GET"), "{line}");
    assert!(text.contains("path=/oauth/callback"), "the callback is logged");
    let session = alice.trim_start_matches("pbi_session=");
    logs.assert_heard_from(&["pbi_server", "pbi_auth", "pbi_powerbi", "pbi_store"]);
    for (what, secret) in
        [("authorization code", code.as_str()), ("access token", access_token.as_str()), ("session", session), ("password", PASSWORD)]
    {
        logs.assert_lacks(what, secret);
    }

    let metrics = world.app.http.get(world.app.url("/metrics")).send().await.expect("GET");
    assert_eq!(metrics.status(), StatusCode::OK);
    assert_eq!(metrics.headers()["content-type"], "application/openmetrics-text; version=1.0.0; charset=utf-8");
    let metrics = metrics.text().await.expect("text");
    let count = |prefix: &str| -> u64 {
        metrics.lines().find(|l| l.starts_with(prefix)).and_then(|l| l.rsplit(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    assert!(count(r#"pbi_bridge_http_requests_total{method="GET",route="/workspaces/{id}",status="200"}"#) >= 1, "{metrics}");
    assert!(count(r#"pbi_bridge_http_requests_total{method="POST",route="/workspaces/{id}/pin",status="303"}"#) == 1, "{metrics}");
    assert!(count(r#"pbi_bridge_powerbi_calls_total{status="200"}"#) >= 3, "groups, dashboards, tiles: {metrics}");
    assert!(metrics.contains(r#"pbi_bridge_token_refreshes_total{outcome="succeeded"}"#), "{metrics}");
    assert!(!metrics.contains(&pin) && !metrics.contains(&workspace), "labels are route templates, never ids");
}

#[tokio::test]
async fn start_up_warns_in_the_log_when_the_application_key_has_expired() {
    let logs = pbi_testlog::capture();
    let app = crate::App::start().await;
    let now = app.clock.unix();
    let registration = app
        .store
        .add_registration(
            &pbi_store::NewRegistration {
                name: "expired-key-check".into(),
                client_id: uuid::Uuid::new_v4().to_string(),
                tenant: "contoso.onmicrosoft.com".into(),
                cloud: "public".into(),
                redirect_urls: vec![app.url("/oauth/callback")],
                scopes: vec!["Dashboard.Read.All".into()],
                authorize_url: None,
                token_url: None,
                api_base: None,
                enabled: true,
            },
            now,
        )
        .await
        .expect("registration");
    let secret = "expired~secret~value~0001";
    app.store.add_secret(registration.id, &secrecy::SecretString::from(secret), now - 86_400, now - 400 * 86_400).await.expect("secret");
    let auth = std::sync::Arc::new(pbi_auth::Auth::new(app.store.clone(), app.clock.clone(), pbi_auth::AuthSettings::default()));
    let again =
        pbi_server::Server::start(pbi_server::ServerConfig::default(), app.store.clone(), auth, app.clock.clone()).await.expect("server");
    let text = logs.text();
    let line = text
        .lines()
        .find(|l| l.contains("registration=expired-key-check"))
        .unwrap_or_else(|| panic!("no warning about the expired key in\n{text}"));
    assert!(
        line.contains("ERROR") && line.contains("the application key has expired") && line.contains("Certificates & secrets"),
        "{line}"
    );
    assert!(!text.contains(secret), "the key itself is never logged");
    again.shutdown().await.expect("stopped");
}

/// One request a scanner could send: a long made-up method, to an unknown path or to a known route.
async fn odd_request(app: &crate::App, known_route: bool) -> StatusCode {
    let method = (0..16).map(|_| uuid::Uuid::new_v4().simple().to_string().to_uppercase()).collect::<String>();
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method is any token");
    let path = if known_route { "/workspaces".to_owned() } else { format!("/{}/{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4()) };
    app.http.request(method, app.url(&path)).send().await.expect("sent").status()
}

/// The series of an exposition (every sample line without its value), so two scrapes can be compared.
fn series(text: &str) -> std::collections::BTreeSet<&str> {
    text.lines().filter(|l| !l.starts_with('#')).map(|l| l.rsplit_once(' ').map_or(l, |(series, _)| series)).collect()
}

#[tokio::test]
async fn metrics_stay_the_same_size_whatever_methods_and_paths_callers_make_up() {
    let app = crate::App::start().await;
    let scrape = || async { app.http.get(app.url("/metrics")).send().await.expect("GET").text().await.expect("text") };
    // One of each kind first, and one scrape so that `/metrics` itself is counted before the baseline.
    assert_eq!(odd_request(&app, false).await, StatusCode::NOT_FOUND);
    assert_eq!(odd_request(&app, true).await, StatusCode::METHOD_NOT_ALLOWED);
    scrape().await;
    let after_two = scrape().await;
    for i in 0..500 {
        odd_request(&app, i % 2 == 0).await;
    }
    let after_many = scrape().await;
    eprintln!("/metrics: {} bytes after 2 odd requests, {} bytes after 502", after_two.len(), after_many.len());

    let (before, after) = (series(&after_two), series(&after_many));
    let new: Vec<_> = after.difference(&before).take(2).collect();
    assert!(new.is_empty(), "made-up methods and paths make no new series: {} series, then {}, such as {new:?}", before.len(), after.len());
    assert!(after_many.len() < after_two.len() + 64, "{} bytes, then {} bytes", after_two.len(), after_many.len());
    let other: u64 = after_many
        .lines()
        .filter(|l| l.starts_with("pbi_bridge_http_requests_total{") && l.contains(r#"method="other""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(other, 502, "every made-up method counts as `other`:\n{after_many}");
    assert!(after_many.contains(r#"route="(unmatched)""#), "unknown paths share one label:\n{after_many}");
}
