//! Apps and their secret keys on the store, on SQLite and on PostgreSQL (127.0.0.1:5432; each test makes its
//! own database).

use pbi_connect::AppError;
use pbi_connect::app::AppSpec;
use pbi_connect::apps::{self, KeyRefused};
use pbi_crypto::KeyRing;
use pbi_store::{NewRegistration, Store};
use secrecy::{ExposeSecret, SecretString};

async fn store_on(postgres: bool) -> (pbi_testdb::TestDb, Store) {
    let db = pbi_testdb::TestDb::new(postgres, "pbi_connect").await;
    let keys = KeyRing::parse(&KeyRing::new_key_line(1)).expect("keys");
    let store = Store::connect(&db.url, keys).await.expect("store");
    (db, store)
}

async fn registration(store: &Store) -> uuid::Uuid {
    let new = NewRegistration {
        name: "erp".into(),
        client_id: uuid::Uuid::new_v4().to_string(),
        tenant: "contoso.onmicrosoft.com".into(),
        cloud: "public".into(),
        redirect_urls: vec!["http://localhost:8080/oauth/callback".into()],
        scopes: vec!["Dataset.Read.All".into(), "offline_access".into()],
        authorize_url: None,
        token_url: None,
        api_base: None,
        enabled: true,
    };
    store.add_registration(&new, 0).await.expect("registration").id
}

fn spec(name: &str, registration_id: uuid::Uuid) -> AppSpec {
    AppSpec { name: name.into(), registration_id, allowed_origins: vec!["https://erp.example.com".into()] }
}

async fn an_app_is_made_with_a_key_shown_once_and_a_rotation_lets_the_old_key_work_for_its_overlap(postgres: bool) {
    let (_db, store) = store_on(postgres).await;
    let registration = registration(&store).await;
    let (app, first) = apps::create(&store, "admin", &spec("ERP", registration), 100).await.expect("made");
    assert_eq!(apps::app_for_key(&store, &first.secret, 101).await.expect("lookup"), Ok(app.clone()));
    let (_, keys) = apps::show(&store, app.id).await.expect("shown");
    assert_eq!((keys.len(), keys[0].hint.as_str(), keys[0].expires_at), (1, first.hint.as_str(), None));

    let (made, second) = apps::rotate_key(&store, "admin", app.id, Some(2), 1_000).await.expect("rotated");
    assert_eq!(made.expires_at, None, "the new key is the one in use");
    for (at, first_works) in [(1_000 + 7_199, true), (1_000 + 7_200, false)] {
        let found = apps::app_for_key(&store, &first.secret, at).await.expect("lookup").map(|a| a.id);
        assert_eq!(found, if first_works { Ok(app.id) } else { Err(KeyRefused::Unknown) }, "at {at}");
        assert_eq!(apps::app_for_key(&store, &second.secret, at).await.expect("lookup").map(|a| a.id), Ok(app.id));
    }
    // Rotating again at once stops every older key now, and never lengthens an overlap already given.
    let (_, third) = apps::rotate_key(&store, "admin", app.id, Some(0), 1_001).await.expect("rotated");
    assert_eq!(apps::app_for_key(&store, &second.secret, 1_001).await.expect("lookup"), Err(KeyRefused::Unknown));
    assert_eq!(apps::app_for_key(&store, &first.secret, 1_001).await.expect("lookup"), Err(KeyRefused::Unknown));
    assert!(apps::app_for_key(&store, &third.secret, 1_001).await.expect("lookup").is_ok());
    let (_, keys) = apps::show(&store, app.id).await.expect("shown");
    assert_eq!(keys.len(), 3);
    assert!(keys[1..].iter().all(|k| k.expires_at == Some(1_001)), "{keys:?}");

    let refused = |text: &str| SecretString::from(text.to_owned());
    assert_eq!(apps::app_for_key(&store, &refused("pbb_an-api-token"), 1_001).await.expect("lookup"), Err(KeyRefused::NotAKey));
    let forged = format!("pbs_{}", "A".repeat(43));
    assert_eq!(apps::app_for_key(&store, &refused(&forged), 1_001).await.expect("lookup"), Err(KeyRefused::Unknown));

    let (entries, _) = store.audit_entries(None, 10).await.expect("audit");
    let actions: Vec<&str> = entries.iter().map(|e| e.entry.action.as_str()).collect();
    assert_eq!(actions, ["apps.key.rotated", "apps.key.rotated", "apps.created"]);
    let all = format!("{entries:?}");
    for key in [&first, &second, &third] {
        assert!(!all.contains(key.secret.expose_secret()), "no key in the audit log");
    }
}

