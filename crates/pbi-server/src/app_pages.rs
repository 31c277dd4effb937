//! The administrators' Apps pages (seed 002): the apps, making one (its secret key shown once, on the page the
//! answer leads to), and an app's page with its keys and a rotation. The same operations as the API
//! (`crate::apps`); a refused form comes back with what was typed and why.

use crate::AppState;
use crate::apps as ops;
use crate::frame::{Message, When, flash_token, when_html};
use crate::pages::{form_expired, render};
use crate::problem::Problem;
use crate::session::{self, Flash, SignedIn};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use pbi_connect::NewSecretKey;
use pbi_connect::app::AppSpec;
use pbi_store::{App, Session};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

#[derive(Default, Deserialize)]
pub struct AppForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    registration: String,
    /// One origin a line.
    #[serde(default)]
    origins: String,
}

struct AppRow {
    id: Uuid,
    name: String,
    registration: String,
    origins: String,
}

#[derive(Template)]
#[template(path = "admin_apps.html")]
struct AppsPage<'a> {
    csrf: &'a str,
    apps: Vec<AppRow>,
    /// (id, name) of each registration an app may use.
    registrations: Vec<(String, String)>,
    form: AppForm,
    problem: Option<String>,
}

struct KeyRow {
    hint: String,
    created: String,
    /// Empty for the key in use; else when it stops (or stopped) working, as a `<time>`.
    stops: String,
    in_use: bool,
}

struct ConnectionRow {
    id: Uuid,
    end_user: String,
    upn: String,
    status: &'static str,
    badge: &'static str,
    reason: String,
    /// HTML: a `<time>`.
    created: String,
    can_disconnect: bool,
}

/// How many of an app's connections its page lists (the API pages through all of them).
const CONNECTIONS_SHOWN: u32 = 50;

fn connection_row(found: pbi_connect::connections::AppConnection) -> ConnectionRow {
    let (c, e) = (found.connection, found.end_user);
    let who = e.display_name.or(e.email).map_or_else(|| e.external_id.clone(), |name| format!("{name} ({})", e.external_id));
    ConnectionRow {
        id: c.id,
        end_user: who,
        upn: c.account.upn,
        status: crate::pages::status_words(c.status),
        badge: crate::pages::status_badge(c.status),
        reason: c.status_reason.unwrap_or_default(),
        created: when_html(When::at(c.created_at)),
        can_disconnect: c.status != pbi_store::ConnectionStatus::Revoked,
    }
}

#[derive(Template)]
#[template(path = "admin_app.html")]
struct AppPage<'a> {
    csrf: &'a str,
    app: App,
    registration: String,
    registrations: Vec<(String, String)>,
    form: AppForm,
    keys: Vec<KeyRow>,
    connections: Vec<ConnectionRow>,
    more_connections: bool,
    new_key: Option<String>,
    problem: Option<String>,
}

/// Each registration's name, by id (removed ones too, so an app's is always named).
async fn registration_names(state: &AppState) -> Result<HashMap<Uuid, (String, bool)>, Problem> {
    let all = state.store.registrations(true).await.map_err(Problem::store("registration", "listing registrations"))?;
    Ok(all.into_iter().map(|r| (r.id, (r.details.name, r.removed_at.is_none()))).collect())
}

/// The registrations an app may use, (id, name) by name.
fn usable_registrations(names: &HashMap<Uuid, (String, bool)>) -> Vec<(String, String)> {
    let mut usable: Vec<(String, String)> =
        names.iter().filter(|(_, (_, usable))| *usable).map(|(id, (name, _))| (id.to_string(), name.clone())).collect();
    usable.sort_by(|a, b| a.1.cmp(&b.1));
    usable
}

/// The app's form as typed: a registration chosen by id, one origin a line.
fn spec_of(form: &AppForm) -> Result<AppSpec, Problem> {
    let registration_id = form
        .registration
        .parse::<Uuid>()
        .map_err(|_| Problem::invalid("registrationId", "Choose the registration the app's end users connect through."))?;
    let origins = form.origins.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    Ok(AppSpec { name: form.name.clone(), registration_id, allowed_origins: origins })
}

async fn apps_page(state: &AppState, session: &Session, form: AppForm, problem: Option<Problem>) -> Response {
    let (apps, names) = match (ops::list(state, &session.user).await, registration_names(state).await) {
        (Ok(apps), Ok(names)) => (apps, names),
        (Err(problem), _) | (_, Err(problem)) => return problem.page(),
    };
    let name_of = |id: &Uuid| names.get(id).map_or_else(|| id.to_string(), |(name, _)| name.clone());
    let rows = apps
        .into_iter()
        .map(|a| AppRow {
            registration: name_of(&a.details.registration_id),
            origins: a.details.allowed_origins.join(" "),
            id: a.id,
            name: a.details.name,
        })
        .collect();
    let registrations = usable_registrations(&names);
    let status = if problem.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let page = AppsPage { csrf: &session.csrf_token, apps: rows, registrations, form, problem: problem.map(|p| p.in_words()) };
    render(status, &page)
}

pub async fn apps(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    apps_page(&state, &session, AppForm::default(), None).await
}

