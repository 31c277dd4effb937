//! Workspaces: a user's pages of pinned Power BI tiles, listed, pinned and drawn on their behalf.

use crate::AppState;
use crate::connect::active_registration;
use crate::pages::{form_expired, render, server_error};
use crate::session::{self, SignedIn};
use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use futures_util::TryStreamExt as _;
use pbi_auth::AuthError;
use pbi_powerbi::{AccessToken, CallbackToken, Cloud, ErrorKind, PowerBiClient, TokenError, Workspace as PbiWorkspace};
use pbi_store::{ConnectionStatus, Pin, Session, Workspace};
use secrecy::ExposeSecret;
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Html("<h1>Not found</h1><p>There is no such workspace among yours.</p>")).into_response()
}

/// The user's own workspace, or a response saying it does not exist (another user's reads the same).
async fn own_workspace(state: &AppState, session: &Session, id: Uuid) -> Result<Workspace, Response> {
    state.store.workspace(id, session.user.id).await.map_err(|e| match e {
        pbi_store::StoreError::NotFound(_) => not_found(),
        other => {
            tracing::error!(%other, "reading a workspace");
            server_error()
        }
    })
}

/// The user's own workspace and its pins in order, or the response to send instead.
async fn own_workspace_and_pins(state: &AppState, session: &Session, id: Uuid) -> Result<(Workspace, Vec<Pin>), Response> {
    let workspace = own_workspace(state, session, id).await?;
    let pins = state.store.pins(id).await.map_err(|e| {
        tracing::error!(%e, "reading pins");
        server_error()
    })?;
    Ok((workspace, pins))
}

#[derive(Template)]
#[template(path = "workspaces.html")]
struct WorkspacesPage<'a> {
    user_name: &'a str,
    csrf: &'a str,
    workspaces: Vec<(Uuid, String)>,
}

pub async fn list(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    match state.store.workspaces_of(session.user.id).await {
        Ok(list) => render(
            StatusCode::OK,
            &WorkspacesPage {
                user_name: &session.user.display_name,
                csrf: &session.csrf_token,
                workspaces: list.into_iter().map(|w| (w.id, w.name)).collect(),
            },
        ),
        Err(e) => {
            tracing::error!(%e, "listing workspaces");
            server_error()
        }
    }
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf: String,
    name: String,
}

pub async fn create(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<CreateForm>) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return (
            StatusCode::BAD_REQUEST,
            Html("<h1>Name the workspace</h1><p>A workspace name is 1 to 100 characters. Go back and try again.</p>"),
        )
            .into_response();
    }
    match state.store.add_workspace(session.user.id, name, state.clock.unix()).await {
        Ok(w) => Redirect::to(&format!("/workspaces/{}", w.id)).into_response(),
        Err(e) => {
            tracing::error!(%e, "creating a workspace");
            server_error()
        }
    }
}

struct PinView {
    id: Uuid,
    title: String,
    tile_id: String,
    dashboard_id: String,
    embed_url: String,
    frame_url: String,
    row_span: i64,
    col_span: i64,
}

#[derive(Template)]
#[template(path = "workspace.html")]
struct WorkspacePage<'a> {
    user_name: &'a str,
    csrf: &'a str,
    id: Uuid,
    name: String,
    company: String,
    pins: Vec<PinView>,
}

pub async fn show(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Path(id): Path<Uuid>) -> Response {
    let (workspace, pins) = match own_workspace_and_pins(&state, &session, id).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let pins = pins
        .into_iter()
        .map(|p| PinView {
            frame_url: format!("{}{}uid={}", p.embed_url, if p.embed_url.contains('?') { "&" } else { "?" }, p.id),
            id: p.id,
            title: p.title,
            tile_id: p.tile_id,
            dashboard_id: p.dashboard_id,
            embed_url: p.embed_url,
            row_span: p.row_span.clamp(1, 8),
            col_span: p.col_span.clamp(1, 6),
        })
        .collect();
    render(
        StatusCode::OK,
        &WorkspacePage {
            user_name: &session.user.display_name,
            csrf: &session.csrf_token,
            id,
            name: workspace.name,
            company: workspace.company_filter.unwrap_or_default(),
            pins,
        },
    )
}

