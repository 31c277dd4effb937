//! Every remaining body the swagger describes, checked against it; plus the write paths they come from.

use crate::support::*;
use pbi_sandbox::{FaultKind, FaultRule, demo_id};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn single_entities_and_writes_match_the_swagger() {
    let t = TestSandbox::start().await;
    let scope = [API_SCOPES, "https://analysis.windows.net/powerbi/api/Dashboard.ReadWrite.All https://analysis.windows.net/powerbi/api/Content.Create https://analysis.windows.net/powerbi/api/Workspace.ReadWrite.All"].join(" ");
    let tokens = t.user_tokens_for("alice@contoso.onmicrosoft.com", &scope).await;
    let alice = tokens["access_token"].as_str().expect("token").to_owned();
    let ws = demo_id("ws:sales");
    let get = |path: String| {
        let t = &t;
        let alice = alice.clone();
        async move {
            let (status, body) = t.api_get(&alice, &path).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    swagger().check_response("Groups_GetGroup", 200, &get(format!("/groups/{ws}")).await).expect("documented");
    swagger()
        .check_response(
            "Dashboards_GetDashboardInGroup",
            200,
            &get(format!("/groups/{ws}/dashboards/{}", demo_id("dash:sales-overview"))).await,
        )
        .expect("documented");
    swagger()
        .check_response("Reports_GetReportInGroup", 200, &get(format!("/groups/{ws}/reports/{}", demo_id("report:retail-sales"))).await)
        .expect("documented");
    swagger()
        .check_response("Datasets_GetDatasetInGroup", 200, &get(format!("/groups/{ws}/datasets/{}", demo_id("ds:retail-sales"))).await)
        .expect("documented");
    swagger()
        .check_response("Dashboards_GetDashboard", 200, &get(format!("/dashboards/{}", demo_id("dash:alice"))).await)
        .expect("documented");

    let (status, _, created) = t.call(&alice, Method::POST, &format!("/groups/{ws}/dashboards"), Some(json!({"name": "Pinned"}))).await;
    assert_eq!(status, StatusCode::OK);
    swagger().check_response("Dashboards_AddDashboardInGroup", 200, &created).expect("documented");
    let target = created["id"].as_str().expect("id").to_owned();
    let clone_path = format!("/groups/{ws}/dashboards/{}/tiles/{}/Clone", demo_id("dash:sales-overview"), demo_id("tile:sales:total"));
    let (status, _, clone) = t.call(&alice, Method::POST, &clone_path, Some(json!({"targetDashboardId": target}))).await;
    assert_eq!(status, StatusCode::OK, "{clone}");
    swagger().check_response("Dashboards_CloneTileInGroup", 200, &clone).expect("documented");
    let (_, tiles) = t.api_get(&alice, &format!("/groups/{ws}/dashboards/{target}/tiles")).await;
    assert_eq!(names(&tiles, "title"), ["Total Sales"], "the clone landed on the target dashboard");
    assert_ne!(tiles["value"][0]["id"], json!(demo_id("tile:sales:total")), "with a new id");

    let bob = t.user_tokens_for("bob@contoso.onmicrosoft.com", &scope).await["access_token"].as_str().expect("token").to_owned();
    let (status, _, _) = t.call(&bob, Method::POST, &clone_path, Some(json!({"targetDashboardId": target}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a Viewer cannot clone into the workspace");

    let (status, _, group) = t.call(&alice, Method::POST, "/groups", Some(json!({"name": "Alice's Lab"}))).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    swagger().check_response("Groups_CreateGroup", 200, &group).expect("documented");
    let (status, _, _) = t.call(&alice, Method::POST, "/groups", Some(json!({"name": "alice's lab"}))).await;
    assert_eq!(status, StatusCode::CONFLICT, "workspace names are unique in a tenant");

    for (op, path) in [
        ("Dashboards_GenerateTokenInGroup", format!("/groups/{ws}/dashboards/{}/GenerateToken", demo_id("dash:sales-overview"))),
        ("Datasets_GenerateTokenInGroup", format!("/groups/{ws}/datasets/{}/GenerateToken", demo_id("ds:retail-sales"))),
    ] {
        let (status, _, body) = t.call(&alice, Method::POST, &path, Some(json!({"accessLevel": "View"}))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        swagger().check_response(op, 200, &body).expect("documented");
    }

    let dataset = demo_id("ds:retail-sales");
    let (status, _, _) = t.call(&alice, Method::DELETE, &format!("/groups/{ws}/datasets/{dataset}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t.api_get(&alice, &format!("/groups/{ws}/datasets/{dataset}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, reports) = t.api_get(&alice, &format!("/groups/{ws}/reports")).await;
    assert!(names(&reports, "name").is_empty(), "reports on a deleted dataset go with it");
}

#[tokio::test]
async fn scanner_bodies_match_the_swagger() {
    let t = TestSandbox::start().await;
    let app = t.app_token().await;
    let (status, _, started) =
        t.call(&app, Method::POST, "/admin/workspaces/getInfo?lineage=true", Some(json!({"workspaces": [demo_id("ws:sales")]}))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    swagger().check_response("WorkspaceInfo_PostWorkspaceInfo", 202, &started).expect("documented");
    let (_, status_body) = t.api_get(&app, &format!("/admin/workspaces/scanStatus/{}", started["id"].as_str().expect("id"))).await;
    swagger().check_response("WorkspaceInfo_GetScanStatus", 200, &status_body).expect("documented");
    let (_, modified) = t.api_get(&app, "/admin/workspaces/modified").await;
    swagger().check_response("WorkspaceInfo_GetModifiedWorkspaces", 200, &modified).expect("documented");
}

#[tokio::test]
async fn a_delay_fault_answers_normally_once_the_clock_has_moved_past_the_delay() {
    let t = TestSandbox::start().await;
    let alice = t.user_token("alice@contoso.onmicrosoft.com").await;
    t.sandbox.inject(FaultRule::new(Some("GET"), "/v1.0/myorg/groups", 1, FaultKind::Delay { millis: 20 }));
    let held = tokio::spawn(t.http.get(t.url("/v1.0/myorg/groups")).bearer_auth(&alice).send());
    within_a_minute(t.sandbox.wait_for_delayed(1)).await;
    // The sandbox's clock is manual and has not moved, so the request is still held; others are served.
    assert_eq!(t.api_get(&alice, "/dashboards").await.0, StatusCode::OK);
    assert!(!held.is_finished(), "no answer before the clock moves");
    assert_eq!(t.sandbox.in_flight(), 1, "the held request is in flight");
    t.sandbox.clock().advance(time::Duration::milliseconds(20)).expect("a manual clock");
    let response = within_a_minute(held).await.expect("task").expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    let groups: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(names(&groups, "name"), ["Operations", "Sales Analytics"]);
    let logged = t.sandbox.requests().into_iter().rfind(|r| r.path == "/v1.0/myorg/groups").expect("logged");
    assert_eq!(logged.fault.as_deref(), Some("Delay { millis: 20 }"));
    assert_eq!(t.sandbox.in_flight(), 0);
}

#[tokio::test]
async fn import_bodies_match_the_swagger() {
    let t = TestSandbox::start().await;
    let alice = t.user_token("alice@contoso.onmicrosoft.com").await;
    let ws = demo_id("ws:sales");
    let form =
        reqwest::multipart::Form::new().part("file", reqwest::multipart::Part::bytes(b"PK\x03\x04 pbix".to_vec()).file_name("Q.pbix"));
    let response = t
        .http
        .post(t.url(&format!("/v1.0/myorg/groups/{ws}/imports?datasetDisplayName=Q")))
        .bearer_auth(&alice)
        .multipart(form)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let started: serde_json::Value = response.json().await.expect("JSON");
    swagger().check_response("Imports_PostImportInGroup", 202, &started).expect("documented");
    t.sandbox.clock().advance(time::Duration::seconds(10)).expect("manual clock");
    let (status, import) = t.api_get(&alice, &format!("/groups/{ws}/imports/{}", started["id"].as_str().expect("id"))).await;
    assert_eq!(status, StatusCode::OK);
    swagger().check_response("Imports_GetImportInGroup", 200, &import).expect("documented");
    assert_eq!(import["importState"], "Succeeded");
}
