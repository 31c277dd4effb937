//! The API's seed-001 definitions, for administrators: data sources (a credential is write-only) and report
//! items (the definition users pin).

use super::edge::{Answer, Body, Caller, ErrorBody, Ids, Refusals, rfc3339};
use crate::AppState;
use crate::definitions as ops;
use crate::problem::Problem;
use axum::extract::State;
use axum::http::StatusCode;
use pbi_store::DataSource;
use pbi_subscriptions::definitions::{CredentialChange, Defined};
use pbi_subscriptions::definitions::{DataSourceInput, ItemInput};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct DataSourceIn {
    /// 1 to 100 characters, unique (without case).
    #[schema(min_length = 1, max_length = 100)]
    name: String,
    /// postgres, sqlite or http.
    kind: String,
    /// A PostgreSQL URL without a password (`postgres://db.example.com/sales`), a SQLite file's absolute path, or an
    /// HTTP endpoint's base URL.
    location: String,
    /// The PostgreSQL user.
    #[serde(default)]
    username: Option<String>,
    /// The header an HTTP source's credential is sent in; Authorization by default.
    #[serde(default)]
    credential_header: Option<String>,
    /// The password or header value, stored encrypted; write-only. Left out on an update: the stored one stays.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Password)]
    credential: Option<SecretString>,
    /// true: remove the stored credential (an update; deliveries then fail saying so).
    #[serde(default)]
    clear_credential: bool,
}

impl DataSourceIn {
    fn input(&self) -> DataSourceInput {
        DataSourceInput {
            name: self.name.clone(),
            kind: self.kind.clone(),
            location: self.location.clone(),
            username: self.username.clone(),
            credential_header: self.credential_header.clone(),
        }
    }

    fn credential_change(self) -> Result<CredentialChange, Problem> {
        match (self.credential, self.clear_credential) {
            (Some(_), true) => Err(Problem::invalid("clearCredential", "Send a credential or clearCredential, not both.")),
            (Some(secret), false) => Ok(CredentialChange::Set(secret)),
            (None, true) => Ok(CredentialChange::Clear),
            (None, false) => Ok(CredentialChange::Keep),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DataSourceOut {
    id: Uuid,
    name: String,
    kind: String,
    location: String,
    username: Option<String>,
    credential_header: Option<String>,
    /// Whether a credential is stored (it is never shown).
    has_credential: bool,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<DataSource> for DataSourceOut {
    fn from(s: DataSource) -> Self {
        Self {
            id: s.id,
            name: s.details.name,
            kind: s.details.kind.as_str().to_owned(),
            location: s.details.location,
            username: s.details.username,
            credential_header: s.details.credential_header,
            has_credential: s.has_credential,
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DataSourceList {
    data_sources: Vec<DataSourceOut>,
}

/// The data sources items read their rows from. Administrators only.
#[utoipa::path(get, path = "/admin/data-sources", tag = "Administration", operation_id = "listDataSources",
    responses((status = 200, description = "OK", body = DataSourceList), Refusals))]
pub(super) async fn list_data_sources(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<DataSourceList>> {
    let sources = ops::data_sources(&state, &caller.user).await?;
    Ok(axum::Json(DataSourceList { data_sources: sources.into_iter().map(DataSourceOut::from).collect() }))
}

/// Adds a data source. A location with a password in it is refused: send the password as `credential`, which
/// is stored encrypted. Without a credential, the source is kept and its deliveries fail saying so.
#[utoipa::path(post, path = "/admin/data-sources", tag = "Administration", operation_id = "createDataSource", request_body = DataSourceIn,
    responses((status = 201, description = "Added", body = DataSourceOut), Refusals,
    (status = 409, description = "A data source has that name", body = ErrorBody)))]
pub(super) async fn create_data_source(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(new): Body<DataSourceIn>,
) -> Answer<(StatusCode, axum::Json<DataSourceOut>)> {
    let input = new.input();
    let credential = match new.credential_change()? {
        CredentialChange::Set(secret) => Some(secret),
        CredentialChange::Keep => None,
        CredentialChange::Clear => return Err(Problem::invalid("clearCredential", "A new data source has no credential to clear.").into()),
    };
    let source = ops::add_data_source(&state, &caller.user, &input, credential.as_ref()).await?;
    Ok((StatusCode::CREATED, axum::Json(source.into())))
}

/// One data source. Administrators only.
#[utoipa::path(get, path = "/admin/data-sources/{id}", tag = "Administration", operation_id = "getDataSource",
    params(("id" = Uuid, Path, description = "The data source's id")), responses((status = 200, description = "OK", body = DataSourceOut), Refusals))]
pub(super) async fn get_data_source(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Answer<axum::Json<DataSourceOut>> {
    Ok(axum::Json(ops::data_source(&state, &caller.user, id).await?.into()))
}

/// Replaces a data source's details; its credential stays unless `credential` or `clearCredential` is sent.
#[utoipa::path(put, path = "/admin/data-sources/{id}", tag = "Administration", operation_id = "updateDataSource", request_body = DataSourceIn,
    params(("id" = Uuid, Path, description = "The data source's id")), responses((status = 200, description = "OK", body = DataSourceOut), Refusals,
    (status = 409, description = "Another data source has that name", body = ErrorBody)))]
pub(super) async fn update_data_source(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(change): Body<DataSourceIn>,
) -> Answer<axum::Json<DataSourceOut>> {
    let input = change.input();
    let credential = change.credential_change()?;
    Ok(axum::Json(ops::update_data_source(&state, &caller.user, id, &input, credential).await?.into()))
}

/// Deletes a data source no item uses.
#[utoipa::path(delete, path = "/admin/data-sources/{id}", tag = "Administration", operation_id = "deleteDataSource",
    params(("id" = Uuid, Path, description = "The data source's id")), responses((status = 204, description = "Deleted"), Refusals,
    (status = 409, description = "Items use it", body = ErrorBody)))]
