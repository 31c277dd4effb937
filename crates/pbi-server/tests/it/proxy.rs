//! The proxy (seed 002): an app calls any Power BI endpoint for one of its end users' connections, with its
//! secret key; Power BI's answer comes back as it is; the path never leaves the API root; pbi-bridge's own
//! refusals are marked; a token Power BI refuses is replaced and the call made once more.

use crate::connect::World;
use crate::connect_sessions::{ALICE, app_of, connect_as, create_session, open_link};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

/// A world with an app whose end user u-1 connected Alice's Power BI account: the app's key and the connection.
async fn connected() -> (World, String, String) {
    let world = crate::connect::world_with_scopes(&["Dashboard.Read.All", "Workspace.Read.All", "Dataset.ReadWrite.All"]).await;
    let (_, key) = app_of(&world, "ERP", &[]).await;
    let made: Value = create_session(&world, &key, json!({"endUser": {"id": "u-1"}})).await.json().await.expect("JSON");
    let (cookie, page) = open_link(&world, made["url"].as_str().expect("url")).await;
    connect_as(&world, &cookie, &page, ALICE, "accept").await;
    let connection = world.app.store.all_connections().await.expect("list").remove(0).id.to_string();
    (world, key, connection)
}

fn proxied(world: &World, path: &str) -> String {
    world.app.url(&format!("/api/v1/proxy/powerbi/{path}"))
}

#[tokio::test]
async fn an_app_calls_power_bi_for_its_end_user_and_gets_power_bis_answer_unchanged() {
    let (world, key, connection) = connected().await;
    let through = world.app.http.get(proxied(&world, "myorg/groups")).bearer_auth(&key).header("connection-id", &connection).send().await;
    let through = through.expect("GET");
    assert_eq!(through.status(), StatusCode::OK);
    assert!(through.headers().contains_key("x-request-id") && through.headers().contains_key("requestid"), "{:?}", through.headers());
    assert!(!through.headers().contains_key("pbi-bridge-error"));
    let through: Value = through.json().await.expect("JSON");
    let id = connection.parse().expect("uuid");
    let token = world.app.auth().access_token(id, None).await.expect("token");
    let direct = world.app.http.get(format!("{}/v1.0/myorg/groups", world.sandbox.base_url())).bearer_auth(token.expose_secret()).send();
    let direct: Value = direct.await.expect("GET").json().await.expect("JSON");
    assert_eq!(through, direct, "the same body as Power BI's");
    assert!(through["value"].as_array().is_some_and(|groups| !groups.is_empty()), "{through}");

    // As a client library writes it: the connection in the URL, the API's own version prefix.
    let library = world.app.http.get(proxied(&world, &format!("c/{connection}/v1.0/myorg/groups"))).bearer_auth(&key).send().await;
    assert_eq!(library.expect("GET").json::<Value>().await.expect("JSON"), direct);

    // A body goes through, and Power BI's status with it.
    let dataset =
        json!({"name": "Orders", "defaultMode": "Push", "tables": [{"name": "Orders", "columns": [{"name": "Id", "dataType": "Int64"}]}]});
    let made =
        world.app.http.post(proxied(&world, "myorg/datasets")).bearer_auth(&key).header("connection-id", &connection).json(&dataset).send();
    let made = made.await.expect("POST");
    assert_eq!(made.status(), StatusCode::CREATED);
    assert_eq!(made.json::<Value>().await.expect("JSON")["name"], "Orders");
    let bad =
        world.app.http.post(proxied(&world, "myorg/datasets")).bearer_auth(&key).header("connection-id", &connection).json(&json!({}));
    let bad = bad.send().await.expect("POST");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "Power BI's refusal");
    assert!(!bad.headers().contains_key("pbi-bridge-error"), "is Power BI's, not pbi-bridge's");
}

