//! Workspaces and their pins: a user's pages of pinned Power BI tiles. A workspace's name is its owner's
//! only (whatever its case), and a tile is pinned at most once per workspace (migration 7's unique indexes).

use crate::db::{DbRow, on_pool, on_tx};
use crate::{Result, Store, StoreError, one_changed, uuid_of};
use uuid::Uuid;

/// A pbi-bridge workspace: a user's page of pinned Power BI tiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: Uuid,
    pub owner: Uuid,
    pub name: String,
    /// Seed 000's company filter: show only rows of this `Company[ID]`.
    pub company_filter: Option<String>,
    pub created_at: i64,
}

/// A tile pinned to a workspace, as Power BI described it when it was pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub connection_id: Uuid,
    /// The Power BI workspace (`None` for My workspace).
    pub group_id: Option<String>,
    pub dashboard_id: String,
    pub tile_id: String,
    pub title: String,
    pub row_span: i64,
    pub col_span: i64,
    pub embed_url: String,
    pub position: i64,
    /// The dataset the tile shows, as Power BI gave it when pinned (`None` for pins made before it was kept,
    /// and for tiles with no dataset, such as images).
    pub dataset_id: Option<String>,
}

fn workspace_from(row: &impl DbRow) -> Result<Workspace> {
    Ok(Workspace {
        id: uuid_of(row, "id")?,
        owner: uuid_of(row, "owner")?,
        name: row.field("name")?,
        company_filter: row.field("company_filter")?,
        created_at: row.field("created_at")?,
    })
}

fn pin_from(row: &impl DbRow) -> Result<Pin> {
    Ok(Pin {
        id: uuid_of(row, "id")?,
        workspace_id: uuid_of(row, "workspace_id")?,
        connection_id: uuid_of(row, "connection_id")?,
        group_id: row.field("group_id")?,
        dashboard_id: row.field("dashboard_id")?,
        tile_id: row.field("tile_id")?,
        title: row.field("title")?,
        row_span: row.field("row_span")?,
        col_span: row.field("col_span")?,
        embed_url: row.field("embed_url")?,
        position: row.field("position")?,
        dataset_id: row.field("dataset_id")?,
    })
}

/// A unique violation on a workspace's name, in the words its owner used.
fn name_taken(error: StoreError, name: &str) -> StoreError {
    match error {
        StoreError::Conflict(_) => StoreError::Conflict(format!("a workspace named '{name}' already exists")),
        other => other,
    }
}

/// A macro rather than a `const`, so that `concat!` keeps every statement that lists them static SQL.
macro_rules! pin_columns {
    () => {
        "id, workspace_id, connection_id, group_id, dashboard_id, tile_id, title, row_span, col_span, embed_url, position, dataset_id"
    };
}

impl Store {
    pub async fn add_workspace(&self, owner: Uuid, name: &str, now: i64) -> Result<Workspace> {
        let id = Uuid::new_v4();
        on_pool!(&self.pool, |pool| {
            sqlx::query("INSERT INTO workspaces (id, owner, name, created_at) VALUES ($1, $2, $3, $4)")
                .bind(id.to_string())
                .bind(owner.to_string())
                .bind(name)
                .bind(now)
                .execute(pool)
                .await
                .map_err(|e| name_taken(e.into(), name))?;
        });
        Ok(Workspace { id, owner, name: name.to_owned(), company_filter: None, created_at: now })
    }

