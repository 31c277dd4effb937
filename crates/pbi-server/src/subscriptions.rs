//! Seed 001 at the edges: the operations the pages and the API share, over `pbi_subscriptions::pins` and
//! `templates`: a user's pins and subscriptions with their history, and (administrators) the templates. Each
//! first makes sure the user's Power BI sign-in allows what it does, so that a missing permission is said as
//! "sign in again to allow it", not discovered as a refusal half-way.

use crate::AppState;
use crate::ops::{client_for, power_bi_problem, registration_and_connection};
use crate::problem::Problem;
use pbi_jobs::JobsError;
use pbi_powerbi::Workspace;
use pbi_store::{Delivery, StoredItem, Subscription, TemplateRow, User};
use pbi_subscriptions::Frequency;
use pbi_subscriptions::kind::VisualKind;
use pbi_subscriptions::pins::{self, Changed, DashboardChoice, NewPin, PinFailure, PinRequest, SettingsChange};
use pbi_subscriptions::templates;
use pbi_subscriptions::{Item, ItemSpec};
use serde_json::{Map, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// What a pin does in Power BI: create a push dataset and rows (Dataset.ReadWrite.All), clone a report
/// (Content.Create) and a tile onto a dashboard (Dashboard.ReadWrite.All), delete the report on unpinning
/// (Report.ReadWrite.All).
pub(crate) const PIN_SCOPES: &[&str] = &["Content.Create", "Dashboard.ReadWrite.All", "Dataset.ReadWrite.All", "Report.ReadWrite.All"];
/// What making the templates does besides: create a workspace.
pub(crate) const TEMPLATE_SCOPES: &[&str] = &["Workspace.ReadWrite.All", "Content.Create", "Dataset.ReadWrite.All"];

/// Refuses, before any call, a connection whose sign-in lacks one of `needed`.
async fn require_scopes(state: &AppState, user: &User, needed: &[&str], doing: &str) -> Result<(), Problem> {
    let (_, connection) = registration_and_connection(state, user).await?;
    let Some(connection) = connection else { return Err(Problem::NotConnected) };
    let missing: Vec<&str> =
        needed.iter().copied().filter(|scope| !connection.scopes.iter().any(|s| s.eq_ignore_ascii_case(scope))).collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Problem::NeedsSignIn(format!(
        "your Power BI sign-in does not allow pbi-bridge to {doing} (it lacks {}). Click Get started and accept the permissions; nothing else changes.",
        missing.join(", ")
    )))
}

/// The problem a refused pin or change reads as.
fn pin_problem(failure: PinFailure) -> Problem {
    match failure {
        PinFailure::ItemNotFound(_) => Problem::NotFound("item"),
        PinFailure::NotFound(_) => Problem::NotFound("subscription"),
        PinFailure::NotReady(why) => Problem::Conflict(sentence(&why.to_string())),
        // The time zone is a field of its own; the rest are the frequency's (as the API names them).
        PinFailure::Frequency(e) if e.field == "timeZone" => Problem::Invalid { field: e.field.to_owned(), message: e.message },
        PinFailure::Frequency(e) => Problem::Invalid { field: format!("frequency.{}", e.field), message: e.message },
        PinFailure::Parameter { name, message } => Problem::Invalid { field: format!("parameters.{name}"), message: sentence(&message) },
        PinFailure::BadItem(why) => {
            Problem::Conflict(format!("This item cannot be pinned ({why}): ask an administrator to save it again."))
        }
        PinFailure::Dashboard(e) => power_bi_problem(&e),
        PinFailure::Target(e) => match power_bi_problem(e.power_bi()) {
            Problem::PowerBi { status, message } => Problem::PowerBi { status, message: format!("{}: {message}", sentence(&step_of(&e))) },
            other => other,
        },
        PinFailure::Conflict(why) => Problem::Conflict(sentence(&why)),
        PinFailure::Store(e) => Problem::store("subscription", "a subscription's store")(e),
        PinFailure::Jobs(e) => jobs_problem(e),
    }
}

fn step_of(error: &pbi_subscriptions::push_target::PinError) -> String {
    use pbi_subscriptions::push_target::PinError as E;
    match error {
        E::Dataset(_) => "creating the push dataset",
        E::Report(_) => "cloning the template report (the templates workspace must give you Contributor access)",
        E::Tile(_) => "cloning the template tile onto the dashboard",
    }
    .to_owned()
}

