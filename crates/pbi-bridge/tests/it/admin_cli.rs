//! `pbi-bridge registration|connections|keys` against the sandbox, with a data directory of its own.

use pbi_sandbox::{Sandbox, SandboxConfig, demo};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn run(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let data_dir = data_dir.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
            .args(&args)
            .arg("--data-dir")
            .arg(&data_dir)
            .env_remove("PBI_BRIDGE__CRYPTO__KEYS")
            .env_remove("PBI_BRIDGE__DATABASE__URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        if let Some(text) = stdin {
            child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().expect("finishes");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("task")
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pbi-admin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_validate_update_and_remove_an_app() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("sandbox");
    let base = sandbox.base_url().to_owned();
    let dir = temp_dir();
    let client_id = pbi_sandbox::demo_client_id().to_string();
    let authorize = format!("{base}/{}/oauth2/v2.0/authorize", demo::CONTOSO_DOMAIN);
    let token = format!("{base}/{}/oauth2/v2.0/token", demo::CONTOSO_DOMAIN);
    let callback = format!("{base}/_sandbox/callback");
    let add = [
        "registration",
        "add",
        "--name",
        "erp",
        "--client-id",
        &client_id,
        "--tenant",
        demo::CONTOSO_DOMAIN,
        "--redirect-url",
        &callback,
        "--authorize-url",
        &authorize,
        "--token-url",
        &token,
        "--secret-stdin",
        "--secret-expires",
        "2099-01-31",
    ];
    let added = run(&dir, &add, Some(demo::APP_SECRET)).await;
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    assert!(added.stdout.contains("secret expires 2099-01-31"), "{}", added.stdout);

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.join("keys")).expect("key file").permissions().mode() & 0o777, 0o600, "the key file is private");
    }
    pbi_testlog::DatabaseFiles::read(&dir.join("pbi-bridge.db")).assert_lacks("client secret (encrypted at rest)", demo::APP_SECRET);

    let shown: Value = serde_json::from_str(&run(&dir, &["registration", "show", "--json"], None).await.stdout).expect("JSON");
    let scopes: Vec<&str> = shown[0]["scopes"].as_array().expect("scopes").iter().filter_map(Value::as_str).collect();
    assert_eq!(scopes.len(), 10, "seed 000's and 001's permissions and offline_access by default: {scopes:?}");
    assert!(scopes.contains(&"Dashboard.ReadWrite.All") && scopes.contains(&"offline_access"), "{scopes:?}");
    assert!(!shown.to_string().contains(demo::APP_SECRET), "show never prints a secret");

    let validated = run(&dir, &["registration", "validate", "--name", "erp", "--callback-url", &callback], None).await;
    assert_eq!(validated.code, Some(0), "{}{}", validated.stdout, validated.stderr);
    assert!(validated.stdout.contains("Entra ID accepted the Application ID and the client secret"), "{}", validated.stdout);

    let updated = run(
        &dir,
        &[
            "registration",
            "update",
            "--name",
            "erp",
            "--add-redirect-url",
            "https://erp.example/oauth/callback",
            "--secret-stdin",
            "--secret-expires",
            "2099-06-30",
        ],
        Some("the-secret-id-by-mistake"),
    )
    .await;
    assert_eq!(updated.code, Some(0), "{}", updated.stderr);
    let refused = run(&dir, &["registration", "validate", "--name", "erp"], None).await;
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(refused.stdout.contains("AADSTS7000215") && !refused.stdout.contains("the-secret-id-by-mistake"), "{}", refused.stdout);

    let no_flag_secret = run(
        &dir,
        &["registration", "add", "--name", "x", "--client-id", "c", "--tenant", "t", "--redirect-url", "https://x", "--secret", "s3cret"],
        None,
    )
    .await;
    assert_eq!(no_flag_secret.code, Some(2), "there is no way to pass a secret as an argument");
    assert!(
        no_flag_secret.stderr.contains("unexpected argument '--secret'"),
        "refused for the flag, not another reason: {}",
        no_flag_secret.stderr
    );

    let removed = run(&dir, &["registration", "remove", "--name", "erp"], None).await;
    assert!(removed.stdout.contains("unregistered 'erp'"), "{}", removed.stdout);
    assert!(run(&dir, &["registration", "show"], None).await.stdout.contains("(none)"));
    assert!(run(&dir, &["registration", "show", "--all"], None).await.stdout.contains("removed"));

    let added_key = run(&dir, &["keys", "add"], None).await;
    assert!(added_key.stdout.contains("added key 2"), "{}", added_key.stdout);
    let rotated: Value = serde_json::from_str(&run(&dir, &["keys", "rotate", "--json"], None).await.stdout).expect("JSON");
    assert_eq!((rotated["currentKey"].as_u64(), rotated["rewritten"].as_u64()), (Some(2), Some(2)), "both secrets re-encrypted");
    let again: Value = serde_json::from_str(&run(&dir, &["keys", "rotate", "--json"], None).await.stdout).expect("JSON");
    assert_eq!(again["rewritten"], 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn connections_list_is_empty_and_unknown_ids_are_not_found() {
    let dir = temp_dir();
    // Data to read: the commands over existing data refuse a data directory that has none (datadir.rs).
    let added = run(&dir, &["users", "add", "--username", "admin", "--password-stdin"], Some("a long enough password\n")).await;
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    let listed = run(&dir, &["connections", "list"], None).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert!(listed.stdout.contains("(none)"));
    let missing = run(&dir, &["connections", "refresh", "--id", &uuid::Uuid::new_v4().to_string()], None).await;
    assert_eq!(missing.code, Some(3), "{}", missing.stderr);
    assert!(missing.stderr.contains("was not found"), "{}", missing.stderr);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn users_are_added_from_stdin_and_serve_answers_on_its_printed_url() {
    let dir = temp_dir();
    let added = run(&dir, &["users", "add", "--username", "admin", "--admin", "--password-stdin"], Some("a long enough password\n")).await;
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    let short = run(&dir, &["users", "add", "--username", "bob", "--password-stdin"], Some("short\n")).await;
    assert_eq!(short.code, Some(2), "{}", short.stderr);
    assert!(short.stderr.contains("at least 10 characters"), "{}", short.stderr);
    let listed = run(&dir, &["users", "list"], None).await;
    assert!(listed.stdout.contains("admin") && !listed.stdout.contains("bob"), "{}", listed.stdout);

    let mut child = Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env_remove("PBI_BRIDGE__CRYPTO__KEYS")
        .env_remove("PBI_BRIDGE__DATABASE__URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve runs");
    let stdout = child.stdout.take().expect("stdout");
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).expect("a first line");
        line
    })
    .await
    .expect("task");
    let base =
        first.trim().strip_prefix("pbi-bridge server listening on ").unwrap_or_else(|| panic!("unexpected first line: {first}")).to_owned();
    let ready: Value = reqwest::get(format!("{base}/readyz")).await.expect("GET").json().await.expect("JSON");
    assert_eq!(ready["status"], "ready");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// Users admin and alice, the registration "erp" with a secret, and a connection of Alice's as a sign-in
