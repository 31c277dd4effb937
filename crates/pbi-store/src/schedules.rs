//! Schedules: what recurs (a job kind and its arguments, for an owner), how (a cron expression or an interval,
//! in a time zone), and when it runs next. pbi-jobs computes the times and runs each occurrence as one job; the
//! store keeps the rows, and records an occurrence's outcome in the same transaction that completes it.

use crate::db::{DbRow, StoreTx, on_pool, on_tx};
use crate::{Result, Store, StoreError, uuid_of};
use uuid::Uuid;

/// A recurring piece of background work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRow {
    pub id: Uuid,
    /// The job kind each occurrence runs (`housekeeping.purge`).
    pub kind: String,
    /// Whose work it is: `system`, or the owning thing (`subscription:<id>`); one schedule per kind and owner.
    pub owner: String,
    /// The job's arguments, JSON.
    pub args: String,
    /// A cron expression, or `every <n>s`.
    pub recurrence: String,
    pub time_zone: String,
    /// When the next occurrence is due, in Unix seconds on pbi-bridge's clock.
    pub next_run_at: i64,
    pub paused: bool,
    /// The job of the occurrence enqueued and not yet finished, if any.
    pub pending_job_id: Option<i64>,
    pub last_run_at: Option<i64>,
    /// `completed`, `failed` or `cancelled`, with `last_error` for a failure.
    pub last_outcome: Option<String>,
    pub last_error: Option<String>,
}

/// A schedule to create, or to change when one of the same kind and owner exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSchedule {
    pub kind: String,
    pub owner: String,
    pub args: String,
    pub recurrence: String,
    pub time_zone: String,
    pub next_run_at: i64,
}

macro_rules! schedule_columns {
    () => {
        "id, kind, owner, args, recurrence, time_zone, next_run_at, paused, pending_job_id, last_run_at, last_outcome, last_error"
    };
}

fn schedule_from(row: &impl DbRow) -> Result<ScheduleRow> {
    Ok(ScheduleRow {
        id: uuid_of(row, "id")?,
        kind: row.field("kind")?,
        owner: row.field("owner")?,
        args: row.field("args")?,
        recurrence: row.field("recurrence")?,
        time_zone: row.field("time_zone")?,
        next_run_at: row.field("next_run_at")?,
        paused: row.field::<i64>("paused")? != 0,
        pending_job_id: row.field("pending_job_id")?,
        last_run_at: row.field("last_run_at")?,
        last_outcome: row.field("last_outcome")?,
        last_error: row.field("last_error")?,
    })
}

