//! GenerateToken and the embed pages' data: who may see a tile, expiry, and the company filter.

use crate::support::*;
use pbi_sandbox::demo_id;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ALICE: &str = "alice@contoso.onmicrosoft.com";

async fn embed_data(t: &TestSandbox, authorization: &str, body: Value) -> (StatusCode, Value) {
    let response = t.http.post(t.url("/sandbox-embed/data")).header("authorization", authorization).json(&body).send().await.expect("POST");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn tile_request(dashboard: &str, tile: &str) -> Value {
    json!({"dashboardId": demo_id(dashboard), "tileId": demo_id(tile)})
}

#[tokio::test]
async fn a_tile_embed_token_shows_that_tile_until_it_expires() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let (ws, dash, tile) = (demo_id("ws:sales"), demo_id("dash:sales-overview"), demo_id("tile:sales:total"));
    let path = format!("/groups/{ws}/dashboards/{dash}/tiles/{tile}/GenerateToken");
    let (status, _, token) = t.call(&alice, Method::POST, &path, Some(json!({"accessLevel": "View", "lifetimeInMinutes": 10}))).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    swagger().check_response("Tiles_GenerateTokenInGroup", 200, &token).expect("documented");
    let expiration =
        time::OffsetDateTime::parse(token["expiration"].as_str().expect("expiration"), &time::format_description::well_known::Rfc3339)
            .expect("RFC 3339");
    assert_eq!(expiration, t.sandbox.clock().now() + time::Duration::minutes(10));
    let embed = format!("EmbedToken {}", token["token"].as_str().expect("token"));

    let (status, data) = embed_data(&t, &embed, tile_request("dash:sales-overview", "tile:sales:total")).await;
    assert_eq!(status, StatusCode::OK, "{data}");
    let rows = t.stored_rows(&demo_id("ds:retail-sales").to_string(), "Sales", 1000).await;
    let total: f64 = rows["rows"].as_array().expect("rows").iter().map(|r| r["Amount"].as_f64().expect("amount")).sum();
    assert_eq!(data["visuals"][0]["value"].as_f64(), Some(total), "the card sums its column");

    let (status, _) = embed_data(&t, &embed, tile_request("dash:sales-overview", "tile:sales:by-region")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a tile token shows only its tile");
    t.sandbox.clock().advance(time::Duration::minutes(11)).expect("manual clock");
    let (status, body) = embed_data(&t, &embed, tile_request("dash:sales-overview", "tile:sales:total")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("TokenExpired")));
}

#[tokio::test]
async fn the_users_own_token_shows_only_their_tiles() {
    let t = TestSandbox::start().await;
    let alice = format!("Bearer {}", t.user_token(ALICE).await);
    let (status, data) = embed_data(&t, &alice, tile_request("dash:sales-overview", "tile:sales:by-region")).await;
    assert_eq!(status, StatusCode::OK);
    let regions: Vec<&str> = data["visuals"][0]["points"].as_array().expect("points").iter().filter_map(|p| p["label"].as_str()).collect();
    assert_eq!(regions, ["East", "North", "South", "West"]);
    let (status, _) = embed_data(&t, &alice, tile_request("dash:bob", "tile:bob:1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "Bob's personal tile is not Alice's to see");
    let (status, _) = embed_data(&t, "Bearer garbage", tile_request("dash:sales-overview", "tile:sales:total")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_company_filter_reaches_the_visual_through_the_relationship() {
    let t = TestSandbox::start().await;
    let alice = format!("Bearer {}", t.user_token(ALICE).await);
    let filter = json!([{"$schema": "http://powerbi.com/product/schema#basic", "target": {"table": "Company", "column": "ID"}, "operator": "In", "values": ["USMF"]}]);
    let mut request = tile_request("dash:sales-overview", "tile:sales:total");
    request["filters"] = filter;
    let (_, filtered) = embed_data(&t, &alice, request).await;
    let rows = t.stored_rows(&demo_id("ds:retail-sales").to_string(), "Sales", 1000).await;
    let usmf: f64 = rows["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["CompanyId"] == "USMF")
        .map(|r| r["Amount"].as_f64().expect("amount"))
        .sum();
    assert!(usmf > 0.0);
    assert_eq!(filtered["visuals"][0]["value"].as_f64(), Some(usmf));

    // A company with no rows: the card is blank, as Power BI draws "(Blank)", not a sum of nothing (-0).
    let mut request = tile_request("dash:sales-overview", "tile:sales:total");
    request["filters"] = json!([{"$schema": "http://powerbi.com/product/schema#basic", "target": {"table": "Company", "column": "ID"}, "operator": "In", "values": ["NOPE"]}]);
    let (_, none) = embed_data(&t, &alice, request).await;
    assert!(none["visuals"][0]["value"].is_null(), "{none}");
}

#[tokio::test]
async fn generate_token_rules() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let (dash, tile) = (demo_id("dash:alice"), demo_id("tile:alice:1"));
    let (status, _, _) = t.call(&alice, Method::POST, &format!("/dashboards/{dash}/tiles/{tile}/GenerateToken"), Some(json!({}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "GenerateToken exists only in the workspace form");

    let bob = t.user_token("bob@contoso.onmicrosoft.com").await;
    let (ws, report) = (demo_id("ws:sales"), demo_id("report:retail-sales"));
    let (status, _, _) =
        t.call(&bob, Method::POST, &format!("/groups/{ws}/reports/{report}/GenerateToken"), Some(json!({"accessLevel": "Edit"}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a Viewer cannot get an Edit token");
    let (status, _, body) =
        t.call(&bob, Method::POST, &format!("/groups/{ws}/reports/{report}/GenerateToken"), Some(json!({"accessLevel": "View"}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    swagger().check_response("Reports_GenerateTokenInGroup", 200, &body).expect("documented");

    let (status, _, body) = t
        .call(
            &alice,
            Method::POST,
            "/GenerateToken",
            Some(json!({"reports": [{"id": report}], "datasets": [{"id": demo_id("ds:retail-sales")}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    swagger().check_response("EmbedToken_GenerateToken", 200, &body).expect("documented");
    let (status, _, body) = t.call(&alice, Method::POST, "/GenerateToken", Some(json!({"dashboards": [{"id": dash}]}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no dashboards in V2: {body}");
    let (status, _, _) = t.call(&alice, Method::POST, "/GenerateToken", Some(json!({"reports": [{"id": demo_id("report:bob")}]}))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = t
        .call(
            &alice,
            Method::POST,
            &format!("/groups/{ws}/dashboards/{}/GenerateToken", demo_id("dash:sales-overview")),
            Some(json!({"accessLevel": "Sideways"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn embed_pages_serve_the_protocol() {
    let t = TestSandbox::start().await;
    for path in ["/embed?dashboardId=x&tileId=y", "/dashboardEmbed?dashboardId=x", "/reportEmbed?reportId=x"] {
        let page = t.http.get(t.url(path)).send().await.expect("GET").text().await.expect("HTML");
        assert!(page.contains("windowPostMessageProxy") && page.contains("/sandbox-embed/data"), "{path}");
    }
}
