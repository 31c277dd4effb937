//! Seed 001's deliveries on the server's engine, against the sandbox: an item pinned to Alice's dashboard (the
//! templates made as an administrator makes them: the workspace, datasets and dashboard through the API, each
//! visual pinned by a person) is delivered on its schedule, each delivery replacing the tile's rows; and every
//! fault ends as a state with SSRS's message, not a loop of failures.

use crate::connect::{World, working_world_with_scopes};
use crate::keepalive::{alice_connected, run_due_work};
use pbi_jobs::{JobState, NewJob};
use pbi_powerbi::{Cloud, PowerBiClient, RetryPolicy, Workspace};
use pbi_sandbox::{Command, Visual, VisualKind as SandboxVisual, demo_id};
use pbi_store::{DataSourceKind, ItemSource, NewDataSource, NewItem, NewSubscription, PinTarget, Subscription, SubscriptionState};
use pbi_subscriptions::deliveries::{Deliver, schedule_of, schedule_owner};
use pbi_subscriptions::kind::VisualKind;
use pbi_subscriptions::push_target::{self, Pinned, Place};
use pbi_subscriptions::templates::{self, TemplateState};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const DASHBOARD: &str = "IT Spend Analysis Sample";

/// Alice connected, an item pinned to her new dashboard in Sales, and its subscription (hourly, on the hour).
struct Pin {
    world: World,
    /// Alice's pbi-bridge session.
    alice: String,
    client: PowerBiClient,
    subscription: Subscription,
    pinned: Pinned,
    item: Uuid,
}

/// A client acting as Alice through her connection, as the server's own calls do.
fn client_as(world: &World, connection: Uuid, owner: pbi_store::Owner) -> PowerBiClient {
    let cloud = Cloud::custom(url::Url::parse(world.sandbox.base_url()).expect("url"));
    let tokens = pbi_auth::ConnectionTokens::new(world.app.auth(), connection, owner);
    PowerBiClient::new(&cloud, Arc::new(tokens)).with_retry(RetryPolicy::none())
}