async fn bad_apps_are_refused_naming_the_field_and_names_are_unique_whatever_their_case(postgres: bool) {
    let (_db, store) = store_on(postgres).await;
    let registration = registration(&store).await;
    apps::create(&store, "admin", &spec("ERP", registration), 1).await.expect("made");
    let again = apps::create(&store, "admin", &spec("erp", registration), 2).await.expect_err("taken");
    assert!(matches!(&again, AppError::Conflict(why) if why.contains("an app named 'erp' already exists")), "{again}");
    let nowhere = apps::create(&store, "admin", &spec("CRM", uuid::Uuid::new_v4()), 3).await.expect_err("no registration");
    assert_eq!(nowhere.field(), Some("registrationId"));
    let mut bad = spec("CRM", registration);
    bad.allowed_origins.push("http://crm.example.com".into());
    assert_eq!(apps::create(&store, "admin", &bad, 4).await.expect_err("http").field(), Some("allowedOrigins[1]"));
    let unknown = uuid::Uuid::new_v4();
    assert!(matches!(apps::rotate_key(&store, "admin", unknown, None, 5).await, Err(AppError::NotFound(_))));
    assert_eq!(apps::rotate_key(&store, "admin", unknown, Some(721), 5).await.expect_err("too long").field(), Some("overlapHours"));
    assert_eq!(store.apps().await.expect("apps").len(), 1, "nothing else was made");
}

async fn an_app_is_renamed_and_deleted_and_its_keys_stop_with_it(postgres: bool) {
    let (_db, store) = store_on(postgres).await;
    let registration = registration(&store).await;
    let (erp, key) = apps::create(&store, "admin", &spec("ERP", registration), 1).await.expect("made");
    apps::create(&store, "admin", &spec("CRM", registration), 1).await.expect("made");
    let mut renamed = spec("ERP (production)", registration);
    renamed.allowed_origins = vec!["https://erp.example.com".into(), "https://erp2.example.com".into()];
    let changed = apps::update(&store, "admin", erp.id, &renamed, 2).await.expect("changed");
    assert_eq!((changed.details.name.as_str(), changed.details.allowed_origins.len(), changed.updated_at), ("ERP (production)", 2, 2));
    assert!(apps::app_for_key(&store, &key.secret, 3).await.expect("lookup").is_ok(), "its key stays");
    let taken = apps::update(&store, "admin", erp.id, &spec("crm", registration), 3).await.expect_err("taken");
    assert!(matches!(taken, AppError::Conflict(_)), "{taken}");
    assert_eq!(apps::update(&store, "admin", erp.id, &spec("", registration), 3).await.expect_err("no name").field(), Some("name"));

    apps::delete(&store, "admin", erp.id, 4).await.expect("deleted");
    assert_eq!(apps::app_for_key(&store, &key.secret, 5).await.expect("lookup"), Err(KeyRefused::Unknown));
    assert!(matches!(apps::show(&store, erp.id).await, Err(AppError::NotFound(_))));
    assert!(matches!(apps::delete(&store, "admin", erp.id, 6).await, Err(AppError::NotFound(_))));
    let names: Vec<String> = store.apps().await.expect("apps").into_iter().map(|a| a.details.name).collect();
    assert_eq!(names, ["CRM"]);
    let (entries, _) = store.audit_entries(None, 1).await.expect("audit");
    assert_eq!((entries[0].entry.action.as_str(), entries[0].entry.target.as_str()), ("apps.deleted", "ERP (production)"));
}

