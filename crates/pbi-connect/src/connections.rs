//! An app's end users' Power BI connections, as the app's backend (and its administrators) see them: only the
//! app's own; another app's connection reads as none at all.

use crate::AppError;
use pbi_store::{App, Connection, ConnectionCursor, ConnectionStatus, EndUser, Store};
use std::collections::HashMap;
use uuid::Uuid;

/// A connection with the end user it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppConnection {
    pub connection: Connection,
    pub end_user: EndUser,
}

/// Which of the app's connections a list shows.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    /// The app's id for an end user: only theirs.
    pub end_user: Option<String>,
    pub status: Option<ConnectionStatus>,
}

/// The most connections a page holds.
pub const MAX_PAGE: u32 = 100;

/// A page of the app's connections, oldest first, and where the next starts.
pub async fn list(
    store: &Store,
    app: &App,
    filter: &ConnectionFilter,
    after: Option<ConnectionCursor>,
    limit: u32,
) -> Result<(Vec<AppConnection>, Option<ConnectionCursor>), AppError> {
    let (page, next) = store.app_connections(app.id, filter.end_user.as_deref(), filter.status, after, limit.min(MAX_PAGE)).await?;
    let mut end_users: HashMap<Uuid, EndUser> = HashMap::new();
    let mut listed = Vec::with_capacity(page.len());
    for connection in page {
        let Some(id) = connection.account.owner.end_user() else { continue };
        let end_user = match end_users.get(&id) {
            Some(found) => found.clone(),
            None => {
                let found = store.end_user(id).await?;
                end_users.insert(id, found.clone());
                found
            }
        };
        listed.push(AppConnection { connection, end_user });
    }
    Ok((listed, next))
}

/// One of the app's connections; another app's, or a pbi-bridge user's, is `NotFound`.
pub async fn get(store: &Store, app: &App, id: Uuid) -> Result<AppConnection, AppError> {
    let not_found = || AppError::NotFound(format!("connection {id}"));
    let connection = store.connection(id).await.map_err(|e| match e {
        pbi_store::StoreError::NotFound(_) => not_found(),
        other => other.into(),
    })?;
    let end_user_id = connection.account.owner.end_user().ok_or_else(not_found)?;
    let end_user = store.end_user(end_user_id).await?;
    if end_user.app_id != app.id {
        return Err(not_found());
    }
    Ok(AppConnection { connection, end_user })
}
