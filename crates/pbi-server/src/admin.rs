//! The administrator's "Power BI configuration" page: the registration users connect through.

use crate::AppState;
use crate::connect::active_registration;
use crate::pages::render;
use crate::problem::Problem;
use crate::session::{self, SignedIn};
use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use pbi_auth::Validation;
use pbi_store::{NewRegistration, Registration, User};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::sync::Arc;

const REGISTRATION_NAME: &str = "Power BI";
const CLOUDS: &[&str] = &["public", "us-gcc", "gcc-high", "dod", "china"];
/// Seed 000's delegated permissions, as the Azure portal lists them, and offline_access to stay connected.
pub(crate) const PERMISSIONS: &[&str] =
    &["Content.Create", "Dashboard.Read.All", "Dataset.Read.All", "Dataset.ReadWrite.All", "Report.Read.All", "Workspace.Read.All"];

#[derive(Template)]
#[template(path = "admin_powerbi.html")]
struct ConfigPage<'a> {
    user_name: &'a str,
    csrf: &'a str,
    enabled: bool,
    client_id: String,
    tenant: String,
    cloud: String,
    authorize_url: String,
    token_url: String,
    api_base: String,
    secret_state: String,
    redirect_url: String,
    clouds: &'static [&'static str],
    permissions: &'static [&'static str],
    errors: Vec<String>,
    message: Option<String>,
    checks: Vec<(String, String, String)>,
}

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, Html("<h1>Forbidden</h1><p>Only administrators can change the Power BI configuration.</p>")).into_response()
}

pub(crate) fn date(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix).map(|t| t.date().to_string()).unwrap_or_default()
}

async fn page(
    state: &AppState,
    signed_in: &pbi_store::Session,
    status: StatusCode,
    errors: Vec<String>,
    message: Option<String>,
    checks: Vec<(String, String, String)>,
) -> Response {
    let (registration, key) = match config(state).await {
        Ok(found) => found,
        Err(problem) => return problem.page(),
    };
    let secret_state = key.sentence();
    let d = registration.as_ref().map(|r| r.details.clone());
    render(
        status,
        &ConfigPage {
            user_name: &signed_in.user.display_name,
            csrf: &signed_in.csrf_token,
            enabled: d.as_ref().is_none_or(|d| d.enabled),
            client_id: d.as_ref().map(|d| d.client_id.clone()).unwrap_or_default(),
            tenant: d.as_ref().map(|d| d.tenant.clone()).unwrap_or_default(),
            cloud: d.as_ref().map_or_else(|| "public".into(), |d| d.cloud.clone()),
            authorize_url: d.as_ref().and_then(|d| d.authorize_url.clone()).unwrap_or_default(),
            token_url: d.as_ref().and_then(|d| d.token_url.clone()).unwrap_or_default(),
            api_base: d.as_ref().and_then(|d| d.api_base.clone()).unwrap_or_default(),
            secret_state,
            redirect_url: redirect_url(state),
            clouds: CLOUDS,
            permissions: PERMISSIONS,
            errors,
            message,
            checks,
        },
    )
}

/// Where the application key stands, for the page, the API and the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyState {
    Missing,
    Valid { expires_at: i64 },
    ExpiresSoon { expires_at: i64 },
    Expired { expires_at: i64 },
}

impl KeyState {
    pub(crate) fn of(newest_expiry: Option<i64>, now: i64) -> Self {
        match newest_expiry {
            None => Self::Missing,
            Some(expires_at) if expires_at <= now => Self::Expired { expires_at },
            Some(expires_at) if expires_at - now < pbi_auth::SECRET_WARNING_DAYS * 86_400 => Self::ExpiresSoon { expires_at },
            Some(expires_at) => Self::Valid { expires_at },
        }
    }

    pub(crate) fn expires_at(self) -> Option<i64> {
        match self {
            Self::Missing => None,
            Self::Valid { expires_at } | Self::ExpiresSoon { expires_at } | Self::Expired { expires_at } => Some(expires_at),
        }
    }

    pub(crate) fn sentence(self) -> String {
        match self {
            Self::Missing => "No application key is set.".into(),
            Self::Expired { expires_at } => format!(
                "The application key expired on {}: create a new one in Certificates & secrets and enter it here.",
                date(expires_at)
            ),
            Self::ExpiresSoon { expires_at } => format!(
                "Warning: the application key expires on {} — create a new one in Certificates & secrets before then.",
                date(expires_at)
            ),
            Self::Valid { expires_at } => format!("An application key is set; it expires on {}.", date(expires_at)),
        }
    }
}

