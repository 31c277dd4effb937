//! The seeds: `empty`, and `demo` (Contoso and Fabrikam, their users, apps, workspaces and content).
//! Demo ids are derived from names, so they are the same in every run and README examples can use them.

use crate::control::{Command, Member};
use crate::ids::stable;
use crate::model::{Dataflow, Datasource, TenantSettings, Visual, VisualKind, WorkspaceRole, World};
use pbi_clock::Clock;
use serde_json::{Value, json};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Seed {
    #[default]
    Demo,
    Empty,
}

impl std::str::FromStr for Seed {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "demo" => Ok(Seed::Demo),
            "empty" => Ok(Seed::Empty),
            other => Err(format!("unknown seed '{other}': use demo or empty")),
        }
    }
}

/// Well-known demo values, for tests and docs.
pub mod demo {
    pub const CONTOSO_DOMAIN: &str = "contoso.onmicrosoft.com";
    pub const FABRIKAM_DOMAIN: &str = "fabrikam.onmicrosoft.com";
    pub const APP_SECRET: &str = "demo~pbi-bridge-app-secret-0001";
    pub const EXPIRED_APP_SECRET: &str = "demo~pbi-bridge-expired-secret";
    pub const AUTOMATION_SECRET: &str = "demo~automation-secret-0001";
    /// The delegated permissions the demo app is configured with: seed 000's (Dynamics 365), and seed 001's
    /// writes (cloning tiles onto dashboards, deleting reports, creating a workspace).
    pub const PERMISSIONS: &[&str] = &[
        "Content.Create",
        "Dashboard.Read.All",
        "Dashboard.ReadWrite.All",
        "Dataset.Read.All",
        "Dataset.ReadWrite.All",
        "Report.Read.All",
        "Report.ReadWrite.All",
        "Workspace.Read.All",
        "Workspace.ReadWrite.All",
    ];
}

pub fn apply_seed(seed: Seed, world: &mut World, clock: &Clock, base_url: &str) {
    if seed == Seed::Demo {
        demo_seed(world, clock, base_url);
    }
}

pub use apply_seed as apply;

fn run(world: &mut World, clock: &Clock, command: Command) -> Uuid {
    let result = super::control::apply(world, clock, command).expect("the demo seed is valid");
    let id = result.get("id").or_else(|| result.get("clientId")).and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok());
    id.unwrap_or_default()
}

fn member(principal: Uuid, role: WorkspaceRole) -> Member {
    Member { principal, role }
}

fn visual(kind: VisualKind, table: &str, value: Option<&str>, category: Option<&str>) -> Visual {
    Visual { kind, table: table.into(), value: value.map(Into::into), category: category.map(Into::into) }
}

struct Tenants {
    contoso: Uuid,
    fabrikam: Uuid,
}

fn demo_seed(world: &mut World, clock: &Clock, base_url: &str) {
    let tenants = directory(world, clock, base_url);
    content(world, clock, &tenants);
}

fn user(world: &mut World, clock: &Clock, tenant: Uuid, upn: &str, name: &str, licensed: bool, admin: bool) -> Uuid {
    let password = format!("{}-password", upn.split('@').next().unwrap_or(upn));
    run(
        world,
        clock,
        Command::CreateUser {
            id: Some(stable(&format!("user:{upn}"))),
            tenant,
            upn: upn.into(),
            display_name: Some(name.into()),
            password,
            power_bi_licensed: licensed,
            power_bi_admin: admin,
            directory_admin: admin,
        },
    )
}

