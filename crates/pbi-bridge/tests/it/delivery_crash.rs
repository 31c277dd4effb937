//! Seed 001's delivery survives the death of its process: `pbi-bridge serve` is killed (SIGKILL) while the
//! second of a delivery's three POSTs is in flight, a new `serve` rescues the job, and the retry clears the
//! table and sends every batch again, so the dataset ends with exactly the rendered rows (not the first
//! batch twice).

use crate::serve::{Folder, Instance, RESCUE_AFTER_SECONDS, consented_app, sandbox_registration};
use pbi_jobs::{Engine, JobState, NewJob, Schedulable};
use pbi_sandbox::{Command as SandboxCommand, FaultKind, FaultRule, Sandbox, SandboxConfig, demo_id};
use pbi_store::{Account, ItemSource, NewItem, NewSubscription, PinTarget, Store, Tokens};
use pbi_subscriptions::deliveries::Deliver;
use pbi_subscriptions::kind::VisualKind;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Three POSTs: 10,000, 10,000 and 5,000 rows.
const ROWS: usize = 25_000;
const SCOPE: &str = "openid profile offline_access https://analysis.windows.net/powerbi/api/Dataset.ReadWrite.All";

/// A registration of a new app in the sandbox (admin consent to Dataset.ReadWrite.All), and Alice's
/// connection through it (a refresh token; her access token has expired); her pbi-bridge user id and the
/// connection's id.
async fn alice_connected(store: &Store, sandbox: &pbi_sandbox::SandboxHandle, now: i64) -> (uuid::Uuid, uuid::Uuid) {
    let tenant = demo_id("tenant:contoso");
    let (client_id, secret) = consented_app(sandbox, "Report server", &["Dataset.ReadWrite.All"]);
    let scopes = vec!["Dataset.ReadWrite.All".to_owned()];
    let registration = sandbox_registration(sandbox, "report-server", client_id, &["Dataset.ReadWrite.All", "offline_access"]);
    let registration = store.add_registration(&registration, now).await.expect("registration");
    store.add_secret(registration.id, &SecretString::from(secret), now + 365 * 86_400, now).await.expect("secret");
    let user = demo_id("user:alice@contoso.onmicrosoft.com");
    let refresh =
        sandbox.control(SandboxCommand::IssueRefreshToken { user, client_id, scope: SCOPE.into() }).expect("refresh token")["refreshToken"]
            .as_str()
            .expect("token")
            .to_owned();
    let alice = store.add_user("alice", "Alice", "unused-hash", false, now).await.expect("alice").id;
    let account = Account {
        owner: pbi_store::Owner::User(alice),
        registration_id: registration.id,
        tenant_id: tenant.to_string(),
        object_id: user.to_string(),
        upn: "alice@contoso.onmicrosoft.com".into(),
    };
    let tokens = Tokens {
        access: SecretString::from("expired-access-token"),
        access_expires_at: now - 60,
        refresh: Some(SecretString::from(refresh)),
        refresh_expires_at: Some(now + 90 * 86_400),
    };
    let connection = store.save_connection(&account, &scopes, &tokens, now).await.expect("connection").id;
    (alice, connection)
}

