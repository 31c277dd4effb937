//! The admin APIs: `admin/groups` and the metadata scanner (`workspaces/modified`, `getInfo`,
//! `scanStatus`, `scanResult`), with their tenant settings, hourly quotas and asynchronous life cycle.

use super::Ctx;
use super::error::{PbiError, PbiResult};
use super::odata::{self, Filter};
use crate::ids;
use crate::model::{Dataset, Scan, TenantSettings, Workspace, WorkspaceRole, World};
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

type QueryPairs = Query<Vec<(String, String)>>;

/// When a scan moves from NotStarted to Running, and from Running to Succeeded (sandbox time).
const SCAN_STARTS: Duration = Duration::seconds(5);
const SCAN_TAKES: Duration = Duration::seconds(15);
const SCAN_KEPT: Duration = Duration::hours(24);
const MAX_CONCURRENT_SCANS: usize = 16;

fn iso(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn flag(query: &[(String, String)], name: &str) -> PbiResult<bool> {
    match query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(PbiError::bad_request(format!("Invalid value '{v}' for '{name}': use true or false."))),
    }
}

/// The documented per-tenant quotas: at most `limit` calls in any `window`, else 429 with `Retry-After`.
fn admit(world: &mut World, tenant: Uuid, api: &'static str, limits: &[(usize, Duration)], now: OffsetDateTime) -> PbiResult<()> {
    let longest = limits.iter().map(|(_, w)| *w).max().unwrap_or(Duration::HOUR);
    let calls = world.admin_calls.entry((tenant, api)).or_default();
    while calls.front().is_some_and(|at| *at + longest <= now) {
        calls.pop_front();
    }
    for (limit, window) in limits {
        let inside: Vec<OffsetDateTime> = calls.iter().copied().filter(|at| *at + *window > now).collect();
        if inside.len() >= *limit {
            let retry_after = ((inside[0] + *window - now).as_seconds_f64().ceil() as u64).max(1);
            return Err(PbiError::Throttled {
                retry_after,
                message: format!(
                    "You have exceeded the amount of requests allowed in the current time frame and further requests will fail: {api} allows {limit} calls per {} minutes per tenant.",
                    window.whole_minutes()
                ),
            });
        }
    }
    calls.push_back(now);
    Ok(())
}

fn workspace_type(workspace: &Workspace) -> &'static str {
    if workspace.personal_owner.is_some() { "PersonalGroup" } else { "Workspace" }
}

const EXPANDABLE: &[&str] = &["users", "reports", "dashboards", "datasets", "dataflows", "workbooks"];

pub async fn groups(ctx: Ctx, Query(query): QueryPairs) -> Response {
    let result = (|| {
        let top = match query.iter().find(|(k, _)| k == "$top") {
            None => return Err(PbiError::bad_request("'$top' is required for admin/groups: a number from 1 to 5000.")),
            Some((_, v)) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=5000).contains(n))
                .ok_or_else(|| PbiError::bad_request(format!("Invalid '$top' value '{v}': use a number from 1 to 5000.")))?,
        };
        let (_, skip) = odata::paging(&query)?;
        let filter = match query.iter().find(|(k, _)| k == "$filter") {
            Some((_, text)) => Some(Filter::parse(text).map_err(PbiError::bad_request)?),
            None => None,
        };
        let expand: BTreeSet<String> = query
            .iter()
            .filter(|(k, _)| k == "$expand")
            .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(bad) = expand.iter().find(|e| !EXPANDABLE.contains(&e.as_str())) {
            return Err(PbiError::bad_request(format!("Invalid '$expand' item '{bad}': use {}.", EXPANDABLE.join(", "))));
        }
        let now = ctx.shared.clock.now();
        let mut world = ctx.world();
        admit(&mut world, ctx.caller.tenant, "GET admin/groups", &[(50, Duration::HOUR), (15, Duration::MINUTE)], now)?;
        let values: Vec<Value> = world
            .workspaces
            .values()
            .filter(|w| w.tenant == ctx.caller.tenant)
            .filter(|w| {
                filter.as_ref().is_none_or(|f| {
                    f.matches(|p| match p.to_ascii_lowercase().as_str() {
                        "name" => Some(w.name.clone()),
                        "id" => Some(w.id.to_string()),
                        "type" => Some(workspace_type(w).to_owned()),
                        "state" => Some("Active".to_owned()),
                        _ => None,
                    })
                })
            })
            .map(|w| admin_group_json(&world, w, &expand))
            .collect();
        Ok(odata::list(&ctx.shared.base_url, "", "groups", odata::page(values, Some(top), skip)))
    })();
    ctx.answer(result)
}