/// The newest application key's state for `registration` (missing when there is no registration).
pub(crate) async fn key_state(store: &pbi_store::Store, now: i64, registration: Option<&Registration>) -> Result<KeyState, Problem> {
    let newest = match registration {
        Some(r) => store.secrets(r.id).await.map_err(Problem::store("registration", "reading secrets"))?.first().map(|s| s.expires_at),
        None => None,
    };
    Ok(KeyState::of(newest, now))
}

/// The Power BI configuration as it stands: its registration (if any) and its key's state.
pub(crate) async fn config(state: &AppState) -> Result<(Option<Registration>, KeyState), Problem> {
    let registration = active_registration_any(state).await.map_err(Problem::store("registration", "reading the registration"))?;
    let key = key_state(&state.store, state.clock.unix(), registration.as_ref()).await?;
    Ok((registration, key))
}

pub(crate) fn redirect_url(state: &AppState) -> String {
    format!("{}/oauth/callback", state.base_url)
}

/// The registration this page edits: the active one, else any not removed (a disabled one stays editable).
async fn active_registration_any(state: &AppState) -> pbi_store::Result<Option<Registration>> {
    if let Some(active) = active_registration(state).await? {
        return Ok(Some(active));
    }
    Ok(state.store.registrations(false).await?.into_iter().min_by_key(|r| r.created_at))
}

pub async fn show(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    if !session.user.is_admin {
        return forbidden();
    }
    page(&state, &session, StatusCode::OK, Vec::new(), None, Vec::new()).await
}

#[derive(Deserialize)]
pub struct ConfigForm {
    csrf: String,
    #[serde(default)]
    enabled: Option<String>,
    client_id: String,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    secret_expires: String,
    tenant: String,
    cloud: String,
    #[serde(default)]
    authorize_url: String,
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    api_base: String,
}

/// The configuration as entered, on the page or through the API; `read_config` checks it.
pub(crate) struct ConfigInput {
    pub enabled: bool,
    pub client_id: String,
    /// A new application key (empty: keep the current one) and its expiry date, YYYY-MM-DD.
    pub secret: SecretString,
    pub secret_expires: String,
    pub tenant: String,
    pub cloud: String,
    pub authorize_url: String,
    pub token_url: String,
    pub api_base: String,
}

impl From<ConfigForm> for ConfigInput {
    fn from(form: ConfigForm) -> Self {
        Self {
            enabled: form.enabled.as_deref() == Some("true"),
            client_id: form.client_id,
            secret: SecretString::from(form.secret),
            secret_expires: form.secret_expires,
            tenant: form.tenant,
            cloud: form.cloud,
            authorize_url: form.authorize_url,
            token_url: form.token_url,
            api_base: form.api_base,
        }
    }
}

/// A problem with one field of the configuration: the field's API name and the sentence for the page.
pub(crate) struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// A new application key and its expiry (Unix seconds).
pub(crate) struct NewKey {
    value: SecretString,
    expires_at: i64,
}

