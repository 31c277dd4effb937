//! The pbi-bridge server: web UI and JSON API over the store, the OAuth flow and the Power BI client.

mod accounts;
mod admin;
mod api;
mod api_docs;
mod app_connect;
mod app_pages;
mod apps;
mod assets;
mod audit;
pub mod background;
mod connect;
mod connect_pages;
mod definition_pages;
mod definitions;
mod embed;
mod frame;
mod jobs;
mod metrics;
mod notices;
mod ops;
mod pages;
mod problem;
mod proxy;
mod registration;
mod session;
mod subscription_pages;
mod subscriptions;
mod unread_body;
pub mod users;
mod workspaces;

pub use admin::{PERMISSIONS, default_scopes};

use axum::Router;
use axum::routing::{get, post};
use pbi_auth::Auth;
use pbi_clock::Clock;
use pbi_serve::ServeTask;
use pbi_store::Store;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// The URL people reach the server at (cookies are `Secure` when it is https); default `http://{addr}`.
    pub public_url: Option<String>,
    /// How long a sign-in lasts.
    pub session_hours: i64,
    /// Whether the client's address is the last one in `X-Forwarded-For` rather than the connection's peer.
    /// Only for a server that every request reaches through one reverse proxy which appends the address it
    /// saw to that header: otherwise anyone can claim any address, and sign-in limits kept per address mean
    /// nothing. Off by default.
    pub trust_forwarded_for: bool,
    /// The password hashes and checks that may run at once (one per core by default); the rest are refused.
    pub password_slots: users::PasswordSlots,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            session_hours: 12,
            trust_forwarded_for: false,
            password_slots: users::PasswordSlots::default(),
        }
    }
}

/// What every handler can reach.
pub(crate) struct AppState {
    pub store: Store,
    pub auth: Arc<Auth>,
    pub clock: Clock,
    pub secure_cookies: bool,
    pub session_seconds: i64,
    /// Where people reach the server (its OAuth callback is `{base_url}/oauth/callback`).
    pub base_url: String,
    pub metrics: Arc<metrics::Metrics>,
    /// Failed sign-ins per user name and client address, to refuse guessing at speed.
    pub sign_in_guard: users::SignInGuard,
    /// Where password hashing and checking run, a bounded number at once.
    pub passwords: users::PasswordSlots,
    /// Signs the login form's CSRF cookie (a key made at start-up).
    pub login_csrf: session::LoginCsrf,
    /// See `ServerConfig::trust_forwarded_for`.
    pub trust_forwarded_for: bool,
    /// One connection pool for every Power BI client the server makes.
    pub http: reqwest::Client,
    /// What the page after an action says about it (Post/Redirect/Get).
    pub flashes: session::Flashes,
    /// The job engine: the one working in this process (`serve`, `up`), or one that only lists and acts on
    /// jobs (a server started without background work).
    pub jobs: Arc<pbi_jobs::Engine>,
}

pub struct Server;

impl Server {
    /// A server without background work of its own: its Background jobs page lists and acts on the jobs that
    /// other processes run.
    pub async fn start(config: ServerConfig, store: Store, auth: Arc<Auth>, clock: Clock) -> std::io::Result<ServerHandle> {
        let jobs = pbi_jobs::Engine::insert_only(store.clone(), clock.clone()).await.map_err(std::io::Error::other)?;
        Self::start_with_jobs(config, store, auth, clock, Arc::new(jobs)).await
    }

