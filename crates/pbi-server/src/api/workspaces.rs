//! The API's workspace operations: workspaces, the tiles a user can pin, pins, and tile tokens.

use super::edge::PowerBiRefusals;
use super::edge::{Answer, Body, Caller, Ids, Refusals, rfc3339};
use crate::AppState;
use crate::ops::{self, CompanyId, TileRef, WorkspaceName};
use axum::extract::State;
use axum::http::StatusCode;
use pbi_store::{Pin, Workspace};
use secrecy::ExposeSecret;
use serde::Deserializer;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct WorkspaceOut {
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
pub(super) struct PinOut {
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
pub(super) struct WorkspaceList {
    workspaces: Vec<WorkspaceOut>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct WorkspaceDetail {
    workspace: WorkspaceOut,
    /// In the order they are drawn.
    pins: Vec<PinOut>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct PinList {
    pins: Vec<PinOut>,
}

/// The caller's workspaces.
#[utoipa::path(get, path = "/workspaces", tag = "Workspaces", operation_id = "listWorkspaces",
    responses((status = 200, description = "OK", body = WorkspaceList), Refusals))]
pub(super) async fn list_workspaces(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<WorkspaceList>> {
    let list = ops::workspaces(&state, &caller.user).await?;
    Ok(axum::Json(WorkspaceList { workspaces: list.into_iter().map(WorkspaceOut::from).collect() }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewWorkspace {
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
pub(super) async fn create_workspace(
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
pub(super) async fn get_workspace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Answer<axum::Json<WorkspaceDetail>> {
    let (workspace, pins) = ops::workspace_with_pins(&state, &caller.user, id).await?;
    Ok(axum::Json(WorkspaceDetail { workspace: workspace.into(), pins: pins.into_iter().map(PinOut::from).collect() }))
}

/// Present (even as null) or absent: tells "clear it" from "leave it".
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct WorkspaceChange {
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
pub(super) async fn update_workspace(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(change): Body<WorkspaceChange>,
) -> Answer<axum::Json<WorkspaceOut>> {
    // Parse everything before changing anything, so a bad field changes nothing.
    let name = change.name.as_deref().map(WorkspaceName::parse).transpose()?;
    let company = change.company_filter.map(|c| CompanyId::parse(c.as_deref().unwrap_or_default())).transpose()?;
    // Each change is refused as "not found" for another user's workspace; the read below answers for none.
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
pub(super) async fn delete_workspace(State(state): State<Arc<AppState>>, caller: Caller, Ids(id): Ids<Uuid>) -> Answer<StatusCode> {
    ops::delete_workspace(&state, &caller.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TileOut {
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
pub(super) struct TileList {
    tiles: Vec<TileOut>,
}

/// Every Power BI tile the caller can pin: their dashboards in My workspace and every Power BI workspace
/// they belong to, asked of Power BI as them (all pages).
#[utoipa::path(get, path = "/tiles", tag = "Workspaces", operation_id = "listTiles",
    responses((status = 200, description = "OK", body = TileList), Refusals, PowerBiRefusals))]
pub(super) async fn list_tiles(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<TileList>> {
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
pub(super) struct TileIn {
    /// The Power BI workspace; null or left out for My workspace.
    #[serde(default)]
    group_id: Option<Uuid>,
    dashboard_id: Uuid,
    tile_id: Uuid,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PinRequest {
    /// The tiles to pin, as `GET /tiles` lists them; they are pinned after the workspace's other tiles, in this order.
    #[schema(min_items = 1)]
    tiles: Vec<TileIn>,
}

/// Pins tiles to a workspace. Each is read from Power BI as the caller first: a tile they cannot see is
/// refused by Power BI and nothing is pinned.
#[utoipa::path(post, path = "/workspaces/{id}/pins", tag = "Workspaces", operation_id = "pinTiles", request_body = PinRequest,
    params(("id" = Uuid, Path, description = "The workspace's id")),
    responses((status = 201, description = "Created", body = PinList), Refusals, PowerBiRefusals))]
pub(super) async fn pin_tiles(
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
pub(super) async fn unpin(State(state): State<Arc<AppState>>, caller: Caller, Ids((id, pin)): Ids<(Uuid, Uuid)>) -> Answer<StatusCode> {
    ops::unpin(&state, &caller.user, id, pin).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PinOrder {
    /// Every pin of the workspace, once each, in the new order (anything else is refused with 400).
    pins: Vec<Uuid>,
}

/// Puts a workspace's pins in a new order.
#[utoipa::path(put, path = "/workspaces/{id}/order", tag = "Workspaces", operation_id = "reorderPins", request_body = PinOrder,
    params(("id" = Uuid, Path, description = "The workspace's id")), responses((status = 200, description = "OK", body = PinList), Refusals))]
pub(super) async fn reorder_pins(
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
pub(super) struct TileTokenOut {
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
pub(super) async fn tile_token(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids((id, pin)): Ids<(Uuid, Uuid)>,
) -> Answer<axum::Json<TileTokenOut>> {
    let token = ops::tile_token(&state, &caller.user, id, pin).await?;
    let body = TileTokenOut {
        access_token: token.access_token.expose_secret().to_owned(),
        token_type: "Aad".into(),
        expires_at: rfc3339(token.expires_at),
        renew_in_seconds: token.renew_in_seconds,
        embed_url: token.pin.embed_url,
        tile_id: token.pin.tile_id,
        dashboard_id: token.pin.dashboard_id,
        company_filter: token.company_filter,
    };
    Ok(axum::Json(body))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CompaniesOut {
    /// The `Company[ID]` values found in the datasets behind the workspace's tiles, each once, in order.
    companies: Vec<String>,
    /// The workspace's company filter, if one is set.
    company_filter: Option<String>,
    /// Whether the filter is one of `companies` (DAX compares text regardless of case); `null` when no filter is
    /// set. `false` means the tiles show no data for it.
    filter_found: Option<bool>,
    /// Tiles whose dataset Power BI would not query as the caller, and why: their companies are not listed.
    not_asked: Vec<NotAskedOut>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct NotAskedOut {
    pin_id: Uuid,
    title: String,
    reason: String,
}

/// The companies a workspace's tiles hold: the `Company[ID]` values of their datasets, asked of Power BI as the
/// caller (`executeQueries`). Tiles whose dataset has no Company table with an ID column add none.
#[utoipa::path(get, path = "/workspaces/{id}/companies", tag = "Workspaces", operation_id = "listCompanies",
    params(("id" = Uuid, Path, description = "The workspace's id")),
    responses((status = 200, description = "OK", body = CompaniesOut), Refusals, PowerBiRefusals))]
pub(super) async fn list_companies(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Answer<axum::Json<CompaniesOut>> {
    let companies = ops::companies(&state, &caller.user, id).await?;
    Ok(axum::Json(CompaniesOut {
        filter_found: companies.filter.as_deref().map(|c| companies.includes(c)),
        company_filter: companies.filter.clone(),
        not_asked: companies.not_asked.into_iter().map(|(pin, reason)| NotAskedOut { pin_id: pin.id, title: pin.title, reason }).collect(),
        companies: companies.ids,
    }))
}
