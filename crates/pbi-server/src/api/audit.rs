//! The API's audit log: the changes administrators are answerable for, newest first, a page at a time.

use super::edge::{Answer, Caller, Refusals, rfc3339};
use crate::AppState;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AuditQuery {
    /// The `next` of the page before; leave out for the newest entries.
    #[param(max_length = 60)]
    after: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct AuditEntryOut {
    id: Uuid,
    #[schema(format = DateTime)]
    at: String,
    /// Who made the change (their user name then).
    actor: String,
    /// What was done: powerbi.configuration.created, powerbi.configuration.changed, powerbi.endpoints.changed,
    /// powerbi.key.added, powerbi.key.removed, connections.shared_accounts.changed, user.added, user.disabled,
    /// user.enabled, user.password.set.
    action: String,
    /// What it was done to: the registration's name or the user name.
    target: String,
    /// The values before (JSON text or a sentence; never a secret).
    old_value: Option<String>,
    /// The values after.
    new_value: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct AuditPage {
    entries: Vec<AuditEntryOut>,
    /// Pass as `after` for the next (older) page; absent on the last page.
    next: Option<String>,
}

/// The audit log, newest first, 50 entries a page. Administrators only.
#[utoipa::path(get, path = "/admin/audit", tag = "Administration", operation_id = "listAuditEntries", params(AuditQuery),
    responses((status = 200, description = "OK", body = AuditPage), Refusals))]
pub(super) async fn audit_log(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<AuditQuery>,
) -> Answer<axum::Json<AuditPage>> {
    let (entries, next) = crate::audit::entries(&state, &caller.user, query.after.as_deref()).await?;
    let entries = entries
        .into_iter()
        .map(|e| AuditEntryOut {
            id: e.id,
            at: rfc3339(e.at),
            actor: e.entry.actor,
            action: e.entry.action,
            target: e.entry.target,
            old_value: e.entry.old_value,
            new_value: e.entry.new_value,
        })
        .collect();
    Ok(axum::Json(AuditPage { entries, next }))
}
