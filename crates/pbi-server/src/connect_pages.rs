//! The hosted connect page (seed 002): an app's end user, sent here with a connect session's token, connects a
//! Power BI account through the app's registration. The first browser that opens the token holds the session
//! (by a cookie of its own, kept as a hash), so a link that leaks after it is opened is of no use; the token
//! leaves the address bar at once. The result goes back to the app: to the window that opened the page (the
//! SDK's popup, by `postMessage` to the app's allowed origins), or by redirect to the session's return URL.

use crate::AppState;
use crate::pages::{render, server_error};
use crate::session::{self, RequestHost};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use pbi_auth::{AuthError, Callback, StartOptions};
use pbi_connect::sessions::{self as sessions, CONNECTED, Failure, SessionRefused};
use pbi_store::{App, ConnectSession, Owner};
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

/// The cookie that says which browser holds a session: over https with the `__Host-` prefix.
fn browser_cookie(secure: bool) -> &'static str {
    if secure { "__Host-pbi_connect" } else { "pbi_connect" }
}

/// As long as a session works, and then some for the way back from Microsoft.
const BROWSER_COOKIE_SECONDS: i64 = 2 * 3600;

fn browser_hash(state: &AppState, headers: &HeaderMap) -> Option<String> {
    session::cookie(headers, browser_cookie(state.secure_cookies)).filter(|c| !c.is_empty()).map(|c| session::hash(&c))
}

/// The connect form's CSRF token: derived from the browser's cookie, which another site can neither read nor
/// send with a cross-site POST (SameSite=Lax).
fn csrf_of(browser_hash: &str) -> String {
    session::hash(&format!("connect-form:{browser_hash}"))
}

fn refusal_page(refused: SessionRefused) -> Response {
    let status = match refused {
        SessionRefused::NotAToken | SessionRefused::Unknown => StatusCode::NOT_FOUND,
        SessionRefused::Expired | SessionRefused::Ended => StatusCode::GONE,
        SessionRefused::OtherBrowser => StatusCode::FORBIDDEN,
    };
    let message = crate::ops::capitalised(&refused.to_string());
    crate::frame::error_page(status, "This connect link cannot be used", &format!("{message}."))
}

fn failed_to_read(error: impl std::fmt::Display) -> Response {
    tracing::error!(%error, "the connect page");
    server_error()
}

#[derive(Deserialize)]
pub struct OpenQuery {
    #[serde(default)]
    session: String,
}

/// The link the app gave out: binds the session to this browser, then moves to an address without the token.
pub async fn open(State(state): State<Arc<AppState>>, headers: HeaderMap, Query(query): Query<OpenQuery>) -> Response {
    let existing = session::cookie(&headers, browser_cookie(state.secure_cookies)).filter(|c| !c.is_empty());
    let cookie = existing.clone().unwrap_or_else(session::random_token);
    match sessions::open(&state.store, query.session.trim(), &session::hash(&cookie), state.clock.unix()).await {
        Ok(Ok(found)) => {
            let mut response = Redirect::to(&format!("/connect/app/{}", found.id)).into_response();
            if existing.is_none() {
                let set = session::set_cookie(browser_cookie(state.secure_cookies), &cookie, BROWSER_COOKIE_SECONDS, state.secure_cookies);
                response.headers_mut().insert(header::SET_COOKIE, set);
            }
            response
        }
        Ok(Err(refused)) => refusal_page(refused),
        Err(error) => failed_to_read(error),
    }
}

struct Permission {
    scope: String,
    words: &'static str,
}

/// A Power BI permission as the person granting it reads it.
fn permission_words(scope: &str) -> &'static str {
    let short = scope.rsplit('/').next().unwrap_or(scope);
    match short.to_ascii_lowercase().as_str() {
        "dataset.read.all" => "Read your Power BI datasets and their data",
        "dataset.readwrite.all" => "Read, create and change your Power BI datasets and their data",
        "report.read.all" => "Read your Power BI reports",
        "report.readwrite.all" => "Read, create and change your Power BI reports",
        "dashboard.read.all" => "Read your Power BI dashboards and tiles",
        "dashboard.readwrite.all" => "Read, create and change your Power BI dashboards and tiles",
        "workspace.read.all" => "See your Power BI workspaces",
        "workspace.readwrite.all" => "See, create and change your Power BI workspaces",
        "content.create" => "Create content in your Power BI workspaces",
        "tenant.read.all" => "Read your organization's Power BI metadata (administrators only)",
        "tenant.readwrite.all" => "Read and change your organization's Power BI settings (administrators only)",
        _ => "Use Power BI as you, as the permission names",
    }
}

