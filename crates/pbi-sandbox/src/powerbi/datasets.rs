//! Datasets (semantic models): list, get, delete, push datasets, tables, rows and refreshes.

use super::Ctx;
use super::error::{PbiError, PbiResult};
use super::odata;
use crate::model::{Dataset, PushState, Refresh, Retention, World};
use crate::push;
use axum::body::Bytes;
use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use uuid::Uuid;

const READ_SCOPES: &[&str] = &["Dataset.Read.All", "Dataset.ReadWrite.All"];
const WRITE_SCOPES: &[&str] = &["Dataset.ReadWrite.All"];

type QueryPairs = Query<Vec<(String, String)>>;

fn iso(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

pub fn dataset_json(ctx: &Ctx, d: &Dataset) -> Value {
    let base = &ctx.shared.base_url;
    let group = if ctx.param("groupId").is_some() { d.workspace.to_string() } else { "me".to_owned() };
    json!({
        "id": d.id,
        "name": d.name,
        "webUrl": format!("{base}/groups/{group}/datasets/{}", d.id),
        "addRowsAPIEnabled": d.push.is_some(),
        "configuredBy": d.configured_by,
        "isRefreshable": d.push.is_none(),
        "isEffectiveIdentityRequired": false,
        "isEffectiveIdentityRolesRequired": false,
        "isOnPremGatewayRequired": false,
        "targetStorageMode": if d.push.is_some() { "Abf" } else { "PremiumFiles" },
        "createdDate": iso(d.created),
        "createReportEmbedURL": format!("{base}/reportEmbed?config=create&datasetId={}", d.id),
        "qnaEmbedURL": format!("{base}/qnaEmbed?datasetId={}", d.id),
        "upstreamDatasets": [],
        "users": [],
    })
}

fn find_dataset(ctx: &Ctx, world: &World, workspace: Uuid) -> PbiResult<Uuid> {
    let id = ctx.id("datasetId")?;
    world.datasets.get(&id).filter(|d| d.workspace == workspace).map(|d| d.id).ok_or_else(PbiError::not_found)
}

pub async fn list_datasets(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(READ_SCOPES)?;
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let values = world.datasets.values().filter(|d| d.workspace == workspace).map(|d| dataset_json(&ctx, d)).collect();
        Ok(odata::list(&ctx.shared.base_url, &ctx.scope_prefix(), "datasets", values))
    })();
    ctx.answer(result)
}

pub async fn get_dataset(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(READ_SCOPES)?;
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let id = find_dataset(&ctx, &world, workspace)?;
        Ok(odata::entity(&ctx.shared.base_url, &ctx.scope_prefix(), "datasets", dataset_json(&ctx, &world.datasets[&id])))
    })();
    ctx.answer(result)
}

pub async fn delete_dataset(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(WRITE_SCOPES)?;
        let mut world = ctx.world();
        let (workspace, role) = ctx.workspace(&mut world)?;
        let id = find_dataset(&ctx, &world, workspace)?;
        require_write(role)?;
        world.datasets.remove(&id);
        world.reports.retain(|_, r| r.dataset_id != Some(id));
        Ok(StatusCode::OK)
    })();
    ctx.answer(result)
}

fn require_write(role: crate::model::WorkspaceRole) -> PbiResult<()> {
    if role.can_write() {
        Ok(())
    } else {
        Err(PbiError::not_authorized(
            "The caller's workspace role (Viewer) does not allow changing content; Contributor or higher is needed.",
        ))
    }
}

fn json_body(body: &Bytes) -> PbiResult<Value> {
    serde_json::from_slice(body).map_err(|e| PbiError::bad_request(format!("The request body is not valid JSON: {e}.")))
}

pub async fn create_dataset(ctx: Ctx, Query(query): QueryPairs, body: Bytes) -> Response {
    let result = (|| {
        ctx.caller.require_scope(WRITE_SCOPES)?;
        let retention = match query.iter().find(|(k, _)| k == "defaultRetentionPolicy").map(|(_, v)| v.to_ascii_lowercase()) {
            None => Retention::None,
            Some(v) if v == "none" => Retention::None,
            Some(v) if v == "basicfifo" => Retention::BasicFifo,
            Some(v) => {
                return Err(PbiError::bad_request(format!("Invalid value '{v}' for 'defaultRetentionPolicy': use None or basicFIFO.")));
            }
        };
        let definition = push::parse_dataset(json_body(&body)?).map_err(PbiError::bad_request)?;
        let mut world = ctx.world();
        let (workspace, role) = ctx.workspace(&mut world)?;
        require_write(role)?;
        let configured_by = world.users.get(&ctx.caller.principal).map_or_else(|| ctx.caller.label.clone(), |u| u.upn.clone());
        let dataset = Dataset {
            id: Uuid::new_v4(),
            workspace,
            name: definition.name,
            description: String::new(),
            configured_by,
            created: ctx.shared.clock.now(),
            push: Some(PushState { default_mode: definition.default_mode, retention, recent_posts: Default::default() }),
            tables: definition.tables,
            relationships: definition.relationships,
            refreshes: Vec::new(),
            upstream_dataflows: Vec::new(),
            datasource_usages: Vec::new(),
            expressions: Vec::new(),
        };
        let mut body = dataset_json(&ctx, &dataset);
        body["defaultRetentionPolicy"] = json!(retention.wire_name());
        body["@odata.context"] = json!(format!("{}/v1.0/myorg/{}$metadata#datasets/$entity", ctx.shared.base_url, ctx.scope_prefix()));
        world.datasets.insert(dataset.id, dataset);
        Ok((StatusCode::CREATED, odata::json_response(body)))
    })();
    ctx.answer(result)
}

