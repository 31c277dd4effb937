//! `pbi-bridge subscriptions`: every user's seed-001 subscriptions, seen and acted on by an administrator
//! from the command line, through the same `pbi_subscriptions::pins` operations as My Subscriptions (each in
//! the name of the subscription's owner) and written to the audit log as `cli`. The deliveries themselves
//! run in `serve` or `up`: here they are scheduled and enqueued.

use crate::config::{Create, StoreArgs};
use crate::powerbi::output::print_list;
use crate::powerbi::usage_error;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use pbi_jobs::{Engine, Schedulable};
use pbi_store::{Delivery, NewAuditEntry, Store, StoreError, Subscription, User};
use pbi_subscriptions::deliveries::{Deliver, schedule_owner};
use pbi_subscriptions::pins::{self, PinFailure, SettingsChange};
use pbi_subscriptions::{Frequency, FrequencyError};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use uuid::Uuid;

/// Who the audit log names for a change made here.
const ACTOR: &str = "cli";

#[derive(Args)]
pub struct FrequencyArgs {
    /// How often: hourly, daily, weekly or cron (with the flags each needs).
    #[arg(long)]
    every: Option<String>,
    /// The time of day, HH:MM (daily, weekly).
    #[arg(long)]
    time: Option<String>,
    /// A day of the week (weekly; repeatable): monday, tue, …
    #[arg(long = "day")]
    days: Vec<String>,
    /// Minutes past the hour, 0 to 59 (hourly).
    #[arg(long)]
    minute: Option<String>,
    /// Five cron fields, such as "30 2 * * 1-5" (cron).
    #[arg(long)]
    cron: Option<String>,
}

#[derive(Subcommand)]
pub enum SubscriptionsCommand {
    /// Lists the subscriptions: id, owner, item, dashboard, how often, state and the last error.
    List {
        /// Only this user's (their user name).
        #[arg(long)]
        user: Option<String>,
    },
    /// Shows one subscription in full, with its latest deliveries.
    Show {
        /// The subscription's id (from subscriptions list).
        id: Uuid,
    },
    /// Changes a subscription's frequency, time zone or parameters, or enables or disables it.
    Update {
        /// The subscription's id (from subscriptions list).
        id: Uuid,
        #[command(flatten)]
        frequency: FrequencyArgs,
        /// The IANA time zone of the frequency, such as Europe/Berlin.
        #[arg(long)]
        time_zone: Option<String>,
        /// A value for one of the item's parameters, NAME=VALUE (repeatable). Given, these are all the values
        /// the subscription fixes: a parameter left out takes the item's default.
        #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// Schedule it again and deliver now.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Stop its deliveries (the tile keeps its last data).
        #[arg(long)]
        disable: bool,
    },
    /// Delivers an active subscription now (the delivery runs in `serve` or `up`).
    Run {
        /// The subscription's id (from subscriptions list).
        id: Uuid,
    },
    /// Deletes a subscription, its schedule and its history. What it made in Power BI stays (its owner can
    /// delete the dataset and report from My Subscriptions; no API removes the tile).
    Delete {
        /// The subscription's id (from subscriptions list).
        id: Uuid,
    },
}

fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
        _ => Err(format!("'{text}' is not NAME=VALUE")),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn rfc3339(at: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp(at).ok().and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
}

/// The frequency the flags ask for; `None` when none of them is given.
fn frequency_of(args: &FrequencyArgs) -> anyhow::Result<Option<Frequency>> {
    let Some(every) = &args.every else {
        if args.time.is_some() || !args.days.is_empty() || args.minute.is_some() || args.cron.is_some() {
            return Err(usage_error("--every: say how often (hourly, daily, weekly or cron) with --time, --day, --minute or --cron").into());
        }
        return Ok(None);
    };
    let field = |text: &Option<String>| text.clone().unwrap_or_default();
    Frequency::parse(every, &field(&args.time), &args.days, &field(&args.minute), &field(&args.cron))
        .map(Some)
        .map_err(|e| usage_error(flag_error(&e)).into())
}

/// A frequency's fault, named by the flag that gives it.
fn flag_error(error: &FrequencyError) -> String {
    let flag = match error.field {
        "frequency" => "every",
        "days" => "day",
        "timeZone" => "time-zone",
        other => other,
    };
    format!("--{flag}: {}", error.message)
}