fn jobs_problem(error: JobsError) -> Problem {
    match error {
        JobsError::Invalid(why) if why.contains("no handler is registered") => {
            Problem::Unavailable("This server does not run background work: start pbi-bridge with serve or up.".into())
        }
        JobsError::Invalid(why) => Problem::Conflict(sentence(&why)),
        other => {
            tracing::error!(error = %other, "the job engine");
            Problem::Internal
        }
    }
}

/// `text` with its first letter in capitals and a full stop, as a message.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let first: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
    let rest = chars.as_str();
    let body = format!("{first}{rest}");
    if body.is_empty() || body.ends_with('.') { body } else { format!("{body}.") }
}

/// The dashboard a pin goes to, as the dialog or the API names it.
pub(crate) enum DashboardInput {
    Existing(Uuid),
    New(String),
}

/// A pin as an edge parsed it; the workspace's and dashboard's names are asked of Power BI.
pub(crate) struct PinInput {
    pub item: Uuid,
    /// `None`: the user's My workspace.
    pub workspace: Option<Uuid>,
    pub dashboard: DashboardInput,
    pub frequency: Frequency,
    pub time_zone: String,
    pub parameters: Map<String, Value>,
}

/// Pins an item for `user` and starts its first delivery.
pub(crate) async fn pin(state: &AppState, user: &User, input: PinInput) -> Result<NewPin, Problem> {
    require_scopes(state, user, PIN_SCOPES, "pin to your dashboards").await?;
    let (client, connection) = client_for(state, user).await?;
    let workspace = input.workspace.map_or(Workspace::My, Workspace::Group);
    let workspace_name = match input.workspace {
        Some(id) => client.group(id).await.map_err(|e| power_bi_problem(&e))?.name,
        None => "My workspace".to_owned(),
    };
    let dashboard = match input.dashboard {
        // Asked of Power BI as the user: a dashboard they cannot see is refused by Power BI itself.
        DashboardInput::Existing(id) => {
            DashboardChoice::Existing { id, name: client.dashboard(workspace, id).await.map_err(|e| power_bi_problem(&e))?.display_name }
        }
        DashboardInput::New(name) => DashboardChoice::New { name },
    };
    let request = PinRequest {
        item: input.item,
        workspace,
        workspace_name,
        dashboard,
        frequency: input.frequency,
        time_zone: input.time_zone,
        parameters: input.parameters,
    };
    pins::pin(&state.store, &state.jobs, &client, user.id, connection, &request, state.clock.unix()).await.map_err(pin_problem)
}

/// Where the user can pin, asked of Power BI as them: each workspace (its key, `me` for My workspace, and its
/// name) with its dashboards.
pub(crate) async fn pin_targets(state: &AppState, user: &User) -> Result<Vec<(String, String, Vec<(Uuid, String)>)>, Problem> {
    let (client, _) = client_for(state, user).await?;
    let mut workspaces = crate::ops::workspaces_of(&client).await.map_err(|e| power_bi_problem(&e))?;
    // Pins go to the user's own content, not into the templates they are cloned from.
    let templates = crate::ops::templates_workspace(state).await?;
    workspaces.retain(|(group, _)| group.is_none() || *group != templates);
    let dashboards = crate::ops::dashboards_in(&client, workspaces.clone()).await.map_err(|e| power_bi_problem(&e))?;
    Ok(workspaces
        .into_iter()
        .map(|(group, name)| {
            let key = group.map_or_else(|| "me".to_owned(), |g| g.to_string());
            let in_it = dashboards.iter().filter(|(g, _, _)| *g == group).map(|(_, _, d)| (d.id, d.display_name.clone())).collect();
            (key, name, in_it)
        })
        .collect())
}

/// A subscription with its item, as lists show it.
pub(crate) struct Listed {
    pub subscription: Subscription,
    pub item_name: String,
    pub kind: Option<VisualKind>,
}

fn checked(item: &StoredItem) -> Option<Item> {
    serde_json::from_str::<ItemSpec>(&item.details.definition).ok().and_then(|spec| spec.check().ok())
}

/// The user's subscriptions, oldest first.
pub(crate) async fn list(state: &AppState, user: &User) -> Result<Vec<Listed>, Problem> {
    let subscriptions = state.store.subscriptions_of(user.id).await.map_err(Problem::store("subscription", "listing subscriptions"))?;
    let items: HashMap<Uuid, StoredItem> =
        state.store.items().await.map_err(Problem::store("item", "listing items"))?.into_iter().map(|i| (i.id, i)).collect();
    Ok(subscriptions
        .into_iter()
        .map(|subscription| {
            let item = items.get(&subscription.details.item_id);
            Listed {
                item_name: item.map(|i| i.details.name.clone()).unwrap_or_default(),
                kind: item.and_then(checked).map(|i| i.kind),
                subscription,
            }
        })
        .collect())
}