/// What an administrator does in Power BI for the category-series template (the one step no API does): a
/// report on the kind's template dataset, and its bar chart pinned to the template dashboard.
fn pin_template_visual(world: &World, upn: &str, workspace: Uuid, dataset: Uuid, dashboard: Uuid) {
    let report = world
        .sandbox
        .control(Command::CreateReport { id: None, workspace, name: "Bar template".into(), dataset: Some(dataset) })
        .expect("report")["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("report id");
    let visual = Visual { kind: SandboxVisual::Bar, table: "Item".into(), value: Some("Value".into()), category: Some("Category".into()) };
    let pinned =
        Command::PinVisual { user: upn.into(), report, dashboard, title: "Values by category".into(), row_span: 2, col_span: 2, visual };
    world.sandbox.control(pinned).expect("pinned by a person");
}

/// The category-series template, as the templates page has an administrator make it (Alice here).
async fn category_template(world: &World, client: &PowerBiClient) -> push_target::Template {
    let set = templates::create(client, "pbi-bridge templates").await.expect("templates workspace");
    assert!(templates::check_now(client, &set).await.expect("check").iter().all(|(_, s)| *s == TemplateState::NotPinned));
    let dataset = set.datasets.iter().find(|(k, _)| *k == VisualKind::CategorySeries).expect("its dataset").1;
    pin_template_visual(world, "alice@contoso.onmicrosoft.com", set.workspace, dataset, set.dashboard);
    let states = templates::check_now(client, &set).await.expect("check");
    match states.iter().find(|(k, _)| *k == VisualKind::CategorySeries) {
        Some((_, TemplateState::Ready(template))) => *template,
        other => panic!("the category template is not ready: {other:?}"),
    }
}

fn spend_item(name: &str, source: ItemSource, data_source_id: Option<Uuid>, query: Option<&str>) -> NewItem {
    let definition = json!({
        "name": name, "kind": "category-series", "value": "Amount", "category": "Department",
        "columns": [{"name": "Department", "type": "text"}, {"name": "Amount", "type": "decimal"}],
    });
    NewItem {
        name: name.into(),
        definition: definition.to_string(),
        source,
        data_source_id,
        query: query.map(Into::into),
        parameters: "{}".into(),
        everyone: true,
        pinners: vec![],
    }
}

async fn pinned_item(item: NewItem) -> Pin {
    let world = working_world_with_scopes(pbi_server::PERMISSIONS).await;
    let (alice, connection) = alice_connected(&world).await;
    let stored = world.app.store.connection(connection).await.expect("connection");
    let pbi_store::Owner::User(owner) = stored.account.owner else { panic!("a user's connection") };
    let client = client_as(&world, connection, stored.account.owner);
    let template = category_template(&world, &client).await;
    let sales = demo_id("ws:sales");
    let dashboard = client.add_dashboard(Workspace::Group(sales), DASHBOARD).await.expect("dashboard");
    let place = Place { workspace: Workspace::Group(sales), dashboard: dashboard.id, name: item.name.clone() };
    let pinned = push_target::pin(&client, VisualKind::CategorySeries, &template, &place).await.expect("pinned");
    let now = world.app.clock.unix();
    let item = world.app.store.add_item(&item, now).await.expect("item").id;
    let new = NewSubscription {
        owner,
        connection_id: connection,
        item_id: item,
        parameters: "{}".into(),
        workspace_id: Some(sales),
        workspace_name: "Sales".into(),
        dashboard_id: dashboard.id,
        dashboard_name: DASHBOARD.into(),
        frequency: json!({"every": "hourly", "minute": 0}).to_string(),
        time_zone: "Europe/Berlin".into(),
    };
    let subscription = world.app.store.add_subscription(&new, now).await.expect("subscription");
    let target = PinTarget { dataset_id: Some(pinned.dataset.clone()), report_id: pinned.report, tile_id: pinned.tile };
    world.app.store.set_pin_target(subscription.id, &target, now).await.expect("target");
    world.app.engine().schedule(&schedule_of(&subscription).expect("spec")).await.expect("scheduled");
    let subscription = world.app.store.subscription(subscription.id).await.expect("read");
    Pin { world, alice, client, subscription, pinned, item }
}

impl Pin {
    async fn push(&self, rows: Value) {
        self.world.app.store.set_pushed_rows(self.item, &rows.to_string(), self.world.app.clock.unix()).await.expect("rows");
    }

    /// The pin's table in the sandbox: (Category, Value) of each row, in order.
    async fn table(&self) -> Vec<(String, f64)> {
        let url = format!("{}/_sandbox/datasets/{}/tables/Item/rows", self.world.sandbox.base_url(), self.pinned.dataset);
        let answer: Value = self.world.app.http.get(url).send().await.expect("GET").json().await.expect("JSON");
        answer["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| (r["Category"].as_str().unwrap_or_default().to_owned(), r["Value"].as_f64().unwrap_or(f64::NAN)))
            .collect()
    }

    /// "Run now": one delivery, waited for to its end (after whatever the schedule made due, so that it is
    /// this job that delivers).
    async fn run_now(&self) -> Subscription {
        let engine = self.world.app.engine();
        run_due_work(&engine).await;
        let active = self.world.app.store.subscription(self.subscription.id).await.expect("read").state == SubscriptionState::Active;
        let job = engine.enqueue(NewJob::now(Deliver { subscription: self.subscription.id })).await.expect("enqueued");
        let ran = engine
            .wait_for(job.id, Duration::from_secs(30), |j| j.state.is_finished() || j.state == JobState::Retryable)
            .await
            .expect("ran");
        assert_eq!(ran.state, JobState::Completed, "{ran:?}");
        let carried = self.history().await.iter().any(|d| d.job_id == Some(job.id));
        assert_eq!(carried, active, "this job delivered, if the subscription was active");
        self.world.app.store.subscription(self.subscription.id).await.expect("read")
    }

    async fn history(&self) -> Vec<pbi_store::Delivery> {
        self.world.app.store.deliveries_of(self.subscription.details.owner, self.subscription.id, None, 50).await.expect("history")
    }

    async fn scheduled(&self) -> bool {
        self.world.app.store.schedules_of(&schedule_owner(self.subscription.id)).await.expect("schedules").len() == 1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_item_is_delivered_on_its_schedule_and_each_delivery_replaces_the_rows() {
    let pin = pinned_item(spend_item("Chart2", ItemSource::Pushed, None, None)).await;
    pin.push(json!([{"Department": "IT", "Amount": 120.5}, {"Department": "HR", "Amount": 80}])).await;
    let engine = pin.world.app.engine();
    run_due_work(&engine).await;
    assert!(pin.table().await.is_empty(), "nothing before the first hour");

    pin.world.app.clock.advance(time::Duration::hours(1)).expect("manual clock");
    run_due_work(&engine).await;
    assert_eq!(pin.table().await, [("IT".to_owned(), 120.5), ("HR".to_owned(), 80.0)]);
    let history = pin.history().await;
    assert_eq!(history.len(), 1, "{history:?}");
    assert_eq!((history[0].outcome.as_str(), history[0].row_count, history[0].post_count), ("delivered", Some(2), 1));
    assert_eq!(history[0].request_ids.len(), 2, "the clear's and the POST's RequestIds: {history:?}");

    // The application sends new rows; the next hour's delivery replaces the old ones.
    pin.push(json!([{"Department": "Sales", "Amount": 7}, {"Department": "IT", "Amount": 1}, {"Department": "R&D", "Amount": 2.25}])).await;
    pin.world.app.clock.advance(time::Duration::hours(1)).expect("manual clock");
    run_due_work(&engine).await;
    assert_eq!(pin.table().await, [("Sales".to_owned(), 7.0), ("IT".to_owned(), 1.0), ("R&D".to_owned(), 2.25)]);
    let subscription = pin.world.app.store.subscription(pin.subscription.id).await.expect("read");
    assert_eq!((subscription.state, subscription.last_error), (SubscriptionState::Active, None));
    assert_eq!(pin.history().await.len(), 2);
    let schedule = &pin.world.app.store.schedules_of(&schedule_owner(pin.subscription.id)).await.expect("schedules")[0];
    assert_eq!(schedule.last_outcome.as_deref(), Some("completed"), "{schedule:?}");

    // Rows that do not fit the item's columns fail the run before anything is sent, naming the row and column.
    pin.push(json!([{"Department": "IT", "Amount": 3}, {"Department": "HR", "Amount": "a lot"}])).await;
    let failed = pin.run_now().await;
    let error = failed.last_error.expect("an error");
    assert!(
        error.starts_with("PowerBI Delivery error: dashboard: IT Spend Analysis Sample, visual: Chart2, error: The item's data does not match its columns: row 2, column 'Amount'"),
        "{error}"
    );
    assert_eq!(failed.state, SubscriptionState::Active, "the next run tries again");
    assert_eq!(pin.table().await.len(), 3, "the tile keeps the last delivered rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_deleted_in_power_bi_fails_three_runs_and_then_disables_the_subscription() {
    let pin = pinned_item(spend_item("Chart2", ItemSource::Pushed, None, None)).await;
    pin.push(json!([{"Department": "IT", "Amount": 1}])).await;
    // To five past the next hour, so that the three runs below, a minute apart, meet no scheduled occurrence
    // (hourly at :00) whatever the time the test starts at; that occurrence delivers here.
    let minute = i64::from(pin.world.app.clock.now().minute());
    pin.world.app.clock.advance(time::Duration::minutes(60 - minute + 5)).expect("manual clock");
    assert_eq!(pin.run_now().await.last_error, None);
    pin.client.delete_dataset(Workspace::Group(demo_id("ws:sales")), &pin.pinned.dataset).await.expect("deleted in Power BI");
    for run in 1..=3 {
        // A minute apart, so that the history's order is the runs' order.
        pin.world.app.clock.advance(time::Duration::minutes(1)).expect("manual clock");
        let after = pin.run_now().await;
        let error = after.last_error.clone().expect("an error");
        assert!(error.contains("error: The dataset cannot be found in Power BI"), "run {run}: {error}");
        assert_eq!(after.missing_runs, run);
        let expected = if run < 3 { SubscriptionState::Active } else { SubscriptionState::Disabled };
        assert_eq!(after.state, expected, "run {run}");
    }
    assert!(!pin.scheduled().await, "a disabled subscription's schedule is stopped");
    let history = pin.history().await;
    let outcomes: Vec<&str> = history.iter().map(|d| d.outcome.as_str()).collect();
    assert_eq!(outcomes, ["failed", "failed", "failed", "delivered", "delivered"], "the occurrence and Run now, then three runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_must_sign_in_again_is_paused_until_they_do_and_an_unregistered_integration_pauses_too() {
    let pin = pinned_item(spend_item("Chart2", ItemSource::Pushed, None, None)).await;
    pin.push(json!([{"Department": "IT", "Amount": 1}])).await;
    // Alice withdraws her consent in Entra; her access token runs out an hour later.
    pin.world
        .sandbox
        .control(Command::RevokeGrants { user: demo_id("user:alice@contoso.onmicrosoft.com"), client_id: None })
        .expect("revoked");
    pin.world.app.clock.advance(time::Duration::minutes(90)).expect("manual clock");
    let paused = pin.run_now().await;
    assert_eq!(paused.state, SubscriptionState::Paused);
    assert!(paused.state_reason.as_deref().is_some_and(|r| r.starts_with("Sign in to Power BI again")), "{paused:?}");
    let error = paused.last_error.expect("an error");
    assert!(error.contains("visual: Chart2, error: Your Power BI sign-in can no longer be used"), "{error}");
    assert!(!pin.scheduled().await, "a paused subscription's schedule is stopped until it resumes");
    assert_eq!(pin.history().await[0].outcome, "paused");
    let calls = pin.world.sandbox.requests().iter().filter(|r| r.path.contains("/tables/Item/rows")).count();
    assert_eq!(calls, 0, "nothing was sent to Power BI");

    // She signs in again: the subscription resumes by itself and delivers at once.
    let back = pin.world.get_started(&pin.alice, "alice@contoso.onmicrosoft.com").await;
    let landed = pin.world.app.http.get(&back).header("cookie", &pin.alice).send().await.expect("callback");
    let settings = pin.world.app.http.get(pin.world.app.url("/settings")).header("cookie", &pin.alice).send().await.expect("GET");
    assert_eq!(landed.status(), 303);
    assert!(settings.text().await.expect("page").contains("Your paused subscription resumed and is delivering now."));
    run_due_work(&pin.world.app.engine()).await;
    let resumed = pin.world.app.store.subscription(pin.subscription.id).await.expect("read");
    assert_eq!((resumed.state, resumed.last_error), (SubscriptionState::Active, None), "delivered again");
    assert!(pin.scheduled().await, "scheduled again");
    assert_eq!(pin.history().await.iter().filter(|d| d.outcome == "delivered").count(), 1);

    // Another pin; then the administrator disables the Power BI integration.
    let pin = pinned_item(spend_item("Chart3", ItemSource::Pushed, None, None)).await;
    pin.push(json!([{"Department": "IT", "Amount": 1}])).await;
    let mut registration = pin.world.app.store.registrations(false).await.expect("registrations").remove(0);
    registration.details.enabled = false;
    pin.world.app.store.update_registration(registration.id, &registration.details, pin.world.app.clock.unix()).await.expect("disabled");
    let paused = pin.run_now().await;
    assert_eq!(paused.state, SubscriptionState::Paused);
    let error = paused.last_error.expect("an error");
    assert!(error.contains("error: The delivery extension for this subscription could not be loaded: the registration"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistering_on_the_page_says_how_many_subscriptions_it_pauses_and_registering_again_resumes_them() {
    use crate::admin_page::post_form;
    let pin = pinned_item(spend_item("Chart2", ItemSource::Pushed, None, None)).await;
    pin.push(json!([{"Department": "IT", "Amount": 1}])).await;
    let app = &pin.world.app;
    let admin = app.session("admin").await;
    let token = pin.world.api_token(&admin, "ops").await;
    let (_, page) = app.page(&admin, "/admin/powerbi").await;
    assert!(
        page.contains("1 active subscription pauses at their next delivery")
            && page.contains(r#"data-confirm="Unregister? 1 subscription pauses"#),
        "{page}"
    );
    let (status, body) = call(&pin.world, &token, reqwest::Method::GET, "/admin/powerbi", None).await;
    assert_eq!((status, body["subscriptionsToPause"].clone()), (200, json!(1)), "{body}");

    let page = post_form(app, &admin, "/admin/powerbi/unregister", &[]).await;
    assert!(
        page.contains("Unregistered: users can no longer connect") && page.contains("1 subscription pauses at its next delivery"),
        "{page}"
    );
    assert!(page.contains(r#"id="register""#) && !page.contains(r#"id="unregister""#), "{page}");
    let paused = pin.run_now().await;
    assert_eq!(paused.state, SubscriptionState::Paused);
    assert!(paused.last_error.is_some_and(|e| e.contains("The delivery extension for this subscription could not be loaded")));

    let page = post_form(app, &admin, "/admin/powerbi/register", &[]).await;
    assert!(page.contains("Registered again: users can connect. 1 paused subscription resumed and is delivering now."), "{page}");
    run_due_work(&app.engine()).await;
    let resumed = app.store.subscription(pin.subscription.id).await.expect("read");
    assert_eq!((resumed.state, resumed.last_error), (SubscriptionState::Active, None), "delivered again");
    assert!(pin.scheduled().await, "scheduled again");
    let (_, audit) = call(&pin.world, &token, reqwest::Method::GET, "/admin/audit", None).await;
    let changes = audit["entries"].as_array().expect("entries").iter().filter(|e| e["action"] == "powerbi.configuration.changed").count();
    assert_eq!(changes, 2, "both are in the audit log: {audit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_source_without_stored_credentials_fails_its_deliveries_saying_so() {
    let query = r#"SELECT department AS "Department", amount AS "Amount" FROM spend"#;
    let pin = pinned_item(spend_item("Chart2", ItemSource::Query, None, Some(query))).await;
    let store = &pin.world.app.store;
    let source = NewDataSource {
        name: "Finance".into(),
        kind: DataSourceKind::Postgres,
        location: "postgres://127.0.0.1:5432/finance".into(),
        username: Some("reporting".into()),
        credential_header: None,
    };
    let source = store.add_data_source(&source, None, pin.world.app.clock.unix()).await.expect("source").id;
    let mut item = store.item(pin.item).await.expect("item");
    item.details.data_source_id = Some(source);
    store.update_item(pin.item, &item.details, pin.world.app.clock.unix()).await.expect("updated");
    let failed = pin.run_now().await;
    let error = failed.last_error.expect("an error");
    assert!(error.contains("error: The item's data could not be read: the data source 'Finance' has no stored credentials"), "{error}");
    assert_eq!(failed.state, SubscriptionState::Active);
}

/// A SQLite database of (company, department, amount) rows for a data source; its path.
async fn spend_database(rows: &[(&str, &str, f64)]) -> std::path::PathBuf {
    use sqlx::ConnectOptions as _;
    let path = std::env::temp_dir().join(format!("pbi-bridge-spend-{}.sqlite", Uuid::new_v4()));
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path).create_if_missing(true);
    let mut db = options.connect().await.expect("a SQLite file");
    sqlx::query("CREATE TABLE spend (company TEXT NOT NULL, department TEXT NOT NULL, amount REAL NOT NULL)")
        .execute(&mut db)
        .await
        .expect("table");
    for (company, department, amount) in rows {
        sqlx::query("INSERT INTO spend VALUES (?1, ?2, ?3)")
            .bind(company)
            .bind(department)
            .bind(amount)
            .execute(&mut db)
            .await
            .expect("row");
    }
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_subscriptions_settings_moves_its_schedule_and_delivers_new_parameters_at_once() {
    use reqwest::Method;
    let file = spend_database(&[("USMF", "IT", 1.0), ("USMF", "HR", 2.0), ("DEMF", "IT", 3.0)]).await;
    let query = r#"SELECT department AS "Department", amount AS "Amount" FROM spend WHERE company = :company ORDER BY amount"#;
    let mut item = spend_item("Chart2", ItemSource::Query, None, Some(query));
    item.parameters = json!({"company": "USMF"}).to_string();
    let pin = pinned_item(item).await;
    let (world, store, id) = (&pin.world, &pin.world.app.store, pin.subscription.id);
    let source = NewDataSource {
        name: "Spend".into(),
        kind: DataSourceKind::Sqlite,
        location: file.to_string_lossy().into_owned(),
        username: None,
        credential_header: None,
    };
    let source = store.add_data_source(&source, None, world.app.clock.unix()).await.expect("source").id;
    let mut item = store.item(pin.item).await.expect("item");
    item.details.data_source_id = Some(source);
    store.update_item(pin.item, &item.details, world.app.clock.unix()).await.expect("updated");
    assert_eq!(pin.run_now().await.last_error, None);
    assert_eq!(pin.table().await, [("IT".to_owned(), 1.0), ("HR".to_owned(), 2.0)], "the item's default company");

    // New parameters are delivered at once.
    let token = world.api_token(&pin.alice, "settings").await;
    let path = format!("/subscriptions/{id}");
    let (status, changed) = call(world, &token, Method::PATCH, &path, Some(json!({"parameters": {"company": "DEMF"}}))).await;
    assert_eq!((status, &changed["parameters"]), (200, &json!({"company": "DEMF"})), "{changed}");
    run_due_work(&world.app.engine()).await;
    assert_eq!(pin.table().await, [("IT".to_owned(), 3.0)]);
    assert_eq!(pin.history().await.len(), 2);

    // Bad input names its field and changes nothing; Bob cannot change Alice's subscription.
    let before = store.subscription(id).await.expect("read").details;
    for (change, field) in [
        (json!({}), "enabled"),
        (json!({"frequency": {"every": "hourly", "minute": 75}}), "frequency.minute"),
        (json!({"frequency": {"every": "cron", "cron": "every day"}}), "frequency.cron"),
        (json!({"timeZone": "Mars/Olympus_Mons"}), "timeZone"),
        (json!({"parameters": {"region": "East"}}), "parameters.region"),
        (json!({"parameters": {"company": ["DEMF"]}}), "parameters.company"),
    ] {
        let (status, answer) = call(world, &token, Method::PATCH, &path, Some(change.clone())).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(field)), "{change}: {answer}");
    }
    let bob = world.api_token(&world.app.session("bob").await, "bob").await;
    let (status, _) = call(world, &bob, Method::PATCH, &path, Some(json!({"timeZone": "UTC"}))).await;
    assert_eq!(status, 404);
    assert_eq!(store.subscription(id).await.expect("read").details, before, "nothing changed");

    // A new frequency: the waiting hourly occurrence is cancelled, the first daily one waits for its time.
    let old_next = store.schedules_of(&schedule_owner(id)).await.expect("schedules")[0].next_run_at;
    let daily = json!({"frequency": {"every": "daily", "time": "06:30"}, "timeZone": "UTC"});
    let (status, changed) = call(world, &token, Method::PATCH, &path, Some(daily)).await;
    assert_eq!((status, changed["frequency"].as_str()), (200, Some("Daily at 06:30")), "{changed}");
    let next =
        time::OffsetDateTime::parse(changed["nextRunAt"].as_str().expect("next run"), &time::format_description::well_known::Rfc3339)
            .expect("a time");
    let now = world.app.clock.now();
    assert_eq!((next.hour(), next.minute()), (6, 30), "{next}");
    assert!(next > now && next - now <= time::Duration::days(1), "the next 06:30 UTC after {now}: {next}");
    let schedules = store.schedules_of(&schedule_owner(id)).await.expect("schedules");
    assert_eq!((schedules.len(), schedules[0].recurrence.as_str()), (1, "30 6 * * *"), "{schedules:?}");
    world.app.clock.set(time::OffsetDateTime::from_unix_timestamp(old_next).expect("a time")).expect("manual clock");
    run_due_work(&world.app.engine()).await;
    assert_eq!(pin.history().await.len(), 2, "nothing at the old hourly time");
    world.app.clock.set(next).expect("manual clock");
    run_due_work(&world.app.engine()).await;
    assert_eq!(pin.history().await.len(), 3, "the daily delivery");

    // In the page (signed in again: a day passed): the form shows the stored settings; a refused one keeps
    // what was typed.
    let alice = world.app.session("alice").await;
    let (_, page) = world.app.page(&alice, &path).await;
    assert!(
        page.contains(r#"<option value="daily" selected>"#)
            && page.contains(r#"id="time" value="06:30""#)
            && page.contains(r#"id="param-company" value="DEMF""#),
        "{page}"
    );
    let settings = format!("{path}/settings");
    let refused = submit(world, &alice, &settings, &[("every", "weekly"), ("time", "08:00"), ("param.company", "USMF")]).await;
    assert_eq!(refused.status(), 400);
    let refused = refused.text().await.expect("page");
    assert!(
        refused.contains("Choose at least one day of the week.") && refused.contains(r#"id="param-company" value="USMF""#),
        "{refused}"
    );
    let saved = submit(
        world,
        &alice,
        &settings,
        &[("every", "weekly"), ("day.monday", "on"), ("time", "08:00"), ("time_zone", "Europe/Berlin"), ("param.company", "USMF")],
    )
    .await;
    assert_eq!(saved.status(), 303);
    let (_, page) = world.app.page(&alice, &path).await;
    assert!(page.contains("Saved: Weekly on Monday at 08:00 (Europe/Berlin). It delivers now with the new parameters"), "{page}");
    run_due_work(&world.app.engine()).await;
    assert_eq!(pin.table().await, [("IT".to_owned(), 1.0), ("HR".to_owned(), 2.0)]);
    let _ = std::fs::remove_file(file);
}

/// A request with an API token, and its status and JSON body.
pub(crate) async fn call(world: &World, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = world.app.http.request(method, world.app.url(&format!("/api/v1{path}"))).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.expect("request");
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_api_an_admin_makes_the_templates_and_a_user_pins_runs_and_deletes_only_their_own() {
    use reqwest::Method;
    let world = working_world_with_scopes(pbi_server::PERMISSIONS).await;
    let admin = world.api_token(&world.connected("admin").await, "templates").await;
    let alice = world.api_token(&world.connected("alice").await, "pins").await;
    let bob = world.api_token(&world.connected("bob").await, "pins").await;
    let store = &world.app.store;

    // Nothing can be pinned before the templates are made; only an administrator makes them.
    let alice_id = store.users().await.expect("users").into_iter().find(|u| u.username == "alice").expect("alice").id;
    let mut item = spend_item("Chart2", ItemSource::Pushed, None, None);
    (item.everyone, item.pinners) = (false, vec![alice_id]);
    let item = store.add_item(&item, world.app.clock.unix()).await.expect("item").id;
    // The application sends the item's rows: checked against its columns, kept only when they all fit.
    let rows_path = format!("/items/{item}/rows");
    let bad = json!({"rows": [{"Department": "IT", "Amount": 42}, {"Department": "HR", "Amount": "lots"}]});
    let (status, refused) = call(&world, &admin, Method::PUT, &rows_path, Some(bad)).await;
    assert_eq!((status, refused["error"]["field"].as_str()), (400, Some("rows[1].Amount")), "{refused}");
    assert_eq!(store.pushed_rows(item).await.expect("read"), None, "nothing kept");
    let (status, _) = call(&world, &alice, Method::PUT, &rows_path, Some(json!({"rows": []}))).await;
    assert_eq!(status, 403, "administrators' tokens only");
    let (status, kept) = call(&world, &admin, Method::PUT, &rows_path, Some(json!({"rows": [{"Department": "IT", "Amount": 42}]}))).await;
    assert_eq!((status, kept["rows"].as_i64()), (200, Some(1)), "{kept}");
    let sales = demo_id("ws:sales");
    let pin = |dashboard: Value| {
        json!({"itemId": item, "workspaceId": sales, "frequency": {"every": "daily", "time": "07:30"}, "timeZone": "Europe/Berlin"})
            .as_object()
            .cloned()
            .map(|mut body| {
                body.extend(dashboard.as_object().cloned().unwrap_or_default());
                Value::Object(body)
            })
    };
    let (status, body) = call(&world, &alice, Method::POST, "/subscriptions", pin(json!({"newDashboardName": DASHBOARD}))).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("templates have not been set up yet"), "{body}");
    let (status, _) = call(&world, &alice, Method::POST, "/admin/templates", Some(json!({"workspaceName": "Templates"}))).await;
    assert_eq!(status, 403, "administrators only");
    let (status, made) =
        call(&world, &admin, Method::POST, "/admin/templates", Some(json!({"workspaceName": "pbi-bridge templates"}))).await;
    assert_eq!(status, 201, "{made}");
    assert!(made["kinds"].as_array().expect("kinds").iter().all(|k| k["ready"] == false), "{made}");
    let workspace: Uuid = made["workspaceId"].as_str().and_then(|s| s.parse().ok()).expect("workspace");
    let dashboard: Uuid = made["dashboardId"].as_str().and_then(|s| s.parse().ok()).expect("dashboard");
    let kind =
        |body: &Value, name: &str| body["kinds"].as_array().and_then(|k| k.iter().find(|k| k["kind"] == name).cloned()).expect("kind");
    let dataset: Uuid = kind(&made, "category-series")["datasetId"].as_str().and_then(|s| s.parse().ok()).expect("dataset");
    // In Power BI: the administrator pins the bar chart, and lets the people who pin use the templates.
    pin_template_visual(&world, "admin@contoso.onmicrosoft.com", workspace, dataset, dashboard);
    for user in ["alice", "bob"] {
        let principal = demo_id(&format!("user:{user}@contoso.onmicrosoft.com"));
        let member = Command::AddWorkspaceMember { workspace, principal, role: pbi_sandbox::WorkspaceRole::Contributor };
        world.sandbox.control(member).expect("member");
    }
    let (status, checked) = call(&world, &admin, Method::POST, "/admin/templates/check", None).await;
    assert_eq!(status, 200, "{checked}");
    // The templates are scaffolding: Alice, a Contributor there, is offered neither their tiles to show in a
    // workspace nor their workspace to pin to.
    let (_, tiles) = call(&world, &alice, Method::GET, "/tiles", None).await;
    let tiles = tiles["tiles"].as_array().expect("tiles").clone();
    assert!(!tiles.is_empty() && tiles.iter().all(|t| t["groupId"] != json!(workspace)), "{tiles:?}");
    assert_eq!((kind(&checked, "category-series")["ready"].clone(), kind(&checked, "table")["ready"].clone()), (json!(true), json!(false)));

    // Alice may pin the item; Bob is not among its pinners, so for him it does not exist.
    let (_, items) = call(&world, &alice, Method::GET, "/items", None).await;
    assert_eq!(items["items"][0]["kind"], "category-series", "{items}");
    let (_, items) = call(&world, &bob, Method::GET, "/items", None).await;
    assert_eq!(items["items"], json!([]));
    let (status, _) = call(&world, &bob, Method::POST, "/subscriptions", pin(json!({"newDashboardName": "Bob's"}))).await;
    assert_eq!(status, 404);

    // Bad input names its field and changes nothing.
    for (change, field) in [
        (json!({"frequency": {"every": "fortnightly"}}), "frequency.frequency"),
        (json!({"frequency": {"every": "weekly", "time": "07:30"}}), "frequency.days"),
        (json!({"timeZone": "Mars/Olympus_Mons"}), "timeZone"),
        (json!({"parameters": {"company": "USMF"}}), "parameters.company"),
        (json!({"dashboardId": Uuid::new_v4()}), "dashboardId"),
    ] {
        let mut body = pin(json!({"newDashboardName": DASHBOARD})).expect("body");
        body.as_object_mut().expect("object").extend(change.as_object().cloned().unwrap_or_default());
        let (status, answer) = call(&world, &alice, Method::POST, "/subscriptions", Some(body)).await;
        assert_eq!((status, answer["error"]["field"].as_str()), (400, Some(field)), "{answer}");
    }
    assert!(store.subscriptions_of(alice_id).await.expect("none").is_empty(), "nothing was made");

    let (status, pinned) = call(&world, &alice, Method::POST, "/subscriptions", pin(json!({"newDashboardName": DASHBOARD}))).await;
    assert_eq!(status, 201, "{pinned}");
    let id = pinned["subscription"]["id"].as_str().expect("id").to_owned();
    assert_eq!(pinned["subscription"]["frequency"], "Daily at 07:30");
    assert_eq!(
        (pinned["subscription"]["dashboardName"].as_str(), pinned["subscription"]["workspaceName"].as_str()),
        (Some(DASHBOARD), Some("Sales Analytics"))
    );
    let board = pinned["subscription"]["dashboardId"].as_str().expect("dashboard");
    let board_page = format!("{}/groups/{sales}/dashboards/{board}", world.sandbox.base_url());
    assert_eq!(pinned["subscription"]["dashboardWebUrl"].as_str(), Some(board_page.as_str()), "its page in Power BI");
    let first = pinned["firstDeliveryJob"].as_i64().expect("job");
    world.app.engine().wait_for(first, Duration::from_secs(30), |j| j.state.is_finished()).await.expect("delivered");
    let (_, history) = call(&world, &alice, Method::GET, &format!("/subscriptions/{id}/deliveries"), None).await;
    assert_eq!(
        (history["deliveries"][0]["outcome"].as_str(), history["deliveries"][0]["rows"].as_i64()),
        (Some("delivered"), Some(1)),
        "{history}"
    );
    let dataset = pinned["subscription"]["datasetId"].as_str().expect("dataset").to_owned();
    let rows_url = format!("{}/_sandbox/datasets/{dataset}/tables/Item/rows", world.sandbox.base_url());
    let rows: Value = world.app.http.get(&rows_url).send().await.expect("GET").json().await.expect("JSON");
    assert_eq!(rows["count"], 1, "{rows}");

    // Bob cannot see, page, run, change or delete Alice's subscription, knowing its id.
    for (method, path, body) in [
        (Method::GET, format!("/subscriptions/{id}"), None),
        (Method::GET, format!("/subscriptions/{id}/deliveries"), None),
        (Method::POST, format!("/subscriptions/{id}/run"), None),
        (Method::PATCH, format!("/subscriptions/{id}"), Some(json!({"enabled": false}))),
        (Method::DELETE, format!("/subscriptions/{id}"), None),
    ] {
        let (status, _) = call(&world, &bob, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path}");
    }
    let (_, listed) = call(&world, &bob, Method::GET, "/subscriptions", None).await;
    assert_eq!(listed["subscriptions"], json!([]));

    // Disabled, it has no next run and cannot run now; enabled again, it delivers at once.
    let (_, off) = call(&world, &alice, Method::PATCH, &format!("/subscriptions/{id}"), Some(json!({"enabled": false}))).await;
    assert_eq!((off["state"].as_str(), &off["nextRunAt"]), (Some("disabled"), &Value::Null), "{off}");
    let (status, _) = call(&world, &alice, Method::POST, &format!("/subscriptions/{id}/run"), None).await;
    assert_eq!(status, 409);
    let (_, on) = call(&world, &alice, Method::PATCH, &format!("/subscriptions/{id}"), Some(json!({"enabled": true}))).await;
    assert_eq!(on["state"], "active");
    assert!(on["nextRunAt"].is_string(), "{on}");
    let (status, run) = call(&world, &alice, Method::POST, &format!("/subscriptions/{id}/run"), None).await;
    assert_eq!(status, 202, "{run}");

    // Deleted with its content: the dataset is gone from Power BI, the subscription and its schedule too.
    run_due_work(&world.app.engine()).await;
    let (status, answer) = call(&world, &alice, Method::DELETE, &format!("/subscriptions/{id}?removeContent=maybe"), None).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("removeContent")), "{answer}");
    let (status, _) = call(&world, &alice, Method::DELETE, &format!("/subscriptions/{id}?removeContent=true"), None).await;
    assert_eq!(status, 204);
    assert_eq!(world.app.http.get(&rows_url).send().await.expect("GET").status(), 404, "the push dataset was deleted");
    assert!(store.subscriptions_of(alice_id).await.expect("none").is_empty());
    assert!(store.schedules_of(&schedule_owner(id.parse().expect("uuid"))).await.expect("schedules").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_cannot_read_the_templates_pins_once_by_hand_and_the_tile_is_found_by_its_dataset() {
    use reqwest::Method;
    let world = working_world_with_scopes(pbi_server::PERMISSIONS).await;
    let admin = world.api_token(&world.connected("admin").await, "templates").await;
    let alice_session = world.connected("alice").await;
    let alice = world.api_token(&alice_session, "pins").await;
    let (_, made) = call(&world, &admin, Method::POST, "/admin/templates", Some(json!({"workspaceName": "pbi-bridge templates"}))).await;
    let uuid_at = |value: &Value| -> Uuid { value.as_str().and_then(|s| s.parse().ok()).expect("a uuid") };
    let category = made["kinds"].as_array().and_then(|k| k.iter().find(|k| k["kind"] == "category-series").cloned()).expect("kind");
    let templates_workspace = uuid_at(&made["workspaceId"]);
    pin_template_visual(
        &world,
        "admin@contoso.onmicrosoft.com",
        templates_workspace,
        uuid_at(&category["datasetId"]),
        uuid_at(&made["dashboardId"]),
    );
    let (status, _) = call(&world, &admin, Method::POST, "/admin/templates/check", None).await;
    assert_eq!(status, 200);
    // Alice is not given access to the templates workspace: Power BI refuses her the template report.
    let item =
        world.app.store.add_item(&spend_item("Chart2", ItemSource::Pushed, None, None), world.app.clock.unix()).await.expect("item").id;
    let rows = json!([{"Department": "IT", "Amount": 3}, {"Department": "HR", "Amount": 4}]);
    world.app.store.set_pushed_rows(item, &rows.to_string(), world.app.clock.unix()).await.expect("rows");
    let sales = demo_id("ws:sales");
    let body =
        json!({"itemId": item, "workspaceId": sales, "newDashboardName": DASHBOARD, "frequency": {"every": "hourly"}, "timeZone": "UTC"});
    let (status, pinned) = call(&world, &alice, Method::POST, "/subscriptions", Some(body)).await;
    assert_eq!(status, 201, "{pinned}");
    let subscription = &pinned["subscription"];
    let id = subscription["id"].as_str().expect("id").to_owned();
    let dataset = subscription["datasetId"].as_str().expect("the dataset was made").to_owned();
    let dataset_page = format!("{}/groups/{sales}/datasets/{dataset}", world.sandbox.base_url());
    assert_eq!(
        (subscription["awaitingPin"].clone(), &subscription["tileId"], &subscription["reportId"]),
        (json!(true), &Value::Null, &Value::Null)
    );
    assert_eq!(subscription["pinInPowerBi"].as_str(), Some(dataset_page.as_str()), "{subscription}");
    // The deliveries fill the dataset meanwhile, so the visual she builds shows the data.
    let first = pinned["firstDeliveryJob"].as_i64().expect("job");
    world.app.engine().wait_for(first, Duration::from_secs(30), |j| j.state.is_finished()).await.expect("delivered");
    let rows_url = format!("{}/_sandbox/datasets/{dataset}/tables/Item/rows", world.sandbox.base_url());
    let stored: Value = world.app.http.get(&rows_url).send().await.expect("GET").json().await.expect("JSON");
    assert_eq!(stored["count"], 2, "{stored}");
    let (_, page) = world.app.page(&alice_session, &format!("/subscriptions/{id}")).await;
    assert!(page.contains(r#"id="pin-once""#) && page.contains(&format!(r#"<a href="{dataset_page}""#)), "{page}");
    let (status, answer) = call(&world, &alice, Method::POST, &format!("/subscriptions/{id}/check-pin"), None).await;
    assert_eq!(status, 409, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains(&format!("No tile of the dashboard '{DASHBOARD}' reads this item's dataset yet")),
        "{answer}"
    );

    // In Power BI she makes a report on the dataset and pins its bar chart to her dashboard; the next delivery
    // finds the tile by its dataset.
    let report = world
        .sandbox
        .control(Command::CreateReport { id: None, workspace: sales, name: "Chart2".into(), dataset: Some(dataset.parse().expect("uuid")) })
        .expect("report")["id"]
        .as_str()
        .and_then(|s| s.parse::<Uuid>().ok())
        .expect("report id");
    let visual = Visual { kind: SandboxVisual::Bar, table: "Item".into(), value: Some("Value".into()), category: Some("Category".into()) };
    let dashboard = uuid_at(&subscription["dashboardId"]);
    let by_hand = Command::PinVisual {
        user: "alice@contoso.onmicrosoft.com".into(),
        report,
        dashboard,
        title: "Chart2".into(),
        row_span: 2,
        col_span: 2,
        visual,
    };
    let tile: Uuid = world.sandbox.control(by_hand).expect("pinned by a person")["id"].as_str().and_then(|s| s.parse().ok()).expect("tile");
    let (_, run) = call(&world, &alice, Method::POST, &format!("/subscriptions/{id}/run"), None).await;
    let job = run["job"].as_i64().expect("job");
    world.app.engine().wait_for(job, Duration::from_secs(30), |j| j.state.is_finished()).await.expect("delivered");
    let (_, found) = call(&world, &alice, Method::GET, &format!("/subscriptions/{id}"), None).await;
    assert_eq!(
        (found["awaitingPin"].clone(), uuid_at(&found["tileId"]), uuid_at(&found["reportId"])),
        (json!(false), tile, report),
        "{found}"
    );
    assert_eq!(found["pinInPowerBi"], Value::Null);
    let (status, checked) = call(&world, &alice, Method::POST, &format!("/subscriptions/{id}/check-pin"), None).await;
    assert_eq!((status, uuid_at(&checked["tileId"])), (200, tile), "checking again changes nothing");
    let (_, page) = world.app.page(&alice_session, &format!("/subscriptions/{id}")).await;
    assert!(!page.contains(r#"id="pin-once""#), "{page}");
    let (status, _) = call(&world, &alice, Method::DELETE, &format!("/subscriptions/{id}?removeContent=true"), None).await;
    assert_eq!(status, 204);
    assert_eq!(world.app.http.get(&rows_url).send().await.expect("GET").status(), 404, "the push dataset was deleted");
}

#[tokio::test]
async fn a_sign_in_without_seed_001s_permissions_is_asked_to_sign_in_again_before_anything_is_made() {
    // The registration of seed 000 alone: reading dashboards, workspaces and datasets.
    let world = crate::connect::world().await;
    let alice = world.api_token(&world.connected("alice").await, "pins").await;
    let body = json!({"itemId": Uuid::new_v4(), "newDashboardName": "D", "frequency": {"every": "hourly"}, "timeZone": "UTC"});
    let (status, answer) = call(&world, &alice, reqwest::Method::POST, "/subscriptions", Some(body)).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("needs_sign_in")), "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("does not allow pbi-bridge to pin to your dashboards (it lacks Content.Create, Dashboard.ReadWrite.All"),
        "{message}"
    );
    assert!(world.sandbox.requests().iter().all(|r| !r.path.contains("/dashboards")), "nothing was asked of Power BI");
}

/// A form on a page: the session's CSRF token and the fields, posted; the answer (not followed).
pub(crate) async fn submit(world: &World, cookie: &str, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
    let (_, page) = world.app.page(cookie, "/subscriptions").await;
    let csrf = crate::hidden(&page, "csrf").expect("csrf");
    let mut form: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    world.app.http.post(world.app.url(path)).header("cookie", cookie).form(&form).send().await.expect("POST")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_pages_an_admin_completes_the_templates_and_a_user_pins_watches_the_first_delivery_and_deletes() {
    let world = working_world_with_scopes(pbi_server::PERMISSIONS).await;
    let admin = world.connected("admin").await;
    let alice = world.connected("alice").await;
    let bob = world.connected("bob").await;

    let (status, page) = world.app.page(&admin, "/admin/templates").await;
    assert_eq!(status, 200);
    assert!(page.contains("not made") && page.contains(r#"id="check" disabled"#), "{page}");
    let (status, _) = world.app.page(&alice, "/admin/templates").await;
    assert_eq!(status, 403, "administrators only");
    let made = submit(&world, &admin, "/admin/templates", &[("workspace_name", "pbi-bridge templates")]).await;
    assert_eq!(made.status(), 303);
    let (_, page) = world.app.page(&admin, "/admin/templates").await;
    assert!(page.contains("Made the workspace &#39;pbi-bridge templates&#39;"), "{page}");
    assert_eq!(page.matches("not pinned yet").count(), 4, "{page}");
    let rows = world.app.store.templates().await.expect("templates");
    let category = rows.iter().find(|r| r.kind == "category-series").expect("row");
    // Each dataset links to its page in Power BI (here the sandbox's), where Create report is.
    let dataset_page = format!("{}/groups/{}/datasets/{}", world.sandbox.base_url(), category.workspace_id, category.dataset_id);
    assert!(page.contains(&format!(r#"<a href="{dataset_page}" target="_blank""#)), "{page}");
    pin_template_visual(&world, "admin@contoso.onmicrosoft.com", category.workspace_id, category.dataset_id, category.dashboard_id);
    let member = Command::AddWorkspaceMember {
        workspace: category.workspace_id,
        principal: demo_id("user:alice@contoso.onmicrosoft.com"),
        role: pbi_sandbox::WorkspaceRole::Contributor,
    };
    world.sandbox.control(member).expect("member");
    submit(&world, &admin, "/admin/templates/check", &[]).await;
    let (_, page) = world.app.page(&admin, "/admin/templates").await;
    assert!(page.contains("Not pinned yet: Single value (card, gauge); Values over time (line); Table."), "{page}");
    assert_eq!(page.matches(r#"badge-success">ready"#).count(), 1, "{page}");

    // Alice pins the item from its page to a new dashboard in Sales, and watches its first delivery.
    let item =
        world.app.store.add_item(&spend_item("Chart2", ItemSource::Pushed, None, None), world.app.clock.unix()).await.expect("item").id;
    let rows = json!([{"Department": "IT", "Amount": 3}, {"Department": "HR", "Amount": 4}]);
    world.app.store.set_pushed_rows(item, &rows.to_string(), world.app.clock.unix()).await.expect("rows");
    let (_, items) = world.app.page(&alice, "/items").await;
    assert!(items.contains(&format!(r#"href="/items/{item}/pin""#)), "{items}");
    let (status, dialog) = world.app.page(&alice, &format!("/items/{item}/pin")).await;
    assert_eq!(status, 200, "{dialog}");
    let sales = demo_id("ws:sales");
    assert!(dialog.contains(&format!(r#"value="{sales}:new""#)) && dialog.contains("its title and its link are the template"), "{dialog}");
    let target = format!("{sales}:new");
    let bad = submit(
        &world,
        &alice,
        &format!("/items/{item}/pin"),
        &[("target", &target), ("new_dashboard_name", DASHBOARD), ("every", "weekly"), ("time", "07:30")],
    )
    .await;
    assert_eq!(bad.status(), 400);
    let bad = bad.text().await.expect("page");
    assert!(
        bad.contains("Choose at least one day of the week.") && bad.contains(&format!(r#"value="{DASHBOARD}""#)),
        "the form keeps what was typed: {bad}"
    );
    let pinned = submit(
        &world,
        &alice,
        &format!("/items/{item}/pin"),
        &[
            ("target", &target),
            ("new_dashboard_name", DASHBOARD),
            ("every", "weekly"),
            ("day.monday", "on"),
            ("day.friday", "on"),
            ("time", "07:30"),
            ("time_zone", "Europe/Berlin"),
        ],
    )
    .await;
    assert_eq!(pinned.status(), 303);
    let to = pinned.headers()["location"].to_str().expect("ascii").to_owned();
    let (_, shown) = world.app.page(&alice, &to).await;
    assert!(shown.contains("and delivered: the tile shows the item"), "{shown}");
    assert!(
        shown.contains("Weekly on Monday, Friday at 07:30 (Europe/Berlin)") && shown.contains(r#"badge-success">delivered"#),
        "{shown}"
    );
    let (_, list) = world.app.page(&alice, "/subscriptions").await;
    assert!(list.contains("Chart2") && list.contains(DASHBOARD), "{list}");

    // Bob sees none of it.
    let (status, _) = world.app.page(&bob, &to).await;
    assert_eq!(status, 404);
    let (_, his) = world.app.page(&bob, "/subscriptions").await;
    assert!(his.contains("You have no subscriptions yet") && !his.contains("Chart2"), "{his}");
    let stolen = submit(&world, &bob, &format!("{to}/delete"), &[]).await;
    assert_eq!(stolen.status(), 404);

    // Disable, enable, delete with the content.
    submit(&world, &alice, &format!("{to}/disable"), &[]).await;
    let (_, shown) = world.app.page(&alice, &to).await;
    assert!(shown.contains(r#"id="state">disabled"#) && shown.contains(r#"id="enable""#), "{shown}");
    submit(&world, &alice, &format!("{to}/enable"), &[]).await;
    run_due_work(&world.app.engine()).await;
    let deleted = submit(&world, &alice, &format!("{to}/delete"), &[("remove_content", "on")]).await;
    assert_eq!(deleted.headers()["location"], "/subscriptions");
    let (_, list) = world.app.page(&alice, "/subscriptions").await;
    assert!(
        list.contains("The tile stays on the dashboard (no Power BI API removes one)") && list.contains("You have no subscriptions yet"),
        "{list}"
    );
}