fn push_dataset_mut(world: &mut World, id: Uuid) -> PbiResult<&mut Dataset> {
    let dataset = world.datasets.get_mut(&id).ok_or_else(PbiError::not_found)?;
    if dataset.push.is_none() {
        return Err(PbiError::item_not_found(format!("Dataset {id} is not Push API dataset.")));
    }
    Ok(dataset)
}

fn table_index(dataset: &Dataset, name: &str) -> PbiResult<usize> {
    dataset
        .tables
        .iter()
        .position(|t| t.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| PbiError::item_not_found(format!("Table '{name}' was not found in dataset {}.", dataset.id)))
}

pub async fn list_tables(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(READ_SCOPES)?;
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let id = find_dataset(&ctx, &world, workspace)?;
        let dataset = push_dataset_mut(&mut world, id)?;
        let values = dataset.tables.iter().map(push::table_json).collect();
        Ok(odata::list(&ctx.shared.base_url, &ctx.scope_prefix(), &format!("datasets('{id}')/tables"), values))
    })();
    ctx.answer(result)
}

pub async fn put_table(ctx: Ctx, body: Bytes) -> Response {
    let result = (|| {
        ctx.caller.require_scope(WRITE_SCOPES)?;
        let mut new_table = push::parse_table(json_body(&body)?).map_err(PbiError::bad_request)?;
        let name = ctx.param("tableName").unwrap_or_default().to_owned();
        if !new_table.name.eq_ignore_ascii_case(&name) {
            return Err(PbiError::bad_request(format!(
                "The table name in the body ('{}') must match the table name in the URL ('{name}').",
                new_table.name
            )));
        }
        let mut world = ctx.world();
        let (workspace, role) = ctx.workspace(&mut world)?;
        let id = find_dataset(&ctx, &world, workspace)?;
        require_write(role)?;
        let dataset = push_dataset_mut(&mut world, id)?;
        let index = table_index(dataset, &name)?;
        push::migrate_rows(&dataset.tables[index], &mut new_table);
        let body = push::table_json(&new_table);
        dataset.tables[index] = new_table;
        Ok(odata::json_response(body))
    })();
    ctx.answer(result)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PostRowsRequest {
    rows: Vec<Value>,
}

pub async fn post_rows(ctx: Ctx, body: Bytes) -> Response {
    let result = (|| {
        ctx.caller.require_scope(WRITE_SCOPES)?;
        let request: PostRowsRequest =
            serde_json::from_slice(&body).map_err(|e| PbiError::bad_request(format!("The body must be {{\"rows\": [...]}}: {e}.")))?;
        if request.rows.len() > push::MAX_ROWS_PER_POST {
            return Err(PbiError::bad_request(format!(
                "{} rows were posted; at most {} rows are allowed per POST rows request.",
                request.rows.len(),
                push::MAX_ROWS_PER_POST
            )));
        }
        let name = ctx.param("tableName").unwrap_or_default().to_owned();
        let now = ctx.shared.clock.now();
        let limits = ctx.shared.push_limits();
        let mut world = ctx.world();
        let (workspace, role) = ctx.workspace(&mut world)?;
        let id = find_dataset(&ctx, &world, workspace)?;
        require_write(role)?;
        let dataset = push_dataset_mut(&mut world, id)?;
        let index = table_index(dataset, &name)?;
        let rows = push::parse_rows(&dataset.tables[index], &request.rows).map_err(PbiError::bad_request)?;
        let fifo = dataset.push.as_ref().is_some_and(|p| p.retention == Retention::BasicFifo);
        if !fifo && limits && dataset.tables[index].rows.len() + rows.len() > push::NONE_RETENTION_ROWS {
            return Err(PbiError::bad_request(format!(
                "Table '{name}' would hold more than {} rows, the most a push table without a retention policy keeps. Delete rows or use basicFIFO.",
                push::NONE_RETENTION_ROWS
            )));
        }
        if limits {
            let largest = dataset.tables.iter().map(|t| t.rows.len()).max().unwrap_or(0);
            if let Some(push_state) = dataset.push.as_mut() {
                push::admit_post(push_state, now, rows.len(), largest)
                    .map_err(|t| PbiError::Throttled { retry_after: t.retry_after, message: t.message })?;
            }
        }
        // A Streaming dataset has no database: rows go to live visuals only and are not kept.
        let streaming_only = dataset.push.as_ref().is_some_and(|p| p.default_mode == "Streaming");
        if !streaming_only {
            let table = &mut dataset.tables[index];
            table.rows.extend(rows);
            push::apply_retention(table, fifo);
        }
        Ok(StatusCode::OK)
    })();
    ctx.answer(result)
}

pub async fn delete_rows(ctx: Ctx) -> Response {
    let result = (|| {
        ctx.caller.require_scope(WRITE_SCOPES)?;
        let name = ctx.param("tableName").unwrap_or_default().to_owned();
        let mut world = ctx.world();
        let (workspace, role) = ctx.workspace(&mut world)?;
        let id = find_dataset(&ctx, &world, workspace)?;
        require_write(role)?;
        let dataset = push_dataset_mut(&mut world, id)?;
        let index = table_index(dataset, &name)?;
        dataset.tables[index].rows.clear();
        Ok(StatusCode::OK)
    })();
    ctx.answer(result)
}

/// How long an on-demand refresh of a sandbox dataset runs, in sandbox time.
const REFRESH_DURATION: time::Duration = time::Duration::minutes(1);

pub async fn refresh(ctx: Ctx, body: Bytes) -> Response {
    let result = (|| {
        ctx.caller.require_scope(WRITE_SCOPES)?;
        let request: Value = if body.is_empty() { json!({}) } else { json_body(&body)? };
        let Value::Object(fields) = &request else { return Err(PbiError::bad_request("The refresh request body is a JSON object.")) };
        if let Some(option) = fields.get("notifyOption").and_then(Value::as_str)
            && !["NoNotification", "MailOnFailure", "MailOnCompletion"].contains(&option)
        {
            return Err(PbiError::bad_request(format!(
                "notifyOption: '{option}' is not NoNotification, MailOnFailure or MailOnCompletion."
            )));
        }
        let enhanced = fields.keys().any(|k| k != "notifyOption");
        let now = ctx.shared.clock.now();
        let mut world = ctx.world();
        let (workspace, role) = ctx.workspace(&mut world)?;
        let id = find_dataset(&ctx, &world, workspace)?;
        require_write(role)?;
        let dataset = world.datasets.get_mut(&id).ok_or_else(PbiError::not_found)?;
        if dataset.push.is_some() {
            return Err(PbiError::bad_request(format!("Dataset {id} is a push dataset and cannot be refreshed: push rows instead.")));
        }
        let refreshes_today =
            dataset.refreshes.iter().filter(|r| r.start > now - time::Duration::days(1) && r.refresh_type != "Scheduled").count();
        if refreshes_today >= 8 {
            return Err(PbiError::Throttled {
                retry_after: 3600,
                message: "Dataset on shared capacity can be refreshed at most 8 times a day.".into(),
            });
        }
        let request_id = Uuid::new_v4();
        dataset.refreshes.insert(
            0,
            Refresh {
                request_id,
                refresh_type: if enhanced { "ViaEnhancedApi" } else { "ViaApi" }.into(),
                start: now,
                end: None,
                status: "Unknown".into(),
            },
        );
        let mut response = StatusCode::ACCEPTED.into_response();
        if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
            response.headers_mut().insert("x-ms-request-id", value.clone());
            response.headers_mut().insert("requestid", value);
        }
        if let Ok(location) =
            HeaderValue::from_str(&format!("{}/v1.0/myorg/{}datasets/{id}/refreshes/{request_id}", ctx.shared.base_url, ctx.scope_prefix()))
        {
            response.headers_mut().insert("location", location);
        }
        Ok(response)
    })();
    ctx.answer(result)
}