impl Store {
    /// Creates the schedule of `kind` for `owner`, or changes its recurrence, zone and arguments (and, when
    /// the recurrence or zone changed, its next run) if it exists. Returns it as stored.
    pub async fn upsert_schedule(&self, schedule: &NewSchedule, now: i64) -> Result<ScheduleRow> {
        let id = Uuid::new_v4();
        on_pool!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO schedules (id, kind, owner, args, recurrence, time_zone, next_run_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
                 ON CONFLICT (kind, owner) DO UPDATE SET args = excluded.args, \
                 next_run_at = CASE WHEN schedules.recurrence = excluded.recurrence AND schedules.time_zone = excluded.time_zone \
                     THEN schedules.next_run_at ELSE excluded.next_run_at END, \
                 recurrence = excluded.recurrence, time_zone = excluded.time_zone, updated_at = excluded.updated_at",
            )
            .bind(id.to_string())
            .bind(&schedule.kind)
            .bind(&schedule.owner)
            .bind(&schedule.args)
            .bind(&schedule.recurrence)
            .bind(&schedule.time_zone)
            .bind(schedule.next_run_at)
            .bind(now)
            .execute(pool)
            .await?;
        });
        self.schedule_of(&schedule.kind, &schedule.owner)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("schedule {} of {}", schedule.kind, schedule.owner)))
    }

    pub async fn schedule_of(&self, kind: &str, owner: &str) -> Result<Option<ScheduleRow>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", schedule_columns!(), " FROM schedules WHERE kind = $1 AND owner = $2"))
            .bind(kind)
            .bind(owner)
            .fetch_optional(pool)
            .await?
            .map(|row| schedule_from(&row))
            .transpose())
    }

    pub async fn schedule(&self, id: Uuid) -> Result<Option<ScheduleRow>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", schedule_columns!(), " FROM schedules WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?
            .map(|row| schedule_from(&row))
            .transpose())
    }

    /// Deletes the schedule of `kind` and `owner` (a deleted subscription's), giving the row it was (for its
    /// pending job, which the caller cancels); `None` when there was none.
    pub async fn delete_schedule(&self, kind: &str, owner: &str) -> Result<Option<ScheduleRow>> {
        let Some(row) = self.schedule_of(kind, owner).await? else { return Ok(None) };
        on_pool!(&self.pool, |pool| sqlx::query("DELETE FROM schedules WHERE id = $1")
            .bind(row.id.to_string())
            .execute(pool)
            .await
            .map(drop)?);
        Ok(Some(row))
    }

    /// Every schedule, by kind and owner.
    pub async fn schedules(&self) -> Result<Vec<ScheduleRow>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", schedule_columns!(), " FROM schedules ORDER BY kind, owner"))
            .fetch_all(pool)
            .await?
            .iter()
            .map(schedule_from)
            .collect())
    }

    /// The schedules of one owner (`system`: pbi-bridge's own), by kind.
    pub async fn schedules_of(&self, owner: &str) -> Result<Vec<ScheduleRow>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", schedule_columns!(), " FROM schedules WHERE owner = $1 ORDER BY kind"))
            .bind(owner)
            .fetch_all(pool)
            .await?
            .iter()
            .map(schedule_from)
            .collect())
    }

    /// How many schedules of each kind the owners other than `owner` have (subscriptions' and the like: too
    /// many to list on one page), by kind.
    pub async fn schedule_counts_except(&self, owner: &str) -> Result<Vec<(String, i64)>> {
        on_pool!(&self.pool, |pool| sqlx::query("SELECT kind, COUNT(*) AS n FROM schedules WHERE owner <> $1 GROUP BY kind ORDER BY kind")
            .bind(owner)
            .fetch_all(pool)
            .await?
            .iter()
            .map(|row| Ok((row.field::<String>("kind")?, row.field::<i64>("n")?)))
            .collect::<Result<Vec<_>>>())
    }

    /// Schedules whose next run is due at `now` and that are not paused, earliest first, at most `limit`.
    pub async fn due_schedules(&self, now: i64, limit: i64) -> Result<Vec<ScheduleRow>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            schedule_columns!(),
            " FROM schedules WHERE paused = 0 AND next_run_at <= $1 ORDER BY next_run_at, id LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?
        .iter()
        .map(schedule_from)
        .collect())
    }

    /// Notes the job that runs a schedule's occurrence due at `due` (only while that occurrence is still the
    /// schedule's next one: a sweeper that lost a race changes nothing).
    pub async fn note_pending_occurrence(&self, tx: &mut StoreTx<'_>, id: Uuid, due: i64, job_id: i64) -> Result<bool> {
        let changed = on_tx!(tx, |conn| sqlx::query("UPDATE schedules SET pending_job_id = $1 WHERE id = $2 AND next_run_at = $3")
            .bind(job_id)
            .bind(id.to_string())
            .bind(due)
            .execute(&mut *conn)
            .await?
            .rows_affected());
        Ok(changed == 1)
    }

    /// Records how the occurrence due at `due` ended and when the next one is: in the transaction that
    /// completes the occurrence's job and enqueues the next, so the three happen together or not at all.
    /// `false` when the schedule has moved on (edited, or another occurrence recorded) and nothing changed.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_occurrence(
        &self,
        tx: &mut StoreTx<'_>,
        id: Uuid,
        due: i64,
        ran_at: i64,
        outcome: &str,
        error: Option<&str>,
        next_run_at: i64,
        next_job_id: Option<i64>,
    ) -> Result<bool> {
        let changed = on_tx!(tx, |conn| sqlx::query(
            "UPDATE schedules SET last_run_at = $1, last_outcome = $2, last_error = $3, next_run_at = $4, pending_job_id = $5, \
             updated_at = $1 WHERE id = $6 AND next_run_at = $7"
        )
        .bind(ran_at)
        .bind(outcome)
        .bind(error)
        .bind(next_run_at)
        .bind(next_job_id)
        .bind(id.to_string())
        .bind(due)
        .execute(&mut *conn)
        .await?
        .rows_affected());
        Ok(changed == 1)
    }

    pub async fn set_schedule_paused(&self, id: Uuid, paused: bool, now: i64) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query("UPDATE schedules SET paused = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(paused))
            .bind(now)
            .bind(id.to_string())
            .execute(pool)
            .await?
            .rows_affected());
        if changed == 1 { Ok(()) } else { Err(StoreError::NotFound(format!("schedule {id}"))) }
    }
}
