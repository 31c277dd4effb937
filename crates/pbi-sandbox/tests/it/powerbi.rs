//! Power BI REST: per-user content, isolation, token checks, service principals, swagger shapes.

use crate::support::*;
use pbi_sandbox::{demo, demo_id};
use reqwest::{Method, StatusCode};
use serde_json::json;

const ALICE: &str = "alice@contoso.onmicrosoft.com";
const BOB: &str = "bob@contoso.onmicrosoft.com";

#[tokio::test]
async fn each_user_sees_their_own_workspaces_and_my_workspace() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let bob = t.user_token(BOB).await;

    let (status, groups) = t.api_get(&alice, "/groups").await;
    assert_eq!(status, StatusCode::OK);
    swagger().check_response("Groups_GetGroups", 200, &groups).expect("documented");
    assert_eq!(names(&groups, "name"), ["Operations", "Sales Analytics"]);
    assert!(groups["@odata.context"].as_str().expect("context").ends_with("/v1.0/myorg/$metadata#groups"));
    let (_, groups) = t.api_get(&bob, "/groups").await;
    assert_eq!(names(&groups, "name"), ["Finance", "Sales Analytics"]);

    let (_, mine) = t.api_get(&alice, "/dashboards").await;
    swagger().check_response("Dashboards_GetDashboards", 200, &mine).expect("documented");
    assert_eq!(names(&mine, "displayName"), ["Alice's KPIs"]);
    let (_, bobs) = t.api_get(&bob, "/dashboards").await;
    assert_eq!(names(&bobs, "displayName"), ["Bob's Pipeline"]);
}

#[tokio::test]
async fn a_user_cannot_reach_content_that_is_not_theirs() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let finance = demo_id("ws:finance");
    let bobs_dashboard = demo_id("dash:bob");
    let fabrikam = demo_id("ws:fabrikam-sales");
    for path in [
        format!("/groups/{finance}"),
        format!("/groups/{finance}/dashboards"),
        format!("/groups/{finance}/datasets/{}", demo_id("ds:budget")),
        format!("/dashboards/{bobs_dashboard}"),
        format!("/dashboards/{bobs_dashboard}/tiles"),
        format!("/groups/{fabrikam}/dashboards"),
        format!("/groups/{}/dashboards/{}", demo_id("ws:sales"), demo_id("dash:finance-kpis")),
        format!("/groups/{}/dashboards", demo_id(&format!("my-workspace:{}", demo_id("user:bob@contoso.onmicrosoft.com")))),
    ] {
        let (status, body) = t.api_get(&alice, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["code"], "PowerBIEntityNotFound", "{path}");
    }
    let (status, _, _) = t
        .call(
            &alice,
            Method::POST,
            &format!("/groups/{finance}/datasets/{}/tables/Budget/rows", demo_id("ds:budget")),
            Some(json!({"rows": [{"Department": "x"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "writes are refused the same way");
}

#[tokio::test]
async fn dashboards_tiles_and_reports_in_a_workspace_match_the_swagger() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let ws = demo_id("ws:sales");
    let (status, dashboards) = t.api_get(&alice, &format!("/groups/{ws}/dashboards")).await;
    assert_eq!(status, StatusCode::OK);
    swagger().check_response("Dashboards_GetDashboardsInGroup", 200, &dashboards).expect("documented");
    let dashboard = demo_id("dash:sales-overview");
    let (_, tiles) = t.api_get(&alice, &format!("/groups/{ws}/dashboards/{dashboard}/tiles")).await;
    swagger().check_response("Dashboards_GetTilesInGroup", 200, &tiles).expect("documented");
    assert_eq!(names(&tiles, "title"), ["Total Sales", "Sales by Region", "Sales by Month", "Recent Sales"]);
    let tile = &tiles["value"][1];
    assert_eq!((tile["rowSpan"].as_u64(), tile["colSpan"].as_u64()), (Some(2), Some(2)));
    assert_eq!(tile["reportId"], demo_id("report:retail-sales").to_string());
    assert_eq!(tile["datasetId"], demo_id("ds:retail-sales").to_string());
    let embed = tile["embedUrl"].as_str().expect("embedUrl");
    assert!(embed.starts_with(&t.url("/embed?dashboardId=")) && embed.contains(&format!("groupId={ws}")), "{embed}");
    let (status, one) = t.api_get(&alice, &format!("/groups/{ws}/dashboards/{dashboard}/tiles/{}", tile["id"].as_str().expect("id"))).await;
    assert_eq!(status, StatusCode::OK);
    swagger().check_response("Dashboards_GetTileInGroup", 200, &one).expect("documented");
    let (_, reports) = t.api_get(&alice, &format!("/groups/{ws}/reports")).await;
    swagger().check_response("Reports_GetReportsInGroup", 200, &reports).expect("documented");
    assert_eq!(names(&reports, "name"), ["Retail Sales Report"]);
    let (_, datasets) = t.api_get(&alice, &format!("/groups/{ws}/datasets")).await;
    swagger().check_response("Datasets_GetDatasetsInGroup", 200, &datasets).expect("documented");
    assert_eq!(datasets["value"][0]["addRowsAPIEnabled"], true);
}

#[tokio::test]
async fn groups_filter_top_and_skip() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let (_, only) = t.api_get(&alice, "/groups?$filter=contains(name,'sales')").await;
    assert_eq!(names(&only, "name"), ["Sales Analytics"]);
    let (_, either) = t.api_get(&alice, "/groups?$filter=tolower(name) eq 'operations' or name eq 'Nope'").await;
    assert_eq!(names(&either, "name"), ["Operations"]);
    let (_, page) = t.api_get(&alice, "/groups?$top=1&$skip=1").await;
    assert_eq!(names(&page, "name"), ["Sales Analytics"]);
    let (status, bad) = t.api_get(&alice, "/groups?$top=many").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(bad["error"]["message"].as_str().expect("message").contains("$top"));
    let (status, _) = t.api_get(&alice, "/groups?$filter=name gt 'a'").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn expired_garbled_and_missing_tokens_are_refused_as_power_bi_does() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let (status, headers, body) = t.call("not-a-jwt", Method::GET, "/groups", None).await;
    assert_eq!((status, body), (StatusCode::FORBIDDEN, serde_json::Value::Null), "empty body");
    assert_eq!(headers["x-powerbi-error-info"], "InvalidToken");
    let response = t.http.get(t.url("/v1.0/myorg/groups")).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().contains_key("requestid"), "every answer has a RequestId");

    t.sandbox.clock().advance(time::Duration::minutes(91)).expect("manual clock");
    let (status, body) = t.api_get(&alice, "/groups").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "TokenExpired");
    assert_eq!(body["error"]["message"], "Access token has expired, resubmit with a new access token");
}

