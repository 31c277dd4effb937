//! The scanner, embed tokens and imports through the client.

use crate::support::*;
use pbi_powerbi::{ErrorKind, NameConflict, RetryPolicy, ScanOptions, Workspace};
use pbi_sandbox::demo_id;
use std::time::Duration;

#[tokio::test]
async fn a_scan_is_started_polled_and_read() {
    let env = Env::start().await;
    let client = env.app_client(RetryPolicy::none());
    let modified = client.modified_workspaces(None, true).await.expect("modified");
    assert!(modified.contains(&demo_id("ws:operations")));
    let started = client.start_scan(&[demo_id("ws:operations")], ScanOptions::everything()).await.expect("started");
    assert_eq!(started.status, "NotStarted");
    let result = client.wait_for_scan(started.id, Duration::from_secs(30), Duration::from_secs(600)).await.expect("succeeded");
    assert_eq!(result["workspaces"][0]["datasets"][0]["name"], "Inventory");
    assert_eq!(*env.sleep.waits.lock().expect("lock"), [Duration::from_secs(30)], "polled once, 30 s apart (sandbox time)");
    assert!(client.start_scan(&[], ScanOptions::default()).await.is_err(), "1 to 100 workspaces");
    let groups = client.admin_groups(10, 0, None, &["users"]).await.expect("admin groups");
    assert!(groups.iter().any(|g| g["name"] == "Finance"));
}

#[tokio::test]
async fn embed_tokens_for_each_kind() {
    let env = Env::start().await;
    let client = env.app_client(RetryPolicy::none());
    let ws = demo_id("ws:sales");
    let view = serde_json::json!({"accessLevel": "View"});
    for (kind, id) in [
        ("reports", demo_id("report:retail-sales")),
        ("dashboards", demo_id("dash:sales-overview")),
        ("datasets", demo_id("ds:retail-sales")),
    ] {
        let token = client.embed_token(ws, kind, &id.to_string(), &view).await.unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert!(token.token.starts_with("H4sI"), "{kind}");
    }
    let v2 = client.embed_token_v2(&serde_json::json!({"reports": [{"id": demo_id("report:retail-sales")}]})).await.expect("v2");
    assert!(!v2.expiration.is_empty());
    assert!(client.embed_token(ws, "tiles", "x", &view).await.is_err());
}

#[tokio::test]
async fn a_pbix_is_imported_and_becomes_a_report_and_dataset() {
    let env = Env::start().await;
    let client = env.app_client(RetryPolicy::none());
    let ws = Workspace::Group(demo_id("ws:sales"));
    let pbix = bytes::Bytes::from_static(b"PK\x03\x04 a .pbix is a zip package");
    let import = client.import_pbix(ws, "Quarterly", NameConflict::Abort, "Quarterly.pbix", pbix.clone()).await.expect("accepted");
    assert_eq!(client.import(ws, import.id).await.expect("state").import_state.as_deref(), Some("Publishing"));
    env.sandbox.clock().advance(time::Duration::seconds(6)).expect("manual clock");
    let done = client.import(ws, import.id).await.expect("state");
    assert_eq!(done.import_state.as_deref(), Some("Succeeded"));
    assert_eq!(done.reports[0]["name"], "Quarterly");
    assert!(client.reports(ws).await.expect("reports").iter().any(|r| r.name == "Quarterly"));

    let again = client.import_pbix(ws, "Quarterly", NameConflict::Abort, "Quarterly.pbix", pbix.clone()).await.expect_err("exists");
    assert!(matches!(again.kind, ErrorKind::BadRequest { status: 409, .. }), "{again}");
    let unique = client.import_pbix(ws, "Quarterly", NameConflict::GenerateUniqueName, "Quarterly.pbix", pbix).await.expect("renamed");
    env.sandbox.clock().advance(time::Duration::seconds(6)).expect("manual clock");
    assert_eq!(client.import(ws, unique.id).await.expect("state").name.as_deref(), Some("Quarterly (2)"));
    let not_pbix =
        client.import_pbix(ws, "X", NameConflict::Ignore, "notes.txt", bytes::Bytes::from_static(b"hello")).await.expect_err("not a zip");
    assert!(not_pbix.to_string().contains("not a .pbix"), "{not_pbix}");
}
