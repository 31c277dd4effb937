//! The HTML pages and the health endpoints.

use crate::session::{self, ClientAddress, SESSION_COOKIE, SignedIn};
use crate::{AppState, users};
use askama::Template;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;

pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a page");
            server_error()
        }
    }
}

/// A 500 that says nothing of the internals (they are in the log).
/// A form whose CSRF token does not match the session's: most often a page left open across a sign-in.
pub fn form_expired() -> Response {
    crate::frame::error_page(StatusCode::FORBIDDEN, "This form expired", "This form expired. Go back, reload the page and try again.")
}

pub fn server_error() -> Response {
    crate::frame::error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "Please try again. If it keeps happening, tell your administrator the time it happened.",
    )
}

pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready when the database answers and is at the schema this build expects.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.store.schema_version().await {
        Ok(version) if version == pbi_store::Store::latest_schema_version() => {
            (StatusCode::OK, axum::Json(serde_json::json!({"status": "ready", "schema": version}))).into_response()
        }
        Ok(version) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"status": "schema mismatch", "schema": version})))
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, axum::Json(serde_json::json!({"status": "database unavailable"}))).into_response(),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    next: &'a str,
    /// What was typed, kept after a refusal (never the password).
    username: &'a str,
    error: Option<&'a str>,
}

/// Set by Sign out for the sign-in page that follows, which says "You are signed out." once (the session,
/// and so its flash, is gone by then). It holds nothing but that.
const SIGNED_OUT_COOKIE: &str = "pbi_signed_out";

#[derive(Deserialize)]
pub struct NextQuery {
    #[serde(default)]
    next: Option<String>,
}

fn login_form(state: &AppState, status: StatusCode, next: &str, username: &str, error: Option<&str>) -> Response {
    let csrf = state.login_csrf.issue(state.clock.unix());
    let mut response = render(status, &LoginPage { csrf: &csrf, next: session::safe_next(next), username: username.trim(), error });
    let cookie = session::set_cookie(
        session::login_csrf_cookie(state.secure_cookies),
        &csrf,
        session::LoginCsrf::LIFETIME_SECONDS,
        state.secure_cookies,
    );
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// The sign-in form again with a 429 and how long to wait.
fn login_refused(state: &AppState, next: &str, username: &str, retry_after_seconds: u64, error: &str) -> Response {
    let mut response = login_form(state, StatusCode::TOO_MANY_REQUESTS, next, username, Some(error));
    response.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after_seconds));
    response
}

pub async fn login_page(State(state): State<Arc<AppState>>, Query(query): Query<NextQuery>, headers: HeaderMap) -> Response {
    let signed_out = session::cookie(&headers, SIGNED_OUT_COOKIE).is_some_and(|v| v == "1");
    if signed_out {
        crate::frame::show(crate::frame::Message::success("You are signed out."));
    }
    let mut response = login_form(&state, StatusCode::OK, query.next.as_deref().unwrap_or("/"), "", None);
    if signed_out {
        response.headers_mut().append(header::SET_COOKIE, session::set_cookie(SIGNED_OUT_COOKIE, "", 0, state.secure_cookies));
    }
    response
}

#[derive(Deserialize)]
pub struct LoginForm {
    csrf: String,
    username: String,
    password: SecretString,
    #[serde(default)]
    next: String,
}

