//! Typed calls and raw requests against the sandbox.

use crate::support::*;
use futures_util::TryStreamExt;
use pbi_powerbi::models::{Column, DataType, DatasetDefinition, TableSchema};
use pbi_powerbi::{CloneTarget, RawBody, RawRequest, RetryPolicy, Top, Workspace};
use pbi_sandbox::{Command, WorkspaceRole, demo_id};
use reqwest::Method;

#[tokio::test]
async fn lists_dashboards_tiles_reports_and_datasets_of_a_workspace() {
    let env = Env::start().await;
    let client = env.app_client(RetryPolicy::none());
    let sales = Workspace::Group(demo_id("ws:sales"));
    let dashboards = client.dashboards(sales).await.expect("dashboards");
    assert_eq!(dashboards[0].display_name, "Sales Overview");
    let tiles = client.tiles(sales, dashboards[0].id).await.expect("tiles");
    assert_eq!(tiles.len(), 4);
    assert_eq!((tiles[1].row_span, tiles[1].col_span), (Some(2), Some(2)));
    assert!(tiles[1].embed_url.as_deref().is_some_and(|u| u.contains(&format!("tileId={}", tiles[1].id))));
    let reports = client.reports(sales).await.expect("reports");
    assert_eq!(reports[0].dataset_id, Some(demo_id("ds:retail-sales")));
    let datasets = client.datasets(sales).await.expect("datasets");
    assert!(datasets[0].add_rows_api_enabled);
    let token = client.tile_embed_token(demo_id("ws:sales"), dashboards[0].id, tiles[0].id, Some(10)).await.expect("embed token");
    assert!(token.token.starts_with("H4sI"));
}

#[tokio::test]
async fn creates_a_push_dataset_pushes_and_clears_rows() {
    let env = Env::start().await;
    let client = env.app_client(RetryPolicy::none());
    let sales = Workspace::Group(demo_id("ws:sales"));
    let column = |name: &str, data_type| Column { name: name.into(), data_type, extra: Default::default() };
    let definition = DatasetDefinition {
        name: "Orders".into(),
        default_mode: Some("Push".into()),
        tables: vec![TableSchema {
            name: "Orders 2026".into(),
            columns: vec![column("Id", DataType::Int64), column("Customer", DataType::String)],
            measures: vec![],
            extra: Default::default(),
        }],
        relationships: vec![],
    };
    let dataset = client.create_dataset(sales, &definition, true).await.expect("created");
    assert_eq!(dataset.default_retention_policy.as_deref(), Some("basicFIFO"));
    let tables = client.tables(sales, &dataset.id).await.expect("tables");
    assert_eq!(tables[0].name, "Orders 2026");
    let rows: Vec<_> = (0..3).map(|i| serde_json::json!({"Id": i, "Customer": "Contoso"}).as_object().cloned().expect("object")).collect();
    client.post_rows(sales, &dataset.id, "Orders 2026", &rows).await.expect("rows, table name with a space");
    client.delete_rows(sales, &dataset.id, "Orders 2026").await.expect("cleared");
    client.delete_dataset(sales, &dataset.id).await.expect("deleted");
}

#[tokio::test]
async fn pins_by_cloning_a_report_onto_a_push_dataset_and_a_tile_onto_a_new_dashboard() {
    let env = Env::start().await;
    let client = env.app_client(RetryPolicy::none());
    let sales = Workspace::Group(demo_id("ws:sales"));
    let column = |name: &str, data_type| Column { name: name.into(), data_type, extra: Default::default() };
    let definition = DatasetDefinition {
        name: "Pinned sales".into(),
        default_mode: Some("Push".into()),
        tables: vec![TableSchema {
            name: "Sales".into(),
            columns: vec![column("Amount", DataType::Double), column("Region", DataType::String), column("Date", DataType::DateTime)],
            measures: vec![],
            extra: Default::default(),
        }],
        relationships: vec![],
    };
    let dataset = client.create_dataset(sales, &definition, false).await.expect("created");
    let dataset_id: uuid::Uuid = dataset.id.parse().expect("a GUID");
    let onto = CloneTarget { dataset: Some(dataset_id), ..CloneTarget::default() };
    let report = client.clone_report(sales, demo_id("report:retail-sales"), "Pinned sales", &onto).await.expect("report cloned");
    assert_eq!((report.name.as_str(), report.dataset_id), ("Pinned sales", Some(dataset_id)));
    let dashboard = client.add_dashboard(sales, "IT Spend Analysis").await.expect("dashboard");
    assert_eq!(dashboard.display_name, "IT Spend Analysis");
    let rebound = CloneTarget { workspace: Some(sales), report: Some(report.id), dataset: Some(dataset_id) };
    let tile = client
        .clone_tile(sales, demo_id("dash:sales-overview"), demo_id("tile:sales:total"), dashboard.id, &rebound)
        .await
        .expect("tile cloned");
    assert_eq!((tile.report_id, tile.dataset_id, tile.title.as_deref()), (Some(report.id), Some(dataset_id), Some("Total Sales")));
    assert_eq!(client.tiles(sales, dashboard.id).await.expect("tiles").len(), 1);

    client.delete_report(sales, report.id).await.expect("report deleted");
    assert_eq!(client.report(sales, report.id).await.expect_err("gone").code(), Some("PowerBIEntityNotFound"));
    client.delete_dashboard(sales, dashboard.id).await.expect("dashboard deleted");
    assert!(client.dashboard(sales, dashboard.id).await.is_err(), "gone");
}

