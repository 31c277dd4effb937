//! The JSON API under `/api/v1`: the same operations as the web pages (`ops`, `admin`), for scripts with an
//! API token (`Authorization: Bearer pbb_…`) or for the pages' own scripts with the session cookie. Its
//! OpenAPI document is generated from these handlers (utoipa) and served at `/api/v1/openapi.json`.

use crate::AppState;
use crate::admin::{self, ConfigInput, KeyState};
use crate::ops::{self, CompanyId, TileRef, WorkspaceName};
use crate::problem::Problem;
use crate::session::{self, SESSION_COOKIE};
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pbi_store::{ApiToken, Connection, ConnectionStatus, Pin, User, Workspace};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoResponses, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

/// The header a page's script sends with the session cookie on requests that change something.
pub const CSRF_HEADER: &str = "x-csrf-token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pbi-bridge API",
        description = "pbi-bridge's JSON API: the same operations as its web pages, on behalf of the user who owns the API token. \
                       Send `Authorization: Bearer <token>` (make a token in My settings). Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    components(schemas(ErrorBody, ErrorDetail)),
    modifiers(&Security),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "Account", description = "Who is calling, and their API tokens"),
        (name = "Power BI connection", description = "The caller's own Power BI connection (made in the browser: My settings → Get started)"),
        (name = "Workspaces", description = "pbi-bridge workspaces and the Power BI tiles pinned to them"),
        (name = "Administration", description = "The Power BI configuration; administrators only"),
    )
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        components.add_security_scheme("session", SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new(SESSION_COOKIE))));
    }
}

/// The API's routes (to nest under `/api/v1`) and its OpenAPI document, built together.
pub fn router() -> (axum::Router<Arc<AppState>>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(me))
        .routes(routes!(list_workspaces, create_workspace))
        .routes(routes!(get_workspace, update_workspace, delete_workspace))
        .routes(routes!(list_tiles))
        .routes(routes!(pin_tiles))
        .routes(routes!(unpin))
        .routes(routes!(reorder_pins))
        .routes(routes!(tile_token))
        .routes(routes!(get_connection, disconnect))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(get_power_bi_config, put_power_bi_config))
        .routes(routes!(validate_power_bi_config))
        .routes(routes!(list_users, create_user))
        .routes(routes!(update_user))
        .split_for_parts();
    doc.servers = Some(vec![utoipa::openapi::Server::new("/api/v1")]);
    let router = router.fallback(|| async { ApiError(Problem::NotFound("API route")) });
    (router, doc)
}

// ---------------------------------------------------------------- errors

/// A problem as the API says it: its status and `{"error": {"code", "message", "field"}}`.
pub struct ApiError(pub Problem);

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self(problem)
    }
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable name of the kind of problem: not_found, invalid_input, unauthenticated, forbidden, admin_only,
    /// csrf, not_configured, not_connected, needs_sign_in, power_bi, unavailable, internal.
    code: String,
    /// What went wrong and what to do, in words for a person.
    message: String,
    /// The input field at fault, for invalid_input.
    field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.0.code().into(), message: self.0.to_string(), field: self.0.field().map(str::to_owned) },
        };
        let mut response = (self.0.status(), axum::Json(body)).into_response();
        if let Problem::Unauthenticated(_) = self.0 {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"pbi-bridge\""));
        }
        response
    }
}

/// The refusals any operation may answer with.
#[derive(IntoResponses)]
#[allow(dead_code)] // Describes responses for the OpenAPI document; built by `ApiError`.
enum Refusals {
    /// The input is not valid: `field` names what to correct.
    #[response(status = 400)]
    Invalid(ErrorBody),
    /// No valid API token or session.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// Not allowed: an administrator's operation, or a missing CSRF header with a session cookie.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such thing among the caller's own (another user's reads the same).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The body is larger than 64 KiB.
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// A fault of the server, logged with a request id.
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// The refusals of operations that call Power BI as the user.
#[derive(IntoResponses)]
#[allow(dead_code)] // Describes responses for the OpenAPI document; built by `ApiError`.
enum PowerBiRefusals {
    /// Power BI is not configured, the caller has not connected, or must sign in again (`code` says which).
    #[response(status = 409)]
    NotReady(ErrorBody),
    /// Power BI or Entra ID refused or failed; the message is the troubleshooting advice.
    #[response(status = 502)]
    PowerBi(ErrorBody),
}

/// A JSON body; a body that does not parse is refused with the field at fault.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError(Problem::invalid("Content-Type", "Send the body as JSON, with Content-Type: application/json.")));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError(Problem::TooLarge),
            _ => ApiError(Problem::invalid("body", e.body_text())),
        })?;
        parse_object(&bytes).map(Self).map_err(ApiError)
    }
}

