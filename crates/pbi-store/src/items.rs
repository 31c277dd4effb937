//! Seed 001's report items: what the application lets its users pin. The store keeps an item's definition as
//! the JSON `pbi-subscriptions` checked (it never interprets it), its source, its parameters, the rows the
//! application pushed for it, and who may pin it (everyone, or the users in `item_pinners`).

use crate::db::{DbRow, StoreTx, on_pool, on_tx};
use crate::{Result, Store, StoreError, changed_one, optional_uuid_of, parse_uuid, uuid_of};
use uuid::Uuid;

/// Where an item's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemSource {
    /// A SQL query on a data source (PostgreSQL or SQLite).
    Query,
    /// An HTTP endpoint of a data source, answering JSON rows or CSV.
    Http,
    /// Rows the application sends to pbi-bridge (`PUT /api/v1/items/{id}/rows`).
    Pushed,
}

impl ItemSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemSource::Query => "query",
            ItemSource::Http => "http",
            ItemSource::Pushed => "pushed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [ItemSource::Query, ItemSource::Http, ItemSource::Pushed].into_iter().find(|s| s.as_str() == text)
    }
}

/// An item as submitted, already checked by its edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub name: String,
    /// JSON: the item as `pbi-subscriptions` checked it (kind, columns, roles, description).
    pub definition: String,
    pub source: ItemSource,
    pub data_source_id: Option<Uuid>,
    /// The SQL, or the endpoint's path and query.
    pub query: Option<String>,
    /// JSON: the named parameters a pin may fix, with their defaults.
    pub parameters: String,
    /// Every pbi-bridge user may pin it; otherwise only `pinners`.
    pub everyone: bool,
    pub pinners: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub id: Uuid,
    pub details: NewItem,
    /// When the application last pushed its rows (a `Pushed` item).
    pub pushed_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

macro_rules! item_columns {
    () => {
        "id, name, definition, source, data_source_id, query, parameters, everyone, pushed_at, created_at, updated_at"
    };
}

/// Binds an item's fields as `$1`..`$8` (name, its folded form, definition, source, data source, query,
/// parameters, everyone), the order both the insert and the update take them in.
macro_rules! bind_item {
    ($query:expr, $new:expr) => {
        $query
            .bind($new.name.trim())
            .bind($new.name.trim().to_lowercase())
            .bind(&$new.definition)
            .bind($new.source.as_str())
            .bind($new.data_source_id.map(|d| d.to_string()))
            .bind(&$new.query)
            .bind(&$new.parameters)
            .bind(i64::from($new.everyone))
    };
}

fn item_from(row: &impl DbRow, pinners: Vec<Uuid>) -> Result<StoredItem> {
    let source: String = row.field("source")?;
    Ok(StoredItem {
        id: uuid_of(row, "id")?,
        details: NewItem {
            name: row.field("name")?,
            definition: row.field("definition")?,
            source: ItemSource::parse(&source).ok_or_else(|| StoreError::Corrupt(format!("item source '{source}'")))?,
            data_source_id: optional_uuid_of(row, "data_source_id")?,
            query: row.field("query")?,
            parameters: row.field("parameters")?,
            everyone: row.field::<i64>("everyone")? == 1,
            pinners,
        },
        pushed_at: row.field("pushed_at")?,
        created_at: row.field("created_at")?,
        updated_at: row.field("updated_at")?,
    })
}

fn store_error(error: sqlx::Error, name: &str) -> StoreError {
    let foreign_key = matches!(&error, sqlx::Error::Database(db) if db.is_foreign_key_violation());
    match StoreError::from(error) {
        StoreError::Conflict(_) => StoreError::Conflict(format!("an item named '{name}' already exists")),
        _ if foreign_key => StoreError::NotFound("the item's data source or one of its pinners".into()),
        other => other,
    }
}