#[tokio::test]
async fn the_group_stream_walks_every_page() {
    let env = Env::start().await;
    let sp = pbi_sandbox::demo_id(&format!("sp:{}:{}", demo_id("tenant:contoso"), pbi_sandbox::demo_automation_client_id()));
    for name in ["A", "B", "C", "D"] {
        let ws = env
            .sandbox
            .control(
                serde_json::from_value(
                    serde_json::json!({"op": "createWorkspace", "tenant": demo_id("tenant:contoso"), "name": format!("Paged {name}")}),
                )
                .expect("command"),
            )
            .expect("created");
        let id: uuid::Uuid = serde_json::from_value(ws["id"].clone()).expect("id");
        env.sandbox.control(Command::AddWorkspaceMember { workspace: id, principal: sp, role: WorkspaceRole::Viewer }).expect("member");
    }
    let client = env.app_client(RetryPolicy::none());
    env.sandbox.clear_requests();
    let all: Vec<String> = client.all_groups(None, Top::new(2).expect("top")).map_ok(|g| g.name).try_collect().await.expect("every page");
    assert_eq!(all, ["Paged A", "Paged B", "Paged C", "Paged D", "Sales Analytics"]);
    assert_eq!(env.calls_to("/v1.0/myorg/groups").len(), 3, "pages of 2, 2 and 1");
}

#[tokio::test]
async fn raw_requests_reach_any_endpoint_and_nothing_else() {
    let env = Env::start().await;
    let client = env.app_client(RetryPolicy::none());
    let response = client.raw(&RawRequest::new(Method::GET, "myorg/groups")).await.expect("raw GET");
    let RawBody::Json(body) = response.body else { panic!("JSON") };
    assert_eq!(body["value"][0]["name"], "Sales Analytics");
    assert!(response.request_id.is_some());

    for path in ["https://evil.example/v1.0/myorg/groups", "//evil.example/x", "groups/../../_sandbox/seed", "%2e%2e/_sandbox/seed"] {
        let error = client.raw(&RawRequest::new(Method::GET, path)).await.expect_err("refused");
        assert!(matches!(error.kind, pbi_powerbi::ErrorKind::Invalid(_)), "{path}: {error}");
    }
    assert!(env.sandbox.requests().iter().all(|r| !r.path.starts_with("/_sandbox")), "nothing refused was sent");
    for (name, value) in [
        ("Authorization", "Bearer someone-else"),
        ("authorization", "Bearer someone-else"),
        ("Host", "evil.example"),
        ("Connection", "close"),
        ("Transfer-Encoding", "chunked"),
        ("TE", "trailers"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic eA=="),
        ("Content-Length", "0"),
    ] {
        env.sandbox.clear_requests();
        let mut sneaky = RawRequest::new(Method::GET, "groups");
        sneaky.headers.push((name.into(), value.into()));
        let error = client.raw(&sneaky).await.expect_err("refused");
        assert!(error.to_string().contains(&name.to_ascii_lowercase()), "the error names the header: {error}");
        assert!(env.sandbox.requests().is_empty(), "{name}: nothing is sent when a header is refused");
    }
    env.sandbox.clear_requests();
    let mut allowed = RawRequest::new(Method::GET, "groups");
    allowed.headers.push(("X-Custom".into(), "1".into()));
    client.raw(&allowed).await.expect("an ordinary header is sent");
    assert_eq!(env.calls_to("/v1.0/myorg/groups").len(), 1, "one request, with the client's own token");
}
