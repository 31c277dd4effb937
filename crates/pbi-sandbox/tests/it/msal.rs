//! Real Microsoft clients against the sandbox over HTTPS: MSAL for Python and @azure/msal-node, unmodified,
//! as confidential clients (client credentials, authorization code with PKCE, silent refresh).

use crate::support::*;
use pbi_sandbox::{SandboxConfig, TlsConfig, demo};
use serde_json::Value;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/msal")
}

/// The Python `./scripts/test` prepares (a venv with `tests/msal/requirements.txt`); `PBI_BRIDGE_PYTHON` overrides.
fn python() -> PathBuf {
    std::env::var_os("PBI_BRIDGE_PYTHON").map_or_else(|| workspace_root().join(".tools/venv/bin/python"), PathBuf::from)
}

struct HttpsSandbox {
    t: TestSandbox,
    ca_file: PathBuf,
}

async fn https_sandbox() -> HttpsSandbox {
    let generated = TlsConfig::self_signed(&[]).expect("a self-signed certificate");
    let ca_file = std::env::temp_dir().join(format!("pbi-sandbox-ca-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&ca_file, &generated.ca_pem).expect("write the CA");
    let t = TestSandbox::with(SandboxConfig { tls: Some(generated.tls), ..Default::default() }).await;
    assert!(t.sandbox.base_url().starts_with("https://127.0.0.1:"));
    HttpsSandbox { t, ca_file }
}

async fn run(mut command: std::process::Command, https: &HttpsSandbox, user: &str) -> Value {
    let base = https.t.sandbox.base_url().to_owned();
    let ca = https.ca_file.display().to_string();
    command
        .env("SANDBOX_URL", &base)
        .env("SANDBOX_TENANT", TENANT)
        .env("SANDBOX_CA", &ca)
        // Both libraries trust what these name; the machine may point them at the system bundle.
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .env("SP_CLIENT_ID", pbi_sandbox::demo_automation_client_id().to_string())
        .env("SP_SECRET", demo::AUTOMATION_SECRET)
        .env("CLIENT_ID", pbi_sandbox::demo_client_id().to_string())
        .env("CLIENT_SECRET", demo::APP_SECRET)
        .env("REDIRECT_URI", format!("{base}/_sandbox/callback"))
        .env("USER", user)
        .env("PASSWORD", format!("{}-password", user.split('@').next().unwrap_or_default()));
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("task")
        .unwrap_or_else(|e| panic!("cannot run the MSAL client ({e}); ./scripts/test installs it"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the MSAL client failed: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_for_python_signs_in_refreshes_and_calls_power_bi() {
    let https = https_sandbox().await;
    let mut command = std::process::Command::new(python());
    command.arg(scripts().join("msal_python.py"));
    let result = run(command, &https, "alice@contoso.onmicrosoft.com").await;
    assert_eq!(result["sp_groups"], serde_json::json!(["Sales Analytics"]));
    assert_eq!(result["pkce_method"], "S256");
    assert_eq!(
        result["id_token_upn"], "alice@contoso.onmicrosoft.com",
        "MSAL for Python read the id token (it checks the audience, expiry and nonce, not the signature)"
    );
    assert_eq!(result["user_groups"], serde_json::json!(["Operations", "Sales Analytics"]));
    assert_eq!((result["refreshed"].as_bool(), result["token_source"].as_str()), (Some(true), Some("identity_provider")), "{result}");
    let refreshes = https.t.sandbox.requests().iter().filter(|r| r.path.ends_with("/oauth2/v2.0/token") && r.status == 200).count();
    assert_eq!(refreshes, 3, "client credentials, code redemption, refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn msal_node_signs_in_refreshes_and_calls_power_bi() {
    let https = https_sandbox().await;
    let mut command = std::process::Command::new("node");
    command.arg(scripts().join("msal_node.mjs")).current_dir(scripts());
    let result = run(command, &https, "bob@contoso.onmicrosoft.com").await;
    assert_eq!(result["sp_groups"], serde_json::json!(["Sales Analytics"]));
    assert_eq!(result["state"], "node-state");
    assert_eq!(result["username"], "bob@contoso.onmicrosoft.com");
    assert_eq!(result["user_groups"], serde_json::json!(["Finance", "Sales Analytics"]));
    assert_eq!((result["refreshed"].as_bool(), result["from_cache"].as_bool()), (Some(true), Some(false)), "{result}");
}
