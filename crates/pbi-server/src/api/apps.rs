//! The API's apps (seed 002), for administrators: an app connects its own end users' Power BI accounts through
//! a registration; its backend authenticates with a secret key, shown once when it is made or rotated.

use super::edge::{Answer, Body, Caller, ErrorBody, Ids, Refusals, rfc3339};
use crate::AppState;
use crate::apps as ops;
use axum::extract::State;
use axum::http::StatusCode;
use pbi_connect::NewSecretKey;
use pbi_connect::app::AppSpec;
use pbi_store::{App, AppKey};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct AppIn {
    /// The name end users see on the connect page: 1 to 100 characters, unique (without case).
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// The registration its end users connect through.
    registration_id: Uuid,
    /// Where the app's connect page and SDK may be used from: `https://host[:port]` (http for localhost only),
    /// at most 20.
    #[serde(default)]
    #[schema(max_items = 20)]
    allowed_origins: Vec<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppOut {
    id: Uuid,
    name: String,
    registration_id: Uuid,
    allowed_origins: Vec<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<App> for AppOut {
    fn from(app: App) -> Self {
        Self {
            id: app.id,
            name: app.details.name,
            registration_id: app.details.registration_id,
            allowed_origins: app.details.allowed_origins,
            created_at: rfc3339(app.created_at),
            updated_at: rfc3339(app.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppKeyOut {
    id: Uuid,
    /// The key's first characters (`pbs_` and four), to tell keys apart.
    hint: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// When a rotation made it stop working (absent: the key in use).
    #[schema(format = DateTime)]
    expires_at: Option<String>,
}

impl From<AppKey> for AppKeyOut {
    fn from(key: AppKey) -> Self {
        Self { id: key.id, hint: key.hint, created_at: rfc3339(key.created_at), expires_at: key.expires_at.map(rfc3339) }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppList {
    apps: Vec<AppOut>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AppWithKeys {
    app: AppOut,
    /// Its secret keys, the one in use first (never the keys themselves).
    keys: Vec<AppKeyOut>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct MadeApp {
    app: AppOut,
    /// The app's secret key, for its backend: shown this once and kept nowhere but as a hash.
    #[schema(format = Password)]
    secret_key: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct MadeKey {
    key: AppKeyOut,
    /// The new secret key: shown this once.
    #[schema(format = Password)]
    secret_key: String,
}

#[derive(Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct RotateIn {
    /// How long the older keys keep working, 0 (stop at once) to 720 hours; 24 when left out.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 720)]
    overlap_hours: Option<i64>,
}

fn shown(key: &NewSecretKey) -> String {
    key.secret.expose_secret().to_owned()
}

/// The apps that connect their own end users' Power BI accounts. Administrators only.
#[utoipa::path(get, path = "/admin/apps", tag = "Administration", operation_id = "listApps",
    responses((status = 200, description = "OK", body = AppList), Refusals))]
pub(super) async fn list_apps(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<AppList>> {
    let apps = ops::list(&state, &caller.user).await?;
    Ok(axum::Json(AppList { apps: apps.into_iter().map(AppOut::from).collect() }))
}

/// Makes an app and its first secret key, which the answer shows once. Administrators only.
#[utoipa::path(post, path = "/admin/apps", tag = "Administration", operation_id = "createApp", request_body = AppIn,
    responses((status = 201, description = "Made; the secret key is shown this once", body = MadeApp), Refusals,
    (status = 409, description = "An app has that name", body = ErrorBody)))]
pub(super) async fn create_app(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(new): Body<AppIn>,
) -> Answer<(StatusCode, axum::Json<MadeApp>)> {
    let spec = AppSpec { name: new.name, registration_id: new.registration_id, allowed_origins: new.allowed_origins };
    let (app, key) = ops::create(&state, &caller.user, &spec).await?;
    Ok((StatusCode::CREATED, axum::Json(MadeApp { app: app.into(), secret_key: shown(&key) })))
}

/// One app and its keys. Administrators only.
#[utoipa::path(get, path = "/admin/apps/{id}", tag = "Administration", operation_id = "getApp",
    params(("id" = Uuid, Path, description = "The app's id")), responses((status = 200, description = "OK", body = AppWithKeys), Refusals))]
pub(super) async fn get_app(State(state): State<Arc<AppState>>, caller: Caller, Ids(id): Ids<Uuid>) -> Answer<axum::Json<AppWithKeys>> {
    let (app, keys) = ops::show(&state, &caller.user, id).await?;
    Ok(axum::Json(AppWithKeys { app: app.into(), keys: keys.into_iter().map(AppKeyOut::from).collect() }))
}

/// Replaces an app's name, registration and allowed origins; its keys stay. Administrators only.
#[utoipa::path(put, path = "/admin/apps/{id}", tag = "Administration", operation_id = "updateApp", request_body = AppIn,
    params(("id" = Uuid, Path, description = "The app's id")), responses((status = 200, description = "OK", body = AppOut), Refusals,
    (status = 409, description = "Another app has that name", body = ErrorBody)))]
pub(super) async fn update_app(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(change): Body<AppIn>,
) -> Answer<axum::Json<AppOut>> {
    let spec = AppSpec { name: change.name, registration_id: change.registration_id, allowed_origins: change.allowed_origins };
    Ok(axum::Json(ops::update(&state, &caller.user, id, &spec).await?.into()))
}

/// Deletes an app; its secret keys stop working at once. Administrators only.
#[utoipa::path(delete, path = "/admin/apps/{id}", tag = "Administration", operation_id = "deleteApp",
    params(("id" = Uuid, Path, description = "The app's id")), responses((status = 204, description = "Deleted"), Refusals))]
pub(super) async fn delete_app(State(state): State<Arc<AppState>>, caller: Caller, Ids(id): Ids<Uuid>) -> Answer<StatusCode> {
    ops::delete(&state, &caller.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret key for the app, shown once; the older keys keep working for `overlapHours` (24 by default),
/// so that the app's deployment can switch without an outage. Administrators only.
#[utoipa::path(post, path = "/admin/apps/{id}/keys", tag = "Administration", operation_id = "rotateAppKey", request_body = RotateIn,
    params(("id" = Uuid, Path, description = "The app's id")),
    responses((status = 201, description = "Made; the secret key is shown this once", body = MadeKey), Refusals))]
pub(super) async fn rotate_app_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(rotate): Body<RotateIn>,
) -> Answer<(StatusCode, axum::Json<MadeKey>)> {
    let (made, key) = ops::rotate_key(&state, &caller.user, id, rotate.overlap_hours).await?;
    Ok((StatusCode::CREATED, axum::Json(MadeKey { key: made.into(), secret_key: shown(&key) })))
}
