//! `pbi-bridge sandbox`: the first line names the URL, and the README's curl walk-through works.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The running binary; killed when dropped so a failing test leaves nothing behind.
struct Running {
    child: Child,
    base_url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).expect("a first line");
    let base_url = first
        .trim()
        .strip_prefix("pbi-bridge sandbox listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();
    Running { child, base_url }
}

#[tokio::test]
async fn the_sandbox_prints_its_url_and_serves_the_demo_walkthrough() {
    let running = start(&["sandbox", "--addr", "127.0.0.1:0", "--seed", "demo"]);
    assert!(running.base_url.starts_with("http://127.0.0.1:"), "{}", running.base_url);
    let http = reqwest::Client::new();
    let seed: Value = http.get(format!("{}/_sandbox/seed", running.base_url)).send().await.expect("GET").json().await.expect("JSON");
    let automation = seed["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .find(|a| a["displayName"] == "pbi-bridge automation")
        .expect("the automation app")
        .clone();

    // README: "Get a token as the demo service principal" then "List its workspaces".
    let token: Value = http
        .post(format!("{}/contoso.onmicrosoft.com/oauth2/v2.0/token", running.base_url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", automation["clientId"].as_str().expect("client id")),
            ("client_secret", automation["secrets"][0]["value"].as_str().expect("secret")),
            ("scope", "https://analysis.windows.net/powerbi/api/.default"),
        ])
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let access = token["access_token"].as_str().expect("a token");
    let groups: Value = http
        .get(format!("{}/v1.0/myorg/groups", running.base_url))
        .bearer_auth(access)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(groups["value"][0]["name"], "Sales Analytics");

    // The clock of the CLI sandbox flows with wall time but can be moved forward.
    let moved = http
        .post(format!("{}/_sandbox/clock/advance", running.base_url))
        .json(&serde_json::json!({"seconds": 7200}))
        .send()
        .await
        .expect("POST");
    assert!(moved.status().is_success());
    let expired = http.get(format!("{}/v1.0/myorg/groups", running.base_url)).bearer_auth(access).send().await.expect("GET");
    assert_eq!(expired.status(), reqwest::StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_empty_seed_has_no_directory() {
    let running = start(&["sandbox", "--seed", "empty"]);
    let seed: Value = reqwest::get(format!("{}/_sandbox/seed", running.base_url)).await.expect("GET").json().await.expect("JSON");
    assert_eq!(seed["tenants"], serde_json::json!([]));
}

#[test]
fn a_bad_seed_is_a_usage_error_that_says_what_to_use() {
    let output = Command::new(env!("CARGO_BIN_EXE_pbi-bridge")).args(["sandbox", "--seed", "full"]).output().expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("use demo or empty"), "{stderr}");
}

#[tokio::test]
async fn tls_self_signed_serves_https_and_writes_the_ca_to_trust() {
    let ca_file = std::env::temp_dir().join(format!("pbi-bridge-ca-{}", std::process::id())).join("ca.pem");
    let ca_arg = ca_file.display().to_string();
    let running = start(&["sandbox", "--tls-self-signed", &ca_arg]);
    assert!(running.base_url.starts_with("https://127.0.0.1:"), "{}", running.base_url);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca_file).expect("the CA was written")).expect("PEM");
    let trusting = reqwest::Client::builder().tls_built_in_root_certs(false).add_root_certificate(ca).build().expect("client");
    let discovery: Value = trusting
        .get(format!("{}/contoso.onmicrosoft.com/v2.0/.well-known/openid-configuration", running.base_url))
        .send()
        .await
        .expect("a TLS connection the CA vouches for")
        .json()
        .await
        .expect("JSON");
    assert!(discovery["token_endpoint"].as_str().expect("token_endpoint").starts_with("https://"), "discovery names https endpoints");
    let untrusting = reqwest::Client::builder().tls_built_in_root_certs(false).build().expect("client");
    assert!(untrusting.get(format!("{}/_sandbox/clock", running.base_url)).send().await.is_err(), "nobody else vouches for it");
}
