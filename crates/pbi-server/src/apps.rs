//! Seed 002's apps at the edges, for administrators, over `pbi_connect::apps` (which checks, stores and
//! audits them). The API shares these operations (the pages come next).

use crate::AppState;
use crate::ops::capitalised;
use crate::problem::Problem;
use pbi_connect::app::AppSpec;
use pbi_connect::{AppError, NewSecretKey, apps};
use pbi_store::{App, AppKey, User};
use uuid::Uuid;

fn admin_only(user: &User) -> Result<(), Problem> {
    if user.is_admin { Ok(()) } else { Err(Problem::AdminOnly) }
}

/// A refused change: the field at fault, a name taken, or an app that is not there.
fn refused(context: &'static str) -> impl FnOnce(AppError) -> Problem {
    refused_as("app", context)
}

/// `pbi_connect`'s refusal as a problem; what was not found is `what` (an app, a connect session).
pub(crate) fn refused_as(what: &'static str, context: &'static str) -> impl FnOnce(AppError) -> Problem {
    move |error| match error {
        AppError::Invalid { field, message } => Problem::Invalid { field, message: format!("{}.", capitalised(&message)) },
        AppError::NotFound(_) => Problem::NotFound(what),
        AppError::Conflict(why) => Problem::Conflict(format!("{}.", capitalised(&why))),
        AppError::Store(error) => Problem::store("app", context)(error),
    }
}

pub(crate) async fn list(state: &AppState, admin: &User) -> Result<Vec<App>, Problem> {
    admin_only(admin)?;
    state.store.apps().await.map_err(Problem::store("app", "listing apps"))
}

pub(crate) async fn show(state: &AppState, admin: &User, id: Uuid) -> Result<(App, Vec<AppKey>), Problem> {
    admin_only(admin)?;
    apps::show(&state.store, id).await.map_err(refused("reading an app"))
}

pub(crate) async fn create(state: &AppState, admin: &User, spec: &AppSpec) -> Result<(App, NewSecretKey), Problem> {
    admin_only(admin)?;
    let (app, key) = apps::create(&state.store, &admin.username, spec, state.clock.unix()).await.map_err(refused("making an app"))?;
    tracing::info!(admin = %admin.username, app = %app.id, "made an app");
    Ok((app, key))
}

pub(crate) async fn update(state: &AppState, admin: &User, id: Uuid, spec: &AppSpec) -> Result<App, Problem> {
    admin_only(admin)?;
    apps::update(&state.store, &admin.username, id, spec, state.clock.unix()).await.map_err(refused("changing an app"))
}

pub(crate) async fn delete(state: &AppState, admin: &User, id: Uuid) -> Result<(), Problem> {
    admin_only(admin)?;
    apps::delete(&state.store, &admin.username, id, state.clock.unix()).await.map_err(refused("deleting an app"))?;
    tracing::info!(admin = %admin.username, app = %id, "deleted an app");
    Ok(())
}

pub(crate) async fn rotate_key(
    state: &AppState,
    admin: &User,
    id: Uuid,
    overlap_hours: Option<i64>,
) -> Result<(AppKey, NewSecretKey), Problem> {
    admin_only(admin)?;
    let now = state.clock.unix();
    let made = apps::rotate_key(&state.store, &admin.username, id, overlap_hours, now).await.map_err(refused("rotating a key"))?;
    tracing::info!(admin = %admin.username, app = %id, "rotated an app's secret key");
    Ok(made)
}

/// The first `limit` connections of an app's end users, and whether there are more.
pub(crate) async fn connections(
    state: &AppState,
    admin: &User,
    app: &App,
    limit: u32,
) -> Result<(Vec<pbi_connect::connections::AppConnection>, bool), Problem> {
    admin_only(admin)?;
    let filter = pbi_connect::connections::ConnectionFilter::default();
    let (page, next) = crate::app_connect::connections(state, app, &filter, None, limit).await?;
    Ok((page, next.is_some()))
}

/// An administrator disconnects one of an app's end users' connections (its tokens are erased).
pub(crate) async fn disconnect_connection(state: &AppState, admin: &User, app: Uuid, connection: Uuid) -> Result<String, Problem> {
    admin_only(admin)?;
    let app = state.store.app(app).await.map_err(Problem::store("app", "reading an app"))?;
    let found = crate::app_connect::connection(state, &app, connection).await?;
    crate::app_connect::disconnect(state, &app, connection).await?;
    tracing::info!(admin = %admin.username, app = %app.id, %connection, "an administrator disconnected an end user's connection");
    let upn = found.connection.account.upn;
    let entry = pbi_store::NewAuditEntry {
        actor: admin.username.clone(),
        action: "connections.disconnected".into(),
        target: format!("{upn} of {}'s end user {}", app.details.name, found.end_user.external_id),
        old_value: None,
        new_value: None,
    };
    state.store.record_audit(&[entry], state.clock.unix()).await.map_err(Problem::store("audit entry", "recording a disconnect"))?;
    Ok(upn)
}