/// through the server leaves it: the store on the data directory, Alice's user id, the connection's id.
async fn alice_connected(dir: &Path) -> (pbi_store::Store, String, uuid::Uuid) {
    for user in ["admin", "alice"] {
        let added = run(dir, &["users", "add", "--username", user, "--password-stdin"], Some("a long enough password\n")).await;
        assert_eq!(added.code, Some(0), "{}", added.stderr);
    }
    let add = ["registration", "add", "--name", "erp", "--client-id", "c", "--tenant", "t", "--redirect-url", "https://x/cb"];
    let registered = run(dir, &[&add[..], &["--secret-stdin", "--secret-expires", "2099-01-31"]].concat(), Some("s")).await;
    assert_eq!(registered.code, Some(0), "{}", registered.stderr);
    let users: Value = serde_json::from_str(&run(dir, &["users", "list", "--json"], None).await.stdout).expect("JSON");
    let alice = users.as_array().and_then(|u| u.iter().find(|u| u["username"] == "alice")).expect("alice")["id"].as_str().expect("id");
    let registrations: Value = serde_json::from_str(&run(dir, &["registration", "show", "--json"], None).await.stdout).expect("JSON");
    let registration = registrations[0]["id"].as_str().and_then(|id| id.parse().ok()).expect("a registration id");

    let keys = pbi_crypto::KeyRing::load(&dir.join("keys")).expect("the key file");
    let store = pbi_store::Store::connect(&format!("sqlite://{}", dir.join("pbi-bridge.db").display()), keys).await.expect("store");
    let account = pbi_store::Account {
        owner: pbi_store::Owner::User(alice.parse().expect("a user id")),
        registration_id: registration,
        tenant_id: "tenant".into(),
        object_id: "object".into(),
        upn: "alice@contoso.onmicrosoft.com".into(),
    };
    let tokens = pbi_store::Tokens {
        access: secrecy::SecretString::from("access".to_owned()),
        access_expires_at: 4_000_000_000,
        refresh: None,
        refresh_expires_at: None,
    };
    let connection = store.save_connection(&account, &[], &tokens, 1_700_000_000).await.expect("saved").id;
    (store, alice.to_owned(), connection)
}

