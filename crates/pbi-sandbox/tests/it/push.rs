//! Push datasets: create, tables, rows, validation, retention and the documented rate limits.

use crate::support::*;
use pbi_sandbox::{SandboxConfig, demo_id};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ALICE: &str = "alice@contoso.onmicrosoft.com";

fn definition() -> Value {
    json!({"name": "Telemetry", "defaultMode": "Push", "tables": [{"name": "Events", "columns": [
        {"name": "At", "dataType": "DateTime"}, {"name": "Device", "dataType": "string"},
        {"name": "Reading", "dataType": "Double"}, {"name": "Count", "dataType": "Int64"}, {"name": "Ok", "dataType": "bool"}]}]})
}

fn rows(n: usize, offset: usize) -> Value {
    let rows: Vec<Value> = (0..n).map(|i| json!({"At": "2026-01-01T00:00:00Z", "Device": format!("d{}", i + offset), "Reading": 1.5, "Count": i + offset, "Ok": true})).collect();
    json!({"rows": rows})
}

async fn row_count(t: &TestSandbox, dataset: &str, table: &str) -> u64 {
    t.stored_rows(dataset, table, 0).await["count"].as_u64().expect("count")
}

async fn create(t: &TestSandbox, token: &str, query: &str) -> String {
    let ws = demo_id("ws:sales");
    let (status, _, body) = t.call(token, Method::POST, &format!("/groups/{ws}/datasets{query}"), Some(definition())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    swagger().check_response("Datasets_PostDatasetInGroup", 201, &body).expect("documented");
    body["id"].as_str().expect("id").to_owned()
}

#[tokio::test]
async fn create_a_push_dataset_list_its_tables_and_push_rows() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let ws = demo_id("ws:sales");
    let id = create(&t, &alice, "?defaultRetentionPolicy=basicFIFO").await;
    let (status, tables) = t.api_get(&alice, &format!("/groups/{ws}/datasets/{id}/tables")).await;
    assert_eq!(status, StatusCode::OK);
    swagger().check_response("Datasets_GetTablesInGroup", 200, &tables).expect("documented");
    assert_eq!(tables["value"][0]["columns"][1]["dataType"], "String", "type names come back canonical");

    let (status, _, body) = t.call(&alice, Method::POST, &format!("/groups/{ws}/datasets/{id}/tables/Events/rows"), Some(rows(3, 0))).await;
    assert_eq!((status, body), (StatusCode::OK, Value::Null), "200 with an empty body");
    assert_eq!(row_count(&t, &id, "Events").await, 3);

    let bad = json!({"rows": [{"Device": "ok"}, {"Device": "ok"}, {"Reading": "NaN"}]});
    let (status, _, body) = t.call(&alice, Method::POST, &format!("/groups/{ws}/datasets/{id}/tables/Events/rows"), Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("row 2") && message.contains("'Reading'"), "{message}");
    assert_eq!(row_count(&t, &id, "Events").await, 3, "a refused batch stores nothing");

    let (status, _, _) = t.call(&alice, Method::DELETE, &format!("/groups/{ws}/datasets/{id}/tables/Events/rows"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(row_count(&t, &id, "Events").await, 0);

    let table = json!({"name": "Events", "columns": [{"name": "Device", "dataType": "String"}, {"name": "Site", "dataType": "String"}]});
    let (status, _, _) = t.call(&alice, Method::PUT, &format!("/groups/{ws}/datasets/{id}/tables/Events"), Some(table)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = t
        .call(&alice, Method::POST, &format!("/groups/{ws}/datasets/{id}/tables/Events/rows"), Some(json!({"rows": [{"Reading": 1.0}]})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the replaced schema no longer has Reading: {body}");
}

#[tokio::test]
async fn viewers_cannot_push_and_non_push_datasets_refuse_rows() {
    let t = TestSandbox::start().await;
    let bob = t.user_token("bob@contoso.onmicrosoft.com").await;
    let ws = demo_id("ws:sales");
    let (status, _, body) = t
        .call(
            &bob,
            Method::POST,
            &format!("/groups/{ws}/datasets/{}/tables/Sales/rows", demo_id("ds:retail-sales")),
            Some(json!({"rows": []})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let admin = t.user_token("admin@contoso.onmicrosoft.com").await;
    let (status, _, body) = t
        .call(
            &admin,
            Method::POST,
            &format!("/groups/{}/datasets/{}/tables/Stock/rows", demo_id("ws:operations"), demo_id("ds:inventory")),
            Some(json!({"rows": []})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "ItemNotFound");
    assert!(body["error"]["message"].as_str().expect("message").contains("is not Push API dataset"));
}

#[tokio::test]
async fn more_than_10000_rows_in_one_post_is_refused() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let id = create(&t, &alice, "").await;
    let (status, _, body) = t
        .call(&alice, Method::POST, &format!("/groups/{}/datasets/{id}/tables/Events/rows", demo_id("ws:sales")), Some(rows(10_001, 0)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(row_count(&t, &id, "Events").await, 0);
}

#[tokio::test]
async fn the_121st_post_in_a_minute_is_throttled_until_the_window_moves() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let id = create(&t, &alice, "").await;
    let path = format!("/groups/{}/datasets/{id}/tables/Events/rows", demo_id("ws:sales"));
    for _ in 0..120 {
        let (status, _, _) = t.call(&alice, Method::POST, &path, Some(rows(1, 0))).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, body) = t.call(&alice, Method::POST, &path, Some(rows(1, 0))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers["retry-after"], "60");
    t.sandbox.clock().advance(time::Duration::seconds(60)).expect("manual clock");
    let (status, _, _) = t.call(&alice, Method::POST, &path, Some(rows(1, 0))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(row_count(&t, &id, "Events").await, 121);
}

#[tokio::test]
async fn basic_fifo_keeps_the_newest_200000_rows() {
    let t = TestSandbox::with(SandboxConfig { push_limits: false, ..Default::default() }).await;
    let alice = t.user_token(ALICE).await;
    let id = create(&t, &alice, "?defaultRetentionPolicy=basicFIFO").await;
    let path = format!("/groups/{}/datasets/{id}/tables/Events/rows", demo_id("ws:sales"));
    for batch in 0..21 {
        let (status, _, _) = t.call(&alice, Method::POST, &path, Some(rows(10_000, batch * 10_000))).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(row_count(&t, &id, "Events").await, 200_000);
    let body = t.stored_rows(&id, "Events", 1).await;
    assert_eq!(body["rows"][0]["Count"], 10_000, "the oldest 10,000 were dropped");
}

#[tokio::test]
async fn dataset_definitions_are_validated() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let bad = json!({"name": "X", "tables": [{"name": "T", "columns": [{"name": "a", "dataType": "Text"}]}]});
    let (status, _, body) = t.call(&alice, Method::POST, "/datasets", Some(bad)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().expect("message").contains("tables[0].columns[0].dataType"));
    let (status, _, _) = t.call(&alice, Method::POST, "/datasets?defaultRetentionPolicy=forever", Some(definition())).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
