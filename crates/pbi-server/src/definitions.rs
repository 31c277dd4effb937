//! Seed 001's definitions at the edges, for administrators: the data sources items read from and the report
//! items users may pin, over `pbi_subscriptions::definitions` (which checks, stores and audits them). The pages
//! and the API share these operations.

use crate::AppState;
use crate::ops::capitalised;
use crate::problem::Problem;
use pbi_store::{DataSource, StoreError, User};
use pbi_subscriptions::definitions::{self, CredentialChange, DataSourceInput, Defined, Definitions, ItemInput, SaveFailure};
use secrecy::SecretString;
use uuid::Uuid;

fn admin_only(user: &User) -> Result<(), Problem> {
    if user.is_admin { Ok(()) } else { Err(Problem::AdminOnly) }
}

/// The administrator's changes, audited under their name.
fn as_admin<'a>(state: &'a AppState, admin: &'a User) -> Result<Definitions<'a>, Problem> {
    admin_only(admin)?;
    Ok(Definitions { store: &state.store, actor: &admin.username, now: state.clock.unix() })
}

/// A refused change: a field at fault, a name taken or a definition still in use (a conflict saying so).
fn refused(what: &'static str) -> impl FnOnce(SaveFailure) -> Problem {
    move |failure| match failure {
        SaveFailure::Invalid(error) => Problem::Invalid { field: error.field, message: error.message },
        SaveFailure::Store(StoreError::Conflict(why)) => Problem::Conflict(format!("{}.", capitalised(&why))),
        SaveFailure::Store(other) => Problem::store(what, "saving a definition")(other),
    }
}

pub(crate) async fn data_sources(state: &AppState, admin: &User) -> Result<Vec<DataSource>, Problem> {
    admin_only(admin)?;
    state.store.data_sources().await.map_err(Problem::store("data source", "listing data sources"))
}

pub(crate) async fn data_source(state: &AppState, admin: &User, id: Uuid) -> Result<DataSource, Problem> {
    admin_only(admin)?;
    state.store.data_source(id).await.map_err(Problem::store("data source", "reading a data source"))
}

pub(crate) async fn add_data_source(
    state: &AppState,
    admin: &User,
    input: &DataSourceInput,
    credential: Option<&SecretString>,
) -> Result<DataSource, Problem> {
    as_admin(state, admin)?.add_data_source(input, credential).await.map_err(refused("data source"))
}

pub(crate) async fn update_data_source(
    state: &AppState,
    admin: &User,
    id: Uuid,
    input: &DataSourceInput,
    credential: CredentialChange,
) -> Result<DataSource, Problem> {
    as_admin(state, admin)?.update_data_source(id, input, credential).await.map_err(refused("data source"))
}

pub(crate) async fn delete_data_source(state: &AppState, admin: &User, id: Uuid) -> Result<(), Problem> {
    as_admin(state, admin)?.delete_data_source(id).await.map_err(refused("data source"))
}

pub(crate) async fn items(state: &AppState, admin: &User) -> Result<Vec<Defined>, Problem> {
    admin_only(admin)?;
    definitions::defined_items(&state.store).await.map_err(Problem::store("item", "listing items"))
}

pub(crate) async fn item(state: &AppState, admin: &User, id: Uuid) -> Result<Defined, Problem> {
    admin_only(admin)?;
    definitions::defined_item(&state.store, id).await.map_err(Problem::store("item", "reading an item"))
}

pub(crate) async fn add_item(state: &AppState, admin: &User, input: &ItemInput) -> Result<Defined, Problem> {
    as_admin(state, admin)?.add_item(input).await.map_err(refused("item"))
}

pub(crate) async fn update_item(state: &AppState, admin: &User, id: Uuid, input: &ItemInput) -> Result<Defined, Problem> {
    as_admin(state, admin)?.update_item(id, input).await.map_err(refused("item"))
}

pub(crate) async fn delete_item(state: &AppState, admin: &User, id: Uuid) -> Result<(), Problem> {
    as_admin(state, admin)?.delete_item(id).await.map_err(refused("item"))
}
