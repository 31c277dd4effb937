//! OAuth 2.0 with Entra ID for pbi-bridge: the consent flow, service principals, and the token broker.

pub mod entra;
pub mod explain;
mod tokens;
mod validate;

pub use pbi_store::Owner;
pub use tokens::{ConnectionTokens, cloud_of};

pub use validate::{Check, Outcome, SECRET_WARNING_DAYS, ServicePrincipal, Validation};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use entra::TokenEndpointError;
use explain::{Context, Explained};
use pbi_clock::Clock;
use pbi_powerbi::{Cloud, Sleep, TokioSleep};
use pbi_store::{Account, Connection, ConnectionStatus, PendingState, Registration, Store, StoreError, Tokens};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use url::Url;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{0} was not found")]
    NotFound(String),
    #[error("the registration '{0}' is disabled: enable it before connecting")]
    RegistrationDisabled(String),
    #[error(
        "the registration '{name}' was removed (unregistered) on {on}: connections made through it no longer work; register the app again to reconnect"
    )]
    RegistrationRemoved { name: String, on: String },
    #[error("the client secret expired on {on}: create a new one in Certificates & secrets and update the registration '{name}'")]
    SecretExpired { name: String, on: String },
    #[error("the registration is not usable: {0}")]
    Setup(String),
    #[error("this sign-in cannot be completed: {0}. Start again from pbi-bridge.")]
    InvalidState(String),
    #[error("{0}")]
    Refused(Explained),
    #[error("sign in to Power BI again: {reason}")]
    NeedsSignIn { connection: Uuid, reason: String },
    #[error("Power BI sign-in is unavailable right now ({0}); nothing was changed, try again later")]
    Unavailable(String),
    /// The Power BI account is already connected for another pbi-bridge user, and the administrator does not
    /// allow one account to serve several users. Nothing was stored.
    #[error(
        "the Power BI account {upn} is already connected for another pbi-bridge user, so it was not connected for you: click Get started again and choose your own Microsoft account (use \"Use another account\" if {upn} is signed in in this browser)"
    )]
    AccountTaken { upn: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;

/// Timings of the flow and the broker.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// How long a started sign-in may take.
    pub state_ttl_seconds: i64,
    /// Refresh an access token this long before it expires.
    pub refresh_ahead_seconds: i64,
    /// How long one instance holds the right to refresh a connection: renewed before each attempt at the
    /// token endpoint, each attempt bounded by `token_timeout`, so a holder that died (`kill -9` mid-refresh)
    /// blocks the others for at most this long.
    pub lease_seconds: i64,
    /// The longest one request to the token endpoint may take.
    pub token_timeout: Duration,
    /// Attempts at the token endpoint when it is unavailable, and the first backoff.
    pub transient_attempts: u32,
    pub transient_backoff: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            state_ttl_seconds: 600,
            refresh_ahead_seconds: 300,
            lease_seconds: 15,
            token_timeout: Duration::from_secs(10),
            transient_attempts: 3,
            transient_backoff: Duration::from_secs(1),
        }
    }
}

/// How often a caller waiting for another instance's refresh looks again.
const LEASE_POLL: time::Duration = time::Duration::milliseconds(250);

/// Entra's refresh tokens die after 90 days without use (Entra renews the window on every use).
const REFRESH_TOKEN_WINDOW: i64 = 90 * 86_400;
pub const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// The flow and the broker over one store. Cheap to share (`Arc<Auth>`).
pub struct Auth {
    store: Store,
    http: reqwest::Client,
    clock: Clock,
    /// Measures refresh leases: the wall clock, which does not jump back across a restart (the domain clock
    /// may be a shifted one, as under `pbi-bridge up`, and a lease written on it could outlive its holder).
    lease_clock: Clock,
    sleep: Arc<dyn Sleep>,
    settings: AuthSettings,
    /// Names this instance in refresh leases.
    holder: String,
    /// One lock per connection: callers of one instance queue behind a single refresh.
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    /// Decrypted access tokens with their owner and expiry: the hot path touches neither network nor disk.
    hot: Mutex<HashMap<Uuid, HotToken>>,
    refreshes: RefreshCounters,
}