pub async fn refresh_history(ctx: Ctx, Query(query): QueryPairs) -> Response {
    let result = (|| {
        ctx.caller.require_scope(READ_SCOPES)?;
        let (top, skip) = odata::paging(&query)?;
        let now = ctx.shared.clock.now();
        let mut world = ctx.world();
        let (workspace, _) = ctx.workspace(&mut world)?;
        let id = find_dataset(&ctx, &world, workspace)?;
        let values: Vec<Value> = world.datasets[&id]
            .refreshes
            .iter()
            .map(|r| {
                let done = r.end.or_else(|| (r.start + REFRESH_DURATION <= now).then_some(r.start + REFRESH_DURATION));
                let mut value = json!({
                    "requestId": r.request_id,
                    "id": r.request_id.as_u128() as u32 as u64,
                    "refreshType": r.refresh_type,
                    "startTime": iso(r.start),
                    "status": if done.is_some() && r.status == "Unknown" { "Completed" } else { r.status.as_str() },
                });
                if let Some(end) = done {
                    value["endTime"] = json!(iso(end));
                }
                value
            })
            .collect();
        Ok(odata::list(
            &ctx.shared.base_url,
            &ctx.scope_prefix(),
            &format!("datasets('{id}')/refreshes"),
            odata::page(values, Some(top.unwrap_or(60)), skip),
        ))
    })();
    ctx.answer(result)
}
