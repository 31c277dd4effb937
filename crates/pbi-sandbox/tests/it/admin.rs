//! The admin APIs: admin/groups and the metadata scanner's life cycle, detail, lineage and quotas.

use crate::support::*;
use pbi_sandbox::{demo, demo_id};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn admin_user_token(t: &TestSandbox) -> String {
    let redirect = t
        .authorize_as(
            "admin@contoso.onmicrosoft.com",
            &[("scope", "offline_access https://analysis.windows.net/powerbi/api/Tenant.Read.All")],
        )
        .await;
    let code = query_param(&redirect, "code").expect("code");
    let (status, body) = t
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", &t.client_id()),
            ("client_secret", demo::APP_SECRET),
            ("code", &code),
            ("redirect_uri", &t.redirect_uri()),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["access_token"].as_str().expect("token").to_owned()
}

async fn scan(t: &TestSandbox, token: &str, workspaces: &[String], flags: &str) -> String {
    let (status, headers, body) =
        t.call(token, Method::POST, &format!("/admin/workspaces/getInfo?{flags}"), Some(json!({"workspaces": workspaces}))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "NotStarted");
    let id = body["id"].as_str().expect("scan id").to_owned();
    assert!(headers["location"].to_str().expect("ascii").ends_with(&format!("/admin/workspaces/scanStatus/{id}")));
    id
}

async fn scan_status(t: &TestSandbox, token: &str, id: &str) -> String {
    let (_, body) = t.api_get(token, &format!("/admin/workspaces/scanStatus/{id}")).await;
    body["status"].as_str().unwrap_or_default().to_owned()
}

const ALL_FLAGS: &str = "lineage=true&datasourceDetails=true&datasetSchema=true&datasetExpressions=true&getArtifactUsers=true";

