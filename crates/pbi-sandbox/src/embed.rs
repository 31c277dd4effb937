//! The embed pages behind the `embedUrl`s the API returns (`/embed`, `/dashboardEmbed`, `/reportEmbed`) and
//! the data they draw. A page speaks the `powerbi-client` postMessage protocol: it answers `/tile/load`
//! (`/dashboard/load`, `/report/load`) and `/…/token` with 202, draws the visual from the dataset's rows,
//! and posts the `tileLoaded` / `loaded` / `rendered` events (or `error`) back to the host page.

use crate::model::{Cell, Dataset, EmbedResource, Table, Visual, VisualKind, World};
use crate::powerbi::{Caller, PbiError, PbiResult};
use crate::requestlog::CallerTag;
use crate::{Shared, ids};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use uuid::Uuid;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/embed", get(tile_page))
        .route("/dashboardEmbed", get(dashboard_page))
        .route("/reportEmbed", get(report_page))
        .route("/sandbox-embed/data", post(data))
}

async fn tile_page() -> Html<String> {
    page("tile")
}

async fn dashboard_page() -> Html<String> {
    page("dashboard")
}

async fn report_page() -> Html<String> {
    page("report")
}

fn page(kind: &str) -> Html<String> {
    Html(PAGE.replace("__KIND__", kind))
}

/// Who may look: a user's Entra token (`Bearer`, tokenType Aad) or an embed token (`EmbedToken`).
enum Viewer {
    Aad(Caller),
    Embed(Vec<EmbedResource>),
}

fn viewer(shared: &Shared, world: &World, headers: &HeaderMap) -> PbiResult<Viewer> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if let Some(token) = value.strip_prefix("EmbedToken ") {
        let grant = world.embed_tokens.get(token.trim()).ok_or_else(PbiError::invalid_token)?;
        if grant.expires <= shared.clock.now() {
            return Err(PbiError::token_expired());
        }
        return Ok(Viewer::Embed(grant.resources.clone()));
    }
    crate::powerbi::authenticate_regular(shared, world, headers).map(Viewer::Aad)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DataRequest {
    #[serde(default)]
    dashboard_id: Option<String>,
    #[serde(default)]
    tile_id: Option<String>,
    #[serde(default)]
    report_id: Option<String>,
    #[serde(default)]
    filters: Vec<Value>,
}

/// A `powerbi-models` basic filter: `{"target": {"table", "column"}, "operator": "In", "values": [...]}`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BasicFilter {
    table: String,
    column: String,
    values: BTreeSet<String>,
}

fn basic_filters(raw: &[Value]) -> PbiResult<Vec<BasicFilter>> {
    raw.iter()
        .enumerate()
        .map(|(i, f)| {
            let table = f["target"]["table"].as_str();
            let column = f["target"]["column"].as_str();
            let operator = f["operator"].as_str().unwrap_or("In");
            let values = f["values"].as_array();
            match (table, column, operator, values) {
                (Some(table), Some(column), "In", Some(values)) => Ok(BasicFilter { table: table.into(), column: column.into(), values: values.iter().map(value_text).collect() }),
                _ => Err(PbiError::bad_request(format!("filters[{i}]: the sandbox applies basic filters: {{\"target\": {{\"table\", \"column\"}}, \"operator\": \"In\", \"values\": [...]}}."))),
            }
        })
        .collect()
}

fn value_text(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_owned)
}

