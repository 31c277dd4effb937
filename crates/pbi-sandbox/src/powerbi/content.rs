//! Workspaces (groups), dashboards, tiles and reports.

use super::Ctx;
use super::error::{PbiError, PbiResult};
use super::odata::{self, Filter};
use crate::ids;
use crate::model::{Dashboard, Report, Tile, Workspace, WorkspaceRole, World};
use axum::Json;
use axum::extract::Query;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

type QueryPairs = Query<Vec<(String, String)>>;

pub fn group_json(workspace: &Workspace, role: WorkspaceRole) -> Value {
    let mut value = json!({
        "id": workspace.id,
        "isReadOnly": role == WorkspaceRole::Viewer,
        "isOnDedicatedCapacity": workspace.capacity_id.is_some(),
        "type": "Workspace",
        "name": workspace.name,
    });
    if let Some(capacity) = workspace.capacity_id {
        value["capacityId"] = json!(capacity.to_string().to_uppercase());
    }
    value
}

/// The workspaces (not My workspace) the caller belongs to, in name order.
fn visible_workspaces<'w>(ctx: &Ctx, world: &'w World) -> Vec<(&'w Workspace, WorkspaceRole)> {
    let mut visible: Vec<_> = world
        .workspaces
        .values()
        .filter(|w| w.personal_owner.is_none())
        .filter_map(|w| ctx.caller.role_in(world, w).map(|role| (w, role)))
        .collect();
    visible.sort_by_key(|(w, _)| w.name.to_lowercase());
    visible
}

pub async fn list_groups(ctx: Ctx, Query(query): QueryPairs) -> Response {
    let result = (|| {
        ctx.caller.require_scope(&["Workspace.Read.All", "Workspace.ReadWrite.All"])?;
        let (top, skip) = odata::paging(&query)?;
        let filter = match query.iter().find(|(k, _)| k == "$filter") {
            Some((_, text)) => Some(Filter::parse(text).map_err(PbiError::bad_request)?),
            None => None,
        };
        let world = ctx.world();
        let values: Vec<Value> = visible_workspaces(&ctx, &world)
            .into_iter()
            .filter(|(w, _)| {
                filter.as_ref().is_none_or(|f| {
                    f.matches(|p| match p.to_ascii_lowercase().as_str() {
                        "name" => Some(w.name.clone()),
                        "id" => Some(w.id.to_string()),
                        "type" => Some("Workspace".to_owned()),
                        _ => None,
                    })
                })
            })
            .map(|(w, role)| group_json(w, role))
            .collect();
        Ok(odata::list(&ctx.shared.base_url, "", "groups", odata::page(values, top, skip)))
    })();
    ctx.answer(result)
}

