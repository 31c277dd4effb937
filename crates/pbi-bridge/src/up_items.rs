//! `up`'s demo of seed 001: a SQLite data source of demo spend figures in the data directory, report items of
//! every kind on it (and one whose rows are pushed), and the Power BI templates completed in the sandbox as
//! Contoso's admin would complete them (the one step no API does, done with the sandbox's `pinVisual`). The
//! sandbox starts afresh on every `up`, so the templates are made again each time; the definitions are made
//! once and kept.

use anyhow::Context as _;
use pbi_powerbi::{AccessToken, Cloud, PowerBiClient, StaticToken};
use pbi_sandbox::{Command as SandboxCommand, SandboxHandle as Sandbox, Visual, VisualKind as SandboxVisual, WorkspaceRole, demo, demo_id};
use pbi_store::Store;
use pbi_store::sqlx::{self, Connection as _};
use pbi_subscriptions::definitions::{DataSourceInput, Definitions, ItemInput};
use pbi_subscriptions::kind::VisualKind;
use pbi_subscriptions::templates;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;

const SOURCE_NAME: &str = "Demo reports (SQLite)";
const ACTOR: &str = "up";
/// Who completes the templates in the sandbox (the templates workspace's admin), and who else may clone them.
const ADMIN_UPN: &str = "admin@contoso.onmicrosoft.com";
const PINNERS: [&str; 2] = ["alice", "bob"];

/// The demo figures: (company, department, month, amount).
const SPEND: &[(&str, &str, &str, f64)] = &[
    ("USMF", "IT", "2026-09-01", 182_000.0),
    ("USMF", "IT", "2026-10-01", 176_500.0),
    ("USMF", "IT", "2026-11-01", 191_250.0),
    ("USMF", "Finance", "2026-09-01", 94_300.0),
    ("USMF", "Finance", "2026-10-01", 97_800.0),
    ("USMF", "Finance", "2026-11-01", 99_100.0),
    ("USMF", "Sales", "2026-09-01", 141_000.0),
    ("USMF", "Sales", "2026-10-01", 152_700.0),
    ("USMF", "Sales", "2026-11-01", 149_900.0),
    ("USMF", "HR", "2026-09-01", 48_200.0),
    ("USMF", "HR", "2026-10-01", 47_900.0),
    ("USMF", "HR", "2026-11-01", 51_400.0),
    ("DEMF", "IT", "2026-09-01", 121_000.0),
    ("DEMF", "IT", "2026-10-01", 118_300.0),
    ("DEMF", "IT", "2026-11-01", 126_800.0),
    ("DEMF", "Sales", "2026-09-01", 88_100.0),
    ("DEMF", "Sales", "2026-10-01", 91_600.0),
    ("DEMF", "Sales", "2026-11-01", 95_200.0),
];

/// Everything seed 001 needs to be tried at once: the definitions (once) and the templates (every start).
pub async fn set_up(store: &Store, sandbox: &Sandbox, data_dir: &Path, now: i64) -> anyhow::Result<()> {
    define_items(store, data_dir, now).await.context("the demo report items")?;
    complete_templates(store, sandbox, now).await.context("the Power BI templates in the sandbox")
}

async fn define_items(store: &Store, data_dir: &Path, now: i64) -> anyhow::Result<()> {
    let file = data_dir.join("demo-reports.db");
    write_demo_database(&file).await?;
    let changes = Definitions { store, actor: ACTOR, now };
    let source = match store.data_sources().await?.into_iter().find(|s| s.details.name == SOURCE_NAME) {
        Some(source) => source,
        None => {
            let location = file.canonicalize().unwrap_or(file.clone()).display().to_string();
            let input = DataSourceInput { name: SOURCE_NAME.into(), kind: "sqlite".into(), location, ..DataSourceInput::default() };
            changes.add_data_source(&input, None).await.map_err(|e| anyhow::anyhow!("{e}"))?
        }
    };
    let existing: Vec<String> = store.items().await?.into_iter().map(|i| i.details.name).collect();
    for definition in demo_items(&source.id.to_string()) {
        let input: ItemInput = serde_json::from_value(definition).context("a demo item")?;
        if existing.contains(&input.name) {
            continue;
        }
        let defined = changes.add_item(&input).await.map_err(|e| anyhow::anyhow!("{}: {e}", input.name))?;
        if input.source == "pushed" {
            store.set_pushed_rows(defined.item.id, &open_orders().to_string(), now).await?;
        }
    }
    Ok(())
}

