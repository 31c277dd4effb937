//! The Power BI service's own pages for what a person does in the browser and no API can, at the `webUrl`s
//! the API returns: a dataset's page, with *Create report*; a report's page, where they build a visual on the
//! report's dataset and pin it to a dashboard (what the `PinVisual` control command does for scripts); and a
//! dashboard's page, its tiles drawn from their datasets' rows as they are now.
//! The person is whoever is signed in to the sandbox's Entra ID in this browser (its session cookie); a
//! visitor who is not signs in on the page. Plain forms, no script.

use crate::Shared;
use crate::control::{origin_of, pin_visual};
use crate::entra::authorize::{session_cookie, session_user};
use crate::model::{Report, Tile, Visual, VisualKind, World};
use crate::pages::{esc, service_page};
use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/groups/{group}/datasets/{datasetId}", get(dataset_page).post(create_report))
        .route("/groups/{group}/reports/{reportId}", get(report_page).post(pin))
        .route("/groups/{group}/dashboards/{dashboardId}", get(dashboard_page))
        .route("/sandbox-web/sign-in", post(sign_in))
}

/// `me` for My workspace, else the workspace's id, as `webUrl`s name it.
fn group_segment(world: &World, workspace: Uuid) -> String {
    if world.workspaces.get(&workspace).is_some_and(|w| w.personal_owner.is_some()) { "me".to_owned() } else { workspace.to_string() }
}

/// A form posted from another site's page is refused, as the service's own forms are.
fn cross_site(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN).map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned())?;
    (!origin.eq_ignore_ascii_case(&origin_of(&shared.base_url))).then(|| {
        service_page(StatusCode::FORBIDDEN, "Not allowed", "<p>This form can only be sent from the Power BI pages themselves.</p>")
    })
}

fn not_found(what: &str) -> Response {
    service_page(StatusCode::NOT_FOUND, "Not found", &format!("<p id=\"not-found\">There is no such {what}, or it was deleted.</p>"))
}

