//! Background jobs, for administrators: the queue by kind and state, the schedules with their next and last
//! run, the jobs that failed (with their error and attempts, to retry or cancel), and the connections that
//! have not worked for days. The page (`/admin/jobs`) and the API (`/api/v1/admin/jobs`) both read it here.

use crate::AppState;
use crate::frame::{Message, When, when_html};
use crate::pages::{form_expired, render};
use crate::problem::Problem;
use crate::session::{self, Flash, SignedIn};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use pbi_jobs::{JobInfo, JobState, JobsError};
use pbi_store::Session;
use pbi_store::{Connection, JobCount, ScheduleRow, User};
use serde::Deserialize;
use std::sync::Arc;

/// Failed jobs shown at once (the CLI and the API page through all of them).
pub(crate) const FAILED_SHOWN: u32 = 50;

/// The states a job is waiting or failing in, then the finished ones, in the order the page shows them.
pub(crate) const STATE_COLUMNS: [JobState; 8] = JobState::ALL;

/// The owner of pbi-bridge's own schedules (housekeeping, keep-alive, checks).
const SYSTEM: &str = "system";

/// Everything the page shows.
pub(crate) struct Overview {
    pub counts: Vec<JobCount>,
    /// pbi-bridge's own schedules (owner `system`).
    pub schedules: Vec<ScheduleRow>,
    /// How many schedules of each kind the rest have (subscriptions' and the like): counted, not listed.
    pub other_schedules: Vec<(String, i64)>,
    /// Retryable and discarded jobs, newest first.
    pub failed: Vec<JobInfo>,
    pub failing_connections: Vec<Connection>,
}

fn engine_problem(error: JobsError) -> Problem {
    match error {
        JobsError::NotFound => Problem::NotFound("job"),
        JobsError::Invalid(why) => Problem::Conflict(why),
        other => {
            tracing::error!(error = %other, "the job engine");
            Problem::Internal
        }
    }
}

pub(crate) async fn overview(state: &AppState, admin: &User) -> Result<Overview, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    let counts = state.store.job_counts().await.map_err(Problem::store("job", "counting jobs"))?;
    let schedules = state.store.schedules_of(SYSTEM).await.map_err(Problem::store("schedule", "reading the schedules"))?;
    let other_schedules = state.store.schedule_counts_except(SYSTEM).await.map_err(Problem::store("schedule", "counting the schedules"))?;
    let failed = state.jobs.list(&[], &[JobState::Retryable, JobState::Discarded], FAILED_SHOWN, None).await.map_err(engine_problem)?;
    let failing_connections = crate::notices::failing_connections(&state.store, state.clock.unix())
        .await
        .map_err(Problem::store("connection", "reading failing connections"))?;
    Ok(Overview { counts, schedules, other_schedules, failed, failing_connections })
}

pub(crate) async fn job(state: &AppState, admin: &User, id: i64) -> Result<JobInfo, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    state.jobs.get(id).await.map_err(engine_problem)?.ok_or(Problem::NotFound("job"))
}

/// What an administrator can do to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Retry,
    Cancel,
}

/// Retries or cancels a job; refuses what would do nothing (cancelling a finished job, retrying a running one).
pub(crate) async fn act(state: &AppState, admin: &User, id: i64, action: Action) -> Result<JobInfo, Problem> {
    let before = job(state, admin, id).await?;
    match action {
        Action::Cancel if before.state.is_finished() => {
            return Err(Problem::Conflict(format!("Job {id} has already finished ({}): there is nothing to cancel.", before.state.name())));
        }
        Action::Retry if before.state == JobState::Running => {
            return Err(Problem::Conflict(format!("Job {id} is running now: wait for it to end before retrying it.")));
        }
        _ => {}
    }
    let after = match action {
        Action::Retry => state.jobs.retry(id).await,
        Action::Cancel => state.jobs.cancel(id).await,
    }
    .map_err(engine_problem)?;
    tracing::info!(job = id, kind = %after.kind, admin = %admin.username, ?action, "an administrator acted on a job");
    Ok(after)
}

struct CountRow {
    kind: String,
    cells: Vec<i64>,
}

struct ScheduleView {
    kind: String,
    owner: String,
    recurrence: String,
    next: String,
    last: String,
    outcome: String,
    error: String,
    paused: bool,
}

struct FailedView {
    id: i64,
    kind: String,
    state: &'static str,
    attempts: String,
    error: String,
    /// When it runs again (retryable) or when it ended (discarded).
    when: String,
    can_cancel: bool,
}

struct FailingView {
    account: String,
    since: String,
    error: String,
}

#[derive(Template)]
#[template(path = "admin_jobs.html")]
struct JobsPage {
    states: Vec<&'static str>,
    counts: Vec<CountRow>,
    totals: Vec<i64>,
    schedules: Vec<ScheduleView>,
    other_schedules: Vec<(String, i64)>,
    failed: Vec<FailedView>,
    failing: Vec<FailingView>,
    csrf: String,
}