fn admin_group_json(world: &World, w: &Workspace, expand: &BTreeSet<String>) -> Value {
    let mut value = json!({
        "id": w.id,
        "name": w.name,
        "description": w.description,
        "type": workspace_type(w),
        "state": "Active",
        "isReadOnly": false,
        "isOnDedicatedCapacity": w.capacity_id.is_some(),
        "hasWorkspaceLevelSettings": false,
    });
    if let Some(capacity) = w.capacity_id {
        value["capacityId"] = json!(capacity.to_string().to_uppercase());
    }
    for item in expand {
        value[item.as_str()] = match item.as_str() {
            "users" => Value::Array(workspace_users(world, w)),
            "reports" => world
                .reports
                .values()
                .filter(|r| r.workspace == w.id)
                .map(|r| json!({"id": r.id, "name": r.name, "datasetId": r.dataset_id, "reportType": "PowerBIReport"}))
                .collect(),
            "dashboards" => world
                .dashboards
                .values()
                .filter(|d| d.workspace == w.id)
                .map(|d| json!({"id": d.id, "displayName": d.display_name, "isReadOnly": d.is_read_only}))
                .collect(),
            "datasets" => world
                .datasets
                .values()
                .filter(|d| d.workspace == w.id)
                .map(|d| json!({"id": d.id, "name": d.name, "configuredBy": d.configured_by, "addRowsAPIEnabled": d.push.is_some()}))
                .collect(),
            "dataflows" => world
                .dataflows
                .values()
                .filter(|f| f.workspace == w.id)
                .map(|f| json!({"objectId": f.id, "name": f.name, "configuredBy": f.configured_by}))
                .collect(),
            _ => json!([]),
        };
    }
    value
}

/// Workspace access as the admin APIs list it (`getArtifactUsers`, `$expand=users`).
fn workspace_users(world: &World, w: &Workspace) -> Vec<Value> {
    let mut members: Vec<(Uuid, WorkspaceRole)> = w.members.iter().map(|(p, r)| (*p, *r)).collect();
    if let Some(owner) = w.personal_owner {
        members.push((owner, WorkspaceRole::Admin));
    }
    members
        .into_iter()
        .map(|(principal, role)| {
            let (identifier, kind) = if let Some(user) = world.users.get(&principal) {
                (user.upn.clone(), "User")
            } else if let Some(group) = world.security_groups.get(&principal) {
                (group.display_name.clone(), "Group")
            } else if let Some(sp) = world.service_principals.get(&principal) {
                (sp.client_id.to_string(), "App")
            } else {
                (principal.to_string(), "None")
            };
            json!({"identifier": identifier, "graphId": principal, "principalType": kind, "groupUserAccessRight": format!("{role:?}")})
        })
        .collect()
}