#[derive(Template)]
#[template(path = "connect_app.html")]
struct ConnectAppPage<'a> {
    id: Uuid,
    app: &'a str,
    end_user: Option<String>,
    reconnect: Option<String>,
    permissions: Vec<Permission>,
    csrf: String,
}

/// The session this browser holds, with its app; or the page that says why not.
async fn held(state: &AppState, headers: &HeaderMap, id: Uuid) -> Result<(ConnectSession, App, String), Response> {
    let Some(browser) = browser_hash(state, headers) else { return Err(refusal_page(SessionRefused::OtherBrowser)) };
    let session = match sessions::held(&state.store, id, &browser, state.clock.unix()).await {
        Ok(Ok(session)) => session,
        Ok(Err(refused)) => return Err(refusal_page(refused)),
        Err(error) => return Err(failed_to_read(error)),
    };
    let app = state.store.app(session.details.app_id).await.map_err(failed_to_read)?;
    Ok((session, app, browser))
}

/// What the end user is asked to share, and the button to Microsoft.
pub async fn page(State(state): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<Uuid>) -> Response {
    let (session, app, browser) = match held(&state, &headers, id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let shown = async {
        let registration = state.store.registration(app.details.registration_id).await?;
        let end_user = state.store.end_user(session.details.end_user_id).await?;
        let reconnect = reconnect_account(&state, &session).await?;
        Ok::<_, pbi_store::StoreError>((registration, end_user, reconnect))
    };
    let (registration, end_user, reconnect) = match shown.await {
        Ok(found) => found,
        Err(error) => return failed_to_read(error),
    };
    let permissions = registration
        .details
        .scopes
        .iter()
        .filter(|s| !pbi_auth::OIDC_SCOPES.contains(&s.as_str()))
        .map(|scope| Permission { scope: scope.clone(), words: permission_words(scope) })
        .collect();
    render(
        StatusCode::OK,
        &ConnectAppPage {
            id,
            app: &app.details.name,
            end_user: end_user.display_name.or(end_user.email),
            reconnect,
            permissions,
            csrf: csrf_of(&browser),
        },
    )
}

/// The account a reconnect session signs in again.
async fn reconnect_account(state: &AppState, session: &ConnectSession) -> pbi_store::Result<Option<String>> {
    match session.details.reconnect_connection_id {
        Some(connection) => Ok(Some(state.store.connection(connection).await?.account.upn)),
        None => Ok(None),
    }
}

#[derive(Deserialize)]
pub struct ContinueForm {
    #[serde(default)]
    csrf: String,
}

/// "Continue": to Entra ID's sign-in, through the app's registration, choosing the account.
pub async fn start(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RequestHost(host): RequestHost,
    Path(id): Path<Uuid>,
    Form(form): Form<ContinueForm>,
) -> Response {
    let (session, app, browser) = match held(&state, &headers, id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    if !session::same(&csrf_of(&browser), &form.csrf) {
        return crate::pages::form_expired();
    }
    let login_hint = reconnect_account(&state, &session).await.ok().flatten();
    let options = StartOptions { force_consent: false, select_account: login_hint.is_none(), login_hint, host };
    let owner = Owner::EndUser(session.details.end_user_id);
    let done = done_path(id);
    match state.auth.start_authorization(app.details.registration_id, &owner, &browser, &done, &options).await {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(AuthError::Store(error)) => failed_to_read(error),
        Err(error) => {
            let message = error.to_string();
            end(&state, &session, Failure::SignInFailed, &message).await;
            Redirect::to(&done).into_response()
        }
    }
}

fn done_path(id: Uuid) -> String {
    format!("/connect/app/{id}/done")
}

/// The session a `return_to` of the connect flow names.
fn session_of_done_path(path: &str) -> Option<Uuid> {
    path.strip_prefix("/connect/app/")?.strip_suffix("/done")?.parse().ok()
}

async fn end(state: &AppState, session: &ConnectSession, failure: Failure, message: &str) {
    tracing::info!(session = %session.id, reason = failure.code(), "a connect session failed");
    if let Err(error) = sessions::failed(&state.store, session.id, failure, message, state.clock.unix()).await {
        tracing::error!(%error, "recording a connect session's failure");
    }
}

/// Entra ID's redirect back for an end user's sign-in (`connect::callback` sends it here when the pending
/// state is an end user's).
pub async fn callback(state: &AppState, headers: &HeaderMap, host: Option<&str>, callback: &Callback, end_user: Uuid) -> Response {
    let Some(browser) = browser_hash(state, headers) else { return refusal_page(SessionRefused::OtherBrowser) };
    let Some(session) = state.store.open_connect_session_of_browser(&browser, end_user, state.clock.unix()).await.ok().flatten() else {
        return refusal_page(SessionRefused::Expired);
    };
    let now = state.clock.unix();
    match state.auth.complete_authorization(&browser, callback, host).await {
        Ok(completed) => {
            let connection = completed.connection;
            let path = session_of_done_path(&completed.return_to).map(done_path).unwrap_or_else(|| done_path(session.id));
            let made_now = connection.created_at >= session.created_at;
            let other_account = session.details.reconnect_connection_id.is_some_and(|c| c != connection.id);
            let failure = if other_account {
                Some(Failure::WrongAccount)
            } else if connection.refresh_expires_at.is_none() {
                Some(Failure::MissingOfflineAccess)
            } else {
                None
            };
            if let Some(failure) = failure {
                // A connection this very sign-in made, that the app did not get: its tokens go at once.
                if made_now && let Err(error) = state.auth.disconnect(connection.id, Some(&connection.account.owner)).await {
                    tracing::error!(%error, "disconnecting a connection a failed connect session made");
                }
                let app = state.store.app(session.details.app_id).await.map(|a| a.details.name).unwrap_or_default();
                end(state, &session, failure, &failure.advice(&app)).await;
                return Redirect::to(&path).into_response();
            }
            tracing::info!(session = %session.id, connection = %connection.id, "an end user connected a Power BI account");
            if let Err(error) = sessions::connected(&state.store, session.id, connection.id, &connection.account.upn, now).await {
                return failed_to_read(error);
            }
            Redirect::to(&path).into_response()
        }
        Err(AuthError::Store(error)) => failed_to_read(error),
        Err(AuthError::Refused(explained)) => {
            end(state, &session, Failure::of_entra_code(explained.code.as_deref()), &explained.to_string()).await;
            Redirect::to(&done_path(session.id)).into_response()
        }
        Err(error) => {
            end(state, &session, Failure::SignInFailed, &error.to_string()).await;
            Redirect::to(&done_path(session.id)).into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "connect_result.html")]
struct ResultPage<'a> {
    app: &'a str,
    title: String,
    status: &'a str,
    connected: bool,
    message: &'a str,
    advice: String,
    session_id: Uuid,
    connection_id: String,
    /// Where the result may be posted (`postMessage`), space-separated: the app's allowed origins.
    origins: String,
}

/// The result: to the return URL, when the session has one; else a page that tells the window that opened it.
pub async fn done(State(state): State<Arc<AppState>>, headers: HeaderMap, Path(id): Path<Uuid>) -> Response {
    let Some(browser) = browser_hash(&state, &headers) else { return refusal_page(SessionRefused::OtherBrowser) };
    let session = match state.store.connect_session(id).await {
        Ok(session) if session.browser_hash.as_deref() == Some(browser.as_str()) => session,
        Ok(_) | Err(pbi_store::StoreError::NotFound(_)) => return refusal_page(SessionRefused::Unknown),
        Err(error) => return failed_to_read(error),
    };
    let Some(outcome) = session.outcome.clone() else { return Redirect::to(&format!("/connect/app/{id}")).into_response() };
    let app = match state.store.app(session.details.app_id).await {
        Ok(app) => app,
        Err(error) => return failed_to_read(error),
    };
    if let Some(url) = &session.details.return_url {
        return Redirect::to(&return_url_with(url, &session, &outcome)).into_response();
    }
    let connected = outcome.code == CONNECTED;
    let failure = Failure::from_code(&outcome.code);
    let title = match failure {
        Some(failure) => failure.title().to_owned(),
        None => format!("Connected to {}", app.details.name),
    };
    let status = if connected { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    render(
        status,
        &ResultPage {
            app: &app.details.name,
            title,
            status: &outcome.code,
            connected,
            message: &outcome.message,
            advice: failure.map(|f| f.advice(&app.details.name)).unwrap_or_default(),
            session_id: id,
            connection_id: outcome.connection_id.map(|c| c.to_string()).unwrap_or_default(),
            origins: app.details.allowed_origins.join(" "),
        },
    )
}

/// The return URL with the outcome in its query: `connectionId` when connected, else `error`; and
/// `sessionId` always.
fn return_url_with(url: &str, session: &ConnectSession, outcome: &pbi_store::SessionOutcome) -> String {
    let Ok(mut url) = url::Url::parse(url) else { return url.to_owned() };
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("sessionId", &session.id.to_string());
        match outcome.connection_id {
            Some(connection) if outcome.code == CONNECTED => query.append_pair("connectionId", &connection.to_string()),
            _ => query.append_pair("error", &outcome.code),
        };
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_done_path_names_its_session() {
        let id = Uuid::from_u128(7);
        assert_eq!(session_of_done_path(&done_path(id)), Some(id));
        assert_eq!(session_of_done_path("/settings"), None);
        assert_eq!(session_of_done_path("/connect/app/nope/done"), None);
    }
}