/// Alice connected (as `alice_connected`) and subscribed to an item with a `company` parameter (hourly at :05
/// in Berlin, not scheduled yet); the store and the subscription's id.
async fn alice_subscribed(dir: &Path) -> (pbi_store::Store, uuid::Uuid) {
    let (store, alice, connection) = alice_connected(dir).await;
    let item = pbi_store::NewItem {
        name: "Open orders".into(),
        definition: "{}".into(),
        source: pbi_store::ItemSource::Pushed,
        data_source_id: None,
        query: None,
        parameters: r#"{"company":"USMF"}"#.into(),
        everyone: true,
        pinners: vec![],
    };
    let item = store.add_item(&item, 1).await.expect("item").id;
    let pin = pbi_store::NewSubscription {
        owner: alice.parse().expect("a user id"),
        connection_id: connection,
        item_id: item,
        parameters: "{}".into(),
        workspace_id: None,
        workspace_name: "My workspace".into(),
        dashboard_id: uuid::Uuid::new_v4(),
        dashboard_name: "Orders".into(),
        frequency: r#"{"every":"hourly","minute":5}"#.into(),
        time_zone: "Europe/Berlin".into(),
    };
    let subscription = store.add_subscription(&pin, 2).await.expect("subscription").id;
    (store, subscription)
}