/// The key, once, on the page the answer leads to (never in a URL or a cookie).
fn with_key(message: String, key: NewSecretKey) -> Flash {
    Flash { messages: vec![Message::success(message)], new_token: Some(key.secret), ..Flash::default() }
}

pub async fn add_app(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, axum::Form(form): axum::Form<AppForm>) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let made = match spec_of(&form) {
        Ok(spec) => ops::create(&state, &session.user, &spec).await,
        Err(problem) => Err(problem),
    };
    match made {
        Ok((app, key)) => {
            let said = format!("Made the app '{}'.", app.details.name);
            session::done(&state, &session, &format!("/admin/apps/{}", app.id), with_key(said, key))
        }
        Err(problem) if problem.shown_on_form() => apps_page(&state, &session, form, Some(problem)).await,
        Err(problem) => problem.page(),
    }
}

async fn app_page(state: &AppState, session: &Session, id: Uuid, typed: Option<AppForm>, problem: Option<Problem>) -> Response {
    let ((app, keys), names) = match (ops::show(state, &session.user, id).await, registration_names(state).await) {
        (Ok(shown), Ok(names)) => (shown, names),
        (Err(problem), _) | (_, Err(problem)) => return problem.page(),
    };
    let registration = names.get(&app.details.registration_id).map_or_else(|| app.details.registration_id.to_string(), |(n, _)| n.clone());
    let (connections, more_connections) = match ops::connections(state, &session.user, &app, CONNECTIONS_SHOWN).await {
        Ok(found) => found,
        Err(problem) => return problem.page(),
    };
    let keys = keys
        .into_iter()
        .map(|k| KeyRow {
            hint: k.hint,
            created: when_html(When::at(k.created_at)),
            stops: k.expires_at.map(|at| when_html(When::at(at))).unwrap_or_default(),
            in_use: k.expires_at.is_none(),
        })
        .collect();
    let status = if problem.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let form = typed.unwrap_or_else(|| AppForm {
        name: app.details.name.clone(),
        registration: app.details.registration_id.to_string(),
        origins: app.details.allowed_origins.join("\n"),
        ..AppForm::default()
    });
    let page = AppPage {
        csrf: &session.csrf_token,
        registrations: usable_registrations(&names),
        form,
        app,
        registration,
        keys,
        connections: connections.into_iter().map(connection_row).collect(),
        more_connections,
        new_key: flash_token(),
        problem: problem.map(|p| p.in_words()),
    };
    render(status, &page)
}

pub async fn app(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Path(id): Path<Uuid>) -> Response {
    app_page(&state, &session, id, None, None).await
}

pub async fn update_app(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<AppForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let changed = match spec_of(&form) {
        Ok(spec) => ops::update(&state, &session.user, id, &spec).await,
        Err(problem) => Err(problem),
    };
    match changed {
        Ok(app) => {
            let said = format!("Saved the app '{}'.", app.details.name);
            session::done(&state, &session, &format!("/admin/apps/{id}"), Flash::message(Message::success(said)))
        }
        Err(problem) if problem.shown_on_form() => app_page(&state, &session, id, Some(form), Some(problem)).await,
        Err(problem) => problem.page(),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

pub async fn delete_app(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    match ops::delete(&state, &session.user, id).await {
        Ok(()) => {
            let said = Message::success("Deleted the app; its secret keys stopped working.");
            session::done(&state, &session, "/admin/apps", Flash::message(said))
        }
        Err(problem) => problem.page(),
    }
}

#[derive(Deserialize)]
pub struct RotateForm {
    csrf: String,
    #[serde(default)]
    overlap_hours: String,
}

pub async fn rotate_key(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<RotateForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let overlap = match form.overlap_hours.trim() {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(hours) => Some(hours),
            Err(_) => {
                return app_page(&state, &session, id, None, Some(Problem::invalid("overlapHours", "Give the overlap in whole hours.")))
                    .await;
            }
        },
    };
    match ops::rotate_key(&state, &session.user, id, overlap).await {
        Ok((_, key)) => {
            let said = match overlap.unwrap_or(pbi_connect::keys::DEFAULT_OVERLAP_HOURS) {
                0 => "Made a new secret key; the older keys stopped working.".to_owned(),
                hours => format!("Made a new secret key; the older keys keep working {hours} more hours."),
            };
            session::done(&state, &session, &format!("/admin/apps/{id}"), with_key(said, key))
        }
        Err(problem) if problem.shown_on_form() => app_page(&state, &session, id, None, Some(problem)).await,
        Err(problem) => problem.page(),
    }
}

#[derive(Deserialize)]
pub struct DisconnectForm {
    csrf: String,
}

pub async fn disconnect_connection(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path((id, connection)): Path<(Uuid, Uuid)>,
    axum::Form(form): axum::Form<DisconnectForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    match ops::disconnect_connection(&state, &session.user, id, connection).await {
        Ok(upn) => {
            let said = Message::success(format!("Disconnected {upn}: its tokens are erased. The end user connects again through the app."));
            session::done(&state, &session, &format!("/admin/apps/{id}"), Flash::message(said))
        }
        Err(problem) => problem.page(),
    }
}
