//! What a user does with subscriptions, once for every edge (the pin dialog, My Subscriptions, the API, the
//! CLI): pin an item (the item must be one they may pin and its kind's template ready; the dashboard existing
//! or new; the pin target made; the subscription stored and scheduled; a first delivery at once), run one now,
//! change its schedule or parameters, enable or disable it, delete it; and resume their paused subscriptions once they have signed in again.
//! Every call names the owner: another user's subscription is not found.

use crate::deliveries::{Deliver, schedule_of, schedule_owner, workspace_of};
use crate::frequency::{Frequency, FrequencyError};
use crate::item::ItemSpec;
use crate::push_target::{self, PinError, Pinned, Place};
use crate::templates::{self, NotReady};
use pbi_jobs::{Engine, Job, JobsError, NewJob};
use pbi_powerbi::{PowerBiClient, PowerBiError, Workspace};
use pbi_store::{NewSubscription, PinTarget, Store, StoreError, Subscription, SubscriptionState};
use serde_json::{Map, Value};
use uuid::Uuid;

/// The dashboard a pin goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DashboardChoice {
    Existing {
        id: Uuid,
        name: String,
    },
    /// A new, empty dashboard of this name in the chosen workspace.
    New {
        name: String,
    },
}

/// A pin as the dialog submits it, parsed.
#[derive(Debug, Clone)]
pub struct PinRequest {
    pub item: Uuid,
    pub workspace: Workspace,
    /// The workspace's name as the user saw it ("My workspace" for theirs).
    pub workspace_name: String,
    pub dashboard: DashboardChoice,
    pub frequency: Frequency,
    /// IANA, such as `Europe/Berlin`.
    pub time_zone: String,
    /// Values for the item's parameters; the rest keep the item's defaults.
    pub parameters: Map<String, Value>,
}