async fn data(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let world = shared.world();
    let result = (|| {
        let viewer = viewer(&shared, &world, &headers)?;
        let request: DataRequest =
            serde_json::from_slice(&body).map_err(|e| PbiError::bad_request(format!("Not an embed data request: {e}.")))?;
        let filters = basic_filters(&request.filters)?;
        let guid = |v: &Option<String>, name: &str| {
            v.as_deref().map(|s| ids::parse_guid(s).ok_or_else(|| PbiError::bad_request(format!("{name} is not a GUID.")))).transpose()
        };
        let (dashboard, tile, report) =
            (guid(&request.dashboard_id, "dashboardId")?, guid(&request.tile_id, "tileId")?, guid(&request.report_id, "reportId")?);
        let label = match &viewer {
            Viewer::Aad(caller) => caller.label.clone(),
            Viewer::Embed(_) => "embed token".to_owned(),
        };
        let body = match (dashboard, tile, report) {
            (Some(d), Some(t), _) => tile_data(&world, &viewer, d, t, &filters)?,
            (Some(d), None, _) => dashboard_data(&world, &viewer, d, &filters)?,
            (None, _, Some(r)) => report_data(&world, &viewer, r, &filters)?,
            _ => return Err(PbiError::bad_request("Name a dashboardId (and tileId) or a reportId.")),
        };
        Ok((label, body))
    })();
    match result {
        Ok((label, body)) => {
            let mut response = axum::Json(body).into_response();
            response.extensions_mut().insert(CallerTag(label));
            response
        }
        Err(e) => e.into_response(),
    }
}

fn can_see_workspace(world: &World, viewer: &Viewer, workspace: Uuid, scopes: &[&str]) -> bool {
    match viewer {
        Viewer::Aad(caller) => {
            caller.require_scope(scopes).is_ok() && world.workspaces.get(&workspace).is_some_and(|w| caller.role_in(world, w).is_some())
        }
        Viewer::Embed(_) => false,
    }
}

fn embed_allows(viewer: &Viewer, wanted: impl Fn(&EmbedResource) -> bool) -> bool {
    matches!(viewer, Viewer::Embed(resources) if resources.iter().any(wanted))
}

const DASHBOARD_SCOPES: &[&str] = &["Dashboard.Read.All", "Dashboard.ReadWrite.All"];

fn tile_data(world: &World, viewer: &Viewer, dashboard: Uuid, tile: Uuid, filters: &[BasicFilter]) -> PbiResult<Value> {
    let d = world.dashboards.get(&dashboard).ok_or_else(PbiError::not_found)?;
    let allowed = can_see_workspace(world, viewer, d.workspace, DASHBOARD_SCOPES)
        || embed_allows(viewer, |r| *r == EmbedResource::Dashboard(dashboard) || *r == EmbedResource::Tile { dashboard, tile });
    if !allowed {
        return Err(PbiError::not_found());
    }
    let t = d.tiles.iter().find(|t| t.id == tile).ok_or_else(PbiError::not_found)?;
    let dataset = t.dataset_id.and_then(|id| world.datasets.get(&id));
    Ok(json!({"kind": "tile", "title": t.title, "visuals": [visual_data(dataset, &t.title, &t.visual, t.row_span, t.col_span, filters)]}))
}

fn dashboard_data(world: &World, viewer: &Viewer, dashboard: Uuid, filters: &[BasicFilter]) -> PbiResult<Value> {
    let d = world.dashboards.get(&dashboard).ok_or_else(PbiError::not_found)?;
    if !(can_see_workspace(world, viewer, d.workspace, DASHBOARD_SCOPES)
        || embed_allows(viewer, |r| *r == EmbedResource::Dashboard(dashboard)))
    {
        return Err(PbiError::not_found());
    }
    let visuals: Vec<Value> = d
        .tiles
        .iter()
        .map(|t| visual_data(t.dataset_id.and_then(|id| world.datasets.get(&id)), &t.title, &t.visual, t.row_span, t.col_span, filters))
        .collect();
    Ok(json!({"kind": "dashboard", "title": d.display_name, "visuals": visuals}))
}

/// A report page: for each table of its dataset, a card of its first numeric column and a table of rows.
fn report_data(world: &World, viewer: &Viewer, report: Uuid, filters: &[BasicFilter]) -> PbiResult<Value> {
    let r = world.reports.get(&report).ok_or_else(PbiError::not_found)?;
    if !(can_see_workspace(world, viewer, r.workspace, &["Report.Read.All", "Report.ReadWrite.All"])
        || embed_allows(viewer, |x| *x == EmbedResource::Report(report)))
    {
        return Err(PbiError::not_found());
    }
    let dataset = r.dataset_id.and_then(|id| world.datasets.get(&id));
    let mut visuals = Vec::new();
    for table in dataset.map(|d| d.tables.as_slice()).unwrap_or_default() {
        let numeric = table.columns.iter().find(|c| {
            matches!(c.data_type, crate::model::DataType::Double | crate::model::DataType::Int64 | crate::model::DataType::Decimal)
        });
        if let Some(column) = numeric {
            let card = Visual { kind: VisualKind::Card, table: table.name.clone(), value: Some(column.name.clone()), category: None };
            visuals.push(visual_data(dataset, &format!("{} ({})", column.name, table.name), &card, 1, 1, filters));
        }
        let rows = Visual { kind: VisualKind::Table, table: table.name.clone(), value: None, category: None };
        visuals.push(visual_data(dataset, &table.name, &rows, 2, 3, filters));
    }
    Ok(json!({"kind": "report", "title": r.name, "visuals": visuals}))
}