/// A refused operation as the command says it: bad input is a usage error (exit 2); not found or not
/// possible now, a conflict (exit 3).
fn refused(failure: PinFailure) -> anyhow::Error {
    match failure {
        PinFailure::Frequency(e) => usage_error(flag_error(&e)).into(),
        PinFailure::Parameter { name, message } => usage_error(format!("--param {name}: {message}")).into(),
        PinFailure::NotFound(id) => StoreError::NotFound(format!("subscription {id}: `pbi-bridge subscriptions list` shows them")).into(),
        PinFailure::Conflict(why) => StoreError::Conflict(why).into(),
        PinFailure::Store(e) => e.into(),
        other => anyhow::Error::new(other),
    }
}

async fn found(store: &Store, id: Uuid) -> anyhow::Result<Subscription> {
    store.subscription(id).await.map_err(|e| match e {
        StoreError::NotFound(_) => refused(PinFailure::NotFound(id)),
        other => other.into(),
    })
}

/// A subscription as `show` and `--json` print it.
fn described(s: &Subscription, owner: &str, item: &str) -> Value {
    let frequency = serde_json::from_str::<Frequency>(&s.details.frequency).map(|f| f.describe()).unwrap_or_default();
    json!({
        "id": s.id, "owner": owner, "itemId": s.details.item_id, "itemName": item,
        "workspaceId": s.details.workspace_id, "workspaceName": s.details.workspace_name,
        "dashboardId": s.details.dashboard_id, "dashboardName": s.details.dashboard_name,
        "frequency": frequency, "timeZone": s.details.time_zone,
        "parameters": serde_json::from_str::<Value>(&s.details.parameters).unwrap_or(Value::Null),
        "state": s.state.as_str(), "stateReason": s.state_reason, "lastError": s.last_error,
        "datasetId": s.target.dataset_id, "reportId": s.target.report_id, "tileId": s.target.tile_id,
        "createdAt": rfc3339(s.created_at),
    })
}

fn delivery_json(d: &Delivery) -> Value {
    json!({
        "startedAt": rfc3339(d.started_at), "endedAt": d.ended_at.and_then(rfc3339), "rows": d.row_count, "posts": d.post_count,
        "outcome": d.outcome, "error": d.error, "requestIds": d.request_ids,
    })
}

/// Who the audit log says a change was made for: the subscription's owner, item and dashboard.
async fn audit(store: &Store, action: &str, s: &Subscription, owner: &str, new_value: Option<String>) {
    let entry = NewAuditEntry {
        actor: ACTOR.into(),
        action: action.into(),
        target: format!("{owner}: {} on {}", s.id, s.details.dashboard_name),
        old_value: None,
        new_value,
    };
    if let Err(error) = store.record_audit(std::slice::from_ref(&entry), now()).await {
        eprintln!("warning: the change was made, but recording it in the audit log failed: {error}");
    }
}