fn directory(world: &mut World, clock: &Clock, base_url: &str) -> Tenants {
    let apps_group = stable("group:contoso:power-bi-apps");
    let settings = TenantSettings {
        users_can_consent: true,
        service_principals_enabled: true,
        service_principals_group: Some(apps_group),
        service_principals_admin_apis: true,
        service_principals_admin_apis_group: Some(apps_group),
        detailed_metadata: true,
        dax_and_mashup: true,
    };
    let contoso = run(
        world,
        clock,
        Command::CreateTenant {
            id: Some(stable("tenant:contoso")),
            display_name: "Contoso".into(),
            domain: demo::CONTOSO_DOMAIN.into(),
            unmanaged: false,
            settings: Some(settings),
        },
    );
    let fabrikam = run(
        world,
        clock,
        Command::CreateTenant {
            id: Some(stable("tenant:fabrikam")),
            display_name: "Fabrikam".into(),
            domain: demo::FABRIKAM_DOMAIN.into(),
            unmanaged: false,
            settings: None,
        },
    );
    user(world, clock, contoso, "admin@contoso.onmicrosoft.com", "Contoso Admin", true, true);
    user(world, clock, contoso, "alice@contoso.onmicrosoft.com", "Alice Johnson", true, false);
    user(world, clock, contoso, "bob@contoso.onmicrosoft.com", "Bob Smith", true, false);
    user(world, clock, contoso, "carol@contoso.onmicrosoft.com", "Carol Unlicensed", false, false);
    user(world, clock, fabrikam, "dave@fabrikam.onmicrosoft.com", "Dave Fabrikam", true, true);

    let redirect_uris = vec![
        format!("{base_url}/_sandbox/callback"),
        "http://localhost:8080/oauth/callback".to_owned(),
        "http://127.0.0.1:8080/oauth/callback".to_owned(),
    ];
    let app = run(
        world,
        clock,
        Command::CreateApp {
            client_id: Some(stable("app:pbi-bridge")),
            tenant: contoso,
            display_name: "pbi-bridge".into(),
            multi_tenant: false,
            redirect_uris,
            delegated_permissions: demo::PERMISSIONS.iter().map(|s| (*s).to_owned()).collect(),
        },
    );
    run(
        world,
        clock,
        Command::AddSecret {
            client_id: app,
            value: Some(demo::APP_SECRET.into()),
            description: Some("pbi-bridge demo".into()),
            expires_in_days: 365,
        },
    );
    run(
        world,
        clock,
        Command::AddSecret {
            client_id: app,
            value: Some(demo::EXPIRED_APP_SECRET.into()),
            description: Some("last year's secret".into()),
            expires_in_days: -10,
        },
    );
    let automation = run(
        world,
        clock,
        Command::CreateApp {
            client_id: Some(stable("app:pbi-bridge-automation")),
            tenant: contoso,
            display_name: "pbi-bridge automation".into(),
            multi_tenant: false,
            redirect_uris: vec![],
            delegated_permissions: vec![],
        },
    );
    run(
        world,
        clock,
        Command::AddSecret {
            client_id: automation,
            value: Some(demo::AUTOMATION_SECRET.into()),
            description: Some("automation".into()),
            expires_in_days: 365,
        },
    );
    let automation_sp = stable(&format!("sp:{contoso}:{automation}"));
    run(
        world,
        clock,
        Command::CreateSecurityGroup {
            id: Some(apps_group),
            tenant: contoso,
            display_name: "Power BI Apps".into(),
            members: vec![automation_sp],
        },
    );
    Tenants { contoso, fabrikam }
}

fn sales_definition(clock: &Clock) -> Value {
    let regions = ["North", "South", "East", "West"];
    let products = ["Bikes", "Helmets", "Gloves"];
    let companies = ["USMF", "DEMF", "GBSI"];
    let start = clock.now().date().replace_day(1).unwrap_or(clock.now().date());
    let mut rows = Vec::new();
    for month in 0..12u8 {
        let date = start.checked_sub(time::Duration::days(30 * i64::from(11 - month))).unwrap_or(start);
        for (r, region) in regions.iter().enumerate() {
            let n = usize::from(month) * 4 + r;
            rows.push(json!({
                "Date": format!("{date}T00:00:00Z"),
                "Region": region,
                "Product": products[n % 3],
                "Amount": 1000.0 + (n * 137 % 900) as f64 + f64::from(month) * 50.0,
                "Units": 10 + (n * 7 % 40) as i64,
                "CompanyId": companies[n % 3],
            }));
        }
    }
    json!({
        "name": "Retail Sales",
        "defaultMode": "Push",
        "tables": [
            {"name": "Sales", "columns": [
                {"name": "Date", "dataType": "DateTime"}, {"name": "Region", "dataType": "String"},
                {"name": "Product", "dataType": "String"}, {"name": "Amount", "dataType": "Double", "formatString": "$#,##0"},
                {"name": "Units", "dataType": "Int64"}, {"name": "CompanyId", "dataType": "String"}],
             "measures": [{"name": "Total Sales", "expression": "SUM(Sales[Amount])"}],
             "rows": rows},
            {"name": "Company", "columns": [{"name": "ID", "dataType": "String"}, {"name": "Name", "dataType": "String"}],
             "rows": [{"ID": "USMF", "Name": "Contoso Entertainment USA"}, {"ID": "DEMF", "Name": "Contoso Entertainment Germany"}, {"ID": "GBSI", "Name": "Contoso Retail UK"}]}
        ],
        "relationships": [{"name": "SalesCompany", "fromTable": "Sales", "fromColumn": "CompanyId", "toTable": "Company", "toColumn": "ID"}]
    })
}

