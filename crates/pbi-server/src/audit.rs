//! The audit log, for administrators: who changed the Power BI configuration, its keys and the users, and when.

use crate::AppState;
use crate::pages::render;
use crate::problem::Problem;
use crate::session::SignedIn;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use pbi_store::{AuditCursor, AuditEntry, User};
use serde::Deserialize;
use std::sync::Arc;

/// Entries on one page of the log.
pub(crate) const PAGE_SIZE: u32 = 50;

/// A page of the log, newest first, after `cursor` (the `next` of the page before).
pub(crate) async fn entries(state: &AppState, admin: &User, cursor: Option<&str>) -> Result<(Vec<AuditEntry>, Option<String>), Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    let after = match cursor.filter(|c| !c.is_empty()) {
        Some(text) => Some(AuditCursor::parse(text).ok_or_else(|| {
            Problem::invalid("cursor", "The cursor is not one this log gave out: use the next link of the page before, or leave it out.")
        })?),
        None => None,
    };
    let (entries, next) =
        state.store.audit_entries(after, PAGE_SIZE).await.map_err(Problem::store("audit entry", "reading the audit log"))?;
    Ok((entries, next.map(|c| c.encode())))
}

struct Row {
    /// HTML: a `<time>` (`frame::When`).
    at: String,
    actor: String,
    action: String,
    target: String,
    old_value: String,
    new_value: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    rows: Vec<Row>,
    next: Option<String>,
    /// Whether this is an older page (it links back to the newest).
    after: bool,
}

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    after: Option<String>,
}

pub async fn show(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Query(query): Query<PageQuery>) -> Response {
    match entries(&state, &session.user, query.after.as_deref()).await {
        Ok((entries, next)) => {
            let rows = entries
                .into_iter()
                .map(|e| Row {
                    at: crate::frame::when_html(crate::frame::When::at(e.at)),
                    actor: e.entry.actor,
                    action: e.entry.action,
                    target: e.entry.target,
                    old_value: e.entry.old_value.unwrap_or_default(),
                    new_value: e.entry.new_value.unwrap_or_default(),
                })
                .collect();
            let after = query.after.as_deref().is_some_and(|a| !a.is_empty());
            render(StatusCode::OK, &AuditPage { rows, next, after })
        }
        Err(problem) => problem.page(),
    }
}