#[tokio::test]
async fn pbi_bridges_own_refusals_are_marked_and_no_path_leaves_the_api() {
    let (world, key, connection) = connected().await;
    let (_, other_key) = app_of(&world, "CRM", &[]).await;
    let call = |key: Option<&str>, connection: Option<&str>, path: &str| {
        let mut request = world.app.http.get(proxied(&world, path));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(connection) = connection {
            request = request.header("connection-id", connection);
        }
        async move {
            let answer = request.send().await.expect("GET");
            let own = answer.headers().contains_key("pbi-bridge-error");
            (
                answer.status(),
                own,
                answer.json::<Value>().await.unwrap_or_default()["error"]["code"].as_str().unwrap_or_default().to_owned(),
            )
        }
    };
    let own = |status: StatusCode, code: &str| (status, true, code.to_owned());
    assert_eq!(call(None, Some(&connection), "myorg/groups").await.0, StatusCode::UNAUTHORIZED);
    assert!(call(None, Some(&connection), "myorg/groups").await.1, "marked as pbi-bridge's");
    assert_eq!(call(Some(&key), None, "myorg/groups").await, own(StatusCode::BAD_REQUEST, "no_connection"));
    assert_eq!(call(Some(&other_key), Some(&connection), "myorg/groups").await, own(StatusCode::NOT_FOUND, "unknown_connection"));
    assert_eq!(
        call(Some(&key), Some(&uuid::Uuid::new_v4().to_string()), "myorg/groups").await,
        own(StatusCode::NOT_FOUND, "unknown_connection")
    );
    assert_eq!(call(Some(&key), Some(&connection), "myorg/admin/groups").await, own(StatusCode::FORBIDDEN, "admin_api_refused"));
    for escape in ["https:%2F%2Fevil.example.com%2Fx", "myorg%5C..%5C_sandbox", "a@evil.example.com/x"] {
        assert_eq!(call(Some(&key), Some(&connection), escape).await, own(StatusCode::BAD_REQUEST, "path_refused"), "{escape}");
    }
    // Dot segments, encoded so that no client resolves them first, stay under the API root.
    world.sandbox.clear_requests();
    let climbed = call(Some(&key), Some(&connection), "%2E%2E/%2E%2E/%2E%2E/_sandbox/seed").await;
    assert!(!climbed.1, "sent to Power BI, which does not know the path: {climbed:?}");
    let paths: Vec<String> = world.sandbox.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths.iter().all(|p| p.starts_with("/v1.0/myorg/")), "{paths:?}");
    assert!(!world.sandbox.requests().iter().any(|r| r.caller.as_deref().is_some_and(|c| c.contains("pbs_"))));
}

#[tokio::test]
async fn a_token_power_bi_refuses_is_replaced_and_the_call_made_once_more() {
    let (world, key, connection) = connected().await;
    let id: uuid::Uuid = connection.parse().expect("uuid");
    // A restarted pbi-bridge: nothing in memory, a token Power BI refuses in the store.
    let restarted = world.restarted_with_a_refused_token(id).await;
    world.sandbox.clear_requests();
    let body =
        json!({"name": "Orders", "defaultMode": "Push", "tables": [{"name": "Orders", "columns": [{"name": "Id", "dataType": "Int64"}]}]});
    let url = format!("{}/api/v1/proxy/powerbi/myorg/datasets", restarted.base_url());
    let made = world.app.http.post(&url).bearer_auth(&key).header("connection-id", &connection).json(&body).send().await.expect("POST");
    assert_eq!(made.status(), StatusCode::CREATED, "{:?}", made.text().await);
    let log: Vec<(String, u16)> = world.sandbox.requests().iter().map(|r| (r.path.clone(), r.status)).collect();
    assert_eq!(log.iter().filter(|(_, s)| *s == 403).count(), 1, "refused once: {log:?}");
    assert_eq!(log.iter().filter(|(p, _)| p.ends_with("/oauth2/v2.0/token")).count(), 1, "refreshed once: {log:?}");
    restarted.shutdown().await.expect("stopped");
}
