//! `pbi-bridge powerbi <action>` against the sandbox: every action, its output, and its exit codes.

use pbi_sandbox::{Command as SandboxCommand, Sandbox, SandboxConfig, SandboxHandle, WorkspaceRole, demo, demo_id};
use serde_json::Value;
use std::io::Write;
use std::process::{Command, Stdio};

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary as the demo service principal (client credentials) against `sandbox`.
async fn cli(sandbox: &SandboxHandle, args: &[&str], stdin: Option<String>) -> Output {
    let base = sandbox.base_url().to_owned();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
            .arg("powerbi")
            .args(&args)
            .args([
                "--api-base",
                &base,
                "--authority",
                &format!("{base}/{}", demo::CONTOSO_DOMAIN),
                "--client-id",
                &pbi_sandbox::demo_automation_client_id().to_string(),
            ])
            .env("PBI_BRIDGE_CLIENT_SECRET", demo::AUTOMATION_SECRET)
            .env_remove("PBI_BRIDGE_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        if let Some(input) = stdin {
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
        }
        drop(child.stdin.take());
        let output = child.wait_with_output().expect("finishes");
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("task")
}

async fn sandbox() -> SandboxHandle {
    Sandbox::start(SandboxConfig::default()).await.expect("sandbox")
}

async fn stored_rows(sandbox: &SandboxHandle, dataset: &str, table: &str) -> u64 {
    let url = format!("{}/_sandbox/datasets/{dataset}/tables/{table}/rows?top=0", sandbox.base_url());
    let body: Value = reqwest::get(url).await.expect("GET").json().await.expect("JSON");
    body["count"].as_u64().expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_actions_print_tables_and_json() {
    let sandbox = sandbox().await;
    let ws = demo_id("ws:sales").to_string();
    let sp = demo_id(&format!("sp:{}:{}", demo_id("tenant:contoso"), pbi_sandbox::demo_automation_client_id()));
    sandbox
        .control(SandboxCommand::AddWorkspaceMember { workspace: demo_id("ws:operations"), principal: sp, role: WorkspaceRole::Viewer })
        .expect("viewer");
    let groups = cli(&sandbox, &["list-groups"], None).await;
    assert_eq!(groups.code, Some(0), "{}", groups.stderr);
    assert!(groups.stdout.starts_with("ID") && groups.stdout.contains("Sales Analytics"), "{}", groups.stdout);
    let access = |name: &str| {
        let line = groups.stdout.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name} listed: {}", groups.stdout));
        line.split_whitespace().rev().nth(1).unwrap_or_default().to_owned()
    };
    let header: Vec<&str> = groups.stdout.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["ID", "NAME", "ACCESS", "CAPACITY"]);
    assert_eq!(access("Operations"), "read-only", "a Viewer may only read: {}", groups.stdout);
    assert_eq!(access("Sales Analytics"), "read-write", "{}", groups.stdout);
    let json: Value = serde_json::from_str(&cli(&sandbox, &["list-groups", "--json", "--all"], None).await.stdout).expect("JSON");
    let names: Vec<&str> = json.as_array().map(|a| a.iter().filter_map(|g| g["name"].as_str()).collect()).unwrap_or_default();
    assert_eq!(names, ["Operations", "Sales Analytics"]);
    assert_eq!(json[0]["isReadOnly"], true, "JSON carries Power BI's own fields");

    let dashboards = cli(&sandbox, &["list-dashboards", "--workspace", &ws], None).await;
    assert!(dashboards.stdout.contains("Sales Overview"), "{}", dashboards.stdout);
    let tiles = cli(&sandbox, &["list-tiles", "--workspace", &ws, "--dashboard", &demo_id("dash:sales-overview").to_string()], None).await;
    assert!(tiles.stdout.contains("Sales by Region") && tiles.stdout.contains("2x2"), "{}", tiles.stdout);
    assert!(cli(&sandbox, &["list-reports", "--workspace", &ws], None).await.stdout.contains("Retail Sales Report"));
    assert!(cli(&sandbox, &["list-datasets", "--workspace", &ws], None).await.stdout.contains("push"));
    let tables = cli(&sandbox, &["list-tables", "--workspace", &ws, "--dataset", &demo_id("ds:retail-sales").to_string()], None).await;
    assert!(tables.stdout.contains("Amount Double"), "{}", tables.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_a_dataset_push_csv_and_ndjson_update_and_clear() {
    let sandbox = sandbox().await;
    let ws = demo_id("ws:sales").to_string();
    let definition = r#"{"name": "Orders", "tables": [{"name": "Orders", "columns": [{"name": "Id", "dataType": "Int64"}, {"name": "Customer", "dataType": "string"}, {"name": "Total", "dataType": "Double"}, {"name": "Paid", "dataType": "bool"}]}]}"#;
    let created = cli(&sandbox, &["create-dataset", "--workspace", &ws, "--definition", "-", "--json"], Some(definition.into())).await;
    assert_eq!(created.code, Some(0), "{}", created.stderr);
    let dataset = serde_json::from_str::<Value>(&created.stdout).expect("JSON")["id"].as_str().expect("id").to_owned();

    let dir = std::env::temp_dir().join(format!("pbi-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let csv = dir.join("orders.csv");
    let mut text = String::from("Id,Customer,Total,Paid\n");
    for i in 0..25_000 {
        text.push_str(&format!("{i},Customer {},{}.5,{}\n", i % 7, i, i % 2 == 0));
    }
    std::fs::write(&csv, text).expect("csv");
    let pushed = cli(
        &sandbox,
        &["create-rows", "--workspace", &ws, "--dataset", &dataset, "--table", "Orders", "--file", csv.to_str().expect("path")],
        None,
    )
    .await;
    assert_eq!(pushed.code, Some(0), "{}", pushed.stderr);
    assert_eq!(pushed.stdout.trim(), "pushed 25000 rows in 3 requests");
    let ndjson = "{\"Id\": 1, \"Customer\": \"A\"}\n{\"Id\": 2, \"Paid\": true}\n";
    let pushed = cli(
        &sandbox,
        &["create-rows", "--workspace", &ws, "--dataset", &dataset, "--table", "orders", "--format", "ndjson"],
        Some(ndjson.into()),
    )
    .await;
    assert_eq!(pushed.code, Some(0), "{}", pushed.stderr);
    assert_eq!(stored_rows(&sandbox, &dataset, "Orders").await, 25_002);

    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "Id,Total\n1,2\n2,NaN\n").expect("csv");
    let refused = cli(
        &sandbox,
        &["create-rows", "--workspace", &ws, "--dataset", &dataset, "--table", "Orders", "--file", bad.to_str().expect("path")],
        None,
    )
    .await;
    assert_eq!(refused.code, Some(2), "an input error: {}", refused.stderr);
    assert!(refused.stderr.contains("row 1, column 'Total'"), "{}", refused.stderr);
    assert_eq!(stored_rows(&sandbox, &dataset, "Orders").await, 25_002, "nothing of the bad file was sent");

    let table = r#"{"name": "Orders", "columns": [{"name": "Id", "dataType": "Int64"}, {"name": "Region", "dataType": "String"}]}"#;
    let updated =
        cli(&sandbox, &["update-table", "--workspace", &ws, "--dataset", &dataset, "--definition", "-"], Some(table.into())).await;
    assert_eq!(updated.code, Some(0), "{}", updated.stderr);
    assert!(cli(&sandbox, &["list-tables", "--workspace", &ws, "--dataset", &dataset], None).await.stdout.contains("Region String"));
    let cleared = cli(&sandbox, &["delete-rows", "--workspace", &ws, "--dataset", &dataset, "--table", "Orders"], None).await;
    assert_eq!(cleared.code, Some(0), "{}", cleared.stderr);
    assert_eq!(stored_rows(&sandbox, &dataset, "Orders").await, 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_and_raw_requests() {
    let sandbox = sandbox().await;
    let sp = demo_id(&format!("sp:{}:{}", demo_id("tenant:contoso"), pbi_sandbox::demo_automation_client_id()));
    sandbox
        .control(SandboxCommand::AddWorkspaceMember { workspace: demo_id("ws:operations"), principal: sp, role: WorkspaceRole::Member })
        .expect("member");
    let refreshed = cli(
        &sandbox,
        &["refresh-dataset", "--workspace", &demo_id("ws:operations").to_string(), "--dataset", &demo_id("ds:inventory").to_string()],
        None,
    )
    .await;
    assert_eq!(refreshed.code, Some(0), "{}", refreshed.stderr);
    assert!(refreshed.stdout.starts_with("refresh started"), "{}", refreshed.stdout);

    let raw = cli(&sandbox, &["request", "--path", "myorg/groups", "--query", "$top=1"], None).await;
    assert_eq!(raw.code, Some(0), "{}", raw.stderr);
    let page: Value = serde_json::from_str(&raw.stdout).expect("JSON");
    assert_eq!(page["value"].as_array().map(Vec::len), Some(1), "$top=1 reached the API: {page}");
    assert_eq!(page["value"][0]["name"], "Operations", "the first of Operations and Sales Analytics");
    let escape = cli(&sandbox, &["request", "--path", "https://evil.example/v1.0/myorg/groups"], None).await;
    assert_eq!(escape.code, Some(2), "{}", escape.stderr);
    assert!(escape.stderr.contains("is a URL"), "{}", escape.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_usage_power_bi_network_and_sign_in_failures_apart() {
    let sandbox = sandbox().await;
    let missing = cli(
        &sandbox,
        &["list-tiles", "--workspace", &demo_id("ws:sales").to_string(), "--dashboard", &uuid::Uuid::new_v4().to_string()],
        None,
    )
    .await;
    assert_eq!(missing.code, Some(3), "a Power BI error: {}", missing.stderr);
    assert!(missing.stderr.contains("PowerBIEntityNotFound") && missing.stderr.contains("RequestId"), "{}", missing.stderr);

    let unreachable = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
            .args(["powerbi", "list-groups", "--api-base", "http://127.0.0.1:9", "--token", "x", "--retries", "0"])
            .output()
            .expect("runs")
    })
    .await
    .expect("task");
    assert_eq!(unreachable.status.code(), Some(4), "a network error: {}", String::from_utf8_lossy(&unreachable.stderr));

    // With client credentials the first request is the token request: no answer from the authority is a
    // network error too (4), not a sign-in failure (5), which is kept for Entra saying no (below).
    let authority_unreachable = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
            .args([
                "powerbi",
                "list-groups",
                "--api-base",
                "http://127.0.0.1:9",
                "--authority",
                "http://127.0.0.1:9/contoso.onmicrosoft.com",
            ])
            .args(["--client-id", &pbi_sandbox::demo_automation_client_id().to_string(), "--retries", "0"])
            .env("PBI_BRIDGE_CLIENT_SECRET", demo::AUTOMATION_SECRET)
            .env_remove("PBI_BRIDGE_TOKEN")
            .output()
            .expect("runs")
    })
    .await
    .expect("task");
    let stderr = String::from_utf8_lossy(&authority_unreachable.stderr);
    assert_eq!(authority_unreachable.status.code(), Some(4), "a network error: {stderr}");
    assert!(stderr.contains("network error") && stderr.contains("token endpoint could not be reached"), "{stderr}");
    assert!(stderr.contains("check --authority"), "what to do: {stderr}");
    assert!(!stderr.contains(demo::AUTOMATION_SECRET), "{stderr}");

    let base = sandbox.base_url().to_owned();
    let wrong_secret = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
            .args([
                "powerbi",
                "list-groups",
                "--api-base",
                &base,
                "--authority",
                &format!("{base}/{}", demo::CONTOSO_DOMAIN),
                "--client-id",
                &pbi_sandbox::demo_automation_client_id().to_string(),
            ])
            .env("PBI_BRIDGE_CLIENT_SECRET", "not-the-secret")
            .output()
            .expect("runs")
    })
    .await
    .expect("task");
    let stderr = String::from_utf8_lossy(&wrong_secret.stderr);
    assert_eq!(wrong_secret.status.code(), Some(5), "a sign-in failure: {stderr}");
    assert!(stderr.contains("AADSTS7000215") && !stderr.contains("not-the-secret"), "{stderr}");

    let no_credentials = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
            .args(["powerbi", "list-groups"])
            .env_remove("PBI_BRIDGE_TOKEN")
            .env_remove("PBI_BRIDGE_CLIENT_SECRET")
            .output()
            .expect("runs")
    })
    .await
    .expect("task");
    assert_eq!(no_credentials.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_credentials.stderr).contains("give --token"));
}

