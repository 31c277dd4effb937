//! An item's HTTP endpoint, served by a real server on 127.0.0.1:0: the credential goes in the header the data
//! source names, the pin's values as query parameters, JSON and CSV answers become rows, and a refusal says
//! the status without the credential.

use axum::extract::{Query, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use pbi_subscriptions::http_source::{HttpSource, fetch};
use pbi_subscriptions::item::{ColumnSpec, ItemSpec};
use pbi_subscriptions::sql_source::SourceError;
use secrecy::SecretString;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::time::Duration;

const KEY: &str = "Bearer app-key-7f3a";

async fn orders(headers: HeaderMap, Query(query): Query<HashMap<String, String>>, request: Request) -> axum::response::Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let company = query.get("company").cloned().unwrap_or_default();
    if request.uri().path().ends_with(".csv") {
        ([("content-type", "text/csv")], format!("Customer,Total\n{company},12.5\nFabrikam,\n")).into_response()
    } else {
        axum::Json(json!({"rows": [{"Customer": company, "Total": 12.5}]})).into_response()
    }
}

async fn server() -> (String, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/erp/", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route("/erp/orders", axum::routing::get(orders)).route("/erp/orders.csv", axum::routing::get(orders));
    let running = tokio::spawn(async move { axum::serve(listener, app).await });
    (base, running)
}

#[tokio::test]
async fn json_and_csv_answers_become_rows_and_a_refusal_keeps_the_credential_out() {
    let (base, running) = server().await;
    let item = ItemSpec {
        name: "Open orders".into(),
        kind: "table".into(),
        columns: vec![
            ColumnSpec { name: "Customer".into(), column_type: "text".into() },
            ColumnSpec { name: "Total".into(), column_type: "decimal".into() },
        ],
        ..ItemSpec::default()
    }
    .check()
    .expect("item");
    let key = SecretString::from(KEY.to_owned());
    let source =
        |path| HttpSource { base: &base, path, header: Some("Authorization"), credential: Some(&key), timeout: Duration::from_secs(10) };
    let values: Map<String, Value> = json!({"company": "Contoso"}).as_object().cloned().expect("object");
    let client = reqwest::Client::new();

    let rows = fetch(&client, &source("orders"), &item, &values).await.expect("JSON rows");
    assert_eq!(Value::Object(rows[0].clone()), json!({"Customer": "Contoso", "Total": 12.5}), "the pin's value reached the endpoint");
    let rows = fetch(&client, &source("orders.csv"), &item, &values).await.expect("CSV rows");
    assert_eq!(rows.iter().map(|r| r["Total"].clone()).collect::<Vec<_>>(), [json!(12.5), Value::Null]);

    let wrong = SecretString::from("Bearer wrong-key-9c1d".to_owned());
    let refused = HttpSource { credential: Some(&wrong), ..source("orders") };
    let error = fetch(&client, &refused, &item, &values).await.expect_err("refused");
    assert_eq!(error, SourceError::Query("the endpoint answered 401 Unauthorized".into()));
    assert!(!error.to_string().contains("wrong-key") && !format!("{refused:?}").contains("wrong-key"));
    let outside = fetch(&client, &source("../admin"), &item, &values).await.expect_err("refused");
    assert!(outside.to_string().contains("outside the data source's URL"), "{outside}");
    running.abort();
}