    /// A server over the job engine this process runs (`background::start`).
    pub async fn start_with_jobs(
        config: ServerConfig,
        store: Store,
        auth: Arc<Auth>,
        clock: Clock,
        jobs: Arc<pbi_jobs::Engine>,
    ) -> std::io::Result<ServerHandle> {
        let listener = tokio::net::TcpListener::bind(config.addr).await?;
        let local_addr = listener.local_addr()?;
        let base_url = config.public_url.clone().unwrap_or_else(|| format!("http://{local_addr}")).trim_end_matches('/').to_owned();
        let refreshes = auth.clone();
        let login_csrf = session::LoginCsrf::shared(&store).await.map_err(std::io::Error::other)?;
        let state = Arc::new(AppState {
            store,
            auth,
            clock,
            secure_cookies: base_url.starts_with("https://"),
            session_seconds: config.session_hours * 3600,
            base_url: base_url.clone(),
            metrics: Arc::new(metrics::Metrics::new(move || refreshes.refresh_counts())),
            sign_in_guard: users::SignInGuard::default(),
            passwords: config.password_slots.clone(),
            login_csrf,
            trust_forwarded_for: config.trust_forwarded_for,
            // A Power BI host that does not answer is given up on in seconds (the page says so), and no call holds a
            // request open for longer than half a minute.
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(std::time::Duration::from_secs(5))
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            flashes: session::Flashes::default(),
            jobs,
        });
        warn_about_application_keys(&state.store, &state.clock).await;
        // With each connection's peer address, for the sign-in limits kept per client.
        let task = ServeTask::spawn_with_peer_addresses(listener, router(state));
        Ok(ServerHandle { base_url, local_addr, task })
    }
}

/// Says in the log, at start-up, when an enabled registration's application key has expired or expires
/// within `pbi_auth::SECRET_WARNING_DAYS` (the admin page says it too): an expired key stops every refresh.
async fn warn_about_application_keys(store: &Store, clock: &Clock) {
    let registrations = match store.registrations(false).await {
        Ok(list) => list,
        Err(error) => return tracing::warn!(%error, "could not read the registrations to check their application keys"),
    };
    for registration in registrations.iter().filter(|r| r.details.enabled) {
        let name = &registration.details.name;
        // A key that cannot be read is logged by `key_state` itself.
        let Ok(key) = admin::key_state(store, clock.unix(), Some(registration)).await else { continue };
        match key {
            admin::KeyState::Missing => {
                tracing::warn!(registration = %name, "no application key is set: Power BI sign-ins will fail until an admin enters one")
            }
            admin::KeyState::Expired { expires_at } => tracing::error!(
                registration = %name,
                expired = %admin::date(expires_at),
                "the application key has expired: create a new one in the Azure portal (Certificates & secrets) and enter it on the Power BI configuration page"
            ),
            admin::KeyState::ExpiresSoon { expires_at } => tracing::warn!(
                registration = %name,
                expires = %admin::date(expires_at),
                "the application key expires soon: create a new one in the Azure portal before then"
            ),
            admin::KeyState::Valid { .. } => {}
        }
    }
}

/// Form bodies are small; anything bigger is refused with 413.
const MAX_BODY_BYTES: usize = 64 * 1024;