pub async fn login(
    State(state): State<Arc<AppState>>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let now = state.clock.unix();
    let cookie_csrf = session::cookie(&headers, session::login_csrf_cookie(state.secure_cookies)).unwrap_or_default();
    if !state.login_csrf.verify(&cookie_csrf, &form.csrf, now) {
        return login_form(
            &state,
            StatusCode::FORBIDDEN,
            &form.next,
            &form.username,
            Some("This sign-in form expired. Please sign in again."),
        );
    }
    // Before anything is counted or checked: a name no account can have is refused, whatever its length.
    let name = match users::SignInName::parse(&form.username) {
        Ok(name) => name,
        Err(error) => {
            // Not echoed: a name this long is no one's.
            return login_form(&state, StatusCode::BAD_REQUEST, &form.next, "", Some(&format!("User name: {}.", error.message)));
        }
    };
    if let Some(seconds) = state.sign_in_guard.locked_for(&name, client, now) {
        tracing::warn!(username = %name.as_str(), %client, "sign-in refused: too many failed attempts");
        let minutes = (seconds + 59) / 60;
        let message = format!("Too many failed sign-ins for this user name. Try again in {minutes} minute(s), or ask your administrator.");
        return login_refused(&state, &form.next, &form.username, seconds.unsigned_abs(), &message);
    }
    let Some(slot) = state.passwords.try_take() else {
        tracing::warn!(username = %name.as_str(), %client, "sign-in refused: every password check is busy");
        let message = "The server is busy signing other people in. Please try again in a moment.";
        return login_refused(&state, &form.next, &form.username, users::PasswordSlots::RETRY_AFTER_SECONDS, message);
    };
    let found = match state.store.user_credentials(form.username.trim()).await {
        Ok(found) => found,
        Err(error) => {
            tracing::error!(%error, "reading a user");
            return server_error();
        }
    };
    // The same work whether or not the user exists, so the answer does not reveal which user names exist.
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };
    let password_ok = slot.verify(form.password, hash).await;
    let Some(user) = user.filter(|_| password_ok) else {
        state.sign_in_guard.failed(&name, client, now);
        return login_form(&state, StatusCode::UNAUTHORIZED, &form.next, &form.username, Some("The user name or password is wrong."));
    };
    state.sign_in_guard.succeeded(&name, client);
    // Said only to someone who knows the password, so it tells no one else that the account exists.
    if user.disabled_at.is_some() {
        return login_form(
            &state,
            StatusCode::FORBIDDEN,
            &form.next,
            &form.username,
            Some("This account is disabled: ask your administrator."),
        );
    }
    // The session this browser signed in with before (perhaps as someone else) ends: the new cookie replaces
    // it, and a session no browser holds any more should not stay usable.
    if let Some(replaced) = session::cookie(&headers, SESSION_COOKIE).filter(|token| !token.is_empty())
        && let Err(error) = state.store.delete_session(&session::hash(&replaced)).await
    {
        tracing::error!(%error, "ending the session a sign-in replaces");
        return server_error();
    }
    let token = session::random_token();
    if let Err(error) =
        state.store.put_session(&session::hash(&token), user.id, &session::random_token(), now, now + state.session_seconds).await
    {
        tracing::error!(%error, "storing a session");
        return server_error();
    }
    tracing::info!(user = %user.username, "signed in");
    let mut response = Redirect::to(session::safe_next(&form.next)).into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(SESSION_COOKIE, &token, state.session_seconds, state.secure_cookies));
    response
        .headers_mut()
        .append(header::SET_COOKIE, session::set_cookie(session::login_csrf_cookie(state.secure_cookies), "", 0, state.secure_cookies));
    response
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn logout(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<CsrfForm>) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    if let Err(error) = state.store.delete_session(&session.token_hash).await {
        tracing::error!(%error, "deleting a session");
        return server_error();
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, session::set_cookie(SESSION_COOKIE, "", 0, state.secure_cookies));
    response.headers_mut().append(header::SET_COOKIE, session::set_cookie(SIGNED_OUT_COOKIE, "1", 60, state.secure_cookies));
    response
}

struct ConnectionRow {
    upn: String,
    status: &'static str,
    /// The status badge's colour.
    badge: &'static str,
    reason: String,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    user_name: &'a str,
    is_admin: bool,
    connections: Vec<ConnectionRow>,
}

pub async fn home(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    let connections = match state.store.connections_of(&session.user.as_owner()).await {
        Ok(list) => list,
        Err(error) => {
            tracing::error!(%error, "listing connections");
            return server_error();
        }
    };
    let rows = connections
        .into_iter()
        .map(|c| ConnectionRow {
            upn: c.account.upn,
            status: status_words(c.status),
            badge: status_badge(c.status),
            reason: c.status_reason.unwrap_or_default(),
        })
        .collect();
    render(StatusCode::OK, &HomePage { user_name: &session.user.display_name, is_admin: session.user.is_admin, connections: rows })
}

/// A connection's status in words.
pub(crate) fn status_words(status: pbi_store::ConnectionStatus) -> &'static str {
    match status {
        pbi_store::ConnectionStatus::Active => "connected",
        pbi_store::ConnectionStatus::NeedsSignIn => "sign in again",
        pbi_store::ConnectionStatus::Revoked => "disconnected",
    }
}

/// A connection's status badge (`badge-…` in the stylesheet).
pub(crate) fn status_badge(status: pbi_store::ConnectionStatus) -> &'static str {
    match status {
        pbi_store::ConnectionStatus::Active => "connected",
        pbi_store::ConnectionStatus::NeedsSignIn => "needs-sign-in",
        pbi_store::ConnectionStatus::Revoked => "disconnected",
    }
}

/// Headers every answer carries: no page of ours can be framed by another site (clickjacking of its forms),
/// content types are not sniffed, our URLs (which hold ids) are not sent to other sites as a Referer, what
/// a signed-in person sees is not kept in a shared or browser cache, and a Content-Security-Policy lets a page
/// run only our own scripts and frame nothing (`assets::content_security_policy`), unless a handler set its
/// own (a workspace page frames its tiles' embed host).
pub async fn security_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.entry(name).or_insert(axum::http::HeaderValue::from_static(value));
    }
    headers.entry(header::CONTENT_SECURITY_POLICY).or_insert_with(|| crate::assets::content_security_policy("'none'"));
    response
}