#[derive(Default)]
struct RefreshCounters {
    succeeded: AtomicU64,
    needs_sign_in: AtomicU64,
    failed: AtomicU64,
}

/// How the refreshes this instance made since it started ended (for metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefreshCounts {
    pub succeeded: u64,
    /// The grant was gone (`invalid_grant`, no refresh token): the user must sign in again.
    pub needs_sign_in: u64,
    /// Entra refused the app's credentials or could not be reached.
    pub failed: u64,
}

struct HotToken {
    owner: Owner,
    token: SecretString,
    expires_at: i64,
    /// When the store last said the connection is active: after `HOT_RECHECK_SECONDS` the next caller reads
    /// it again, so a connection another instance disconnected (or marked) stops being served here.
    checked_at: i64,
}

/// How long a token is served from memory before the connection's status is read from the store again: the
/// longest another instance's disconnect goes unnoticed here.
pub const HOT_RECHECK_SECONDS: i64 = 10;

/// What a caller of a refresh wants from a token another caller may have stored meanwhile.
#[derive(Clone, Copy)]
enum Wanted<'a> {
    /// Any fresh token.
    Fresh,
    /// A fresh token other than this one, which Power BI refused.
    NotRefused(&'a SecretString),
    /// Tokens issued at or after this time (Unix seconds): the grant was used, so its 90 days start again.
    RenewedSince(i64),
}

impl Wanted<'_> {
    fn accepts(self, current: &Connection, access: &SecretString) -> bool {
        match self {
            Wanted::Fresh => true,
            Wanted::NotRefused(refused) => refused.expose_secret() != access.expose_secret(),
            Wanted::RenewedSince(since) => current.last_refresh_at.unwrap_or(current.created_at) >= since,
        }
    }
}

/// How a keep-alive ended (`Auth::keep_alive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeptAlive {
    /// Refreshed now: the grant's 90 days start again.
    Renewed,
    /// Its tokens were issued recently enough already.
    AlreadyRenewed,
    /// It needs sign-in or was disconnected: there is nothing to keep alive.
    NotActive(ConnectionStatus),
}

/// The query of the redirect back from Entra.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Ask Entra to show the consent page again (`prompt=consent`).
    pub force_consent: bool,
    /// Ask Entra to let the person choose the account (`prompt=select_account`) rather than silently reuse
    /// whoever is signed in to Microsoft in this browser (another pbi-bridge user, on a shared computer).
    pub select_account: bool,
    pub login_hint: Option<String>,
    /// The host (and port) the user's browser reached pbi-bridge at: the registration's redirect URL on that
    /// host is the one sent, so that Entra returns the browser to the same host, where its session cookie is.
    /// Without one, or with a host no redirect URL names, the first redirect URL.
    pub host: Option<String>,
}

#[derive(Debug)]
pub struct Completed {
    pub connection: Connection,
    /// Where the user was when the sign-in started.
    pub return_to: String,
}

