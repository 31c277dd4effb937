//! Schedules at run time. Each occurrence is one job with the unique key `(schedule, due time)`; when it ends,
//! one transaction records the outcome, computes the next time (on pbi-bridge's clock), enqueues the next
//! occurrence and completes this one. A sweeper enqueues any schedule whose next run is due and has no job
//! waiting (after a crash, a restore, an edit), and makes due a waiting job whose wall-clock time is later than
//! pbi-bridge's clock says (a shifted or manual clock, as in tests).

use crate::JobState;
use crate::engine::{Core, Engine, Enqueued, JobsError, OccurrenceEnd, Result};
use crate::schedule::{Recurrence, Schedule};
use pbi_store::{NewSchedule, ScheduleRow, StoreTx};
use time::OffsetDateTime;
use uuid::Uuid;

/// Which occurrence of which schedule a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Occurrence {
    pub schedule: Uuid,
    /// When it was due, in Unix seconds on pbi-bridge's clock.
    pub due: i64,
}

impl Occurrence {
    pub(crate) fn unique_key(&self) -> String {
        format!("schedule:{}@{}", self.schedule, self.due)
    }
}

/// A schedule as its owner asks for it: what to run (a registered kind and its arguments), for whom, how often.
#[derive(Debug, Clone)]
pub struct ScheduleSpec {
    pub kind: &'static str,
    /// `system`, or the owning thing (`subscription:<id>`): one schedule per kind and owner.
    pub owner: String,
    pub args: serde_json::Value,
    pub schedule: Schedule,
}

/// How a recurrence is stored: `every <n>s`, or the cron expression as written.
pub fn recurrence_text(schedule: &Schedule) -> String {
    match schedule.recurrence() {
        Recurrence::Every(every) => format!("every {}s", every.as_secs()),
        Recurrence::Cron(cron) => cron.pattern.to_string(),
    }
}

/// Reads a stored schedule's recurrence back.
pub fn parse_stored(row: &ScheduleRow) -> Result<Schedule> {
    Schedule::parse(&row.recurrence, &row.time_zone).map_err(|e| JobsError::Invalid(format!("schedule {} ({}): {e}", row.id, row.kind)))
}

impl Engine {
    /// Creates a schedule, or changes the one of the same kind and owner; the first occurrence is the next
    /// after now. The kind must be registered with this engine.
    pub async fn schedule(&self, spec: &ScheduleSpec) -> Result<ScheduleRow> {
        if !self.core().kinds.contains_key(spec.kind) {
            return Err(JobsError::Invalid(format!("{}: no handler is registered for this kind", spec.kind)));
        }
        let now = self.clock().now();
        let next = spec.schedule.next_after(now).ok_or_else(|| JobsError::Invalid(format!("{}: the schedule never runs", spec.kind)))?;
        let row = NewSchedule {
            kind: spec.kind.to_owned(),
            owner: spec.owner.clone(),
            args: spec.args.to_string(),
            recurrence: recurrence_text(&spec.schedule),
            time_zone: spec.schedule.zone_name().to_owned(),
            next_run_at: next.unix_timestamp(),
        };
        let row = self.store().upsert_schedule(&row, now.unix_timestamp()).await?;
        // A new schedule's first occurrence is enqueued now, waiting in River for its time, as every later one
        // is when the one before ends; the sweeper is then only the safety net (one transaction per schedule,
        // it makes a few hundred due a second: a burst of new schedules would start late).
        if row.pending_job_id.is_none() && !row.paused {
            let at = OffsetDateTime::from_unix_timestamp(row.next_run_at).unwrap_or(now);
            if enqueue_occurrence(self.core(), &row, Some(self.core().river_time(at))).await? {
                return self.store().schedule(row.id).await?.ok_or_else(|| JobsError::Invalid(format!("schedule {}: deleted", row.id)));
            }
        }
        Ok(row)
    }

    /// Deletes the schedule of `kind` and `owner` and cancels its waiting occurrence (one already running ends
    /// as it is, and finds its schedule gone); false when there was none.
    pub async fn unschedule(&self, kind: &str, owner: &str) -> Result<bool> {
        let Some(row) = self.store().delete_schedule(kind, owner).await? else { return Ok(false) };
        if let Some(job) = row.pending_job_id
            && self.get(job).await?.is_some_and(|j| !j.state.is_finished() && j.state != JobState::Running)
        {
            self.cancel(job).await?;
        }
        Ok(true)
    }

