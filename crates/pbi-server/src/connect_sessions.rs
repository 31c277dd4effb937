//! Connect sessions at the edges (seed 002), over `pbi_connect::sessions`: an app's backend makes one for an
//! end user; the connect page (`connect_pages`) uses it.

use crate::AppState;
use crate::problem::Problem;
use pbi_connect::AppError;
use pbi_connect::sessions::{NewSession, SessionSpec};
use pbi_store::{App, ConnectSession};
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