pub async fn get_group(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(&["Workspace.Read.All", "Workspace.ReadWrite.All"])?;
        let mut world = ctx.world();
        let (id, role) = ctx.workspace(&mut world)?;
        let workspace = world.workspaces.get(&id).ok_or_else(PbiError::not_found)?;
        Ok(odata::entity(&ctx.shared.base_url, "", "groups", group_json(workspace, role)))
    })();
    ctx.answer(result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupCreationRequest {
    name: String,
}

pub async fn create_group(
    ctx: Ctx,
    Query(query): QueryPairs,
    body: Result<Json<GroupCreationRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let result = (|| {
        ctx.caller.require_scope(&["Workspace.ReadWrite.All"])?;
        let Json(request) = body.map_err(|e| PbiError::bad_request(e.body_text()))?;
        let name = request.name.trim();
        if name.is_empty() || name.len() > 256 {
            return Err(PbiError::bad_request("'name' must be 1 to 256 characters."));
        }
        let _ = query;
        let mut world = ctx.world();
        if world
            .workspaces
            .values()
            .any(|w| w.tenant == ctx.caller.tenant && w.personal_owner.is_none() && w.name.eq_ignore_ascii_case(name))
        {
            return Err(PbiError::coded(
                StatusCode::CONFLICT,
                "GroupNameAlreadyExists",
                format!("A workspace named '{name}' already exists."),
            ));
        }
        let id = Uuid::new_v4();
        let workspace = Workspace {
            id,
            tenant: ctx.caller.tenant,
            name: name.to_owned(),
            description: String::new(),
            personal_owner: None,
            members: [(ctx.caller.principal, WorkspaceRole::Admin)].into_iter().collect(),
            capacity_id: None,
            modified: ctx.shared.clock.now(),
        };
        let body = group_json(&workspace, WorkspaceRole::Admin);
        world.workspaces.insert(id, workspace);
        Ok(odata::entity(&ctx.shared.base_url, "", "groups", body))
    })();
    ctx.answer(result)
}

/// `&groupId=` for content in a group workspace, nothing for My workspace: what Power BI writes into embed
/// URLs, whichever form of the API the caller used (a tile cloned from My workspace into a group is a group's).
fn group_query(workspace: Uuid, world: &World) -> String {
    match world.workspaces.get(&workspace) {
        Some(w) if w.personal_owner.is_none() => format!("&groupId={workspace}"),
        _ => String::new(),
    }
}

fn web_group(ctx: &Ctx, workspace: Uuid) -> String {
    if ctx.param("groupId").is_some() { workspace.to_string() } else { "me".to_owned() }
}

pub fn dashboard_json(ctx: &Ctx, world: &World, d: &Dashboard) -> Value {
    let base = &ctx.shared.base_url;
    json!({
        "id": d.id,
        "displayName": d.display_name,
        "isReadOnly": d.is_read_only,
        "webUrl": format!("{base}/groups/{}/dashboards/{}", web_group(ctx, d.workspace), d.id),
        "embedUrl": format!("{base}/dashboardEmbed?dashboardId={}{}", d.id, group_query(d.workspace, world)),
        "users": [],
        "subscriptions": [],
    })
}

pub fn tile_json(ctx: &Ctx, world: &World, dashboard: &Dashboard, t: &Tile) -> Value {
    let mut value = json!({
        "id": t.id,
        "title": t.title,
        "embedUrl": format!("{}/embed?dashboardId={}&tileId={}{}", ctx.shared.base_url, dashboard.id, t.id, group_query(dashboard.workspace, world)),
        "rowSpan": t.row_span,
        "colSpan": t.col_span,
        "embedData": "{}",
    });
    if let Some(report) = t.report_id {
        value["reportId"] = json!(report);
    }
    if let Some(dataset) = t.dataset_id {
        value["datasetId"] = json!(dataset);
    }
    value
}

pub fn report_json(ctx: &Ctx, world: &World, r: &Report, principal: Uuid) -> Value {
    let base = &ctx.shared.base_url;
    let mut value = json!({
        "id": r.id,
        "reportType": if r.paginated { "PaginatedReport" } else { "PowerBIReport" },
        "name": r.name,
        "description": r.description,
        "webUrl": format!("{base}/groups/{}/reports/{}", web_group(ctx, r.workspace), r.id),
        "embedUrl": format!("{base}/reportEmbed?reportId={}{}", r.id, group_query(r.workspace, world)),
        "isFromPbix": !r.paginated,
        "isOwnedByMe": world.workspaces.get(&r.workspace).is_some_and(|w| world.role_in(w, principal).is_some_and(WorkspaceRole::can_write)),
        "users": [],
        "subscriptions": [],
    });
    if let Some(dataset) = r.dataset_id {
        value["datasetId"] = json!(dataset);
        if let Some(ds) = world.datasets.get(&dataset) {
            value["datasetWorkspaceId"] = json!(ds.workspace);
        }
    }
    value
}

const DASHBOARD_SCOPES: &[&str] = &["Dashboard.Read.All", "Dashboard.ReadWrite.All"];
const REPORT_SCOPES: &[&str] = &["Report.Read.All", "Report.ReadWrite.All"];

pub async fn list_dashboards(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(DASHBOARD_SCOPES)?;
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let values = world.dashboards.values().filter(|d| d.workspace == workspace).map(|d| dashboard_json(&ctx, &world, d)).collect();
        Ok(odata::list(&ctx.shared.base_url, &ctx.scope_prefix(), "dashboards", values))
    })();
    ctx.answer(result)
}

fn find_dashboard<'w>(ctx: &Ctx, world: &'w World, workspace: Uuid) -> PbiResult<&'w Dashboard> {
    let id = ctx.id("dashboardId")?;
    world.dashboards.get(&id).filter(|d| d.workspace == workspace).ok_or_else(PbiError::not_found)
}