fn router(state: Arc<AppState>) -> Router {
    let (api, openapi) = api::router();
    let openapi = Arc::new(openapi);
    Router::new()
        .route("/healthz", get(pages::healthz))
        .route("/static/pbi-bridge.css", get(assets::stylesheet))
        .route("/static/pbi-bridge.js", get(assets::page_script))
        .route("/static/workspace.js", get(assets::workspace_script))
        .route("/readyz", get(pages::readyz))
        .route("/login", get(pages::login_page).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/", get(pages::home))
        .route("/settings", get(connect::settings))
        .route("/settings/tokens", post(connect::create_token))
        .route("/settings/tokens/{id}/revoke", post(connect::revoke_token))
        .route("/connect", post(connect::connect))
        .route("/oauth/callback", get(connect::callback))
        .route("/connect/app", get(connect_pages::open))
        .route("/connect/app/{id}", get(connect_pages::page).post(connect_pages::start))
        .route("/connect/app/{id}/done", get(connect_pages::done))
        .route("/disconnect", post(connect::disconnect))
        .route("/workspaces", get(workspaces::list).post(workspaces::create))
        .route("/workspaces/{id}", get(workspaces::show))
        .route("/workspaces/{id}/rename", post(workspaces::rename))
        .route("/workspaces/{id}/delete", post(workspaces::delete))
        .route("/workspaces/{id}/pin", get(workspaces::pin_page).post(workspaces::pin))
        .route("/workspaces/{id}/filter", post(workspaces::set_filter))
        .route("/workspaces/{id}/pins/{pin}/remove", post(workspaces::unpin))
        .route("/workspaces/{id}/pins/{pin}/move", post(workspaces::move_pin))
        .route("/items", get(subscription_pages::items))
        .route("/items/{id}/pin", get(subscription_pages::pin_dialog).post(subscription_pages::pin))
        .route("/subscriptions", get(subscription_pages::list))
        .route("/subscriptions/{id}", get(subscription_pages::show))
        .route("/subscriptions/{id}/run", post(subscription_pages::run_now))
        .route("/subscriptions/{id}/settings", post(subscription_pages::change_settings))
        .route("/subscriptions/{id}/check-pin", post(subscription_pages::check_pin))
        .route("/subscriptions/{id}/enable", post(subscription_pages::enable))
        .route("/subscriptions/{id}/disable", post(subscription_pages::disable))
        .route("/subscriptions/{id}/delete", post(subscription_pages::delete))
        .route("/admin/apps", get(app_pages::apps).post(app_pages::add_app))
        .route("/admin/apps/{id}", get(app_pages::app).post(app_pages::update_app))
        .route("/admin/apps/{id}/delete", post(app_pages::delete_app))
        .route("/admin/apps/{id}/keys", post(app_pages::rotate_key))
        .route("/admin/apps/{id}/connections/{connection}/disconnect", post(app_pages::disconnect_connection))
        .route("/admin/data-sources", get(definition_pages::data_sources).post(definition_pages::add_data_source))
        .route("/admin/data-sources/{id}", get(definition_pages::data_source).post(definition_pages::update_data_source))
        .route("/admin/data-sources/{id}/delete", post(definition_pages::delete_data_source))
        .route("/admin/items", get(definition_pages::items).post(definition_pages::add_item))
        .route("/admin/items/new", get(definition_pages::new_item))
        .route("/admin/items/{id}", get(definition_pages::item).post(definition_pages::update_item))
        .route("/admin/items/{id}/delete", post(definition_pages::delete_item))
        .route("/admin/templates", get(subscription_pages::templates).post(subscription_pages::make_templates))
        .route("/admin/templates/check", post(subscription_pages::check_templates))
        .route("/admin/powerbi", get(admin::show).post(admin::save))
        .route("/admin/powerbi/validate", post(admin::validate))
        .route("/admin/powerbi/keys/{id}/remove", post(admin::remove_key_form))
        .route("/admin/powerbi/redirect-urls", post(registration::add_form))
        .route("/admin/powerbi/redirect-urls/remove", post(registration::remove_form))
        .route("/admin/powerbi/unregister", post(registration::unregister_form))
        .route("/admin/powerbi/register", post(registration::register_form))
        .route("/admin/audit", get(audit::show))
        .route("/admin/jobs", get(jobs::show))
        .route("/admin/jobs/{id}/retry", post(jobs::retry))
        .route("/admin/jobs/{id}/cancel", post(jobs::cancel))
        .route("/admin/users", get(accounts::show).post(accounts::create))
        .route("/admin/users/{id}/disable", post(accounts::disable))
        .route("/admin/users/{id}/enable", post(accounts::enable))
        .route("/admin/users/{id}/password", post(accounts::set_password))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/openapi.json", get(api_docs::openapi_json))
        .route("/api/docs", get(api_docs::page))
        .nest("/api/v1", api)
        .fallback(frame::not_found)
        .layer(axum::Extension(openapi))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(unread_body::close_if_unread))
        .layer(axum::middleware::from_fn(frame::scope))
        .layer(axum::middleware::from_fn(pages::security_headers))
        .layer(axum::middleware::from_fn_with_state(state.clone(), metrics::observe))
        .with_state(state)
}

/// A running server. Dropping it stops the server.
pub struct ServerHandle {
    base_url: String,
    local_addr: SocketAddr,
    task: ServeTask,
}

impl ServerHandle {
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets requests in flight finish, and waits.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.task.shutdown().await
    }

    /// Resolves when the server task ends on its own (an I/O failure).
    pub async fn stopped(&mut self) -> std::io::Result<()> {
        self.task.stopped().await
    }
}
