//! Seed 001's pages: the items a user may pin and the pin dialog, My Subscriptions with each subscription's
//! delivery history and actions, and the administrators' Power BI templates page. Each handler parses its
//! form and calls one operation of `subscriptions`; an action answers 303 with its message (Post/Redirect/Get).

use crate::AppState;
use crate::frame::{Message, When, when_html};
use crate::pages::{form_expired, render};
use crate::problem::Problem;
use crate::session::{self, Flash, SignedIn};
use crate::subscriptions::{self as ops, DashboardInput, Listed, PinInput};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use pbi_jobs::JobState;
use pbi_store::{Delivery, Session, SubscriptionState};
use pbi_subscriptions::deliveries::schedule_owner;
use pbi_subscriptions::pins::SettingsChange;
use pbi_subscriptions::templates::{DASHBOARD_NAME, dataset_name};
use pbi_subscriptions::{Frequency, VisualKind, Weekday};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long the pin dialog waits for the first delivery before showing the subscription without its result.
const FIRST_DELIVERY_WAIT: Duration = Duration::from_secs(20);
/// Deliveries shown on a page of the history.
const HISTORY_PAGE: i64 = 20;

fn badge(state: SubscriptionState) -> &'static str {
    match state {
        SubscriptionState::Active => "badge-success",
        SubscriptionState::Paused => "badge-warning",
        SubscriptionState::Disabled => "badge-neutral",
    }
}

/// What a visual kind's template visual is, for the pin dialog and the templates page.
fn visual_of(kind: VisualKind) -> &'static str {
    match kind {
        VisualKind::SingleValue => "a Card of Value (or a Gauge)",
        VisualKind::CategorySeries => "a Clustered bar chart: Category on the Y-axis, Value on the X-axis (or a column chart or map)",
        VisualKind::TimeSeries => "a Line chart: Date on the X-axis, Value on the Y-axis",
        VisualKind::Table => "a Table of Column1 to Column6",
    }
}

struct ItemView {
    id: Uuid,
    name: String,
    description: String,
    kind: String,
}

#[derive(Template)]
#[template(path = "items.html")]
struct ItemsPage {
    items: Vec<ItemView>,
}

pub async fn items(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    match ops::pinnable_items(&state, &session.user).await {
        Ok(items) => {
            let items = items
                .into_iter()
                .map(|(item, checked)| ItemView {
                    id: item.id,
                    name: item.details.name,
                    description: checked.as_ref().map(|c| c.description.clone()).unwrap_or_default(),
                    kind: checked.map(|c| c.kind.label().to_owned()).unwrap_or_else(|| "(cannot be read)".into()),
                })
                .collect();
            render(StatusCode::OK, &ItemsPage { items })
        }
        Err(problem) => problem.page(),
    }
}

/// A choice of where to pin: `<workspace>:<dashboard>` or `<workspace>:new` (`me` for My workspace).
struct TargetChoice {
    value: String,
    label: String,
    selected: bool,
}

struct TargetGroup {
    workspace: String,
    choices: Vec<TargetChoice>,
}

struct ParameterView {
    name: String,
    value: String,
}

#[derive(Default, Deserialize)]
pub struct PinForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    new_dashboard_name: String,
    #[serde(default)]
    every: String,
    #[serde(default)]
    time: String,
    #[serde(default)]
    minute: String,
    #[serde(default)]
    cron: String,
    #[serde(default)]
    time_zone: String,
    /// The checked days and the item's parameters (`param.<name>`), as the form sends them.
    #[serde(flatten)]
    rest: std::collections::HashMap<String, String>,
}

#[derive(Template)]
#[template(path = "pin_item.html")]
struct PinItemPage<'a> {
    csrf: &'a str,
    id: Uuid,
    name: String,
    kind_label: String,
    visual: String,
    targets: Vec<TargetGroup>,
    new_dashboard_name: String,
    f: FrequencyFields,
    parameters: Vec<ParameterView>,
    problem: Option<String>,
}

/// The "How often" fields, as a form shows them (`frequency_fields.html`).
struct FrequencyFields {
    every: String,
    time: String,
    minute: String,
    cron: String,
    time_zone: String,
    /// Each day: its form key, its name, whether it is ticked.
    days: Vec<(String, String, bool)>,
}