    /// One sweep now (the engine also sweeps by itself every `sweep_every`); returns how many occurrences it
    /// enqueued or made due.
    pub async fn sweep(&self) -> Result<usize> {
        sweep(self.core()).await
    }
}

pub(crate) async fn sweep(core: &Core) -> Result<usize> {
    let now = core.clock.unix();
    let due = core.store.due_schedules(now, 1000).await?;
    let mut moved = 0;
    for row in due {
        if let Some(job) = row.pending_job_id {
            // Due by our clock, later by River's: make it due now, if it still waits (a job that ran meanwhile
            // must not run again, which River's `retry` would do).
            if core.store.make_scheduled_job_due(job).await? {
                moved += 1;
                continue;
            }
            match core.client.jobs().get(job).await {
                Ok(waiting) if !crate::engine::state_of(&waiting).is_finished() => continue,
                Ok(_) | Err(riverqueue::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if enqueue_occurrence(core, &row, None).await? {
            moved += 1;
        }
    }
    Ok(moved)
}

/// Enqueues the schedule's next occurrence (River time `run_at`, or now) and notes it as the pending job;
/// false when this build does not know the kind (an instance that knows it enqueues it) or the schedule
/// moved on meanwhile (another instance recorded the occurrence: ours is dropped).
async fn enqueue_occurrence(core: &Core, row: &ScheduleRow, run_at: Option<OffsetDateTime>) -> Result<bool> {
    let Some(kind) = core.kinds.get(row.kind.as_str()) else { return Ok(false) };
    let occurrence = Occurrence { schedule: row.id, due: row.next_run_at };
    let mut tx = core.store.begin().await?;
    let enqueued = kind.enqueue(&core.client, &mut tx, &row.args, occurrence, run_at).await?;
    if core.store.note_pending_occurrence(&mut tx, row.id, row.next_run_at, enqueued.id).await? {
        tx.commit().await?;
        Ok(true)
    } else {
        tx.rollback().await?;
        Ok(false)
    }
}

impl Core {
    /// Whether `occurrence` is no longer its schedule's next (the schedule was edited or deleted since).
    pub(crate) async fn is_stale(&self, occurrence: Occurrence) -> Result<bool> {
        Ok(self.store.schedule(occurrence.schedule).await?.is_none_or(|row| row.next_run_at != occurrence.due))
    }

    /// River's run time for a moment on pbi-bridge's clock: the same instant on the system clock, the same
    /// distance ahead of the wall clock on a manual or shifted one (the sweeper makes it due when ours says so).
    pub(crate) fn river_time(&self, at: OffsetDateTime) -> OffsetDateTime {
        OffsetDateTime::now_utc() + (at - self.clock.now())
    }

    /// Records how an occurrence ended, computes and enqueues the next one, and (when `complete`) completes
    /// this job: all in one transaction. Nothing changes if the schedule was deleted or has moved on.
    pub(crate) async fn end_occurrence(&self, context: &riverqueue::WorkContext, end: OccurrenceEnd<'_>, complete: bool) -> Result<()> {
        let Some(row) = self.store.schedule(end.occurrence.schedule).await? else { return Ok(()) };
        let schedule = parse_stored(&row)?;
        let now = self.clock.now();
        let due = OffsetDateTime::from_unix_timestamp(end.occurrence.due).unwrap_or(now);
        let next = schedule.next_from(due, now).ok_or_else(|| JobsError::Invalid(format!("schedule {}: no next run", row.id)))?;
        let kind = self.kinds.get(end.kind).ok_or_else(|| JobsError::Invalid(format!("{}: not registered", end.kind)))?;
        let mut tx = self.store.begin().await?;
        let following = Occurrence { schedule: row.id, due: next.unix_timestamp() };
        let enqueued: Enqueued = kind.enqueue(&self.client, &mut tx, end.args, following, Some(self.river_time(next))).await?;
        let recorded = self
            .store
            .record_occurrence(
                &mut tx,
                row.id,
                end.occurrence.due,
                now.unix_timestamp(),
                end.outcome,
                end.error,
                following.due,
                Some(enqueued.id),
            )
            .await?;
        if !recorded {
            tx.rollback().await?;
            return Ok(());
        }
        if complete {
            complete_in(context, &mut tx).await?;
        }
        Ok(tx.commit().await?)
    }
}

async fn complete_in(context: &riverqueue::WorkContext, tx: &mut StoreTx<'static>) -> Result<()> {
    match tx {
        StoreTx::Sqlite(tx) => context.job_complete_tx(tx).await?,
        StoreTx::Postgres(tx) => context.job_complete_tx(tx).await?,
    };
    Ok(())
}