fn simple_definition(name: &str, table: &str, columns: &[(&str, &str)], rows: Vec<Value>) -> Value {
    let columns: Vec<Value> = columns.iter().map(|(n, t)| json!({"name": n, "dataType": t})).collect();
    json!({"name": name, "tables": [{"name": table, "columns": columns, "rows": rows}]})
}

fn content(world: &mut World, clock: &Clock, tenants: &Tenants) {
    let contoso = tenants.contoso;
    let [admin, alice, bob] = ["admin", "alice", "bob"].map(|n| stable(&format!("user:{n}@contoso.onmicrosoft.com")));
    let automation_sp = stable(&format!("sp:{contoso}:{}", stable("app:pbi-bridge-automation")));

    let sales_ws = run(
        world,
        clock,
        Command::CreateWorkspace {
            id: Some(stable("ws:sales")),
            tenant: contoso,
            name: "Sales Analytics".into(),
            personal_owner: None,
            members: vec![
                member(alice, WorkspaceRole::Admin),
                member(bob, WorkspaceRole::Viewer),
                member(automation_sp, WorkspaceRole::Member),
            ],
            dedicated_capacity: false,
        },
    );
    let sales = run(
        world,
        clock,
        Command::CreateDataset {
            id: Some(stable("ds:retail-sales")),
            workspace: sales_ws,
            definition: sales_definition(clock),
            push: true,
            basic_fifo: false,
            configured_by: Some("alice@contoso.onmicrosoft.com".into()),
        },
    );
    let sales_report = run(
        world,
        clock,
        Command::CreateReport {
            id: Some(stable("report:retail-sales")),
            workspace: sales_ws,
            name: "Retail Sales Report".into(),
            dataset: Some(sales),
        },
    );
    let overview = run(
        world,
        clock,
        Command::CreateDashboard { id: Some(stable("dash:sales-overview")), workspace: sales_ws, name: "Sales Overview".into() },
    );
    for (slug, title, v, rows, cols) in [
        ("total", "Total Sales", visual(VisualKind::Card, "Sales", Some("Amount"), None), 1, 1),
        ("by-region", "Sales by Region", visual(VisualKind::Bar, "Sales", Some("Amount"), Some("Region")), 2, 2),
        ("by-month", "Sales by Month", visual(VisualKind::Line, "Sales", Some("Amount"), Some("Date")), 2, 3),
        ("recent", "Recent Sales", visual(VisualKind::Table, "Sales", None, None), 2, 2),
    ] {
        run(
            world,
            clock,
            Command::CreateTile {
                id: Some(stable(&format!("tile:sales:{slug}"))),
                dashboard: overview,
                title: title.into(),
                report: Some(sales_report),
                dataset: None,
                row_span: rows,
                col_span: cols,
                visual: v,
            },
        );
    }

    let finance_ws = run(
        world,
        clock,
        Command::CreateWorkspace {
            id: Some(stable("ws:finance")),
            tenant: contoso,
            name: "Finance".into(),
            personal_owner: None,
            members: vec![member(bob, WorkspaceRole::Admin), member(admin, WorkspaceRole::Member)],
            dedicated_capacity: false,
        },
    );
    let budget_rows = ["Marketing", "Engineering", "Sales", "Support"]
        .iter()
        .enumerate()
        .map(|(i, d)| json!({"Department": d, "Planned": 50000.0 + i as f64 * 12000.0, "Actual": 47000.0 + i as f64 * 13500.0}))
        .collect();
    let budget = run(
        world,
        clock,
        Command::CreateDataset {
            id: Some(stable("ds:budget")),
            workspace: finance_ws,
            definition: simple_definition(
                "Budget",
                "Budget",
                &[("Department", "String"), ("Planned", "Double"), ("Actual", "Double")],
                budget_rows,
            ),
            push: true,
            basic_fifo: true,
            configured_by: Some("bob@contoso.onmicrosoft.com".into()),
        },
    );
    let kpis = run(
        world,
        clock,
        Command::CreateDashboard { id: Some(stable("dash:finance-kpis")), workspace: finance_ws, name: "Finance KPIs".into() },
    );
    run(
        world,
        clock,
        Command::CreateTile {
            id: Some(stable("tile:finance:actual")),
            dashboard: kpis,
            title: "Actual Spend".into(),
            report: None,
            dataset: Some(budget),
            row_span: 1,
            col_span: 1,
            visual: visual(VisualKind::Card, "Budget", Some("Actual"), None),
        },
    );
    run(
        world,
        clock,
        Command::CreateTile {
            id: Some(stable("tile:finance:by-department")),
            dashboard: kpis,
            title: "Spend by Department".into(),
            report: None,
            dataset: Some(budget),
            row_span: 2,
            col_span: 2,
            visual: visual(VisualKind::Bar, "Budget", Some("Actual"), Some("Department")),
        },
    );

    let ops_ws = run(
        world,
        clock,
        Command::CreateWorkspace {
            id: Some(stable("ws:operations")),
            tenant: contoso,
            name: "Operations".into(),
            personal_owner: None,
            members: vec![member(admin, WorkspaceRole::Admin), member(alice, WorkspaceRole::Contributor)],
            dedicated_capacity: true,
        },
    );
    let stock_rows = [("Seattle", "Bikes", 120), ("Seattle", "Helmets", 340), ("Berlin", "Bikes", 75), ("London", "Gloves", 510)]
        .iter()
        .map(|(w, i, q)| json!({"Warehouse": w, "Item": i, "Quantity": q}))
        .collect();
    let inventory = run(
        world,
        clock,
        Command::CreateDataset {
            id: Some(stable("ds:inventory")),
            workspace: ops_ws,
            definition: simple_definition(
                "Inventory",
                "Stock",
                &[("Warehouse", "String"), ("Item", "String"), ("Quantity", "Int64")],
                stock_rows,
            ),
            push: false,
            basic_fifo: false,
            configured_by: Some("admin@contoso.onmicrosoft.com".into()),
        },
    );
    run(
        world,
        clock,
        Command::CreateReport {
            id: Some(stable("report:inventory")),
            workspace: ops_ws,
            name: "Inventory Report".into(),
            dataset: Some(inventory),
        },
    );
    let ops =
        run(world, clock, Command::CreateDashboard { id: Some(stable("dash:operations")), workspace: ops_ws, name: "Operations".into() });
    run(
        world,
        clock,
        Command::CreateTile {
            id: Some(stable("tile:ops:stock")),
            dashboard: ops,
            title: "Stock on Hand".into(),
            report: None,
            dataset: Some(inventory),
            row_span: 2,
            col_span: 3,
            visual: visual(VisualKind::Table, "Stock", None, None),
        },
    );
    lineage(world, clock, ops_ws, inventory);

    personal_content(world, clock, contoso, alice, "alice", "Alice's KPIs", "Targets", VisualKind::Card);
    personal_content(world, clock, contoso, bob, "bob", "Bob's Pipeline", "Pipeline", VisualKind::Bar);

    let fabrikam_ws = run(
        world,
        clock,
        Command::CreateWorkspace {
            id: Some(stable("ws:fabrikam-sales")),
            tenant: tenants.fabrikam,
            name: "Fabrikam Sales".into(),
            personal_owner: None,
            members: vec![member(stable("user:dave@fabrikam.onmicrosoft.com"), WorkspaceRole::Admin)],
            dedicated_capacity: false,
        },
    );
    let orders = run(
        world,
        clock,
        Command::CreateDataset {
            id: Some(stable("ds:fabrikam-orders")),
            workspace: fabrikam_ws,
            definition: simple_definition(
                "Orders",
                "Orders",
                &[("Customer", "String"), ("Total", "Double")],
                vec![json!({"Customer": "Northwind", "Total": 1250.0})],
            ),
            push: true,
            basic_fifo: false,
            configured_by: Some("dave@fabrikam.onmicrosoft.com".into()),
        },
    );
    let dash = run(
        world,
        clock,
        Command::CreateDashboard { id: Some(stable("dash:fabrikam")), workspace: fabrikam_ws, name: "Fabrikam Orders".into() },
    );
    run(
        world,
        clock,
        Command::CreateTile {
            id: Some(stable("tile:fabrikam:orders")),
            dashboard: dash,
            title: "Order Total".into(),
            report: None,
            dataset: Some(orders),
            row_span: 1,
            col_span: 1,
            visual: visual(VisualKind::Card, "Orders", Some("Total"), None),
        },
    );
}