impl FrequencyFields {
    /// As the user typed them (a refused form keeps them), the dialog's defaults where they are empty.
    fn typed(form: &PinForm) -> Self {
        FrequencyFields {
            every: if form.every.is_empty() { "daily".into() } else { form.every.clone() },
            time: if form.time.is_empty() { "07:00".into() } else { form.time.clone() },
            minute: form.minute.clone(),
            cron: form.cron.clone(),
            time_zone: form.time_zone.clone(),
            days: Self::days(|key| form.rest.contains_key(&format!("day.{key}"))),
        }
    }

    /// A subscription's stored frequency, to edit.
    fn stored(frequency: &Frequency, time_zone: &str) -> Self {
        let (every, time, minute, cron, ticked) = match frequency {
            Frequency::Hourly { minute } => ("hourly", "07:00".to_owned(), minute.to_string(), String::new(), Vec::new()),
            Frequency::Daily { at } => ("daily", at.to_string(), String::new(), String::new(), Vec::new()),
            Frequency::Weekly { days, at } => ("weekly", at.to_string(), String::new(), String::new(), days.clone()),
            Frequency::Cron { expression } => ("cron", "07:00".to_owned(), String::new(), expression.clone(), Vec::new()),
        };
        FrequencyFields {
            every: every.into(),
            time,
            minute,
            cron,
            time_zone: time_zone.into(),
            days: Self::days(|key| ticked.iter().any(|d| format!("{d:?}").to_lowercase() == key)),
        }
    }

    fn days(ticked: impl Fn(&str) -> bool) -> Vec<(String, String, bool)> {
        Weekday::ALL
            .iter()
            .map(|d| {
                let name = format!("{d:?}");
                let key = name.to_lowercase();
                let checked = ticked(&key);
                (key, name, checked)
            })
            .collect()
    }
}

/// The item's parameters as a form shows them: what was typed, else the value the subscription fixed, else the
/// item's default.
fn parameter_views(declared: &Map<String, Value>, typed: Option<&PinForm>, fixed: &Map<String, Value>) -> Vec<ParameterView> {
    let text = |value: &Value| value.as_str().map_or_else(|| value.to_string(), str::to_owned);
    declared
        .iter()
        .map(|(name, default)| ParameterView {
            value: typed
                .and_then(|form| form.rest.get(&format!("param.{name}")).cloned())
                .or_else(|| fixed.get(name).map(text))
                .unwrap_or_else(|| if default.is_null() { String::new() } else { text(default) }),
            name: name.clone(),
        })
        .collect()
}

async fn pin_page(state: &AppState, session: &Session, id: Uuid, form: &PinForm, problem: Option<String>) -> Response {
    let (item, checked) = match ops::pinnable_items(state, &session.user).await {
        Ok(items) => match items.into_iter().find(|(i, _)| i.id == id) {
            Some(found) => found,
            None => return Problem::NotFound("item").page(),
        },
        Err(problem) => return problem.page(),
    };
    let Some(checked) = checked else {
        return Problem::Conflict("This item cannot be read: ask an administrator to save it again.".into()).page();
    };
    let (groups, problem) = match ops::pin_targets(state, &session.user).await {
        Ok(groups) => (groups, problem),
        Err(error) => (Vec::new(), Some(problem.unwrap_or_else(|| error.in_words()))),
    };
    let targets = groups
        .into_iter()
        .map(|(workspace_key, workspace, dashboards)| {
            let mut choices: Vec<TargetChoice> = dashboards
                .into_iter()
                .map(|(dashboard, name)| {
                    let value = format!("{workspace_key}:{dashboard}");
                    TargetChoice { selected: form.target == value, label: name, value }
                })
                .collect();
            let value = format!("{workspace_key}:new");
            choices.push(TargetChoice { selected: form.target == value, label: format!("A new dashboard in {workspace}"), value });
            TargetGroup { workspace, choices }
        })
        .collect();
    let declared: Map<String, Value> = serde_json::from_str(&item.details.parameters).unwrap_or_default();
    let parameters = parameter_views(&declared, Some(form), &Map::new());
    let status = if problem.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    render(
        status,
        &PinItemPage {
            csrf: &session.csrf_token,
            id,
            name: item.details.name,
            kind_label: checked.kind.label().to_owned(),
            visual: visual_of(checked.kind).to_owned(),
            targets,
            new_dashboard_name: form.new_dashboard_name.clone(),
            f: FrequencyFields::typed(form),
            parameters,
            problem,
        },
    )
}