/// Runs the binary with `--token TOKEN` (and no client credentials) against `sandbox`.
async fn cli_with_token(sandbox: &SandboxHandle, token: &str) -> Output {
    let (base, token) = (sandbox.base_url().to_owned(), token.to_owned());
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
            .args(["powerbi", "list-groups", "--api-base", &base, "--token", &token])
            .env_remove("PBI_BRIDGE_TOKEN")
            .env_remove("PBI_BRIDGE_CLIENT_SECRET")
            .output()
            .expect("runs");
        Output {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_says_what_power_bi_meant_and_what_to_do() {
    let sandbox = sandbox().await;
    // Power BI answers a token it cannot read with 403 and only `X-PowerBI-Error-Info: InvalidToken`.
    let forged = cli_with_token(&sandbox, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtZSJ9.forged-token-text").await;
    assert_eq!(forged.code, Some(5), "a sign-in (token) failure: {}", forged.stderr);
    let line = forged.stderr.trim();
    assert!(line.contains("(InvalidToken): Power BI did not accept the access token"), "the code and what it means: {line}");
    assert!(line.contains("get a new one") && line.contains("--client-id"), "what to do: {line}");
    assert!(line.contains("(RequestId "), "{line}");
    assert!(!line.contains("forged-token-text"), "the token is never echoed: {line}");

    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/{}/oauth2/v2.0/token", sandbox.base_url(), demo::CONTOSO_DOMAIN))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &pbi_sandbox::demo_automation_client_id().to_string()),
            ("client_secret", demo::AUTOMATION_SECRET),
            ("scope", "https://analysis.windows.net/powerbi/api/.default"),
        ])
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let token = token["access_token"].as_str().expect("a token").to_owned();
    assert_eq!(cli_with_token(&sandbox, &token).await.code, Some(0), "the token works before it expires");
    sandbox.clock().advance(time::Duration::hours(2)).expect("a manual clock");
    let expired = cli_with_token(&sandbox, &token).await;
    assert_eq!(expired.code, Some(5), "{}", expired.stderr);
    assert!(expired.stderr.contains("(TokenExpired): Access token has expired"), "Power BI's own words kept: {}", expired.stderr);
    assert!(expired.stderr.contains("get a new one (they last about an hour)"), "what to do: {}", expired.stderr);
    assert!(!expired.stderr.contains(&token), "the token is never echoed");
}
