//! "My settings": a user's Power BI connection — Get started (the consent round trip), the OAuth callback,
//! status with the reason when they must sign in again, reconnect and disconnect.

use crate::AppState;
use crate::pages::{render, server_error};
use crate::problem::Problem;
use crate::session::{self, SignedIn};
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use pbi_auth::{AuthError, Callback, StartOptions};
use pbi_store::{Connection, ConnectionStatus, Registration, Session};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::sync::Arc;

struct ConnectionView {
    id: String,
    upn: String,
    status: &'static str,
    reason: String,
    scopes: String,
    expires: String,
    needs_sign_in: bool,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage<'a> {
    user_name: &'a str,
    csrf: &'a str,
    configured: bool,
    connection: Option<ConnectionView>,
    error: Option<String>,
    tokens: Vec<TokenView>,
    /// A token just made: shown this once.
    new_token: Option<String>,
}

struct TokenView {
    id: String,
    name: String,
    hint: String,
    created: String,
    expires: String,
    last_used: String,
    expired: bool,
}

fn token_view(token: pbi_store::ApiToken, now: i64) -> TokenView {
    let day = |t: Option<i64>, none: &str| t.map_or_else(|| none.to_owned(), crate::admin::date);
    TokenView {
        id: token.id.to_string(),
        name: token.name,
        hint: token.hint,
        created: crate::admin::date(token.created_at),
        expires: day(token.expires_at, "never"),
        last_used: day(token.last_used_at, "never"),
        expired: token.expires_at.is_some_and(|t| t <= now),
    }
}

/// The registration users connect through: the one enabled, not removed registration (seed 000's single
/// Power BI configuration), the oldest if there are several.
pub async fn active_registration(state: &AppState) -> pbi_store::Result<Option<Registration>> {
    Ok(state.store.registrations(false).await?.into_iter().filter(|r| r.details.enabled).min_by_key(|r| r.created_at))
}

fn view(connection: Connection) -> ConnectionView {
    let expires = connection
        .access_expires_at
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(|t| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default())
        .unwrap_or_else(|| "-".into());
    ConnectionView {
        id: connection.id.to_string(),
        upn: connection.account.upn,
        status: match connection.status {
            ConnectionStatus::Active => "connected",
            ConnectionStatus::NeedsSignIn => "sign in again",
            ConnectionStatus::Revoked => "disconnected",
        },
        reason: connection.status_reason.unwrap_or_default(),
        scopes: connection.scopes.join(" "),
        expires,
        needs_sign_in: connection.status != ConnectionStatus::Active,
    }
}

/// My settings; `new_token` is an API token just made, shown this once (pages are never cached:
/// `pages::security_headers`).
async fn settings_page(
    state: &AppState,
    session: &Session,
    status: StatusCode,
    error: Option<String>,
    new_token: Option<&str>,
) -> Response {
    let found = async {
        let (registration, connection) = crate::ops::registration_and_connection(state, &session.user).await?;
        let tokens = crate::ops::api_tokens(state, &session.user).await?;
        Ok::<_, Problem>((registration.is_some(), connection, tokens))
    };
    let (configured, connection, tokens) = match found.await {
        Ok(found) => found,
        Err(problem) => return problem.page(),
    };
    render(
        status,
        &SettingsPage {
            user_name: &session.user.display_name,
            csrf: &session.csrf_token,
            configured,
            connection: connection.map(view),
            error,
            tokens: tokens.into_iter().map(|t| token_view(t, state.clock.unix())).collect(),
            new_token: new_token.map(str::to_owned),
        },
    )
}

pub async fn settings(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    settings_page(&state, &session, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
pub struct ConnectForm {
    csrf: String,
    #[serde(default)]
    reconsent: Option<String>,
}

/// "Get started": sends the browser to Entra ID with a state bound to this pbi-bridge session.
pub async fn connect(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<ConnectForm>) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return crate::pages::form_expired();
    }
    let registration = match active_registration(&state).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return settings_page(
                &state,
                &session,
                StatusCode::CONFLICT,
                Some("Power BI is not configured yet: ask your administrator.".into()),
                None,
            )
            .await;
        }
        Err(e) => {
            tracing::error!(%e, "reading registrations");
            return server_error();
        }
    };
    let options = StartOptions { force_consent: form.reconsent.as_deref() == Some("true"), select_account: true, login_hint: None };
    match state.auth.start_authorization(registration.id, &session.user.id.to_string(), &session.token_hash, "/settings", &options).await {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(error) => settings_page(&state, &session, StatusCode::CONFLICT, Some(error.to_string()), None).await,
    }
}

/// Entra ID's redirect back: completes the sign-in in the session that started it.
pub async fn callback(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Query(callback): Query<Callback>) -> Response {
    match state.auth.complete_authorization(&session.token_hash, &callback).await {
        Ok(completed) => {
            tracing::info!(user = %session.user.username, account = %completed.connection.account.upn, "connected a Power BI account");
            Redirect::to(session::safe_next(&completed.return_to)).into_response()
        }
        Err(AuthError::Store(e)) => {
            tracing::error!(%e, "completing a sign-in");
            server_error()
        }
        Err(error) => {
            tracing::warn!(user = %session.user.username, %error, "a Power BI sign-in did not complete");
            settings_page(&state, &session, StatusCode::BAD_REQUEST, Some(error.to_string()), None).await
        }
    }
}

#[derive(Deserialize)]
pub struct DisconnectForm {
    csrf: String,
    connection: uuid::Uuid,
}

pub async fn disconnect(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<DisconnectForm>) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return crate::pages::form_expired();
    }
    match crate::ops::disconnect(&state, &session.user, form.connection).await {
        Ok(()) => Redirect::to("/settings").into_response(),
        Err(problem @ (Problem::NotFound(_) | Problem::Internal)) => problem.page(),
        Err(problem) => settings_page(&state, &session, problem.status(), Some(problem.to_string()), None).await,
    }
}

#[derive(Deserialize)]
pub struct NewTokenForm {
    csrf: String,
    name: String,
    #[serde(default)]
    expires_in_days: String,
}

/// Makes an API token and shows it this once.
pub async fn create_token(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<NewTokenForm>) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return crate::pages::form_expired();
    }
    let made = async {
        let name = crate::ops::parse_token_name(&form.name)?;
        let days = match form.expires_in_days.trim() {
            "" => None,
            text => Some(
                text.parse::<i64>()
                    .map_err(|_| Problem::invalid("expiresInDays", "Enter a number of days (1 to 366), or leave it empty."))?,
            ),
        };
        crate::ops::create_api_token(&state, &session.user, &name, crate::ops::parse_token_days(days)?).await
    };
    match made.await {
        Ok((_, secret)) => settings_page(&state, &session, StatusCode::OK, None, Some(secret.expose_secret())).await,
        Err(problem @ Problem::Invalid { .. }) => {
            settings_page(&state, &session, StatusCode::BAD_REQUEST, Some(problem.to_string()), None).await
        }
        Err(problem) => problem.page(),
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    csrf: String,
}

pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    axum::extract::Path(id): axum::extract::Path<uuid::Uuid>,
    Form(form): Form<RevokeForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return crate::pages::form_expired();
    }
    match crate::ops::revoke_api_token(&state, &session.user, id).await {
        Ok(()) => Redirect::to("/settings#api-tokens").into_response(),
        Err(problem) => problem.page(),
    }
}