/// Reads the configuration into a registration and maybe a new key; every problem is named by its field.
pub(crate) fn read_config(input: &ConfigInput, redirect_url: &str) -> Result<(NewRegistration, Option<NewKey>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut problem = |field: &'static str, message: String| errors.push(FieldError { field, message });
    let client_id = input.client_id.trim();
    if uuid::Uuid::parse_str(client_id).is_err() {
        problem(
            "clientId",
            "Application ID: enter the Application (client) ID, a GUID such as 8b7e587d-8d90-4e61-95a3-cfe6461aa03e.".into(),
        );
    }
    if input.tenant.trim().is_empty() {
        problem("tenant", "Tenant: enter the tenant ID or a verified domain (or organizations for a multi-tenant app).".into());
    }
    if !CLOUDS.contains(&input.cloud.as_str()) {
        problem("cloud", format!("Cloud: choose one of {}.", CLOUDS.join(", ")));
    }
    let mut url = |field: &'static str, label: &str, text: &str| {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        match url::Url::parse(text) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Some(text.to_owned()),
            _ => {
                problem(field, format!("{label}: enter an http(s) URL, or leave it empty to use the cloud's."));
                None
            }
        }
    };
    let authorize_url = url("authorizeUrl", "Authorize URL", &input.authorize_url);
    let token_url = url("tokenUrl", "Token URL", &input.token_url);
    let api_base = url("apiBase", "Power BI API URL", &input.api_base);
    let secret = input.secret.expose_secret().trim();
    let new_secret = if secret.is_empty() {
        None
    } else {
        match time::Date::parse(input.secret_expires.trim(), time::macros::format_description!("[year]-[month]-[day]")) {
            Ok(day) => {
                Some(NewKey { value: SecretString::from(secret.to_owned()), expires_at: day.midnight().assume_utc().unix_timestamp() })
            }
            Err(_) => {
                problem(
                    "applicationKeyExpires",
                    "Application key expires: enter the key's expiry date as YYYY-MM-DD (the Azure portal shows it next to the key)."
                        .into(),
                );
                None
            }
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut scopes: Vec<String> = PERMISSIONS.iter().map(|s| (*s).to_owned()).collect();
    scopes.push("offline_access".into());
    Ok((
        NewRegistration {
            name: REGISTRATION_NAME.into(),
            client_id: client_id.to_owned(),
            tenant: input.tenant.trim().to_owned(),
            cloud: input.cloud.clone(),
            redirect_urls: vec![redirect_url.to_owned()],
            scopes,
            authorize_url,
            token_url,
            api_base,
            enabled: input.enabled,
        },
        new_secret,
    ))
}

/// Saves the configuration users connect through (creating its registration the first time), and the new key if any.
pub(crate) async fn save_config(state: &AppState, admin: &User, mut details: NewRegistration, key: Option<NewKey>) -> Result<(), Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    let now = state.clock.unix();
    let saved = async {
        let registration = match active_registration_any(state).await? {
            Some(existing) => {
                // Keep the name and any extra redirect URLs an administrator added with the CLI.
                details.name = existing.details.name.clone();
                for url in existing.details.redirect_urls {
                    if !details.redirect_urls.contains(&url) {
                        details.redirect_urls.push(url);
                    }
                }
                state.store.update_registration(existing.id, &details, now).await?
            }
            None => state.store.add_registration(&details, now).await?,
        };
        if let Some(key) = key {
            state.store.add_secret(registration.id, &key.value, key.expires_at, now).await?;
        }
        Ok::<_, pbi_store::StoreError>(())
    };
    saved.await.map_err(Problem::store("registration", "saving the Power BI configuration"))?;
    tracing::info!(admin = %admin.username, "saved the Power BI configuration");
    Ok(())
}

/// Checks the configuration with Entra ID, as the Validate button does.
pub(crate) async fn validate_config(state: &AppState, admin: &User) -> Result<Validation, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    let Some(registration) = active_registration_any(state).await.map_err(Problem::store("registration", "reading the registration"))?
    else {
        return Err(Problem::Conflict("Save a configuration first.".into()));
    };
    state.auth.validate(registration.id, Some(&redirect_url(state))).await.map_err(|e| Problem::Unavailable(e.to_string()))
}

pub async fn save(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<ConfigForm>) -> Response {
    if !session.user.is_admin {
        return forbidden();
    }
    if !session::same(&session.csrf_token, &form.csrf) {
        return crate::pages::form_expired();
    }
    let (details, key) = match read_config(&form.into(), &redirect_url(&state)) {
        Ok(parsed) => parsed,
        Err(errors) => {
            let errors = errors.into_iter().map(|e| e.message).collect();
            return page(&state, &session, StatusCode::BAD_REQUEST, errors, None, Vec::new()).await;
        }
    };
    match save_config(&state, &session.user, details, key).await {
        Ok(()) => {
            page(&state, &session, StatusCode::OK, Vec::new(), Some("Saved. Validate to check it with Entra ID.".into()), Vec::new()).await
        }
        Err(problem) => problem.page(),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    csrf: String,
}

pub async fn validate(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<CsrfOnly>) -> Response {
    if !session.user.is_admin {
        return forbidden();
    }
    if !session::same(&session.csrf_token, &form.csrf) {
        return crate::pages::form_expired();
    }
    match validate_config(&state, &session.user).await {
        Ok(validation) => {
            let checks = validation
                .checks
                .iter()
                .map(|c| (c.name.to_owned(), format!("{:?}", c.outcome).to_lowercase(), c.message.clone()))
                .collect();
            let message = if validation.passed() {
                "The configuration works. The first user who clicks Get started and accepts completes it."
            } else {
                "Fix the failed checks below."
            };
            page(&state, &session, StatusCode::OK, Vec::new(), Some(message.into()), checks).await
        }
        Err(Problem::Conflict(message)) => page(&state, &session, StatusCode::CONFLICT, vec![message], None, Vec::new()).await,
        Err(Problem::Unavailable(message)) => page(&state, &session, StatusCode::OK, vec![message], None, Vec::new()).await,
        Err(problem) => problem.page(),
    }
}