/// A JSON object into `T`. Anything else (an array, which serde would read field by field, a number, trailing
/// text) is refused, naming the field at fault where there is one.
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::invalid("body", "Send a JSON object: {\"name\": value, …}."));
    }
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        let field = if path == "." { backticked(&message).unwrap_or("body").to_owned() } else { path };
        Problem::invalid(&field, message)
    })?;
    reader.end().map_err(|e| Problem::invalid("body", format!("{e}: send one JSON object and nothing after it.")))?;
    Ok(value)
}

/// The name serde quotes in "missing field `name`" or "unknown field `nmae`, expected …".
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let length = message[start..].find('`')?;
    Some(&message[start..start + length])
}

/// Path parameters; one that does not parse is refused naming the parameter.
pub struct Ids<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Ids<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state).await.map(|p| Self(p.0)).map_err(|e: PathRejection| {
            ApiError(Problem::invalid("path", format!("{}: ids are GUIDs as the API returned them.", e.body_text())))
        })
    }
}

// ---------------------------------------------------------------- who is calling

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Token,
    Session,
}

/// The user an API request acts for: by API token, or by the session cookie (with the CSRF header on
/// requests that change something, so another site cannot make a signed-in browser call the API).
pub struct Caller {
    pub user: User,
    pub via: Via,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let now = state.clock.unix();
        if let Some(authorization) = parts.headers.get(header::AUTHORIZATION) {
            let token = authorization.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).unwrap_or_default();
            return match state.store.use_api_token(&session::hash(token), now).await {
                Ok(Some((_, user))) => Ok(Self { user, via: Via::Token }),
                Ok(None) => Err(ApiError(Problem::Unauthenticated(
                    "The API token is not valid: it may be mistyped, revoked or expired. Send Authorization: Bearer <token> with a token from My settings.".into(),
                ))),
                Err(error) => Err(ApiError(Problem::store("API token", "reading an API token")(error))),
            };
        }
        let not_signed_in = || {
            ApiError(Problem::Unauthenticated(
                "Send an API token as Authorization: Bearer <token> (make one in My settings), or sign in.".into(),
            ))
        };
        let Some(cookie) = session::cookie(&parts.headers, SESSION_COOKIE) else { return Err(not_signed_in()) };
        let signed_in = match state.store.session(&session::hash(&cookie), now).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(not_signed_in()),
            Err(error) => return Err(ApiError(Problem::store("session", "reading a session")(error))),
        };
        let changes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if changes && !session::same(&signed_in.csrf_token, sent) {
            return Err(ApiError(Problem::Csrf));
        }
        Ok(Self { user: signed_in.user, via: Via::Session })
    }
}

type Answer<T> = Result<T, ApiError>;

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

// ---------------------------------------------------------------- account

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct Me {
    id: Uuid,
    username: String,
    display_name: String,
    is_admin: bool,
}