pub async fn modified(ctx: Ctx, Query(query): QueryPairs) -> Response {
    let result = (|| {
        let now = ctx.shared.clock.now();
        let since = match query.iter().find(|(k, _)| k == "modifiedSince") {
            None => None,
            Some((_, v)) => {
                let at = OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339).map_err(|_| {
                    PbiError::bad_request(format!(
                        "Invalid 'modifiedSince' value '{v}': use an ISO 8601 UTC date-time such as 2026-01-01T00:00:00.0000000Z."
                    ))
                })?;
                if at > now - Duration::minutes(30) || at < now - Duration::days(30) {
                    return Err(PbiError::bad_request("'modifiedSince' must be at least 30 minutes and at most 30 days in the past."));
                }
                Some(at)
            }
        };
        let exclude_personal = flag(&query, "excludePersonalWorkspaces")?;
        let _exclude_inactive = flag(&query, "excludeInActiveWorkspaces")?;
        let mut world = ctx.world();
        admit(&mut world, ctx.caller.tenant, "GET admin/workspaces/modified", &[(30, Duration::HOUR)], now)?;
        let ids: Vec<Value> = world
            .workspaces
            .values()
            .filter(|w| w.tenant == ctx.caller.tenant)
            .filter(|w| !(exclude_personal && w.personal_owner.is_some()))
            .filter(|w| since.is_none_or(|s| w.modified >= s))
            .map(|w| json!({"id": w.id}))
            .collect();
        Ok(odata::json_response(Value::Array(ids)))
    })();
    ctx.answer(result)
}

/// What a scan was asked to include.
#[derive(Debug, Clone, Copy, Default)]
struct ScanFlags {
    lineage: bool,
    datasource_details: bool,
    dataset_schema: bool,
    dataset_expressions: bool,
    artifact_users: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanRequest {
    workspaces: Vec<String>,
}

pub async fn get_info(ctx: Ctx, Query(query): QueryPairs, body: Bytes) -> Response {
    let result = (|| {
        let flags = ScanFlags {
            lineage: flag(&query, "lineage")?,
            datasource_details: flag(&query, "datasourceDetails")?,
            dataset_schema: flag(&query, "datasetSchema")?,
            dataset_expressions: flag(&query, "datasetExpressions")?,
            artifact_users: flag(&query, "getArtifactUsers")?,
        };
        let request: ScanRequest = serde_json::from_slice(&body)
            .map_err(|e| PbiError::bad_request(format!("The body must be {{\"workspaces\": [ids]}}: {e}.")))?;
        if request.workspaces.is_empty() || request.workspaces.len() > 100 {
            return Err(PbiError::bad_request(format!("A scan covers 1 to 100 workspaces; {} were given.", request.workspaces.len())));
        }
        let ids = request
            .workspaces
            .iter()
            .map(|w| ids::parse_guid(w).ok_or_else(|| PbiError::bad_request(format!("'{w}' in 'workspaces' is not a GUID."))))
            .collect::<PbiResult<Vec<Uuid>>>()?;
        let now = ctx.shared.clock.now();
        let mut world = ctx.world();
        let running = world.scans.values().filter(|s| s.tenant == ctx.caller.tenant && s.created + SCAN_TAKES > now).count();
        if running >= MAX_CONCURRENT_SCANS {
            return Err(PbiError::Throttled {
                retry_after: 15,
                message: format!("At most {MAX_CONCURRENT_SCANS} scans may run at once per tenant."),
            });
        }
        admit(&mut world, ctx.caller.tenant, "POST admin/workspaces/getInfo", &[(500, Duration::HOUR)], now)?;
        let settings = world.tenants.get(&ctx.caller.tenant).map(|t| t.settings.clone()).unwrap_or_default();
        let result = build_scan_result(&world, ctx.caller.tenant, &ids, flags, &settings);
        let id = Uuid::new_v4();
        world.scans.insert(id, Scan { id, tenant: ctx.caller.tenant, created: now, result });
        let mut response =
            (StatusCode::ACCEPTED, odata::json_response(json!({"id": id, "createdDateTime": iso(now), "status": "NotStarted"})))
                .into_response();
        if let Ok(location) = HeaderValue::from_str(&format!("{}/v1.0/myorg/admin/workspaces/scanStatus/{id}", ctx.shared.base_url)) {
            response.headers_mut().insert("location", location);
        }
        Ok(response)
    })();
    ctx.answer(result)
}

fn scan_status_of(scan: &Scan, now: OffsetDateTime) -> &'static str {
    if now >= scan.created + SCAN_TAKES {
        "Succeeded"
    } else if now >= scan.created + SCAN_STARTS {
        "Running"
    } else {
        "NotStarted"
    }
}