impl Store {
    pub async fn add_item(&self, new: &NewItem, now: i64) -> Result<StoredItem> {
        let id = Uuid::new_v4();
        let mut tx = self.pool.begin().await?;
        on_tx!(&mut tx, |conn| {
            bind_item!(sqlx::query(
                "INSERT INTO items (name, name_folded, definition, source, data_source_id, query, parameters, everyone, id, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
            ), new)
            .bind(id.to_string())
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| store_error(e, &new.name))?;
        });
        set_pinners(&mut tx, id, &new.pinners, &new.name).await?;
        tx.commit().await?;
        self.item(id).await
    }

    /// Replaces an item's definition, source, parameters and pinners (its pushed rows stay).
    pub async fn update_item(&self, id: Uuid, new: &NewItem, now: i64) -> Result<StoredItem> {
        let mut tx = self.pool.begin().await?;
        let changed = on_tx!(&mut tx, |conn| bind_item!(
            sqlx::query(
                "UPDATE items SET name = $1, name_folded = $2, definition = $3, source = $4, data_source_id = $5, query = $6, \
             parameters = $7, everyone = $8, updated_at = $9 WHERE id = $10"
            ),
            new
        )
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(|e| store_error(e, &new.name))?
        .rows_affected());
        if changed == 0 {
            return Err(StoreError::NotFound(format!("item {id}")));
        }
        on_tx!(&mut tx, |conn| sqlx::query("DELETE FROM item_pinners WHERE item_id = $1")
            .bind(id.to_string())
            .execute(&mut *conn)
            .await
            .map(drop)?);
        set_pinners(&mut tx, id, &new.pinners, &new.name).await?;
        tx.commit().await?;
        self.item(id).await
    }

    pub async fn item(&self, id: Uuid) -> Result<StoredItem> {
        let pinners = self.pinners_of(id).await?;
        let found = on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", item_columns!(), " FROM items WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?
            .map(|row| item_from(&row, pinners))
            .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("item {id}")))
    }

    /// Every item, by name (for administrators).
    pub async fn items(&self) -> Result<Vec<StoredItem>> {
        self.items_from(concat!("SELECT ", item_columns!(), " FROM items ORDER BY name_folded"), None).await
    }

    /// The items `user` may pin: those for everyone, and those naming them.
    pub async fn items_pinnable_by(&self, user: Uuid) -> Result<Vec<StoredItem>> {
        let query = concat!(
            "SELECT ",
            item_columns!(),
            " FROM items WHERE everyone = 1 OR id IN (SELECT item_id FROM item_pinners WHERE user_id = $1) ORDER BY name_folded"
        );
        self.items_from(query, Some(user)).await
    }

    /// Runs a static `SELECT` of items (bound to `user` when given), with their pinners.
    async fn items_from(&self, sql: &'static str, user: Option<Uuid>) -> Result<Vec<StoredItem>> {
        let rows: Vec<(Uuid, Result<StoredItem>)> = on_pool!(&self.pool, |pool| {
            let mut query = sqlx::query(sql);
            if let Some(user) = user {
                query = query.bind(user.to_string());
            }
            query
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| Ok((uuid_of(row, "id")?, item_from(row, Vec::new()))))
                .collect::<Result<Vec<_>>>()?
        });
        // Every item's pinners in one read, not one read per item.
        let pairs: Vec<(String, String)> =
            on_pool!(&self.pool, |pool| sqlx::query_as("SELECT item_id, user_id FROM item_pinners ORDER BY item_id, user_id")
                .fetch_all(pool)
                .await?);
        let mut pinners: std::collections::HashMap<Uuid, Vec<Uuid>> = std::collections::HashMap::new();
        for (item, user) in &pairs {
            pinners.entry(parse_uuid(item, "item_pinners.item_id")?).or_default().push(parse_uuid(user, "item_pinners.user_id")?);
        }
        rows.into_iter()
            .map(|(id, item)| {
                let mut item = item?;
                item.details.pinners = pinners.remove(&id).unwrap_or_default();
                Ok(item)
            })
            .collect()
    }

    async fn pinners_of(&self, item: Uuid) -> Result<Vec<Uuid>> {
        let ids: Vec<String> =
            on_pool!(&self.pool, |pool| sqlx::query_scalar("SELECT user_id FROM item_pinners WHERE item_id = $1 ORDER BY user_id")
                .bind(item.to_string())
                .fetch_all(pool)
                .await?);
        ids.iter().map(|id| parse_uuid(id, "item_pinners.user_id")).collect()
    }

    /// The rows the application pushed for an item (JSON), replacing the last ones.
    pub async fn set_pushed_rows(&self, id: Uuid, rows: &str, now: i64) -> Result<()> {
        let changed =
            on_pool!(&self.pool, |pool| sqlx::query("UPDATE items SET pushed_rows = $1, pushed_at = $2, updated_at = $2 WHERE id = $3")
                .bind(rows)
                .bind(now)
                .bind(id.to_string())
                .execute(pool)
                .await?
                .rows_affected());
        changed_one(changed, format_args!("item {id}"))
    }

    /// The rows last pushed for an item (JSON), if any.
    pub async fn pushed_rows(&self, id: Uuid) -> Result<Option<String>> {
        let found: Option<Option<String>> = on_pool!(&self.pool, |pool| sqlx::query_scalar("SELECT pushed_rows FROM items WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?);
        found.ok_or_else(|| StoreError::NotFound(format!("item {id}")))
    }

    /// Deletes an item no subscription delivers (one that is delivered is refused: `Conflict`).
    pub async fn delete_item(&self, id: Uuid) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query("DELETE FROM items WHERE id = $1")
            .bind(id.to_string())
            .execute(pool)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                    StoreError::Conflict("subscriptions deliver this item: their owners delete them first".into())
                }
                _ => StoreError::from(e),
            })?
            .rows_affected());
        changed_one(changed, format_args!("item {id}"))
    }
}

async fn set_pinners(tx: &mut StoreTx<'static>, item: Uuid, pinners: &[Uuid], name: &str) -> Result<()> {
    for user in pinners {
        on_tx!(tx, |conn| sqlx::query("INSERT INTO item_pinners (item_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(item.to_string())
            .bind(user.to_string())
            .execute(&mut *conn)
            .await
            .map(drop)
            .map_err(|e| store_error(e, name))?);
    }
    Ok(())
}