fn demo_items(source: &str) -> Vec<Value> {
    let spend = |company_filter: &str| format!("FROM spend WHERE company = :company{company_filter}");
    vec![
        json!({
            "name": "IT Spend by department", "description": "This month's spend per department (seed 001's Chart2)",
            "kind": "category-series", "source": "query", "dataSourceId": source,
            "columns": [{"name": "Department", "type": "text"}, {"name": "Amount", "type": "decimal"}],
            "category": "Department", "value": "Amount", "parameters": {"company": "USMF"},
            "query": format!("SELECT department AS Department, SUM(amount) AS Amount {} AND month = (SELECT MAX(month) FROM spend) GROUP BY department ORDER BY department", spend("")),
        }),
        json!({
            "name": "Monthly spend", "description": "Spend per month, every department",
            "kind": "time-series", "source": "query", "dataSourceId": source,
            "columns": [{"name": "Month", "type": "datetime"}, {"name": "Amount", "type": "decimal"}],
            "date": "Month", "value": "Amount", "parameters": {"company": "USMF"},
            "query": format!("SELECT month || 'T00:00:00Z' AS Month, SUM(amount) AS Amount {} GROUP BY month ORDER BY month", spend("")),
        }),
        json!({
            "name": "Total spend", "description": "Spend so far this quarter",
            "kind": "single-value", "source": "query", "dataSourceId": source,
            "columns": [{"name": "Total", "type": "decimal"}], "value": "Total", "parameters": {"company": "USMF"},
            "query": format!("SELECT SUM(amount) AS Total {}", spend("")),
        }),
        json!({
            "name": "Open orders", "description": "Orders not yet shipped; the application sends them (PUT /api/v1/items/{id}/rows)",
            "kind": "table", "source": "pushed",
            "columns": [{"name": "Order", "type": "text"}, {"name": "Customer", "type": "text"}, {"name": "Amount", "type": "decimal"}, {"name": "Due", "type": "datetime"}],
        }),
    ]
}

fn open_orders() -> Value {
    json!([
        {"Order": "SO-1042", "Customer": "Adatum", "Amount": 12_400.0, "Due": "2026-12-08T00:00:00Z"},
        {"Order": "SO-1043", "Customer": "Litware", "Amount": 3_150.5, "Due": "2026-12-10T00:00:00Z"},
        {"Order": "SO-1047", "Customer": "Northwind", "Amount": 28_900.0, "Due": "2026-12-15T00:00:00Z"},
    ])
}

/// The demo database, written again on every start (its figures are the demo's, nothing of the user's).
async fn write_demo_database(file: &Path) -> anyhow::Result<()> {
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(file).create_if_missing(true);
    let mut db = sqlx::SqliteConnection::connect_with(&options).await.with_context(|| format!("opening {}", file.display()))?;
    sqlx::query("DROP TABLE IF EXISTS spend").execute(&mut db).await?;
    sqlx::query("CREATE TABLE spend (company TEXT NOT NULL, department TEXT NOT NULL, month TEXT NOT NULL, amount REAL NOT NULL)")
        .execute(&mut db)
        .await?;
    for (company, department, month, amount) in SPEND {
        sqlx::query("INSERT INTO spend (company, department, month, amount) VALUES (?1, ?2, ?3, ?4)")
            .bind(company)
            .bind(department)
            .bind(month)
            .bind(amount)
            .execute(&mut db)
            .await?;
    }
    db.close().await?;
    Ok(())
}