pub async fn run(store_args: &StoreArgs, command: SubscriptionsCommand, json_output: bool) -> anyhow::Result<()> {
    let (store, _) = store_args.open(Create::No).await?;
    let users: HashMap<Uuid, User> = store.users().await?.into_iter().map(|u| (u.id, u)).collect();
    let owner_name = |id: Uuid| users.get(&id).map_or_else(|| id.to_string(), |u| u.username.clone());
    let items: HashMap<Uuid, String> = store.items().await?.into_iter().map(|i| (i.id, i.details.name)).collect();
    let item_name = |id: Uuid| items.get(&id).cloned().unwrap_or_default();
    // Schedules and enqueues, never works: the deliveries run in `serve` or `up`.
    let engine = Engine::insert_only_scheduling(store.clone(), pbi_clock::Clock::system(), Schedulable::new().with::<Deliver>()).await?;
    let result = match command {
        SubscriptionsCommand::List { user } => {
            let chosen = match &user {
                Some(name) => Some(
                    users
                        .values()
                        .find(|u| u.username.eq_ignore_ascii_case(name.trim()))
                        .ok_or_else(|| usage_error(format!("--user: there is no user '{name}'; `pbi-bridge users list` shows them")))?
                        .id,
                ),
                None => None,
            };
            let all = store.all_subscriptions().await?;
            let shown: Vec<&Subscription> = all.iter().filter(|s| chosen.is_none_or(|u| s.details.owner == u)).collect();
            let rows = shown
                .iter()
                .map(|s| {
                    let frequency = serde_json::from_str::<Frequency>(&s.details.frequency).map(|f| f.describe()).unwrap_or_default();
                    vec![
                        s.id.to_string(),
                        owner_name(s.details.owner),
                        item_name(s.details.item_id),
                        s.details.dashboard_name.clone(),
                        format!("{frequency} ({})", s.details.time_zone),
                        s.state.as_str().to_owned(),
                        s.last_error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            let described: Vec<Value> =
                shown.iter().map(|s| described(s, &owner_name(s.details.owner), &item_name(s.details.item_id))).collect();
            print_list(json_output, &described, &["ID", "OWNER", "ITEM", "DASHBOARD", "HOW OFTEN", "STATE", "LAST ERROR"], rows);
            Ok(())
        }
        SubscriptionsCommand::Show { id } => {
            let s = found(&store, id).await?;
            let mut shown = described(&s, &owner_name(s.details.owner), &item_name(s.details.item_id));
            let next = store.schedules_of(&schedule_owner(id)).await?.first().and_then(|row| rfc3339(row.next_run_at));
            let deliveries = store.deliveries_of(s.details.owner, id, None, 20).await?;
            shown["nextRunAt"] = json!(next);
            shown["deliveries"] = Value::Array(deliveries.iter().map(delivery_json).collect());
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(())
        }
        SubscriptionsCommand::Update { id, frequency, time_zone, params, enable, disable } => {
            let s = found(&store, id).await?;
            let change = SettingsChange {
                frequency: frequency_of(&frequency)?,
                time_zone: time_zone.map(|zone| zone.trim().to_owned()),
                parameters: (!params.is_empty())
                    .then(|| params.into_iter().map(|(name, value)| (name, Value::String(value))).collect::<Map<_, _>>()),
            };
            if change.is_empty() && !enable && !disable {
                return Err(usage_error("say what to change: --every, --time-zone, --param, --enable or --disable").into());
            }
            let owner = s.details.owner;
            let mut said = Vec::new();
            if !change.is_empty() {
                let changed = pins::change_settings(&store, &engine, owner, id, &change, now()).await.map_err(refused)?;
                let details = &changed.subscription.details;
                let how_often = serde_json::from_str::<Frequency>(&details.frequency).map(|f| f.describe()).unwrap_or_default();
                let settings = json!({"frequency": how_often, "timeZone": details.time_zone, "parameters": details.parameters});
                audit(&store, "subscription.settings", &s, &owner_name(owner), Some(settings.to_string())).await;
                said.push(format!("Saved: {how_often} ({}).", details.time_zone));
                if changed.delivery.is_some() {
                    said.push("It delivers now with the new parameters.".into());
                }
            }
            if enable || disable {
                pins::set_enabled(&store, &engine, owner, id, enable, now()).await.map_err(refused)?;
                let action = if enable { "subscription.enabled" } else { "subscription.disabled" };
                audit(&store, action, &s, &owner_name(owner), None).await;
                said.push(if enable { "Enabled: it delivers now, then on its schedule." } else { "Disabled." }.into());
            }
            let after = found(&store, id).await?;
            say(json_output, &described(&after, &owner_name(owner), &item_name(after.details.item_id)), &said.join(" "));
            Ok(())
        }
        SubscriptionsCommand::Run { id } => {
            let s = found(&store, id).await?;
            let job = pins::run_now(&store, &engine, s.details.owner, id).await.map_err(refused)?;
            audit(&store, "subscription.run", &s, &owner_name(s.details.owner), None).await;
            say(json_output, &json!({"job": job}), &format!("A delivery is under way (job {job}): `pbi-bridge subscriptions show {id}`."));
            Ok(())
        }
        SubscriptionsCommand::Delete { id } => {
            let s = found(&store, id).await?;
            pins::delete(&store, &engine, None, s.details.owner, id).await.map_err(refused)?;
            audit(&store, "subscription.deleted", &s, &owner_name(s.details.owner), None).await;
            let said = format!(
                "Deleted subscription {id}. Its tile, dataset and report stay in Power BI, in '{}', frozen with their last data.",
                s.details.workspace_name
            );
            say(json_output, &json!({"deleted": id}), &said);
            Ok(())
        }
    };
    engine.stop().await.context("stopping the job engine")?;
    result
}

fn say(json_output: bool, value: &Value, sentence: &str) {
    if json_output {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{sentence}");
    }
}