/// An item of `ROWS` rows the application pushed, pinned by Alice to a push dataset in Sales; the
/// subscription's id and the dataset's.
async fn pinned(
    store: &Store,
    sandbox: &pbi_sandbox::SandboxHandle,
    owner: uuid::Uuid,
    connection: uuid::Uuid,
    now: i64,
) -> (uuid::Uuid, String) {
    let sales = demo_id("ws:sales");
    let definition = VisualKind::CategorySeries.dataset_definition("Chart2");
    let dataset = sandbox
        .control(SandboxCommand::CreateDataset {
            id: None,
            workspace: sales,
            definition,
            push: true,
            basic_fifo: false,
            configured_by: None,
        })
        .expect("push dataset")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let item = NewItem {
        name: "Chart2".into(),
        definition: json!({
            "name": "Chart2", "kind": "category-series", "value": "Amount", "category": "Department",
            "columns": [{"name": "Department", "type": "text"}, {"name": "Amount", "type": "decimal"}],
        })
        .to_string(),
        source: ItemSource::Pushed,
        data_source_id: None,
        query: None,
        parameters: "{}".into(),
        everyone: true,
        pinners: vec![],
    };
    let item = store.add_item(&item, now).await.expect("item").id;
    let rows: Vec<Value> = (0..ROWS).map(|n| json!({"Department": format!("D{n:05}"), "Amount": n})).collect();
    store.set_pushed_rows(item, &Value::Array(rows).to_string(), now).await.expect("rows");
    let pin = NewSubscription {
        owner,
        connection_id: connection,
        item_id: item,
        parameters: "{}".into(),
        workspace_id: Some(sales),
        workspace_name: "Sales".into(),
        dashboard_id: uuid::Uuid::new_v4(),
        dashboard_name: "IT Spend Analysis Sample".into(),
        frequency: json!({"every": "daily", "at": {"hour": 7, "minute": 0}}).to_string(),
        time_zone: "UTC".into(),
    };
    let subscription = store.add_subscription(&pin, now).await.expect("subscription").id;
    let target =
        PinTarget { dataset_id: Some(dataset.clone()), report_id: Some(uuid::Uuid::new_v4()), tile_id: Some(uuid::Uuid::new_v4()) };
    store.set_pin_target(subscription, &target, now).await.expect("target");
    (subscription, dataset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_whose_process_is_killed_mid_way_is_retried_to_exactly_the_rendered_rows() {
    let db = pbi_testdb::TestDb::new(false, "crash").await;
    let folder = Folder(std::env::temp_dir().join(format!("pbi-crash-{}", uuid::Uuid::new_v4())));
    std::fs::create_dir_all(&folder.0).expect("folder");
    let key_file = folder.0.join("keys");
    pbi_crypto::KeyRing::write_new_key_file(&key_file, &pbi_crypto::KeyRing::new_key_line(1)).expect("key file");
    let store = Store::connect(&db.url, pbi_crypto::KeyRing::load(&key_file).expect("keys")).await.expect("store");
    // The sandbox's clock is manual and never moves here: the held POST is never answered.
    let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("sandbox");
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let (alice, connection) = alice_connected(&store, &sandbox, now).await;
    let (subscription, dataset) = pinned(&store, &sandbox, alice, connection, now).await;
    let rows_path = format!("/v1.0/myorg/groups/{}/datasets/{dataset}/tables/Item/rows", demo_id("ws:sales"));
    let hold = FaultKind::Delay { millis: 3_600_000 };
    sandbox.inject(FaultRule::new(Some("POST"), &rows_path, 1, hold).after(1));

    // The delivery is queued, then a server starts and takes it: the first batch lands, the second is held.
    let queue = Engine::insert_only_scheduling(store.clone(), pbi_clock::Clock::system(), Schedulable::new().with::<Deliver>())
        .await
        .expect("engine");
    let job = queue.enqueue(NewJob::now(Deliver { subscription })).await.expect("enqueued").id;
    let mut first = Instance::start(&folder.0, 0, &db.url, &key_file);
    tokio::time::timeout(Duration::from_secs(120), sandbox.wait_for_delayed(1))
        .await
        .unwrap_or_else(|_| panic!("the second POST never came; serve's log: {}", first.log()));
    let count = |method: &str| sandbox.requests().iter().filter(|r| r.method == method && r.path == rows_path && r.status == 200).count();
    assert_eq!((count("DELETE"), count("POST")), (1, 1), "cleared, and the first batch landed");
    first.child.kill().expect("SIGKILL");
    first.child.wait().expect("reaped");
    let killed = Instant::now();

    // Another server rescues the job once it has been "running" longer than the rescue window.
    let second = Instance::start(&folder.0, 1, &db.url, &key_file);
    let deadline = Instant::now() + Duration::from_secs(RESCUE_AFTER_SECONDS * 12);
    let ended = loop {
        let seen = queue.get(job).await.expect("read").expect("the job");
        if seen.state.is_finished() {
            break seen;
        }
        assert!(Instant::now() < deadline, "job {seen:?}; serve's log: {}", second.log());
        // Neither process announces the rescue across processes: the job's row is read every 50 ms.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let rows: Value = reqwest::get(format!("{}/_sandbox/datasets/{dataset}/tables/Item/rows", sandbox.base_url()))
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let history = store.deliveries_of(alice, subscription, None, 10).await.expect("history");
    eprintln!(
        "rescued and delivered {:?} after the kill; attempts {}, POSTs that landed {}, DELETEs {}",
        killed.elapsed(),
        ended.attempt,
        count("POST"),
        count("DELETE")
    );
    assert_eq!(ended.state, JobState::Completed, "{ended:?}; serve's log: {}", second.log());
    assert_eq!(ended.attempt, 2, "rescued once: {ended:?}");
    assert_eq!(rows["count"], ROWS, "exactly the rendered rows, not the first batch twice");
    assert_eq!((count("DELETE"), count("POST")), (2, 4), "the retry cleared the table and sent all three batches again");
    assert_eq!(history.len(), 1, "one delivery, carried on by the retry: {history:?}");
    assert_eq!((history[0].outcome.as_str(), history[0].row_count), ("delivered", Some(ROWS as i64)), "{history:?}");
    queue.stop().await.expect("stopped");
    drop(second);
    store.close().await;
}
