//! Pinning by cloning, as seed 001 needs it: a template report cloned onto another dataset, a template tile
//! cloned onto another dashboard and rebound to that report and dataset, what the swagger says happens
//! without rebinding, who may do it, and deleting reports and dashboards.

use crate::support::*;
use pbi_sandbox::demo_id;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ALICE: &str = "alice@contoso.onmicrosoft.com";
const BOB: &str = "bob@contoso.onmicrosoft.com";
const NIL: &str = "00000000-0000-0000-0000-000000000000";

fn scope() -> String {
    let api = "https://analysis.windows.net/powerbi/api";
    format!("{API_SCOPES} {api}/Dashboard.ReadWrite.All {api}/Content.Create {api}/Workspace.ReadWrite.All {api}/Report.ReadWrite.All")
}

pub(crate) async fn token(t: &TestSandbox, upn: &str) -> String {
    t.user_tokens_for(upn, &scope()).await["access_token"].as_str().expect("token").to_owned()
}

pub(crate) async fn ok(t: &TestSandbox, token: &str, method: Method, path: &str, body: Value) -> Value {
    let (status, _, answer) = t.call(token, method, path, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {answer}");
    answer
}

pub(crate) fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

async fn embed_data(t: &TestSandbox, token: &str, dashboard: &str, tile: &str) -> (StatusCode, Value) {
    let response = t
        .http
        .post(t.url("/sandbox-embed/data"))
        .bearer_auth(token)
        .json(&json!({"dashboardId": dashboard, "tileId": tile}))
        .send()
        .await
        .expect("POST");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A workspace of Alice's with a push dataset shaped like the demo's Sales table, and two rows in it.
pub(crate) async fn alices_pin_target(t: &TestSandbox, alice: &str) -> (String, String) {
    let (status, _, group) = t.call(alice, Method::POST, "/groups", Some(json!({"name": "Pins"}))).await;
    assert_eq!(status, StatusCode::OK, "{group}");
    let ws = id(&group);
    let columns = json!([{"name": "Amount", "dataType": "Double"}, {"name": "Region", "dataType": "String"}, {"name": "Date", "dataType": "DateTime"}]);
    let (status, _, dataset) = t
        .call(
            alice,
            Method::POST,
            &format!("/groups/{ws}/datasets"),
            Some(json!({"name": "Pinned sales", "defaultMode": "Push", "tables": [{"name": "Sales", "columns": columns}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dataset}");
    let ds = id(&dataset);
    let rows = json!({"rows": [{"Amount": 5.0, "Region": "East", "Date": "2026-12-01T00:00:00Z"}, {"Amount": 7.0, "Region": "West", "Date": "2026-12-02T00:00:00Z"}]});
    ok(t, alice, Method::POST, &format!("/groups/{ws}/datasets/{ds}/tables/Sales/rows"), rows).await;
    (ws, ds)
}

#[tokio::test]
async fn a_tile_cloned_and_rebound_draws_the_rows_of_its_new_dataset() {
    let t = TestSandbox::start().await;
    let alice = token(&t, ALICE).await;
    let (ws, ds) = alices_pin_target(&t, &alice).await;
    let template_ws = demo_id("ws:sales");

    let report_path = format!("/groups/{template_ws}/reports/{}/Clone", demo_id("report:retail-sales"));
    let report =
        ok(&t, &alice, Method::POST, &report_path, json!({"name": "Pinned sales", "targetWorkspaceId": ws, "targetModelId": ds})).await;
    swagger().check_response("Reports_CloneReportInGroup", 200, &report).expect("documented");
    assert_eq!((report["name"].as_str(), report["datasetId"].as_str()), (Some("Pinned sales"), Some(ds.as_str())), "{report}");
    let (_, reports) = t.api_get(&alice, &format!("/groups/{ws}/reports")).await;
    assert_eq!(names(&reports, "name"), ["Pinned sales"], "the clone is in the target workspace");

    let dashboard = id(&ok(&t, &alice, Method::POST, &format!("/groups/{ws}/dashboards"), json!({"name": "IT Spend"})).await);
    let tile_path =
        format!("/groups/{template_ws}/dashboards/{}/tiles/{}/Clone", demo_id("dash:sales-overview"), demo_id("tile:sales:total"));
    let rebind = json!({"targetDashboardId": dashboard, "targetWorkspaceId": ws, "targetReportId": id(&report), "targetModelId": ds});
    let tile = ok(&t, &alice, Method::POST, &tile_path, rebind).await;
    swagger().check_response("Dashboards_CloneTileInGroup", 200, &tile).expect("documented");
    assert_eq!((tile["reportId"].as_str(), tile["datasetId"].as_str()), (Some(id(&report).as_str()), Some(ds.as_str())), "{tile}");
    assert!(tile["embedUrl"].as_str().is_some_and(|u| u.contains(&format!("groupId={ws}"))), "the clone is the target group's: {tile}");

    let (status, data) = embed_data(&t, &alice, &dashboard, &id(&tile)).await;
    assert_eq!((status, data["visuals"][0]["value"].as_f64()), (StatusCode::OK, Some(12.0)), "the card sums the new dataset: {data}");
    let more = json!({"rows": [{"Amount": 30.0, "Region": "East", "Date": "2026-12-02T00:00:00Z"}]});
    ok(&t, &alice, Method::POST, &format!("/groups/{ws}/datasets/{ds}/tables/Sales/rows"), more).await;
    let (_, data) = embed_data(&t, &alice, &dashboard, &id(&tile)).await;
    assert_eq!(data["visuals"][0]["value"].as_f64(), Some(42.0), "and follows what is pushed to it");
}

#[tokio::test]
async fn without_rebinding_a_tile_keeps_its_links_within_a_workspace_and_loses_them_across() {
    let t = TestSandbox::start().await;
    let alice = token(&t, ALICE).await;
    let (ws, _) = alices_pin_target(&t, &alice).await;
    let template_ws = demo_id("ws:sales");
    let tile_path =
        format!("/groups/{template_ws}/dashboards/{}/tiles/{}/Clone", demo_id("dash:sales-overview"), demo_id("tile:sales:total"));

    let same = id(&ok(&t, &alice, Method::POST, &format!("/groups/{template_ws}/dashboards"), json!({"name": "Copy"})).await);
    let kept = ok(&t, &alice, Method::POST, &tile_path, json!({"targetDashboardId": same})).await;
    assert_eq!(kept["datasetId"].as_str(), Some(demo_id("ds:retail-sales").to_string().as_str()), "same workspace: links kept");

    let other = id(&ok(&t, &alice, Method::POST, &format!("/groups/{ws}/dashboards"), json!({"name": "Elsewhere"})).await);
    let broken = ok(&t, &alice, Method::POST, &tile_path, json!({"targetDashboardId": other, "targetWorkspaceId": ws})).await;
    assert!(broken.get("reportId").is_none() && broken.get("datasetId").is_none(), "another workspace: links removed: {broken}");
    let (_, data) = embed_data(&t, &alice, &other, &id(&broken)).await;
    assert!(data.to_string().contains("not available"), "the tile is broken: {data}");

    // The empty GUID is the caller's My workspace.
    let mine = id(&ok(&t, &alice, Method::POST, "/dashboards", json!({"name": "My pins"})).await);
    let rebind = json!({"targetDashboardId": mine, "targetWorkspaceId": NIL, "targetReportId": demo_id("report:retail-sales"), "targetModelId": demo_id("ds:retail-sales")});
    let personal = ok(&t, &alice, Method::POST, &tile_path, rebind).await;
    assert!(personal["embedUrl"].as_str().is_some_and(|u| !u.contains("groupId")), "a My workspace tile: {personal}");
    let (_, tiles) = t.api_get(&alice, &format!("/dashboards/{mine}/tiles")).await;
    assert_eq!(names(&tiles, "title"), ["Total Sales"]);
}

#[tokio::test]
async fn cloning_needs_write_on_the_report_build_on_the_dataset_and_well_formed_ids() {
    let t = TestSandbox::start().await;
    let (alice, bob) = (token(&t, ALICE).await, token(&t, BOB).await);
    let template_ws = demo_id("ws:sales");
    let report_path = format!("/groups/{template_ws}/reports/{}/Clone", demo_id("report:retail-sales"));

    let (status, _, body) = t.call(&bob, Method::POST, &report_path, Some(json!({"name": "Mine"}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("PowerBINotAuthorizedException")),
        "a Viewer: {body}"
    );
    // A dataset in Bob's My workspace is not Alice's to build on.
    let (status, _, bobs) = t
        .call(
            &bob,
            Method::POST,
            "/datasets",
            Some(
                json!({"name": "Bob's", "defaultMode": "Push", "tables": [{"name": "T", "columns": [{"name": "V", "dataType": "Int64"}]}]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bobs}");
    let (status, _, _) = t.call(&alice, Method::POST, &report_path, Some(json!({"name": "Mine", "targetModelId": id(&bobs)}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for (body, field) in [
        (json!({"name": " "}), "name"),
        (json!({"name": "x", "targetModelId": "nope"}), "targetModelId"),
        (json!({"name": "x", "targetWorkspaceId": "nope"}), "targetWorkspaceId"),
    ] {
        let (status, _, answer) = t.call(&alice, Method::POST, &report_path, Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer.to_string().contains(field), "names {field}: {answer}");
    }

    let tile_path =
        format!("/groups/{template_ws}/dashboards/{}/tiles/{}/Clone", demo_id("dash:sales-overview"), demo_id("tile:sales:total"));
    let target = id(&ok(&t, &alice, Method::POST, &format!("/groups/{template_ws}/dashboards"), json!({"name": "Copy"})).await);
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, _, _) =
        t.call(&alice, Method::POST, &tile_path, Some(json!({"targetDashboardId": target, "targetReportId": unknown}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "rebinding to a report that does not exist");
    let (status, _, _) =
        t.call(&alice, Method::POST, &tile_path, Some(json!({"targetDashboardId": target, "targetModelId": id(&bobs)}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "rebinding to a dataset the caller cannot see");
}

#[tokio::test]
async fn deleting_a_report_unlinks_its_tiles_and_deleting_a_dashboard_removes_it() {
    let t = TestSandbox::start().await;
    let (alice, bob) = (token(&t, ALICE).await, token(&t, BOB).await);
    let (ws, ds) = alices_pin_target(&t, &alice).await;
    let template_ws = demo_id("ws:sales");
    let report = id(&ok(
        &t,
        &alice,
        Method::POST,
        &format!("/groups/{template_ws}/reports/{}/Clone", demo_id("report:retail-sales")),
        json!({"name": "Doomed", "targetWorkspaceId": ws, "targetModelId": ds}),
    )
    .await);
    let dashboard = id(&ok(&t, &alice, Method::POST, &format!("/groups/{ws}/dashboards"), json!({"name": "Doomed"})).await);
    let tile_path =
        format!("/groups/{template_ws}/dashboards/{}/tiles/{}/Clone", demo_id("dash:sales-overview"), demo_id("tile:sales:total"));
    let tile = id(&ok(
        &t,
        &alice,
        Method::POST,
        &tile_path,
        json!({"targetDashboardId": dashboard, "targetWorkspaceId": ws, "targetReportId": report, "targetModelId": ds}),
    )
    .await);

    let (status, _, _) = t.call(&bob, Method::DELETE, &format!("/groups/{ws}/reports/{report}"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "Bob is not in Alice's workspace");
    let (status, _, _) = t.call(&alice, Method::DELETE, &format!("/groups/{ws}/reports/{report}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t.api_get(&alice, &format!("/groups/{ws}/reports/{report}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, left) = t.api_get(&alice, &format!("/groups/{ws}/dashboards/{dashboard}/tiles/{tile}")).await;
    assert!(left.get("reportId").is_none() && left["datasetId"].as_str() == Some(ds.as_str()), "the tile stays, unlinked: {left}");

    let (status, _, _) =
        t.call(&bob, Method::DELETE, &format!("/groups/{template_ws}/dashboards/{}", demo_id("dash:sales-overview")), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a Viewer cannot delete a dashboard");
    let (status, _, _) = t.call(&alice, Method::DELETE, &format!("/groups/{ws}/dashboards/{dashboard}"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = t.api_get(&alice, &format!("/groups/{ws}/dashboards/{dashboard}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_person_pins_a_visual_from_a_report_they_can_open_to_a_dashboard_they_can_edit() {
    let t = TestSandbox::start().await;
    let alice = token(&t, ALICE).await;
    let (ws, ds) = alices_pin_target(&t, &alice).await;
    let report = id(&ok(
        &t,
        &alice,
        Method::POST,
        &format!("/groups/{}/reports/{}/Clone", demo_id("ws:sales"), demo_id("report:retail-sales")),
        json!({"name": "Template: values by category", "targetWorkspaceId": ws, "targetModelId": ds}),
    )
    .await);
    let dashboard = id(&ok(&t, &alice, Method::POST, &format!("/groups/{ws}/dashboards"), json!({"name": "Templates"})).await);
    let visual = json!({"kind": "bar", "table": "Sales", "value": "Amount", "category": "Region"});
    let pin = |user: &str, visual: Value| json!({"op": "pinVisual", "user": user, "report": report, "dashboard": dashboard, "title": "By region", "visual": visual});

    let refused = t.http.post(t.url("/_sandbox/commands")).json(&pin(BOB, visual.clone())).send().await.expect("POST");
    assert!(refused.status().is_client_error(), "Bob is not in Alice's workspace");
    let wrong = t
        .http
        .post(t.url("/_sandbox/commands"))
        .json(&pin(ALICE, json!({"kind": "bar", "table": "Sales", "value": "Nope"})))
        .send()
        .await
        .expect("POST");
    let message = wrong.text().await.expect("body");
    assert!(message.contains("no column 'Nope'"), "a visual on a column the dataset lacks: {message}");

    let pinned = t.control(pin(ALICE, visual)).await;
    let (_, tile) = t.api_get(&alice, &format!("/groups/{ws}/dashboards/{dashboard}/tiles/{}", id(&pinned))).await;
    assert_eq!((tile["reportId"].as_str(), tile["datasetId"].as_str()), (Some(report.as_str()), Some(ds.as_str())), "{tile}");
    let (_, data) = embed_data(&t, &alice, &dashboard, &id(&pinned)).await;
    let labels: Vec<&str> = data["visuals"][0]["points"].as_array().expect("points").iter().filter_map(|p| p["label"].as_str()).collect();
    assert_eq!(labels, ["East", "West"], "drawn from the report's dataset: {data}");
}