    /// A workspace, only if `owner` owns it: another user's id is "not found".
    pub async fn workspace(&self, id: Uuid, owner: Uuid) -> Result<Workspace> {
        let found = on_pool!(&self.pool, |pool| sqlx::query(
            "SELECT id, owner, name, company_filter, created_at FROM workspaces WHERE id = $1 AND owner = $2"
        )
        .bind(id.to_string())
        .bind(owner.to_string())
        .fetch_optional(pool)
        .await?
        .map(|row| workspace_from(&row))
        .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("workspace {id}")))
    }

    pub async fn workspaces_of(&self, owner: Uuid) -> Result<Vec<Workspace>> {
        on_pool!(&self.pool, |pool| sqlx::query(
            "SELECT id, owner, name, company_filter, created_at FROM workspaces WHERE owner = $1 ORDER BY created_at"
        )
        .bind(owner.to_string())
        .fetch_all(pool)
        .await?
        .iter()
        .map(workspace_from)
        .collect())
    }

    pub async fn rename_workspace(&self, id: Uuid, owner: Uuid, name: &str) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query("UPDATE workspaces SET name = $1 WHERE id = $2 AND owner = $3")
            .bind(name)
            .bind(id.to_string())
            .bind(owner.to_string())
            .execute(pool)
            .await
            .map_err(|e| name_taken(e.into(), name))?
            .rows_affected());
        one_changed(changed, || format!("workspace {id}"))
    }

    /// Deletes one of `owner`'s workspaces and its pins; another user's is "not found" and untouched.
    pub async fn delete_workspace(&self, id: Uuid, owner: Uuid) -> Result<()> {
        // Writes only, and on SQLite the transaction holds the write lock from its start (`BEGIN IMMEDIATE`):
        // it waits its turn instead of failing with "database is locked" when another write lands in between.
        let mut tx = self.pool.begin().await?;
        let deleted = on_tx!(&mut tx, |conn| {
            sqlx::query("DELETE FROM pins WHERE workspace_id = $1 AND EXISTS (SELECT 1 FROM workspaces WHERE id = $1 AND owner = $2)")
                .bind(id.to_string())
                .bind(owner.to_string())
                .execute(&mut *conn)
                .await?;
            sqlx::query("DELETE FROM workspaces WHERE id = $1 AND owner = $2")
                .bind(id.to_string())
                .bind(owner.to_string())
                .execute(&mut *conn)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            return Err(StoreError::NotFound(format!("workspace {id}")));
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn set_company_filter(&self, id: Uuid, owner: Uuid, company: Option<&str>) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query("UPDATE workspaces SET company_filter = $1 WHERE id = $2 AND owner = $3")
            .bind(company.map(str::to_owned))
            .bind(id.to_string())
            .bind(owner.to_string())
            .execute(pool)
            .await?
            .rows_affected());
        one_changed(changed, || format!("workspace {id}"))
    }

    /// Pins a tile at the end of the workspace (the workspace's owner is checked by the caller via `workspace`).
    pub async fn add_pin(&self, pin: &Pin, now: i64) -> Result<Pin> {
        // Two pins at once must not share a position: the transaction first writes the workspace's row, which
        // takes its lock (PostgreSQL; SQLite's write lock is held from `BEGIN IMMEDIATE`), so the next position
        // is read after the other's.
        let mut tx = self.pool.begin().await?;
        let touched = on_tx!(&mut tx, |conn| sqlx::query("UPDATE workspaces SET name = name WHERE id = $1")
            .bind(pin.workspace_id.to_string())
            .execute(&mut *conn)
            .await?
            .rows_affected());
        one_changed(touched, || format!("workspace {}", pin.workspace_id))?;
        let id = Uuid::new_v4();
        let position: i64 = on_tx!(&mut tx, |conn| sqlx::query_scalar(concat!(
            "INSERT INTO pins (",
            pin_columns!(),
            ", created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, COALESCE(MAX(position), -1) + 1, $11, $12 FROM pins WHERE workspace_id = $2 \
             RETURNING position"
        ))
        .bind(id.to_string())
        .bind(pin.workspace_id.to_string())
        .bind(pin.connection_id.to_string())
        .bind(pin.group_id.clone())
        .bind(&pin.dashboard_id)
        .bind(&pin.tile_id)
        .bind(&pin.title)
        .bind(pin.row_span)
        .bind(pin.col_span)
        .bind(&pin.embed_url)
        .bind(pin.dataset_id.clone())
        .bind(now)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("'{}' is already pinned here", pin.title)),
            other => other,
        })?);
        tx.commit().await?;
        Ok(Pin { id, position, ..pin.clone() })
    }

    pub async fn pins(&self, workspace_id: Uuid) -> Result<Vec<Pin>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", pin_columns!(), " FROM pins WHERE workspace_id = $1 ORDER BY position"))
            .bind(workspace_id.to_string())
            .fetch_all(pool)
            .await?
            .iter()
            .map(pin_from)
            .collect())
    }

    /// Records the dataset behind a pin made before pbi-bridge kept it (learned from Power BI later).
    pub async fn set_pin_dataset(&self, pin: Uuid, dataset_id: &str) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query("UPDATE pins SET dataset_id = $1 WHERE id = $2")
            .bind(dataset_id)
            .bind(pin.to_string())
            .execute(pool)
            .await?
            .rows_affected());
        one_changed(changed, || format!("pin {pin}"))
    }

    pub async fn remove_pin(&self, workspace_id: Uuid, pin: Uuid) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query("DELETE FROM pins WHERE id = $1 AND workspace_id = $2")
            .bind(pin.to_string())
            .bind(workspace_id.to_string())
            .execute(pool)
            .await?
            .rows_affected());
        one_changed(changed, || format!("pin {pin}"))
    }

    /// Puts the workspace's pins in the order given (ids not in the workspace are refused).
    pub async fn reorder_pins(&self, workspace_id: Uuid, order: &[Uuid]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (position, pin) in order.iter().enumerate() {
            let changed = on_tx!(&mut tx, |conn| sqlx::query("UPDATE pins SET position = $1 WHERE id = $2 AND workspace_id = $3")
                .bind(position as i64)
                .bind(pin.to_string())
                .bind(workspace_id.to_string())
                .execute(&mut *conn)
                .await?
                .rows_affected());
            if changed == 0 {
                return Err(StoreError::NotFound(format!("pin {pin}")));
            }
        }
        tx.commit().await?;
        Ok(())
    }
}
