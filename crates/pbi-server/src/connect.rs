//! "My settings": a user's Power BI connection — Get started (the consent round trip), the OAuth callback,
//! status with the reason when they must sign in again, reconnect and disconnect.

use crate::AppState;
use crate::pages::{render, server_error};
use crate::session::{self, SignedIn};
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use pbi_auth::{AuthError, Callback, StartOptions};
use pbi_store::{Connection, ConnectionStatus, Registration, Session};
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

async fn settings_page(state: &AppState, session: &Session, status: StatusCode, error: Option<String>) -> Response {
    let registration = match active_registration(state).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%e, "reading registrations");
            return server_error();
        }
    };
    let connection = match &registration {
        Some(r) => match state.store.connections_of(&session.user.id.to_string()).await {
            Ok(list) => list.into_iter().filter(|c| c.account.registration_id == r.id).max_by_key(|c| c.updated_at).map(view),
            Err(e) => {
                tracing::error!(%e, "reading connections");
                return server_error();
            }
        },
        None => None,
    };
    render(
        status,
        &SettingsPage {
            user_name: &session.user.display_name,
            csrf: &session.csrf_token,
            configured: registration.is_some(),
            connection,
            error,
        },
    )
}

pub async fn settings(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    settings_page(&state, &session, StatusCode::OK, None).await
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
            )
            .await;
        }
        Err(e) => {
            tracing::error!(%e, "reading registrations");
            return server_error();
        }
    };
    let options = StartOptions { force_consent: form.reconsent.as_deref() == Some("true"), login_hint: None };
    match state.auth.start_authorization(registration.id, &session.user.id.to_string(), &session.token_hash, "/settings", &options).await {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(error) => settings_page(&state, &session, StatusCode::CONFLICT, Some(error.to_string())).await,
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
            settings_page(&state, &session, StatusCode::BAD_REQUEST, Some(error.to_string())).await
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
    match state.auth.disconnect(form.connection, Some(&session.user.id.to_string())).await {
        Ok(()) => Redirect::to("/settings").into_response(),
        Err(AuthError::NotFound(_)) => (StatusCode::NOT_FOUND, axum::response::Html("<h1>Not found</h1>")).into_response(),
        Err(error) => settings_page(&state, &session, StatusCode::BAD_REQUEST, Some(error.to_string())).await,
    }
}
