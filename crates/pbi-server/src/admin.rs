//! The administrator's "Power BI configuration" page: the registration users connect through.

use crate::AppState;
use crate::connect::active_registration;
use crate::pages::{render, server_error};
use crate::session::{self, SignedIn};
use askama::Template;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use pbi_store::{NewRegistration, Registration};
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;

const REGISTRATION_NAME: &str = "Power BI";
const CLOUDS: &[&str] = &["public", "us-gcc", "gcc-high", "dod", "china"];
/// Seed 000's delegated permissions, as the Azure portal lists them, and offline_access to stay connected.
const PERMISSIONS: &[&str] =
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
    let registration = match active_registration_any(state).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%e, "reading the registration");
            return server_error();
        }
    };
    let secret_state = match &registration {
        Some(r) => match state.store.secrets(r.id).await {
            Ok(secrets) => match secrets.first() {
                Some(s) if s.expires_at <= state.clock.unix() => format!(
                    "The application key expired on {}: create a new one in Certificates & secrets and enter it here.",
                    date(s.expires_at)
                ),
                Some(s) if s.expires_at - state.clock.unix() < pbi_auth::SECRET_WARNING_DAYS * 86_400 => format!(
                    "Warning: the application key expires on {} — create a new one in Certificates & secrets before then.",
                    date(s.expires_at)
                ),
                Some(s) => format!("An application key is set; it expires on {}.", date(s.expires_at)),
                None => "No application key is set.".into(),
            },
            Err(e) => {
                tracing::error!(%e, "reading secrets");
                return server_error();
            }
        },
        None => "No application key is set.".into(),
    };
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
            redirect_url: format!("{}/oauth/callback", state.base_url),
            clouds: CLOUDS,
            permissions: PERMISSIONS,
            errors,
            message,
            checks,
        },
    )
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

/// A new application key and its expiry (Unix seconds).
struct NewKey {
    value: SecretString,
    expires_at: i64,
}

/// Reads the form into a registration and maybe a new key; every problem is named by its field.
fn read_form(form: &ConfigForm, redirect_url: &str) -> Result<(NewRegistration, Option<NewKey>), Vec<String>> {
    let mut errors = Vec::new();
    let client_id = form.client_id.trim();
    if uuid::Uuid::parse_str(client_id).is_err() {
        errors.push("Application ID: enter the Application (client) ID, a GUID such as 8b7e587d-8d90-4e61-95a3-cfe6461aa03e.".to_owned());
    }
    if form.tenant.trim().is_empty() {
        errors.push("Tenant: enter the tenant ID or a verified domain (or organizations for a multi-tenant app).".to_owned());
    }
    if !CLOUDS.contains(&form.cloud.as_str()) {
        errors.push(format!("Cloud: choose one of {}.", CLOUDS.join(", ")));
    }
    let url = |label: &str, text: &str, errors: &mut Vec<String>| {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        match url::Url::parse(text) {
            Ok(u) if u.scheme() == "https" || u.scheme() == "http" => Some(text.to_owned()),
            _ => {
                errors.push(format!("{label}: enter an http(s) URL, or leave it empty to use the cloud's."));
                None
            }
        }
    };
    let authorize_url = url("Authorize URL", &form.authorize_url, &mut errors);
    let token_url = url("Token URL", &form.token_url, &mut errors);
    let api_base = url("Power BI API URL", &form.api_base, &mut errors);
    let secret = form.secret.trim();
    let new_secret = if secret.is_empty() {
        None
    } else {
        match time::Date::parse(form.secret_expires.trim(), time::macros::format_description!("[year]-[month]-[day]")) {
            Ok(day) => {
                Some(NewKey { value: SecretString::from(secret.to_owned()), expires_at: day.midnight().assume_utc().unix_timestamp() })
            }
            Err(_) => {
                errors.push(
                    "Application key expires: enter the key's expiry date as YYYY-MM-DD (the Azure portal shows it next to the key)."
                        .to_owned(),
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
            tenant: form.tenant.trim().to_owned(),
            cloud: form.cloud.clone(),
            redirect_urls: vec![redirect_url.to_owned()],
            scopes,
            authorize_url,
            token_url,
            api_base,
            enabled: form.enabled.as_deref() == Some("true"),
        },
        new_secret,
    ))
}

pub async fn save(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<ConfigForm>) -> Response {
    if !session.user.is_admin {
        return forbidden();
    }
    if !session::same(&session.csrf_token, &form.csrf) {
        return crate::pages::form_expired();
    }
    let redirect_url = format!("{}/oauth/callback", state.base_url);
    let (mut details, secret) = match read_form(&form, &redirect_url) {
        Ok(parsed) => parsed,
        Err(errors) => return page(&state, &session, StatusCode::BAD_REQUEST, errors, None, Vec::new()).await,
    };
    let now = state.clock.unix();
    let saved = async {
        let registration = match active_registration_any(&state).await? {
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
        if let Some(key) = secret {
            state.store.add_secret(registration.id, &key.value, key.expires_at, now).await?;
        }
        Ok::<_, pbi_store::StoreError>(())
    };
    match saved.await {
        Ok(()) => {
            tracing::info!(admin = %session.user.username, "saved the Power BI configuration");
            page(&state, &session, StatusCode::OK, Vec::new(), Some("Saved. Validate to check it with Entra ID.".into()), Vec::new()).await
        }
        Err(e) => {
            tracing::error!(%e, "saving the Power BI configuration");
            server_error()
        }
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
    let registration = match active_registration_any(&state).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return page(&state, &session, StatusCode::CONFLICT, vec!["Save a configuration first.".into()], None, Vec::new()).await;
        }
        Err(e) => {
            tracing::error!(%e, "reading the registration");
            return server_error();
        }
    };
    let callback = format!("{}/oauth/callback", state.base_url);
    match state.auth.validate(registration.id, Some(&callback)).await {
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
        Err(e) => page(&state, &session, StatusCode::OK, vec![e.to_string()], None, Vec::new()).await,
    }
}