pub(super) async fn delete_data_source(State(state): State<Arc<AppState>>, caller: Caller, Ids(id): Ids<Uuid>) -> Answer<StatusCode> {
    ops::delete_data_source(&state, &caller.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DefinedItemOut {
    id: Uuid,
    /// The item as it is submitted (createItem, updateItem).
    definition: ItemInput,
    /// How many subscriptions deliver it.
    subscriptions: i64,
    /// When the application last sent its rows (a pushed item).
    #[schema(format = DateTime)]
    pushed_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<Defined> for DefinedItemOut {
    fn from(d: Defined) -> Self {
        Self {
            id: d.item.id,
            definition: d.input,
            subscriptions: d.subscriptions,
            pushed_at: d.item.pushed_at.map(rfc3339),
            created_at: rfc3339(d.item.created_at),
            updated_at: rfc3339(d.item.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DefinedItemList {
    items: Vec<DefinedItemOut>,
}

/// Every report item, with its definition. Administrators only.
#[utoipa::path(get, path = "/admin/items", tag = "Administration", operation_id = "listDefinedItems",
    responses((status = 200, description = "OK", body = DefinedItemList), Refusals))]
pub(super) async fn list_defined_items(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<DefinedItemList>> {
    let items = ops::items(&state, &caller.user).await?;
    Ok(axum::Json(DefinedItemList { items: items.into_iter().map(DefinedItemOut::from).collect() }))
}

/// Defines a report item: its visual kind, typed columns, where its rows come from, its parameters and who
/// may pin it. A query is checked (one statement that only reads; its `:named` parameters declared).
#[utoipa::path(post, path = "/admin/items", tag = "Administration", operation_id = "createItem", request_body = ItemInput,
    responses((status = 201, description = "Defined", body = DefinedItemOut), Refusals,
    (status = 409, description = "An item has that name", body = ErrorBody)))]
pub(super) async fn create_item(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(input): Body<ItemInput>,
) -> Answer<(StatusCode, axum::Json<DefinedItemOut>)> {
    Ok((StatusCode::CREATED, axum::Json(ops::add_item(&state, &caller.user, &input).await?.into())))
}

/// One report item. Administrators only.
#[utoipa::path(get, path = "/admin/items/{id}", tag = "Administration", operation_id = "getDefinedItem",
    params(("id" = Uuid, Path, description = "The item's id")), responses((status = 200, description = "OK", body = DefinedItemOut), Refusals))]
pub(super) async fn get_defined_item(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Answer<axum::Json<DefinedItemOut>> {
    Ok(axum::Json(ops::item(&state, &caller.user, id).await?.into()))
}

/// Replaces an item's definition (its kind stays while subscriptions deliver it); the next deliveries use it.
#[utoipa::path(put, path = "/admin/items/{id}", tag = "Administration", operation_id = "updateItem", request_body = ItemInput,
    params(("id" = Uuid, Path, description = "The item's id")), responses((status = 200, description = "OK", body = DefinedItemOut), Refusals,
    (status = 409, description = "Another item has that name", body = ErrorBody)))]
pub(super) async fn update_item(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(input): Body<ItemInput>,
) -> Answer<axum::Json<DefinedItemOut>> {
    Ok(axum::Json(ops::update_item(&state, &caller.user, id, &input).await?.into()))
}

/// Deletes an item no subscription delivers.
#[utoipa::path(delete, path = "/admin/items/{id}", tag = "Administration", operation_id = "deleteItem",
    params(("id" = Uuid, Path, description = "The item's id")), responses((status = 204, description = "Deleted"), Refusals,
    (status = 409, description = "Subscriptions deliver it", body = ErrorBody)))]
pub(super) async fn delete_item(State(state): State<Arc<AppState>>, caller: Caller, Ids(id): Ids<Uuid>) -> Answer<StatusCode> {
    ops::delete_item(&state, &caller.user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