/// The sign-in form shown instead of a page to a visitor who is not signed in; it comes back to `back`.
fn sign_in_form(back: &str, error: Option<&str>) -> Response {
    let error = error.map_or_else(String::new, |e| format!(r#"<p class="error" id="error">{}</p>"#, esc(e)));
    let body = format!(
        r#"<p>Sign in to Power BI to continue.</p>{error}
<form method="POST" action="/sandbox-web/sign-in"><input type="hidden" name="back" value="{back}">
<label for="login">Email</label><input type="email" id="login" name="login" autocomplete="username" required>
<label for="passwd">Password</label><input type="password" id="passwd" name="passwd" autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button>
</form>"#,
        back = esc(back)
    );
    service_page(if error.is_empty() { StatusCode::OK } else { StatusCode::UNAUTHORIZED }, "Sign in", &body)
}

#[derive(Deserialize)]
pub struct SignInForm {
    login: String,
    passwd: String,
    back: String,
}

async fn sign_in(State(shared): State<Arc<Shared>>, headers: HeaderMap, Form(form): Form<SignInForm>) -> Response {
    if let Some(refused) = cross_site(&shared, &headers) {
        return refused;
    }
    // Back to one of these pages only: never to another site.
    let back = if form.back.starts_with("/groups/") && !form.back.contains("//") { form.back.clone() } else { "/".to_owned() };
    let mut world = shared.world();
    let Some(user) = world.user_by_upn(&form.login).filter(|u| u.password == form.passwd).map(|u| u.id) else {
        return sign_in_form(&back, Some("Your account or password is incorrect."));
    };
    let cookie = session_cookie(&shared, &mut world, user);
    let mut response = Redirect::to(&back).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

async fn dataset_page(State(shared): State<Arc<Shared>>, Path((group, id)): Path<(String, Uuid)>, headers: HeaderMap) -> Response {
    let world = shared.world();
    let here = format!("/groups/{group}/datasets/{id}");
    let Some(person) = session_user(&world, &headers) else { return sign_in_form(&here, None) };
    let Some(dataset) = world.datasets.get(&id) else { return not_found("dataset") };
    let Some(workspace) = world.workspaces.get(&dataset.workspace).filter(|w| world.role_in(w, person).is_some()) else {
        return not_found("dataset");
    };
    let tables: String = dataset
        .tables
        .iter()
        .map(|t| {
            let columns: Vec<String> = t.columns.iter().map(|c| format!("<code>{}</code>", esc(&c.name))).collect();
            format!("<li><b>{}</b>: {}</li>", esc(&t.name), columns.join(", "))
        })
        .collect();
    let body = format!(
        r#"<p>Dataset in <b id="workspace">{workspace}</b>.</p><ul id="tables">{tables}</ul>
<form method="POST" action="{here}"><button type="submit" id="create-report">Create report</button></form>"#,
        workspace = esc(&workspace.name),
        here = esc(&here)
    );
    service_page(StatusCode::OK, &dataset.name, &body)
}

/// *Create report*: an empty report on the dataset, in its workspace, named after it; then its page.
async fn create_report(State(shared): State<Arc<Shared>>, Path((group, id)): Path<(String, Uuid)>, headers: HeaderMap) -> Response {
    if let Some(refused) = cross_site(&shared, &headers) {
        return refused;
    }
    let mut world = shared.world();
    let Some(person) = session_user(&world, &headers) else { return sign_in_form(&format!("/groups/{group}/datasets/{id}"), None) };
    let Some(dataset) = world.datasets.get(&id).cloned() else { return not_found("dataset") };
    let Some(role) = world.workspaces.get(&dataset.workspace).and_then(|w| world.role_in(w, person)) else {
        return not_found("dataset");
    };
    if !role.can_write() {
        let body = "<p id=\"refused\">Creating a report in this workspace needs Contributor access or above.</p>";
        return service_page(StatusCode::FORBIDDEN, "Not allowed", body);
    }
    let now = shared.clock.now();
    let report = Uuid::new_v4();
    let new = Report {
        id: report,
        workspace: dataset.workspace,
        name: dataset.name.clone(),
        description: String::new(),
        dataset_id: Some(id),
        paginated: false,
        created: now,
        modified: now,
    };
    world.reports.insert(report, new);
    Redirect::to(&format!("/groups/{}/reports/{report}", group_segment(&world, dataset.workspace))).into_response()
}

#[derive(Deserialize)]
pub struct Shown {
    #[serde(default)]
    pinned: Option<String>,
}

fn options(choices: &[(String, String)], selected: &str) -> String {
    choices
        .iter()
        .map(|(value, label)| {
            let chosen = if value == selected { " selected" } else { "" };
            format!(r#"<option value="{}"{chosen}>{}</option>"#, esc(value), esc(label))
        })
        .collect()
}

async fn report_page(
    State(shared): State<Arc<Shared>>,
    Path((group, id)): Path<(String, Uuid)>,
    Query(shown): Query<Shown>,
    headers: HeaderMap,
) -> Response {
    let world = shared.world();
    let here = format!("/groups/{group}/reports/{id}");
    let Some(person) = session_user(&world, &headers) else { return sign_in_form(&here, None) };
    let Some(report) = world.reports.get(&id) else { return not_found("report") };
    if world.workspaces.get(&report.workspace).and_then(|w| world.role_in(w, person)).is_none() {
        return not_found("report");
    }
    let Some(dataset) = report.dataset_id.and_then(|d| world.datasets.get(&d)) else {
        return service_page(
            StatusCode::OK,
            &report.name,
            "<p id=\"no-dataset\">This report reads no dataset: there is nothing to build a visual on.</p>",
        );
    };
    let tables: Vec<(String, String)> = dataset.tables.iter().map(|t| (t.name.clone(), t.name.clone())).collect();
    let mut columns: Vec<(String, String)> = vec![(String::new(), "(none)".to_owned())];
    columns.extend(dataset.tables.iter().flat_map(|t| t.columns.iter().map(|c| (c.name.clone(), format!("{}[{}]", t.name, c.name)))));
    let mut dashboards: Vec<(String, String)> = world
        .dashboards
        .values()
        .filter_map(|d| {
            let workspace = world.workspaces.get(&d.workspace)?;
            world
                .role_in(workspace, person)
                .is_some_and(crate::model::WorkspaceRole::can_write)
                .then(|| (d.id.to_string(), format!("{} ({})", d.display_name, workspace.name)))
        })
        .collect();
    dashboards.sort_by(|a, b| a.1.cmp(&b.1));
    let kinds: Vec<(String, String)> = [("card", "Card"), ("bar", "Clustered bar chart"), ("line", "Line chart"), ("table", "Table")]
        .map(|(v, l)| (v.into(), l.into()))
        .into();
    let pinned = shown.pinned.map_or_else(String::new, |to| format!(r#"<p class="ok" id="pinned">Pinned to {}.</p>"#, esc(&to)));
    let body = format!(
        r#"{pinned}<p>Report on the dataset <b id="dataset">{dataset}</b>. Build a visual, then pin it to a dashboard.</p>
<form method="POST" action="{here}">
<label for="visual">Visual</label><select id="visual" name="visual">{kinds}</select>
<label for="table">Table</label><select id="table" name="table">{tables}</select>
<label for="value">Value (summed; none counts the rows)</label><select id="value" name="value">{values}</select>
<label for="category">Axis or category (bar and line charts)</label><select id="category" name="category">{categories}</select>
<label for="title">Title</label><input type="text" id="title" name="title" value="{title}">
<label for="dashboard">Pin to dashboard</label><select id="dashboard" name="dashboard" required>{dashboards}</select>
<button type="submit" id="pin-visual">Pin visual</button>
</form>"#,
        dataset = esc(&dataset.name),
        here = esc(&here),
        kinds = options(&kinds, "card"),
        tables = options(&tables, ""),
        values = options(&columns, ""),
        categories = options(&columns, ""),
        title = esc(&report.name),
        dashboards = options(&dashboards, ""),
    );
    service_page(StatusCode::OK, &report.name, &body)
}

#[derive(Deserialize)]
pub struct PinForm {
    visual: String,
    table: String,
    #[serde(default)]
    value: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    title: String,
    dashboard: String,
}

/// *Pin visual*: the visual built on the form, pinned as the person; back to the report, saying where.
async fn pin(
    State(shared): State<Arc<Shared>>,
    Path((group, id)): Path<(String, Uuid)>,
    headers: HeaderMap,
    Form(form): Form<PinForm>,
) -> Response {
    if let Some(refused) = cross_site(&shared, &headers) {
        return refused;
    }
    let here = format!("/groups/{group}/reports/{id}");
    let mut world = shared.world();
    let Some(person) = session_user(&world, &headers) else { return sign_in_form(&here, None) };
    let refused = |message: String| {
        service_page(
            StatusCode::BAD_REQUEST,
            "Could not pin",
            &format!(r#"<p class="error" id="error">{}</p><p><a href="{}">Back to the report</a></p>"#, esc(&message), esc(&here)),
        )
    };
    let Ok(kind) = serde_json::from_value::<VisualKind>(serde_json::Value::String(form.visual.clone())) else {
        return refused(format!("'{}' is not a visual this page builds.", form.visual));
    };
    let Ok(dashboard) = Uuid::parse_str(&form.dashboard) else { return refused("Choose a dashboard.".into()) };
    let optional = |text: &str| (!text.trim().is_empty()).then(|| text.trim().to_owned());
    let visual = Visual { kind, table: form.table.trim().to_owned(), value: optional(&form.value), category: optional(&form.category) };
    let title = optional(&form.title).unwrap_or_else(|| form.table.clone());
    let tile = Tile { id: Uuid::new_v4(), title, report_id: None, dataset_id: None, row_span: 2, col_span: 2, visual };
    if let Err(error) = pin_visual(&mut world, person, id, dashboard, tile) {
        return refused(error.to_string());
    }
    let name = world.dashboards.get(&dashboard).map(|d| d.display_name.clone()).unwrap_or_default();
    let to = format!("{here}?pinned={}", form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>());
    Redirect::to(&to).into_response()
}

/// One tile as the dashboard page draws it, from `embed::visual_data`'s description.
fn drawn_tile(visual: &serde_json::Value) -> String {
    let title = visual["title"].as_str().unwrap_or_default();
    let number = |v: &serde_json::Value| v.as_f64().map_or_else(|| "(Blank)".to_owned(), |n| format!("{n}"));
    let body = if let Some(error) = visual["error"].as_str() {
        format!(r#"<p class="error">{}</p>"#, esc(error))
    } else if let Some(points) = visual["points"].as_array() {
        let items: String = points
            .iter()
            .map(|p| {
                let label = p["label"].as_str().unwrap_or_default();
                format!(r#"<li data-label="{l}" data-value="{v}">{l}: {v}</li>"#, l = esc(label), v = number(&p["value"]))
            })
            .collect();
        format!(r#"<ul class="points">{items}</ul>"#)
    } else if let Some(rows) = visual["rows"].as_array() {
        let head: String = visual["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| format!("<th>{}</th>", esc(c.as_str().unwrap_or_default())))
            .collect();
        let cell = |c: &serde_json::Value| c.as_str().map_or_else(|| c.to_string(), str::to_owned);
        let body: String = rows
            .iter()
            .map(|r| {
                format!(
                    "<tr>{}</tr>",
                    r.as_array().into_iter().flatten().map(|c| format!("<td>{}</td>", esc(&cell(c)))).collect::<String>()
                )
            })
            .collect();
        format!("<table><tr>{head}</tr>{body}</table>")
    } else {
        format!(r#"<p class="card" data-value="{v}">{v}</p>"#, v = number(&visual["value"]))
    };
    format!(r#"<section class="tile" data-title="{t}"><h2>{t}</h2>{body}</section>"#, t = esc(title))
}

async fn dashboard_page(State(shared): State<Arc<Shared>>, Path((group, id)): Path<(String, Uuid)>, headers: HeaderMap) -> Response {
    let world = shared.world();
    let here = format!("/groups/{group}/dashboards/{id}");
    let Some(person) = session_user(&world, &headers) else { return sign_in_form(&here, None) };
    let Some(dashboard) = world.dashboards.get(&id) else { return not_found("dashboard") };
    if world.workspaces.get(&dashboard.workspace).and_then(|w| world.role_in(w, person)).is_none() {
        return not_found("dashboard");
    }
    let tiles: String = dashboard
        .tiles
        .iter()
        .map(|t| {
            let dataset = t.dataset_id.and_then(|d| world.datasets.get(&d));
            drawn_tile(&crate::embed::visual_data(dataset, &t.title, &t.visual, t.row_span, t.col_span, &[]))
        })
        .collect();
    let body = if tiles.is_empty() {
        "<p id=\"no-tiles\">This dashboard has no tiles yet.</p>".to_owned()
    } else {
        format!(r#"<div id="tiles">{tiles}</div>"#)
    };
    service_page(StatusCode::OK, &dashboard.display_name, &body)
}
