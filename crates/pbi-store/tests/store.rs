//! The store's suite, run on SQLite and on PostgreSQL (127.0.0.1:5432; each test makes its own database).

use pbi_crypto::KeyRing;
use pbi_store::{Account, ConnectionStatus, NewRegistration, Owner, PendingState, Pool, Store, StoreError, StoreTx, Tokens};
use secrecy::{ExposeSecret, SecretString};
use sqlx::AssertSqlSafe;
use uuid::Uuid;

/// Each test's own database, on either backend.
struct TestDb(pbi_testdb::TestDb);

impl TestDb {
    async fn new(postgres: bool) -> Self {
        TestDb(pbi_testdb::TestDb::new(postgres, "pbi_test").await)
    }
}

impl std::ops::Deref for TestDb {
    type Target = pbi_testdb::TestDb;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

fn keys(text: &str) -> KeyRing {
    KeyRing::parse(&SecretString::from(text.to_owned())).expect("keys")
}

fn key_line(id: u32) -> String {
    KeyRing::new_key_line(id).expose_secret().to_owned()
}

fn registration(name: &str) -> NewRegistration {
    NewRegistration {
        name: name.into(),
        client_id: Uuid::new_v4().to_string(),
        tenant: "contoso.onmicrosoft.com".into(),
        cloud: "public".into(),
        redirect_urls: vec!["http://localhost:8080/oauth/callback".into()],
        scopes: vec!["Dashboard.Read.All".into(), "offline_access".into()],
        authorize_url: None,
        token_url: None,
        api_base: None,
        enabled: true,
    }
}

fn tokens(access: &str, refresh: Option<&str>, now: i64) -> Tokens {
    Tokens {
        access: SecretString::from(access.to_owned()),
        access_expires_at: now + 3600,
        refresh: refresh.map(|r| SecretString::from(r.to_owned())),
        refresh_expires_at: refresh.map(|_| now + 90 * 86_400),
    }
}

/// Runs each check on both backends.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(false).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(true).await } )* }
    };
}

on_both!(
    schedules_are_one_per_kind_and_owner_and_an_occurrence_is_recorded_once,
    migrations_apply_once,
    registrations_round_trip_and_unregister_keeps_data,
    secrets_are_encrypted_and_bound_to_their_row,
    connections_keep_tokens_encrypted_and_disconnect_deletes_them,
    oauth_states_are_single_use,
    refresh_leases_are_exclusive,
    key_rotation_rewrites_everything_and_can_be_rerun,
    users_and_sessions,
    workspaces_and_pins,
    api_tokens_are_found_by_hash_until_revoked_or_expired,
    deleting_a_workspace_takes_its_pins_and_only_its_owner_can,
    concurrent_pins_and_deletes_neither_fail_nor_share_a_position,
    a_disabled_user_loses_sessions_and_tokens_and_a_new_password_ends_sessions,
    the_key_entered_last_is_in_use_and_older_ones_can_be_removed,
    a_registration_change_and_its_audit_entries_land_together_and_the_log_pages,
    workspace_names_are_their_owners_own_whatever_their_case,
    a_tile_is_pinned_once_per_workspace,
    migration_7_renames_repeated_workspace_names_and_drops_repeated_pins,
    a_database_the_old_migrator_brought_up_opens_and_nothing_runs_again,
    a_database_the_old_migrator_left_at_6_is_adopted_and_gets_7_and_8,
    two_instances_start_at_once_on_a_new_database_and_with_a_new_migration,
    a_store_transaction_commits_or_rolls_back_what_was_written_in_it,
    instances_share_one_sealed_key_and_a_key_the_ring_cannot_open_is_replaced,
    data_sources_keep_their_credential_sealed_and_may_have_none,
    items_are_pinnable_by_everyone_or_by_the_users_they_name,
    a_subscription_is_its_owners_alone_and_keeps_its_delivery_history,
    a_usable_registration_resumes_the_subscriptions_of_its_active_connections_alone,
    templates_are_replaced_together_and_remember_what_the_check_found
);

async fn templates_are_replaced_together_and_remember_what_the_check_found(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let row = |kind: &str, dataset| pbi_store::TemplateRow {
        kind: kind.into(),
        workspace_id: uuid::Uuid::from_u128(1),
        dataset_id: uuid::Uuid::from_u128(dataset),
        dashboard_id: uuid::Uuid::from_u128(2),
        report_id: None,
        tile_id: None,
        checked_at: None,
        updated_at: 10,
    };
    store.replace_templates(&[row("table", 3), row("single-value", 4)]).await.expect("made");
    let found = (uuid::Uuid::from_u128(5), uuid::Uuid::from_u128(6));
    store.set_template_found("table", Some(found), 20).await.expect("found");
    let stored = store.templates().await.expect("read");
    assert_eq!(stored.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>(), ["single-value", "table"]);
    assert_eq!((stored[1].report_id, stored[1].tile_id, stored[1].checked_at), (Some(found.0), Some(found.1), Some(20)));
    assert_eq!(stored[0].report_id, None);
    store.replace_templates(&[row("table", 9)]).await.expect("made again");
    let again = store.templates().await.expect("read");
    assert_eq!((again.len(), again[0].dataset_id, again[0].tile_id), (1, uuid::Uuid::from_u128(9), None), "the old set is gone");
}

