//! `pbi-bridge jobs`: the background engine's jobs and schedules, seen and acted on from the command line.

use crate::config::{Create, StoreArgs};
use crate::powerbi::output::print_list;
use crate::powerbi::usage_error;
use clap::Subcommand;
use pbi_jobs::{Engine, JobInfo, JobState};
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum JobsCommand {
    /// Lists jobs, newest first: id, kind, state, attempts, when it runs (or ran) and its last error.
    List {
        /// Only jobs in this state (repeatable): available, scheduled, running, retryable, pending, completed,
        /// cancelled or discarded.
        #[arg(long, value_parser = parse_state)]
        state: Vec<JobState>,
        /// Only jobs of this kind (repeatable), such as housekeeping.purge.
        #[arg(long)]
        kind: Vec<String>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// The next page: jobs after this id (the last id of the page before).
        #[arg(long)]
        after: Option<i64>,
    },
    /// Shows one job in full: its arguments and every failed attempt's error.
    Show {
        /// The job's id (from jobs list).
        id: i64,
    },
    /// Runs a job again now: a failed, discarded, cancelled or scheduled one.
    Retry {
        /// The job's id (from jobs list).
        id: i64,
    },
    /// Cancels a job that has not finished (a running one is asked to stop).
    Cancel {
        /// The job's id (from jobs list).
        id: i64,
    },
    /// Lists the schedules: kind, owner, recurrence, next and last run, and how the last one ended.
    Schedules,
}

fn parse_state(text: &str) -> Result<JobState, String> {
    JobState::ALL
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| format!("'{text}' is not a job state; use one of {}", JobState::ALL.map(JobState::name).join(", ")))
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn unix(at: Option<i64>) -> Option<String> {
    at.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok()).map(rfc3339)
}

fn describe(job: &JobInfo) -> Value {
    json!({
        "id": job.id, "kind": job.kind, "state": job.state.name(), "attempt": job.attempt, "maxAttempts": job.max_attempts,
        "scheduledAt": rfc3339(job.scheduled_at), "createdAt": rfc3339(job.created_at),
        "attemptedAt": job.attempted_at.map(rfc3339), "finalizedAt": job.finalized_at.map(rfc3339),
        "uniqueKey": job.unique_key, "errors": job.errors, "args": job.args,
    })
}

async fn found(engine: &Engine, id: i64) -> anyhow::Result<JobInfo> {
    engine.get(id).await?.ok_or_else(|| usage_error(format!("there is no job {id}; `pbi-bridge jobs list` shows them")).into())
}

pub async fn run(store_args: &StoreArgs, command: JobsCommand, json_output: bool) -> anyhow::Result<()> {
    let (store, _) = store_args.open(Create::No).await?;
    // Enqueues and manages, never works: the jobs are run by `serve` or `up`.
    let engine = Engine::insert_only(store.clone(), pbi_clock::Clock::system()).await?;
    match command {
        JobsCommand::List { state, kind, limit, after } => {
            let kinds: Vec<&str> = kind.iter().map(String::as_str).collect();
            let jobs = engine.list(&kinds, &state, limit, after).await?;
            let rows = jobs
                .iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        j.kind.clone(),
                        j.state.name().to_owned(),
                        format!("{}/{}", j.attempt, j.max_attempts),
                        rfc3339(j.finalized_at.unwrap_or(j.scheduled_at)),
                        j.errors.last().cloned().unwrap_or_default(),
                    ]
                })
                .collect();
            let items: Vec<Value> = jobs.iter().map(describe).collect();
            print_list(json_output, &items, &["ID", "KIND", "STATE", "ATTEMPTS", "RUNS/RAN AT", "LAST ERROR"], rows);
        }
        JobsCommand::Show { id } => println!("{}", serde_json::to_string_pretty(&describe(&found(&engine, id).await?))?),
        JobsCommand::Retry { id } => {
            found(&engine, id).await?;
            let job = engine.retry(id).await?;
            say(json_output, &job, &format!("Job {id} ({}) will run again now.", job.kind));
        }
        JobsCommand::Cancel { id } => {
            let before = found(&engine, id).await?;
            if before.state.is_finished() {
                return Err(usage_error(format!("job {id} has already ended ({}): there is nothing to cancel", before.state.name())).into());
            }
            let job = engine.cancel(id).await?;
            say(json_output, &job, &format!("Job {id} ({}) is cancelled.", job.kind));
        }
        JobsCommand::Schedules => {
            let schedules = store.schedules().await?;
            let rows = schedules
                .iter()
                .map(|s| {
                    vec![
                        s.kind.clone(),
                        s.owner.clone(),
                        format!("{} ({})", s.recurrence, s.time_zone),
                        unix(Some(s.next_run_at)).unwrap_or_default(),
                        unix(s.last_run_at).unwrap_or_else(|| "never".into()),
                        s.last_outcome.clone().unwrap_or_default(),
                        if s.paused { "paused".into() } else { String::new() },
                    ]
                })
                .collect();
            let items: Vec<Value> = schedules
                .iter()
                .map(|s| {
                    json!({
                        "id": s.id, "kind": s.kind, "owner": s.owner, "recurrence": s.recurrence, "timeZone": s.time_zone,
                        "nextRunAt": unix(Some(s.next_run_at)), "lastRunAt": unix(s.last_run_at), "lastOutcome": s.last_outcome,
                        "lastError": s.last_error, "paused": s.paused, "pendingJob": s.pending_job_id,
                    })
                })
                .collect();
            print_list(json_output, &items, &["KIND", "OWNER", "RECURRENCE", "NEXT RUN", "LAST RUN", "OUTCOME", ""], rows);
        }
    }
    engine.stop().await?;
    Ok(())
}

fn say(json_output: bool, job: &JobInfo, sentence: &str) {
    if json_output {
        println!("{}", serde_json::to_string_pretty(&describe(job)).unwrap_or_default());
    } else {
        println!("{sentence}");
    }
}
