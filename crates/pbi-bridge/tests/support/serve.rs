//! Running `pbi-bridge serve` processes from a test: a temporary folder and an instance killed when dropped.
//! Shared by the instances binary and `it`'s nginx test (`#[path]`), so both start servers the same way.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// `serve --job-rescue-after-seconds`: how long a job of a killed process stays "running" before River's
/// leader rescues it (the default, 6 minutes, would not fit in a test). Long enough that a job of a live but
/// loaded instance (three servers and PostgreSQL on two cores) is not taken for a dead one's.
pub const RESCUE_AFTER_SECONDS: u64 = 10;

/// A temporary folder for the key file and the instances' logs, removed at the end.
pub struct Folder(pub PathBuf);

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One `pbi-bridge serve`, killed (SIGKILL) when dropped if the test did not kill it first.
pub struct Instance {
    pub child: Child,
    pub url: String,
    log: PathBuf,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    /// What the instance wrote to stderr so far: for a failing assertion's message.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Starts `serve` on the database and waits for its "listening on" line; stdout is drained by a thread
    /// of its own after that (a closed pipe would make the server's next line fail).
    pub fn start(folder: &Path, n: usize, database: &str, key_file: &Path) -> Self {
        let log = folder.join(format!("serve-{n}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_pbi-bridge"))
            .args(["serve", "--addr", "127.0.0.1:0", "--database", database])
            .arg("--key-file")
            .arg(key_file)
            .arg("--data-dir")
            .arg(folder.join(format!("data-{n}")))
            .args(["--job-rescue-after-seconds", &RESCUE_AFTER_SECONDS.to_string()])
            .env_remove("PBI_BRIDGE__CRYPTO__KEYS")
            .env("PBI_BRIDGE_LOG", "warn,pbi_jobs=info,riverqueue=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .spawn()
            .expect("serve starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("a first line");
        let url = first
            .trim()
            .strip_prefix("pbi-bridge server listening on ")
            .unwrap_or_else(|| panic!("instance {n}: {first:?}; stderr: {}", std::fs::read_to_string(&log).unwrap_or_default()))
            .to_owned();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Instance { child, url, log }
    }
}

/// A new single-tenant app in the sandbox's Contoso with admin consent to `permissions`, and a secret; its
/// client id and the secret.
pub fn consented_app(sandbox: &pbi_sandbox::SandboxHandle, display_name: &str, permissions: &[&str]) -> (uuid::Uuid, String) {
    use pbi_sandbox::Command;
    let tenant = pbi_sandbox::demo_id("tenant:contoso");
    let permissions: Vec<String> = permissions.iter().map(|p| (*p).to_owned()).collect();
    let app = sandbox
        .control(Command::CreateApp {
            client_id: None,
            tenant,
            display_name: display_name.into(),
            multi_tenant: false,
            redirect_uris: vec!["http://127.0.0.1:1/oauth/callback".into()],
            delegated_permissions: permissions.clone(),
        })
        .expect("app");
    let client_id: uuid::Uuid = app["clientId"].as_str().expect("client id").parse().expect("uuid");
    let secret =
        sandbox.control(Command::AddSecret { client_id, value: None, description: None, expires_in_days: 365 }).expect("secret")["value"]
            .as_str()
            .expect("value")
            .to_owned();
    sandbox.control(Command::GrantConsent { tenant, client_id, user: None, scopes: permissions }).expect("admin consent");
    (client_id, secret)
}

/// A registration of `client_id` in Contoso whose Entra and Power BI endpoints are the sandbox's.
pub fn sandbox_registration(
    sandbox: &pbi_sandbox::SandboxHandle,
    name: &str,
    client_id: uuid::Uuid,
    scopes: &[&str],
) -> pbi_store::NewRegistration {
    let base = sandbox.base_url().to_owned();
    let domain = pbi_sandbox::demo::CONTOSO_DOMAIN;
    pbi_store::NewRegistration {
        name: name.into(),
        client_id: client_id.to_string(),
        tenant: domain.into(),
        cloud: "public".into(),
        redirect_urls: vec!["http://127.0.0.1:1/oauth/callback".into()],
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        authorize_url: Some(format!("{base}/{domain}/oauth2/v2.0/authorize")),
        token_url: Some(format!("{base}/{domain}/oauth2/v2.0/token")),
        api_base: Some(base),
        enabled: true,
    }
}