pub async fn get_dashboard(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(DASHBOARD_SCOPES)?;
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let dashboard = find_dashboard(&ctx, &world, workspace)?;
        Ok(odata::entity(&ctx.shared.base_url, &ctx.scope_prefix(), "dashboards", dashboard_json(&ctx, &world, dashboard)))
    })();
    ctx.answer(result)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddDashboardRequest {
    name: String,
}

pub async fn add_dashboard(ctx: Ctx, body: Result<Json<AddDashboardRequest>, axum::extract::rejection::JsonRejection>) -> Response {
    let result = (|| {
        ctx.caller.require_scope(&["Dashboard.ReadWrite.All", "Content.Create"])?;
        let Json(request) = body.map_err(|e| PbiError::bad_request(e.body_text()))?;
        if request.name.trim().is_empty() {
            return Err(PbiError::bad_request("'name' must not be empty."));
        }
        let mut world = ctx.world();
        let (workspace, role) = ctx.workspace(&mut world)?;
        if !role.can_write() {
            return Err(PbiError::not_authorized("Viewers cannot add dashboards to this workspace."));
        }
        let dashboard = Dashboard { id: Uuid::new_v4(), workspace, display_name: request.name, is_read_only: false, tiles: Vec::new() };
        let body = dashboard_json(&ctx, &world, &dashboard);
        world.dashboards.insert(dashboard.id, dashboard);
        Ok(odata::entity(&ctx.shared.base_url, &ctx.scope_prefix(), "dashboards", body))
    })();
    ctx.answer(result)
}

pub async fn list_tiles(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(DASHBOARD_SCOPES)?;
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let dashboard = find_dashboard(&ctx, &world, workspace)?;
        let values = dashboard.tiles.iter().map(|t| tile_json(&ctx, &world, dashboard, t)).collect();
        Ok(odata::list(&ctx.shared.base_url, &ctx.scope_prefix(), &format!("dashboards('{}')/tiles", dashboard.id), values))
    })();
    ctx.answer(result)
}

pub async fn get_tile(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(DASHBOARD_SCOPES)?;
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let dashboard = find_dashboard(&ctx, &world, workspace)?;
        let tile_id = ctx.id("tileId")?;
        let tile = dashboard.tiles.iter().find(|t| t.id == tile_id).ok_or_else(PbiError::not_found)?;
        Ok(odata::entity(
            &ctx.shared.base_url,
            &ctx.scope_prefix(),
            &format!("dashboards('{}')/tiles", dashboard.id),
            tile_json(&ctx, &world, dashboard, tile),
        ))
    })();
    ctx.answer(result)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloneTileRequest {
    target_dashboard_id: String,
    #[serde(default)]
    target_workspace_id: Option<String>,
    #[serde(default)]
    target_report_id: Option<String>,
    #[serde(default)]
    target_model_id: Option<String>,
    #[serde(default)]
    position_conflict_action: Option<String>,
}

