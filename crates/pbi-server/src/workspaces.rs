//! Workspace pages: a user's pages of pinned Power BI tiles, listed, pinned and drawn on their behalf.
//! Each handler checks the form's CSRF token, calls one operation of `ops` and renders the result; an action
//! that worked answers 303 with its message kept for the next page (Post/Redirect/Get: a reload repeats nothing).

use crate::AppState;
use crate::frame::Message;
use crate::ops::{self, CompanyId, Direction, TileRef, WorkspaceName};
use crate::pages::{form_expired, render};
use crate::problem::Problem;
use crate::session::{self, Flash, SignedIn};
use askama::Template;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use pbi_store::Session;
use serde::Deserialize;
use std::sync::Arc;
use uuid::Uuid;

/// After an action: its message on the page it leads to (303), or the problem as a page.
fn then_show(state: &AppState, session: &Session, result: Result<String, Problem>, to: &str) -> Response {
    match result {
        Ok(said) => session::done(state, session, to, Flash::message(Message::success(said))),
        Err(problem) => problem.page(),
    }
}

/// A pin's title, for the message after acting on it; "not found" when the workspace has no such pin.
async fn title_of(state: &AppState, session: &Session, id: Uuid, pin: Uuid) -> Result<String, Problem> {
    let (_, pins) = ops::workspace_with_pins(state, &session.user, id).await?;
    pins.into_iter().find(|p| p.id == pin).map(|p| p.title).ok_or(Problem::NotFound("pin"))
}

/// A list of titles as a person writes it: 'A', 'B' and 'C'.
fn titles(list: &[String]) -> String {
    let quoted: Vec<String> = list.iter().map(|t| format!("'{t}'")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

fn csrf_ok(session: &Session, sent: &str) -> bool {
    session::same(&session.csrf_token, sent)
}

#[derive(Template)]
#[template(path = "workspaces.html")]
struct WorkspacesPage<'a> {
    csrf: &'a str,
    workspaces: Vec<(Uuid, String)>,
}

pub async fn list(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    match ops::workspaces(&state, &session.user).await {
        Ok(list) => render(
            StatusCode::OK,
            &WorkspacesPage { csrf: &session.csrf_token, workspaces: list.into_iter().map(|w| (w.id, w.name)).collect() },
        ),
        Err(problem) => problem.page(),
    }
}

#[derive(Deserialize)]
pub struct CreateForm {
    csrf: String,
    name: String,
}

pub async fn create(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<CreateForm>) -> Response {
    if !csrf_ok(&session, &form.csrf) {
        return form_expired();
    }
    let created = async { ops::create_workspace(&state, &session.user, &WorkspaceName::parse(&form.name)?).await };
    match created.await {
        Ok(workspace) => then_show(
            &state,
            &session,
            Ok(format!("Workspace '{}' created: pin Power BI tiles to it.", workspace.name)),
            &format!("/workspaces/{}", workspace.id),
        ),
        Err(problem) => problem.page(),
    }
}

struct PinView {
    id: Uuid,
    title: String,
    tile_id: String,
    dashboard_id: String,
    embed_url: String,
    frame_url: String,
    /// The embed page's origin, where the page posts the user's token; or why the tile is not drawn.
    frame: Result<String, String>,
    row_span: i64,
    col_span: i64,
}

#[derive(Template)]
#[template(path = "workspace.html")]
struct WorkspacePage<'a> {
    csrf: &'a str,
    id: Uuid,
    name: String,
    company: String,
    pins: Vec<PinView>,
}

