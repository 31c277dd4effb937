//! "My settings": a user's Power BI connection — Get started (the consent round trip), the OAuth callback,
//! status with the reason when they must sign in again, reconnect and disconnect.

use crate::AppState;
use crate::frame::Message;
use crate::pages::{render, server_error};
use crate::problem::Problem;
use crate::session::{self, Flash, RequestHost, SignedIn};
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
    badge: &'static str,
    reason: String,
    scopes: String,
    /// HTML: a `<time>` (`frame::When`).
    expires: String,
    needs_sign_in: bool,
}

/// The Make a token form as typed, and what is wrong with each field.
#[derive(Default)]
struct TokenForm {
    name: String,
    days: String,
    name_error: Option<String>,
    days_error: Option<String>,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage<'a> {
    csrf: &'a str,
    configured: bool,
    connection: Option<ConnectionView>,
    error: Option<String>,
    tokens: Vec<TokenView>,
    /// A token just made: shown this once.
    new_token: Option<String>,
    form: TokenForm,
}

struct TokenView {
    id: String,
    name: String,
    hint: String,
    /// HTML `<time>`s (`frame::When`), or "never".
    created: String,
    expires: String,
    last_used: String,
    /// "in 29 days", for a token that has not expired.
    expires_in: String,
    expired: bool,
}

fn token_view(token: pbi_store::ApiToken, now: i64) -> TokenView {
    let at = |t: Option<i64>| t.and_then(crate::frame::When::at).map_or_else(|| "never".to_owned(), |w| w.to_string());
    TokenView {
        id: token.id.to_string(),
        name: token.name,
        hint: token.hint,
        created: at(Some(token.created_at)),
        expires: at(token.expires_at),
        last_used: at(token.last_used_at),
        expires_in: token
            .expires_at
            .filter(|&t| t > now)
            .map(|t| format!("expires {}", crate::frame::relative(t, now)))
            .unwrap_or_default(),
        expired: token.expires_at.is_some_and(|t| t <= now),
    }
}

/// The registration users connect through: the one enabled, not removed registration (seed 000's single
/// Power BI configuration), the oldest if there are several.
pub async fn active_registration(state: &AppState) -> pbi_store::Result<Option<Registration>> {
    Ok(state.store.registrations(false).await?.into_iter().filter(|r| r.details.enabled).min_by_key(|r| r.created_at))
}

fn view(connection: Connection) -> ConnectionView {
    ConnectionView {
        id: connection.id.to_string(),
        upn: connection.account.upn,
        status: crate::pages::status_words(connection.status),
        badge: crate::pages::status_badge(connection.status),
        reason: connection.status_reason.unwrap_or_default(),
        scopes: connection.scopes.join(" "),
        expires: crate::frame::when_html(connection.access_expires_at.and_then(crate::frame::When::at)),
        needs_sign_in: connection.status != ConnectionStatus::Active,
    }
}

/// My settings; a token just made comes in the flash (`frame::flash_token`), shown this once (pages are
/// never cached: `pages::security_headers`).
async fn settings_page(state: &AppState, session: &Session, status: StatusCode, error: Option<String>, form: TokenForm) -> Response {
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
            csrf: &session.csrf_token,
            configured,
            connection: connection.map(view),
            error,
            tokens: tokens.into_iter().map(|t| token_view(t, state.clock.unix())).collect(),
            new_token: crate::frame::flash_token(),
            form,
        },
    )
}

fn fresh_form() -> TokenForm {
    TokenForm { days: "90".into(), ..TokenForm::default() }
}

pub async fn settings(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    settings_page(&state, &session, StatusCode::OK, None, fresh_form()).await
}

/// Back to My settings with a message bar (Post/Redirect/Get).
fn back(state: &AppState, session: &Session, to: &str, message: Message) -> Response {
    session::done(state, session, to, Flash::message(message))
}

#[derive(Deserialize)]
pub struct ConnectForm {
    csrf: String,
    #[serde(default)]
    reconsent: Option<String>,
}

/// "Get started": sends the browser to Entra ID with a state bound to this pbi-bridge session.
pub async fn connect(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    RequestHost(host): RequestHost,
    Form(form): Form<ConnectForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return crate::pages::form_expired();
    }
    let registration = match active_registration(&state).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return back(&state, &session, "/settings", Message::error("Power BI is not configured yet: ask your administrator."));
        }
        Err(e) => {
            tracing::error!(%e, "reading registrations");
            return server_error();
        }
    };
    let options = StartOptions { force_consent: form.reconsent.as_deref() == Some("true"), select_account: true, login_hint: None, host };
    match state.auth.start_authorization(registration.id, &session.user.as_owner(), &session.token_hash, "/settings", &options).await {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(error) => back(&state, &session, "/settings", Message::error(error.to_string())),
    }
}