async fn a_subscription_is_its_owners_alone_and_keeps_its_delivery_history(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let alice = store.add_user("alice", "Alice", "hash", false, 0).await.expect("alice").id;
    let bob = store.add_user("bob", "Bob", "hash", false, 0).await.expect("bob").id;
    let item = store.add_item(&pushed_item("Open orders"), 0).await.expect("item").id;
    let pin = pbi_store::NewSubscription {
        owner: alice,
        connection_id: uuid::Uuid::new_v4(),
        item_id: item,
        parameters: r#"{"company":"USMF"}"#.into(),
        workspace_id: Some(uuid::Uuid::new_v4()),
        workspace_name: "Sales".into(),
        dashboard_id: uuid::Uuid::new_v4(),
        dashboard_name: "IT Spend Analysis Sample".into(),
        frequency: r#"{"every":"daily","at":{"hour":7,"minute":30}}"#.into(),
        time_zone: "Europe/Berlin".into(),
    };
    let mine = store.add_subscription(&pin, 10).await.expect("added");
    assert_eq!((mine.details.clone(), mine.state), (pin.clone(), pbi_store::SubscriptionState::Active));
    let target = pbi_store::PinTarget {
        dataset_id: Some("ds-1".into()),
        report_id: Some(uuid::Uuid::new_v4()),
        tile_id: Some(uuid::Uuid::new_v4()),
    };
    store.set_pin_target(mine.id, &target, 11).await.expect("target");
    assert_eq!(store.subscription_of(alice, mine.id).await.expect("hers").target, target);

    // Bob cannot read, list, page the history of or delete Alice's subscription, whatever he knows of it.
    assert!(matches!(store.subscription_of(bob, mine.id).await, Err(StoreError::NotFound(_))));
    assert!(store.subscriptions_of(bob).await.expect("his").is_empty());
    assert!(matches!(store.delete_subscription(bob, mine.id).await, Err(StoreError::NotFound(_))));
    let hourly = r#"{"every":"hourly","minute":15}"#;
    assert!(matches!(store.set_subscription_settings(bob, mine.id, hourly, "UTC", "{}", 12).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.subscription(mine.id).await.expect("read").details, pin, "Bob changed nothing");
    store.set_subscription_settings(alice, mine.id, hourly, "UTC", r#"{"company":"DEMF"}"#, 12).await.expect("changed");
    let changed = store.subscription(mine.id).await.expect("read");
    assert_eq!(
        (changed.details.frequency.as_str(), changed.details.time_zone.as_str(), changed.details.parameters.as_str(), changed.updated_at),
        (hourly, "UTC", r#"{"company":"DEMF"}"#, 12)
    );

    let first = store.start_delivery(mine.id, 7, 100).await.expect("started");
    // One delivery under way at a time: another job finds it, and takes it over only from the job carrying it.
    assert!(matches!(store.start_delivery(mine.id, 8, 101).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.open_delivery(mine.id).await.expect("open").map(|d| (d.id, d.job_id)), Some((first.id, Some(7))));
    assert!(!store.take_delivery(first.id, Some(6), 8).await.expect("not from 6"));
    assert!(store.take_delivery(first.id, Some(7), 8).await.expect("from 7"));
    assert!(!store.take_delivery(first.id, Some(7), 9).await.expect("8 has it now"));
    let first = first.id;
    let done = pbi_store::DeliveryUpdate {
        ended_at: Some(103),
        row_count: Some(12),
        post_count: 1,
        request_ids: vec!["req-1".into(), "req-2".into()],
        outcome: "delivered".into(),
        error: None,
        progress: None,
    };
    store.update_delivery(first, &done).await.expect("ended");
    assert_eq!(store.open_delivery(mine.id).await.expect("none open"), None);
    let second = store.start_delivery(mine.id, 9, 200).await.expect("started").id;
    let history = store.deliveries_of(alice, mine.id, None, 10).await.expect("history");
    assert_eq!(history.iter().map(|d| d.id).collect::<Vec<_>>(), [second, first], "newest first");
    assert_eq!(
        (history[1].request_ids.clone(), history[1].row_count, history[0].outcome.as_str()),
        (vec!["req-1".to_owned(), "req-2".to_owned()], Some(12), "running")
    );
    assert_eq!(store.deliveries_of(alice, mine.id, Some(200), 10).await.expect("page 2").len(), 1, "the cursor pages on");
    assert!(store.deliveries_of(bob, mine.id, None, 10).await.expect("none").is_empty(), "not Bob's history");

    store
        .set_subscription_state(mine.id, pbi_store::SubscriptionState::Paused, Some("Sign in to Power BI again"), 300)
        .await
        .expect("paused");
    assert!(store.resume_subscriptions_of(bob, uuid::Uuid::new_v4(), 301).await.expect("his").is_empty());
    let reconnected = uuid::Uuid::new_v4();
    assert_eq!(store.resume_subscriptions_of(alice, reconnected, 302).await.expect("hers"), [mine.id]);
    let resumed = store.subscription(mine.id).await.expect("read");
    assert_eq!((resumed.state, resumed.state_reason), (pbi_store::SubscriptionState::Active, None));
    assert_eq!(resumed.details.connection_id, reconnected, "through the connection she signed in with");
    store.delete_subscription(alice, mine.id).await.expect("deleted");
    assert!(store.deliveries_of(alice, mine.id, None, 10).await.expect("gone").is_empty(), "its history went with it");
}

async fn a_usable_registration_resumes_the_subscriptions_of_its_active_connections_alone(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let erp = store.add_registration(&registration("erp"), 0).await.expect("erp").id;
    let crm = store.add_registration(&registration("crm"), 0).await.expect("crm").id;
    let item = store.add_item(&pushed_item("Open orders"), 0).await.expect("item").id;
    let scopes = vec!["Dashboard.Read.All".to_owned()];
    // One paused subscription per connection: two of erp's (one of them needs its owner to sign in), one of crm's.
    let mut paused = Vec::new();
    for (n, registration_id) in [erp, erp, crm].into_iter().enumerate() {
        let owner = store.add_user(&format!("user{n}"), "User", "hash", false, 0).await.expect("user").id;
        let account = Account {
            owner: Owner::User(owner),
            registration_id,
            tenant_id: "t".into(),
            object_id: format!("o{n}"),
            upn: format!("user{n}@contoso.onmicrosoft.com"),
        };
        let connection = store.save_connection(&account, &scopes, &tokens("a", Some("r"), 1), 1).await.expect("connection").id;
        let pin = pbi_store::NewSubscription {
            owner,
            connection_id: connection,
            item_id: item,
            parameters: "{}".into(),
            workspace_id: None,
            workspace_name: "My workspace".into(),
            dashboard_id: uuid::Uuid::new_v4(),
            dashboard_name: "Orders".into(),
            frequency: r#"{"every":"hourly"}"#.into(),
            time_zone: "UTC".into(),
        };
        let id = store.add_subscription(&pin, 2).await.expect("subscription").id;
        store
            .set_subscription_state(id, pbi_store::SubscriptionState::Paused, Some("the registration was disabled"), 3)
            .await
            .expect("paused");
        paused.push((id, connection));
    }
    store.mark_needs_sign_in(paused[1].1, "invalid_grant", 4).await.expect("needs sign-in");
    assert_eq!(store.active_subscriptions_of_registration(erp).await.expect("count"), 0, "all three are paused");

    assert_eq!(store.resume_subscriptions_of_registration(erp, 5).await.expect("resumed"), [paused[0].0]);
    assert_eq!(store.active_subscriptions_of_registration(erp).await.expect("count"), 1, "what unregistering erp would pause");
    assert_eq!(store.active_subscriptions_of_registration(crm).await.expect("count"), 0);
    let state = |n: usize| {
        let store = &store;
        let id = paused[n].0;
        async move { store.subscription(id).await.expect("read").state }
    };
    assert_eq!(state(0).await, pbi_store::SubscriptionState::Active);
    assert_eq!(state(1).await, pbi_store::SubscriptionState::Paused, "its owner must sign in first");
    assert_eq!(state(2).await, pbi_store::SubscriptionState::Paused, "another registration's");
    assert!(store.resume_subscriptions_of_registration(erp, 6).await.expect("again").is_empty(), "nothing twice");
}

/// An item for everyone whose rows the application pushes.
fn pushed_item(name: &str) -> pbi_store::NewItem {
    pbi_store::NewItem {
        name: name.into(),
        definition: "{}".into(),
        source: pbi_store::ItemSource::Pushed,
        data_source_id: None,
        query: None,
        parameters: "[]".into(),
        everyone: true,
        pinners: vec![],
    }
}

fn sqlite_source(name: &str) -> pbi_store::NewDataSource {
    pbi_store::NewDataSource {
        name: name.into(),
        kind: pbi_store::DataSourceKind::Sqlite,
        location: "/var/lib/finance.db".into(),
        username: None,
        credential_header: None,
    }
}

async fn items_are_pinnable_by_everyone_or_by_the_users_they_name(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let alice = store.add_user("alice", "Alice", "hash", false, 0).await.expect("alice").id;
    let bob = store.add_user("bob", "Bob", "hash", false, 0).await.expect("bob").id;
    let source = sqlite_source("Finance");
    let source = store.add_data_source(&source, None, 0).await.expect("source").id;
    let chart = pbi_store::NewItem {
        name: "Chart2".into(),
        definition: r#"{"kind":"category-series"}"#.into(),
        source: pbi_store::ItemSource::Query,
        data_source_id: Some(source),
        query: Some("SELECT region AS Region, SUM(amount) AS Amount FROM sales WHERE company = :company GROUP BY region".into()),
        parameters: r#"[{"name":"company","default":"USMF"}]"#.into(),
        everyone: false,
        pinners: vec![alice],
    };
    let stored = store.add_item(&chart, 10).await.expect("added");
    assert_eq!(stored.details, chart);
    let pushed = pbi_store::NewItem { definition: chart.definition.clone(), ..pushed_item("Open orders") };
    let open = store.add_item(&pushed, 11).await.expect("added");
    let names = |items: Vec<pbi_store::StoredItem>| items.into_iter().map(|i| i.details.name).collect::<Vec<_>>();
    assert_eq!(names(store.items_pinnable_by(alice).await.expect("alice's")), ["Chart2", "Open orders"]);
    assert_eq!(names(store.items_pinnable_by(bob).await.expect("bob's")), ["Open orders"], "Bob is not named on Chart2");
    assert_eq!(names(store.items().await.expect("all")), ["Chart2", "Open orders"]);

    assert!(matches!(
        store.add_item(&pbi_store::NewItem { name: "chart2 ".into(), ..chart.clone() }, 12).await,
        Err(StoreError::Conflict(_))
    ));
    let nobody = pbi_store::NewItem { name: "Ghost".into(), pinners: vec![uuid::Uuid::new_v4()], ..chart.clone() };
    assert!(matches!(store.add_item(&nobody, 12).await, Err(StoreError::NotFound(_))), "a pinner who is not a user");
    assert!(store.items().await.expect("all").iter().all(|i| i.details.name != "Ghost"), "nothing of it was kept");
    assert!(matches!(store.delete_data_source(source).await, Err(StoreError::Conflict(m)) if m.contains("items use")));

    let moved = store.update_item(stored.id, &pbi_store::NewItem { pinners: vec![bob], ..chart.clone() }, 13).await.expect("updated");
    assert_eq!(moved.details.pinners, [bob]);
    assert_eq!(names(store.items_pinnable_by(alice).await.expect("alice's")), ["Open orders"]);
    store.set_pushed_rows(open.id, r#"[{"Category":"East","Value":1}]"#, 14).await.expect("pushed");
    assert_eq!(store.pushed_rows(open.id).await.expect("read").as_deref(), Some(r#"[{"Category":"East","Value":1}]"#));
    assert_eq!(store.item(open.id).await.expect("read").pushed_at, Some(14));
    store.delete_item(stored.id).await.expect("deleted");
    store.delete_data_source(source).await.expect("no item uses it now");
    assert!(matches!(store.item(stored.id).await, Err(StoreError::NotFound(_))));
}

async fn data_sources_keep_their_credential_sealed_and_may_have_none(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let finance = pbi_store::NewDataSource {
        name: "Finance".into(),
        kind: pbi_store::DataSourceKind::Postgres,
        location: "postgres://db.example.com/finance".into(),
        username: Some("reporting".into()),
        credential_header: None,
    };
    let password = SecretString::from("s3cret~password".to_owned());
    let stored = store.add_data_source(&finance, Some(&password), 10).await.expect("added");
    assert!(stored.has_credential && stored.details == finance, "{stored:?}");
    assert_eq!(store.data_source_credential(stored.id).await.expect("read").expect("one").expose_secret(), "s3cret~password");
    let raw = sqlx_dump(&db.url, "SELECT credential FROM data_sources").await;
    assert!(!raw.iter().any(|bytes| bytes.windows(6).any(|w| w == b"s3cret")), "stored encrypted");
    assert!(!format!("{stored:?}").contains("s3cret"), "a data source prints without its credential");

    let again = pbi_store::NewDataSource { name: " finance ".into(), ..finance.clone() };
    assert!(
        matches!(store.add_data_source(&again, None, 11).await, Err(StoreError::Conflict(m)) if m.contains("'Finance'") || m.contains("finance"))
    );
    let api = pbi_store::NewDataSource {
        name: "Orders API".into(),
        kind: pbi_store::DataSourceKind::Http,
        location: "https://erp.example.com/reports/".into(),
        username: None,
        credential_header: Some("Authorization".into()),
    };
    let bare = store.add_data_source(&api, None, 12).await.expect("a source without a stored credential is kept");
    assert!(!bare.has_credential);
    assert!(store.data_source_credential(bare.id).await.expect("read").is_none());
    let names: Vec<String> = store.data_sources().await.expect("list").into_iter().map(|d| d.details.name).collect();
    assert_eq!(names, ["Finance", "Orders API"]);

    let moved = pbi_store::NewDataSource { location: "postgres://db2.example.com/finance".into(), ..finance.clone() };
    let updated = store.update_data_source(stored.id, &moved, 13).await.expect("updated");
    assert!(updated.details == moved && updated.has_credential && updated.updated_at == 13, "the credential stays: {updated:?}");
    let clash = pbi_store::NewDataSource { name: "orders api".into(), ..moved.clone() };
    assert!(matches!(store.update_data_source(stored.id, &clash, 13).await, Err(StoreError::Conflict(_))));
    assert!(matches!(store.update_data_source(uuid::Uuid::new_v4(), &moved, 13).await, Err(StoreError::NotFound(_))));
    store.set_data_source_credential(stored.id, None, 13).await.expect("cleared");
    assert!(!store.data_source(stored.id).await.expect("read").has_credential);
    store.delete_data_source(bare.id).await.expect("deleted");
    assert!(matches!(store.data_source(bare.id).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.set_data_source_credential(bare.id, None, 14).await, Err(StoreError::NotFound(_))));
}

async fn instances_share_one_sealed_key_and_a_key_the_ring_cannot_open_is_replaced(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let line = key_line(1);
    let (first, second) =
        (Store::connect(&db.url, keys(&line)).await.expect("connect"), Store::connect(&db.url, keys(&line)).await.expect("connect"));
    let (a, b) = tokio::join!(first.shared_key(pbi_store::SharedKey::LoginCsrf), second.shared_key(pbi_store::SharedKey::LoginCsrf));
    let (a, b) = (a.expect("key"), b.expect("key"));
    assert_eq!(a.expose_secret().len(), 32);
    assert!(a.expose_secret() == b.expose_secret(), "two instances asking at once get the same key");
    let stored = raw_text(&db.url, "SELECT value FROM settings WHERE name = 'key.login_csrf'").await;
    assert!(
        !stored.is_empty() && !stored.contains(&a.expose_secret().iter().map(|b| format!("{b:02x}")).collect::<String>()),
        "kept sealed"
    );
    // An instance whose key ring no longer holds the key it was sealed with makes a new one rather than fail.
    let rotated = Store::connect(&db.url, keys(&key_line(2))).await.expect("connect");
    let replaced = rotated.shared_key(pbi_store::SharedKey::LoginCsrf).await.expect("a new key");
    assert!(replaced.expose_secret() != a.expose_secret());
}

async fn raw_text(url: &str, query: &'static str) -> String {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        sqlx::query_scalar(query).fetch_one(&pool).await.expect("query")
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
        sqlx::query_scalar(query).fetch_one(&pool).await.expect("query")
    }
}

async fn the_key_entered_last_is_in_use_and_older_ones_can_be_removed(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let reg = store.add_registration(&registration("erp"), 0).await.expect("added");
    let first = store.add_secret(reg.id, &SecretString::from("first~key".to_owned()), 2_000_000, 10).await.expect("secret");
    // A corrected key that expires earlier than the first: it is the one entered last, so it is used.
    let corrected = store.add_secret(reg.id, &SecretString::from("corrected~key".to_owned()), 1_000_000, 10).await.expect("secret");
    let (info, value) = store.current_secret(reg.id).await.expect("read").expect("a key");
    assert_eq!((info.id, value.expose_secret()), (corrected.id, "corrected~key"));
    let listed: Vec<Uuid> = store.secrets(reg.id).await.expect("list").iter().map(|s| s.id).collect();
    assert_eq!(listed, [corrected.id, first.id], "the key in use first");
    assert!(matches!(store.remove_secret(reg.id, corrected.id).await, Err(StoreError::Conflict(_))), "not the key in use");
    let other = store.add_registration(&registration("other"), 0).await.expect("added");
    assert!(matches!(store.remove_secret(other.id, first.id).await, Err(StoreError::NotFound(_))), "only its own registration's");
    store.remove_secret(reg.id, first.id).await.expect("an older key goes");
    assert_eq!(store.secrets(reg.id).await.expect("list").len(), 1);
}

async fn a_registration_change_and_its_audit_entries_land_together_and_the_log_pages(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let reg = store.add_registration(&registration("erp"), 0).await.expect("added");
    let entry = |action: &str, old: &str, new: &str| pbi_store::NewAuditEntry {
        actor: "admin".into(),
        action: action.into(),
        target: "erp".into(),
        old_value: Some(old.into()),
        new_value: Some(new.into()),
    };
    let mut details = registration("erp");
    details.token_url = Some("https://login.example/token".into());
    let key = SecretString::from("new~key".to_owned());
    store
        .save_registration(Some(reg.id), &details, Some((&key, 5_000)), &[entry("powerbi.endpoints", "{}", "{\"tokenUrl\":\"x\"}")], 100)
        .await
        .expect("saved");
    assert_eq!(store.registration(reg.id).await.expect("read").details.token_url.as_deref(), Some("https://login.example/token"));
    assert_eq!(store.secrets(reg.id).await.expect("list").len(), 1);
    // A change that fails records nothing.
    let failed = store.save_registration(Some(Uuid::new_v4()), &details, None, &[entry("powerbi.endpoints", "a", "b")], 101).await;
    assert!(matches!(failed, Err(StoreError::NotFound(_))));
    for at in 102..107 {
        store.record_audit(&[entry("user.disabled", "enabled", &format!("disabled at {at}"))], at).await.expect("recorded");
    }
    let (first, next) = store.audit_entries(None, 4).await.expect("page");
    assert_eq!(first.iter().map(|e| e.at).collect::<Vec<_>>(), [106, 105, 104, 103], "newest first");
    let (second, last) = store.audit_entries(next, 4).await.expect("page");
    assert_eq!(second.iter().map(|e| e.at).collect::<Vec<_>>(), [102, 100]);
    assert!(last.is_none(), "no more pages");
    assert_eq!(second[1].entry.action, "powerbi.endpoints");
}

async fn migrations_apply_once(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let line = key_line(1);
    let store = Store::connect(&db.url, keys(&line)).await.expect("connect");
    assert_eq!(store.schema_version().await.expect("version"), Store::latest_schema_version());
    store.close().await;
    let again = Store::connect(&db.url, keys(&line)).await.expect("reconnect without re-applying");
    assert_eq!(again.schema_version().await.expect("version"), Store::latest_schema_version());
}

async fn registrations_round_trip_and_unregister_keeps_data(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let created = store.add_registration(&registration("erp"), 100).await.expect("added");
    assert_eq!(store.registration(created.id).await.expect("read"), created);
    assert!(matches!(store.add_registration(&registration("erp"), 101).await, Err(StoreError::Conflict(_))), "names are unique");
    let mut details = created.details.clone();
    details.redirect_urls.push("https://erp.example/oauth/callback".into());
    let updated = store.update_registration(created.id, &details, 200).await.expect("updated");
    assert_eq!((updated.details.redirect_urls.len(), updated.updated_at), (2, 200));
    store.remove_registration(created.id, 300).await.expect("removed");
    assert!(store.registrations(false).await.expect("list").is_empty());
    let kept = store.registration_by_name("erp").await.expect("kept");
    assert_eq!((kept.removed_at, kept.details.enabled), (Some(300), false));
    assert!(matches!(store.registration(Uuid::new_v4()).await, Err(StoreError::NotFound(_))));
}

async fn secrets_are_encrypted_and_bound_to_their_row(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let reg = store.add_registration(&registration("erp"), 0).await.expect("added");
    store.add_secret(reg.id, &SecretString::from("old~secret-value".to_owned()), 1_000, 0).await.expect("secret");
    let newest = store.add_secret(reg.id, &SecretString::from("new~secret-value".to_owned()), 2_000, 0).await.expect("secret");
    let (info, value) = store.current_secret(reg.id).await.expect("read").expect("a secret");
    assert_eq!((info.id, value.expose_secret()), (newest.id, "new~secret-value"));
    assert_eq!(store.secrets(reg.id).await.expect("list").len(), 2);

    // At rest: neither value is in the database as text.
    let raw = sqlx_dump(&db.url, "SELECT secret FROM registration_secrets").await;
    assert!(!raw.iter().any(|bytes| bytes.windows(6).any(|w| w == b"secret")), "stored encrypted");
}

async fn connections_keep_tokens_encrypted_and_disconnect_deletes_them(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let reg = store.add_registration(&registration("erp"), 0).await.expect("added");
    let account = Account {
        owner: Owner::User(Uuid::from_u128(1)),
        registration_id: reg.id,
        tenant_id: "t".into(),
        object_id: "o".into(),
        upn: "alice@contoso.onmicrosoft.com".into(),
    };
    let scopes = vec!["Dashboard.Read.All".to_owned()];
    let connection = store.save_connection(&account, &scopes, &tokens("access-AAA", Some("refresh-RRR"), 10), 10).await.expect("saved");
    assert_eq!(connection.status, ConnectionStatus::Active);
    let again = store.save_connection(&account, &scopes, &tokens("access-BBB", None, 20), 20).await.expect("same account");
    assert_eq!(again.id, connection.id, "one connection per account");
    let (access, refresh) = store.connection_tokens(connection.id).await.expect("tokens");
    assert_eq!(access.expect("access").expose_secret(), "access-BBB");
    assert_eq!(refresh.expect("refresh kept when none is returned").expose_secret(), "refresh-RRR");
    assert!(store.connections_of(&Owner::User(Uuid::from_u128(2))).await.expect("list").is_empty(), "another user sees none");

    let raw = sqlx_dump(&db.url, "SELECT access_token FROM connections UNION ALL SELECT refresh_token FROM connections").await;
    assert!(!raw.iter().any(|b| b.windows(6).any(|w| w == b"access" || w == b"refres")));

    store.mark_needs_sign_in(connection.id, "AADSTS700082: the refresh token expired after 90 days without use", 30).await.expect("marked");
    let marked = store.connection(connection.id).await.expect("read");
    assert_eq!(marked.status, ConnectionStatus::NeedsSignIn);
    assert!(marked.status_reason.expect("reason").contains("90 days"));
    store.disconnect(connection.id, 40).await.expect("disconnected");
    let (access, refresh) = store.connection_tokens(connection.id).await.expect("tokens");
    assert!(access.is_none() && refresh.is_none(), "disconnect deletes the tokens");
    assert_eq!(store.connection(connection.id).await.expect("kept").status, ConnectionStatus::Revoked);
}

async fn oauth_states_are_single_use(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let state = PendingState {
        state_hash: "h1".into(),
        browser_session: "s1".into(),
        owner: Owner::User(Uuid::from_u128(1)),
        registration_id: Uuid::new_v4(),
        pkce_verifier: SecretString::from("verifier-1".to_owned()),
        return_to: "/settings".into(),
        created_at: 0,
        expires_at: 600,
    };
    store.put_state(&state).await.expect("stored");
    assert!(store.take_state("h1", "another-session").await.expect("take").is_none(), "only its own session takes it");
    assert!(store.state_owner("h1").await.expect("exists").is_some(), "and a wrong one leaves it in place");
    let taken = store.take_state("h1", "s1").await.expect("take").expect("present");
    assert_eq!((taken.browser_session.as_str(), taken.pkce_verifier.expose_secret()), ("s1", "verifier-1"));
    assert!(store.take_state("h1", "s1").await.expect("take").is_none(), "single use");
    assert!(store.state_owner("h1").await.expect("exists").is_none());
    store.put_state(&PendingState { state_hash: "h2".into(), expires_at: 5, ..state }).await.expect("stored");
    assert_eq!(store.purge_states(10).await.expect("purged"), 1);
}

async fn refresh_leases_are_exclusive(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let reg = store.add_registration(&registration("erp"), 0).await.expect("added");
    let account = Account {
        owner: Owner::User(Uuid::from_u128(9)),
        registration_id: reg.id,
        tenant_id: "t".into(),
        object_id: "o".into(),
        upn: "u@x".into(),
    };
    let id = store.save_connection(&account, &[], &tokens("a", Some("r"), 0), 0).await.expect("saved").id;
    assert!(store.try_lease_refresh(id, "instance-a", 30, 0).await.expect("lease"));
    assert!(!store.try_lease_refresh(id, "instance-b", 30, 10).await.expect("lease"), "held by a");
    assert!(store.try_lease_refresh(id, "instance-b", 60, 31).await.expect("lease"), "a's lease ran out");
    store.release_lease(id, "instance-b").await.expect("released");
    assert!(store.try_lease_refresh(id, "instance-a", 90, 32).await.expect("lease"));
}

async fn key_rotation_rewrites_everything_and_can_be_rerun(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let old = key_line(1);
    let store = Store::connect(&db.url, keys(&old)).await.expect("connect");
    let reg = store.add_registration(&registration("erp"), 0).await.expect("added");
    store.add_secret(reg.id, &SecretString::from("client-secret".to_owned()), 1_000, 0).await.expect("secret");
    let account = Account {
        owner: Owner::User(Uuid::from_u128(9)),
        registration_id: reg.id,
        tenant_id: "t".into(),
        object_id: "o".into(),
        upn: "u@x".into(),
    };
    let connection = store.save_connection(&account, &[], &tokens("access", Some("refresh"), 0), 0).await.expect("saved");
    let source = sqlite_source("Finance");
    let source = store.add_data_source(&source, Some(&SecretString::from("db-password".to_owned())), 0).await.expect("source");
    store.close().await;

    let new = key_line(2);
    let rotated = Store::connect(&db.url, keys(&format!("{old}{new}"))).await.expect("both keys");
    let report = rotated.rotate_keys().await.expect("rotated");
    assert_eq!(report.rewritten, 4, "the secret, both tokens and the data source's credential");
    assert_eq!(rotated.rotate_keys().await.expect("again").rewritten, 0, "a second run finds nothing to do");
    rotated.close().await;

    // The old key can now be retired: everything still reads under the new key alone.
    let retired = Store::connect(&db.url, keys(&new)).await.expect("new key only");
    assert_eq!(retired.current_secret(reg.id).await.expect("read").expect("secret").1.expose_secret(), "client-secret");
    let (access, refresh) = retired.connection_tokens(connection.id).await.expect("tokens");
    assert_eq!((access.expect("access").expose_secret(), refresh.expect("refresh").expose_secret()), ("access", "refresh"));
    assert_eq!(retired.data_source_credential(source.id).await.expect("read").expect("one").expose_secret(), "db-password");
}

/// Raw bytes of one column, read past the store (what a database dump would show).
async fn sqlx_dump(url: &str, query: &'static str) -> Vec<Vec<u8>> {
    let rows: Vec<Option<Vec<u8>>> = if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.expect("raw connection");
        let rows = sqlx::query_scalar(query).fetch_all(&pool).await.expect("dump");
        pool.close().await;
        rows
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.expect("raw connection");
        let rows = sqlx::query_scalar(query).fetch_all(&pool).await.expect("dump");
        pool.close().await;
        rows
    };
    rows.into_iter().flatten().collect()
}

/// Runs statements past the store, in order and in one transaction (as pbi-bridge's own migrator did, or another
/// program would). Test SQL: written here or read from the crate's migration files.
async fn raw_execute(url: &str, statements: &[impl AsRef<str>]) {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.expect("raw connection");
        let mut tx = pool.begin().await.expect("begin");
        for sql in statements.iter().map(AsRef::as_ref) {
            sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await.expect(sql);
        }
        tx.commit().await.expect("commit");
        pool.close().await;
    } else {
        // In WAL mode, as the store (and every earlier build) leaves its databases.
        let options = std::str::FromStr::from_str(url)
            .map(|o: sqlx::sqlite::SqliteConnectOptions| o.create_if_missing(true).journal_mode(sqlx::sqlite::SqliteJournalMode::Wal));
        let pool = sqlx::SqlitePool::connect_with(options.expect("a SQLite URL")).await.expect("raw connection");
        let mut tx = pool.begin().await.expect("begin");
        for sql in statements.iter().map(AsRef::as_ref) {
            sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await.expect(sql);
        }
        tx.commit().await.expect("commit");
        pool.close().await;
    }
}

/// One number read past the store.
async fn raw_number(url: &str, query: &'static str) -> i64 {
    if url.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(url).await.expect("raw connection");
        let n = sqlx::query_scalar(query).fetch_one(&pool).await.expect(query);
        pool.close().await;
        n
    } else {
        let pool = sqlx::SqlitePool::connect(url).await.expect("raw connection");
        let n = sqlx::query_scalar(query).fetch_one(&pool).await.expect(query);
        pool.close().await;
        n
    }
}

/// Brings a new database to `version` the way pbi-bridge's own migrator did before sqlx's migrations: each
/// step's statements one by one (split at `;`, as it did), recorded in `pbi_schema`.
async fn migrate_the_old_way(url: &str, postgres: bool, version: i64) {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations").join(if postgres { "postgres" } else { "sqlite" });
    let mut files: Vec<_> = std::fs::read_dir(&folder).expect("migrations").map(|f| f.expect("file").path()).collect();
    files.sort();
    let mut statements = vec![
        "CREATE TABLE IF NOT EXISTS pbi_schema (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)".to_owned(),
    ];
    for (step, file) in (1..=version).zip(files) {
        let sql = std::fs::read_to_string(&file).expect("migration");
        statements.extend(sql.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned));
        statements.push(format!("INSERT INTO pbi_schema (version, name, applied_at) VALUES ({step}, 'step {step}', 0)"));
    }
    raw_execute(url, &statements).await;
}

const OLD_ALICE: &str = "7a1f0c6e-0000-4000-8000-000000000001";

/// Rows an earlier build wrote: a user, a registration, two workspaces (`Sales` and `second`), a setting (from
/// migration 6).
async fn old_rows(url: &str, second: &str) {
    raw_execute(url, &[
        format!("INSERT INTO users (id, username, display_name, password_hash, is_admin, created_at) VALUES ('{OLD_ALICE}', 'alice', 'Alice', 'old-hash', 1, 10)"),
        "INSERT INTO registrations (id, name, client_id, tenant, cloud, redirect_urls, scopes, enabled, created_at, updated_at) VALUES ('7a1f0c6e-0000-4000-8000-000000000002', 'erp', 'client', 'contoso', 'public', '[]', '[\"offline_access\"]', 1, 10, 10)".to_owned(),
        format!("INSERT INTO workspaces (id, owner, name, created_at) VALUES ('7a1f0c6e-0000-4000-8000-000000000003', '{OLD_ALICE}', 'Sales', 20)"),
        format!("INSERT INTO workspaces (id, owner, name, created_at) VALUES ('7a1f0c6e-0000-4000-8000-000000000004', '{OLD_ALICE}', '{second}', 21)"),
        "INSERT INTO settings (name, value) VALUES ('connections.shared_accounts', 'true')".to_owned(),
    ])
    .await;
}

/// A database the old migrator brought to 6 (two workspace names alike, allowed then), opened by two instances
/// at once: the first adopts 1 to 6 without running them, applies 7 and 8; the other waits and finds nothing
/// to do. The data is intact, migration 7 renamed the repeat, and a third start changes nothing.
async fn a_database_the_old_migrator_left_at_6_is_adopted_and_gets_7_and_8(postgres: bool) {
    let db = TestDb::new(postgres).await;
    migrate_the_old_way(&db.url, postgres, 6).await;
    old_rows(&db.url, "sales").await;
    let (a, b) = tokio::join!(Store::connect(&db.url, keys(&key_line(1))), Store::connect(&db.url, keys(&key_line(1))));
    let (a, b) = (a.expect("the first instance"), b.expect("the second instance"));
    b.close().await;
    assert_eq!(a.schema_version().await.expect("version"), Store::latest_schema_version());
    let alice = a.user_credentials("alice").await.expect("read").expect("alice kept");
    assert_eq!((alice.0.display_name.as_str(), alice.0.is_admin, alice.1.as_str()), ("Alice", true, "old-hash"));
    let mut names: Vec<String> = a.workspaces_of(alice.0.id).await.expect("list").into_iter().map(|w| w.name).collect();
    names.sort();
    assert_eq!(names, ["Sales", "sales (2)"], "migration 7 ran on the old data");
    assert!(a.shared_accounts_allowed().await.expect("setting"), "migration 6's settings kept");
    assert_eq!(a.registration_by_name("erp").await.expect("kept").details.scopes, ["offline_access"]);
    a.close().await;
    // Adopted steps are recorded as skipped (execution_time -1); 7 and the later ones ran.
    assert_eq!(raw_number(&db.url, "SELECT COUNT(*) FROM _sqlx_migrations WHERE execution_time = -1").await, 6);
    assert_eq!(raw_number(&db.url, "SELECT COUNT(*) FROM _sqlx_migrations").await, Store::latest_schema_version());
    let again = Store::connect(&db.url, keys(&key_line(1))).await.expect("a third start: the checksums match");
    assert_eq!(again.schema_version().await.expect("version"), Store::latest_schema_version());
}

/// A database the old migrator brought fully up (8): nothing runs again, everything reads, and writes work.
async fn a_database_the_old_migrator_brought_up_opens_and_nothing_runs_again(postgres: bool) {
    let db = TestDb::new(postgres).await;
    migrate_the_old_way(&db.url, postgres, 8).await;
    old_rows(&db.url, "Board").await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("opens with the new migrator");
    assert_eq!(store.schema_version().await.expect("version"), Store::latest_schema_version(), "and the steps after 8 ran");
    assert_eq!(raw_number(&db.url, "SELECT COUNT(*) FROM _sqlx_migrations WHERE execution_time = -1").await, 8, "all adopted, none run");
    let alice = store.user_credentials("ALICE").await.expect("read").expect("alice kept").0;
    let mut names: Vec<String> = store.workspaces_of(alice.id).await.expect("list").into_iter().map(|w| w.name).collect();
    names.sort();
    assert_eq!(names, ["Board", "Sales"]);
    assert!(store.shared_accounts_allowed().await.expect("setting"));
    store.add_user("bob", "Bob", "h", false, 30).await.expect("the schema is the one the code expects");
    assert_eq!(raw_number(&db.url, "SELECT COUNT(*) FROM pbi_schema").await, 8, "the old table is left as it was");
}

/// Several instances may start at once, on a new database or when a new build brings a migration: one
/// migrates, the others wait and find nothing to do. (Not on a new SQLite file: switching a file that is
/// being made to WAL does not wait for a lock, so of two instances making it at the same moment one may fail
/// with "database is locked", as it could before. SQLite is for one instance; this is PostgreSQL's case.)
async fn two_instances_start_at_once_on_a_new_database_and_with_a_new_migration(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let (a, b) = if postgres {
        tokio::join!(Store::connect(&db.url, keys(&key_line(1))), Store::connect(&db.url, keys(&key_line(1))))
    } else {
        let a = Store::connect(&db.url, keys(&key_line(1))).await;
        (a, Store::connect(&db.url, keys(&key_line(1))).await)
    };
    let (a, b) = (a.expect("the first instance"), b.expect("the second instance"));
    assert_eq!(a.schema_version().await.expect("version"), Store::latest_schema_version());
    assert_eq!(b.schema_version().await.expect("version"), Store::latest_schema_version());
    a.add_user("alice", "Alice", "h", false, 0).await.expect("usable");
    assert_eq!(b.users().await.expect("list").len(), 1, "one database");
    a.close().await;
    b.close().await;
    // Back to schema 7, as before a build that brought migration 8; two of the new build start together.
    raw_execute(&db.url, &["ALTER TABLE pins DROP COLUMN dataset_id", "DELETE FROM _sqlx_migrations WHERE version = 8"]).await;
    let (a, b) = tokio::join!(Store::connect(&db.url, keys(&key_line(1))), Store::connect(&db.url, keys(&key_line(1))));
    let (a, b) = (a.expect("the first instance"), b.expect("the second instance"));
    assert_eq!(a.schema_version().await.expect("version"), Store::latest_schema_version());
    assert_eq!(raw_number(&db.url, "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = 8").await, 1, "8 ran again, once");
    assert_eq!(b.users().await.expect("list").len(), 1);
}

async fn users_and_sessions(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let admin = store.add_user("admin", "Administrator", "$argon2id$v=19$hash", true, 0).await.expect("user");
    assert!(matches!(store.add_user("admin", "Again", "x", false, 0).await, Err(StoreError::Conflict(_))));
    for other_case in ["Admin", "ADMIN"] {
        let refused = store.add_user(other_case, "Again", "x", false, 0).await;
        assert!(matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("whatever their case")), "{other_case}: {refused:?}");
        let (found, _) = store.user_credentials(other_case).await.expect("read").expect("the same account");
        assert_eq!(found.id, admin.id);
    }
    let (found, hash) = store.user_credentials("admin").await.expect("read").expect("present");
    assert_eq!((found.clone(), hash.as_str()), (admin.clone(), "$argon2id$v=19$hash"));
    assert!(store.user_credentials("nobody").await.expect("read").is_none());
    store.put_session("hash-1", admin.id, "csrf-1", 0, 100).await.expect("session");
    let session = store.session("hash-1", 50).await.expect("read").expect("live");
    assert_eq!((session.user.username.as_str(), session.csrf_token.as_str()), ("admin", "csrf-1"));
    assert!(store.session("hash-1", 100).await.expect("read").is_none(), "expired");
    store.delete_session("hash-1").await.expect("signed out");
    assert!(store.session("hash-1", 1).await.expect("read").is_none());
    assert_eq!(store.users().await.expect("list").len(), 1);
}

/// Alice (with a Power BI connection and a workspace) and Bob.
struct Owners {
    alice: pbi_store::User,
    bob: pbi_store::User,
    connection: pbi_store::Connection,
    workspace: pbi_store::Workspace,
}

async fn owners(store: &Store) -> Owners {
    let alice = store.add_user("alice", "Alice", "h", false, 0).await.expect("user");
    let bob = store.add_user("bob", "Bob", "h", false, 0).await.expect("user");
    let reg = store.add_registration(&registration("erp"), 0).await.expect("registration");
    let account =
        Account { owner: Owner::User(alice.id), registration_id: reg.id, tenant_id: "t".into(), object_id: "o".into(), upn: "a@x".into() };
    let connection = store.save_connection(&account, &[], &tokens("a", None, 0), 0).await.expect("connection");
    let workspace = store.add_workspace(alice.id, "Sales", 0).await.expect("workspace");
    Owners { alice, bob, connection, workspace }
}

fn pin_of(workspace: &pbi_store::Workspace, connection: &pbi_store::Connection, tile: &str) -> pbi_store::Pin {
    pbi_store::Pin {
        id: Uuid::nil(),
        workspace_id: workspace.id,
        connection_id: connection.id,
        group_id: Some("g".into()),
        dashboard_id: "d".into(),
        tile_id: tile.into(),
        title: tile.to_uppercase(),
        row_span: 2,
        col_span: 3,
        embed_url: "https://x/embed".into(),
        position: 0,
        dataset_id: None,
    }
}

async fn workspaces_and_pins(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let Owners { alice, bob, connection, workspace } = owners(&store).await;
    assert!(matches!(store.workspace(workspace.id, bob.id).await, Err(StoreError::NotFound(_))), "Bob cannot read Alice's workspace");
    let pin = |tile: &str| pin_of(&workspace, &connection, tile);
    let first = store.add_pin(&pin("t1"), 0).await.expect("pinned");
    let second = store.add_pin(&pbi_store::Pin { dataset_id: Some("ds-2".into()), ..pin("t2") }, 0).await.expect("pinned");
    assert_eq!((first.position, second.position), (0, 1));
    store.set_pin_dataset(first.id, "ds-1").await.expect("dataset learned");
    let datasets: Vec<Option<String>> = store.pins(workspace.id).await.expect("pins").into_iter().map(|p| p.dataset_id).collect();
    assert_eq!(datasets, [Some("ds-1".into()), Some("ds-2".into())], "kept when pinned, or learned later");
    store.reorder_pins(workspace.id, &[second.id, first.id]).await.expect("reordered");
    let titles: Vec<String> = store.pins(workspace.id).await.expect("pins").into_iter().map(|p| p.title).collect();
    assert_eq!(titles, ["T2", "T1"]);
    assert!(store.reorder_pins(workspace.id, &[Uuid::new_v4()]).await.is_err());
    store.set_company_filter(workspace.id, alice.id, Some("USMF")).await.expect("filter");
    assert_eq!(store.workspace(workspace.id, alice.id).await.expect("read").company_filter.as_deref(), Some("USMF"));
    assert!(store.set_company_filter(workspace.id, bob.id, Some("X")).await.is_err());
    store.remove_pin(workspace.id, first.id).await.expect("unpinned");
    assert_eq!(store.pins(workspace.id).await.expect("pins").len(), 1);
}

async fn api_tokens_are_found_by_hash_until_revoked_or_expired(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let alice = store.add_user("alice", "Alice", "h", false, 0).await.expect("user");
    let bob = store.add_user("bob", "Bob", "h", false, 0).await.expect("user");
    let forever = store.add_api_token(alice.id, "nightly", "hash-a", "pbb_Abc", None, 10).await.expect("token");
    let brief = store.add_api_token(alice.id, "brief", "hash-b", "pbb_Xyz", Some(100), 20).await.expect("token");
    let (found, user) = store.use_api_token("hash-a", 30).await.expect("read").expect("live");
    assert_eq!((found.id, user.id), (forever.id, alice.id));
    assert_eq!(store.api_tokens_of(alice.id).await.expect("list")[1].last_used_at, Some(30), "use is noted");
    store.use_api_token("hash-a", 60).await.expect("read").expect("live");
    assert_eq!(store.api_tokens_of(alice.id).await.expect("list")[1].last_used_at, Some(30), "not rewritten within a minute");
    assert!(store.use_api_token("hash-b", 99).await.expect("read").is_some());
    assert!(store.use_api_token("hash-b", 100).await.expect("read").is_none(), "expired");
    assert!(store.use_api_token("unknown", 1).await.expect("read").is_none());
    assert!(matches!(store.revoke_api_token(forever.id, bob.id, 40).await, Err(StoreError::NotFound(_))), "Bob cannot revoke it");
    assert!(store.api_tokens_of(bob.id).await.expect("list").is_empty());
    store.revoke_api_token(forever.id, alice.id, 40).await.expect("revoked");
    assert!(store.use_api_token("hash-a", 41).await.expect("read").is_none(), "revoked");
    assert!(matches!(store.revoke_api_token(forever.id, alice.id, 42).await, Err(StoreError::NotFound(_))), "only once");
    let left: Vec<Uuid> = store.api_tokens_of(alice.id).await.expect("list").into_iter().map(|t| t.id).collect();
    assert_eq!(left, [brief.id]);
}

async fn deleting_a_workspace_takes_its_pins_and_only_its_owner_can(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let Owners { alice, bob, connection, workspace } = owners(&store).await;
    store.add_pin(&pin_of(&workspace, &connection, "t"), 0).await.expect("pinned");
    assert!(matches!(store.rename_workspace(workspace.id, bob.id, "Mine").await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.delete_workspace(workspace.id, bob.id).await, Err(StoreError::NotFound(_))));
    store.rename_workspace(workspace.id, alice.id, "Sales EU").await.expect("renamed");
    assert_eq!(store.workspace(workspace.id, alice.id).await.expect("still there").name, "Sales EU");
    store.delete_workspace(workspace.id, alice.id).await.expect("deleted");
    assert!(matches!(store.workspace(workspace.id, alice.id).await, Err(StoreError::NotFound(_))));
    assert!(store.pins(workspace.id).await.expect("read").is_empty(), "its pins went with it");
}

/// Found by fuzzing the API: a delete that read before it wrote failed with "database is locked" under SQLite
/// when another write landed in between, and two pins at once could take the same position.
async fn concurrent_pins_and_deletes_neither_fail_nor_share_a_position(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    pins_and_deletes_at_once(&store).await;
}

/// `sqlite::memory:` (nothing on disk) shares one database among the pool's connections through SQLite's shared
/// cache, where a writer that finds a table locked waits only if sqlx is built with unlock-notify (sqlx 0.8
/// always was; 0.9 has it as the `sqlite-unlock-notify` feature): writes at once must wait, not fail.
#[tokio::test]
async fn an_in_memory_sqlite_store_takes_writes_at_once() {
    let store = Store::connect("sqlite::memory:", keys(&key_line(1))).await.expect("connect");
    pins_and_deletes_at_once(&store).await;
}

/// 16 tasks at once, each pinning to one shared workspace, then making, pinning to and deleting one of its own.
async fn pins_and_deletes_at_once(store: &Store) {
    let Owners { alice, connection, workspace, .. } = owners(store).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let (store, connection, workspace) = (store.clone(), connection.clone(), workspace.clone());
        tasks.spawn(async move {
            store.add_pin(&pin_of(&workspace, &connection, &format!("shared-{i}")), 0).await.map(drop)?;
            let own = store.add_workspace(alice.id, &format!("w{i}"), 0).await?;
            store.add_pin(&pin_of(&own, &connection, "t"), 0).await?;
            store.delete_workspace(own.id, alice.id).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task").expect("no store error under concurrency");
    }
    let mut positions: Vec<i64> = store.pins(workspace.id).await.expect("pins").into_iter().map(|p| p.position).collect();
    positions.sort();
    assert_eq!(positions, (0..16).collect::<Vec<_>>(), "each pin has a position of its own");
    assert_eq!(store.workspaces_of(alice.id).await.expect("list").len(), 1, "every other workspace was deleted");
}

async fn a_disabled_user_loses_sessions_and_tokens_and_a_new_password_ends_sessions(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let carol = store.add_user("carol", "Carol", "old-hash", false, 0).await.expect("user");
    store.put_session("s1", carol.id, "c", 0, 1000).await.expect("session");
    store.add_api_token(carol.id, "script", "t1", "pbb_x", None, 0).await.expect("token");
    store.set_user_disabled(carol.id, Some(10)).await.expect("disabled");
    assert_eq!(store.user(carol.id).await.expect("read").disabled_at, Some(10));
    assert!(store.session("s1", 20).await.expect("read").is_none(), "sessions ended");
    assert!(store.use_api_token("t1", 20).await.expect("read").is_none(), "tokens stop while disabled");
    let (found, _) = store.user_credentials("carol").await.expect("read").expect("still there");
    assert_eq!(found.disabled_at, Some(10), "sign-in sees the account is disabled");
    store.set_user_disabled(carol.id, None).await.expect("enabled");
    assert!(store.use_api_token("t1", 30).await.expect("read").is_none(), "disabling ended the token for good");
    store.add_api_token(carol.id, "script", "t2", "pbb_y", None, 30).await.expect("token");
    store.put_session("s2", carol.id, "c", 30, 1000).await.expect("session");
    store.set_password_hash(carol.id, "new-hash").await.expect("password");
    assert!(store.session("s2", 40).await.expect("read").is_none(), "a new password ends sessions");
    assert!(store.use_api_token("t2", 40).await.expect("read").is_some(), "API tokens are credentials of their own");
    assert_eq!(store.user_credentials("carol").await.expect("read").expect("there").1, "new-hash");
    assert!(matches!(store.set_user_disabled(Uuid::new_v4(), Some(1)).await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.set_password_hash(Uuid::new_v4(), "h").await, Err(StoreError::NotFound(_))));
}

async fn workspace_names_are_their_owners_own_whatever_their_case(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let Owners { alice, bob, workspace, .. } = owners(&store).await;
    for taken in ["Sales", "sales", "SALES"] {
        let refused = store.add_workspace(alice.id, taken, 1).await;
        assert!(
            matches!(&refused, Err(StoreError::Conflict(m)) if m == &format!("a workspace named '{taken}' already exists")),
            "{taken}: {refused:?}"
        );
    }
    store.add_workspace(bob.id, "Sales", 1).await.expect("Bob's own Sales");
    let board = store.add_workspace(alice.id, "Board", 1).await.expect("another name");
    let refused = store.rename_workspace(board.id, alice.id, "sALES").await;
    assert!(matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("'sALES'")), "{refused:?}");
    assert_eq!(store.workspace(board.id, alice.id).await.expect("read").name, "Board", "a refused rename changes nothing");
    store.rename_workspace(workspace.id, alice.id, "SALES").await.expect("a workspace may change its own name's case");
    assert_eq!(store.workspaces_of(alice.id).await.expect("list").len(), 2);
}

async fn a_tile_is_pinned_once_per_workspace(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let Owners { alice, connection, workspace, .. } = owners(&store).await;
    store.add_pin(&pin_of(&workspace, &connection, "t"), 0).await.expect("pinned");
    let refused = store.add_pin(&pin_of(&workspace, &connection, "t"), 0).await;
    assert!(matches!(&refused, Err(StoreError::Conflict(m)) if m == "'T' is already pinned here"), "{refused:?}");
    assert_eq!(store.pins(workspace.id).await.expect("pins").len(), 1);
    let other = store.add_workspace(alice.id, "Other", 0).await.expect("workspace");
    store.add_pin(&pin_of(&other, &connection, "t"), 0).await.expect("the same tile in another workspace");
    let mut elsewhere = pin_of(&workspace, &connection, "t");
    elsewhere.dashboard_id = "another dashboard".into();
    store.add_pin(&elsewhere, 0).await.expect("a tile of the same id on another dashboard");
}

/// Migration 7 on a database that already holds what it forbids: it must apply, renaming and dropping.
async fn migration_7_renames_repeated_workspace_names_and_drops_repeated_pins(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let Owners { alice, bob, connection, workspace } = owners(&store).await;
    // Back to schema 6: without the indexes, as a database written before migration 7 was.
    raw_execute(
        &db.url,
        &["DROP INDEX workspaces_owner_name", "DROP INDEX pins_workspace_tile", "DELETE FROM _sqlx_migrations WHERE version = 7"],
    )
    .await;
    let first = store.add_pin(&pin_of(&workspace, &connection, "t"), 0).await.expect("pin");
    store.add_pin(&pin_of(&workspace, &connection, "u"), 0).await.expect("pin");
    store.add_pin(&pin_of(&workspace, &connection, "t"), 0).await.expect("the same tile again");
    store.add_pin(&pin_of(&workspace, &connection, "t"), 0).await.expect("and again");
    let names = ["sales", "Board", " Sales", "SALES", "Sales (2)", "board"];
    for (at, name) in (1..).zip(names) {
        store.add_workspace(alice.id, name.trim_start(), at).await.expect("repeated names");
    }
    store.add_workspace(bob.id, "Sales", 0).await.expect("Bob's");
    store.close().await;

    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("migration 7 applies");
    assert_eq!(store.schema_version().await.expect("version"), Store::latest_schema_version());
    let mut got: Vec<String> = store.workspaces_of(alice.id).await.expect("list").into_iter().map(|w| w.name).collect();
    got.sort();
    // Sales (made first) keeps its name; sales, Sales and SALES become (2), (3), (4) in the order made; the
    // later board becomes board (2); the Sales (2) Alice named herself, now alike with sales (2) and made later,
    // gets its id's first 8 characters.
    let suffixed = got.iter().filter(|n| n.starts_with("Sales (2) ") && n.len() == "Sales (2) ".len() + 8).count();
    got.retain(|n| !n.starts_with("Sales (2) "));
    assert_eq!(got, ["Board", "SALES (4)", "Sales", "Sales (3)", "board (2)", "sales (2)"]);
    assert_eq!(suffixed, 1);
    let folded: std::collections::HashSet<String> = got.iter().map(|n| n.to_lowercase()).collect();
    assert_eq!(folded.len(), got.len(), "no two alike: {got:?}");
    assert_eq!(store.workspaces_of(bob.id).await.expect("list")[0].name, "Sales", "another owner's name is theirs");
    let pins = store.pins(workspace.id).await.expect("pins");
    assert_eq!(pins.iter().map(|p| p.tile_id.as_str()).collect::<Vec<_>>(), ["t", "u"], "the first of each tile kept");
    assert_eq!(pins[0].id, first.id);
    assert!(matches!(store.add_workspace(alice.id, "board (2)", 9).await, Err(StoreError::Conflict(_))), "the index is there");
    assert!(matches!(store.add_pin(&pin_of(&workspace, &connection, "u"), 0).await, Err(StoreError::Conflict(_))));
}

/// What another component (the job engine) writes in a `StoreTx` lands on commit, and is gone after a
/// rollback or when the transaction is dropped. The row here is the shared-accounts setting, so the store's
/// own accessor shows whether it landed.
async fn a_store_transaction_commits_or_rolls_back_what_was_written_in_it(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    assert_eq!(matches!(store.pool(), Pool::Postgres(_)), postgres, "the pool of the URL's backend");
    async fn allow_shared_accounts(tx: &mut StoreTx<'_>) {
        let sql = "INSERT INTO settings (name, value) VALUES ('connections.shared_accounts', 'true')";
        match tx {
            StoreTx::Sqlite(tx) => pbi_store::sqlx::query(sql).execute(&mut **tx).await.map(drop),
            StoreTx::Postgres(tx) => pbi_store::sqlx::query(sql).execute(&mut **tx).await.map(drop),
        }
        .expect("written in the transaction");
    }
    let mut tx = store.begin().await.expect("begin");
    allow_shared_accounts(&mut tx).await;
    tx.rollback().await.expect("rolled back");
    assert!(!store.shared_accounts_allowed().await.expect("read"), "gone with the rollback");
    let mut tx = store.begin().await.expect("begin");
    allow_shared_accounts(&mut tx).await;
    drop(tx);
    assert!(!store.shared_accounts_allowed().await.expect("read"), "gone when the transaction was dropped");
    let mut tx = store.begin().await.expect("begin");
    allow_shared_accounts(&mut tx).await;
    tx.commit().await.expect("committed");
    assert!(store.shared_accounts_allowed().await.expect("read"), "kept by the commit");
}

/// Schedules: one per kind and owner (saving again changes it, and moves its next run only when its
/// recurrence changed); due ones exclude paused; an occurrence is noted and recorded only while it is still
/// the schedule's next, so a late or repeated writer changes nothing.
async fn schedules_are_one_per_kind_and_owner_and_an_occurrence_is_recorded_once(postgres: bool) {
    let db = TestDb::new(postgres).await;
    let store = Store::connect(&db.url, keys(&key_line(1))).await.expect("connect");
    let hourly = pbi_store::NewSchedule {
        kind: "housekeeping.purge".into(),
        owner: "system".into(),
        args: "{}".into(),
        recurrence: "0 * * * *".into(),
        time_zone: "UTC".into(),
        next_run_at: 3600,
    };
    let first = store.upsert_schedule(&hourly, 10).await.expect("created");
    let again = store
        .upsert_schedule(&pbi_store::NewSchedule { next_run_at: 7200, args: r#"{"n":1}"#.into(), ..hourly.clone() }, 20)
        .await
        .expect("saved");
    assert_eq!((again.id, again.next_run_at, again.args.as_str()), (first.id, 3600, r#"{"n":1}"#), "same recurrence: next run kept");
    let changed = store
        .upsert_schedule(&pbi_store::NewSchedule { recurrence: "every 60s".into(), next_run_at: 60, ..hourly.clone() }, 30)
        .await
        .expect("saved");
    assert_eq!((changed.id, changed.next_run_at), (first.id, 60), "a new recurrence: its next run");
    let other =
        store.upsert_schedule(&pbi_store::NewSchedule { owner: "subscription:1".into(), ..hourly.clone() }, 30).await.expect("saved");
    assert_ne!(other.id, first.id);
    assert_eq!(store.schedules().await.expect("list").len(), 2);
    let owners: Vec<String> = store.schedules_of(&first.owner).await.expect("of").into_iter().map(|s| s.owner).collect();
    assert!(owners.iter().all(|o| *o == first.owner) && owners.len() == 1, "one owner's only: {owners:?}");
    assert_eq!(store.schedule_counts_except(&first.owner).await.expect("counts"), [(first.kind.clone(), 1)], "the others counted");

    let due: Vec<Uuid> = store.due_schedules(3600, 10).await.expect("due").into_iter().map(|s| s.id).collect();
    assert_eq!(due, [first.id, other.id], "earliest first");
    store.set_schedule_paused(other.id, true, 40).await.expect("paused");
    assert_eq!(store.due_schedules(3600, 10).await.expect("due").len(), 1, "paused ones are not due");
    assert!(matches!(store.set_schedule_paused(Uuid::new_v4(), true, 40).await, Err(StoreError::NotFound(_))));

    let mut tx = store.begin().await.expect("begin");
    assert!(store.note_pending_occurrence(&mut tx, first.id, 60, 41).await.expect("noted"));
    assert!(!store.note_pending_occurrence(&mut tx, first.id, 59, 42).await.expect("read"), "not the schedule's next occurrence");
    tx.commit().await.expect("commit");
    let mut tx = store.begin().await.expect("begin");
    assert!(store.record_occurrence(&mut tx, first.id, 60, 61, "failed", Some("boom"), 120, Some(43)).await.expect("recorded"));
    assert!(!store.record_occurrence(&mut tx, first.id, 60, 62, "completed", None, 180, Some(44)).await.expect("read"), "once");
    tx.commit().await.expect("commit");
    let row = store.schedule(first.id).await.expect("read").expect("there");
    assert_eq!(
        (row.last_run_at, row.last_outcome.as_deref(), row.last_error.as_deref(), row.next_run_at, row.pending_job_id),
        (Some(61), Some("failed"), Some("boom"), 120, Some(43))
    );
    let mut tx = store.begin().await.expect("begin");
    assert!(store.record_occurrence(&mut tx, first.id, 120, 121, "completed", None, 180, Some(45)).await.expect("recorded"));
    tx.rollback().await.expect("rollback");
    assert_eq!(store.schedule(first.id).await.expect("read").expect("there").next_run_at, 120, "rolled back with its transaction");
}