pub async fn show(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Path(id): Path<Uuid>) -> Response {
    let (workspace, pins) = match ops::workspace_with_pins(&state, &session.user, id).await {
        Ok(found) => found,
        Err(problem) => return problem.page(),
    };
    // Checked at every view, not only when pinned: the configuration may have changed since.
    let embed_origins = match ops::embed_origins(&state).await {
        Ok(origins) => origins,
        Err(problem) => return problem.page(),
    };
    let pins = pins
        .into_iter()
        .map(|p| PinView {
            frame: embed_origins.check(&p.embed_url).map(|origin| origin.ascii_serialization()).map_err(|why| why.drawing()),
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
    let mut response = render(
        StatusCode::OK,
        &WorkspacePage { csrf: &session.csrf_token, id, name: workspace.name, company: workspace.company_filter.unwrap_or_default(), pins },
    );
    // The one page that frames anything: its tiles, from the configured Power BI's embed host only.
    response
        .headers_mut()
        .insert(axum::http::header::CONTENT_SECURITY_POLICY, crate::assets::content_security_policy(&embed_origins.frame_src()));
    response
}

#[derive(Deserialize)]
pub struct RenameForm {
    csrf: String,
    name: String,
}

pub async fn rename(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    Form(form): Form<RenameForm>,
) -> Response {
    if !csrf_ok(&session, &form.csrf) {
        return form_expired();
    }
    let renamed = async {
        let name = WorkspaceName::parse(&form.name)?;
        ops::rename_workspace(&state, &session.user, id, &name).await?;
        Ok(format!("Renamed to '{}'.", name.as_str()))
    };
    then_show(&state, &session, renamed.await, &format!("/workspaces/{id}"))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !csrf_ok(&session, &form.csrf) {
        return form_expired();
    }
    let deleted = async {
        let workspace = ops::workspace(&state, &session.user, id).await?;
        ops::delete_workspace(&state, &session.user, id).await?;
        Ok(format!("Workspace '{}' deleted, with its pinned tiles.", workspace.name))
    };
    then_show(&state, &session, deleted.await, "/workspaces")
}

struct TileChoice {
    key: String,
    title: String,
    dashboard: String,
    group: String,
    size: String,
    /// Already on this workspace: shown, but not offered again.
    pinned: bool,
}

#[derive(Template)]
#[template(path = "pin.html")]
struct PinPage<'a> {
    csrf: &'a str,
    id: Uuid,
    name: String,
    tiles: Vec<TileChoice>,
    problem: Option<String>,
}

pub async fn pin_page(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Path(id): Path<Uuid>) -> Response {
    let (workspace, pins) = match ops::workspace_with_pins(&state, &session.user, id).await {
        Ok(found) => found,
        Err(problem) => return problem.page(),
    };
    let present: std::collections::HashSet<(String, String)> = pins.into_iter().map(|p| (p.dashboard_id, p.tile_id)).collect();
    let (tiles, problem) = match ops::available_tiles(&state, &session.user).await {
        Ok(tiles) => (tiles, None),
        Err(problem) => (Vec::new(), Some(problem.to_string())),
    };
    let tiles = tiles
        .into_iter()
        .map(|t| TileChoice {
            key: t.at.key(),
            title: t.title,
            dashboard: t.dashboard,
            group: t.group,
            size: format!("{}x{}", t.row_span, t.col_span),
            pinned: present.contains(&(t.at.dashboard.to_string(), t.at.tile.to_string())),
        })
        .collect();
    render(StatusCode::OK, &PinPage { csrf: &session.csrf_token, id, name: workspace.name, tiles, problem })
}

pub async fn pin(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let csrf = form.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.as_str()).unwrap_or_default();
    if !csrf_ok(&session, csrf) {
        return form_expired();
    }
    let pinned = async {
        let tiles = form.iter().filter(|(k, _)| k == "tile").map(|(_, key)| TileRef::parse_key(key)).collect::<Result<Vec<_>, _>>()?;
        let pinned: Vec<String> = ops::pin_tiles(&state, &session.user, id, &tiles).await?.into_iter().map(|p| p.title).collect();
        Ok(format!("Pinned {}.", titles(&pinned)))
    };
    then_show(&state, &session, pinned.await, &format!("/workspaces/{id}"))
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
    if !csrf_ok(&session, &form.csrf) {
        return form_expired();
    }
    let unpinned = async {
        let title = title_of(&state, &session, id, pin).await?;
        ops::unpin(&state, &session.user, id, pin).await?;
        Ok(format!("Unpinned '{title}'."))
    };
    then_show(&state, &session, unpinned.await, &format!("/workspaces/{id}"))
}

#[derive(Deserialize)]
pub struct MoveForm {
    csrf: String,
    direction: Direction,
}

pub async fn move_pin(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path((id, pin)): Path<(Uuid, Uuid)>,
    Form(form): Form<MoveForm>,
) -> Response {
    if !csrf_ok(&session, &form.csrf) {
        return form_expired();
    }
    let moved = async {
        let (title, moved) = ops::move_pin(&state, &session.user, id, pin, form.direction).await?;
        let (way, end) = if form.direction == Direction::Up { ("earlier", "first") } else { ("later", "last") };
        Ok(if moved { format!("Moved '{title}' {way}.") } else { format!("'{title}' is already {end}.") })
    };
    then_show(&state, &session, moved.await, &format!("/workspaces/{id}"))
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
    if !csrf_ok(&session, &form.csrf) {
        return form_expired();
    }
    let set = async {
        let company = CompanyId::parse(&form.company)?;
        ops::set_company_filter(&state, &session.user, id, company.as_ref()).await?;
        Ok(match &company {
            Some(c) => format!("Showing company {} only.", c.as_str()),
            None => "Showing all companies.".to_owned(),
        })
    };
    then_show(&state, &session, set.await, &format!("/workspaces/{id}"))
}