#[tokio::test]
async fn a_scan_runs_its_life_cycle_and_returns_lineage_and_schema() {
    let t = TestSandbox::start().await;
    let app = t.app_token().await;
    let id = scan(&t, &app, &[demo_id("ws:operations").to_string(), demo_id("ws:sales").to_string()], ALL_FLAGS).await;
    assert_eq!(scan_status(&t, &app, &id).await, "NotStarted");
    let (code, _) = t.api_get(&app, &format!("/admin/workspaces/scanResult/{id}")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "no result before the scan succeeded");
    t.sandbox.clock().advance(time::Duration::seconds(6)).expect("manual clock");
    assert_eq!(scan_status(&t, &app, &id).await, "Running");
    t.sandbox.clock().advance(time::Duration::seconds(10)).expect("manual clock");
    assert_eq!(scan_status(&t, &app, &id).await, "Succeeded");

    let (code, result) = t.api_get(&app, &format!("/admin/workspaces/scanResult/{id}")).await;
    assert_eq!(code, StatusCode::OK);
    swagger().check_response("WorkspaceInfo_GetScanResult", 200, &result).expect("documented");
    let ops = &result["workspaces"][0];
    assert_eq!(ops["name"], "Operations");
    let inventory = &ops["datasets"][0];
    assert_eq!(inventory["tables"][0]["columns"][2]["name"], "Quantity");
    assert!(inventory["tables"][0]["source"][0]["expression"].as_str().expect("M").contains("Sql.Database"));
    let flow = &ops["dataflows"][0];
    assert_eq!(inventory["upstreamDataflows"][0]["targetDataflowId"], flow["objectId"], "dataset → dataflow lineage");
    let source_id = flow["datasourceUsages"][0]["datasourceInstanceId"].clone();
    let instance = result["datasourceInstances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|i| i["datasourceId"] == source_id)
        .expect("the dataflow's source");
    assert_eq!(instance["connectionDetails"]["server"], "sql.contoso.example");
    assert!(
        ops["users"]
            .as_array()
            .expect("users")
            .iter()
            .any(|u| u["identifier"] == "alice@contoso.onmicrosoft.com" && u["groupUserAccessRight"] == "Contributor")
    );
    let sales = &result["workspaces"][1];
    assert_eq!(sales["datasets"][0]["schemaRetrievalError"], "Unsupported request. RealTime dataset are not supported");
    let tile = &sales["dashboards"][0]["tiles"][0];
    assert_eq!(tile["reportId"], demo_id("report:retail-sales").to_string());

    t.sandbox.clock().advance(time::Duration::hours(24)).expect("manual clock");
    let app = t.app_token().await;
    let (code, _) = t.api_get(&app, &format!("/admin/workspaces/scanResult/{id}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "results are kept 24 hours");
}

#[tokio::test]
async fn detail_is_silently_left_out_when_the_tenant_settings_are_off() {
    let t = TestSandbox::start().await;
    let tenant = demo_id("tenant:contoso");
    t.sandbox.update_tenant_settings(tenant, |s| s.detailed_metadata = false).expect("contoso");
    let app = t.app_token().await;
    let id = scan(&t, &app, &[demo_id("ws:operations").to_string()], ALL_FLAGS).await;
    t.sandbox.clock().advance(time::Duration::seconds(20)).expect("manual clock");
    let (_, result) = t.api_get(&app, &format!("/admin/workspaces/scanResult/{id}")).await;
    let inventory = &result["workspaces"][0]["datasets"][0];
    assert!(inventory.get("tables").is_none() && inventory.get("expressions").is_none(), "{inventory}");
    assert!(inventory["upstreamDataflows"].is_array(), "names and lineage are still returned");
}

#[tokio::test]
async fn admin_apis_need_an_administrator_or_an_allowed_service_principal() {
    let t = TestSandbox::start().await;
    let alice = t.user_token("alice@contoso.onmicrosoft.com").await;
    let (status, body) = t.api_get(&alice, "/admin/groups?$top=10").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("PowerBINotAuthorizedException")));

    let admin = admin_user_token(&t).await;
    let (status, groups) = t.api_get(&admin, "/admin/groups?$top=100&$expand=users").await;
    assert_eq!(status, StatusCode::OK, "{groups}");
    swagger().check_response("Groups_GetGroupsAsAdmin", 200, &groups).expect("documented");
    let names = names(&groups, "name");
    assert!(
        names.contains(&"Finance".to_owned()) && !names.contains(&"Fabrikam Sales".to_owned()),
        "all of the tenant, none of another: {names:?}"
    );
    assert!(groups["value"].as_array().expect("list").iter().any(|g| g["type"] == "PersonalGroup"));
    let (status, _) = t.api_get(&admin, "/admin/groups").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "$top is required");

    let tenant = demo_id("tenant:contoso");
    t.sandbox.update_tenant_settings(tenant, |s| s.service_principals_admin_apis = false).expect("contoso");
    let app = t.app_token().await;
    let (status, _, _) = t.call(&app, Method::POST, "/admin/workspaces/getInfo", Some(json!({"workspaces": [demo_id("ws:sales")]}))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = t.api_get(&app, "/groups").await;
    assert_eq!(status, StatusCode::OK, "the regular APIs have their own setting");
}

#[tokio::test]
async fn modified_workspaces_and_scan_requests_are_checked() {
    let t = TestSandbox::start().await;
    let app = t.app_token().await;
    let (status, modified) = t.api_get(&app, "/admin/workspaces/modified?excludePersonalWorkspaces=true").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<Value> = modified.as_array().expect("a bare array").iter().map(|w| w["id"].clone()).collect();
    assert!(ids.contains(&json!(demo_id("ws:finance"))) && !ids.contains(&json!(demo_id("ws:fabrikam-sales"))));
    assert_eq!(ids.len(), 3, "personal workspaces excluded");
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).expect("format");
    let (status, _) = t.api_get(&app, &format!("/admin/workspaces/modified?modifiedSince={now}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "modifiedSince must be at least 30 minutes ago");

    let too_many: Vec<String> = (0..101).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
    let (status, _, _) = t.call(&app, Method::POST, "/admin/workspaces/getInfo", Some(json!({"workspaces": too_many}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for _ in 0..29 {
        assert_eq!(t.api_get(&app, "/admin/workspaces/modified").await.0, StatusCode::OK);
    }
    let (status, headers, _) = t.call(&app, Method::GET, "/admin/workspaces/modified", None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "30 calls an hour");
    assert!(headers.contains_key("retry-after"));
}