pub async fn pin_dialog(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Path(id): Path<Uuid>) -> Response {
    pin_page(&state, &session, id, &PinForm::default(), None).await
}

/// The pin dialog's fields as a pin.
fn pin_input(id: Uuid, form: &PinForm) -> Result<PinInput, Problem> {
    let invalid = |field: &str, message: &str| Problem::Invalid { field: field.into(), message: message.into() };
    let (workspace, dashboard) = form.target.split_once(':').ok_or_else(|| invalid("target", "Choose a dashboard."))?;
    let workspace = match workspace {
        "me" => None,
        id => Some(Uuid::parse_str(id).map_err(|_| invalid("target", "Choose a dashboard from the list."))?),
    };
    let dashboard = match dashboard {
        "new" => {
            let name = form.new_dashboard_name.trim();
            if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
                return Err(invalid("newDashboardName", "Name the new dashboard: 1 to 100 characters on one line."));
            }
            DashboardInput::New(name.to_owned())
        }
        id => DashboardInput::Existing(Uuid::parse_str(id).map_err(|_| invalid("target", "Choose a dashboard from the list."))?),
    };
    let (frequency, time_zone) = frequency_of(form)?;
    Ok(PinInput { item: id, workspace, dashboard, frequency, time_zone, parameters: parameters_of(form) })
}

/// The "How often" fields as a frequency and its time zone (UTC when none is given).
fn frequency_of(form: &PinForm) -> Result<(Frequency, String), Problem> {
    let days: Vec<String> = form.rest.keys().filter_map(|k| k.strip_prefix("day.")).map(str::to_owned).collect();
    let frequency = Frequency::parse(&form.every, &form.time, &days, &form.minute, &form.cron)
        .map_err(|e| Problem::Invalid { field: e.field.to_owned(), message: e.message })?;
    let time_zone = if form.time_zone.trim().is_empty() { "UTC".to_owned() } else { form.time_zone.trim().to_owned() };
    Ok((frequency, time_zone))
}

/// The item's parameters as the form gives them (`param.<name>`).
fn parameters_of(form: &PinForm) -> Map<String, Value> {
    form.rest
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("param.").map(|name| (name.to_owned(), Value::String(v.trim().to_owned()))))
        .collect()
}

pub async fn pin(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<PinForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let pinned = match pin_input(id, &form) {
        Ok(input) => ops::pin(&state, &session.user, input).await,
        Err(problem) => Err(problem),
    };
    let pinned = match pinned {
        Ok(pinned) => pinned,
        Err(problem @ (Problem::Internal | Problem::NotFound(_))) => return problem.page(),
        Err(problem) => return pin_page(&state, &session, id, &form, Some(problem.in_words())).await,
    };
    // The user watches the first delivery: its result is the message on the subscription's page.
    let ended =
        state.jobs.wait_for(pinned.first_delivery, FIRST_DELIVERY_WAIT, |j| j.state.is_finished() || j.state == JobState::Retryable).await;
    let subscription = state.store.subscription(pinned.subscription.id).await.ok();
    let item = pinned.subscription.details.dashboard_name.clone();
    let awaiting = pinned.subscription.target.tile_id.is_none();
    let message = match (ended, subscription.as_ref().and_then(|s| s.last_error.clone())) {
        _ if awaiting => Message::warning(format!(
            "Made the dataset for '{item}', but your Power BI account cannot copy the template tile: pin it once yourself, as the steps below say."
        )),
        (Ok(job), None) if job.state == JobState::Completed => {
            Message::success(format!("Pinned to '{item}' and delivered: the tile shows the item's data now."))
        }
        (_, Some(error)) => Message::error(format!("Pinned to '{item}', but the first delivery failed. {error}")),
        _ => Message::warning(format!("Pinned to '{item}'. The first delivery is still under way: its result shows below.")),
    };
    let message = message.with_link("/subscriptions", "My subscriptions");
    session::done(&state, &session, &format!("/subscriptions/{}", pinned.subscription.id), Flash::message(message))
}