fn find_scan(ctx: &Ctx, world: &World, now: OffsetDateTime) -> PbiResult<Scan> {
    let id = ctx.id("scanId")?;
    world.scans.get(&id).filter(|s| s.tenant == ctx.caller.tenant && s.created + SCAN_KEPT > now).cloned().ok_or_else(PbiError::not_found)
}

pub async fn scan_status(ctx: Ctx) -> Response {
    let result = (|| {
        let now = ctx.shared.clock.now();
        let mut world = ctx.world();
        admit(&mut world, ctx.caller.tenant, "GET admin/workspaces/scanStatus", &[(10_000, Duration::HOUR)], now)?;
        let scan = find_scan(&ctx, &world, now)?;
        Ok(odata::json_response(json!({"id": scan.id, "createdDateTime": iso(scan.created), "status": scan_status_of(&scan, now)})))
    })();
    ctx.answer(result)
}

pub async fn scan_result(ctx: Ctx) -> Response {
    let result = (|| {
        let now = ctx.shared.clock.now();
        let mut world = ctx.world();
        admit(&mut world, ctx.caller.tenant, "GET admin/workspaces/scanResult", &[(500, Duration::HOUR)], now)?;
        let scan = find_scan(&ctx, &world, now)?;
        let status = scan_status_of(&scan, now);
        if status != "Succeeded" {
            return Err(PbiError::bad_request(format!(
                "The scan {} has not succeeded yet (status {status}); poll scanStatus until it has.",
                scan.id
            )));
        }
        Ok(odata::json_response(scan.result))
    })();
    ctx.answer(result)
}

fn build_scan_result(world: &World, tenant: Uuid, ids: &[Uuid], flags: ScanFlags, settings: &TenantSettings) -> Value {
    let workspaces: Vec<&Workspace> = ids.iter().filter_map(|id| world.workspaces.get(id)).filter(|w| w.tenant == tenant).collect();
    let mut used_sources: BTreeSet<Uuid> = BTreeSet::new();
    let scanned: Vec<Value> = workspaces.iter().map(|w| scan_workspace(world, w, flags, settings, &mut used_sources)).collect();
    let mut result = json!({"workspaces": scanned});
    if flags.datasource_details {
        let instances: Vec<Value> = used_sources
            .iter()
            .filter_map(|id| world.datasources.get(id))
            .map(|d| json!({"datasourceType": d.datasource_type, "connectionDetails": {"server": d.server, "database": d.database}, "datasourceId": d.id}))
            .collect();
        result["datasourceInstances"] = Value::Array(instances);
        result["misconfiguredDatasourceInstances"] = json!([]);
    }
    result
}

