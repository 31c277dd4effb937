//! The API an app's backend calls with its secret key (`Authorization: Bearer pbs_…`, seed 002): connect
//! sessions that let one of its end users connect a Power BI account on pbi-bridge's connect page, and its end
//! users' connections.

use super::edge::{Answer, ApiError, Body, ErrorBody, Ids, Params, rfc3339};
use crate::AppState;
use crate::app_connect as ops;
use crate::problem::Problem;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use pbi_connect::connections::{AppConnection, ConnectionFilter};
use pbi_store::{App, ConnectSession, ConnectionCursor, ConnectionStatus, EndUser, EndUserDetails};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, IntoResponses, ToSchema};
use uuid::Uuid;

/// The app whose backend calls: by its secret key.
pub struct AppCaller(pub App);

impl FromRequestParts<Arc<AppState>> for AppCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let sent = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        let Some(key) = sent.map(|k| SecretString::from(k.trim().to_owned())) else {
            return Err(ApiError(Problem::Unauthenticated(
                "Send the app's secret key as Authorization: Bearer pbs_… (an administrator sees it once, when the app is made or its key rotated).".into(),
            )));
        };
        match pbi_connect::apps::app_for_key(&state.store, &key, state.clock.unix()).await {
            Ok(Ok(app)) => Ok(Self(app)),
            Ok(Err(refused)) => Err(ApiError(Problem::Unauthenticated(format!("{}.", crate::ops::capitalised(&refused.to_string()))))),
            Err(error) => Err(ApiError(ops::refused("reading an app's key")(error))),
        }
    }
}