#[tokio::test]
async fn missing_scopes_and_missing_licenses_are_refused() {
    let t = TestSandbox::start().await;
    let tenant = demo_id("tenant:contoso");
    let user =
        t.control(json!({"op": "createUser", "tenant": tenant, "upn": "erin@contoso.onmicrosoft.com", "password": "erin-password"})).await;
    let _ = user;
    let redirect = t
        .authorize_as(
            "erin@contoso.onmicrosoft.com",
            &[("scope", "offline_access https://analysis.windows.net/powerbi/api/Dashboard.Read.All")],
        )
        .await;
    let code = query_param(&redirect, "code").expect("code");
    let (_, tokens) = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &t.client_id()),
            ("client_secret", demo::APP_SECRET),
            ("code", &code),
            ("redirect_uri", &t.redirect_uri()),
        ])
        .await;
    let erin = tokens["access_token"].as_str().expect("token");
    let (status, body) = t.api_get(erin, "/groups").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "PowerBINotAuthorizedException");
    let (status, _) = t.api_get(erin, "/dashboards").await;
    assert_eq!(status, StatusCode::OK, "the scope it has works");

    let carol = t.user_token("carol@contoso.onmicrosoft.com").await;
    let (status, body) = t.api_get(&carol, "/groups").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "Entra gives unlicensed users tokens; Power BI refuses them");
    assert_eq!(body["error"]["code"], "PowerBINotLicensedException");
}

#[tokio::test]
async fn service_principals_see_only_their_workspaces_and_need_the_tenant_setting() {
    let t = TestSandbox::start().await;
    let app = t.app_token().await;
    let (status, groups) = t.api_get(&app, "/groups").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&groups, "name"), ["Sales Analytics"]);
    let (status, body) = t.api_get(&app, "/datasets").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no My workspace for service principals: {body}");

    let tenant = demo_id("tenant:contoso");
    t.sandbox.update_tenant_settings(tenant, |s| s.service_principals_enabled = false).expect("contoso");
    let (status, body) = t.api_get(&app, "/groups").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "PowerBINotAuthorizedException");
}

#[tokio::test]
async fn refreshes_run_on_the_sandbox_clock() {
    let t = TestSandbox::start().await;
    let admin = t.user_token("admin@contoso.onmicrosoft.com").await;
    let ws = demo_id("ws:operations");
    let ds = demo_id("ds:inventory");
    let (status, headers, _) = t
        .call(&admin, Method::POST, &format!("/groups/{ws}/datasets/{ds}/refreshes"), Some(json!({"notifyOption": "NoNotification"})))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(headers.contains_key("location"));
    let (_, history) = t.api_get(&admin, &format!("/groups/{ws}/datasets/{ds}/refreshes")).await;
    swagger().check_response("Datasets_GetRefreshHistoryInGroup", 200, &history).expect("documented");
    assert_eq!(history["value"][0]["status"], "Unknown", "running");
    t.sandbox.clock().advance(time::Duration::minutes(2)).expect("manual clock");
    let (_, history) = t.api_get(&admin, &format!("/groups/{ws}/datasets/{ds}/refreshes")).await;
    assert_eq!(history["value"][0]["status"], "Completed");
    assert!(history["value"][0]["endTime"].is_string());
}

#[tokio::test]
async fn bad_input_gets_the_real_status_and_changes_nothing() {
    let t = TestSandbox::start().await;
    let alice = t.user_token(ALICE).await;
    let (status, body) = t.api_get(&alice, "/groups/not-a-guid/dashboards").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().expect("message").contains("groupId"));
    let (status, _) = t.api_get(&alice, "/no-such-thing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let response = t
        .http
        .post(t.url("/v1.0/myorg/datasets"))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let (_, datasets) = t.api_get(&alice, "/datasets").await;
    assert_eq!(names(&datasets, "name"), ["Targets"], "nothing was created");
    let huge = "x".repeat(17 * 1024 * 1024);
    let response = t
        .http
        .post(t.url("/v1.0/myorg/datasets"))
        .bearer_auth(&alice)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