/// A client acting as Contoso's admin in the sandbox: a refresh token the sandbox issues, redeemed as the
/// demo app at its token endpoint (the consent an admin gives on first sign-in, granted first).
async fn admin_client(sandbox: &Sandbox) -> anyhow::Result<PowerBiClient> {
    let base = sandbox.base_url();
    let tenant = demo_id("tenant:contoso");
    let admin = demo_id(&format!("user:{ADMIN_UPN}"));
    let client_id = pbi_sandbox::demo_client_id();
    let scopes: Vec<String> = pbi_server::PERMISSIONS.iter().map(|p| format!("https://analysis.windows.net/powerbi/api/{p}")).collect();
    let permissions = pbi_server::PERMISSIONS.iter().map(|p| (*p).to_owned()).collect();
    sandbox.control(SandboxCommand::GrantConsent { tenant, client_id, user: Some(admin), scopes: permissions })?;
    let scope = format!("{} offline_access", scopes.join(" "));
    let issued = sandbox.control(SandboxCommand::IssueRefreshToken { user: admin, client_id, scope: scope.clone() })?;
    let refresh = issued["refreshToken"].as_str().context("the sandbox issued no refresh token")?;
    let token_url = format!("{base}/{}/oauth2/v2.0/token", demo::CONTOSO_DOMAIN);
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", &client_id.to_string()),
        ("client_secret", demo::APP_SECRET),
        ("refresh_token", refresh),
        ("scope", &scope),
    ];
    let answer: Value = reqwest::Client::new().post(&token_url).form(&form).send().await?.error_for_status()?.json().await?;
    let access = answer["access_token"].as_str().context("the sandbox's token endpoint gave no access token")?;
    let cloud = Cloud::custom(url::Url::parse(base)?);
    Ok(PowerBiClient::new(&cloud, Arc::new(StaticToken(AccessToken::new(access)))))
}

/// The sandbox's visual for each kind's template, reading the kind's push table.
fn template_visual(kind: VisualKind) -> Visual {
    let (visual, value, category) = match kind {
        VisualKind::SingleValue => (SandboxVisual::Card, Some("Value"), None),
        VisualKind::CategorySeries => (SandboxVisual::Bar, Some("Value"), Some("Category")),
        VisualKind::TimeSeries => (SandboxVisual::Line, Some("Value"), Some("Date")),
        VisualKind::Table => (SandboxVisual::Table, None, None),
    };
    Visual { kind: visual, table: "Item".into(), value: value.map(str::to_owned), category: category.map(str::to_owned) }
}

async fn complete_templates(store: &Store, sandbox: &Sandbox, now: i64) -> anyhow::Result<()> {
    let client = admin_client(sandbox).await?;
    let set = templates::create(&client, "pbi-bridge templates").await?;
    templates::keep_made(store, &set, now).await?;
    for &(kind, dataset) in &set.datasets {
        let report = sandbox.control(SandboxCommand::CreateReport {
            id: None,
            workspace: set.workspace,
            name: format!("Template: {}", kind.label()),
            dataset: Some(dataset),
        })?["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .context("the sandbox made no report")?;
        let pinned = SandboxCommand::PinVisual {
            user: ADMIN_UPN.into(),
            report,
            dashboard: set.dashboard,
            title: kind.label().to_owned(),
            row_span: 2,
            col_span: 2,
            visual: template_visual(kind),
        };
        sandbox.control(pinned)?;
    }
    for user in PINNERS {
        let principal = demo_id(&format!("user:{user}@{}", demo::CONTOSO_DOMAIN));
        sandbox.control(SandboxCommand::AddWorkspaceMember { workspace: set.workspace, principal, role: WorkspaceRole::Contributor })?;
    }
    let states = templates::check_now(&client, &set).await?;
    templates::keep_checked(store, &states, now).await?;
    // The consent was the sandbox's shortcut for this set-up only: a person who signs in as the admin is asked
    // for it, as on a first sign-in.
    let admin = demo_id(&format!("user:{ADMIN_UPN}"));
    sandbox.control(SandboxCommand::RevokeGrants { user: admin, client_id: Some(pbi_sandbox::demo_client_id()) })?;
    Ok(())
}
