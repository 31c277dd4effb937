//! Seed 001's subscriptions (one per pin: a user's, of an item, to a dashboard, on a frequency) and their
//! deliveries. Every read a user's request makes names the owner (`subscription_of`, `subscriptions_of`,
//! `deliveries_of`): another user's subscription is not found, whatever its id.

use crate::db::{DbRow, on_pool};
use crate::{Result, Store, StoreError, changed_one, list_of, optional_uuid_of, parse_uuid, uuid_of};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    Active,
    /// Waiting for its cause to go (the owner signs in again, the integration is back); resumes by itself.
    Paused,
    /// Stopped until its owner enables it (after three runs that found their content deleted, or by hand).
    Disabled,
}

impl SubscriptionState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionState::Active => "active",
            SubscriptionState::Paused => "paused",
            SubscriptionState::Disabled => "disabled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [SubscriptionState::Active, SubscriptionState::Paused, SubscriptionState::Disabled].into_iter().find(|s| s.as_str() == text)
    }
}

/// A subscription as the pin dialog makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSubscription {
    pub owner: Uuid,
    pub connection_id: Uuid,
    pub item_id: Uuid,
    /// JSON: the values the pin fixed for the item's parameters.
    pub parameters: String,
    /// `None`: the owner's My workspace.
    pub workspace_id: Option<Uuid>,
    pub workspace_name: String,
    pub dashboard_id: Uuid,
    pub dashboard_name: String,
    /// JSON: pbi-subscriptions' frequency.
    pub frequency: String,
    pub time_zone: String,
}

/// What the pin made in Power BI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinTarget {
    pub dataset_id: Option<String>,
    pub report_id: Option<Uuid>,
    pub tile_id: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub id: Uuid,
    pub details: NewSubscription,
    pub target: PinTarget,
    pub state: SubscriptionState,
    pub state_reason: Option<String>,
    /// Runs in a row that found their dashboard, dataset or report deleted.
    pub missing_runs: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One delivery of a subscription, as its history shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: Uuid,
    pub subscription_id: Uuid,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub row_count: Option<i64>,
    pub post_count: i64,
    /// Power BI's `RequestId`s of the delivery's calls, for support.
    pub request_ids: Vec<String>,
    /// `running`, `delivered`, `failed`, `paused` or `snoozed`.
    pub outcome: String,
    pub error: Option<String>,
    /// JSON: where the delivery is (batches sent, the push window), for the next attempt.
    pub progress: Option<String>,
    /// The job carrying it (every attempt, snooze and retry of that job goes on with this delivery).
    pub job_id: Option<i64>,
}

macro_rules! subscription_columns {
    () => {
        "id, owner, connection_id, item_id, parameters, workspace_id, workspace_name, dashboard_id, dashboard_name, dataset_id, \
         report_id, tile_id, frequency, time_zone, state, state_reason, missing_runs, last_error, created_at, updated_at"
    };
}

macro_rules! delivery_columns {
    () => {
        "id, subscription_id, started_at, ended_at, row_count, post_count, request_ids, outcome, error, progress, job_id"
    };
}

fn subscription_from(row: &impl DbRow) -> Result<Subscription> {
    let state: String = row.field("state")?;
    Ok(Subscription {
        id: uuid_of(row, "id")?,
        details: NewSubscription {
            owner: uuid_of(row, "owner")?,
            connection_id: uuid_of(row, "connection_id")?,
            item_id: uuid_of(row, "item_id")?,
            parameters: row.field("parameters")?,
            workspace_id: optional_uuid_of(row, "workspace_id")?,
            workspace_name: row.field("workspace_name")?,
            dashboard_id: uuid_of(row, "dashboard_id")?,
            dashboard_name: row.field("dashboard_name")?,
            frequency: row.field("frequency")?,
            time_zone: row.field("time_zone")?,
        },
        target: PinTarget {
            dataset_id: row.field("dataset_id")?,
            report_id: optional_uuid_of(row, "report_id")?,
            tile_id: optional_uuid_of(row, "tile_id")?,
        },
        state: SubscriptionState::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("subscription state '{state}'")))?,
        state_reason: row.field("state_reason")?,
        missing_runs: row.field("missing_runs")?,
        last_error: row.field("last_error")?,
        created_at: row.field("created_at")?,
        updated_at: row.field("updated_at")?,
    })
}