async fn a_session_makes_its_end_user_once_is_held_by_one_browser_and_ends_once(postgres: bool) {
    use pbi_connect::sessions::{self, SessionRefused, SessionSpec};
    use pbi_store::{Account, EndUserDetails, Tokens};
    let (_db, store) = store_on(postgres).await;
    let registration = registration(&store).await;
    let (app, _) = apps::create(&store, "admin", &spec("ERP", registration), 100).await.expect("made");
    let spec = |email: Option<&str>| SessionSpec {
        end_user: EndUserDetails { external_id: "u-42".into(), email: email.map(str::to_owned), display_name: None },
        return_url: Some("https://erp.example.com/back".into()),
        reconnect: None,
    };
    let first = spec(Some("ann@erp.example")).create(&store, &app, 200).await.expect("session");
    let second = spec(None).create(&store, &app, 201).await.expect("session");
    assert_eq!(first.end_user.id, second.end_user.id, "the same external id is the same end user");
    assert_eq!(second.end_user.email.as_deref(), Some("ann@erp.example"), "a session without an e-mail keeps the one stored");
    let token = first.token.expose_secret();
    assert_eq!(sessions::open(&store, token, "browser-a", 300).await.expect("open").map(|s| s.id), Ok(first.session.id));
    assert_eq!(sessions::open(&store, token, "browser-b", 300).await.expect("open").map(|s| s.id), Err(SessionRefused::OtherBrowser));
    assert_eq!(sessions::open(&store, token, "browser-a", 200 + 1800).await.expect("open").map(|s| s.id), Err(SessionRefused::Expired));
    assert_eq!(sessions::open(&store, "pcs_nope", "browser-a", 300).await.expect("open").map(|s| s.id), Err(SessionRefused::NotAToken));

    // A connection of the end user keeps the app; once it is disconnected, the app goes and takes it along.
    let account = Account {
        owner: first.end_user.as_owner(),
        registration_id: registration,
        tenant_id: "t".into(),
        object_id: "o".into(),
        upn: "ann@contoso.onmicrosoft.com".into(),
    };
    let tokens = Tokens { access: SecretString::from("a".to_owned()), access_expires_at: 999, refresh: None, refresh_expires_at: None };
    let connection = store.save_connection(&account, &[], &tokens, 300).await.expect("connection");
    sessions::connected(&store, first.session.id, connection.id, &account.upn, 301).await.expect("ended");
    sessions::failed(&store, first.session.id, sessions::Failure::SignInFailed, "late", 302).await.expect("no-op");
    let ended = store.connect_session(first.session.id).await.expect("session");
    assert_eq!(ended.outcome.map(|o| (o.code, o.connection_id)), Some(("connected".to_owned(), Some(connection.id))), "ends once");
    assert_eq!(sessions::open(&store, token, "browser-a", 303).await.expect("open").map(|s| s.id), Err(SessionRefused::Ended));
    use pbi_connect::connections::{self, ConnectionFilter};
    let filter = |end_user: Option<&str>, status| ConnectionFilter { end_user: end_user.map(str::to_owned), status };
    let (listed, next) =
        connections::list(&store, &app, &filter(Some("u-42"), Some(pbi_store::ConnectionStatus::Active)), None, 10).await.expect("list");
    assert_eq!((listed.len(), listed[0].end_user.external_id.as_str(), next), (1, "u-42", None));
    assert!(connections::list(&store, &app, &filter(Some("u-7"), None), None, 10).await.expect("list").0.is_empty());
    let other =
        store.upsert_end_user(app.id, &EndUserDetails { external_id: "u-43".into(), ..Default::default() }, 300).await.expect("end user");
    let second = store.save_connection(&Account { owner: other.as_owner(), ..account.clone() }, &[], &tokens, 300).await.expect("second");
    let (first_page, next) = connections::list(&store, &app, &filter(None, None), None, 1).await.expect("page 1");
    let (second_page, last) = connections::list(&store, &app, &filter(None, None), next, 1).await.expect("page 2");
    let mut both = [first_page[0].connection.id, second_page[0].connection.id];
    both.sort();
    let mut expected = [connection.id, second.id];
    expected.sort();
    assert_eq!((both, last), (expected, None), "two pages of one, then no more");
    store.disconnect(second.id, 300).await.expect("disconnected");
    let revoked = connections::list(&store, &app, &filter(None, Some(pbi_store::ConnectionStatus::Revoked)), None, 10).await.expect("list");
    assert_eq!(revoked.0.iter().map(|c| c.connection.id).collect::<Vec<_>>(), [second.id], "only the disconnected one");
    assert!(matches!(apps::delete(&store, "admin", app.id, 400).await, Err(AppError::Conflict(_))));
    store.disconnect(connection.id, 401).await.expect("disconnected");
    apps::delete(&store, "admin", app.id, 402).await.expect("deleted");
    assert!(store.all_connections().await.expect("connections").is_empty());
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(false).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() { super::$name(true).await } )* }
    };
}

on_both!(
    an_app_is_made_with_a_key_shown_once_and_a_rotation_lets_the_old_key_work_for_its_overlap,
    bad_apps_are_refused_naming_the_field_and_names_are_unique_whatever_their_case,
    an_app_is_renamed_and_deleted_and_its_keys_stop_with_it,
    a_session_makes_its_end_user_once_is_held_by_one_browser_and_ends_once,
);