pub async fn clone_tile(ctx: Ctx, body: Result<Json<CloneTileRequest>, axum::extract::rejection::JsonRejection>) -> Response {
    let result = (|| {
        ctx.caller.require_scope(&["Dashboard.ReadWrite.All"])?;
        let Json(request) = body.map_err(|e| PbiError::bad_request(e.body_text()))?;
        let guid =
            |name: &str, v: &str| ids::parse_guid(v).ok_or_else(|| PbiError::bad_request(format!("'{name}' must be a GUID, got '{v}'.")));
        let target_dashboard = guid("targetDashboardId", &request.target_dashboard_id)?;
        let target_report = request.target_report_id.as_deref().map(|v| guid("targetReportId", v)).transpose()?;
        let target_model = request.target_model_id.as_deref().map(|v| guid("targetModelId", v)).transpose()?;
        if let Some(action) = &request.position_conflict_action
            && !action.eq_ignore_ascii_case("Tail")
            && !action.eq_ignore_ascii_case("Abort")
        {
            return Err(PbiError::bad_request("'positionConflictAction' must be Tail or Abort."));
        }
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let source = find_dashboard(&ctx, &world, workspace)?;
        let tile_id = ctx.id("tileId")?;
        let tile = source.tiles.iter().find(|t| t.id == tile_id).ok_or_else(PbiError::not_found)?.clone();
        let target_workspace = target_workspace(&ctx, &mut world, request.target_workspace_id.as_deref(), workspace)?;
        let target_ws = world.workspaces.get(&target_workspace).ok_or_else(PbiError::not_found)?;
        if !ctx.caller.role_in(&world, target_ws).is_some_and(WorkspaceRole::can_write) {
            return Err(PbiError::not_found());
        }
        let target = world.dashboards.get(&target_dashboard).filter(|d| d.workspace == target_workspace).ok_or_else(PbiError::not_found)?;
        // The swagger: rebound to the report and dataset given; without them, the links are kept within the
        // workspace and removed across workspaces ("the tile will be broken").
        if let Some(report) = target_report {
            visible_report(&ctx, &world, report)?;
        }
        if let Some(model) = target_model {
            visible_dataset(&ctx, &world, model)?;
        }
        let same_workspace = target_workspace == workspace;
        let report_id = target_report.or(if same_workspace { tile.report_id } else { None });
        let dataset_id = target_model
            .or_else(|| target_report.and_then(|r| world.reports.get(&r)).and_then(|r| r.dataset_id))
            .or(if same_workspace { tile.dataset_id } else { None });
        let clone = Tile { id: Uuid::new_v4(), report_id, dataset_id, ..tile };
        let target_copy = target.clone();
        let body = tile_json(&ctx, &world, &target_copy, &clone);
        if let Some(d) = world.dashboards.get_mut(&target_dashboard) {
            d.tiles.push(clone);
        }
        Ok(odata::json_response(body))
    })();
    ctx.answer(result)
}

/// A request's `targetWorkspaceId`: absent means the source's workspace, the empty GUID the caller's My
/// workspace (created on first use, as every My workspace is).
fn target_workspace(ctx: &Ctx, world: &mut World, requested: Option<&str>, source: Uuid) -> PbiResult<Uuid> {
    match requested.filter(|v| !v.is_empty()) {
        None => Ok(source),
        Some(v) => {
            let id = ids::parse_guid(v).ok_or_else(|| PbiError::bad_request(format!("'targetWorkspaceId' must be a GUID, got '{v}'.")))?;
            if !id.is_nil() {
                return Ok(id);
            }
            if ctx.caller.is_service_principal() {
                return Err(PbiError::not_authorized("Service principals have no My workspace."));
            }
            Ok(super::my_workspace(world, &ctx.caller))
        }
    }
}

/// A report the caller can see (any role in its workspace), else 404 as Power BI answers.
fn visible_report<'w>(ctx: &Ctx, world: &'w World, id: Uuid) -> PbiResult<&'w Report> {
    let report = world.reports.get(&id).ok_or_else(PbiError::not_found)?;
    let workspace = world.workspaces.get(&report.workspace).ok_or_else(PbiError::not_found)?;
    ctx.caller.role_in(world, workspace).ok_or_else(PbiError::not_found)?;
    Ok(report)
}