fn random_text(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// States are stored only as hashes: a database reader cannot complete someone's sign-in.
pub fn state_hash(state: &str) -> String {
    Sha256::digest(state.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The URL of `urls` on `host` (`host[:port]`, as a Host header says it), else the first.
fn redirect_url_on<'a>(urls: &'a [String], host: Option<&str>) -> Option<&'a String> {
    let on_host = host.and_then(|host| urls.iter().find(|url| host_and_port_of(url).is_some_and(|a| a.eq_ignore_ascii_case(host.trim()))));
    on_host.or(urls.first())
}

/// A URL's host and explicit port, as a browser writes them in the Host header.
fn host_and_port_of(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

pub(crate) fn date_of(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map(|t| t.date().to_string()).unwrap_or_else(|_| unix.to_string())
}

impl Auth {
    pub fn new(store: Store, clock: Clock, settings: AuthSettings) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap_or_default();
        Self {
            store,
            http,
            clock,
            lease_clock: Clock::system(),
            sleep: Arc::new(TokioSleep),
            settings,
            holder: format!("pbi-bridge-{}", Uuid::new_v4()),
            locks: Mutex::default(),
            hot: Mutex::default(),
            refreshes: RefreshCounters::default(),
        }
    }

    /// How the broker waits between attempts (tests move a clock instead).
    pub fn with_sleep(mut self, sleep: Arc<dyn Sleep>) -> Self {
        self.sleep = sleep;
        self
    }

    /// The clock refresh leases are measured on (tests give a manual one and move it).
    pub fn with_lease_clock(mut self, clock: Clock) -> Self {
        self.lease_clock = clock;
        self
    }

    pub fn with_http(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether connections made through `registration` may be used: not unregistered, not disabled.
    pub fn usable(&self, registration: &Registration) -> Result<()> {
        if let Some(removed) = registration.removed_at {
            return Err(AuthError::RegistrationRemoved { name: registration.details.name.clone(), on: date_of(removed) });
        }
        if !registration.details.enabled {
            return Err(AuthError::RegistrationDisabled(registration.details.name.clone()));
        }
        Ok(())
    }

    fn cloud(registration: &Registration) -> Result<Cloud> {
        Cloud::parse(&registration.details.cloud).ok_or_else(|| AuthError::Setup(format!("unknown cloud '{}'", registration.details.cloud)))
    }

    /// The authorize and token URLs: the registration's overrides, or the cloud's login host and tenant.
    pub fn endpoints(registration: &Registration) -> Result<(Url, Url)> {
        let parse = |text: &str| Url::parse(text).map_err(|e| AuthError::Setup(format!("'{text}' is not a URL: {e}")));
        let authority = Self::cloud(registration)?
            .login_host()
            .join(&format!("{}/", registration.details.tenant))
            .map_err(|e| AuthError::Setup(e.to_string()))?;
        let authorize = match &registration.details.authorize_url {
            Some(url) => parse(url)?,
            None => authority.join("oauth2/v2.0/authorize").map_err(|e| AuthError::Setup(e.to_string()))?,
        };
        let token = match &registration.details.token_url {
            Some(url) => parse(url)?,
            None => authority.join("oauth2/v2.0/token").map_err(|e| AuthError::Setup(e.to_string()))?,
        };
        Ok((authorize, token))
    }

    /// The scopes to ask for: OpenID's (always `openid profile offline_access`) and the registration's
    /// Power BI permissions as full URLs of the cloud's resource.
    pub fn scope_param(registration: &Registration) -> Result<String> {
        let resource = Self::cloud(registration)?.resource().to_owned();
        let mut scopes: Vec<String> = vec!["openid".into(), "profile".into(), "offline_access".into()];
        for scope in &registration.details.scopes {
            if OIDC_SCOPES.contains(&scope.as_str()) {
                continue;
            }
            scopes.push(if scope.contains("://") { scope.clone() } else { format!("{resource}/{scope}") });
        }
        Ok(scopes.join(" "))
    }

    /// The redirect URL a sign-in reached at `host` uses: the registration's one on that host, else its first.
    /// The same rule picks it when the sign-in starts and when its code is redeemed (the callback arrives on
    /// the host of the redirect URL sent), so both send Entra the same one, as it requires.
    fn redirect_url(registration: &Registration, host: Option<&str>) -> Result<String> {
        redirect_url_on(&registration.details.redirect_urls, host)
            .cloned()
            .ok_or_else(|| AuthError::Setup(format!("the registration '{}' has no redirect URL", registration.details.name)))
    }

    /// The client secret to authenticate with; an expired one is refused here, with its date.
    async fn secret(&self, registration: &Registration) -> Result<SecretString> {
        let (info, secret) = self
            .store
            .current_secret(registration.id)
            .await?
            .ok_or_else(|| AuthError::Setup(format!("the registration '{}' has no client secret", registration.details.name)))?;
        if info.expires_at <= self.clock.unix() {
            return Err(AuthError::SecretExpired { name: registration.details.name.clone(), on: date_of(info.expires_at) });
        }
        Ok(secret)
    }

    fn context(registration: &Registration) -> Context {
        Context {
            registration: Some(registration.details.name.clone()),
            redirect_url: registration.details.redirect_urls.first().cloned(),
            secret_expired_on: None,
        }
    }

    /// Starts a user's sign-in: returns the URL to send their browser to.
    pub async fn start_authorization(
        &self,
        registration_id: Uuid,
        owner: &Owner,
        browser_session: &str,
        return_to: &str,
        options: &StartOptions,
    ) -> Result<Url> {
        let registration = self.store.registration(registration_id).await.map_err(not_found)?;
        self.usable(&registration)?;
        let (mut url, _) = Self::endpoints(&registration)?;
        let state = random_text(32);
        let verifier = random_text(48);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let now = self.clock.unix();
        self.store.purge_states(now).await?;
        self.store
            .put_state(&PendingState {
                state_hash: state_hash(&state),
                browser_session: browser_session.to_owned(),
                owner: *owner,
                registration_id,
                pkce_verifier: SecretString::from(verifier),
                return_to: return_to.to_owned(),
                created_at: now,
                expires_at: now + self.settings.state_ttl_seconds,
            })
            .await?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("client_id", &registration.details.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", &Self::redirect_url(&registration, options.host.as_deref())?)
                .append_pair("response_mode", "query")
                .append_pair("scope", &Self::scope_param(&registration)?)
                .append_pair("state", &state)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            // Entra takes one prompt value: asking for consent again shows the account in use on the way.
            if options.force_consent {
                query.append_pair("prompt", "consent");
            } else if options.select_account {
                query.append_pair("prompt", "select_account");
            }
            if let Some(hint) = &options.login_hint {
                query.append_pair("login_hint", hint);
            }
        }
        Ok(url)
    }

    /// Completes a sign-in from Entra's redirect, in the browser session that started it; `host` is the one the
    /// callback reached pbi-bridge at (as `StartOptions::host`).
    pub async fn complete_authorization(&self, browser_session: &str, callback: &Callback, host: Option<&str>) -> Result<Completed> {
        let state = callback.state.as_deref().ok_or_else(|| AuthError::InvalidState("the answer has no state".into()))?;
        // Taking the state consumes it: whatever happens next, it cannot be used twice. Only the browser session
        // that started it can take it, so a wrong session leaves it for the right one.
        let hash = state_hash(state);
        let Some(pending) = self.store.take_state(&hash, browser_session).await? else {
            if self.store.state_owner(&hash).await?.is_some() {
                return Err(AuthError::InvalidState("it was started in another browser session".into()));
            }
            return Err(AuthError::InvalidState("it is unknown or was already used".into()));
        };
        let now = self.clock.unix();
        if now > pending.expires_at {
            return Err(AuthError::InvalidState(format!("it expired after {} minutes", self.settings.state_ttl_seconds / 60)));
        }
        let registration = self.store.registration(pending.registration_id).await.map_err(not_found)?;
        self.usable(&registration)?;
        if let Some(error) = &callback.error {
            let detail = callback.error_description.clone().unwrap_or_default();
            let aadsts = detail.strip_prefix("AADSTS").and_then(|rest| rest.split(':').next()).and_then(|n| n.parse().ok());
            return Err(AuthError::Refused(explain::entra(aadsts, error, &detail, None, &Self::context(&registration))));
        }
        let code = callback.code.as_deref().ok_or_else(|| AuthError::InvalidState("the answer has neither a code nor an error".into()))?;
        let secret = self.secret(&registration).await?;
        let (_, token_url) = Self::endpoints(&registration)?;
        let redirect = Self::redirect_url(&registration, host)?;
        let scope = Self::scope_param(&registration)?;
        let form = [
            ("grant_type", "authorization_code"),
            ("client_id", registration.details.client_id.as_str()),
            ("client_secret", secret.expose_secret()),
            ("code", code),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", pending.pkce_verifier.expose_secret()),
            ("scope", scope.as_str()),
        ];
        let response = entra::request(&self.http, &token_url, &form, &Self::context(&registration)).await.map_err(|e| match e {
            TokenEndpointError::Refused { explained, .. } => AuthError::Refused(explained),
            TokenEndpointError::Unavailable(why) => AuthError::Unavailable(why),
        })?;
        let claims = entra::account(&response).ok_or_else(|| {
            AuthError::Unavailable("the token response names no account (no id token with tid, oid and a user name)".into())
        })?;
        let account = Account {
            owner: pending.owner,
            registration_id: registration.id,
            tenant_id: claims.tenant_id,
            object_id: claims.object_id,
            upn: claims.upn,
        };
        // Two pbi-bridge users sharing one Power BI account is refused unless allowed; an app's end users are
        // the app's to tell apart.
        let elsewhere = matches!(account.owner, Owner::User(_)) && self.store.account_connected_by_others(&account).await?;
        if elsewhere && !self.store.shared_accounts_allowed().await? {
            return Err(AuthError::AccountTaken { upn: account.upn });
        }
        let scopes = entra::short_scopes(&response.scope);
        let tokens = self.tokens_from(&response, now);
        let connection = self.store.save_connection(&account, &scopes, &tokens, now).await?;
        self.cache(&connection, tokens.access, tokens.access_expires_at);
        Ok(Completed { connection, return_to: pending.return_to })
    }

    fn tokens_from(&self, response: &entra::TokenResponse, now: i64) -> Tokens {
        Tokens {
            access: response.access_token.clone(),
            access_expires_at: now + response.expires_in,
            refresh: response.refresh_token.clone(),
            refresh_expires_at: response.refresh_token.as_ref().map(|_| now + REFRESH_TOKEN_WINDOW),
        }
    }

    fn cache(&self, connection: &Connection, token: SecretString, expires_at: i64) {
        let entry = HotToken { owner: connection.account.owner, token, expires_at, checked_at: self.clock.unix() };
        self.hot.lock().unwrap_or_else(PoisonError::into_inner).insert(connection.id, entry);
    }

    /// The cached token, if fresh enough and (when `owner` is given) the owner's.
    fn cached(&self, connection: Uuid, owner: Option<&Owner>, now: i64) -> Option<SecretString> {
        let hot = self.hot.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = hot.get(&connection)?;
        let fresh = entry.expires_at - self.settings.refresh_ahead_seconds > now;
        let checked = now - entry.checked_at < HOT_RECHECK_SECONDS;
        (fresh && checked && owner.is_none_or(|o| *o == entry.owner)).then(|| entry.token.clone())
    }

    fn forget(&self, connection: Uuid) {
        self.hot.lock().unwrap_or_else(PoisonError::into_inner).remove(&connection);
    }

    fn lock_for(&self, connection: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        self.locks.lock().unwrap_or_else(PoisonError::into_inner).entry(connection).or_default().clone()
    }

    /// A connection, if it exists and (when `owner` is given) belongs to `owner`. Another user's
    /// connection is "not found", so that ids cannot be probed.
    pub async fn connection(&self, id: Uuid, owner: Option<&Owner>) -> Result<Connection> {
        let connection = self.store.connection(id).await.map_err(not_found)?;
        if owner.is_some_and(|o| *o != connection.account.owner) {
            return Err(AuthError::NotFound(format!("connection {id}")));
        }
        Ok(connection)
    }

    /// A valid access token for a connection, refreshed ahead of expiry; see the crate docs.
    pub async fn access_token(&self, id: Uuid, owner: Option<&Owner>) -> Result<SecretString> {
        if let Some(token) = self.cached(id, owner, self.clock.unix()) {
            return Ok(token);
        }
        let connection = self.connection(id, owner).await?;
        self.require_active(&connection)?;
        let lock = self.lock_for(id);
        let _one_at_a_time = lock.lock().await;
        // Whoever held the lock before us may have refreshed already.
        if let Some(token) = self.cached(id, owner, self.clock.unix()) {
            return Ok(token);
        }
        let connection = self.connection(id, owner).await?;
        if let Some(token) = self.stored_fresh(id, Wanted::Fresh).await? {
            return Ok(token);
        }
        self.refresh(&connection, Wanted::Fresh).await
    }

    /// A new access token for a connection whose token Power BI refused (`TokenExpired`, `InvalidToken`)
    /// although our clock says it is still good (the service restarted, the token was revoked). One refresh
    /// serves every caller that was refused the same token: whoever comes after it gets the new token.
    pub async fn replace_refused_token(&self, id: Uuid, owner: Option<&Owner>, refused: &SecretString) -> Result<SecretString> {
        let is_refused = |token: &SecretString| token.expose_secret() == refused.expose_secret();
        let connection = self.connection(id, owner).await?;
        self.require_active(&connection)?;
        let lock = self.lock_for(id);
        let _one_at_a_time = lock.lock().await;
        if let Some(token) = self.cached(id, owner, self.clock.unix()).filter(|t| !is_refused(t)) {
            return Ok(token);
        }
        self.forget(id);
        let connection = self.connection(id, owner).await?;
        if let Some(token) = self.stored_fresh(id, Wanted::NotRefused(refused)).await? {
            return Ok(token);
        }
        self.refresh(&connection, Wanted::NotRefused(refused)).await
    }

    /// As `access_token`, with when the token expires (Unix seconds), for callers that schedule its renewal.
    pub async fn access_token_with_expiry(&self, id: Uuid, owner: Option<&Owner>) -> Result<(SecretString, i64)> {
        let token = self.access_token(id, owner).await?;
        // Every path of `access_token` leaves the token in the hot cache with its expiry.
        let hot = self.hot.lock().unwrap_or_else(PoisonError::into_inner).get(&id).map(|entry| entry.expires_at);
        let expires_at = match hot {
            Some(expires_at) => expires_at,
            // Disconnected in the meantime: the stored row says what there was.
            None => self.store.connection(id).await.map_err(not_found)?.access_expires_at.unwrap_or_default(),
        };
        Ok((token, expires_at))
    }

    fn require_active(&self, connection: &Connection) -> Result<()> {
        match connection.status {
            ConnectionStatus::Active => Ok(()),
            ConnectionStatus::NeedsSignIn => Err(AuthError::NeedsSignIn {
                connection: connection.id,
                reason: connection.status_reason.clone().unwrap_or_else(|| "the sign-in is no longer valid".into()),
            }),
            ConnectionStatus::Revoked => {
                Err(AuthError::NeedsSignIn { connection: connection.id, reason: "the connection was disconnected".into() })
            }
        }
    }

    /// A fresh enough access token already in the store (another caller or instance refreshed it) that is
    /// what the caller wants.
    async fn stored_fresh(&self, id: Uuid, wanted: Wanted<'_>) -> Result<Option<SecretString>> {
        let now = self.clock.unix();
        let current = self.store.connection(id).await?;
        self.require_active(&current)?;
        if let (Some(expires), (Some(access), _)) = (current.access_expires_at, self.store.connection_tokens(id).await?)
            && expires - self.settings.refresh_ahead_seconds > now
            && wanted.accepts(&current, &access)
        {
            self.cache(&current, access.clone(), expires);
            return Ok(Some(access));
        }
        Ok(None)
    }

    /// Refreshes under the store's lease (one instance at a time), with backoff on transient failures.
    async fn refresh(&self, connection: &Connection, wanted: Wanted<'_>) -> Result<SecretString> {
        let id = connection.id;
        // A live holder renews its lease before each attempt; past two lease lengths something is wrong.
        let give_up_at = self.lease_clock.unix() + 2 * self.settings.lease_seconds;
        loop {
            // The wait below ends at a time read before the attempt, so a move of the clock between the
            // attempt and the wait is never missed.
            let tried_at = self.lease_clock.now();
            if self.take_lease(id, tried_at.unix_timestamp()).await? {
                break;
            }
            if tried_at.unix_timestamp() >= give_up_at {
                return Err(AuthError::Unavailable("another pbi-bridge instance keeps refreshing this connection; try again".into()));
            }
            // Another instance is refreshing: wait for its result rather than racing it.
            self.lease_clock.sleep_until(tried_at + LEASE_POLL).await;
            if let Some(token) = self.stored_fresh(id, wanted).await? {
                return Ok(token);
            }
        }
        // Holding the lease now; the previous holder may have finished between our last look and our
        // taking it, so look once more before asking Entra.
        let result = match self.stored_fresh(id, wanted).await {
            Ok(Some(token)) => Ok(token),
            Ok(None) => {
                let refreshed = self.refresh_holding_lease(connection).await;
                let counter = match &refreshed {
                    Ok(_) => &self.refreshes.succeeded,
                    Err(AuthError::NeedsSignIn { .. }) => &self.refreshes.needs_sign_in,
                    Err(_) => &self.refreshes.failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                refreshed
            }
            Err(error) => Err(error),
        };
        self.store.release_lease(id, &self.holder).await?;
        result
    }

    /// Takes (or renews) the right to refresh `id` for `lease_seconds` from `now` on the lease clock.
    async fn take_lease(&self, id: Uuid, now: i64) -> Result<bool> {
        Ok(self.store.try_lease_refresh(id, &self.holder, now + self.settings.lease_seconds, now).await?)
    }

    async fn refresh_holding_lease(&self, connection: &Connection) -> Result<SecretString> {
        let id = connection.id;
        let registration = self.store.registration(connection.account.registration_id).await?;
        self.usable(&registration)?;
        let (_, refresh_token) = self.store.connection_tokens(id).await?;
        let Some(refresh_token) = refresh_token else {
            let reason = "there is no refresh token (offline_access was not granted)";
            self.store.mark_needs_sign_in(id, reason, self.clock.unix()).await?;
            return Err(AuthError::NeedsSignIn { connection: id, reason: reason.into() });
        };
        let secret = self.secret(&registration).await?;
        let (_, token_url) = Self::endpoints(&registration)?;
        let scope = Self::scope_param(&registration)?;
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", registration.details.client_id.as_str()),
            ("client_secret", secret.expose_secret()),
            ("refresh_token", refresh_token.expose_secret()),
            ("scope", scope.as_str()),
        ];
        let mut backoff = self.settings.transient_backoff;
        for attempt in 1..=self.settings.transient_attempts.max(1) {
            if attempt > 1 && !self.take_lease(id, self.lease_clock.unix()).await? {
                return Err(AuthError::Unavailable("another pbi-bridge instance took over the refresh of this connection".into()));
            }
            let context = Self::context(&registration);
            let request = entra::request(&self.http, &token_url, &form, &context);
            let answer = match tokio::time::timeout(self.settings.token_timeout, request).await {
                Ok(answer) => answer,
                Err(_elapsed) => Err(TokenEndpointError::Unavailable("the token endpoint did not answer in time".into())),
            };
            match answer {
                Ok(response) => {
                    let now = self.clock.unix();
                    let tokens = self.tokens_from(&response, now);
                    // The new refresh token is stored before the new access token is handed out.
                    self.store.store_tokens(id, &tokens, now).await?;
                    self.cache(connection, tokens.access.clone(), tokens.access_expires_at);
                    tracing::info!(connection = %id, "refreshed a Power BI token");
                    return Ok(tokens.access);
                }
                Err(error) if error.is_invalid_grant() => {
                    let reason = error.to_string();
                    self.store.mark_needs_sign_in(id, &reason, self.clock.unix()).await?;
                    self.forget(id);
                    return Err(AuthError::NeedsSignIn { connection: id, reason });
                }
                Err(TokenEndpointError::Refused { explained, .. }) => {
                    // The app's credentials (not the user's grant) are the problem: an administrator must act.
                    self.store.record_refresh_error(id, &explained.to_string(), self.clock.unix()).await?;
                    return Err(AuthError::Refused(explained));
                }
                Err(TokenEndpointError::Unavailable(why)) if attempt < self.settings.transient_attempts => {
                    tracing::warn!(connection = %id, attempt, %why, "token endpoint unavailable; retrying");
                    self.sleep.sleep(backoff).await;
                    backoff *= 2;
                }
                Err(TokenEndpointError::Unavailable(why)) => {
                    self.store.record_refresh_error(id, &why, self.clock.unix()).await?;
                    return Err(AuthError::Unavailable(why));
                }
            }
        }
        Err(AuthError::Unavailable("no attempt was made".into()))
    }

    /// Keeps a connection's grant alive: Entra ends a refresh token unused for 90 days, so using it (a refresh)
    /// renews the window. Unless its tokens were issued at or after `renewed_since` already (a sign-in, another
    /// caller's or instance's refresh), the connection is refreshed now, under the same lock and lease as
    /// every other refresh. A grant that is gone marks the connection "needs sign-in" (`NeedsSignIn`); an
    /// outage is `Unavailable` and marks nothing. A problem of the registration (disabled, removed, its key
    /// expired) is recorded on the connection, so that one failing for days is reported.
    pub async fn keep_alive(&self, id: Uuid, renewed_since: i64) -> Result<KeptAlive> {
        let renewed = |c: &Connection| c.last_refresh_at.unwrap_or(c.created_at) >= renewed_since;
        let connection = self.connection(id, None).await?;
        if connection.status != ConnectionStatus::Active {
            return Ok(KeptAlive::NotActive(connection.status));
        }
        if renewed(&connection) {
            return Ok(KeptAlive::AlreadyRenewed);
        }
        let lock = self.lock_for(id);
        let _one_at_a_time = lock.lock().await;
        let connection = self.connection(id, None).await?;
        if connection.status != ConnectionStatus::Active {
            return Ok(KeptAlive::NotActive(connection.status));
        }
        if renewed(&connection) {
            return Ok(KeptAlive::AlreadyRenewed);
        }
        match self.refresh(&connection, Wanted::RenewedSince(renewed_since)).await {
            Ok(_) => Ok(KeptAlive::Renewed),
            Err(
                error @ (AuthError::RegistrationDisabled(_)
                | AuthError::RegistrationRemoved { .. }
                | AuthError::SecretExpired { .. }
                | AuthError::Setup(_)),
            ) => {
                self.store.record_refresh_error(id, &error.to_string(), self.clock.unix()).await?;
                Err(error)
            }
            Err(error) => Err(error),
        }
    }

    pub fn refresh_counts(&self) -> RefreshCounts {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RefreshCounts {
            succeeded: read(&self.refreshes.succeeded),
            needs_sign_in: read(&self.refreshes.needs_sign_in),
            failed: read(&self.refreshes.failed),
        }
    }

    /// Disconnects: the tokens are deleted everywhere.
    pub async fn disconnect(&self, id: Uuid, owner: Option<&Owner>) -> Result<()> {
        self.connection(id, owner).await?;
        self.forget(id);
        self.store.disconnect(id, self.clock.unix()).await?;
        Ok(())
    }
}

pub(crate) fn not_found(error: StoreError) -> AuthError {
    match error {
        StoreError::NotFound(what) => AuthError::NotFound(what),
        other => AuthError::Store(other),
    }
}

#[cfg(test)]
mod tests {
    use super::redirect_url_on;

    #[test]
    fn a_sign_in_uses_the_redirect_url_on_the_host_it_was_reached_at_else_the_first() {
        let urls: Vec<String> =
            ["https://bi.contoso.com/oauth/callback", "http://127.0.0.1:8080/oauth/callback", "https://intranet:8443/oauth/callback"]
                .map(String::from)
                .to_vec();
        let on = |host: Option<&str>| redirect_url_on(&urls, host).map(String::as_str);
        assert_eq!(on(Some("127.0.0.1:8080")), Some("http://127.0.0.1:8080/oauth/callback"));
        assert_eq!(on(Some("INTRANET:8443")), Some("https://intranet:8443/oauth/callback"), "hosts compare without case");
        assert_eq!(on(Some("bi.contoso.com")), Some("https://bi.contoso.com/oauth/callback"));
        assert_eq!(on(Some("127.0.0.1:9999")), Some("https://bi.contoso.com/oauth/callback"), "another port is another host");
        assert_eq!(on(Some("evil.example")), Some("https://bi.contoso.com/oauth/callback"), "a host no URL names gets the first");
        assert_eq!(on(None), Some("https://bi.contoso.com/oauth/callback"));
        assert_eq!(redirect_url_on(&[], Some("bi.contoso.com")), None);
    }
}
