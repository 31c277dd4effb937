//! Seed 001's templates: per visual kind (its name as `pbi-subscriptions` writes it, never read here), what
//! pbi-bridge made in the templates workspace, and the report and tile the check found once an administrator
//! pinned the kind's visual in Power BI.

use crate::db::{DbRow, on_pool, on_tx};
use crate::{Result, Store, optional_uuid_of, uuid_of};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRow {
    pub kind: String,
    pub workspace_id: Uuid,
    pub dataset_id: Uuid,
    pub dashboard_id: Uuid,
    /// The report and tile a pin clones: `None` until the check finds the kind's visual pinned.
    pub report_id: Option<Uuid>,
    pub tile_id: Option<Uuid>,
    /// When the check last looked.
    pub checked_at: Option<i64>,
    pub updated_at: i64,
}

fn template_from(row: &impl DbRow) -> Result<TemplateRow> {
    Ok(TemplateRow {
        kind: row.field("kind")?,
        workspace_id: uuid_of(row, "workspace_id")?,
        dataset_id: uuid_of(row, "dataset_id")?,
        dashboard_id: uuid_of(row, "dashboard_id")?,
        report_id: optional_uuid_of(row, "report_id")?,
        tile_id: optional_uuid_of(row, "tile_id")?,
        checked_at: row.field("checked_at")?,
        updated_at: row.field("updated_at")?,
    })
}

impl Store {
    /// The templates, by kind name.
    pub async fn templates(&self) -> Result<Vec<TemplateRow>> {
        on_pool!(&self.pool, |pool| sqlx::query(
            "SELECT kind, workspace_id, dataset_id, dashboard_id, report_id, tile_id, checked_at, updated_at FROM templates ORDER BY kind"
        )
        .fetch_all(pool)
        .await?
        .iter()
        .map(template_from)
        .collect())
    }

    /// Replaces every template (a new templates workspace was made), in one transaction.
    pub async fn replace_templates(&self, rows: &[TemplateRow]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM templates").execute(&mut *conn).await?;
            for row in rows {
                sqlx::query(
                    "INSERT INTO templates (kind, workspace_id, dataset_id, dashboard_id, report_id, tile_id, checked_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&row.kind)
                .bind(row.workspace_id.to_string())
                .bind(row.dataset_id.to_string())
                .bind(row.dashboard_id.to_string())
                .bind(row.report_id.map(|r| r.to_string()))
                .bind(row.tile_id.map(|t| t.to_string()))
                .bind(row.checked_at)
                .bind(row.updated_at)
                .execute(&mut *conn)
                .await?;
            }
        });
        tx.commit().await?;
        Ok(())
    }

    /// What a check found for one kind: its report and tile, or none yet.
    pub async fn set_template_found(&self, kind: &str, found: Option<(Uuid, Uuid)>, now: i64) -> Result<()> {
        on_pool!(&self.pool, |pool| {
            sqlx::query("UPDATE templates SET report_id = $1, tile_id = $2, checked_at = $3, updated_at = $3 WHERE kind = $4")
                .bind(found.map(|(report, _)| report.to_string()))
                .bind(found.map(|(_, tile)| tile.to_string()))
                .bind(now)
                .bind(kind)
                .execute(pool)
                .await?;
        });
        Ok(())
    }
}
