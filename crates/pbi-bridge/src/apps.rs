//! `pbi-bridge apps`: seed 002's apps, made and rotated by an administrator from the command line through the
//! same `pbi_connect::apps` operations as the API, written to the audit log as `cli`. A secret key is printed
//! once, to standard output, when it is made.

use crate::config::{Create, StoreArgs};
use crate::powerbi::output::print_list;
use crate::powerbi::usage_error;
use clap::Subcommand;
use pbi_connect::app::AppSpec;
use pbi_connect::{AppError, NewSecretKey, apps};
use pbi_store::{App, AppKey, Store};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use uuid::Uuid;

/// Who the audit log names for a change made here.
const ACTOR: &str = "cli";

#[derive(Subcommand)]
pub enum AppsCommand {
    /// Makes an app, and prints its secret key (once: only its hash is kept).
    Add {
        /// The name its end users see on the connect page.
        #[arg(long)]
        name: String,
        /// The registration its end users connect through (its name, from `registration show`).
        #[arg(long)]
        registration: String,
        /// An origin its connect page and SDK may be used from, such as https://erp.example.com (repeatable).
        #[arg(long = "origin", value_name = "ORIGIN")]
        origins: Vec<String>,
    },
    /// Lists the apps.
    List,
    /// Shows one app with its keys (never the keys themselves).
    Show {
        /// The app's id (from apps list).
        id: Uuid,
    },
    /// Changes an app's name, registration or allowed origins (what is left out stays).
    Update {
        /// The app's id (from apps list).
        id: Uuid,
        /// A new name.
        #[arg(long)]
        name: Option<String>,
        /// Another registration (its name).
        #[arg(long)]
        registration: Option<String>,
        /// The allowed origins, all of them (repeatable; left out, they stay).
        #[arg(long = "origin", value_name = "ORIGIN")]
        origins: Vec<String>,
    },
    /// Deletes an app; its secret keys stop working at once.
    Remove {
        /// The app's id (from apps list).
        id: Uuid,
    },
    /// Makes a new secret key and prints it once; the older keys keep working for the overlap.
    RotateKey {
        /// The app's id (from apps list).
        id: Uuid,
        /// Hours the older keys keep working, 0 to 720 (24 when left out).
        #[arg(long)]
        overlap_hours: Option<i64>,
    },
}

pub async fn run(store_args: &StoreArgs, command: AppsCommand, json_output: bool) -> anyhow::Result<()> {
    let (store, _) = store_args.open(Create::No).await?;
    let now = pbi_clock::Clock::system().unix();
    match command {
        AppsCommand::Add { name, registration, origins } => {
            let registration_id = registration_id(&store, &registration).await?;
            let spec = AppSpec { name, registration_id, allowed_origins: origins };
            let (app, key) = apps::create(&store, ACTOR, &spec, now).await.map_err(cli_error)?;
            if json_output {
                println!("{}", json!({"app": app_json(&app), "secretKey": key.secret.expose_secret()}));
            } else {
                println!("made the app '{}' ({})", app.details.name, app.id);
                print_key(&key);
            }
        }
        AppsCommand::List => {
            let all = store.apps().await?;
            let rows = all.iter().map(|a| vec![a.id.to_string(), a.details.name.clone(), a.details.allowed_origins.join(" ")]).collect();
            print_list(json_output, &all.iter().map(app_json).collect::<Vec<_>>(), &["ID", "NAME", "ORIGINS"], rows);
        }
        AppsCommand::Show { id } => {
            let (app, keys) = apps::show(&store, id).await.map_err(cli_error)?;
            let shown = json!({"app": app_json(&app), "keys": keys.iter().map(key_json).collect::<Vec<_>>()});
            println!("{}", serde_json::to_string_pretty(&shown).unwrap_or_default());
        }
        AppsCommand::Update { id, name, registration, origins } => {
            let (app, _) = apps::show(&store, id).await.map_err(cli_error)?;
            let registration_id = match registration {
                Some(name) => registration_id(&store, &name).await?,
                None => app.details.registration_id,
            };
            let spec = AppSpec {
                name: name.unwrap_or(app.details.name),
                registration_id,
                allowed_origins: if origins.is_empty() { app.details.allowed_origins } else { origins },
            };
            let changed = apps::update(&store, ACTOR, id, &spec, now).await.map_err(cli_error)?;
            if json_output { println!("{}", app_json(&changed)) } else { println!("saved the app '{}'", changed.details.name) }
        }
        AppsCommand::Remove { id } => {
            apps::delete(&store, ACTOR, id, now).await.map_err(cli_error)?;
            if json_output {
                println!("{}", json!({"removed": id}))
            } else {
                println!("deleted the app {id}; its secret keys stopped working")
            }
        }
        AppsCommand::RotateKey { id, overlap_hours } => {
            let (made, key) = apps::rotate_key(&store, ACTOR, id, overlap_hours, now).await.map_err(cli_error)?;
            if json_output {
                println!("{}", json!({"key": key_json(&made), "secretKey": key.secret.expose_secret()}));
            } else {
                println!("made a new secret key; the older ones keep working {} more hours", overlap_hours.unwrap_or(24));
                print_key(&key);
            }
        }
    }
    Ok(())
}

async fn registration_id(store: &Store, name: &str) -> anyhow::Result<Uuid> {
    match store.registration_by_name(name.trim()).await {
        Ok(registration) => Ok(registration.id),
        Err(pbi_store::StoreError::NotFound(_)) => {
            Err(usage_error(format!("--registration: there is no registration '{name}'; `pbi-bridge registration show` lists them")).into())
        }
        Err(other) => Err(other.into()),
    }
}

fn print_key(key: &NewSecretKey) {
    println!("secret key (shown this once; give it to the app's backend): {}", key.secret.expose_secret());
}

/// An input's fault said with the flag that gave it.
fn cli_error(error: AppError) -> anyhow::Error {
    match error {
        AppError::Invalid { field, message } => {
            let flag = match field.split('[').next().unwrap_or_default() {
                "allowedOrigins" => "--origin",
                "registrationId" => "--registration",
                "overlapHours" => "--overlap-hours",
                _ => "--name",
            };
            usage_error(format!("{flag}: {message}")).into()
        }
        AppError::NotFound(what) => usage_error(format!("{what} was not found; `pbi-bridge apps list` lists them")).into(),
        AppError::Conflict(why) => usage_error(why).into(),
        AppError::Store(error) => error.into(),
    }
}

fn app_json(app: &App) -> Value {
    json!({
        "id": app.id, "name": app.details.name, "registrationId": app.details.registration_id,
        "allowedOrigins": app.details.allowed_origins, "createdAt": app.created_at, "updatedAt": app.updated_at,
    })
}

fn key_json(key: &AppKey) -> Value {
    json!({"id": key.id, "hint": key.hint, "createdAt": key.created_at, "expiresAt": key.expires_at})
}
