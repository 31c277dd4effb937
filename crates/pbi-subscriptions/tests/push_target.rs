//! The pin target against the sandbox: templates as an administrator builds them (a template dataset per
//! kind, its report, a dashboard, and each kind's visual pinned by a person), then a user's pin (a push
//! dataset of its own, the template report cloned onto it, the template tile cloned onto their dashboard)
//! and a delivery through `delivery::Progress`: the new tile reads the pin's dataset, which holds exactly the
//! delivered rows (the sandbox's own tests show a rebound tile drawing its dataset's rows).

use pbi_powerbi::{ClientCredentials, ClientSecret, Cloud, PowerBiClient, RetryPolicy, Workspace};
use pbi_sandbox::{Command, Sandbox, SandboxConfig, SandboxHandle, Visual, VisualKind as SandboxVisual, WorkspaceRole, demo, demo_id};
use pbi_subscriptions::delivery::{Progress, Step};
use pbi_subscriptions::kind::VisualKind;
use pbi_subscriptions::push_target::{self, Place, Template};
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

fn client(sandbox: &SandboxHandle) -> PowerBiClient {
    let base = url::Url::parse(sandbox.base_url()).expect("url");
    let cloud = Cloud::custom(base.clone());
    let clock = sandbox.clock().clone();
    let tokens = ClientCredentials::new(
        reqwest::Client::new(),
        &base.join(demo::CONTOSO_DOMAIN).expect("authority"),
        pbi_sandbox::demo_automation_client_id().to_string(),
        ClientSecret::new(demo::AUTOMATION_SECRET),
        cloud.resource(),
    )
    .expect("source")
    .with_clock(move || clock.now());
    PowerBiClient::new(&cloud, Arc::new(tokens)).with_retry(RetryPolicy::none())
}

fn control(sandbox: &SandboxHandle, command: Command) -> Value {
    sandbox.control(command).expect("command")
}

fn id(value: &Value) -> Uuid {
    value["id"].as_str().and_then(|s| s.parse().ok()).expect("an id")
}

