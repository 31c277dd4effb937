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
    client: PowerBiClient,
    subscription: Subscription,
    pinned: Pinned,
    item: Uuid,
}

/// A client acting as Alice through her connection, as the server's own calls do.
fn client_as(world: &World, connection: Uuid, owner: &str) -> PowerBiClient {
    let cloud = Cloud::custom(url::Url::parse(world.sandbox.base_url()).expect("url"));
    let tokens = pbi_auth::ConnectionTokens::new(world.app.auth(), connection, owner);
    PowerBiClient::new(&cloud, Arc::new(tokens)).with_retry(RetryPolicy::none())
}

/// The category-series template, as the templates page has an administrator make it (Alice here).
async fn category_template(world: &World, client: &PowerBiClient) -> push_target::Template {
    let set = templates::create(client, "pbi-bridge templates").await.expect("templates workspace");
    assert!(templates::check_now(client, &set).await.expect("check").iter().all(|(_, s)| *s == TemplateState::NotPinned));
    let dataset = set.datasets.iter().find(|(k, _)| *k == VisualKind::CategorySeries).expect("its dataset").1;
    // In Power BI, by a person: a report on the template dataset, its bar chart pinned to the template dashboard.
    let report = world
        .sandbox
        .control(Command::CreateReport { id: None, workspace: set.workspace, name: "Bar template".into(), dataset: Some(dataset) })
        .expect("report")["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("report id");
    let visual = Visual { kind: SandboxVisual::Bar, table: "Item".into(), value: Some("Value".into()), category: Some("Category".into()) };
    world
        .sandbox
        .control(Command::PinVisual {
            user: "alice@contoso.onmicrosoft.com".into(),
            report,
            dashboard: set.dashboard,
            title: "Values by category".into(),
            row_span: 2,
            col_span: 2,
            visual,
        })
        .expect("pinned by a person");
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
    let (_, connection) = alice_connected(&world).await;
    let stored = world.app.store.connection(connection).await.expect("connection");
    let owner: Uuid = stored.account.owner.parse().expect("a user id");
    let client = client_as(&world, connection, &stored.account.owner);
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
    let target = PinTarget { dataset_id: Some(pinned.dataset.clone()), report_id: Some(pinned.report), tile_id: Some(pinned.tile) };
    world.app.store.set_pin_target(subscription.id, &target, now).await.expect("target");
    world.app.engine().schedule(&schedule_of(&subscription).expect("spec")).await.expect("scheduled");
    let subscription = world.app.store.subscription(subscription.id).await.expect("read");
    Pin { world, client, subscription, pinned, item }
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
    assert_eq!(history.iter().map(|d| d.outcome.as_str()).collect::<Vec<_>>(), ["failed", "failed", "failed", "delivered"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_must_sign_in_again_and_an_unregistered_integration_pause_the_subscription() {
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