/// A Power BI client acting as the user through their connection; `None` when they have not connected.
async fn client_for(state: &AppState, session: &Session) -> Result<Option<(PowerBiClient, Uuid)>, String> {
    let Some(registration) = active_registration(state).await.map_err(|e| e.to_string())? else {
        return Err("Power BI is not configured yet: ask your administrator.".into());
    };
    let owner = session.user.id.to_string();
    let connections = state.store.connections_of(&owner).await.map_err(|e| e.to_string())?;
    let Some(connection) = connections.into_iter().filter(|c| c.account.registration_id == registration.id).max_by_key(|c| c.updated_at)
    else {
        return Ok(None);
    };
    if connection.status != ConnectionStatus::Active {
        return Err(format!("Sign in to Power BI again in My settings: {}", connection.status_reason.unwrap_or_default()));
    }
    let cloud = match &registration.details.api_base {
        Some(base) => Cloud::custom(url::Url::parse(base).map_err(|e| format!("the configured Power BI API URL is not valid: {e}"))?),
        None => Cloud::parse(&registration.details.cloud).unwrap_or(Cloud::Public),
    };
    let (auth, id) = (state.auth.clone(), connection.id);
    let tokens = CallbackToken(move |_fresh: bool| {
        let (auth, owner) = (auth.clone(), owner.clone());
        let token: futures_util::future::BoxFuture<'static, Result<AccessToken, TokenError>> = Box::pin(async move {
            auth.access_token(id, Some(&owner))
                .await
                .map(|t| AccessToken::new(t.expose_secret()))
                .map_err(|e| TokenError { aadsts: None, message: e.to_string() })
        });
        token
    });
    let metrics = state.metrics.clone();
    let client = PowerBiClient::sharing(state.http.clone(), &cloud, Arc::new(tokens))
        .with_observer(Arc::new(move |status| metrics.powerbi_call(status)));
    Ok(Some((client, connection.id)))
}

fn explain(error: &pbi_powerbi::PowerBiError) -> String {
    match &error.kind {
        ErrorKind::Token(message) => message.clone(),
        ErrorKind::Transport(_) => "The Power BI service is unavailable. You don't have to register again. Try to pin a tile later.".into(),
        kind => {
            let status = match kind {
                ErrorKind::NotFound { .. } => 404,
                ErrorKind::Unauthorized { .. } => 401,
                ErrorKind::Forbidden { .. } => 403,
                ErrorKind::Throttled { .. } => 429,
                ErrorKind::BadRequest { status, .. } => *status,
                ErrorKind::Service { status, .. } => *status,
                _ => 500,
            };
            pbi_auth::explain::power_bi(status, error.code().unwrap_or("Error"), &error.to_string(), error.request_id.clone()).to_string()
        }
    }
}

struct TileChoice {
    key: String,
    title: String,
    dashboard: String,
    group: String,
    size: String,
}

#[derive(Template)]
#[template(path = "pin.html")]
struct PinPage<'a> {
    user_name: &'a str,
    csrf: &'a str,
    id: Uuid,
    name: String,
    tiles: Vec<TileChoice>,
    problem: Option<String>,
}

/// Every tile the user can see: My workspace's dashboards, then each workspace's.
async fn tiles_of(client: &PowerBiClient) -> Result<Vec<TileChoice>, pbi_powerbi::PowerBiError> {
    let mut scopes = vec![(PbiWorkspace::My, "My workspace".to_owned())];
    // Page through the user's workspaces (a large tenant has more than one page of them).
    let page_size = pbi_powerbi::Top::new(pbi_powerbi::Top::MAX)?;
    let mut groups = std::pin::pin!(client.all_groups(None, page_size));
    while let Some(group) = groups.try_next().await? {
        scopes.push((PbiWorkspace::Group(group.id), group.name));
    }
    let mut choices = Vec::new();
    for (scope, group_name) in scopes {
        let group_key = match scope {
            PbiWorkspace::My => "me".to_owned(),
            PbiWorkspace::Group(id) => id.to_string(),
        };
        for dashboard in client.dashboards(scope).await? {
            for tile in client.tiles(scope, dashboard.id).await? {
                choices.push(TileChoice {
                    key: format!("{group_key}|{}|{}", dashboard.id, tile.id),
                    title: tile.title.clone().unwrap_or_else(|| "(untitled tile)".into()),
                    dashboard: dashboard.display_name.clone(),
                    group: group_name.clone(),
                    size: format!("{}x{}", tile.row_span.unwrap_or(1), tile.col_span.unwrap_or(1)),
                });
            }
        }
    }
    Ok(choices)
}

