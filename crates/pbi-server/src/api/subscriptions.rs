//! The API's seed-001 operations: the items a user may pin, pinning one (a subscription and its first
//! delivery), the user's subscriptions with their delivery history, run now, enable/disable, delete; and, for
//! administrators, the Power BI templates (make them, check them).

use super::edge::{Answer, Body, Caller, Ids, Params, PowerBiRefusals, Refusals, rfc3339};
use crate::AppState;
use crate::problem::Problem;
use crate::subscriptions::{self as ops, DashboardInput, Listed, PinInput, Templates};
use axum::extract::State;
use axum::http::StatusCode;
use pbi_store::{Delivery, StoredItem, TemplateRow};
use pbi_subscriptions::deliveries::schedule_owner;
use pbi_subscriptions::pins::SettingsChange;
use pbi_subscriptions::{Frequency, Item};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ColumnOut {
    name: String,
    /// text, integer, decimal, boolean or datetime.
    #[serde(rename = "type")]
    column_type: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ItemOut {
    id: Uuid,
    name: String,
    description: String,
    /// single-value, category-series, time-series or table; null when the item's definition cannot be read.
    kind: Option<String>,
    columns: Vec<ColumnOut>,
    /// The parameters a pin may fix, with their defaults.
    #[schema(value_type = Object)]
    parameters: Map<String, Value>,
}

fn item_out(item: StoredItem, checked: Option<Item>) -> ItemOut {
    let parameters = serde_json::from_str(&item.details.parameters).unwrap_or_default();
    ItemOut {
        id: item.id,
        name: item.details.name,
        description: checked.as_ref().map(|c| c.description.clone()).unwrap_or_default(),
        kind: checked.as_ref().map(|c| c.kind.as_str().to_owned()),
        columns: checked
            .map(|c| {
                c.columns.into_iter().map(|col| ColumnOut { name: col.name, column_type: col.column_type.as_str().to_owned() }).collect()
            })
            .unwrap_or_default(),
        parameters,
    }
}

#[derive(Serialize, ToSchema)]
pub(super) struct ItemList {
    items: Vec<ItemOut>,
}

/// The report items the caller may pin to a Power BI dashboard.
#[utoipa::path(get, path = "/items", tag = "Subscriptions", operation_id = "listItems",
    responses((status = 200, description = "OK", body = ItemList), Refusals))]