fn cell_text(cell: &Cell) -> String {
    match cell {
        Cell::Null => String::new(),
        other => value_text(&other.to_json()),
    }
}

fn cell_number(cell: &Cell) -> Option<f64> {
    match cell {
        Cell::Int(i) => Some(*i as f64),
        Cell::Number(n) => Some(*n),
        _ => None,
    }
}

/// The rows of `table` that pass every filter: directly on its columns, or through a relationship.
fn filtered_rows<'d>(dataset: &'d Dataset, table: &'d Table, filters: &[BasicFilter]) -> Vec<&'d Vec<Cell>> {
    let column_index = |t: &Table, name: &str| t.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name));
    let mut allowed: Vec<(usize, BTreeSet<String>)> = Vec::new();
    for filter in filters {
        if filter.table.eq_ignore_ascii_case(&table.name) {
            if let Some(i) = column_index(table, &filter.column) {
                allowed.push((i, filter.values.clone()));
            }
            continue;
        }
        for rel in dataset
            .relationships
            .iter()
            .filter(|r| r.from_table.eq_ignore_ascii_case(&table.name) && r.to_table.eq_ignore_ascii_case(&filter.table))
        {
            let (Some(target), Some(from)) =
                (dataset.tables.iter().find(|t| t.name.eq_ignore_ascii_case(&filter.table)), column_index(table, &rel.from_column))
            else {
                continue;
            };
            let (Some(filter_col), Some(key_col)) = (column_index(target, &filter.column), column_index(target, &rel.to_column)) else {
                continue;
            };
            let keys = target
                .rows
                .iter()
                .filter(|row| row.get(filter_col).is_some_and(|c| filter.values.contains(&cell_text(c))))
                .filter_map(|row| row.get(key_col).map(cell_text))
                .collect();
            allowed.push((from, keys));
        }
    }
    table.rows.iter().filter(|row| allowed.iter().all(|(i, values)| row.get(*i).is_some_and(|c| values.contains(&cell_text(c))))).collect()
}

pub(crate) fn visual_data(
    dataset: Option<&Dataset>,
    title: &str,
    visual: &Visual,
    row_span: u32,
    col_span: u32,
    filters: &[BasicFilter],
) -> Value {
    let base = json!({"title": title, "kind": visual.kind, "rowSpan": row_span, "colSpan": col_span});
    let Some((dataset, table)) = dataset.and_then(|d| d.tables.iter().find(|t| t.name.eq_ignore_ascii_case(&visual.table)).map(|t| (d, t)))
    else {
        return json!({"title": title, "kind": "card", "value": null, "error": "This tile's data is not available in the sandbox."});
    };
    let rows = filtered_rows(dataset, table, filters);
    let index = |name: &Option<String>| name.as_deref().and_then(|n| table.columns.iter().position(|c| c.name.eq_ignore_ascii_case(n)));
    let measure = |row: &Vec<Cell>| match index(&visual.value) {
        Some(i) => row.get(i).and_then(cell_number).unwrap_or(0.0),
        None => 1.0,
    };
    let mut out = base;
    match visual.kind {
        // A card over no rows is blank in Power BI ("(Blank)"), not zero; and a float sum of nothing is -0.0.
        VisualKind::Card => out["value"] = if rows.is_empty() { Value::Null } else { json!(rows.iter().map(|r| measure(r)).sum::<f64>()) },
        VisualKind::Bar | VisualKind::Line => {
            let category = index(&visual.category);
            let is_date = category.is_some_and(|i| table.columns[i].data_type == crate::model::DataType::DateTime);
            let mut groups: BTreeMap<String, f64> = BTreeMap::new();
            for row in &rows {
                let mut label = category.and_then(|i| row.get(i)).map(cell_text).unwrap_or_default();
                if is_date {
                    label.truncate(7);
                }
                *groups.entry(label).or_default() += measure(row);
            }
            out["points"] = groups.into_iter().map(|(label, value)| json!({"label": label, "value": value})).collect();
        }
        VisualKind::Table => {
            out["columns"] = table.columns.iter().map(|c| json!(c.name)).collect();
            let start = rows.len().saturating_sub(10);
            out["rows"] = rows[start..].iter().map(|r| r.iter().map(Cell::to_json).collect::<Value>()).collect();
        }
    }
    out
}