pub async fn pin_page(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Path(id): Path<Uuid>) -> Response {
    let workspace = match own_workspace(&state, &session, id).await {
        Ok(w) => w,
        Err(response) => return response,
    };
    let page = |tiles, problem| {
        render(
            StatusCode::OK,
            &PinPage { user_name: &session.user.display_name, csrf: &session.csrf_token, id, name: workspace.name.clone(), tiles, problem },
        )
    };
    match client_for(&state, &session).await {
        Ok(Some((client, _))) => match tiles_of(&client).await {
            Ok(tiles) => page(tiles, None),
            Err(error) => page(Vec::new(), Some(explain(&error))),
        },
        Ok(None) => page(Vec::new(), Some("Connect your Power BI account first: open My settings and click Get started.".into())),
        Err(problem) => page(Vec::new(), Some(problem)),
    }
}

pub async fn pin(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or_default();
    if !session::same(&session.csrf_token, csrf) {
        return form_expired();
    }
    if let Err(response) = own_workspace(&state, &session, id).await {
        return response;
    }
    let (client, connection) = match client_for(&state, &session).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return (StatusCode::CONFLICT, Html("<h1>Connect Power BI first</h1><p>Open My settings and click Get started.</p>"))
                .into_response();
        }
        Err(problem) => {
            return (StatusCode::CONFLICT, Html(format!("<h1>Power BI is not available</h1><p>{}</p>", html_escape(&problem))))
                .into_response();
        }
    };
    for (_, key) in form.iter().filter(|(k, _)| k == "tile") {
        // The ids come from a form: ask Power BI, as this user, what the tile is before pinning it.
        let parts: Vec<&str> = key.split('|').collect();
        let (Some(group), Some(Ok(dashboard)), Some(Ok(tile))) =
            (parts.first(), parts.get(1).map(|d| Uuid::parse_str(d)), parts.get(2).map(|t| Uuid::parse_str(t)))
        else {
            return (StatusCode::BAD_REQUEST, Html("<h1>Not a tile</h1><p>Go back and choose tiles from the list.</p>")).into_response();
        };
        let scope = match *group {
            "me" => PbiWorkspace::My,
            other => match Uuid::parse_str(other) {
                Ok(g) => PbiWorkspace::Group(g),
                Err(_) => {
                    return (StatusCode::BAD_REQUEST, Html("<h1>Not a tile</h1><p>Go back and choose tiles from the list.</p>"))
                        .into_response();
                }
            },
        };
        let found = match client.tile(scope, dashboard, tile).await {
            Ok(t) => t,
            Err(error) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Html(format!("<h1>That tile cannot be pinned</h1><p>{}</p>", html_escape(&explain(&error)))),
                )
                    .into_response();
            }
        };
        let pin = Pin {
            id: Uuid::nil(),
            workspace_id: id,
            connection_id: connection,
            group_id: match scope {
                PbiWorkspace::My => None,
                PbiWorkspace::Group(g) => Some(g.to_string()),
            },
            dashboard_id: dashboard.to_string(),
            tile_id: tile.to_string(),
            title: found.title.unwrap_or_else(|| "(untitled tile)".into()),
            row_span: i64::from(found.row_span.unwrap_or(1)),
            col_span: i64::from(found.col_span.unwrap_or(1)),
            embed_url: found.embed_url.unwrap_or_default(),
            position: 0,
        };
        if let Err(e) = state.store.add_pin(&pin, state.clock.unix()).await {
            tracing::error!(%e, "pinning");
            return server_error();
        }
    }
    Redirect::to(&format!("/workspaces/{id}")).into_response()
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn unpin(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path((id, pin)): Path<(Uuid, Uuid)>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    if let Err(response) = own_workspace(&state, &session, id).await {
        return response;
    }
    match state.store.remove_pin(id, pin).await {
        Ok(()) => Redirect::to(&format!("/workspaces/{id}")).into_response(),
        Err(pbi_store::StoreError::NotFound(_)) => not_found(),
        Err(e) => {
            tracing::error!(%e, "unpinning");
            server_error()
        }
    }
}