/// The refusals of operations an app's backend calls.
#[derive(IntoResponses)]
#[allow(dead_code)] // Describes responses for the OpenAPI document; built by `ApiError`.
pub(super) enum AppRefusals {
    /// The input is not valid: `field` names what to correct.
    #[response(status = 400)]
    Invalid(ErrorBody),
    /// No secret key, or one that is unknown or stopped working.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// No such thing among the app's own (another app's reads the same).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// A fault of the server, logged with a request id.
    #[response(status = 500)]
    Internal(ErrorBody),
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct EndUserIn {
    /// The app's own id for the end user (1 to 255 characters): the same id is the same end user.
    #[schema(min_length = 1, max_length = 255)]
    id: String,
    /// Kept to show admins whose connection it is; a later session's value replaces it.
    #[schema(max_length = 320)]
    email: Option<String>,
    #[schema(max_length = 200)]
    display_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SessionIn {
    end_user: EndUserIn,
    /// Where the connect page sends the browser when it is done, with `connectionId` or `error` in its query;
    /// its origin must be one of the app's allowed origins. Leave it out when the SDK opens the page in a
    /// popup: the result goes to the window that opened it.
    return_url: Option<String>,
    /// One of this end user's connections to sign in again (a reconnect session).
    reconnect_connection_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct EndUserOut {
    /// pbi-bridge's id for the end user.
    id: Uuid,
    /// The app's id for them.
    external_id: String,
    email: Option<String>,
    display_name: Option<String>,
}

impl From<EndUser> for EndUserOut {
    fn from(user: EndUser) -> Self {
        Self { id: user.id, external_id: user.external_id, email: user.email, display_name: user.display_name }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SessionOut {
    id: Uuid,
    /// `pending` until the end user finishes; then `connected`, or why not: `consent_declined`,
    /// `admin_consent_required`, `wrong_tenant`, `missing_offline_access`, `wrong_account`, `expired`,
    /// `sign_in_failed`.
    status: String,
    /// What the end user was told, when it ended.
    message: Option<String>,
    /// The connection made (or signed in again), once `connected`.
    connection_id: Option<Uuid>,
    end_user_id: Uuid,
    return_url: Option<String>,
    reconnect_connection_id: Option<Uuid>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

impl SessionOut {
    fn of(session: ConnectSession, now: i64) -> Self {
        let status = match &session.outcome {
            Some(outcome) => outcome.code.clone(),
            None if now >= session.expires_at => pbi_connect::sessions::Failure::Expired.code().to_owned(),
            None => "pending".to_owned(),
        };
        Self {
            id: session.id,
            status,
            message: session.outcome.as_ref().map(|o| o.message.clone()),
            connection_id: session.outcome.and_then(|o| o.connection_id),
            end_user_id: session.details.end_user_id,
            return_url: session.details.return_url,
            reconnect_connection_id: session.details.reconnect_connection_id,
            created_at: rfc3339(session.created_at),
            expires_at: rfc3339(session.expires_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct MadeSession {
    session: SessionOut,
    end_user: EndUserOut,
    /// The session's token, for the SDK's `connect(token)`: shown this once, kept only as a hash. Works for
    /// 30 minutes, in the first browser that opens it.
    #[schema(format = Password)]
    token: String,
    /// The connect page, to open in a popup or send the browser to.
    url: String,
}

/// Makes a connect session for one of the app's end users (made the first time their id is seen): the answer
/// holds a token and the connect page's URL, which work for 30 minutes. Authenticate with the app's secret key.
#[utoipa::path(post, path = "/connect/sessions", tag = "Connect", operation_id = "createConnectSession", request_body = SessionIn,
    security(("appKey" = [])),
    responses((status = 201, description = "Made; the token is shown this once", body = MadeSession), AppRefusals))]
pub(super) async fn create_connect_session(
    State(state): State<Arc<AppState>>,
    AppCaller(app): AppCaller,
    Body(new): Body<SessionIn>,
) -> Answer<(StatusCode, axum::Json<MadeSession>)> {
    let spec = pbi_connect::sessions::SessionSpec {
        end_user: EndUserDetails { external_id: new.end_user.id, email: new.end_user.email, display_name: new.end_user.display_name },
        return_url: new.return_url,
        reconnect: new.reconnect_connection_id,
    };
    let made = ops::create(&state, &app, &spec).await?;
    let token = made.token.expose_secret().to_owned();
    let url = ops::page_url(&state, &token);
    let session = SessionOut::of(made.session, state.clock.unix());
    Ok((StatusCode::CREATED, axum::Json(MadeSession { session, end_user: made.end_user.into(), token, url })))
}

/// One of the app's connect sessions: whether the end user connected, and the connection made. Authenticate
/// with the app's secret key.
#[utoipa::path(get, path = "/connect/sessions/{id}", tag = "Connect", operation_id = "getConnectSession",
    security(("appKey" = [])), params(("id" = Uuid, Path, description = "The session's id")),
    responses((status = 200, description = "OK", body = SessionOut), AppRefusals))]
pub(super) async fn get_connect_session(
    State(state): State<Arc<AppState>>,
    AppCaller(app): AppCaller,
    Ids(id): Ids<Uuid>,
) -> Answer<axum::Json<SessionOut>> {
    let session = ops::of_app(&state, &app, id).await?;
    Ok(axum::Json(SessionOut::of(session, state.clock.unix())))
}

/// A connection's status, as the API says it.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub(super) enum AppConnectionStatus {
    Connected,
    /// The end user must sign in again (`statusReason` says why): make a reconnect session.
    NeedsSignIn,
    /// Disconnected: its tokens are gone.
    Disconnected,
}

impl AppConnectionStatus {
    fn of(status: ConnectionStatus) -> Self {
        match status {
            ConnectionStatus::Active => Self::Connected,
            ConnectionStatus::NeedsSignIn => Self::NeedsSignIn,
            ConnectionStatus::Revoked => Self::Disconnected,
        }
    }

    fn stored(self) -> ConnectionStatus {
        match self {
            Self::Connected => ConnectionStatus::Active,
            Self::NeedsSignIn => ConnectionStatus::NeedsSignIn,
            Self::Disconnected => ConnectionStatus::Revoked,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppConnectionOut {
    id: Uuid,
    end_user: EndUserOut,
    /// The Power BI account's user name.
    account: String,
    /// The account's Entra tenant.
    tenant_id: String,
    scopes: Vec<String>,
    status: AppConnectionStatus,
    status_reason: Option<String>,
    #[schema(format = DateTime)]
    last_refresh_at: Option<String>,
    last_error: Option<String>,
    /// Since when it has not worked, while it does not.
    #[schema(format = DateTime)]
    failing_since: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<AppConnection> for AppConnectionOut {
    fn from(found: AppConnection) -> Self {
        let c = found.connection;
        Self {
            id: c.id,
            end_user: found.end_user.into(),
            account: c.account.upn,
            tenant_id: c.account.tenant_id,
            scopes: c.scopes,
            status: AppConnectionStatus::of(c.status),
            status_reason: c.status_reason,
            last_refresh_at: c.last_refresh_at.map(rfc3339),
            last_error: c.last_error,
            failing_since: c.failing_since.map(rfc3339),
            created_at: rfc3339(c.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppConnectionList {
    connections: Vec<AppConnectionOut>,
    /// Where the next page starts (`cursor`), when there is one.
    next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ConnectionQuery {
    /// Only this end user's (the app's id for them).
    end_user_id: Option<String>,
    status: Option<AppConnectionStatus>,
    /// `nextCursor` of the page before.
    cursor: Option<String>,
    /// How many, 1 to 100 (50 when left out).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// The app's end users' connections, oldest first, a page at a time. Authenticate with the app's secret key.
#[utoipa::path(get, path = "/connect/connections", tag = "Connect", operation_id = "listAppConnections",
    security(("appKey" = [])), params(ConnectionQuery),
    responses((status = 200, description = "OK", body = AppConnectionList), AppRefusals))]
pub(super) async fn list_app_connections(
    State(state): State<Arc<AppState>>,
    AppCaller(app): AppCaller,
    Params(query): Params<ConnectionQuery>,
) -> Answer<axum::Json<AppConnectionList>> {
    let after = match query.cursor.as_deref() {
        Some(text) => Some(
            ConnectionCursor::parse(text)
                .ok_or_else(|| Problem::invalid("cursor", "Pass the nextCursor of the page before, as it was given."))?,
        ),
        None => None,
    };
    let limit = match query.limit {
        None => 50,
        Some(n @ 1..=100) => n,
        Some(_) => return Err(Problem::invalid("limit", "Ask for 1 to 100 connections a page.").into()),
    };
    let filter = ConnectionFilter { end_user: query.end_user_id, status: query.status.map(AppConnectionStatus::stored) };
    let (page, next) = ops::connections(&state, &app, &filter, after, limit).await?;
    Ok(axum::Json(AppConnectionList {
        connections: page.into_iter().map(AppConnectionOut::from).collect(),
        next_cursor: next.map(|c| c.encode()),
    }))
}

/// One of the app's end users' connections. Authenticate with the app's secret key.
#[utoipa::path(get, path = "/connect/connections/{id}", tag = "Connect", operation_id = "getAppConnection",
    security(("appKey" = [])), params(("id" = Uuid, Path, description = "The connection's id")),
    responses((status = 200, description = "OK", body = AppConnectionOut), AppRefusals))]
pub(super) async fn get_app_connection(
    State(state): State<Arc<AppState>>,
    AppCaller(app): AppCaller,
    Ids(id): Ids<Uuid>,
) -> Answer<axum::Json<AppConnectionOut>> {
    Ok(axum::Json(ops::connection(&state, &app, id).await?.into()))
}

/// Disconnects one of the app's end users' connections: its tokens are erased at once. Authenticate with the
/// app's secret key.
#[utoipa::path(delete, path = "/connect/connections/{id}", tag = "Connect", operation_id = "deleteAppConnection",
    security(("appKey" = [])), params(("id" = Uuid, Path, description = "The connection's id")),
    responses((status = 204, description = "Disconnected"), AppRefusals))]
pub(super) async fn delete_app_connection(
    State(state): State<Arc<AppState>>,
    AppCaller(app): AppCaller,
    Ids(id): Ids<Uuid>,
) -> Answer<StatusCode> {
    ops::disconnect(&state, &app, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