struct SubscriptionView {
    id: Uuid,
    item: String,
    workspace: String,
    dashboard: String,
    frequency: String,
    next: String,
    state: &'static str,
    badge: &'static str,
    reason: String,
    error: String,
    active: bool,
    disabled: bool,
    /// "Pin once": the tile is not on the dashboard yet; where in Power BI to pin it from, and what to build.
    awaiting_pin: bool,
    pin_page: Option<String>,
    /// The dashboard's page in Power BI.
    dashboard_page: Option<String>,
    visual: &'static str,
}

/// A subscription as the pages show it; `web` is where Power BI's pages are (`ops::power_bi_web`).
async fn view_of(state: &AppState, listed: Listed, web: Option<&url::Url>) -> SubscriptionView {
    let s = listed.subscription;
    let next = state.store.schedules_of(&schedule_owner(s.id)).await.ok().and_then(|rows| rows.first().map(|r| r.next_run_at));
    SubscriptionView {
        dashboard_page: ops::dashboard_page(web, &s),
        awaiting_pin: s.target.tile_id.is_none(),
        pin_page: ops::pin_once_page(web, &s),
        visual: listed.kind.map_or("the item's visual", visual_of),
        id: s.id,
        item: listed.item_name,
        workspace: s.details.workspace_name,
        dashboard: s.details.dashboard_name,
        frequency: format!(
            "{} ({})",
            serde_json::from_str::<Frequency>(&s.details.frequency).map(|f| f.describe()).unwrap_or_default(),
            s.details.time_zone
        ),
        next: when_html(next.and_then(When::at)),
        state: s.state.as_str(),
        badge: badge(s.state),
        reason: s.state_reason.unwrap_or_default(),
        error: s.last_error.unwrap_or_default(),
        active: s.state == SubscriptionState::Active,
        disabled: s.state == SubscriptionState::Disabled,
    }
}

#[derive(Template)]
#[template(path = "subscriptions.html")]
struct SubscriptionsPage<'a> {
    csrf: &'a str,
    rows: Vec<SubscriptionView>,
    paused: usize,
}

pub async fn list(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    let listed = match ops::list(&state, &session.user).await {
        Ok(listed) => listed,
        Err(problem) => return problem.page(),
    };
    let web = ops::power_bi_web(&state).await;
    let mut rows = Vec::with_capacity(listed.len());
    for l in listed {
        rows.push(view_of(&state, l, web.as_ref()).await);
    }
    let paused = rows.iter().filter(|r| r.state == "paused").count();
    render(StatusCode::OK, &SubscriptionsPage { csrf: &session.csrf_token, rows, paused })
}

struct DeliveryView {
    started: String,
    took: String,
    rows: String,
    posts: i64,
    request_ids: String,
    outcome: String,
    badge: &'static str,
    error: String,
}

#[derive(Template)]
#[template(path = "subscription.html")]
struct SubscriptionPage<'a> {
    csrf: &'a str,
    s: SubscriptionView,
    deliveries: Vec<DeliveryView>,
    older: Option<i64>,
    /// The settings form: the stored settings, or what was typed when they were refused.
    f: FrequencyFields,
    parameters: Vec<ParameterView>,
    problem: Option<String>,
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    before: Option<i64>,
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    Query(query): Query<HistoryQuery>,
) -> Response {
    subscription_page(&state, &session, id, query.before, None).await
}

/// A subscription with a page of its history; with `refused`, the settings form as typed and why it was not
/// saved.
async fn subscription_page(
    state: &AppState,
    session: &Session,
    id: Uuid,
    before: Option<i64>,
    refused: Option<(&PinForm, String)>,
) -> Response {
    let listed = match ops::one(state, &session.user, id).await {
        Ok(listed) => listed,
        Err(problem) => return problem.page(),
    };
    let deliveries = match ops::history(state, &session.user, id, before, HISTORY_PAGE).await {
        Ok(deliveries) => deliveries,
        Err(problem) => return problem.page(),
    };
    let older = (deliveries.len() as i64 == HISTORY_PAGE).then(|| deliveries.last().map(|d| d.started_at)).flatten();
    let deliveries = deliveries.into_iter().map(delivery_view).collect();
    let details = &listed.subscription.details;
    let declared: Map<String, Value> = match state.store.item(details.item_id).await {
        Ok(item) => serde_json::from_str(&item.details.parameters).unwrap_or_default(),
        Err(_) => Map::new(),
    };
    let fixed: Map<String, Value> = serde_json::from_str(&details.parameters).unwrap_or_default();
    let typed = refused.as_ref().map(|(form, _)| *form);
    let parameters = parameter_views(&declared, typed, &fixed);
    let f = match (typed, serde_json::from_str::<Frequency>(&details.frequency)) {
        (Some(form), _) => FrequencyFields::typed(form),
        (None, Ok(frequency)) => FrequencyFields::stored(&frequency, &details.time_zone),
        (None, Err(_)) => FrequencyFields::typed(&PinForm::default()),
    };
    let s = view_of(state, listed, ops::power_bi_web(state).await.as_ref()).await;
    let problem = refused.map(|(_, problem)| problem);
    let status = if problem.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    render(status, &SubscriptionPage { csrf: &session.csrf_token, s, deliveries, older, f, parameters, problem })
}