pub(super) async fn list_items(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<ItemList>> {
    let items = ops::pinnable_items(&state, &caller.user).await?;
    Ok(axum::Json(ItemList { items: items.into_iter().map(|(i, c)| item_out(i, c)).collect() }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct SubscriptionOut {
    id: Uuid,
    item_id: Uuid,
    item_name: String,
    /// The item's visual kind; null when its definition cannot be read.
    kind: Option<String>,
    /// The Power BI workspace; null for My workspace.
    workspace_id: Option<Uuid>,
    workspace_name: String,
    dashboard_id: Uuid,
    dashboard_name: String,
    /// The dashboard's page in Power BI.
    dashboard_web_url: Option<String>,
    /// How often, in words ("Daily at 07:30").
    frequency: String,
    time_zone: String,
    #[schema(value_type = Object)]
    parameters: Map<String, Value>,
    /// active, paused (resumes by itself once the cause is gone) or disabled.
    state: String,
    state_reason: Option<String>,
    /// The last run's error, in SSRS's words, then what to do; null when it delivered.
    last_error: Option<String>,
    /// The next scheduled delivery; null when paused or disabled.
    #[schema(format = DateTime)]
    next_run_at: Option<String>,
    /// The tile could not be copied (the caller cannot read the templates): pin it once in Power BI from
    /// `pinInPowerBi`, then checkPin (each delivery also looks for it). The deliveries fill the dataset meanwhile.
    awaiting_pin: bool,
    /// The dataset's page in Power BI to pin the tile from (Create report, then Pin visual); null once the
    /// tile is on the dashboard.
    pin_in_power_bi: Option<String>,
    /// What the pin made in Power BI.
    dataset_id: Option<String>,
    report_id: Option<Uuid>,
    tile_id: Option<Uuid>,
    #[schema(format = DateTime)]
    created_at: String,
}

/// A subscription as the API shows it; `web` is where Power BI's pages are (`ops::power_bi_web`).
async fn subscription_out(state: &AppState, listed: Listed, web: Option<&url::Url>) -> Result<SubscriptionOut, Problem> {
    let s = listed.subscription;
    let schedules = state.store.schedules_of(&schedule_owner(s.id)).await.map_err(Problem::store("schedule", "reading a schedule"))?;
    let frequency = serde_json::from_str::<Frequency>(&s.details.frequency).map(|f| f.describe()).unwrap_or_default();
    let pin_in_power_bi = ops::pin_once_page(web, &s);
    let dashboard_web_url = ops::dashboard_page(web, &s);
    Ok(SubscriptionOut {
        awaiting_pin: s.target.tile_id.is_none(),
        pin_in_power_bi,
        id: s.id,
        item_id: s.details.item_id,
        item_name: listed.item_name,
        kind: listed.kind.map(|k| k.as_str().to_owned()),
        workspace_id: s.details.workspace_id,
        workspace_name: s.details.workspace_name,
        dashboard_id: s.details.dashboard_id,
        dashboard_name: s.details.dashboard_name,
        dashboard_web_url,
        frequency,
        time_zone: s.details.time_zone,
        parameters: serde_json::from_str(&s.details.parameters).unwrap_or_default(),
        state: s.state.as_str().to_owned(),
        state_reason: s.state_reason,
        last_error: s.last_error,
        next_run_at: schedules.first().map(|row| rfc3339(row.next_run_at)),
        dataset_id: s.target.dataset_id,
        report_id: s.target.report_id,
        tile_id: s.target.tile_id,
        created_at: rfc3339(s.created_at),
    })
}

#[derive(Serialize, ToSchema)]
pub(super) struct SubscriptionList {
    subscriptions: Vec<SubscriptionOut>,
}

/// The caller's subscriptions, oldest first.
#[utoipa::path(get, path = "/subscriptions", tag = "Subscriptions", operation_id = "listSubscriptions",
    responses((status = 200, description = "OK", body = SubscriptionList), Refusals))]
pub(super) async fn list_subscriptions(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<SubscriptionList>> {
    let web = ops::power_bi_web(&state).await;
    let mut subscriptions = Vec::new();
    for listed in ops::list(&state, &caller.user).await? {
        subscriptions.push(subscription_out(&state, listed, web.as_ref()).await?);
    }
    Ok(axum::Json(SubscriptionList { subscriptions }))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct FrequencyIn {
    /// hourly, daily, weekly or cron.
    every: String,
    /// HH:MM (daily and weekly).
    #[serde(default)]
    time: Option<String>,
    /// Days of the week (weekly): monday, tue, …
    #[serde(default)]
    days: Vec<String>,
    /// Minutes past the hour (hourly), 0 to 59.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 59)]
    minute: Option<u8>,
    /// Five fields, such as `30 2 * * 1-5` (cron).
    #[serde(default)]
    cron: Option<String>,
}

impl FrequencyIn {
    fn parsed(&self) -> Result<Frequency, Problem> {
        let minute = self.minute.map(|m| m.to_string()).unwrap_or_default();
        Frequency::parse(
            &self.every,
            self.time.as_deref().unwrap_or_default(),
            &self.days,
            &minute,
            self.cron.as_deref().unwrap_or_default(),
        )
        .map_err(|e| Problem::Invalid { field: format!("frequency.{}", e.field), message: e.message })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewSubscriptionIn {
    item_id: Uuid,
    /// The Power BI workspace; null or absent for My workspace.
    #[serde(default)]
    workspace_id: Option<Uuid>,
    /// An existing dashboard in that workspace…
    #[serde(default)]
    dashboard_id: Option<Uuid>,
    /// …or the name of a new one (1 to 100 characters).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 100)]
    new_dashboard_name: Option<String>,
    frequency: FrequencyIn,
    /// IANA time zone, such as Europe/Berlin.
    time_zone: String,
    /// Values for the item's parameters (text or numbers).
    #[serde(default)]
    #[schema(value_type = Object)]
    parameters: Map<String, Value>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct PinnedItemOut {
    subscription: SubscriptionOut,
    /// The job of the first delivery (see getJob, or the subscription's deliveries).
    first_delivery_job: i64,
}

/// A Power BI name as given: 1 to 100 characters on one line, trimmed.
fn power_bi_name<'a>(field: &str, text: &'a str) -> Result<&'a str, Problem> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Problem::Invalid { field: field.into(), message: "Use 1 to 100 characters on one line.".into() });
    }
    Ok(name)
}

fn dashboard_input(new: &NewSubscriptionIn) -> Result<DashboardInput, Problem> {
    let invalid = |message: &str| Problem::Invalid { field: "dashboardId".into(), message: message.into() };
    match (new.dashboard_id, new.new_dashboard_name.as_deref()) {
        (Some(id), None) => Ok(DashboardInput::Existing(id)),
        (None, Some(name)) => Ok(DashboardInput::New(power_bi_name("newDashboardName", name)?.to_owned())),
        (Some(_), Some(_)) => Err(invalid("Give dashboardId or newDashboardName, not both.")),
        (None, None) => Err(invalid("Give dashboardId (an existing dashboard) or newDashboardName (a new one).")),
    }
}

/// Pins an item to a Power BI dashboard: a subscription that delivers it on its frequency, and a first
/// delivery now. The tile's title and link are the template's (no Power BI API sets them). When Power BI
/// refuses the caller the template (no access to the templates workspace), the subscription awaits its pin
/// (`awaitingPin`): pin the tile once in Power BI from `pinInPowerBi`, then checkPin.
#[utoipa::path(post, path = "/subscriptions", tag = "Subscriptions", operation_id = "pinItem", request_body = NewSubscriptionIn,
    responses((status = 201, description = "Pinned; the first delivery is under way", body = PinnedItemOut), Refusals, PowerBiRefusals))]
pub(super) async fn pin_item(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(new): Body<NewSubscriptionIn>,
) -> Answer<(StatusCode, axum::Json<PinnedItemOut>)> {
    let dashboard = dashboard_input(&new)?;
    let input = PinInput {
        item: new.item_id,
        workspace: new.workspace_id,
        dashboard,
        frequency: new.frequency.parsed()?,
        time_zone: new.time_zone.trim().to_owned(),
        parameters: new.parameters,
    };
    let pinned = ops::pin(&state, &caller.user, input).await?;
    let listed = ops::one(&state, &caller.user, pinned.subscription.id).await?;
    let subscription = subscription_out(&state, listed, ops::power_bi_web(&state).await.as_ref()).await?;
    Ok((StatusCode::CREATED, axum::Json(PinnedItemOut { subscription, first_delivery_job: pinned.first_delivery })))
}

/// One of the caller's subscriptions.
#[utoipa::path(get, path = "/subscriptions/{id}", tag = "Subscriptions", operation_id = "getSubscription",
    params(("id" = Uuid, Path, description = "The subscription's id")), responses((status = 200, description = "OK", body = SubscriptionOut), Refusals))]
