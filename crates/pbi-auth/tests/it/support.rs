//! A sandbox, a store on a temporary SQLite file, an `Auth` over both, and a browser that signs in.

use futures_util::future::BoxFuture;
use pbi_auth::{Auth, AuthSettings, Callback, StartOptions};
use pbi_crypto::KeyRing;
use pbi_sandbox::{Sandbox, SandboxConfig, SandboxHandle, demo};
use pbi_store::{Connection, NewRegistration, Owner, Registration, Store};
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Waits by moving the sandbox's clock.
pub struct ClockSleep(pub pbi_clock::Clock);

impl pbi_powerbi::Sleep for ClockSleep {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        let _ = self.0.advance(time::Duration::try_from(duration).unwrap_or(time::Duration::ZERO));
        Box::pin(async {})
    }
}

pub struct Env {
    pub sandbox: SandboxHandle,
    /// What refresh leases are measured on: manual, moved only by the tests that are about leases.
    pub lease_clock: pbi_clock::Clock,
    pub store: Store,
    pub auth: Arc<Auth>,
    pub registration: Registration,
    pub db_path: std::path::PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.db_path.display()));
        }
    }
}

pub const SEED_000_SCOPES: &[&str] = &[
    "Content.Create",
    "Dashboard.Read.All",
    "Dataset.Read.All",
    "Dataset.ReadWrite.All",
    "Report.Read.All",
    "Workspace.Read.All",
    "offline_access",
];

/// A PostgreSQL database of the test's own, dropped when the guard goes.
pub struct PostgresDb(pbi_testdb::TestDb);

impl PostgresDb {
    pub async fn new() -> Self {
        PostgresDb(pbi_testdb::TestDb::new(true, "pbi_auth_test").await)
    }

    pub fn url(&self) -> &str {
        &self.0.url
    }
}

impl Env {
    pub async fn start() -> Self {
        let db_path = std::env::temp_dir().join(format!("pbi-auth-{}.db", uuid::Uuid::new_v4()));
        Self::start_on(format!("sqlite://{}", db_path.display()), db_path).await
    }

    /// The same, with the store at `url` (a PostgreSQL test database, say).
    pub async fn start_on(url: String, db_path: std::path::PathBuf) -> Self {
        let sandbox = Sandbox::start(SandboxConfig::default()).await.expect("sandbox");
        let key_text = KeyRing::new_key_line(1).expose_secret().to_owned();
        let store = Store::connect(&url, KeyRing::parse(&SecretString::from(key_text.clone())).expect("keys")).await.expect("store");
        let now = sandbox.clock().unix();
        let base = sandbox.base_url().to_owned();
        let registration = store
            .add_registration(
                &NewRegistration {
                    name: "erp".into(),
                    client_id: pbi_sandbox::demo_client_id().to_string(),
                    tenant: demo::CONTOSO_DOMAIN.into(),
                    cloud: "public".into(),
                    redirect_urls: vec![format!("{base}/_sandbox/callback")],
                    scopes: SEED_000_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
                    authorize_url: Some(format!("{base}/{}/oauth2/v2.0/authorize", demo::CONTOSO_DOMAIN)),
                    token_url: Some(format!("{base}/{}/oauth2/v2.0/token", demo::CONTOSO_DOMAIN)),
                    api_base: Some(base.clone()),
                    enabled: true,
                },
                now,
            )
            .await
            .expect("registration");
        store.add_secret(registration.id, &SecretString::from(demo::APP_SECRET.to_owned()), now + 365 * 86_400, now).await.expect("secret");
        let lease_clock = pbi_clock::Clock::manual_from_now();
        let auth = Arc::new(Self::instance(&store, &sandbox, &lease_clock));
        Self { sandbox, lease_clock, store, auth, registration, db_path }
    }

    /// A broker over `store`, as another pbi-bridge instance sharing it would be.
    fn instance(store: &Store, sandbox: &SandboxHandle, lease_clock: &pbi_clock::Clock) -> Auth {
        Auth::new(store.clone(), sandbox.clock().clone(), AuthSettings::default())
            .with_sleep(Arc::new(ClockSleep(sandbox.clock().clone())))
            .with_lease_clock(lease_clock.clone())
    }

    pub fn another_instance(&self) -> Arc<Auth> {
        Arc::new(Self::instance(&self.store, &self.sandbox, &self.lease_clock))
    }

    /// A browser that signs `upn` in at the sandbox and answers the consent page with `decision`.
    pub async fn browse(&self, url: &Url, upn: &str, decision: &str) -> Callback {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let base = self.sandbox.base_url();
        let page = http.get(url.clone()).send().await.expect("authorize").text().await.expect("page");
        let ctx = hidden(&page, "ctx").unwrap_or_else(|| panic!("no sign-in form: {page}"));
        let password = format!("{}-password", upn.split('@').next().unwrap_or_default());
        let mut answer = http
            .post(format!("{base}/{}/login", demo::CONTOSO_DOMAIN))
            .form(&[("ctx", ctx.as_str()), ("login", upn), ("passwd", &password)])
            .send()
            .await
            .expect("login");
        let cookie = answer
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|c| c.split(';').next())
            .unwrap_or_default()
            .to_owned();
        if answer.status() == 200 {
            let page = answer.text().await.expect("page");
            let ctx = hidden(&page, "ctx").unwrap_or_else(|| panic!("no consent form: {page}"));
            answer = http
                .post(format!("{base}/{}/consent", demo::CONTOSO_DOMAIN))
                .header("cookie", cookie)
                .form(&[("ctx", ctx.as_str()), ("decision", decision)])
                .send()
                .await
                .expect("consent");
        }
        let location = answer
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no redirect ({})", answer.status()))
            .to_owned();
        let query = Url::parse(&location).expect("url").query().unwrap_or_default().to_owned();
        serde_urlencoded_lite(&query)
    }

    pub async fn connect(&self, upn: &str) -> Connection {
        let session = format!("session-{upn}");
        let url = self
            .auth
            .start_authorization(self.registration.id, &owner(upn), &session, "/settings", &StartOptions::default())
            .await
            .expect("start");
        let callback = self.browse(&url, upn, "accept").await;
        self.auth.complete_authorization(&session, &callback, None).await.expect("completed").connection
    }

    pub fn token_requests(&self) -> Vec<pbi_sandbox::LoggedRequest> {
        self.sandbox.requests().into_iter().filter(|r| r.path.ends_with("/oauth2/v2.0/token")).collect()
    }
}

pub fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker)? + marker.len();
    Some(html[start..start + html[start..].find('"')?].to_owned())
}

fn serde_urlencoded_lite(query: &str) -> Callback {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Callback { code: get("code"), state: get("state"), error: get("error"), error_description: get("error_description") }
}

/// The pbi-bridge user a test names (the same name, the same owner).
pub fn owner(name: &str) -> Owner {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(name.as_bytes());
    Owner::User(uuid::Uuid::from_slice(&digest[..16]).expect("16 bytes"))
}