fn delivery_view(d: Delivery) -> DeliveryView {
    DeliveryView {
        started: when_html(When::at(d.started_at)),
        took: d.ended_at.map(|end| format!("{} s", (end - d.started_at).max(0))).unwrap_or_else(|| "under way".into()),
        rows: d.row_count.map(|r| r.to_string()).unwrap_or_else(|| "—".into()),
        posts: d.post_count,
        request_ids: d.request_ids.join(" "),
        badge: match d.outcome.as_str() {
            "delivered" => "badge-success",
            "failed" => "badge-danger",
            "paused" | "retrying" | "snoozed" => "badge-warning",
            _ => "badge-neutral",
        },
        outcome: d.outcome,
        error: d.error.unwrap_or_default(),
    }
}

/// The settings form: a new frequency, time zone and parameters, saved together.
pub async fn change_settings(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<Uuid>,
    axum::Form(form): axum::Form<PinForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let change = frequency_of(&form).map(|(frequency, time_zone)| SettingsChange {
        frequency: Some(frequency),
        time_zone: Some(time_zone),
        parameters: Some(parameters_of(&form)),
    });
    let changed = match change {
        Ok(change) => ops::change_settings(&state, &session.user, id, &change).await,
        Err(problem) => Err(problem),
    };
    match changed {
        Ok(changed) => {
            let details = &changed.subscription.details;
            let how_often = serde_json::from_str::<Frequency>(&details.frequency).map(|f| f.describe()).unwrap_or_default();
            let mut said = format!("Saved: {how_often} ({}).", details.time_zone);
            if changed.delivery.is_some() {
                said.push_str(" It delivers now with the new parameters: reload to see the result.");
            }
            session::done(&state, &session, &format!("/subscriptions/{id}"), Flash::message(Message::success(said)))
        }
        Err(problem @ (Problem::NotFound(_) | Problem::Internal)) => problem.page(),
        Err(problem) => subscription_page(&state, &session, id, None, Some((&form, problem.in_words()))).await,
    }
}

#[derive(Deserialize)]
pub struct ActionForm {
    csrf: String,
    #[serde(default)]
    remove_content: Option<String>,
}

async fn act(state: &AppState, session: &Session, form: &ActionForm, action: &str, id: Uuid) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let user = &session.user;
    let (result, to) = match action {
        "run" => (
            ops::run_now(state, user, id).await.map(|_| "A delivery is under way: reload to see its result.".to_owned()),
            format!("/subscriptions/{id}"),
        ),
        "check-pin" => (
            ops::check_pin(state, user, id).await.map(|_| "Found the tile you pinned: every delivery refreshes it.".to_owned()),
            format!("/subscriptions/{id}"),
        ),
        "enable" => (
            ops::set_enabled(state, user, id, true).await.map(|_| "Enabled: it delivers now, then on its schedule.".to_owned()),
            format!("/subscriptions/{id}"),
        ),
        "disable" => (
            ops::set_enabled(state, user, id, false)
                .await
                .map(|_| "Disabled: it delivers nothing until you enable it. The tile keeps its last data.".to_owned()),
            format!("/subscriptions/{id}"),
        ),
        _ => {
            let remove = form.remove_content.is_some();
            let said = if remove {
                "Deleted, with its dataset and report in Power BI. The tile stays on the dashboard (no Power BI API removes one): delete it there."
            } else {
                "Deleted. Its tile, dataset and report stay in Power BI, frozen with their last data."
            };
            (ops::delete(state, user, id, remove).await.map(|()| said.to_owned()), "/subscriptions".to_owned())
        }
    };
    match result {
        Ok(said) => session::done(state, session, &to, Flash::message(Message::success(said))),
        Err(problem @ (Problem::NotFound(_) | Problem::Internal)) => problem.page(),
        Err(problem) => session::done(state, session, &format!("/subscriptions/{id}"), Flash::message(Message::error(problem.in_words()))),
    }
}