pub(super) async fn get_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Answer<axum::Json<SubscriptionOut>> {
    let listed = ops::one(&state, &caller.user, id).await?;
    Ok(axum::Json(subscription_out(&state, listed, ops::power_bi_web(&state).await.as_ref()).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct SubscriptionChange {
    /// false stops its deliveries; true schedules them again and delivers now.
    #[serde(default)]
    enabled: Option<bool>,
    /// A new frequency (the next run moves to it).
    #[serde(default)]
    frequency: Option<FrequencyIn>,
    /// A new IANA time zone for the frequency.
    #[serde(default)]
    time_zone: Option<String>,
    /// The values the subscription fixes for the item's parameters, all of them (one left out takes the
    /// item's default); an active subscription delivers them now.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    parameters: Option<Map<String, Value>>,
}

/// Changes one of the caller's subscriptions: its frequency, time zone or parameters, and whether it is
/// enabled. Give at least one field; the settings are changed before it is enabled or disabled.
#[utoipa::path(patch, path = "/subscriptions/{id}", tag = "Subscriptions", operation_id = "updateSubscription", request_body = SubscriptionChange,
    params(("id" = Uuid, Path, description = "The subscription's id")), responses((status = 200, description = "OK", body = SubscriptionOut), Refusals))]
pub(super) async fn update_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(change): Body<SubscriptionChange>,
) -> Answer<axum::Json<SubscriptionOut>> {
    let settings = SettingsChange {
        frequency: change.frequency.as_ref().map(FrequencyIn::parsed).transpose()?,
        time_zone: change.time_zone.map(|zone| zone.trim().to_owned()),
        parameters: change.parameters,
    };
    if settings.is_empty() && change.enabled.is_none() {
        return Err(Problem::invalid("enabled", "Give enabled, frequency, timeZone or parameters: the fields to change.").into());
    }
    if !settings.is_empty() {
        ops::change_settings(&state, &caller.user, id, &settings).await?;
    }
    if let Some(enabled) = change.enabled {
        ops::set_enabled(&state, &caller.user, id, enabled).await?;
    }
    let listed = ops::one(&state, &caller.user, id).await?;
    Ok(axum::Json(subscription_out(&state, listed, ops::power_bi_web(&state).await.as_ref()).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DeleteOptions {
    /// Also delete the push dataset and report the pin made in Power BI (no API removes the tile: delete it
    /// on the dashboard).
    #[serde(default)]
    remove_content: bool,
}

/// Deletes one of the caller's subscriptions and its history.
#[utoipa::path(delete, path = "/subscriptions/{id}", tag = "Subscriptions", operation_id = "deleteSubscription",
    params(("id" = Uuid, Path, description = "The subscription's id"), DeleteOptions),
    responses((status = 204, description = "Deleted"), Refusals, PowerBiRefusals))]
pub(super) async fn delete_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Params(options): Params<DeleteOptions>,
) -> Answer<StatusCode> {
    ops::delete(&state, &caller.user, id, options.remove_content).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct RunOut {
    job: i64,
}

/// Delivers one of the caller's active subscriptions now.
#[utoipa::path(post, path = "/subscriptions/{id}/run", tag = "Subscriptions", operation_id = "runSubscription",
    params(("id" = Uuid, Path, description = "The subscription's id")), responses((status = 202, description = "The delivery is under way", body = RunOut), Refusals))]