pub(crate) async fn one(state: &AppState, user: &User, id: Uuid) -> Result<Listed, Problem> {
    list(state, user).await?.into_iter().find(|l| l.subscription.id == id).ok_or(Problem::NotFound("subscription"))
}

/// A subscription's deliveries, newest first, before the cursor.
pub(crate) async fn history(state: &AppState, user: &User, id: Uuid, before: Option<i64>, limit: i64) -> Result<Vec<Delivery>, Problem> {
    one(state, user, id).await?;
    state.store.deliveries_of(user.id, id, before, limit).await.map_err(Problem::store("subscription", "reading deliveries"))
}

pub(crate) async fn run_now(state: &AppState, user: &User, id: Uuid) -> Result<i64, Problem> {
    pins::run_now(&state.store, &state.jobs, user.id, id).await.map_err(pin_problem)
}

/// "Pin once": finds the tile the user pinned by hand from the subscription's dataset (see `pins::check_pin`).
pub(crate) async fn check_pin(state: &AppState, user: &User, id: Uuid) -> Result<Subscription, Problem> {
    one(state, user, id).await?;
    let (client, _) = client_for(state, user).await?;
    pins::check_pin(&state.store, &client, user.id, id, state.clock.unix()).await.map_err(pin_problem)
}

/// Where the Power BI service's pages are for the configured registration (app.powerbi.com, a sovereign
/// cloud's, or the sandbox's). Read once per request, for every subscription it shows.
pub(crate) async fn power_bi_web(state: &AppState) -> Option<url::Url> {
    let registration = crate::connect::active_registration(state).await.ok().flatten()?;
    pbi_auth::cloud_of(&registration).ok().map(|cloud| cloud.embed_base())
}

/// A dataset's or report's page in Power BI (`what`: `datasets` or `reports`), as the service's `webUrl`s
/// name it (`me` for My workspace).
pub(crate) fn content_page(web: &url::Url, workspace: Option<Uuid>, what: &str, id: &str) -> Option<String> {
    let group = workspace.map_or_else(|| "me".to_owned(), |w| w.to_string());
    web.join(&format!("groups/{group}/{what}/{id}")).ok().map(String::from)
}

/// A "pin once" subscription's dataset page in Power BI (Create report, then Pin visual), under `web`
/// (`power_bi_web`). `None` once its tile is pinned.
pub(crate) fn pin_once_page(web: Option<&url::Url>, subscription: &Subscription) -> Option<String> {
    let target = &subscription.target;
    let dataset = target.dataset_id.as_deref().filter(|_| target.tile_id.is_none())?;
    content_page(web?, subscription.details.workspace_id, "datasets", dataset)
}

/// The subscription's dashboard's page in Power BI, under `web` (`power_bi_web`).
pub(crate) fn dashboard_page(web: Option<&url::Url>, subscription: &Subscription) -> Option<String> {
    content_page(web?, subscription.details.workspace_id, "dashboards", &subscription.details.dashboard_id.to_string())
}

/// Changes a subscription's schedule, time zone or parameters.
pub(crate) async fn change_settings(state: &AppState, user: &User, id: Uuid, change: &SettingsChange) -> Result<Changed, Problem> {
    pins::change_settings(&state.store, &state.jobs, user.id, id, change, state.clock.unix()).await.map_err(pin_problem)
}

pub(crate) async fn set_enabled(state: &AppState, user: &User, id: Uuid, enabled: bool) -> Result<Subscription, Problem> {
    pins::set_enabled(&state.store, &state.jobs, user.id, id, enabled, state.clock.unix()).await.map_err(pin_problem)
}

/// Deletes a subscription; with `remove_content`, its push dataset and report in Power BI too.
pub(crate) async fn delete(state: &AppState, user: &User, id: Uuid, remove_content: bool) -> Result<(), Problem> {
    one(state, user, id).await?;
    let client = if remove_content { Some(client_for(state, user).await?.0) } else { None };
    pins::delete(&state.store, &state.jobs, client.as_ref(), user.id, id).await.map_err(pin_problem)
}