/// A dataset the caller may build on: Contributor or above in its workspace (the sandbox's Build permission).
fn visible_dataset(ctx: &Ctx, world: &World, id: Uuid) -> PbiResult<()> {
    let dataset = world.datasets.get(&id).ok_or_else(PbiError::not_found)?;
    let workspace = world.workspaces.get(&dataset.workspace).ok_or_else(PbiError::not_found)?;
    match ctx.caller.role_in(world, workspace) {
        None => Err(PbiError::not_found()),
        Some(role) if !role.can_write() => {
            Err(PbiError::not_authorized("Building on this dataset needs Build permission (Contributor or above)."))
        }
        Some(_) => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloneReportRequest {
    name: String,
    #[serde(default)]
    target_workspace_id: Option<String>,
    #[serde(default)]
    target_model_id: Option<String>,
}

/// Reports_CloneReport[InGroup]: Write on the report, Build on the target dataset; the clone is bound to the
/// target dataset (or the source's), in the target workspace (or the source's).
pub async fn clone_report(ctx: Ctx, body: Result<Json<CloneReportRequest>, axum::extract::rejection::JsonRejection>) -> Response {
    let result = (|| {
        ctx.caller.require_scope(&["Content.Create"])?;
        let Json(request) = body.map_err(|e| PbiError::bad_request(e.body_text()))?;
        if request.name.trim().is_empty() {
            return Err(PbiError::bad_request("'name' must not be empty."));
        }
        let target_model = match request.target_model_id.as_deref().filter(|v| !v.is_empty()) {
            Some(v) => {
                Some(ids::parse_guid(v).ok_or_else(|| PbiError::bad_request(format!("'targetModelId' must be a GUID, got '{v}'.")))?)
            }
            None => None,
        };
        let mut world = ctx.world();
        let (workspace, role) = ctx.workspace(&mut world)?;
        let id = ctx.id("reportId")?;
        let source = world.reports.get(&id).filter(|r| r.workspace == workspace).ok_or_else(PbiError::not_found)?.clone();
        if !role.can_write() {
            return Err(PbiError::not_authorized("Cloning a report needs Write permission on it (Contributor or above)."));
        }
        let target_workspace = target_workspace(&ctx, &mut world, request.target_workspace_id.as_deref(), workspace)?;
        let target_ws = world.workspaces.get(&target_workspace).ok_or_else(PbiError::not_found)?;
        if !ctx.caller.role_in(&world, target_ws).is_some_and(WorkspaceRole::can_write) {
            return Err(PbiError::not_found());
        }
        if let Some(model) = target_model {
            visible_dataset(&ctx, &world, model)?;
        }
        let now = ctx.shared.clock.now();
        let clone = Report {
            id: Uuid::new_v4(),
            workspace: target_workspace,
            name: request.name,
            dataset_id: target_model.or(source.dataset_id),
            created: now,
            modified: now,
            ..source
        };
        let body = report_json(&ctx, &world, &clone, ctx.caller.principal);
        world.reports.insert(clone.id, clone);
        Ok(odata::json_response(body))
    })();
    ctx.answer(result)
}

/// Reports_DeleteReport[InGroup]: Contributor or above. Tiles pinned from it keep their data but lose the link.
pub async fn delete_report(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(&["Report.ReadWrite.All"])?;
        let mut world = ctx.world();
        let (workspace, role) = ctx.workspace(&mut world)?;
        let id = ctx.id("reportId")?;
        world.reports.get(&id).filter(|r| r.workspace == workspace).ok_or_else(PbiError::not_found)?;
        if !role.can_write() {
            return Err(PbiError::not_authorized("Viewers cannot delete reports."));
        }
        world.reports.remove(&id);
        for tile in world.dashboards.values_mut().flat_map(|d| d.tiles.iter_mut()).filter(|t| t.report_id == Some(id)) {
            tile.report_id = None;
        }
        Ok(StatusCode::OK)
    })();
    ctx.answer(result)
}

/// Dashboards_DeleteDashboard[InGroup]: Contributor or above; its tiles go with it.
pub async fn delete_dashboard(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(&["Dashboard.ReadWrite.All"])?;
        let mut world = ctx.world();
        let (workspace, role) = ctx.workspace(&mut world)?;
        find_dashboard(&ctx, &world, workspace)?;
        if !role.can_write() {
            return Err(PbiError::not_authorized("Viewers cannot delete dashboards."));
        }
        world.dashboards.remove(&ctx.id("dashboardId")?);
        Ok(StatusCode::OK)
    })();
    ctx.answer(result)
}

pub async fn list_reports(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(REPORT_SCOPES)?;
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let values = world
            .reports
            .values()
            .filter(|r| r.workspace == workspace)
            .map(|r| report_json(&ctx, &world, r, ctx.caller.principal))
            .collect();
        Ok(odata::list(&ctx.shared.base_url, &ctx.scope_prefix(), "reports", values))
    })();
    ctx.answer(result)
}

pub async fn get_report(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(REPORT_SCOPES)?;
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let id = ctx.id("reportId")?;
        let report = world.reports.get(&id).filter(|r| r.workspace == workspace).ok_or_else(PbiError::not_found)?;
        Ok(odata::entity(&ctx.shared.base_url, &ctx.scope_prefix(), "reports", report_json(&ctx, &world, report, ctx.caller.principal)))
    })();
    ctx.answer(result)
}

#[allow(dead_code)]
fn created(response: Response) -> Response {
    (StatusCode::CREATED, response).into_response()
}
