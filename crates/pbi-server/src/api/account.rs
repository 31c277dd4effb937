//! The API's account operations: who is calling, their API tokens, and their Power BI connection.

use super::edge::{Answer, Body, Caller, Ids, Refusals, rfc3339};
use super::edge::{Via, whole_number};
use crate::AppState;
use crate::ops;
use crate::problem::Problem;
use axum::extract::State;
use axum::http::StatusCode;
use pbi_store::{ApiToken, Connection, ConnectionStatus};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct Me {
    id: Uuid,
    username: String,
    display_name: String,
    is_admin: bool,
}

/// Who the token or session belongs to.
#[utoipa::path(get, path = "/me", tag = "Account", operation_id = "getMe", responses((status = 200, description = "OK", body = Me), Refusals))]
pub(super) async fn me(caller: Caller) -> Answer<axum::Json<Me>> {
    let u = caller.user;
    Ok(axum::Json(Me { id: u.id, username: u.username, display_name: u.display_name, is_admin: u.is_admin }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TokenOut {
    id: Uuid,
    name: String,
    /// The token's first characters, to tell tokens apart.
    hint: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    expires_at: Option<String>,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
}

impl From<ApiToken> for TokenOut {
    fn from(t: ApiToken) -> Self {
        Self {
            id: t.id,
            name: t.name,
            hint: t.hint,
            created_at: rfc3339(t.created_at),
            expires_at: t.expires_at.map(rfc3339),
            last_used_at: t.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct TokenList {
    tokens: Vec<TokenOut>,
}

/// The caller's API tokens that are not revoked (never the tokens themselves).
#[utoipa::path(get, path = "/tokens", tag = "Account", operation_id = "listApiTokens", responses((status = 200, description = "OK", body = TokenList), Refusals))]
pub(super) async fn list_tokens(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<TokenList>> {
    let tokens = ops::api_tokens(&state, &caller.user).await?;
    Ok(axum::Json(TokenList { tokens: tokens.into_iter().map(TokenOut::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewToken {
    /// What the token is for, such as the script that uses it (1 to 100 characters).
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^\s*[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*\s*$"
    )]
    name: String,
    /// 1 to 366; leave out for a token that lasts until revoked.
    #[serde(default, deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 366)]
    expires_in_days: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct MadeToken {
    /// The token: shown this once, never again. Send it as `Authorization: Bearer <token>`.
    token: String,
    api_token: TokenOut,
}

/// Makes an API token. Only a signed-in browser session can: a token cannot make more tokens.
#[utoipa::path(post, path = "/tokens", tag = "Account", operation_id = "createApiToken", request_body = NewToken,
    responses((status = 201, description = "Created", body = MadeToken), Refusals))]
pub(super) async fn create_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(new): Body<NewToken>,
) -> Answer<(StatusCode, axum::Json<MadeToken>)> {
    if caller.via == Via::Token {
        return Err(Problem::Forbidden("An API token cannot make more tokens: make one in My settings, signed in.".into()).into());
    }
    let name = ops::parse_token_name(&new.name)?;
    let (token, secret) = ops::create_api_token(&state, &caller.user, &name, ops::parse_token_days(new.expires_in_days)?).await?;
    Ok((StatusCode::CREATED, axum::Json(MadeToken { token: secret.expose_secret().to_owned(), api_token: token.into() })))
}

/// Revokes one of the caller's API tokens (a token may revoke itself).
#[utoipa::path(delete, path = "/tokens/{id}", tag = "Account", operation_id = "revokeApiToken",
    params(("id" = Uuid, Path, description = "The token's id")), responses((status = 204, description = "Revoked"), Refusals))]
pub(super) async fn revoke_token(State(state): State<Arc<AppState>>, caller: Caller, Ids(id): Ids<Uuid>) -> Answer<StatusCode> {
    ops::revoke_api_token(&state, &caller.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum ConnectionState {
    NotConfigured,
    NotConnected,
    Connected,
    NeedsSignIn,
    Disconnected,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConnectionOut {
    status: ConnectionState,
    id: Option<Uuid>,
    /// The Power BI account's user name.
    account: Option<String>,
    scopes: Vec<String>,
    #[schema(format = DateTime)]
    access_token_expires_at: Option<String>,
    /// Why the user must sign in again.
    reason: Option<String>,
    /// Where the user connects, signs in again or reconnects, in a browser.
    settings_url: String,
}

fn connection_out(state: &AppState, configured: bool, connection: Option<Connection>) -> ConnectionOut {
    let settings_url = format!("{}/settings", state.base_url);
    let Some(c) = connection else {
        let status = if configured { ConnectionState::NotConnected } else { ConnectionState::NotConfigured };
        return ConnectionOut {
            status,
            id: None,
            account: None,
            scopes: Vec::new(),
            access_token_expires_at: None,
            reason: None,
            settings_url,
        };
    };
    ConnectionOut {
        status: match c.status {
            ConnectionStatus::Active => ConnectionState::Connected,
            ConnectionStatus::NeedsSignIn => ConnectionState::NeedsSignIn,
            ConnectionStatus::Revoked => ConnectionState::Disconnected,
        },
        id: Some(c.id),
        account: Some(c.account.upn),
        scopes: c.scopes,
        access_token_expires_at: c.access_expires_at.map(rfc3339),
        reason: c.status_reason,
        settings_url,
    }
}

/// The caller's Power BI connection and its status.
#[utoipa::path(get, path = "/connection", tag = "Power BI connection", operation_id = "getConnection",
    responses((status = 200, description = "OK", body = ConnectionOut), Refusals))]
pub(super) async fn get_connection(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<ConnectionOut>> {
    let (registration, connection) = ops::registration_and_connection(&state, &caller.user).await?;
    Ok(axum::Json(connection_out(&state, registration.is_some(), connection)))
}

/// Disconnects the caller's Power BI account: its tokens are deleted; pinned tiles stay but are not drawn until they connect again.
#[utoipa::path(delete, path = "/connection", tag = "Power BI connection", operation_id = "disconnect",
    responses((status = 204, description = "Disconnected"), Refusals))]
pub(super) async fn disconnect(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<StatusCode> {
    let connection = ops::connection(&state, &caller.user).await?.ok_or(Problem::NotFound("connection"))?;
    ops::disconnect(&state, &caller.user, connection.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
