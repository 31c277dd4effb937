//! The API's background jobs: the queue by kind and state, the schedules, failed jobs, and retry or cancel.
//! Administrators only; the page `/admin/jobs` shows the same.

use super::edge::{Answer, Caller, ErrorBody, Refusals, rfc3339};
use crate::AppState;
use crate::jobs::{Action, Overview};
use crate::problem::Problem;
use axum::extract::{Path, State};
use pbi_jobs::JobInfo;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobCountOut {
    /// The job kind, such as connections.refresh.
    kind: String,
    /// available, scheduled, running, retryable, pending, completed, cancelled or discarded.
    state: String,
    count: i64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ScheduleOut {
    kind: String,
    /// `system`, or what the schedule belongs to.
    owner: String,
    /// A cron expression, or `every <n>s`.
    recurrence: String,
    time_zone: String,
    #[schema(format = DateTime)]
    next_run_at: String,
    paused: bool,
    #[schema(format = DateTime)]
    last_run_at: Option<String>,
    /// completed, failed or cancelled.
    last_outcome: Option<String>,
    last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobOut {
    id: i64,
    kind: String,
    state: String,
    /// Attempts made so far.
    attempt: u16,
    max_attempts: u16,
    /// Each failed attempt's error, oldest first.
    errors: Vec<String>,
    #[schema(format = DateTime)]
    created_at: String,
    /// When it runs (for a retryable job: when it runs next).
    #[schema(format = DateTime)]
    scheduled_at: String,
    #[schema(format = DateTime)]
    finalized_at: Option<String>,
    /// The job's arguments (never a token or a secret: a job names what it acts as).
    #[schema(value_type = Object)]
    args: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct FailingConnectionOut {
    /// The Power BI account (user principal name).
    account: String,
    #[schema(format = DateTime)]
    failing_since: Option<String>,
    error: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct JobsOverview {
    counts: Vec<JobCountOut>,
    /// pbi-bridge's own schedules (owner `system`).
    schedules: Vec<ScheduleOut>,
    /// How many schedules of each kind other owners have (subscriptions' and the like), counted, not listed.
    other_schedules: Vec<ScheduleCountOut>,
    /// Retryable and discarded jobs, newest first (at most 50).
    failed: Vec<JobOut>,
    /// Connections that have not worked for 4 days or more.
    failing_connections: Vec<FailingConnectionOut>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ScheduleCountOut {
    kind: String,
    count: i64,
}

fn job_out(job: JobInfo) -> JobOut {
    JobOut {
        id: job.id,
        state: job.state.name().to_owned(),
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        errors: job.errors,
        created_at: rfc3339(job.created_at.unix_timestamp()),
        scheduled_at: rfc3339(job.scheduled_at.unix_timestamp()),
        finalized_at: job.finalized_at.map(|t| rfc3339(t.unix_timestamp())),
        args: job.args,
        kind: job.kind,
    }
}

fn overview_out(overview: Overview) -> JobsOverview {
    JobsOverview {
        counts: overview.counts.into_iter().map(|c| JobCountOut { kind: c.kind, state: c.state, count: c.count }).collect(),
        schedules: overview
            .schedules
            .into_iter()
            .map(|s| ScheduleOut {
                next_run_at: rfc3339(s.next_run_at),
                last_run_at: s.last_run_at.map(rfc3339),
                kind: s.kind,
                owner: s.owner,
                recurrence: s.recurrence,
                time_zone: s.time_zone,
                paused: s.paused,
                last_outcome: s.last_outcome,
                last_error: s.last_error,
            })
            .collect(),
        other_schedules: overview.other_schedules.into_iter().map(|(kind, count)| ScheduleCountOut { kind, count }).collect(),
        failed: overview.failed.into_iter().map(job_out).collect(),
        failing_connections: overview
            .failing_connections
            .into_iter()
            .map(|c| FailingConnectionOut {
                failing_since: c.failing_since.map(rfc3339),
                error: c.last_error.or(c.status_reason),
                account: c.account.upn,
            })
            .collect(),
    }
}

/// A job id from the path: a whole number, as the overview gives them. An administrator's operation is
/// refused to anyone else before its input is looked at.
fn job_id(caller: &Caller, text: &str) -> Result<i64, Problem> {
    if !caller.user.is_admin {
        return Err(Problem::AdminOnly);
    }
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| Problem::invalid("id", "A job id is a whole number greater than 0, as the jobs overview gives it."))
}

/// The background jobs: counts by kind and state, the schedules, failed jobs and failing connections.
/// Administrators only.
#[utoipa::path(get, path = "/admin/jobs", tag = "Administration", operation_id = "getJobsOverview",
    responses((status = 200, description = "OK", body = JobsOverview), Refusals))]
pub(super) async fn jobs_overview(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<JobsOverview>> {
    Ok(axum::Json(overview_out(crate::jobs::overview(&state, &caller.user).await?)))
}

/// One job, with every failed attempt's error. Administrators only.
#[utoipa::path(get, path = "/admin/jobs/{id}", tag = "Administration", operation_id = "getJob",
    params(("id" = i64, Path, description = "The job's id", minimum = 1)),
    responses((status = 200, description = "OK", body = JobOut), Refusals))]
pub(super) async fn get_job(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<String>) -> Answer<axum::Json<JobOut>> {
    Ok(axum::Json(job_out(crate::jobs::job(&state, &caller.user, job_id(&caller, &id)?).await?)))
}

/// Runs a job again now (a failed, discarded, cancelled or scheduled one). Administrators only.
#[utoipa::path(post, path = "/admin/jobs/{id}/retry", tag = "Administration", operation_id = "retryJob",
    params(("id" = i64, Path, description = "The job's id", minimum = 1)),
    responses((status = 200, description = "The job as it is now", body = JobOut), Refusals,
    (status = 409, description = "The job is running", body = ErrorBody)))]
pub(super) async fn retry_job(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<String>) -> Answer<axum::Json<JobOut>> {
    Ok(axum::Json(job_out(crate::jobs::act(&state, &caller.user, job_id(&caller, &id)?, Action::Retry).await?)))
}

/// Cancels a job that has not finished (a running one is asked to stop). Administrators only.
#[utoipa::path(post, path = "/admin/jobs/{id}/cancel", tag = "Administration", operation_id = "cancelJob",
    params(("id" = i64, Path, description = "The job's id", minimum = 1)),
    responses((status = 200, description = "The job as it is now", body = JobOut), Refusals,
    (status = 409, description = "The job has already finished", body = ErrorBody)))]
pub(super) async fn cancel_job(State(state): State<Arc<AppState>>, caller: Caller, Path(id): Path<String>) -> Answer<axum::Json<JobOut>> {
    Ok(axum::Json(job_out(crate::jobs::act(&state, &caller.user, job_id(&caller, &id)?, Action::Cancel).await?)))
}
