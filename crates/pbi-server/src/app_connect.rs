//! What an app's backend does with its secret key (seed 002), over `pbi_connect`: connect sessions for its end
//! users (the connect page, `connect_pages`, uses them) and its end users' connections.

use crate::AppState;
use crate::problem::Problem;
use pbi_connect::AppError;
use pbi_connect::connections::{AppConnection, ConnectionFilter};
use pbi_connect::sessions::{NewSession, SessionSpec};
use pbi_store::{App, ConnectSession, ConnectionCursor};
use uuid::Uuid;

pub(crate) fn refused(context: &'static str) -> impl FnOnce(AppError) -> Problem {
    crate::apps::refused_as("connect session", context)
}

pub(crate) async fn create(state: &AppState, app: &App, spec: &SessionSpec) -> Result<NewSession, Problem> {
    let made = spec.create(&state.store, app, state.clock.unix()).await.map_err(|error| match error {
        // The connection to reconnect is the one thing a session can name that may not be there.
        AppError::NotFound(_) => Problem::NotFound("connection"),
        other => refused("making a connect session")(other),
    })?;
    tracing::info!(app = %app.id, end_user = %made.end_user.id, session = %made.session.id, "made a connect session");
    Ok(made)
}

/// One of `app`'s sessions (another app's reads as none).
pub(crate) async fn of_app(state: &AppState, app: &App, id: Uuid) -> Result<ConnectSession, Problem> {
    let session = state.store.connect_session(id).await.map_err(Problem::store("connect session", "reading a connect session"))?;
    if session.details.app_id != app.id {
        return Err(Problem::NotFound("connect session"));
    }
    Ok(session)
}

/// The connect page a session's token opens.
pub(crate) fn page_url(state: &AppState, token: &str) -> String {
    format!("{}/connect/app?session={token}", state.base_url)
}

fn connection_refused(context: &'static str) -> impl FnOnce(AppError) -> Problem {
    crate::apps::refused_as("connection", context)
}

pub(crate) async fn connections(
    state: &AppState,
    app: &App,
    filter: &ConnectionFilter,
    after: Option<ConnectionCursor>,
    limit: u32,
) -> Result<(Vec<AppConnection>, Option<ConnectionCursor>), Problem> {
    pbi_connect::connections::list(&state.store, app, filter, after, limit)
        .await
        .map_err(connection_refused("listing an app's connections"))
}

pub(crate) async fn connection(state: &AppState, app: &App, id: Uuid) -> Result<AppConnection, Problem> {
    pbi_connect::connections::get(&state.store, app, id).await.map_err(connection_refused("reading an app's connection"))
}

/// Disconnects one of the app's connections: its tokens are erased at once; the record stays, disconnected,
/// until the app is deleted.
pub(crate) async fn disconnect(state: &AppState, app: &App, id: Uuid) -> Result<(), Problem> {
    let found = connection(state, app, id).await?;
    state.auth.disconnect(id, Some(&found.connection.account.owner)).await?;
    tracing::info!(app = %app.id, connection = %id, "an app disconnected an end user's connection");
    Ok(())
}
