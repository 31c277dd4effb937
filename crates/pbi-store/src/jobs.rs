//! The job engine's own tables (River's schema, created by `pbi-jobs`), where River's client has no call for
//! what pbi-bridge needs: counts by kind and state (the admin page, the metrics), making a waiting job due only
//! while it still waits (River's `retry` also revives a job that has just finished), and who leads.

use crate::db::{DbRow, Pool, on_pool};
use crate::{Result, Store};

/// How many jobs of one kind are in one state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    pub kind: String,
    pub state: String,
    pub count: i64,
}

impl Store {
    /// Jobs by kind and state (River's state names: `available`, `scheduled`, `running`, `retryable`, …).
    /// Empty when the engine's tables do not exist yet.
    pub async fn job_counts(&self) -> Result<Vec<JobCount>> {
        // `state` is an enum on PostgreSQL and text on SQLite: the cast reads both as text.
        let counted: std::result::Result<Vec<JobCount>, sqlx::Error> = on_pool!(&self.pool, |pool| {
            match sqlx::query(
                "SELECT kind, CAST(state AS TEXT) AS state, COUNT(*) AS count FROM river_job GROUP BY kind, state ORDER BY kind, state",
            )
            .fetch_all(pool)
            .await
            {
                Ok(rows) => Ok(rows.iter().map(count_from).collect::<Result<Vec<_>>>()?),
                Err(error) => Err(error),
            }
        });
        match counted {
            Ok(counts) => Ok(counts),
            Err(sqlx::Error::Database(error)) if error.message().contains("river_job") => Ok(Vec::new()),
            Err(error) => Err(error.into()),
        }
    }
}

impl Store {
    /// Makes job `id` due now if, and only if, it is still waiting for its first run (`scheduled`, never
    /// attempted); true when it was. One conditional statement, so a job that ran and finished in the meantime
    /// is never run again, and a job that snoozed or waits to be retried keeps the time it asked for.
    pub async fn make_scheduled_job_due(&self, id: i64) -> Result<bool> {
        // River's own time format on SQLite (text, UTC, milliseconds), so its fetch compares it as it writes it.
        let changed = match &self.pool {
            Pool::Sqlite(pool) => sqlx::query(
                "UPDATE river_job SET state = 'available', scheduled_at = strftime('%Y-%m-%d %H:%M:%f', 'now') \
                 WHERE id = ? AND state = 'scheduled' AND attempted_at IS NULL",
            )
            .bind(id)
            .execute(pool)
            .await?
            .rows_affected(),
            Pool::Postgres(pool) => {
                sqlx::query(
                    "UPDATE river_job SET state = 'available', scheduled_at = now() WHERE id = $1 AND state = 'scheduled' AND attempted_at IS NULL",
                )
                    .bind(id)
                    .execute(pool)
                    .await?
                    .rows_affected()
            }
        };
        Ok(changed == 1)
    }

    /// The id of the engine client that holds the leadership now, if one does.
    pub async fn job_leader(&self) -> Result<Option<String>> {
        let leader = match &self.pool {
            Pool::Sqlite(pool) => {
                sqlx::query_scalar("SELECT leader_id FROM river_leader WHERE expires_at > strftime('%Y-%m-%d %H:%M:%f', 'now')")
                    .fetch_optional(pool)
                    .await?
            }
            Pool::Postgres(pool) => {
                sqlx::query_scalar("SELECT leader_id FROM river_leader WHERE expires_at > now()").fetch_optional(pool).await?
            }
        };
        Ok(leader)
    }
}

fn count_from(row: &impl DbRow) -> Result<JobCount> {
    Ok(JobCount { kind: row.field("kind")?, state: row.field("state")?, count: row.field("count")? })
}