fn scan_workspace(world: &World, w: &Workspace, flags: ScanFlags, settings: &TenantSettings, used_sources: &mut BTreeSet<Uuid>) -> Value {
    let reports: Vec<Value> = world
        .reports
        .values()
        .filter(|r| r.workspace == w.id)
        .map(|r| {
            let mut v = json!({"id": r.id, "name": r.name, "reportType": if r.paginated { "PaginatedReport" } else { "PowerBIReport" }, "createdDateTime": iso(r.created), "modifiedDateTime": iso(r.modified)});
            if let Some(ds) = r.dataset_id {
                v["datasetId"] = json!(ds);
                if let Some(d) = world.datasets.get(&ds).filter(|d| d.workspace != w.id) {
                    v["datasetWorkspaceId"] = json!(d.workspace);
                }
            }
            v
        })
        .collect();
    let dashboards: Vec<Value> = world
        .dashboards
        .values()
        .filter(|d| d.workspace == w.id)
        .map(|d| {
            let tiles: Vec<Value> = d
                .tiles
                .iter()
                .map(|t| {
                    let mut v = json!({"id": t.id, "title": t.title});
                    if flags.lineage {
                        if let Some(r) = t.report_id {
                            v["reportId"] = json!(r);
                        }
                        if let Some(ds) = t.dataset_id {
                            v["datasetId"] = json!(ds);
                        }
                    }
                    v
                })
                .collect();
            json!({"id": d.id, "displayName": d.display_name, "isReadOnly": d.is_read_only, "tiles": tiles})
        })
        .collect();
    let datasets: Vec<Value> =
        world.datasets.values().filter(|d| d.workspace == w.id).map(|d| scan_dataset(d, flags, settings, used_sources)).collect();
    let dataflows: Vec<Value> = world
        .dataflows
        .values()
        .filter(|f| f.workspace == w.id)
        .map(|f| {
            let mut v = json!({"objectId": f.id, "name": f.name, "configuredBy": f.configured_by, "modifiedDateTime": iso(f.modified)});
            if flags.lineage {
                used_sources.extend(f.datasource_usages.iter().copied());
                v["datasourceUsages"] = f.datasource_usages.iter().map(|id| json!({"datasourceInstanceId": id})).collect();
                v["upstreamDataflows"] = json!([]);
            }
            v
        })
        .collect();
    let mut value = json!({
        "id": w.id, "name": w.name, "description": w.description, "type": workspace_type(w), "state": "Active",
        "isOnDedicatedCapacity": w.capacity_id.is_some(),
        "reports": reports, "dashboards": dashboards, "datasets": datasets, "dataflows": dataflows,
    });
    if let Some(capacity) = w.capacity_id {
        value["capacityId"] = json!(capacity.to_string().to_uppercase());
    }
    if flags.artifact_users {
        value["users"] = Value::Array(workspace_users(world, w));
    }
    value
}

fn scan_dataset(d: &Dataset, flags: ScanFlags, settings: &TenantSettings, used_sources: &mut BTreeSet<Uuid>) -> Value {
    let mut v = json!({
        "id": d.id, "name": d.name, "description": d.description, "configuredBy": d.configured_by, "createdDate": iso(d.created),
        "targetStorageMode": if d.push.is_some() { "Abf" } else { "PremiumFiles" },
        "isEffectiveIdentityRequired": false, "isEffectiveIdentityRolesRequired": false,
    });
    if flags.lineage {
        used_sources.extend(d.datasource_usages.iter().copied());
        v["upstreamDataflows"] = d.upstream_dataflows.iter().map(|id| json!({"targetDataflowId": id, "groupId": d.workspace})).collect();
        v["datasourceUsages"] = d.datasource_usages.iter().map(|id| json!({"datasourceInstanceId": id})).collect();
        v["upstreamDatasets"] = json!([]);
    }
    // Detail is silently left out when the tenant settings are off, as the service does.
    let schema = flags.dataset_schema && settings.detailed_metadata;
    let expressions = flags.dataset_expressions && settings.detailed_metadata && settings.dax_and_mashup;
    if (schema || expressions) && d.push.is_some() {
        v["schemaRetrievalError"] = json!("Unsupported request. RealTime dataset are not supported");
        return v;
    }
    if schema {
        v["tables"] = d
            .tables
            .iter()
            .map(|t| {
                let columns: Vec<Value> = t.columns.iter().map(|c| json!({"name": c.name, "dataType": c.data_type.wire_name(), "isHidden": c.wire.get("isHidden").and_then(Value::as_bool).unwrap_or(false), "columnType": "Data"})).collect();
                let measures: Vec<Value> = t
                    .measures
                    .iter()
                    .map(|m| {
                        let mut out = json!({"name": m["name"], "description": m.get("description").cloned().unwrap_or(json!("")), "isHidden": m.get("isHidden").cloned().unwrap_or(json!(false))});
                        if expressions {
                            out["expression"] = m["expression"].clone();
                        }
                        out
                    })
                    .collect();
                let mut table = json!({"name": t.name, "isHidden": t.is_hidden, "columns": columns, "measures": measures});
                if let (true, Some(source)) = (expressions, &t.source_expression) {
                    table["source"] = json!([{"expression": source}]);
                }
                table
            })
            .collect();
    }
    if expressions {
        v["expressions"] = d.expressions.iter().map(|(name, expression)| json!({"name": name, "expression": expression})).collect();
    }
    v
}
