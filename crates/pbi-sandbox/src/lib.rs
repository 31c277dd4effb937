//! A faithful, deterministic emulator of Entra ID and the Power BI REST API, served over real HTTP.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sandbox = pbi_sandbox::Sandbox::start(pbi_sandbox::SandboxConfig::default()).await?;
//! println!("token endpoint: {}/contoso.onmicrosoft.com/oauth2/v2.0/token", sandbox.base_url());
//! sandbox.clock().advance(time::Duration::hours(2)).expect("tests use a manual clock");
//! # Ok(()) }
//! ```

mod control;
mod embed;
mod entra;
mod faults;
mod ids;
mod jwt;
mod model;
mod pages;
mod powerbi;
mod push;
mod requestlog;
mod seed;
mod tls;
mod web;

pub use faults::{Fault, FaultKind, FaultRule};
pub use jwt::SigningKeyPair;
pub use model::{TenantKind, TenantSettings, Visual, VisualKind, WorkspaceRole};
pub use requestlog::{LoggedRequest, Service};
pub use seed::{Seed, demo};
pub use tls::{SelfSigned, TlsConfig, TlsError};

/// The demo seed's pbi-bridge app registration (client id).
pub fn demo_client_id() -> uuid::Uuid {
    ids::stable("app:pbi-bridge")
}

/// The demo seed's automation app (client credentials).
pub fn demo_automation_client_id() -> uuid::Uuid {
    ids::stable("app:pbi-bridge-automation")
}

/// A demo-seed id by its seed name (e.g. `tenant:contoso`, `ws:sales`, `tile:sales:total`).
pub fn demo_id(name: &str) -> uuid::Uuid {
    ids::stable(name)
}

use model::World;
use pbi_clock::Clock;
use pbi_serve::ServeTask;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// How to start a sandbox.
#[derive(Clone)]
pub struct SandboxConfig {
    /// Where to listen; port 0 picks a free port.
    pub addr: SocketAddr,
    pub seed: Seed,
    pub clock: Clock,
    /// Enforce Power BI's push-dataset rate limits (on by default; benchmarks switch them off).
    pub push_limits: bool,
    /// The base URL the sandbox names in discovery documents and embed URLs; default `http://{bound addr}`.
    pub public_url: Option<String>,
    pub signing_key: SigningKeyPair,
    /// Serve HTTPS with this certificate (base URL `https://…`); `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: Seed::Demo,
            clock: Clock::manual_from_now(),
            push_limits: true,
            public_url: None,
            signing_key: SigningKeyPair::process_default(),
            tls: None,
        }
    }
}

/// State shared by every request handler.
pub(crate) struct Shared {
    world: Mutex<World>,
    pub clock: Clock,
    pub key: SigningKeyPair,
    pub base_url: String,
    pub faults: faults::Faults,
    pub log: requestlog::RequestLog,
    pub traffic: requestlog::Traffic,
    pub push_limits: AtomicBool,
    /// Verified access tokens, so the hot path does not repeat an RSA verification per request.
    pub verified_tokens: Mutex<HashMap<String, Arc<serde_json::Value>>>,
}

impl Shared {
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn push_limits(&self) -> bool {
        self.push_limits.load(Ordering::Relaxed)
    }
}

pub struct Sandbox;

impl Sandbox {
    /// Binds, seeds and starts serving. The returned handle owns the server task.
    pub async fn start(config: SandboxConfig) -> std::io::Result<SandboxHandle> {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let local_addr = listener.local_addr()?;
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let base_url = config.public_url.clone().unwrap_or_else(|| format!("{scheme}://{local_addr}")).trim_end_matches('/').to_owned();
        let mut world = World::default();
        seed::apply(config.seed, &mut world, &config.clock, &base_url);
        let shared = Arc::new(Shared {
            world: Mutex::new(world),
            clock: config.clock.clone(),
            key: config.signing_key.clone(),
            base_url: base_url.clone(),
            faults: faults::Faults::default(),
            log: requestlog::RequestLog::default(),
            traffic: requestlog::Traffic::default(),
            push_limits: AtomicBool::new(config.push_limits),
            verified_tokens: Mutex::new(HashMap::new()),
        });
        let app = router(shared.clone());
        let task = match &config.tls {
            None => ServeTask::spawn(listener, app),
            Some(tls) => ServeTask::spawn(tls::TlsListener::new(listener, tls).map_err(std::io::Error::other)?, app),
        };
        Ok(SandboxHandle { local_addr, shared, task })
    }
}

fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new()
        .merge(entra::routes())
        .merge(powerbi::routes())
        .merge(control::routes(shared.clone()))
        .merge(embed::routes())
        .merge(web::routes())
        .fallback(powerbi::unknown_route)
        .layer(axum::middleware::from_fn_with_state(shared.clone(), requestlog::log_and_inject_faults))
        .layer(axum::extract::DefaultBodyLimit::max(powerbi::MAX_BODY_BYTES))
        .with_state(shared)
}

/// A running sandbox. Dropping it stops the server.
pub struct SandboxHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    task: ServeTask,
}

impl SandboxHandle {
    /// `http://127.0.0.1:PORT` (or the configured public URL), without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The sandbox's clock; advance it to expire tokens, codes and secrets or move rate-limit windows.
    pub fn clock(&self) -> &Clock {
        &self.shared.clock
    }

    /// Adds a fault rule: the next `count` requests matching it get the fault instead of their answer.
    pub fn inject(&self, rule: FaultRule) {
        self.shared.faults.add(rule);
    }

    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// The fault rules not used up yet.
    pub fn pending_faults(&self) -> Vec<FaultRule> {
        self.shared.faults.pending()
    }

    /// Every request served so far, oldest first. Authorization values are never recorded.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log.snapshot()
    }

    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// Power BI REST requests being served now; one a delay fault holds counts until it is answered.
    pub fn in_flight(&self) -> usize {
        self.shared.traffic.in_flight()
    }

    /// The most Power BI REST requests served at the same time since the start or the last reset.
    pub fn max_in_flight(&self) -> usize {
        self.shared.traffic.max_in_flight()
    }

    /// Counts [`max_in_flight`](Self::max_in_flight) afresh, from the requests in flight now.
    pub fn reset_max_in_flight(&self) {
        self.shared.traffic.reset_max_in_flight();
    }

    /// Resolves once `n` Power BI REST requests have been in flight at the same time (since the start or the
    /// last reset). It waits on the maximum, so an overlap that has already ended still counts.
    pub async fn wait_for_in_flight(&self, n: usize) {
        self.shared.traffic.wait_for_max_in_flight(n).await;
    }

    /// How many requests delay faults have held so far (any service), each counted once its deadline on
    /// the clock is fixed.
    pub fn delayed(&self) -> u64 {
        self.shared.traffic.delayed()
    }

    /// Resolves once `n` requests in all have begun waiting out a delay fault: from then on, advancing a
    /// manual clock by the delay releases them.
    pub async fn wait_for_delayed(&self, n: u64) {
        self.shared.traffic.wait_for_delayed(n).await;
    }

    pub fn set_push_limits(&self, on: bool) {
        self.shared.push_limits.store(on, Ordering::Relaxed);
    }

    /// The seeded directory as JSON: the same document `GET /_sandbox/seed` returns.
    pub fn directory(&self) -> serde_json::Value {
        control::directory_json(&self.shared.world())
    }

    /// Runs a directory or content change (the same operations `/_sandbox/` offers over HTTP).
    pub fn control(&self, command: control::Command) -> Result<serde_json::Value, control::ControlError> {
        control::execute(&self.shared, command)
    }

    /// Changes a tenant's settings (admin portal switches) in place.
    pub fn update_tenant_settings(&self, tenant: uuid::Uuid, change: impl FnOnce(&mut TenantSettings)) -> Result<(), ControlError> {
        let mut world = self.shared.world();
        let tenant = world.tenants.get_mut(&tenant).ok_or_else(|| ControlError::NotFound(format!("tenant {tenant}")))?;
        change(&mut tenant.settings);
        Ok(())
    }

    /// Stops accepting connections, lets in-flight requests finish, and waits for the server task.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.task.shutdown().await
    }

    /// Resolves when the server task ends on its own (an I/O failure); it never ends otherwise.
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        self.task.stopped().await
    }
}

pub use control::{Command, ControlError};