/// The templates of one kind, built as the templates page guides an administrator to (the visual pinned by
/// Alice, a person: the one step no API does), in a templates workspace the automation principal is in.
fn template(sandbox: &SandboxHandle, kind: VisualKind, visual: SandboxVisual, category: Option<&str>) -> Template {
    let sp = demo_id(&format!("sp:{}:{}", demo_id("tenant:contoso"), pbi_sandbox::demo_automation_client_id()));
    let alice = demo_id("user:alice@contoso.onmicrosoft.com");
    let workspace = id(&control(
        sandbox,
        Command::CreateWorkspace {
            id: None,
            tenant: demo_id("tenant:contoso"),
            name: format!("pbi-bridge templates ({kind})"),
            personal_owner: None,
            members: vec![],
            dedicated_capacity: false,
        },
    ));
    for (principal, role) in [(alice, WorkspaceRole::Admin), (sp, WorkspaceRole::Member)] {
        control(sandbox, Command::AddWorkspaceMember { workspace, principal, role });
    }
    let dataset = id(&control(
        sandbox,
        Command::CreateDataset {
            id: None,
            workspace,
            definition: kind.dataset_definition(&format!("Template: {kind}")),
            push: true,
            basic_fifo: false,
            configured_by: None,
        },
    ));
    let report =
        id(&control(sandbox, Command::CreateReport { id: None, workspace, name: format!("Template: {kind}"), dataset: Some(dataset) }));
    let dashboard = id(&control(sandbox, Command::CreateDashboard { id: None, workspace, name: "Templates".into() }));
    let visual = Visual { kind: visual, table: "Item".into(), value: Some("Value".into()), category: category.map(Into::into) };
    let tile = id(&control(
        sandbox,
        Command::PinVisual {
            user: "alice@contoso.onmicrosoft.com".into(),
            report,
            dashboard,
            title: kind.label().into(),
            row_span: 2,
            col_span: 2,
            visual,
        },
    ));
    Template { workspace, report, dashboard, tile }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pin_reads_its_own_dataset_which_holds_exactly_the_rows_its_delivery_sent() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("sandbox");
    let client = client(&sandbox);
    let template = template(&sandbox, VisualKind::CategorySeries, SandboxVisual::Bar, Some("Category"));
    let sales = Workspace::Group(demo_id("ws:sales"));
    let dashboard = client.add_dashboard(sales, "IT Spend Analysis Sample").await.expect("a new dashboard");
    let place = Place { workspace: sales, dashboard: dashboard.id, name: "Chart2".into() };
    let pinned = push_target::pin(&client, VisualKind::CategorySeries, &template, &place).await.expect("pinned");
    let tiles = client.tiles(sales, dashboard.id).await.expect("tiles");
    assert_eq!(tiles.iter().map(|t| Some(t.id)).collect::<Vec<_>>(), [pinned.tile]);
    assert_eq!(tiles[0].dataset_id.map(|d| d.to_string()), Some(pinned.dataset.clone()), "the tile reads the pin's own dataset");

    // Two deliveries; the second replaces the first's rows.
    for regions in [vec![("East", 5.0), ("West", 7.0)], vec![("North", 1.0), ("South", 2.0), ("East", 3.0)]] {
        let rows: Vec<serde_json::Map<String, Value>> = regions
            .iter()
            .map(|(region, value)| {
                json!({"Category": region, "Value": value, "LastRefreshed": "2026-12-02T09:30:00Z"}).as_object().cloned().expect("row")
            })
            .collect();
        let now = sandbox.clock().now();
        let mut progress = Progress::resume(None, rows.len());
        loop {
            let step = progress.next(now);
            match &step {
                Step::Clear => drop(push_target::clear(&client, sales, &pinned.dataset).await.expect("cleared")),
                Step::Post(range) => drop(push_target::post(&client, sales, &pinned.dataset, &rows[range.clone()]).await.expect("posted")),
                Step::Wait(d) => panic!("no wait for a few rows: {d:?}"),
                Step::Done => break,
            }
            progress.done(&step, now);
        }
        let stored = sandbox_rows(&sandbox, &pinned.dataset).await;
        let labels: Vec<&str> = stored.iter().filter_map(|r| r["Category"].as_str()).collect();
        assert_eq!(labels, regions.iter().map(|(r, _)| *r).collect::<Vec<_>>(), "exactly the delivered rows");
    }
    push_target::remove(&client, sales, &pinned).await.expect("removed");
    assert!(client.report(sales, pinned.report.expect("a report")).await.is_err(), "the report is gone");
    assert_eq!(client.tiles(sales, dashboard.id).await.expect("tiles").len(), 1, "no API removes the tile: it stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_clone_leaves_nothing_behind() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("sandbox");
    let client = client(&sandbox);
    let template = template(&sandbox, VisualKind::SingleValue, SandboxVisual::Card, None);
    let sales = Workspace::Group(demo_id("ws:sales"));
    let dashboards_before = client.dashboards(sales).await.expect("dashboards").len();
    let datasets_before = client.datasets(sales).await.expect("datasets").len();
    // A dashboard that does not exist: the tile's clone is refused after the dataset and report were made.
    let place = Place { workspace: sales, dashboard: Uuid::new_v4(), name: "Total".into() };
    let error = push_target::pin(&client, VisualKind::SingleValue, &template, &place).await.expect_err("refused");
    assert!(matches!(error, push_target::PinError::Tile(_)), "{error}");
    assert_eq!(client.datasets(sales).await.expect("datasets").len(), datasets_before, "the dataset made for it is gone");
    assert!(client.reports(sales).await.expect("reports").iter().all(|r| r.name != "Total"), "and the report");
    assert_eq!(client.dashboards(sales).await.expect("dashboards").len(), dashboards_before);
}

async fn sandbox_rows(sandbox: &SandboxHandle, dataset: &str) -> Vec<Value> {
    let url = format!("{}/_sandbox/datasets/{dataset}/tables/Item/rows?top=1000", sandbox.base_url());
    let body: Value = reqwest::get(url).await.expect("GET").json().await.expect("JSON");
    body["rows"].as_array().cloned().unwrap_or_default()
}