const PAGE: &str = r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Power BI (sandbox)</title>
<style>
html,body{margin:0;height:100%;font-family:"Segoe UI",system-ui,sans-serif;background:#fff;color:#252423}
#root{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));grid-auto-rows:150px;gap:8px;padding:8px;box-sizing:border-box;height:100%}
#root.single{display:block;padding:0}
.visual{border:1px solid #e1dfdd;padding:8px 10px;box-sizing:border-box;overflow:hidden;height:100%}
.visual h2{font-size:13px;font-weight:600;margin:0 0 6px}
.card{font-size:34px;font-weight:300;margin-top:14px}
table{border-collapse:collapse;font-size:11px;width:100%} td,th{border-bottom:1px solid #edebe9;padding:2px 4px;text-align:left}
.status{color:#605e5c;font-size:12px;padding:12px}.error{color:#a4262c}
</style></head>
<body><div id="root" class="status" data-state="waiting">Waiting for the host page to send the embed configuration (powerbi-client: /__KIND__/load)...</div>
<script>
"use strict";
const KIND = "__KIND__";
const params = new URLSearchParams(location.search);
const uid = params.get("uid") || "";
let config = null;
let token = null;

function eventPath(name) {
  if (KIND === "tile") return "/tile/" + uid + "/events/" + name;
  if (KIND === "dashboard") return "/dashboards/" + uid + "/events/" + name;
  return "/reports/" + uid + "/events/" + name;
}
function emit(name, value) {
  const id = Math.random().toString(36).slice(2);
  window.parent.postMessage({ method: "POST", url: eventPath(name), headers: {}, body: value || {}, windowPostMessageProxy: { id } }, "*");
}
function reply(event, statusCode, body) {
  event.source.postMessage({ statusCode, headers: {}, body: body || {}, windowPostMessageProxy: event.data.windowPostMessageProxy }, "*");
}
window.addEventListener("message", (event) => {
  const m = event.data;
  if (!m || typeof m !== "object" || typeof m.url !== "string" || !m.method) return;
  const path = m.url.split("?")[0];
  if (path === "/" + KIND + "/load" || path === "/report/prepare") {
    config = m.body || {};
    token = config.accessToken;
    reply(event, 202);
    render();
  } else if (path === "/" + KIND + "/token") {
    token = m.body;
    reply(event, 202);
  } else if (path === "/" + KIND + "/refresh" || path === "/report/refresh") {
    reply(event, 202);
    render();
  } else {
    reply(event, 501, { message: "The pbi-bridge sandbox does not emulate " + m.method + " " + path });
  }
});

// The data of what this page draws, as the host's config (or the URL) names it.
function requestData() {
  const embedToken = config.tokenType === 1 || config.tokenType === "Embed";
  const body = {
    dashboardId: config.dashboardId || params.get("dashboardId"),
    tileId: KIND === "tile" ? (config.id || params.get("tileId")) : null,
    reportId: KIND === "report" ? (config.id || params.get("reportId")) : null,
    filters: config.filters || []
  };
  return fetch("/sandbox-embed/data", { method: "POST", headers: { "Content-Type": "application/json", "Authorization": (embedToken ? "EmbedToken " : "Bearer ") + token }, body: JSON.stringify(body) });
}

async function render() {
  let response;
  try {
    response = await requestData();
  } catch (e) {
    return fail(0, { error: { code: "NetworkError", message: String(e) } });
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) return fail(response.status, data);
  show(data);
  emit(KIND === "tile" ? "tileLoaded" : "loaded", {});
  emit("rendered", {});
  watch();
}

let shown = "";
function show(data) {
  const root = document.getElementById("root");
  shown = JSON.stringify(data);
  root.className = data.kind === "tile" ? "single" : "";
  root.dataset.state = "rendered";
  root.innerHTML = "";
  for (const v of data.visuals) root.appendChild(draw(v, data.kind === "tile"));
}

// Power BI redraws a tile on a push dataset each time rows are pushed; the sandbox asks every two seconds and
// redraws when the data changed (root.dataset.version counts the redraws, for tests to wait on).
let watching = null;
function watch() {
  if (watching || KIND !== "tile") return;
  watching = setInterval(async () => {
    try {
      const response = await requestData();
      if (!response.ok) return;
      const data = await response.json();
      if (JSON.stringify(data) === shown) return;
      show(data);
      const root = document.getElementById("root");
      root.dataset.version = String(Number(root.dataset.version || "0") + 1);
    } catch (e) { /* the next tick tries again */ }
  }, 2000);
}

function fail(status, data) {
  const root = document.getElementById("root");
  const code = (data.error && data.error.code) || (status === 403 ? "TokenExpired" : "Error");
  const message = (data.error && data.error.message) || ("HTTP " + status);
  root.className = "status error";
  root.dataset.state = "error";
  root.textContent = "This content isn't available: " + code + " - " + message;
  emit("error", { message: code, detailedMessage: message, errorCode: String(status), level: 6 });
}

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function svg(tag, attrs) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
function fmt(n) { return Number(n).toLocaleString("en-US", { maximumFractionDigits: 2 }); }

function draw(v, single) {
  const box = el("div", { class: "visual", "data-kind": v.kind, "data-title": v.title });
  if (!single) { box.style.gridRow = "span " + (v.rowSpan || 1); box.style.gridColumn = "span " + (v.colSpan || 1); }
  box.appendChild(el("h2", {}, v.title));
  if (v.error) { box.appendChild(el("div", { class: "status error" }, v.error)); return box; }
  if (v.kind === "card") box.appendChild(v.value === null ? el("div", { class: "card blank", "data-value": "" }, "(Blank)") : el("div", { class: "card", "data-value": v.value }, fmt(v.value)));
  if (v.kind === "bar" || v.kind === "line") box.appendChild(chart(v));
  if (v.kind === "table") {
    const t = el("table");
    const head = el("tr");
    for (const c of v.columns) head.appendChild(el("th", {}, c));
    t.appendChild(head);
    for (const r of v.rows) { const tr = el("tr"); for (const c of r) tr.appendChild(el("td", {}, c === null ? "" : String(c))); t.appendChild(tr); }
    box.appendChild(t);
  }
  return box;
}

function chart(v) {
  const w = 300, h = 110, pad = 18;
  const s = svg("svg", { viewBox: "0 0 " + w + " " + (h + pad), width: "100%", height: "85%", preserveAspectRatio: "none" });
  const max = Math.max(1, ...v.points.map(p => p.value));
  const step = (w - 10) / Math.max(1, v.points.length);
  if (v.kind === "bar") {
    v.points.forEach((p, i) => {
      const bh = (p.value / max) * (h - 10);
      s.appendChild(svg("rect", { x: 5 + i * step + step * 0.15, y: h - bh, width: step * 0.7, height: bh, fill: "#118dff", "data-label": p.label, "data-value": p.value }));
      const t = svg("text", { x: 5 + i * step + step / 2, y: h + 12, "font-size": 9, "text-anchor": "middle" }); t.textContent = p.label; s.appendChild(t);
    });
  } else {
    const pts = v.points.map((p, i) => (5 + i * step + step / 2) + "," + (h - (p.value / max) * (h - 10))).join(" ");
    s.appendChild(svg("polyline", { points: pts, fill: "none", stroke: "#118dff", "stroke-width": 2, "data-points": v.points.length }));
  }
  return s;
}
</script></body></html>
"##;
