//! `GenerateToken`: embed tokens for reports, dashboards, tiles and datasets (workspace form only), and the
//! multi-resource `POST /GenerateToken`. The sandbox remembers what each token allows until it expires.

use super::Ctx;
use super::error::{PbiError, PbiResult};
use super::odata;
use crate::ids;
use crate::model::{EmbedGrant, EmbedResource, World};
use axum::body::Bytes;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GenerateTokenRequest {
    #[serde(default)]
    access_level: Option<String>,
    #[serde(default)]
    dataset_id: Option<String>,
    #[serde(default)]
    allow_save_as: Option<bool>,
    #[serde(default)]
    identities: Vec<Identity>,
    #[serde(default)]
    lifetime_in_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Identity {
    username: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    datasets: Vec<String>,
    #[serde(default)]
    custom_data: Option<String>,
    #[serde(default)]
    identity_blob: Option<Value>,
    #[serde(default)]
    reports: Vec<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GenerateTokenRequestV2 {
    #[serde(default)]
    datasets: Vec<V2Dataset>,
    #[serde(default)]
    reports: Vec<V2Report>,
    #[serde(default)]
    target_workspaces: Vec<V2Id>,
    #[serde(default)]
    identities: Vec<Identity>,
    #[serde(default)]
    datasource_identities: Vec<Value>,
    #[serde(default)]
    lifetime_in_minutes: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct V2Dataset {
    id: String,
    #[serde(default)]
    xmla_permissions: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct V2Report {
    id: String,
    #[serde(default)]
    allow_edit: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct V2Id {
    id: String,
}

const DASHBOARD: &[&str] = &["Dashboard.Read.All", "Dashboard.ReadWrite.All"];
const REPORT: &[&str] = &["Report.Read.All", "Report.ReadWrite.All"];
const DATASET: &[&str] = &["Dataset.Read.All", "Dataset.ReadWrite.All"];

fn parse_body<T: for<'de> Deserialize<'de>>(body: &Bytes) -> PbiResult<T> {
    serde_json::from_slice(if body.is_empty() { b"{}" } else { body })
        .map_err(|e| PbiError::bad_request(format!("The GenerateToken request is not valid: {e}.")))
}

fn check_identities(identities: &[Identity]) -> PbiResult<()> {
    for (i, identity) in identities.iter().enumerate() {
        if identity.username.trim().is_empty() {
            return Err(PbiError::bad_request(format!("identities[{i}].username must not be empty.")));
        }
        if identity.roles.len() > 50 {
            return Err(PbiError::bad_request(format!("identities[{i}].roles: at most 50 roles per identity.")));
        }
        let _ = (&identity.datasets, &identity.custom_data, &identity.identity_blob, &identity.reports);
    }
    Ok(())
}

/// `lifetimeInMinutes` can only shorten: the token never outlives the caller's access token.
fn expiry(ctx: &Ctx, now: OffsetDateTime, lifetime: Option<i64>) -> PbiResult<OffsetDateTime> {
    let caller_expiry = OffsetDateTime::from_unix_timestamp(ctx.caller.token_expires).unwrap_or(now);
    match lifetime {
        None | Some(0) => Ok(caller_expiry),
        Some(minutes) if minutes < 0 => Err(PbiError::bad_request("lifetimeInMinutes must be a positive number of minutes.")),
        Some(minutes) => Ok(caller_expiry.min(now + Duration::minutes(minutes))),
    }
}

fn issue(ctx: &Ctx, world: &mut World, resources: Vec<EmbedResource>, expires: OffsetDateTime) -> Response {
    let token = format!("H4sIAAAAAAAEA{}", ids::opaque(96));
    let token_id = Uuid::new_v4();
    world.embed_tokens.retain(|_, g| g.expires > ctx.shared.clock.now());
    world.embed_tokens.insert(token.clone(), EmbedGrant { resources, expires });
    let expiration = expires.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    odata::json_response(
        json!({"@odata.context": format!("{}/v1.0/myorg/$metadata#Microsoft.PowerBI.ServiceContracts.Api.V1.EmbedToken", ctx.shared.base_url), "token": token, "tokenId": token_id, "expiration": expiration}),
    )
}

fn access_level(request: &GenerateTokenRequest, allowed: &[&str]) -> PbiResult<String> {
    let level = request.access_level.as_deref().unwrap_or("View");
    let canonical = ["View", "Edit", "Create"]
        .into_iter()
        .find(|l| l.eq_ignore_ascii_case(level))
        .ok_or_else(|| PbiError::bad_request(format!("accessLevel '{level}' is not View, Edit or Create.")))?;
    if !allowed.contains(&canonical) {
        return Err(PbiError::bad_request(format!("accessLevel {canonical} does not apply here; use {}.", allowed.join(" or "))));
    }
    Ok(canonical.to_owned())
}

/// The common path of the per-item forms: parse, check the workspace role, find the item, issue.
fn per_item(
    ctx: &Ctx,
    body: &Bytes,
    scopes: &[&[&str]],
    levels: &[&str],
    find: impl FnOnce(&Ctx, &World, Uuid) -> PbiResult<Vec<EmbedResource>>,
) -> PbiResult<Response> {
    for any_of in scopes {
        ctx.caller.require_scope(any_of)?;
    }
    let request: GenerateTokenRequest = parse_body(body)?;
    check_identities(&request.identities)?;
    let level = access_level(&request, levels)?;
    let _ = request.allow_save_as;
    let now = ctx.shared.clock.now();
    let expires = expiry(ctx, now, request.lifetime_in_minutes)?;
    let mut world = ctx.world();
    let (workspace, role) = ctx.workspace(&mut world)?;
    if level != "View" && !role.can_write() {
        return Err(PbiError::not_authorized(format!(
            "An embed token with accessLevel {level} needs Contributor or higher in the workspace."
        )));
    }
    let mut resources = find(ctx, &world, workspace)?;
    if level == "Create" {
        let dataset = request
            .dataset_id
            .as_deref()
            .and_then(ids::parse_guid)
            .ok_or_else(|| PbiError::bad_request("datasetId (a GUID) is required to create a report."))?;
        world.datasets.get(&dataset).filter(|d| d.workspace == workspace).ok_or_else(PbiError::not_found)?;
        resources.extend([EmbedResource::Dataset(dataset), EmbedResource::Workspace(workspace)]);
    }
    Ok(issue(ctx, &mut world, resources, expires))
}

pub async fn report(ctx: Ctx, body: Bytes) -> Response {
    let result = per_item(&ctx, &body, &[REPORT], &["View", "Edit"], |ctx, world, workspace| {
        let id = ctx.id("reportId")?;
        let report = world.reports.get(&id).filter(|r| r.workspace == workspace).ok_or_else(PbiError::not_found)?;
        Ok([Some(EmbedResource::Report(id)), report.dataset_id.map(EmbedResource::Dataset)].into_iter().flatten().collect())
    });
    ctx.answer(result)
}

pub async fn report_create(ctx: Ctx, body: Bytes) -> Response {
    let result = per_item(&ctx, &body, &[REPORT, DATASET], &["Create"], |_, _, _| Ok(Vec::new()));
    ctx.answer(result)
}

pub async fn dashboard(ctx: Ctx, body: Bytes) -> Response {
    let result = per_item(&ctx, &body, &[DASHBOARD], &["View"], |ctx, world, workspace| {
        let id = ctx.id("dashboardId")?;
        world.dashboards.get(&id).filter(|d| d.workspace == workspace).ok_or_else(PbiError::not_found)?;
        Ok(vec![EmbedResource::Dashboard(id)])
    });
    ctx.answer(result)
}

pub async fn tile(ctx: Ctx, body: Bytes) -> Response {
    let result = per_item(&ctx, &body, &[DASHBOARD, REPORT, DATASET], &["View"], |ctx, world, workspace| {
        let dashboard = ctx.id("dashboardId")?;
        let tile = ctx.id("tileId")?;
        let d = world.dashboards.get(&dashboard).filter(|d| d.workspace == workspace).ok_or_else(PbiError::not_found)?;
        d.tiles.iter().find(|t| t.id == tile).ok_or_else(PbiError::not_found)?;
        Ok(vec![EmbedResource::Tile { dashboard, tile }])
    });
    ctx.answer(result)
}

pub async fn dataset(ctx: Ctx, body: Bytes) -> Response {
    let result = per_item(&ctx, &body, &[DATASET], &["View", "Edit", "Create"], |ctx, world, workspace| {
        let id = ctx.id("datasetId")?;
        world.datasets.get(&id).filter(|d| d.workspace == workspace).ok_or_else(PbiError::not_found)?;
        Ok(vec![EmbedResource::Dataset(id)])
    });
    ctx.answer(result)
}

fn guid(field: &str, value: &str) -> PbiResult<Uuid> {
    ids::parse_guid(value).ok_or_else(|| PbiError::bad_request(format!("{field}: '{value}' is not a GUID.")))
}

pub async fn multi(ctx: Ctx, body: Bytes) -> Response {
    let result = (|| {
        let request: GenerateTokenRequestV2 = parse_body(&body)?;
        for (name, count) in [
            ("reports", request.reports.len()),
            ("datasets", request.datasets.len()),
            ("targetWorkspaces", request.target_workspaces.len()),
        ] {
            if count > 50 {
                return Err(PbiError::bad_request(format!("{name}: at most 50 items per GenerateToken request.")));
            }
        }
        if request.reports.is_empty() && request.datasets.is_empty() {
            return Err(PbiError::bad_request(
                "Name at least one report or dataset. Dashboards and tiles cannot be embedded with this API; use their GenerateToken in the workspace form.",
            ));
        }
        if !request.reports.is_empty() {
            ctx.caller.require_scope(REPORT)?;
        }
        if !request.datasets.is_empty() {
            ctx.caller.require_scope(DATASET)?;
        }
        if !request.target_workspaces.is_empty() {
            ctx.caller.require_scope(&["Content.Create"])?;
        }
        check_identities(&request.identities)?;
        let _ = &request.datasource_identities;
        let now = ctx.shared.clock.now();
        let expires = expiry(&ctx, now, request.lifetime_in_minutes)?;
        let mut world = ctx.world();
        let mut resources = Vec::new();
        let visible = |world: &World, workspace: Uuid, write: bool| {
            world.workspaces.get(&workspace).and_then(|w| ctx.caller.role_in(world, w)).is_some_and(|role| !write || role.can_write())
        };
        for (i, report) in request.reports.iter().enumerate() {
            let id = guid(&format!("reports[{i}].id"), &report.id)?;
            let r = world
                .reports
                .get(&id)
                .filter(|r| visible(&world, r.workspace, report.allow_edit == Some(true)))
                .ok_or_else(PbiError::not_found)?;
            resources.push(EmbedResource::Report(r.id));
        }
        for (i, dataset) in request.datasets.iter().enumerate() {
            let id = guid(&format!("datasets[{i}].id"), &dataset.id)?;
            if let Some(p) = &dataset.xmla_permissions
                && p != "Off"
                && p != "ReadOnly"
            {
                return Err(PbiError::bad_request(format!("datasets[{i}].xmlaPermissions must be Off or ReadOnly.")));
            }
            world.datasets.get(&id).filter(|d| visible(&world, d.workspace, false)).ok_or_else(PbiError::not_found)?;
            resources.push(EmbedResource::Dataset(id));
        }
        for (i, target) in request.target_workspaces.iter().enumerate() {
            let id = guid(&format!("targetWorkspaces[{i}].id"), &target.id)?;
            if !visible(&world, id, true) {
                return Err(PbiError::not_found());
            }
            resources.push(EmbedResource::Workspace(id));
        }
        Ok(issue(&ctx, &mut world, resources, expires))
    })();
    ctx.answer(result)
}
