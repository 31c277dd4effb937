//! Pushing rows through the client: none lost, none doubled under faults; schema errors before sending.

use crate::support::*;
use pbi_powerbi::models::{Column, DataType, DatasetDefinition, TableSchema};
use pbi_powerbi::{ErrorKind, Row, Workspace};
use pbi_sandbox::{FaultKind, FaultRule, demo_id};
use serde_json::json;

fn events() -> TableSchema {
    let column = |name: &str, data_type| Column { name: name.into(), data_type, extra: Default::default() };
    TableSchema {
        name: "Events".into(),
        columns: vec![column("Seq", DataType::Int64), column("Device", DataType::String), column("Reading", DataType::Double)],
        measures: vec![],
        extra: Default::default(),
    }
}

fn row(seq: u64) -> Row {
    json!({"Seq": seq, "Device": format!("d{}", seq % 17), "Reading": seq as f64 / 4.0}).as_object().cloned().expect("object")
}

async fn stored(env: &Env, dataset: &str) -> serde_json::Value {
    let url = format!("{}/_sandbox/datasets/{dataset}/tables/Events/rows?top=0", env.sandbox.base_url());
    reqwest::get(url).await.expect("GET").json().await.expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushing_250000_rows_under_throttling_and_outages_loses_and_doubles_nothing() {
    let env = Env::start().await;
    let client = env.app_client(fixed_retry(10));
    let sales = Workspace::Group(demo_id("ws:sales"));
    let definition = DatasetDefinition { name: "Telemetry".into(), default_mode: None, tables: vec![events()], relationships: vec![] };
    let dataset = client.create_dataset(sales, &definition, false).await.expect("dataset").id;
    let rows_path = format!("/v1.0/myorg/groups/{}/datasets/{dataset}/tables/Events/rows", demo_id("ws:sales"));
    env.sandbox.inject(FaultRule::new(Some("POST"), &rows_path, 3, FaultKind::Throttle { retry_after: 20 }));
    env.sandbox.inject(FaultRule::new(Some("POST"), &rows_path, 3, FaultKind::Status { status: 503, retry_after: None }));
    env.sandbox.inject(FaultRule::new(Some("POST"), &rows_path, 2, FaultKind::Drop));

    let mut reported = Vec::new();
    let rows = futures_util::stream::iter((0..250_000u64).map(|i| Ok(row(i))));
    let summary = client.push_rows(sales, &dataset, &events(), rows, |sent| reported.push(sent)).await.expect("every batch lands");
    assert_eq!((summary.rows, summary.requests), (250_000, 25));
    assert_eq!(reported.last(), Some(&250_000));
    assert_eq!(stored(&env, &dataset).await["count"], 250_000, "exactly 250,000 rows: none lost, none doubled");
    let posts = env.calls_to(&format!("{dataset}/tables/Events/rows"));
    let answered: Vec<(u16, Option<String>)> = posts.iter().map(|r| (r.status, r.fault.clone())).collect();
    assert_eq!(answered.iter().filter(|(status, fault)| *status == 200 && fault.is_none()).count(), 25, "{answered:?}");
    assert_eq!(posts.len(), 25 + 3 + 3 + 2, "each fault cost exactly one extra request: {answered:?}");
}

#[tokio::test]
async fn a_row_that_does_not_fit_stops_the_push_before_its_batch_is_sent() {
    let env = Env::start().await;
    let client = env.app_client(fixed_retry(0));
    let sales = Workspace::Group(demo_id("ws:sales"));
    let definition = DatasetDefinition { name: "Telemetry".into(), default_mode: None, tables: vec![events()], relationships: vec![] };
    let dataset = client.create_dataset(sales, &definition, false).await.expect("dataset").id;
    let rows = (0..12_000u64)
        .map(|i| if i == 10_500 { Ok(json!({"Seq": "ten thousand"}).as_object().cloned().expect("object")) } else { Ok(row(i)) });
    let error = client.push_rows(sales, &dataset, &events(), futures_util::stream::iter(rows), |_| {}).await.expect_err("row 10500 is bad");
    let ErrorKind::Schema { row, column, problem } = &error.kind else { panic!("{error}") };
    assert_eq!((*row, column.as_str()), (10_500, "Seq"));
    assert!(problem.contains("10000 rows were already sent"), "{problem}");
    assert_eq!(stored(&env, &dataset).await["count"], 10_000, "the first full batch landed; the bad one was never sent");
}
