//! The job engine's own table (`river_job`, River's schema, created by `pbi-jobs`), read for counts: River's
//! client lists jobs but does not count them, and the admin page and the metrics need counts by kind and state.

use crate::db::{DbRow, on_pool};
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

fn count_from(row: &impl DbRow) -> Result<JobCount> {
    Ok(JobCount { kind: row.field("kind")?, state: row.field("state")?, count: row.field("count")? })
}