#[allow(clippy::too_many_arguments)]
fn personal_content(
    world: &mut World,
    clock: &Clock,
    tenant: Uuid,
    user: Uuid,
    slug: &str,
    dashboard: &str,
    table: &str,
    kind: VisualKind,
) {
    let ws = run(
        world,
        clock,
        Command::CreateWorkspace {
            id: Some(stable(&format!("my-workspace:{user}"))),
            tenant,
            name: format!("PersonalWorkspace {slug}"),
            personal_owner: Some(user),
            members: vec![],
            dedicated_capacity: false,
        },
    );
    let rows = ["Q1", "Q2", "Q3", "Q4"].iter().enumerate().map(|(i, q)| json!({"Quarter": q, "Value": 100.0 + i as f64 * 25.0})).collect();
    let ds = run(
        world,
        clock,
        Command::CreateDataset {
            id: Some(stable(&format!("ds:{slug}:{table}"))),
            workspace: ws,
            definition: simple_definition(table, table, &[("Quarter", "String"), ("Value", "Double")], rows),
            push: true,
            basic_fifo: false,
            configured_by: Some(format!("{slug}@contoso.onmicrosoft.com")),
        },
    );
    let report = run(
        world,
        clock,
        Command::CreateReport {
            id: Some(stable(&format!("report:{slug}"))),
            workspace: ws,
            name: format!("{table} Report"),
            dataset: Some(ds),
        },
    );
    let dash =
        run(world, clock, Command::CreateDashboard { id: Some(stable(&format!("dash:{slug}"))), workspace: ws, name: dashboard.into() });
    run(
        world,
        clock,
        Command::CreateTile {
            id: Some(stable(&format!("tile:{slug}:1"))),
            dashboard: dash,
            title: format!("{table} by Quarter"),
            report: Some(report),
            dataset: None,
            row_span: 2,
            col_span: 2,
            visual: visual(kind, table, Some("Value"), Some("Quarter")),
        },
    );
}

/// A dataflow reading from a SQL database feeds the Inventory dataset, so scans have lineage to show.
fn lineage(world: &mut World, clock: &Clock, workspace: Uuid, dataset: Uuid) {
    let source = Datasource {
        id: stable("datasource:sql-inventory"),
        datasource_type: "Sql".into(),
        server: "sql.contoso.example".into(),
        database: "Inventory".into(),
    };
    let flow = Dataflow {
        id: stable("dataflow:inventory-staging"),
        workspace,
        name: "Inventory Staging".into(),
        configured_by: "admin@contoso.onmicrosoft.com".into(),
        modified: clock.now(),
        datasource_usages: vec![source.id],
    };
    if let Some(ds) = world.datasets.get_mut(&dataset) {
        ds.upstream_dataflows.push(flow.id);
        ds.expressions.push(("InventorySource".into(), "let Source = PowerPlatform.Dataflows(null) in Source".into()));
        if let Some(table) = ds.tables.first_mut() {
            table.source_expression = Some("let Source = Sql.Database(\"sql.contoso.example\", \"Inventory\") in Source".into());
        }
    }
    world.datasources.insert(source.id, source);
    world.dataflows.insert(flow.id, flow);
}