fn count_rows(counts: &[JobCount]) -> (Vec<CountRow>, Vec<i64>) {
    let mut rows: Vec<CountRow> = Vec::new();
    let mut totals = vec![0; STATE_COLUMNS.len()];
    for count in counts {
        let Some(column) = STATE_COLUMNS.iter().position(|s| s.name() == count.state) else { continue };
        if rows.last().is_none_or(|r| r.kind != count.kind) {
            rows.push(CountRow { kind: count.kind.clone(), cells: vec![0; STATE_COLUMNS.len()] });
        }
        if let Some(row) = rows.last_mut() {
            row.cells[column] += count.count;
        }
        totals[column] += count.count;
    }
    (rows, totals)
}

fn recurrence_words(recurrence: &str, zone: &str) -> String {
    match recurrence.strip_prefix("every ").and_then(|s| s.strip_suffix('s')).and_then(|s| s.parse::<u64>().ok()) {
        Some(seconds) if seconds % 86_400 == 0 => format!("every {} day(s)", seconds / 86_400),
        Some(seconds) if seconds % 3600 == 0 => format!("every {} hour(s)", seconds / 3600),
        Some(seconds) if seconds % 60 == 0 => format!("every {} minute(s)", seconds / 60),
        Some(seconds) => format!("every {seconds} second(s)"),
        None => format!("{recurrence} ({zone})"),
    }
}

fn page_of(overview: Overview, csrf: String) -> JobsPage {
    let (counts, totals) = count_rows(&overview.counts);
    let schedules = overview
        .schedules
        .into_iter()
        .map(|s| ScheduleView {
            recurrence: recurrence_words(&s.recurrence, &s.time_zone),
            next: when_html(When::at(s.next_run_at)),
            last: when_html(s.last_run_at.and_then(When::at)),
            outcome: s.last_outcome.unwrap_or_else(|| "—".into()),
            error: s.last_error.unwrap_or_default(),
            paused: s.paused,
            kind: s.kind,
            owner: s.owner,
        })
        .collect();
    let failed = overview
        .failed
        .into_iter()
        .map(|j| FailedView {
            id: j.id,
            state: j.state.name(),
            attempts: format!("{} of {}", j.attempt, j.max_attempts),
            error: j.errors.last().cloned().unwrap_or_default(),
            when: when_html(
                if j.state == JobState::Retryable { Some(j.scheduled_at) } else { j.finalized_at }
                    .and_then(|t| When::at(t.unix_timestamp())),
            ),
            can_cancel: !j.state.is_finished(),
            kind: j.kind,
        })
        .collect();
    let failing = overview
        .failing_connections
        .into_iter()
        .map(|c| FailingView {
            since: when_html(c.failing_since.and_then(When::at)),
            error: c.last_error.or(c.status_reason).unwrap_or_default(),
            account: c.account.upn,
        })
        .collect();
    JobsPage {
        states: STATE_COLUMNS.iter().map(|s| s.name()).collect(),
        counts,
        totals,
        schedules,
        other_schedules: overview.other_schedules,
        failed,
        failing,
        csrf,
    }
}

pub async fn show(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    match overview(&state, &session.user).await {
        Ok(overview) => render(StatusCode::OK, &page_of(overview, session.csrf_token.clone())),
        Err(problem) => problem.page(),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

async fn act_from_page(state: &AppState, session: &Session, id: i64, csrf: &str, action: Action) -> Response {
    if !session.user.is_admin {
        return Problem::AdminOnly.page();
    }
    if !session::same(&session.csrf_token, csrf) {
        return form_expired();
    }
    let message = match act(state, &session.user, id, action).await {
        Ok(job) => Message::success(match action {
            Action::Retry => format!("Job {id} ({}) will run again now.", job.kind),
            Action::Cancel => format!("Job {id} ({}) is cancelled: it will not run again.", job.kind),
        }),
        Err(problem @ (Problem::Conflict(_) | Problem::NotFound(_))) => Message::error(problem.in_words()),
        Err(problem) => return problem.page(),
    };
    session::done(state, session, "/admin/jobs", Flash::message(message))
}

pub async fn retry(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    act_from_page(&state, &session, id, &form.csrf, Action::Retry).await
}

pub async fn cancel(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    act_from_page(&state, &session, id, &form.csrf, Action::Cancel).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_become_one_row_per_kind_with_a_column_per_state() {
        let count = |kind: &str, state: &str, count| JobCount { kind: kind.into(), state: state.into(), count };
        let (rows, totals) = count_rows(&[
            count("a", "available", 2),
            count("a", "discarded", 1),
            count("b", "completed", 5),
            count("b", "a state from a later River", 9),
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].cells, vec![2, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(rows[1].cells, vec![0, 0, 0, 0, 0, 5, 0, 0]);
        assert_eq!(totals, vec![2, 0, 0, 0, 0, 5, 0, 1]);
    }

    #[test]
    fn recurrences_read_as_words() {
        assert_eq!(recurrence_words("every 3600s", "UTC"), "every 1 hour(s)");
        assert_eq!(recurrence_words("every 86400s", "UTC"), "every 1 day(s)");
        assert_eq!(recurrence_words("every 90s", "UTC"), "every 90 second(s)");
        assert_eq!(recurrence_words("30 2 * * *", "Europe/Paris"), "30 2 * * * (Europe/Paris)");
    }
}