pub(super) async fn run_subscription(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Answer<(StatusCode, axum::Json<RunOut>)> {
    let job = ops::run_now(&state, &caller.user, id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(RunOut { job })))
}

/// "Pin once": looks for the tile the caller pinned in Power BI from the subscription's dataset (to its
/// dashboard) and records it. 409 saying what to do while there is none.
#[utoipa::path(post, path = "/subscriptions/{id}/check-pin", tag = "Subscriptions", operation_id = "checkPin",
    params(("id" = Uuid, Path, description = "The subscription's id")),
    responses((status = 200, description = "Checked: the tile is known", body = SubscriptionOut), Refusals, PowerBiRefusals))]
pub(super) async fn check_pin(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
) -> Answer<axum::Json<SubscriptionOut>> {
    ops::check_pin(&state, &caller.user, id).await?;
    let listed = ops::one(&state, &caller.user, id).await?;
    Ok(axum::Json(subscription_out(&state, listed, ops::power_bi_web(&state).await.as_ref()).await?))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeliveryOut {
    id: Uuid,
    #[schema(format = DateTime)]
    started_at: String,
    /// Null while under way.
    #[schema(format = DateTime)]
    ended_at: Option<String>,
    rows: Option<i64>,
    posts: i64,
    /// Power BI's RequestIds of the delivery's calls, for support.
    request_ids: Vec<String>,
    /// running, retrying, snoozed, delivered, failed or paused.
    outcome: String,
    error: Option<String>,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id,
            started_at: rfc3339(d.started_at),
            ended_at: d.ended_at.map(rfc3339),
            rows: d.row_count,
            posts: d.post_count,
            request_ids: d.request_ids,
            outcome: d.outcome,
            error: d.error,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeliveryList {
    deliveries: Vec<DeliveryOut>,
    /// Pass as `before` for the next page; null on the last.
    next_before: Option<i64>,
}

#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DeliveryPage {
    /// The page before this cursor (a page's `nextBefore`).
    #[serde(default)]
    before: Option<i64>,
    /// 1 to 100; 20 by default.
    #[serde(default)]
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

/// The deliveries of one of the caller's subscriptions, newest first.
#[utoipa::path(get, path = "/subscriptions/{id}/deliveries", tag = "Subscriptions", operation_id = "listDeliveries",
    params(("id" = Uuid, Path, description = "The subscription's id"), DeliveryPage),
    responses((status = 200, description = "OK", body = DeliveryList), Refusals))]