/// After `user` signed in again as `connection`: their paused subscriptions resume (each delivers now). How
/// many; a failure is logged and resumes none (the next sign-in tries again), never failing the sign-in.
pub(crate) async fn resume(state: &AppState, user: &User, connection: Uuid) -> usize {
    match pins::resume_after_sign_in(&state.store, &state.jobs, user.id, connection, state.clock.unix()).await {
        Ok(resumed) => resumed.len(),
        Err(error) => {
            tracing::error!(user = %user.username, %error, "resuming paused subscriptions after a sign-in");
            0
        }
    }
}

/// The items `user` may pin, with their checked definitions.
pub(crate) async fn pinnable_items(state: &AppState, user: &User) -> Result<Vec<(StoredItem, Option<Item>)>, Problem> {
    let items = state.store.items_pinnable_by(user.id).await.map_err(Problem::store("item", "listing items"))?;
    Ok(items.into_iter().map(|i| (checked(&i), i)).map(|(c, i)| (i, c)).collect())
}

/// The rows an application sends for one of its pushed items (administrators' API tokens): checked against
/// the item's columns (the error names the row and the column), then kept for the item's next deliveries.
/// How many rows were kept.
pub(crate) async fn put_item_rows(state: &AppState, admin: &User, id: Uuid, rows: Vec<Map<String, Value>>) -> Result<usize, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    let item = state.store.item(id).await.map_err(Problem::store("item", "reading an item"))?;
    if item.details.source != pbi_store::ItemSource::Pushed {
        return Err(Problem::Conflict(format!(
            "The item '{}' reads its rows from its data source: only an item whose rows the application sends takes rows here.",
            item.details.name
        )));
    }
    let checked = checked(&item).ok_or_else(|| Problem::Conflict("This item cannot be read: save it again.".into()))?;
    pbi_subscriptions::push_rows(&checked, &rows, state.clock.now())
        .map_err(|e| Problem::invalid(&format!("rows[{}].{}", e.row.saturating_sub(1), e.column), e.problem))?;
    let count = rows.len();
    let text = Value::Array(rows.into_iter().map(Value::Object).collect()).to_string();
    state.store.set_pushed_rows(id, &text, state.clock.unix()).await.map_err(Problem::store("item", "keeping an item's rows"))?;
    Ok(count)
}

/// The templates and each kind's state.
pub(crate) struct Templates {
    pub rows: Vec<TemplateRow>,
}

impl Templates {
    /// Each kind, and whether it is ready (`None`: the templates were never made).
    pub fn states(&self) -> Vec<(VisualKind, Option<bool>)> {
        VisualKind::ALL
            .iter()
            .map(|&kind| {
                let row = self.rows.iter().find(|r| r.kind == kind.as_str());
                (kind, row.map(|r| r.tile_id.is_some()))
            })
            .collect()
    }
}

pub(crate) async fn templates(state: &AppState, admin: &User) -> Result<Templates, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    Ok(Templates { rows: state.store.templates().await.map_err(Problem::store("template", "reading the templates"))? })
}

/// Makes the templates workspace, datasets and dashboard as the administrator (replacing any made before).
pub(crate) async fn create_templates(state: &AppState, admin: &User, workspace_name: &str) -> Result<Templates, Problem> {
    templates(state, admin).await?;
    require_scopes(state, admin, TEMPLATE_SCOPES, "create the templates workspace").await?;
    let (client, _) = client_for(state, admin).await?;
    let set = templates::create(&client, workspace_name).await.map_err(|e| power_bi_problem(&e))?;
    templates::keep_made(&state.store, &set, state.clock.unix()).await.map_err(Problem::store("template", "storing the templates"))?;
    tracing::info!(admin = %admin.username, workspace = %set.workspace, "the Power BI templates were made");
    templates(state, admin).await
}

/// Looks at the template dashboard and records each kind's pinned tile.
pub(crate) async fn check_templates(state: &AppState, admin: &User) -> Result<Templates, Problem> {
    let stored = templates(state, admin).await?;
    let Some(set) = templates::set_of(&stored.rows) else {
        return Err(Problem::Conflict("The templates have not been made yet: make them first.".into()));
    };
    let (client, _) = client_for(state, admin).await?;
    let states = templates::check_now(&client, &set).await.map_err(|e| power_bi_problem(&e))?;
    templates::keep_checked(&state.store, &states, state.clock.unix()).await.map_err(Problem::store("template", "recording the check"))?;
    templates(state, admin).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_sentences() {
        assert_eq!(sentence("the template is not complete"), "The template is not complete.");
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), "");
    }
}