/// Entra ID's redirect back: an end user's sign-in goes to the connect page's flow (`connect_pages`), a
/// pbi-bridge user's completes in the session that started it.
pub async fn callback(State(state): State<Arc<AppState>>, RequestHost(host): RequestHost, request: axum::extract::Request) -> Response {
    let (mut parts, _) = request.into_parts();
    let callback: Callback = match Query::try_from_uri(&parts.uri) {
        Ok(Query(callback)) => callback,
        Err(rejection) => {
            return crate::frame::error_page(StatusCode::BAD_REQUEST, "Sign-in answer not understood", &rejection.body_text());
        }
    };
    let whose = match &callback.state {
        Some(sent) => state.store.state_owner(&pbi_auth::state_hash(sent)).await,
        None => Ok(None),
    };
    match whose {
        Ok(Some(pbi_store::Owner::EndUser(end_user))) => {
            return crate::connect_pages::callback(&state, &parts.headers, host.as_deref(), &callback, end_user).await;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::error!(%e, "reading a pending sign-in");
            return server_error();
        }
    }
    let session = match <SignedIn as axum::extract::FromRequestParts<Arc<AppState>>>::from_request_parts(&mut parts, &state).await {
        Ok(SignedIn(session)) => session,
        Err(to_sign_in) => return to_sign_in,
    };
    user_callback(&state, session, host, callback).await
}

async fn user_callback(state: &AppState, session: Session, host: Option<String>, callback: Callback) -> Response {
    match state.auth.complete_authorization(&session.token_hash, &callback, host.as_deref()).await {
        Ok(completed) => {
            let upn = &completed.connection.account.upn;
            tracing::info!(user = %session.user.username, account = %upn, "connected a Power BI account");
            let resumed = crate::subscriptions::resume(state, &session.user, completed.connection.id).await;
            let also = match resumed {
                0 => String::new(),
                1 => " Your paused subscription resumed and is delivering now.".to_owned(),
                n => format!(" Your {n} paused subscriptions resumed and are delivering now."),
            };
            let message = Message::success(format!("Connected your Power BI account {upn}.{also}"));
            back(state, &session, session::safe_next(&completed.return_to), message)
        }
        Err(AuthError::Store(e)) => {
            tracing::error!(%e, "completing a sign-in");
            server_error()
        }
        Err(error) => {
            tracing::warn!(user = %session.user.username, %error, "a Power BI sign-in did not complete");
            settings_page(state, &session, StatusCode::BAD_REQUEST, Some(error.to_string()), fresh_form()).await
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
        Ok(()) => {
            back(&state, &session, "/settings", Message::success("Disconnected your Power BI account. Get started connects it again."))
        }
        Err(problem @ (Problem::NotFound(_) | Problem::Internal)) => problem.page(),
        Err(problem) => back(&state, &session, "/settings", Message::error(problem.to_string())),
    }
}

#[derive(Deserialize)]
pub struct NewTokenForm {
    csrf: String,
    name: String,
    #[serde(default)]
    expires_in_days: String,
}

/// Makes an API token and shows it this once, on the page the answer redirects to (so a reload makes no
/// second token): the value waits in the session's flash, in memory, for that one GET.
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
        Ok((token, secret)) => {
            let flash = Flash {
                messages: vec![Message::success(format!("Made the API token “{}”.", token.name))],
                new_token: Some(secret),
                checks: Vec::new(),
            };
            session::done(&state, &session, "/settings#api-tokens", flash)
        }
        Err(Problem::Invalid { field, message }) => {
            let mut typed = TokenForm { name: form.name.clone(), days: form.expires_in_days.clone(), ..TokenForm::default() };
            if field == "expiresInDays" {
                typed.days_error = Some(message);
            } else {
                typed.name_error = Some(message);
            }
            let error = Some("Check the fields marked below.".to_owned());
            settings_page(&state, &session, StatusCode::BAD_REQUEST, error, typed).await
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
        Ok(()) => back(
            &state,
            &session,
            "/settings#api-tokens",
            Message::success("Revoked the API token: scripts that use it are refused from now on."),
        ),
        Err(problem) => problem.page(),
    }
}