pub(super) async fn list_deliveries(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Params(page): Params<DeliveryPage>,
) -> Answer<axum::Json<DeliveryList>> {
    let limit = i64::from(page.limit.unwrap_or(20).clamp(1, 100));
    let deliveries = ops::history(&state, &caller.user, id, page.before, limit).await?;
    let next_before = (deliveries.len() as i64 == limit).then(|| deliveries.last().map(|d| d.started_at)).flatten();
    Ok(axum::Json(DeliveryList { deliveries: deliveries.into_iter().map(DeliveryOut::from).collect(), next_before }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TemplateOut {
    kind: String,
    label: String,
    /// Its visual is pinned to the template dashboard: pins of this kind can be made.
    ready: bool,
    dataset_id: Option<Uuid>,
    report_id: Option<Uuid>,
    tile_id: Option<Uuid>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct TemplatesOut {
    /// The templates workspace and dashboard; null until they are made.
    workspace_id: Option<Uuid>,
    dashboard_id: Option<Uuid>,
    kinds: Vec<TemplateOut>,
}

fn templates_out(templates: &Templates) -> TemplatesOut {
    let row_of = |kind: &str| -> Option<&TemplateRow> { templates.rows.iter().find(|r| r.kind == kind) };
    TemplatesOut {
        workspace_id: templates.rows.first().map(|r| r.workspace_id),
        dashboard_id: templates.rows.first().map(|r| r.dashboard_id),
        kinds: templates
            .states()
            .into_iter()
            .map(|(kind, ready)| {
                let row = row_of(kind.as_str());
                TemplateOut {
                    kind: kind.as_str().to_owned(),
                    label: kind.label().to_owned(),
                    ready: ready.unwrap_or(false),
                    dataset_id: row.map(|r| r.dataset_id),
                    report_id: row.and_then(|r| r.report_id),
                    tile_id: row.and_then(|r| r.tile_id),
                }
            })
            .collect(),
    }
}

/// The Power BI templates pins are cloned from, and which kinds are ready.
#[utoipa::path(get, path = "/admin/templates", tag = "Administration", operation_id = "getTemplates",
    responses((status = 200, description = "OK", body = TemplatesOut), Refusals))]
pub(super) async fn get_templates(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<TemplatesOut>> {
    Ok(axum::Json(templates_out(&ops::templates(&state, &caller.user).await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct NewTemplates {
    /// The new Power BI workspace's name (1 to 100 characters).
    #[schema(min_length = 1, max_length = 100)]
    workspace_name: String,
}

/// Makes the templates in Power BI as the caller: a workspace, a push dataset per visual kind and a template
/// dashboard (replacing any made before). Then build each kind's visual on a report of its dataset and pin it
/// to the template dashboard in Power BI, and check.
#[utoipa::path(post, path = "/admin/templates", tag = "Administration", operation_id = "createTemplates", request_body = NewTemplates,
    responses((status = 201, description = "Made", body = TemplatesOut), Refusals, PowerBiRefusals))]
pub(super) async fn create_templates(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Body(new): Body<NewTemplates>,
) -> Answer<(StatusCode, axum::Json<TemplatesOut>)> {
    let name = power_bi_name("workspaceName", &new.workspace_name)?;
    let made = ops::create_templates(&state, &caller.user, name).await?;
    Ok((StatusCode::CREATED, axum::Json(templates_out(&made))))
}

/// Looks at the template dashboard in Power BI and records which kinds' visuals are pinned.
#[utoipa::path(post, path = "/admin/templates/check", tag = "Administration", operation_id = "checkTemplates",
    responses((status = 200, description = "Checked", body = TemplatesOut), Refusals, PowerBiRefusals))]
pub(super) async fn check_templates(State(state): State<Arc<AppState>>, caller: Caller) -> Answer<axum::Json<TemplatesOut>> {
    Ok(axum::Json(templates_out(&ops::check_templates(&state, &caller.user).await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct ItemRows {
    /// The item's rows, each an object of its columns (they replace the rows sent before).
    #[schema(value_type = Vec<Object>)]
    rows: Vec<Map<String, Value>>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ItemRowsOut {
    /// How many rows were kept: every subscription of the item delivers them on its next run.
    rows: usize,
}

/// The largest body `putItemRows` takes.
pub(super) const MAX_ROWS_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Sends the rows of an item whose rows the application provides (administrators' API tokens). They are
/// checked against the item's columns (the error names the row and the column) and delivered on each
/// subscription's schedule. A body is at most 64 MiB.
#[utoipa::path(put, path = "/items/{id}/rows", tag = "Administration", operation_id = "putItemRows", request_body = ItemRows,
    params(("id" = Uuid, Path, description = "The item's id")), responses((status = 200, description = "Kept", body = ItemRowsOut), Refusals))]
pub(super) async fn put_item_rows(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Ids(id): Ids<Uuid>,
    Body(body): Body<ItemRows>,
) -> Answer<axum::Json<ItemRowsOut>> {
    let rows = ops::put_item_rows(&state, &caller.user, id, body.rows).await?;
    Ok(axum::Json(ItemRowsOut { rows }))
}