macro_rules! subscription_action {
    ($name:ident, $action:literal) => {
        pub async fn $name(
            State(state): State<Arc<AppState>>,
            SignedIn(session): SignedIn,
            Path(id): Path<Uuid>,
            axum::Form(form): axum::Form<ActionForm>,
        ) -> Response {
            act(&state, &session, &form, $action, id).await
        }
    };
}

subscription_action!(run_now, "run");
subscription_action!(check_pin, "check-pin");
subscription_action!(enable, "enable");
subscription_action!(disable, "disable");
subscription_action!(delete, "delete");

struct TemplateView {
    kind: &'static str,
    label: &'static str,
    visual: &'static str,
    dataset: String,
    /// The dataset's page in Power BI (where *Create report* is), once made.
    dataset_url: Option<String>,
    ready: bool,
    made: bool,
}

#[derive(Template)]
#[template(path = "admin_templates.html")]
struct TemplatesPage<'a> {
    csrf: &'a str,
    made: bool,
    dashboard_name: &'static str,
    kinds: Vec<TemplateView>,
}

pub async fn templates(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn) -> Response {
    let templates = match ops::templates(&state, &session.user).await {
        Ok(templates) => templates,
        Err(problem) => return problem.page(),
    };
    let web = ops::power_bi_web(&state).await;
    let kinds = templates
        .states()
        .into_iter()
        .map(|(kind, ready)| {
            let row = templates.rows.iter().find(|r| r.kind == kind.as_str());
            TemplateView {
                kind: kind.as_str(),
                label: kind.label(),
                visual: visual_of(kind),
                dataset: dataset_name(kind),
                dataset_url: web
                    .as_ref()
                    .zip(row)
                    .and_then(|(web, row)| ops::content_page(web, Some(row.workspace_id), "datasets", &row.dataset_id.to_string())),
                ready: ready.unwrap_or(false),
                made: ready.is_some(),
            }
        })
        .collect();
    render(
        StatusCode::OK,
        &TemplatesPage { csrf: &session.csrf_token, made: !templates.rows.is_empty(), dashboard_name: DASHBOARD_NAME, kinds },
    )
}

#[derive(Deserialize)]
pub struct TemplatesForm {
    csrf: String,
    #[serde(default)]
    workspace_name: String,
}

pub async fn make_templates(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    axum::Form(form): axum::Form<TemplatesForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let name = form.workspace_name.trim();
    let name = if name.is_empty() { "pbi-bridge templates" } else { name };
    let message = match ops::create_templates(&state, &session.user, name).await {
        Ok(_) => Message::success(format!(
            "Made the workspace '{name}' with a dataset per kind and the dashboard '{DASHBOARD_NAME}'. Now do step 2 in Power BI."
        )),
        Err(problem @ (Problem::AdminOnly | Problem::Internal)) => return problem.page(),
        Err(problem) => Message::error(problem.in_words()),
    };
    session::done(&state, &session, "/admin/templates", Flash::message(message))
}

pub async fn check_templates(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    axum::Form(form): axum::Form<TemplatesForm>,
) -> Response {
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let message = match ops::check_templates(&state, &session.user).await {
        Ok(templates) => {
            let missing: Vec<&str> = templates.states().into_iter().filter(|(_, r)| *r != Some(true)).map(|(k, _)| k.label()).collect();
            if missing.is_empty() {
                Message::success("Every template is ready: users can pin items of every kind.")
            } else {
                Message::warning(format!(
                    "Not pinned yet: {}. Pin each one's visual to '{DASHBOARD_NAME}', then check again.",
                    missing.join("; ")
                ))
            }
        }
        Err(problem @ (Problem::AdminOnly | Problem::Internal)) => return problem.page(),
        Err(problem) => Message::error(problem.in_words()),
    };
    session::done(&state, &session, "/admin/templates", Flash::message(message))
}