#[tokio::test]
async fn an_administrator_lists_changes_runs_and_deletes_the_users_subscriptions() {
    let dir = temp_dir();
    let (store, subscription) = alice_subscribed(&dir).await;
    let id = subscription.to_string();
    let listed = run(&dir, &["subscriptions", "list"], None).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    for shown in [id.as_str(), "alice", "Open orders", "Orders", "Hourly, at 5 past (Europe/Berlin)", "active"] {
        assert!(listed.stdout.contains(shown), "{shown} in {}", listed.stdout);
    }
    let admins = run(&dir, &["subscriptions", "list", "--user", "admin", "--json"], None).await;
    assert_eq!(serde_json::from_str::<Value>(&admins.stdout).expect("JSON"), json!([]), "{}", admins.stderr);
    let nobody = run(&dir, &["subscriptions", "list", "--user", "carol"], None).await;
    assert_eq!(nobody.code, Some(2));
    assert!(nobody.stderr.contains("--user: there is no user 'carol'"), "{}", nobody.stderr);

    // Bad input names its flag (exit 2) and changes nothing.
    let before = store.subscription(subscription).await.expect("read").details;
    for (flags, said) in [
        (&["--every", "weekly", "--time", "07:30"][..], "--day: Choose at least one day of the week."),
        (&["--time", "07:30"][..], "--every: say how often"),
        (&["--time-zone", "Mars/Olympus_Mons"][..], "--time-zone: "),
        (&["--param", "region=East"][..], "--param region: this item has no such parameter; its parameters are company"),
        (&["--param", "company"][..], "'company' is not NAME=VALUE"),
        (&[][..], "say what to change"),
    ] {
        let refused = run(&dir, &[&["subscriptions", "update", id.as_str()][..], flags].concat(), None).await;
        assert_eq!(refused.code, Some(2), "{flags:?}: {}", refused.stderr);
        assert!(refused.stderr.contains(said), "{flags:?}: {}", refused.stderr);
    }
    assert_eq!(store.subscription(subscription).await.expect("read").details, before, "nothing changed");

    let update = ["subscriptions", "update", &id, "--every", "daily", "--time", "06:30", "--time-zone", "UTC", "--param", "company=DEMF"];
    let updated = run(&dir, &update, None).await;
    assert_eq!(updated.code, Some(0), "{}", updated.stderr);
    assert_eq!(updated.stdout.trim(), "Saved: Daily at 06:30 (UTC). It delivers now with the new parameters.");
    let changed = store.subscription(subscription).await.expect("read").details;
    assert_eq!((changed.time_zone.as_str(), changed.parameters.as_str()), ("UTC", r#"{"company":"DEMF"}"#));
    let owner = format!("subscription:{subscription}");
    let schedule = store.schedule_of("deliveries.run", &owner).await.expect("read").expect("scheduled");
    assert_eq!(schedule.recurrence, "30 6 * * *");

    // Disabled, it cannot run (exit 3, saying why); enabled, it can; the audit log names each change.
    let disabled = run(&dir, &["subscriptions", "update", &id, "--disable"], None).await;
    assert_eq!((disabled.code, disabled.stdout.trim()), (Some(0), "Disabled."), "{}", disabled.stderr);
    assert!(store.schedule_of("deliveries.run", &owner).await.expect("read").is_none(), "its schedule stopped");
    let refused = run(&dir, &["subscriptions", "run", &id], None).await;
    assert_eq!(refused.code, Some(3));
    assert!(refused.stderr.contains("this subscription is disabled: Disabled by its owner."), "{}", refused.stderr);
    run(&dir, &["subscriptions", "update", &id, "--enable"], None).await;
    let ran = run(&dir, &["subscriptions", "run", &id, "--json"], None).await;
    assert_eq!(ran.code, Some(0), "{}", ran.stderr);
    assert!(serde_json::from_str::<Value>(&ran.stdout).expect("JSON")["job"].is_i64(), "{}", ran.stdout);
    let shown: Value = serde_json::from_str(&run(&dir, &["subscriptions", "show", &id], None).await.stdout).expect("JSON");
    assert_eq!((shown["state"].as_str(), shown["frequency"].as_str()), (Some("active"), Some("Daily at 06:30")), "{shown}");
    assert!(shown["nextRunAt"].is_string() && shown["deliveries"] == json!([]), "{shown}");
    let (entries, _) = store.audit_entries(None, 50).await.expect("audit");
    let actions: Vec<&str> = entries.iter().filter(|e| e.entry.actor == "cli").map(|e| e.entry.action.as_str()).collect();
    for action in ["subscription.settings", "subscription.disabled", "subscription.enabled", "subscription.run"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }

    let deleted = run(&dir, &["subscriptions", "delete", &id], None).await;
    assert_eq!(deleted.code, Some(0), "{}", deleted.stderr);
    assert!(deleted.stdout.contains("stay in Power BI, in 'My workspace'"), "{}", deleted.stdout);
    let gone = run(&dir, &["subscriptions", "show", &id], None).await;
    assert_eq!(gone.code, Some(3));
    assert!(gone.stderr.contains(&format!("subscription {id}: `pbi-bridge subscriptions list` shows them")), "{}", gone.stderr);
    assert!(store.schedule_of("deliveries.run", &owner).await.expect("read").is_none());
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn enabling_a_registration_again_resumes_the_subscriptions_it_paused() {
    let dir = temp_dir();
    let (store, subscription) = alice_subscribed(&dir).await;

    // Disabled, a delivery pauses the subscription (as the delivery job does); enabling brings it back.
    let disabled = run(&dir, &["registration", "update", "--name", "erp", "--disable"], None).await;
    assert_eq!(disabled.code, Some(0), "{}", disabled.stderr);
    assert!(!disabled.stderr.contains("Resumed"), "{}", disabled.stderr);
    let reason = Some("The delivery extension for this subscription could not be loaded");
    store.set_subscription_state(subscription, pbi_store::SubscriptionState::Paused, reason, 3).await.expect("paused");
    let enabled = run(&dir, &["registration", "update", "--name", "erp", "--enable", "--json"], None).await;
    assert_eq!(enabled.code, Some(0), "{}", enabled.stderr);
    assert!(enabled.stderr.contains("Resumed 1 paused subscription(s); each delivers now."), "{}", enabled.stderr);
    serde_json::from_str::<Value>(&enabled.stdout).expect("--json prints one document still");
    let resumed = store.subscription(subscription).await.expect("read");
    assert_eq!((resumed.state, resumed.state_reason), (pbi_store::SubscriptionState::Active, None));
    let owner = format!("subscription:{subscription}");
    assert!(store.schedule_of("deliveries.run", &owner).await.expect("schedule").is_some(), "scheduled again");
    store.close().await;

    // Its delivery is queued for `serve` to run now, and its next hourly occurrence (at :05) after it.
    let jobs: Value = serde_json::from_str(&run(&dir, &["jobs", "list", "--json"], None).await.stdout).expect("JSON");
    let mut deliveries: Vec<(&str, &str)> = jobs
        .as_array()
        .expect("a list")
        .iter()
        .filter(|j| j["kind"] == "deliveries.run" && j["args"]["subscription"] == subscription.to_string())
        .map(|j| (j["state"].as_str().unwrap_or_default(), j["uniqueKey"].as_str().unwrap_or_default()))
        .collect();
    deliveries.sort_unstable();
    assert_eq!(deliveries.len(), 2, "{jobs}");
    assert_eq!(deliveries[0], ("available", format!("deliver-now:{subscription}").as_str()), "{jobs}");
    assert!(deliveries[1].0 == "scheduled" && deliveries[1].1.starts_with("schedule:"), "{jobs}");
    let again = run(&dir, &["registration", "update", "--name", "erp", "--enable"], None).await;
    assert!(!again.stderr.contains("Resumed"), "nothing paused is left: {}", again.stderr);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn connections_list_names_their_owners() {
    let dir = temp_dir();
    let (store, alice, _) = alice_connected(&dir).await;
    let alice = alice.as_str();
    store.close().await;

    let listed = run(&dir, &["connections", "list"], None).await;
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let row = listed.stdout.lines().find(|l| l.contains("alice@contoso")).unwrap_or_else(|| panic!("listed: {}", listed.stdout));
    assert_eq!(row.split_whitespace().nth(1), Some("alice"), "the owner's user name, not their id: {}", listed.stdout);
    assert!(!listed.stdout.contains(alice), "{}", listed.stdout);
    let json: Value = serde_json::from_str(&run(&dir, &["connections", "list", "--json"], None).await.stdout).expect("JSON");
    assert_eq!((json[0]["owner"].as_str(), json[0]["ownerName"].as_str()), (Some(alice), Some("alice")), "scripts get both");
    for owner in ["Alice", alice] {
        let mine = run(&dir, &["connections", "list", "--owner", owner], None).await;
        assert!(mine.stdout.contains("alice@contoso"), "--owner {owner}: {}{}", mine.stdout, mine.stderr);
    }
    assert!(run(&dir, &["connections", "list", "--owner", "admin"], None).await.stdout.contains("(none)"));
    let nobody = run(&dir, &["connections", "list", "--owner", "carol"], None).await;
    assert_eq!(nobody.code, Some(2), "{}", nobody.stderr);
    assert!(nobody.stderr.contains("no pbi-bridge user 'carol'") && nobody.stderr.contains("users list"), "{}", nobody.stderr);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn data_sources_and_items_are_defined_from_the_command_line_with_the_credential_from_stdin() {
    const SECRET: &str = "cli-Secret-Password-77";
    let dir = temp_dir();
    let added = run(&dir, &["users", "add", "--username", "admin", "--admin", "--password-stdin"], Some("a long enough password\n")).await;
    assert_eq!(added.code, Some(0), "{}", added.stderr);

    let leaky = format!("postgres://app:{SECRET}@db.example.com/finance");
    let refused = run(&dir, &["data-sources", "add", "--name", "Finance", "--kind", "postgres", "--location", &leaky], None).await;
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(refused.stderr.contains("location: Remove the password") && !refused.stderr.contains(SECRET), "{}", refused.stderr);
    let args = [
        "data-sources",
        "add",
        "--name",
        "Finance",
        "--kind",
        "postgres",
        "--location",
        "postgres://db.example.com/finance",
        "--username",
        "reporting",
        "--credential-stdin",
    ];
    let added = run(&dir, &args, Some(&format!("{SECRET}\n"))).await;
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    assert!(added.stdout.contains("its credential stored encrypted") && !added.stdout.contains(SECRET), "{}", added.stdout);
    let file = dir.join("reports.db").display().to_string();
    let added = run(&dir, &["data-sources", "add", "--name", "Reports", "--kind", "sqlite", "--location", &file], None).await;
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    let moved = run(&dir, &["data-sources", "update", "finance", "--location", "postgres://db2.example.com/finance"], None).await;
    assert_eq!(moved.code, Some(0), "{}", moved.stderr);
    let listed = run(&dir, &["data-sources", "list", "--json"], None).await;
    let sources: Value = serde_json::from_str(&listed.stdout).expect("JSON");
    assert_eq!(sources[0]["location"], "postgres://db2.example.com/finance", "{sources}");
    assert_eq!(
        (sources[0]["hasCredential"].as_bool(), sources[1]["hasCredential"].as_bool()),
        (Some(true), Some(false)),
        "the credential stayed"
    );
    assert!(!listed.stdout.contains(SECRET));
    let database = std::fs::read(dir.join("pbi-bridge.db")).unwrap_or_default();
    assert!(!database.is_empty() && !database.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()), "stored encrypted");

    // An item is the API's JSON; a fault names its field.
    let item = |query: &str| {
        serde_json::json!({
            "name": "Chart2", "kind": "category-series",
            "columns": [{"name": "Department", "type": "text"}, {"name": "Amount", "type": "decimal"}],
            "category": "Department", "value": "Amount", "source": "query", "dataSourceId": sources[1]["id"], "query": query,
            "parameters": {"company": "USMF"},
        })
        .to_string()
    };
    let bad = run(&dir, &["items", "add", "--file", "-"], Some(&item("UPDATE spend SET amount = 0"))).await;
    assert_eq!(bad.code, Some(2), "{}", bad.stderr);
    assert!(bad.stderr.contains("query: only a query that reads"), "{}", bad.stderr);
    let typo = run(&dir, &["items", "add", "--file", "-"], Some(r#"{"name": "X", "knd": "table"}"#)).await;
    assert_eq!(typo.code, Some(2), "{}", typo.stderr);
    assert!(typo.stderr.contains("knd"), "{}", typo.stderr);
    let sql = "SELECT department AS Department, SUM(amount) AS Amount FROM spend WHERE company = :company GROUP BY department";
    let added = run(&dir, &["items", "add", "--file", "-"], Some(&item(sql))).await;
    assert_eq!(added.code, Some(0), "{}", added.stderr);
    let shown = run(&dir, &["items", "show", "chart2"], None).await;
    let definition: Value = serde_json::from_str(&shown.stdout).expect("JSON");
    assert_eq!((definition["query"].as_str(), definition["everyone"].as_bool()), (Some(sql), Some(true)), "{definition}");
    let listed = run(&dir, &["items", "list"], None).await;
    assert!(listed.stdout.contains("Chart2") && listed.stdout.contains("category-series"), "{}", listed.stdout);
    let busy = run(&dir, &["data-sources", "remove", "Reports"], None).await;
    assert_eq!(busy.code, Some(3), "{}", busy.stderr);
    assert!(busy.stderr.contains("items use this data source"), "{}", busy.stderr);
    assert_eq!(run(&dir, &["items", "remove", "Chart2"], None).await.code, Some(0));
    assert_eq!(run(&dir, &["data-sources", "remove", "Reports"], None).await.code, Some(0));
    let missing = run(&dir, &["items", "show", "Chart2"], None).await;
    assert_eq!(missing.code, Some(3), "{}", missing.stderr);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_is_made_and_its_key_rotated_from_the_command_line_each_key_printed_once() {
    let dir = temp_dir();
    let (store, _, _) = alice_connected(&dir).await;
    let made =
        run(&dir, &["apps", "add", "--name", "ERP", "--registration", "erp", "--origin", "https://erp.example.com", "--json"], None).await;
    assert_eq!(made.code, Some(0), "{}", made.stderr);
    let made: Value = serde_json::from_str(&made.stdout).expect("JSON");
    let first = made["secretKey"].as_str().expect("the key").to_owned();
    let id = made["app"]["id"].as_str().expect("id").to_owned();

    let bad = run(&dir, &["apps", "add", "--name", "CRM", "--registration", "erp", "--origin", "http://crm.example.com"], None).await;
    assert_eq!(bad.code, Some(2), "a usage error");
    assert!(bad.stderr.contains("--origin: 'http://crm.example.com' must use https"), "{}", bad.stderr);
    let nowhere = run(&dir, &["apps", "add", "--name", "CRM", "--registration", "crm"], None).await;
    assert!(nowhere.stderr.contains("--registration: there is no registration 'crm'"), "{}", nowhere.stderr);

    let rotated = run(&dir, &["apps", "rotate-key", &id, "--overlap-hours", "0"], None).await;
    assert_eq!(rotated.code, Some(0), "{}", rotated.stderr);
    assert!(rotated.stdout.contains("secret key (shown this once; give it to the app's backend): pbs_"), "{}", rotated.stdout);
    let shown = run(&dir, &["apps", "show", &id], None).await.stdout;
    assert_eq!(serde_json::from_str::<Value>(&shown).expect("JSON")["keys"].as_array().map(Vec::len), Some(2), "{shown}");
    assert!(!shown.contains(&first[8..]), "never shown again");
    let listed = run(&dir, &["apps", "list"], None).await.stdout;
    assert!(listed.contains("ERP") && listed.contains("https://erp.example.com"), "{listed}");
    // Rotated with no overlap, the first key no longer works.
    let now = i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("time").as_secs()).expect("i64");
    let found = pbi_connect::apps::app_for_key(&store, &secrecy::SecretString::from(first), now).await.expect("lookup");
    assert_eq!(found, Err(pbi_connect::apps::KeyRefused::Unknown));

    let renamed = run(&dir, &["apps", "update", &id, "--name", "ERP 2", "--json"], None).await;
    assert_eq!(renamed.code, Some(0), "{}", renamed.stderr);
    let renamed: Value = serde_json::from_str(&renamed.stdout).expect("JSON");
    assert_eq!(
        (renamed["name"].as_str(), renamed["allowedOrigins"].clone()),
        (Some("ERP 2"), json!(["https://erp.example.com"])),
        "the rest stays"
    );
    let removed = run(&dir, &["apps", "remove", &id], None).await;
    assert!(removed.stdout.contains("its secret keys stopped working"), "{}", removed.stdout);
    let again = run(&dir, &["apps", "remove", &id], None).await;
    assert_eq!(again.code, Some(2), "{}", again.stderr);
    let _ = std::fs::remove_dir_all(dir);
}