/// Who the token or session belongs to.
#[utoipa::path(get, path = "/me", tag = "Account", operation_id = "getMe", responses((status = 200, description = "OK", body = Me), Refusals))]
async fn me(caller: Caller) -> Answer<axum::Json<Me>> {
    let u = caller.user;
    Ok(axum::Json(Me { id: u.id, username: u.username, display_name: u.display_name, is_admin: u.is_admin }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TokenOut {
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
struct TokenList {
    tokens: Vec<TokenOut>,
}

/// The caller's API tokens that are not revoked (never the tokens themselves).
#[utoipa::path(get, path = "/tokens", tag = "Account", operation_id = "listApiTokens", responses((status = 200, description = "OK", body = TokenList), Refusals))]
async fn list_tokens(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<TokenList>> {
    let tokens = ops::api_tokens(&state, &caller.user).await?;
    Ok(axum::Json(TokenList { tokens: tokens.into_iter().map(TokenOut::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewToken {
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
struct MadeToken {
    /// The token: shown this once, never again. Send it as `Authorization: Bearer <token>`.
    token: String,
    api_token: TokenOut,
}

/// Makes an API token. Only a signed-in browser session can: a token cannot make more tokens.
#[utoipa::path(post, path = "/tokens", tag = "Account", operation_id = "createApiToken", request_body = NewToken,
    responses((status = 201, description = "Created", body = MadeToken), Refusals))]
async fn create_token(
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
async fn revoke_token(State(state): State<Arc<AppState>>, caller: Caller, Ids(id): Ids<Uuid>) -> Answer<StatusCode> {
    ops::revoke_api_token(&state, &caller.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- Power BI connection

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum ConnectionState {
    NotConfigured,
    NotConnected,
    Connected,
    NeedsSignIn,
    Disconnected,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ConnectionOut {
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
async fn get_connection(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<ConnectionOut>> {
    let configured =
        crate::connect::active_registration(&state).await.map_err(Problem::store("registration", "reading registrations"))?.is_some();
    let connection = ops::connection(&state, &caller.user).await?;
    Ok(axum::Json(connection_out(&state, configured, connection)))
}

/// Disconnects the caller's Power BI account: its tokens are deleted; pinned tiles stay but are not drawn until they connect again.
#[utoipa::path(delete, path = "/connection", tag = "Power BI connection", operation_id = "disconnect",
    responses((status = 204, description = "Disconnected"), Refusals))]
async fn disconnect(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<StatusCode> {
    let connection = ops::connection(&state, &caller.user).await?.ok_or(Problem::NotFound("connection"))?;
    ops::disconnect(&state, &caller.user, connection.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- workspaces

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct WorkspaceOut {
    id: Uuid,
    name: String,
    /// Seed 000's company filter: only rows of this `Company[ID]` are shown.
    company_filter: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<Workspace> for WorkspaceOut {
    fn from(w: Workspace) -> Self {
        Self { id: w.id, name: w.name, company_filter: w.company_filter, created_at: rfc3339(w.created_at) }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PinOut {
    id: Uuid,
    title: String,
    /// The Power BI workspace; null for My workspace.
    group_id: Option<String>,
    dashboard_id: String,
    tile_id: String,
    row_span: i64,
    col_span: i64,
    embed_url: String,
    position: i64,
}

impl From<Pin> for PinOut {
    fn from(p: Pin) -> Self {
        Self {
            id: p.id,
            title: p.title,
            group_id: p.group_id,
            dashboard_id: p.dashboard_id,
            tile_id: p.tile_id,
            row_span: p.row_span,
            col_span: p.col_span,
            embed_url: p.embed_url,
            position: p.position,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct WorkspaceList {
    workspaces: Vec<WorkspaceOut>,
}

#[derive(Serialize, ToSchema)]
struct WorkspaceDetail {
    workspace: WorkspaceOut,
    /// In the order they are drawn.
    pins: Vec<PinOut>,
}

#[derive(Serialize, ToSchema)]
struct PinList {
    pins: Vec<PinOut>,
}

/// The caller's workspaces.
#[utoipa::path(get, path = "/workspaces", tag = "Workspaces", operation_id = "listWorkspaces",
    responses((status = 200, description = "OK", body = WorkspaceList), Refusals))]
async fn list_workspaces(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<WorkspaceList>> {
    let list = ops::workspaces(&state, &caller.user).await?;
    Ok(axum::Json(WorkspaceList { workspaces: list.into_iter().map(WorkspaceOut::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewWorkspace {
    /// 1 to 100 characters on one line.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^\s*[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*\s*$"
    )]
    name: String,
}

/// Creates a workspace.
#[utoipa::path(post, path = "/workspaces", tag = "Workspaces", operation_id = "createWorkspace", request_body = NewWorkspace,
    responses((status = 201, description = "Created", body = WorkspaceOut), Refusals))]
async fn create_workspace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(new): Body<NewWorkspace>,
) -> Answer<(StatusCode, axum::Json<WorkspaceOut>)> {
    let workspace = ops::create_workspace(&state, &caller.user, &WorkspaceName::parse(&new.name)?).await?;
    Ok((StatusCode::CREATED, axum::Json(workspace.into())))
}

/// One of the caller's workspaces with its pinned tiles.
#[utoipa::path(get, path = "/workspaces/{id}", tag = "Workspaces", operation_id = "getWorkspace",
    params(("id" = Uuid, Path, description = "The workspace's id")), responses((status = 200, description = "OK", body = WorkspaceDetail), Refusals))]
async fn get_workspace(State(state): State<Arc<AppState>>, caller: Caller, Ids(id): Ids<Uuid>) -> Answer<axum::Json<WorkspaceDetail>> {
    let (workspace, pins) = ops::workspace_with_pins(&state, &caller.user, id).await?;
    Ok(axum::Json(WorkspaceDetail { workspace: workspace.into(), pins: pins.into_iter().map(PinOut::from).collect() }))
}

/// A whole number, also when written as one with a zero fraction (`30.0`), as JSON Schema's `integer` allows.
fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    match Option::<serde_json::Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number of days, got {n}"))),
    }
}

/// Present (even as null) or absent: tells "clear it" from "leave it".
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct WorkspaceChange {
    /// A new name (1 to 100 characters on one line); leave out to keep it.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^\s*[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*\s*$"
    )]
    name: Option<String>,
    /// A `Company[ID]` to filter tiles to; null or empty for all companies; leave out to keep it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, max_length = 50, pattern = r"^\s*[^\u0000-\u001f\u007f-\u009f]*\s*$")]
    company_filter: Option<Option<String>>,
}

/// Renames a workspace or sets its company filter.
#[utoipa::path(patch, path = "/workspaces/{id}", tag = "Workspaces", operation_id = "updateWorkspace", request_body = WorkspaceChange,
    params(("id" = Uuid, Path, description = "The workspace's id")), responses((status = 200, description = "OK", body = WorkspaceOut), Refusals))]
async fn update_workspace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(change): Body<WorkspaceChange>,
) -> Answer<axum::Json<WorkspaceOut>> {
    // Parse everything before changing anything, so a bad field changes nothing.
    let name = change.name.as_deref().map(WorkspaceName::parse).transpose()?;
    let company = change.company_filter.map(|c| CompanyId::parse(c.as_deref().unwrap_or_default())).transpose()?;
    ops::workspace(&state, &caller.user, id).await?;
    if let Some(name) = &name {
        ops::rename_workspace(&state, &caller.user, id, name).await?;
    }
    if let Some(company) = &company {
        ops::set_company_filter(&state, &caller.user, id, company.as_ref()).await?;
    }
    Ok(axum::Json(ops::workspace(&state, &caller.user, id).await?.into()))
}

/// Deletes a workspace and unpins its tiles (nothing changes in Power BI).
#[utoipa::path(delete, path = "/workspaces/{id}", tag = "Workspaces", operation_id = "deleteWorkspace",
    params(("id" = Uuid, Path, description = "The workspace's id")), responses((status = 204, description = "Deleted"), Refusals))]
async fn delete_workspace(State(state): State<Arc<AppState>>, caller: Caller, Ids(id): Ids<Uuid>) -> Answer<StatusCode> {
    ops::delete_workspace(&state, &caller.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TileOut {
    /// The Power BI workspace; null for My workspace.
    group_id: Option<Uuid>,
    group_name: String,
    dashboard_id: Uuid,
    dashboard_name: String,
    tile_id: Uuid,
    title: String,
    row_span: u32,
    col_span: u32,
}

#[derive(Serialize, ToSchema)]
struct TileList {
    tiles: Vec<TileOut>,
}

/// Every Power BI tile the caller can pin: their dashboards in My workspace and every Power BI workspace
/// they belong to, asked of Power BI as them (all pages).
#[utoipa::path(get, path = "/tiles", tag = "Workspaces", operation_id = "listTiles",
    responses((status = 200, description = "OK", body = TileList), Refusals, PowerBiRefusals))]
async fn list_tiles(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<TileList>> {
    let tiles = ops::available_tiles(&state, &caller.user).await?;
    let tiles = tiles
        .into_iter()
        .map(|t| TileOut {
            group_id: t.at.group,
            group_name: t.group,
            dashboard_id: t.at.dashboard,
            dashboard_name: t.dashboard,
            tile_id: t.at.tile,
            title: t.title,
            row_span: t.row_span,
            col_span: t.col_span,
        })
        .collect();
    Ok(axum::Json(TileList { tiles }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TileIn {
    /// The Power BI workspace; null or left out for My workspace.
    #[serde(default)]
    group_id: Option<Uuid>,
    dashboard_id: Uuid,
    tile_id: Uuid,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PinRequest {
    /// The tiles to pin, as `GET /tiles` lists them; they are pinned after the workspace's other tiles, in this order.
    #[schema(min_items = 1)]
    tiles: Vec<TileIn>,
}

/// Pins tiles to a workspace. Each is read from Power BI as the caller first: a tile they cannot see is
/// refused by Power BI and nothing is pinned.
#[utoipa::path(post, path = "/workspaces/{id}/pins", tag = "Workspaces", operation_id = "pinTiles", request_body = PinRequest,
    params(("id" = Uuid, Path, description = "The workspace's id")),
    responses((status = 201, description = "Created", body = PinList), Refusals, PowerBiRefusals))]
async fn pin_tiles(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(request): Body<PinRequest>,
) -> Answer<(StatusCode, axum::Json<PinList>)> {
    let tiles: Vec<TileRef> =
        request.tiles.iter().map(|t| TileRef { group: t.group_id, dashboard: t.dashboard_id, tile: t.tile_id }).collect();
    let pinned = ops::pin_tiles(&state, &caller.user, id, &tiles).await?;
    Ok((StatusCode::CREATED, axum::Json(PinList { pins: pinned.into_iter().map(PinOut::from).collect() })))
}

/// Unpins a tile.
#[utoipa::path(delete, path = "/workspaces/{id}/pins/{pin}", tag = "Workspaces", operation_id = "unpinTile",
    params(("id" = Uuid, Path, description = "The workspace's id"), ("pin" = Uuid, Path, description = "The pin's id")),
    responses((status = 204, description = "Unpinned"), Refusals))]
async fn unpin(State(state): State<Arc<AppState>>, caller: Caller, Ids((id, pin)): Ids<(Uuid, Uuid)>) -> Answer<StatusCode> {
    ops::unpin(&state, &caller.user, id, pin).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PinOrder {
    /// Every pin of the workspace, once each, in the new order (anything else is refused with 400).
    pins: Vec<Uuid>,
}

/// Puts a workspace's pins in a new order.
#[utoipa::path(put, path = "/workspaces/{id}/order", tag = "Workspaces", operation_id = "reorderPins", request_body = PinOrder,
    params(("id" = Uuid, Path, description = "The workspace's id")), responses((status = 200, description = "OK", body = PinList), Refusals))]
async fn reorder_pins(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(order): Body<PinOrder>,
) -> Answer<axum::Json<PinList>> {
    let pins = ops::reorder_pins(&state, &caller.user, id, &order.pins).await?;
    Ok(axum::Json(PinList { pins: pins.into_iter().map(PinOut::from).collect() }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct TileTokenOut {
    /// The caller's Power BI access token (Microsoft Entra ID), for powerbi-client's `accessToken` with `tokenType: Aad`.
    access_token: String,
    token_type: String,
    #[schema(format = DateTime)]
    expires_at: String,
    /// Ask again after this many seconds, before the token expires.
    renew_in_seconds: i64,
    embed_url: String,
    tile_id: String,
    dashboard_id: String,
    /// The workspace's company filter, to apply as a `Company[ID]` filter.
    company_filter: Option<String>,
}

/// What it takes to draw a pinned tile as the caller: their Power BI token (renewed ahead of expiry) and the
/// tile's embed details. Never cached.
#[utoipa::path(get, path = "/workspaces/{id}/pins/{pin}/token", tag = "Workspaces", operation_id = "getTileToken",
    params(("id" = Uuid, Path, description = "The workspace's id"), ("pin" = Uuid, Path, description = "The pin's id")),
    responses((status = 200, description = "OK", body = TileTokenOut), Refusals, PowerBiRefusals))]
async fn tile_token(State(state): State<Arc<AppState>>, caller: Caller, Ids((id, pin)): Ids<(Uuid, Uuid)>) -> Answer<Response> {
    let company_filter = ops::workspace(&state, &caller.user, id).await?.company_filter;
    let token = ops::tile_token(&state, &caller.user, id, pin).await?;
    let body = TileTokenOut {
        access_token: token.access_token.expose_secret().to_owned(),
        token_type: "Aad".into(),
        expires_at: rfc3339(token.expires_at),
        renew_in_seconds: token.renew_in_seconds,
        embed_url: token.pin.embed_url,
        tile_id: token.pin.tile_id,
        dashboard_id: token.pin.dashboard_id,
        company_filter,
    };
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

// ---------------------------------------------------------------- administration

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum KeyStatus {
    Missing,
    Valid,
    ExpiresSoon,
    Expired,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct KeyOut {
    status: KeyStatus,
    /// The day the newest key expires (the key itself is never shown again).
    #[schema(format = Date)]
    expires_on: Option<String>,
    message: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct PowerBiConfigOut {
    /// Whether a configuration has been saved.
    configured: bool,
    enabled: bool,
    client_id: Option<String>,
    tenant: Option<String>,
    cloud: String,
    authorize_url: Option<String>,
    token_url: Option<String>,
    api_base: Option<String>,
    /// The redirect URL to enter in the Azure portal (Authentication → Web).
    redirect_url: String,
    /// The delegated Power BI Service permissions to grant, as the Azure portal names them.
    permissions: Vec<String>,
    application_key: KeyOut,
}

fn config_out(state: &AppState, registration: Option<pbi_store::Registration>, key: KeyState) -> PowerBiConfigOut {
    let d = registration.map(|r| r.details);
    PowerBiConfigOut {
        configured: d.is_some(),
        enabled: d.as_ref().is_some_and(|d| d.enabled),
        client_id: d.as_ref().map(|d| d.client_id.clone()),
        tenant: d.as_ref().map(|d| d.tenant.clone()),
        cloud: d.as_ref().map_or_else(|| "public".into(), |d| d.cloud.clone()),
        authorize_url: d.as_ref().and_then(|d| d.authorize_url.clone()),
        token_url: d.as_ref().and_then(|d| d.token_url.clone()),
        api_base: d.as_ref().and_then(|d| d.api_base.clone()),
        redirect_url: admin::redirect_url(state),
        permissions: admin::PERMISSIONS.iter().map(|p| (*p).to_owned()).collect(),
        application_key: KeyOut {
            status: match key {
                KeyState::Missing => KeyStatus::Missing,
                KeyState::Valid { .. } => KeyStatus::Valid,
                KeyState::ExpiresSoon { .. } => KeyStatus::ExpiresSoon,
                KeyState::Expired { .. } => KeyStatus::Expired,
            },
            expires_on: key.expires_at().map(admin::date),
            message: key.sentence(),
        },
    }
}

/// The Power BI configuration users connect through. Administrators only.
#[utoipa::path(get, path = "/admin/powerbi", tag = "Administration", operation_id = "getPowerBiConfig",
    responses((status = 200, description = "OK", body = PowerBiConfigOut), Refusals))]
async fn get_power_bi_config(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<PowerBiConfigOut>> {
    if !caller.user.is_admin {
        return Err(Problem::AdminOnly.into());
    }
    let (registration, key) = admin::config(&state).await?;
    Ok(axum::Json(config_out(&state, registration, key)))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewKeyIn {
    /// The application key (client secret) value; write-only.
    #[schema(value_type = String, format = Password)]
    value: SecretString,
    /// The key's expiry date as the Azure portal shows it, YYYY-MM-DD.
    #[schema(format = Date)]
    expires_on: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PowerBiConfigIn {
    enabled: bool,
    /// The Application (client) ID, a GUID.
    #[schema(format = Uuid)]
    client_id: String,
    /// The tenant ID or a verified domain (organizations for a multi-tenant app).
    #[schema(
        min_length = 1,
        pattern = r"^\s*[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*\s*$"
    )]
    tenant: String,
    /// public, us-gcc, gcc-high, dod or china.
    #[schema(pattern = r"^(public|us-gcc|gcc-high|dod|china)$")]
    cloud: String,
    /// Entra ID's authorize endpoint, when not the cloud's; an http(s) URL.
    #[schema(pattern = r"^\s*$|^\s*[Hh][Tt][Tt][Pp][Ss]?://")]
    authorize_url: Option<String>,
    /// Entra ID's token endpoint, when not the cloud's; an http(s) URL.
    #[schema(pattern = r"^\s*$|^\s*[Hh][Tt][Tt][Pp][Ss]?://")]
    token_url: Option<String>,
    /// The Power BI REST API's base, when not the cloud's; an http(s) URL.
    #[schema(pattern = r"^\s*$|^\s*[Hh][Tt][Tt][Pp][Ss]?://")]
    api_base: Option<String>,
    /// A new application key; leave out to keep the current one.
    application_key: Option<NewKeyIn>,
}

/// Saves the Power BI configuration. Administrators only.
#[utoipa::path(put, path = "/admin/powerbi", tag = "Administration", operation_id = "putPowerBiConfig", request_body = PowerBiConfigIn,
    responses((status = 200, description = "OK", body = PowerBiConfigOut), Refusals))]
async fn put_power_bi_config(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(config): Body<PowerBiConfigIn>,
) -> Answer<axum::Json<PowerBiConfigOut>> {
    if !caller.user.is_admin {
        return Err(Problem::AdminOnly.into());
    }
    let (secret, secret_expires) = match config.application_key {
        Some(key) => (key.value, key.expires_on),
        None => (SecretString::from(String::new()), String::new()),
    };
    let input = ConfigInput {
        enabled: config.enabled,
        client_id: config.client_id,
        secret,
        secret_expires,
        tenant: config.tenant,
        cloud: config.cloud,
        authorize_url: config.authorize_url.unwrap_or_default(),
        token_url: config.token_url.unwrap_or_default(),
        api_base: config.api_base.unwrap_or_default(),
    };
    let (details, key) = admin::read_config(&input, &admin::redirect_url(&state)).map_err(|errors| {
        let field = errors.first().map_or("body", |e| e.field);
        Problem::invalid(field, errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join(" "))
    })?;
    admin::save_config(&state, &caller.user, details, key).await?;
    let (registration, key) = admin::config(&state).await?;
    Ok(axum::Json(config_out(&state, registration, key)))
}

#[derive(Serialize, ToSchema)]
struct CheckOut {
    name: String,
    /// passed, warning, failed or info.
    outcome: String,
    message: String,
}

#[derive(Serialize, ToSchema)]
struct ValidationOut {
    passed: bool,
    checks: Vec<CheckOut>,
}

/// Checks the saved configuration with Entra ID (a real token request). Administrators only.
#[utoipa::path(post, path = "/admin/powerbi/validate", tag = "Administration", operation_id = "validatePowerBiConfig",
    responses((status = 200, description = "OK", body = ValidationOut), Refusals, PowerBiRefusals))]
async fn validate_power_bi_config(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<ValidationOut>> {
    let validation = admin::validate_config(&state, &caller.user).await?;
    Ok(axum::Json(ValidationOut {
        passed: validation.passed(),
        checks: validation
            .checks
            .into_iter()
            .map(|c| CheckOut { name: c.name.to_owned(), outcome: format!("{:?}", c.outcome).to_lowercase(), message: c.message })
            .collect(),
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UserOut {
    id: Uuid,
    username: String,
    display_name: String,
    is_admin: bool,
    #[schema(format = DateTime)]
    created_at: String,
    /// A disabled user cannot sign in, and their API tokens do not work.
    disabled: bool,
}

impl From<User> for UserOut {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            is_admin: u.is_admin,
            created_at: rfc3339(u.created_at),
            disabled: u.disabled_at.is_some(),
        }
    }
}

#[derive(Serialize, ToSchema)]
struct UserList {
    users: Vec<UserOut>,
}

/// pbi-bridge's users. Administrators only.
#[utoipa::path(get, path = "/admin/users", tag = "Administration", operation_id = "listUsers",
    responses((status = 200, description = "OK", body = UserList), Refusals))]
async fn list_users(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<UserList>> {
    let users = ops::users(&state, &caller.user).await?;
    Ok(axum::Json(UserList { users: users.into_iter().map(UserOut::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewUserIn {
    /// 1 to 64 letters, digits and `. _ @ -`.
    #[schema(pattern = r"^[A-Za-z0-9._@-]{1,64}$")]
    username: String,
    /// Shown in the pages (at most 100 characters on one line); the user name when left out.
    #[serde(default)]
    #[schema(max_length = 100, pattern = r"^\s*[^\u0000-\u001f\u007f-\u009f]*\s*$")]
    display_name: String,
    /// At least 10 characters; write-only.
    #[schema(value_type = String, format = Password, min_length = 10)]
    password: SecretString,
    #[serde(default)]
    is_admin: bool,
}

/// Adds a pbi-bridge user who signs in with this user name and password. Administrators only.
#[utoipa::path(post, path = "/admin/users", tag = "Administration", operation_id = "createUser", request_body = NewUserIn,
    responses((status = 201, description = "Created", body = UserOut), Refusals))]
async fn create_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(new): Body<NewUserIn>,
) -> Answer<(StatusCode, axum::Json<UserOut>)> {
    let new = ops::NewUser { username: &new.username, display_name: &new.display_name, password: &new.password, is_admin: new.is_admin };
    let user = ops::create_user(&state, &caller.user, new).await?;
    Ok((StatusCode::CREATED, axum::Json(user.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UserChange {
    /// true: the user can no longer sign in (their sessions end, their API tokens stop); false: they can again.
    disabled: Option<bool>,
    /// A new password (at least 10 characters; write-only); the user's sessions end.
    #[schema(value_type = Option<String>, format = Password, min_length = 10)]
    password: Option<SecretString>,
}

/// Disables or enables a user, or sets their password. Administrators only; an administrator cannot disable themself.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "Administration", operation_id = "updateUser", request_body = UserChange,
    params(("id" = Uuid, Path, description = "The user's id")), responses((status = 200, description = "OK", body = UserOut), Refusals,
    (status = 409, description = "An administrator tried to disable their own account", body = ErrorBody)))]
async fn update_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(change): Body<UserChange>,
) -> Answer<axum::Json<UserOut>> {
    if !caller.user.is_admin {
        return Err(Problem::AdminOnly.into());
    }
    if change.disabled.is_none() && change.password.is_none() {
        return Err(Problem::invalid("body", "Send disabled, password or both.").into());
    }
    // Refuse what would fail before changing anything, so a refused request changes nothing.
    if change.disabled == Some(true) && id == caller.user.id {
        return Err(Problem::Conflict("You cannot disable your own account: ask another administrator.".into()).into());
    }
    if change.password.as_ref().is_some_and(|p| p.expose_secret().chars().count() < crate::users::MIN_PASSWORD_CHARS) {
        return Err(
            Problem::invalid("password", format!("A password needs at least {} characters.", crate::users::MIN_PASSWORD_CHARS)).into()
        );
    }
    let mut user = None;
    if let Some(password) = &change.password {
        user = Some(ops::set_password(&state, &caller.user, id, password).await?);
    }
    if let Some(disabled) = change.disabled {
        user = Some(ops::set_user_disabled(&state, &caller.user, id, disabled).await?);
    }
    Ok(axum::Json(user.ok_or(Problem::NotFound("user"))?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(backticked("missing field `name` at line 1 column 2"), Some("name"));
        assert_eq!(backticked("unknown field `nmae`, expected `name`"), Some("nmae"));
        assert_eq!(backticked("expected value"), None);
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Named {
        name: String,
    }

    #[test]
    fn only_one_json_object_is_a_body() {
        assert_eq!(parse_object::<Named>(br#" {"name": "x"} "#).ok(), Some(Named { name: "x".into() }));
        for bad in [&br#"["x"]"#[..], b"5", b"", br#"{"name": "x"} {}"#, br#"{"name": 5}"#, br#"{"nmae": "x"}"#] {
            let field = parse_object::<Named>(bad).err().and_then(|p| p.field().map(str::to_owned));
            assert!(matches!(field.as_deref(), Some("body" | "name" | "nmae")), "{bad:?}: {field:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_a_named_value_or_a_refusal_naming_a_field(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            if let Err(problem) = parse_object::<Named>(&bytes) {
                proptest::prop_assert!(problem.field().is_some_and(|f| !f.is_empty()));
            }
        }
    }
}