#[derive(Deserialize)]
pub struct MoveForm {
    csrf: String,
    direction: Direction,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

/// The order after moving `pin` one place; `None` when it is not in the list. Moving past either end is a no-op.
fn moved(mut order: Vec<Uuid>, pin: Uuid, direction: Direction) -> Option<Vec<Uuid>> {
    let at = order.iter().position(|p| *p == pin)?;
    let other = match direction {
        Direction::Up => at.checked_sub(1),
        Direction::Down => Some(at + 1).filter(|i| *i < order.len()),
    };
    if let Some(other) = other {
        order.swap(at, other);
    }
    Some(order)
}

pub async fn move_pin(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path((id, pin)): Path<(Uuid, Uuid)>,
    Form(form): Form<MoveForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let order = match own_workspace_and_pins(&state, &session, id).await {
        Ok((_, pins)) => pins.into_iter().map(|p| p.id).collect(),
        Err(response) => return response,
    };
    let Some(order) = moved(order, pin, form.direction) else { return not_found() };
    match state.store.reorder_pins(id, &order).await {
        Ok(()) => Redirect::to(&format!("/workspaces/{id}")).into_response(),
        Err(pbi_store::StoreError::NotFound(_)) => not_found(),
        Err(e) => {
            tracing::error!(%e, "reordering pins");
            server_error()
        }
    }
}

#[derive(Deserialize)]
pub struct FilterForm {
    csrf: String,
    #[serde(default)]
    company: String,
}

pub async fn set_filter(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    Form(form): Form<FilterForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let company = Some(form.company.trim()).filter(|c| !c.is_empty());
    match state.store.set_company_filter(id, session.user.id, company).await {
        Ok(()) => Redirect::to(&format!("/workspaces/{id}")).into_response(),
        Err(pbi_store::StoreError::NotFound(_)) => not_found(),
        Err(e) => {
            tracing::error!(%e, "setting the company filter");
            server_error()
        }
    }
}

/// The user's access token for drawing a pinned tile (their own connection only), with when to renew it.
pub async fn tile_token(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Path((id, pin)): Path<(Uuid, Uuid)>) -> Response {
    let pins = match own_workspace_and_pins(&state, &session, id).await {
        Ok((_, pins)) => pins,
        Err(response) => return response,
    };
    let Some(pin) = pins.into_iter().find(|p| p.id == pin) else { return not_found() };
    match state.auth.access_token(pin.connection_id, Some(&session.user.id.to_string())).await {
        Ok(token) => {
            let expires = state.store.connection(pin.connection_id).await.ok().and_then(|c| c.access_expires_at).unwrap_or_default();
            // Renew five minutes before the broker would refresh it anyway.
            let renew_in = (expires - state.clock.unix() - 600).max(60);
            let mut response =
                axum::Json(serde_json::json!({"accessToken": token.expose_secret(), "expiresAt": expires, "renewInSeconds": renew_in}))
                    .into_response();
            response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
            response
        }
        Err(AuthError::NeedsSignIn { reason, .. }) => {
            (StatusCode::CONFLICT, axum::Json(serde_json::json!({"error": format!("Sign in to Power BI again in My settings: {reason}")})))
                .into_response()
        }
        Err(AuthError::NotFound(_)) => not_found(),
        Err(error) => (StatusCode::BAD_GATEWAY, axum::Json(serde_json::json!({"error": error.to_string()}))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_swaps_with_the_neighbour_and_stops_at_the_ends() {
        let [a, b, c] = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
        assert_eq!(moved(vec![a, b, c], c, Direction::Up), Some(vec![a, c, b]));
        assert_eq!(moved(vec![a, b, c], a, Direction::Down), Some(vec![b, a, c]));
        assert_eq!(moved(vec![a, b, c], a, Direction::Up), Some(vec![a, b, c]));
        assert_eq!(moved(vec![a, b, c], c, Direction::Down), Some(vec![a, b, c]));
        assert_eq!(moved(vec![a, b], c, Direction::Up), None);
    }
}