/// Why a pin, or a change to a subscription, was refused.
#[derive(Debug, thiserror::Error)]
pub enum PinFailure {
    #[error("there is no item {0} that you may pin")]
    ItemNotFound(Uuid),
    #[error("there is no subscription {0} of yours")]
    NotFound(Uuid),
    #[error("{0}")]
    NotReady(#[from] NotReady),
    #[error("{0}")]
    Frequency(#[from] FrequencyError),
    #[error("parameters.{name}: {message}")]
    Parameter { name: String, message: String },
    #[error("the item cannot be pinned: {0}")]
    BadItem(String),
    #[error("the new dashboard could not be created: {0}")]
    Dashboard(PowerBiError),
    #[error("{0}")]
    Target(#[from] PinError),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Jobs(#[from] JobsError),
}

impl From<StoreError> for PinFailure {
    fn from(error: StoreError) -> Self {
        PinFailure::Store(error)
    }
}

/// A new subscription, and the job of its first delivery.
#[derive(Debug, Clone)]
pub struct NewPin {
    pub subscription: Subscription,
    pub first_delivery: i64,
}

/// The values a pin may fix: the item's declared parameters only, each text or a number.
fn checked_parameters(declared: &Map<String, Value>, given: &Map<String, Value>) -> Result<Map<String, Value>, PinFailure> {
    for (name, value) in given {
        if !declared.contains_key(name) {
            let known: Vec<&str> = declared.keys().map(String::as_str).collect();
            let message = if known.is_empty() {
                "this item has no parameters".to_owned()
            } else {
                format!("this item has no such parameter; its parameters are {}", known.join(", "))
            };
            return Err(PinFailure::Parameter { name: name.clone(), message });
        }
        if !(value.is_string() || value.is_number()) {
            return Err(PinFailure::Parameter { name: name.clone(), message: "give text or a number".into() });
        }
    }
    // A parameter without a default (null) is one each pin must fix.
    if let Some((name, _)) = declared.iter().find(|(name, default)| default.is_null() && !given.contains_key(*name)) {
        return Err(PinFailure::Parameter { name: name.clone(), message: "this item has no default for it: give a value".into() });
    }
    Ok(given.clone())
}

/// Pins `request.item` for `owner`, acting through `client` (their connection `connection`).
pub async fn pin(
    store: &Store,
    engine: &Engine,
    client: &PowerBiClient,
    owner: Uuid,
    connection: Uuid,
    request: &PinRequest,
    now: i64,
) -> Result<NewPin, PinFailure> {
    let item =
        store.items_pinnable_by(owner).await?.into_iter().find(|i| i.id == request.item).ok_or(PinFailure::ItemNotFound(request.item))?;
    let checked = serde_json::from_str::<ItemSpec>(&item.details.definition)
        .map_err(|e| PinFailure::BadItem(e.to_string()))?
        .check()
        .map_err(|e| PinFailure::BadItem(e.to_string()))?;
    let template = templates::ready(&store.templates().await?, checked.kind)?;
    request.frequency.schedule(&request.time_zone)?;
    let declared: Map<String, Value> = serde_json::from_str(&item.details.parameters).unwrap_or_default();
    let parameters = checked_parameters(&declared, &request.parameters)?;
    let (dashboard_id, dashboard_name) = match &request.dashboard {
        DashboardChoice::Existing { id, name } => (*id, name.clone()),
        DashboardChoice::New { name } => {
            let made = client.add_dashboard(request.workspace, name).await.map_err(PinFailure::Dashboard)?;
            (made.id, if made.display_name.is_empty() { name.clone() } else { made.display_name })
        }
    };
    let place = Place { workspace: request.workspace, dashboard: dashboard_id, name: item.details.name.clone() };
    let pinned = push_target::pin(client, checked.kind, &template, &place).await?;
    let new = NewSubscription {
        owner,
        connection_id: connection,
        item_id: item.id,
        parameters: Value::Object(parameters).to_string(),
        workspace_id: match request.workspace {
            Workspace::Group(id) => Some(id),
            Workspace::My => None,
        },
        workspace_name: request.workspace_name.clone(),
        dashboard_id,
        dashboard_name,
        frequency: serde_json::to_string(&request.frequency).map_err(|e| PinFailure::BadItem(e.to_string()))?,
        time_zone: request.time_zone.clone(),
    };
    let subscription = match store_subscription(store, &new, &pinned, now).await {
        Ok(subscription) => subscription,
        Err(error) => {
            // Nothing of the pin is kept when it cannot be recorded (the tile stays: no API removes one).
            let _ = push_target::remove(client, request.workspace, &pinned).await;
            return Err(error);
        }
    };
    engine.schedule(&schedule_of(&subscription)?).await?;
    let first_delivery = deliver_now(engine, subscription.id).await?;
    Ok(NewPin { subscription, first_delivery })
}

async fn store_subscription(store: &Store, new: &NewSubscription, pinned: &Pinned, now: i64) -> Result<Subscription, PinFailure> {
    let subscription = store.add_subscription(new, now).await?;
    let target = PinTarget { dataset_id: Some(pinned.dataset.clone()), report_id: pinned.report, tile_id: pinned.tile };
    store.set_pin_target(subscription.id, &target, now).await?;
    Ok(store.subscription(subscription.id).await?)
}

/// Enqueues a delivery now (one waiting at a time per subscription); its job id.
async fn deliver_now(engine: &Engine, subscription: Uuid) -> Result<i64, JobsError> {
    let job = NewJob::now(Deliver { subscription }).unique(format!("deliver-now:{subscription}"));
    Ok(engine.enqueue(job).await?.id)
}

async fn owned(store: &Store, owner: Uuid, id: Uuid) -> Result<Subscription, PinFailure> {
    store.subscription_of(owner, id).await.map_err(|e| match e {
        StoreError::NotFound(_) => PinFailure::NotFound(id),
        other => PinFailure::Store(other),
    })
}

/// "Run now": a delivery of an active subscription; its job id.
pub async fn run_now(store: &Store, engine: &Engine, owner: Uuid, id: Uuid) -> Result<i64, PinFailure> {
    let subscription = owned(store, owner, id).await?;
    if subscription.state != SubscriptionState::Active {
        return Err(PinFailure::Conflict(format!(
            "this subscription is {}: {}",
            subscription.state.as_str(),
            subscription.state_reason.as_deref().unwrap_or("enable it first")
        )));
    }
    Ok(deliver_now(engine, id).await?)
}

/// A change to a subscription's settings; what is `None` stays as it is.
#[derive(Debug, Clone, Default)]
pub struct SettingsChange {
    pub frequency: Option<Frequency>,
    /// IANA, such as `Europe/Berlin`.
    pub time_zone: Option<String>,
    /// The values the subscription fixes, all of them: an item parameter left out takes the item's default.
    pub parameters: Option<Map<String, Value>>,
}

impl SettingsChange {
    pub fn is_empty(&self) -> bool {
        self.frequency.is_none() && self.time_zone.is_none() && self.parameters.is_none()
    }
}

/// A subscription after a change of its settings, and the delivery it started (new parameters are
/// delivered at once, so that the tile shows what the user asked for).
#[derive(Debug, Clone)]
pub struct Changed {
    pub subscription: Subscription,
    pub delivery: Option<i64>,
}

/// Changes how often a subscription delivers, in which time zone, or the values it fixes for the item's
/// parameters: checked as a pin checks them, stored, and (when it is active) scheduled anew.
pub async fn change_settings(
    store: &Store,
    engine: &Engine,
    owner: Uuid,
    id: Uuid,
    change: &SettingsChange,
    now: i64,
) -> Result<Changed, PinFailure> {
    let subscription = owned(store, owner, id).await?;
    let frequency = match &change.frequency {
        Some(frequency) => frequency.clone(),
        None => serde_json::from_str(&subscription.details.frequency).map_err(|e| PinFailure::BadItem(e.to_string()))?,
    };
    let time_zone = change.time_zone.clone().unwrap_or_else(|| subscription.details.time_zone.clone());
    frequency.schedule(&time_zone)?;
    let parameters = match &change.parameters {
        Some(given) => {
            let item = store.item(subscription.details.item_id).await?;
            let declared: Map<String, Value> = serde_json::from_str(&item.details.parameters).unwrap_or_default();
            Value::Object(checked_parameters(&declared, given)?).to_string()
        }
        None => subscription.details.parameters.clone(),
    };
    let frequency_text = serde_json::to_string(&frequency).map_err(|e| PinFailure::BadItem(e.to_string()))?;
    store.set_subscription_settings(owner, id, &frequency_text, &time_zone, &parameters, now).await?;
    let changed = owned(store, owner, id).await?;
    let active = changed.state == SubscriptionState::Active;
    let rescheduled = frequency_text != subscription.details.frequency || time_zone != subscription.details.time_zone;
    if active && rescheduled {
        // Removed and made again rather than edited: the occurrence waiting for the old time is cancelled, and
        // the first of the new schedule waits for its own time.
        engine.unschedule(Deliver::KIND, &schedule_owner(id)).await?;
        engine.schedule(&schedule_of(&changed)?).await?;
    }
    let delivery = if active && parameters != subscription.details.parameters { Some(deliver_now(engine, id).await?) } else { None };
    Ok(Changed { subscription: changed, delivery })
}

/// Enables (schedules again, and delivers now) or disables (stops the schedule) a subscription.
pub async fn set_enabled(
    store: &Store,
    engine: &Engine,
    owner: Uuid,
    id: Uuid,
    enabled: bool,
    now: i64,
) -> Result<Subscription, PinFailure> {
    let subscription = owned(store, owner, id).await?;
    if enabled {
        store.set_subscription_state(id, SubscriptionState::Active, None, now).await?;
        store.record_subscription_run(id, 0, subscription.last_error.as_deref(), now).await?;
        engine.schedule(&schedule_of(&subscription)?).await?;
        deliver_now(engine, id).await?;
    } else {
        store.set_subscription_state(id, SubscriptionState::Disabled, Some("Disabled by its owner."), now).await?;
        engine.unschedule(Deliver::KIND, &schedule_owner(id)).await?;
    }
    owned(store, owner, id).await
}

/// Deletes a subscription and its history; with `remove_content`, the push dataset and report it made too
/// (as `client`, the owner). No API removes the tile: it stays on the dashboard until the user deletes it.
pub async fn delete(store: &Store, engine: &Engine, client: Option<&PowerBiClient>, owner: Uuid, id: Uuid) -> Result<(), PinFailure> {
    let subscription = owned(store, owner, id).await?;
    engine.unschedule(Deliver::KIND, &schedule_owner(id)).await?;
    if let Some(client) = client {
        let target = &subscription.target;
        if let Some(dataset) = &target.dataset_id {
            let pinned = Pinned { dataset: dataset.clone(), report: target.report_id, tile: target.tile_id };
            match push_target::remove(client, workspace_of(&subscription), &pinned).await {
                Ok(()) => {}
                // Already gone in Power BI: nothing left to remove.
                Err(e) if matches!(e.kind, pbi_powerbi::ErrorKind::NotFound { .. }) => {}
                Err(e) => return Err(PinFailure::Target(PinError::Dataset(e))),
            }
        }
    }
    store.delete_subscription(owner, id).await?;
    Ok(())
}

/// "Pin once": looks, as `client` (the owner), for the tile they pinned by hand to the subscription's dashboard
/// from its dataset, and records it. A subscription whose tile is known is as it was.
pub async fn check_pin(store: &Store, client: &PowerBiClient, owner: Uuid, id: Uuid, now: i64) -> Result<Subscription, PinFailure> {
    let subscription = owned(store, owner, id).await?;
    let Some(dataset) = subscription.target.dataset_id.clone() else {
        return Err(PinFailure::Conflict("this pin made no dataset in Power BI: delete it and pin the item again".into()));
    };
    if subscription.target.tile_id.is_some() {
        return Ok(subscription);
    }
    let found = tile_pinned_by_hand(client, &subscription, &dataset).await.map_err(|e| PinFailure::Target(PinError::Tile(e)))?;
    let Some(target) = found else {
        return Err(PinFailure::Conflict(format!(
            "no tile of the dashboard '{}' reads this item's dataset yet: pin the visual to that dashboard in Power BI, then check again",
            subscription.details.dashboard_name
        )));
    };
    store.set_pin_target(id, &target, now).await?;
    owned(store, owner, id).await
}

/// The pin target once the owner's hand-pinned tile is found on the subscription's dashboard (by `dataset`,
/// its push dataset); `None` while there is none. What `check_pin` and each delivery look for.
pub(crate) async fn tile_pinned_by_hand(
    client: &PowerBiClient,
    subscription: &Subscription,
    dataset: &str,
) -> Result<Option<PinTarget>, PowerBiError> {
    let found = push_target::find_tile(client, workspace_of(subscription), subscription.details.dashboard_id, dataset).await?;
    Ok(found.map(|(tile, report)| PinTarget {
        dataset_id: Some(dataset.to_owned()),
        report_id: report.or(subscription.target.report_id),
        tile_id: Some(tile),
    }))
}

/// After `owner` signed in again (as `connection`): their paused subscriptions become active through it, are
/// scheduled again and each delivers now. Their ids.
pub async fn resume_after_sign_in(
    store: &Store,
    engine: &Engine,
    owner: Uuid,
    connection: Uuid,
    now: i64,
) -> Result<Vec<Uuid>, PinFailure> {
    let resumed = store.resume_subscriptions_of(owner, connection, now).await?;
    schedule_and_deliver_now(store, engine, &resumed).await?;
    Ok(resumed)
}

/// After an administrator made `registration` usable again (enabled it, or gave it a new secret): the
/// subscriptions it paused are scheduled again and each delivers now. Their ids.
pub async fn resume_after_registration_usable(
    store: &Store,
    engine: &Engine,
    registration: Uuid,
    now: i64,
) -> Result<Vec<Uuid>, PinFailure> {
    let resumed = store.resume_subscriptions_of_registration(registration, now).await?;
    schedule_and_deliver_now(store, engine, &resumed).await?;
    Ok(resumed)
}

/// Resumed subscriptions: their schedules again, and a delivery each now.
async fn schedule_and_deliver_now(store: &Store, engine: &Engine, resumed: &[Uuid]) -> Result<(), PinFailure> {
    for &id in resumed {
        let subscription = store.subscription(id).await?;
        engine.schedule(&schedule_of(&subscription)?).await?;
        deliver_now(engine, id).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pin_fixes_only_the_items_own_parameters_with_text_or_numbers() {
        let declared = json!({"company": "USMF", "year": 2026}).as_object().cloned().unwrap_or_default();
        let given = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert!(checked_parameters(&declared, &given(json!({"company": "DEMF"}))).is_ok());
        let unknown = checked_parameters(&declared, &given(json!({"region": "East"}))).expect_err("unknown");
        assert_eq!(unknown.to_string(), "parameters.region: this item has no such parameter; its parameters are company, year");
        let nested = checked_parameters(&declared, &given(json!({"year": [2026]}))).expect_err("a list");
        assert_eq!(nested.to_string(), "parameters.year: give text or a number");
        let none = checked_parameters(&Map::new(), &given(json!({"company": "X"}))).expect_err("none");
        assert_eq!(none.to_string(), "parameters.company: this item has no parameters");
        let required = given(json!({"company": null}));
        let missing = checked_parameters(&required, &Map::new()).expect_err("no value for a parameter without a default");
        assert_eq!(missing.to_string(), "parameters.company: this item has no default for it: give a value");
        assert!(checked_parameters(&required, &given(json!({"company": "USMF"}))).is_ok());
    }
}