fn delivery_from(row: &impl DbRow) -> Result<Delivery> {
    Ok(Delivery {
        id: uuid_of(row, "id")?,
        subscription_id: uuid_of(row, "subscription_id")?,
        started_at: row.field("started_at")?,
        ended_at: row.field("ended_at")?,
        row_count: row.field("row_count")?,
        post_count: row.field("post_count")?,
        request_ids: list_of(row, "request_ids")?,
        outcome: row.field("outcome")?,
        error: row.field("error")?,
        progress: row.field("progress")?,
        job_id: row.field("job_id")?,
    })
}

/// How a delivery stands after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryUpdate {
    pub ended_at: Option<i64>,
    pub row_count: Option<i64>,
    pub post_count: i64,
    pub request_ids: Vec<String>,
    pub outcome: String,
    pub error: Option<String>,
    pub progress: Option<String>,
}

impl Store {
    pub async fn add_subscription(&self, new: &NewSubscription, now: i64) -> Result<Subscription> {
        let id = Uuid::new_v4();
        on_pool!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO subscriptions (id, owner, connection_id, item_id, parameters, workspace_id, workspace_name, dashboard_id, \
                 dashboard_name, frequency, time_zone, state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'active', $12, $12)",
            )
            .bind(id.to_string())
            .bind(new.owner.to_string())
            .bind(new.connection_id.to_string())
            .bind(new.item_id.to_string())
            .bind(&new.parameters)
            .bind(new.workspace_id.map(|w| w.to_string()))
            .bind(&new.workspace_name)
            .bind(new.dashboard_id.to_string())
            .bind(&new.dashboard_name)
            .bind(&new.frequency)
            .bind(&new.time_zone)
            .bind(now)
            .execute(pool)
            .await?;
        });
        self.subscription(id).await
    }

    /// A subscription by id, whoever owns it: for the delivery job, never for a user's request.
    pub async fn subscription(&self, id: Uuid) -> Result<Subscription> {
        let found =
            on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", subscription_columns!(), " FROM subscriptions WHERE id = $1"))
                .bind(id.to_string())
                .fetch_optional(pool)
                .await?
                .map(|row| subscription_from(&row))
                .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("subscription {id}")))
    }

    /// `owner`'s subscription `id`; another user's is not found.
    pub async fn subscription_of(&self, owner: Uuid, id: Uuid) -> Result<Subscription> {
        let found = on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions WHERE id = $1 AND owner = $2"
        ))
        .bind(id.to_string())
        .bind(owner.to_string())
        .fetch_optional(pool)
        .await?
        .map(|row| subscription_from(&row))
        .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("subscription {id}")))
    }

    /// `owner`'s subscriptions, oldest first.
    pub async fn subscriptions_of(&self, owner: Uuid) -> Result<Vec<Subscription>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions WHERE owner = $1 ORDER BY created_at, id"
        ))
        .bind(owner.to_string())
        .fetch_all(pool)
        .await?
        .iter()
        .map(subscription_from)
        .collect())
    }

    /// Every user's subscriptions, oldest first: for administrators (the command line), never for a user's
    /// request.
    pub async fn all_subscriptions(&self) -> Result<Vec<Subscription>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", subscription_columns!(), " FROM subscriptions ORDER BY created_at, id"))
            .fetch_all(pool)
            .await?
            .iter()
            .map(subscription_from)
            .collect())
    }

    /// How many subscriptions deliver each item (items without any are absent).
    pub async fn subscription_counts(&self) -> Result<std::collections::HashMap<Uuid, i64>> {
        let pairs: Vec<(String, i64)> =
            on_pool!(&self.pool, |pool| sqlx::query_as("SELECT item_id, COUNT(*) FROM subscriptions GROUP BY item_id")
                .fetch_all(pool)
                .await?);
        pairs.iter().map(|(item, count)| Ok((parse_uuid(item, "subscriptions.item_id")?, *count))).collect()
    }

    /// Changes how often `owner`'s subscription delivers and the values it fixes for the item's parameters
    /// (JSON, as `NewSubscription` holds them); another user's is not found.
    pub async fn set_subscription_settings(
        &self,
        owner: Uuid,
        id: Uuid,
        frequency: &str,
        time_zone: &str,
        parameters: &str,
        now: i64,
    ) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query(
            "UPDATE subscriptions SET frequency = $1, time_zone = $2, parameters = $3, updated_at = $4 WHERE id = $5 AND owner = $6"
        )
        .bind(frequency)
        .bind(time_zone)
        .bind(parameters)
        .bind(now)
        .bind(id.to_string())
        .bind(owner.to_string())
        .execute(pool)
        .await?
        .rows_affected());
        changed_one(changed, format_args!("subscription {id}"))
    }

    /// Records what the pin made in Power BI.
    pub async fn set_pin_target(&self, id: Uuid, target: &PinTarget, now: i64) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query(
            "UPDATE subscriptions SET dataset_id = $1, report_id = $2, tile_id = $3, updated_at = $4 WHERE id = $5"
        )
        .bind(&target.dataset_id)
        .bind(target.report_id.map(|r| r.to_string()))
        .bind(target.tile_id.map(|t| t.to_string()))
        .bind(now)
        .bind(id.to_string())
        .execute(pool)
        .await?
        .rows_affected());
        changed_one(changed, format_args!("subscription {id}"))
    }

    pub async fn set_subscription_state(&self, id: Uuid, state: SubscriptionState, reason: Option<&str>, now: i64) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query(
            "UPDATE subscriptions SET state = $1, state_reason = $2, updated_at = $3 WHERE id = $4"
        )
        .bind(state.as_str())
        .bind(reason)
        .bind(now)
        .bind(id.to_string())
        .execute(pool)
        .await?
        .rows_affected());
        changed_one(changed, format_args!("subscription {id}"))
    }

    /// A run's result: the runs in a row that found their content missing, and the last error (`None`: it
    /// worked).
    pub async fn record_subscription_run(&self, id: Uuid, missing_runs: i64, last_error: Option<&str>, now: i64) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query(
            "UPDATE subscriptions SET missing_runs = $1, last_error = $2, updated_at = $3 WHERE id = $4"
        )
        .bind(missing_runs)
        .bind(last_error)
        .bind(now)
        .bind(id.to_string())
        .execute(pool)
        .await?
        .rows_affected());
        changed_one(changed, format_args!("subscription {id}"))
    }

    /// Makes `owner`'s paused subscriptions active again, through `connection` (they signed in again, perhaps
    /// as a new connection): their ids, to deliver now.
    pub async fn resume_subscriptions_of(&self, owner: Uuid, connection: Uuid, now: i64) -> Result<Vec<Uuid>> {
        let ids: Vec<String> = on_pool!(&self.pool, |pool| {
            sqlx::query_scalar(
                "UPDATE subscriptions SET state = 'active', state_reason = NULL, connection_id = $1, updated_at = $2 \
                 WHERE owner = $3 AND state = 'paused' RETURNING id",
            )
            .bind(connection.to_string())
            .bind(now)
            .bind(owner.to_string())
            .fetch_all(pool)
            .await?
        });
        ids.iter().map(|id| parse_uuid(id, "subscriptions.id")).collect()
    }

    /// Once an administrator made `registration` usable again: the paused subscriptions that deliver
    /// through its active connections become active. Their ids. One paused for another cause pauses again on
    /// its next delivery, saying why; one whose owner must sign in waits (its connection is not active).
    pub async fn resume_subscriptions_of_registration(&self, registration: Uuid, now: i64) -> Result<Vec<Uuid>> {
        let ids: Vec<String> = on_pool!(&self.pool, |pool| {
            sqlx::query_scalar(
                "UPDATE subscriptions SET state = 'active', state_reason = NULL, updated_at = $1 \
                 WHERE state = 'paused' AND connection_id IN \
                 (SELECT id FROM connections WHERE registration_id = $2 AND status = 'active') RETURNING id",
            )
            .bind(now)
            .bind(registration.to_string())
            .fetch_all(pool)
            .await?
        });
        ids.iter().map(|id| parse_uuid(id, "subscriptions.id")).collect()
    }

    /// How many active subscriptions deliver through connections made with `registration` (what unregistering
    /// it would pause).
    pub async fn active_subscriptions_of_registration(&self, registration: Uuid) -> Result<i64> {
        Ok(on_pool!(&self.pool, |pool| {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM subscriptions WHERE state = 'active' AND connection_id IN \
                 (SELECT id FROM connections WHERE registration_id = $1)",
            )
            .bind(registration.to_string())
            .fetch_one(pool)
            .await?
        }))
    }

    /// Deletes `owner`'s subscription and its history; another user's is not found.
    pub async fn delete_subscription(&self, owner: Uuid, id: Uuid) -> Result<()> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query("DELETE FROM subscriptions WHERE id = $1 AND owner = $2")
            .bind(id.to_string())
            .bind(owner.to_string())
            .execute(pool)
            .await?
            .rows_affected());
        changed_one(changed, format_args!("subscription {id}"))
    }

    /// Notes that a delivery started, carried by `job`. At most one delivery of a subscription is under way
    /// (not ended): when another is, this is a `Conflict` (the caller reads `open_delivery`).
    pub async fn start_delivery(&self, subscription: Uuid, job: i64, now: i64) -> Result<Delivery> {
        let id = Uuid::new_v4();
        on_pool!(&self.pool, |pool| {
            sqlx::query(
                "INSERT INTO deliveries (id, subscription_id, started_at, request_ids, outcome, job_id) VALUES ($1, $2, $3, '[]', 'running', $4)",
            )
            .bind(id.to_string())
            .bind(subscription.to_string())
            .bind(now)
            .bind(job)
            .execute(pool)
            .await?;
        });
        self.delivery(id).await
    }

    async fn delivery(&self, id: Uuid) -> Result<Delivery> {
        let found = on_pool!(&self.pool, |pool| sqlx::query(concat!("SELECT ", delivery_columns!(), " FROM deliveries WHERE id = $1"))
            .bind(id.to_string())
            .fetch_optional(pool)
            .await?
            .map(|row| delivery_from(&row))
            .transpose()?);
        found.ok_or_else(|| StoreError::NotFound(format!("delivery {id}")))
    }

    /// The subscription's delivery under way (not ended), if any: for the delivery job.
    pub async fn open_delivery(&self, subscription: Uuid) -> Result<Option<Delivery>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE subscription_id = $1 AND ended_at IS NULL"
        ))
        .bind(subscription.to_string())
        .fetch_optional(pool)
        .await?
        .map(|row| delivery_from(&row))
        .transpose())
    }

    /// Hands a delivery under way from the job that carried it (`from`, which has ended) to `to`; false when
    /// another job took it first.
    pub async fn take_delivery(&self, id: Uuid, from: Option<i64>, to: i64) -> Result<bool> {
        let changed = on_pool!(&self.pool, |pool| sqlx::query(
            "UPDATE deliveries SET job_id = $1 WHERE id = $2 AND ended_at IS NULL AND COALESCE(job_id, -1) = $3"
        )
        .bind(to)
        .bind(id.to_string())
        .bind(from.unwrap_or(-1))
        .execute(pool)
        .await?
        .rows_affected());
        Ok(changed == 1)
    }

    pub async fn update_delivery(&self, id: Uuid, update: &DeliveryUpdate) -> Result<()> {
        let request_ids = serde_json::to_string(&update.request_ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let changed = on_pool!(&self.pool, |pool| {
            sqlx::query(
            "UPDATE deliveries SET ended_at = $1, row_count = $2, post_count = $3, request_ids = $4, outcome = $5, error = $6, progress = $7 \
             WHERE id = $8"
        )
        .bind(update.ended_at)
        .bind(update.row_count)
        .bind(update.post_count)
        .bind(request_ids)
        .bind(&update.outcome)
        .bind(&update.error)
        .bind(&update.progress)
        .bind(id.to_string())
        .execute(pool)
        .await?
        .rows_affected()
        });
        changed_one(changed, format_args!("delivery {id}"))
    }

    /// The deliveries of `owner`'s subscription, newest first, `limit` at a time before the delivery that
    /// started at `before` (a cursor); another user's subscription has none.
    pub async fn deliveries_of(&self, owner: Uuid, subscription: Uuid, before: Option<i64>, limit: i64) -> Result<Vec<Delivery>> {
        on_pool!(&self.pool, |pool| sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE subscription_id = $1 AND started_at < $2 \
             AND subscription_id IN (SELECT id FROM subscriptions WHERE owner = $3) ORDER BY started_at DESC, id DESC LIMIT $4"
        ))
        .bind(subscription.to_string())
        .bind(before.unwrap_or(i64::MAX))
        .bind(owner.to_string())
        .bind(limit.clamp(1, 1000))
        .fetch_all(pool)
        .await?
        .iter()
        .map(delivery_from)
        .collect())
    }
}
