//! `pbi-bridge data-sources|items`: seed 001's definitions from the command line, checked, stored and audited
//! (as `cli`) by `pbi_subscriptions::definitions`, as the pages and the API do. A credential is read from a
//! file or standard input, never from the command line; an item is the JSON the API's createItem takes.

use crate::config::{Create, StoreArgs};
use crate::powerbi::output::print_list;
use crate::powerbi::usage_error;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use pbi_store::{DataSource, Store, StoreError};
use pbi_subscriptions::definitions::{self, CredentialChange, DataSourceInput, Defined, Definitions, ItemInput, SaveFailure};
use secrecy::SecretString;
use serde_json::json;
use std::io::Read;
use std::path::PathBuf;
use uuid::Uuid;

/// Who the audit log names for a change made here.
const ACTOR: &str = "cli";

#[derive(Args)]
pub struct CredentialArgs {
    /// Read the credential (a password, or a header's value) from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "credential_stdin")]
    credential_file: Option<PathBuf>,
    /// Read the credential from standard input.
    #[arg(long)]
    credential_stdin: bool,
}

#[derive(Args)]
pub struct SourceFields {
    /// 1 to 100 characters, unique (without case).
    #[arg(long)]
    name: Option<String>,
    /// postgres, sqlite or http.
    #[arg(long)]
    kind: Option<String>,
    /// A PostgreSQL URL without a password, a SQLite file's absolute path, or an endpoint's base URL.
    #[arg(long)]
    location: Option<String>,
    /// The PostgreSQL user.
    #[arg(long)]
    username: Option<String>,
    /// The header an HTTP source's credential is sent in (Authorization by default).
    #[arg(long)]
    credential_header: Option<String>,
}

#[derive(Subcommand)]
pub enum DataSourcesCommand {
    /// Lists the data sources (whether a credential is stored; never the credential).
    List,
    /// Adds a data source; without a credential, its deliveries fail saying so.
    Add {
        #[command(flatten)]
        fields: SourceFields,
        #[command(flatten)]
        credential: CredentialArgs,
    },
    /// Changes the fields given; the credential stays unless one is given or --clear-credential.
    Update {
        /// The data source's name or id.
        source: String,
        #[command(flatten)]
        fields: SourceFields,
        #[command(flatten)]
        credential: CredentialArgs,
        /// Remove the stored credential.
        #[arg(long, conflicts_with_all = ["credential_file", "credential_stdin"])]
        clear_credential: bool,
    },
    /// Deletes a data source no item uses.
    Remove {
        /// The data source's name or id.
        source: String,
    },
}

#[derive(Subcommand)]
pub enum ItemsCommand {
    /// Lists the report items.
    List,
    /// Prints an item's definition as JSON (what `add` and `update` take).
    Show {
        /// The item's name or id.
        item: String,
    },
    /// Defines an item from a JSON file (- for standard input), as the API's createItem takes it.
    Add {
        /// The JSON file of the item's definition; - for standard input.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Replaces an item's definition from a JSON file (- for standard input).
    Update {
        /// The item's name or id.
        item: String,
        /// The JSON file of the item's definition; - for standard input.
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Deletes an item no subscription delivers.
    Remove {
        /// The item's name or id.
        item: String,
    },
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A refused change as the command says it: a field at fault is a usage error (exit 2); a name taken or a
/// definition in use, a conflict (exit 3).
fn refused(failure: SaveFailure) -> anyhow::Error {
    match failure {
        SaveFailure::Invalid(error) => usage_error(error.to_string()).into(),
        SaveFailure::Store(error) => error.into(),
    }
}

fn read_credential(args: &CredentialArgs) -> anyhow::Result<Option<SecretString>> {
    let text = if let Some(file) = &args.credential_file {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    } else if args.credential_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the credential from stdin")?;
        text
    } else {
        return Ok(None);
    };
    let credential = text.trim_end_matches(['\r', '\n']).to_owned();
    if credential.is_empty() {
        return Err(usage_error("the credential is empty").into());
    }
    Ok(Some(SecretString::from(credential)))
}

fn source_json(s: &DataSource) -> serde_json::Value {
    json!({
        "id": s.id, "name": s.details.name, "kind": s.details.kind.as_str(), "location": s.details.location,
        "username": s.details.username, "credentialHeader": s.details.credential_header, "hasCredential": s.has_credential,
    })
}

/// A data source by id, or by name (without case).
async fn find_source(store: &Store, text: &str) -> anyhow::Result<DataSource> {
    let sources = store.data_sources().await?;
    let wanted = Uuid::parse_str(text.trim()).ok();
    sources
        .into_iter()
        .find(|s| Some(s.id) == wanted || s.details.name.eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| StoreError::NotFound(format!("data source '{text}'")).into())
}

fn merged(fields: SourceFields, current: Option<&DataSource>) -> DataSourceInput {
    let d = current.map(|s| &s.details);
    DataSourceInput {
        name: fields.name.or_else(|| d.map(|d| d.name.clone())).unwrap_or_default(),
        kind: fields.kind.or_else(|| d.map(|d| d.kind.as_str().to_owned())).unwrap_or_default(),
        location: fields.location.or_else(|| d.map(|d| d.location.clone())).unwrap_or_default(),
        username: fields.username.or_else(|| d.and_then(|d| d.username.clone())),
        credential_header: fields.credential_header.or_else(|| d.and_then(|d| d.credential_header.clone())),
    }
}

fn say(json_output: bool, value: serde_json::Value, sentence: String) {
    if json_output { println!("{value}") } else { println!("{sentence}") }
}

pub async fn data_sources(store_args: &StoreArgs, command: DataSourcesCommand, json_output: bool) -> anyhow::Result<()> {
    let (store, _) = store_args.open(Create::No).await?;
    let changes = Definitions { store: &store, actor: ACTOR, now: now() };
    match command {
        DataSourcesCommand::List => {
            let sources = store.data_sources().await?;
            let items: Vec<_> = sources.iter().map(source_json).collect();
            let rows = sources
                .iter()
                .map(|s| {
                    let credential = if s.has_credential { "stored" } else { "none" };
                    vec![s.details.name.clone(), s.details.kind.as_str().to_owned(), s.details.location.clone(), credential.to_owned()]
                })
                .collect();
            print_list(json_output, &items, &["NAME", "KIND", "LOCATION", "CREDENTIAL"], rows);
        }
        DataSourcesCommand::Add { fields, credential } => {
            let credential = read_credential(&credential)?;
            let source = changes.add_data_source(&merged(fields, None), credential.as_ref()).await.map_err(refused)?;
            let stored = if source.has_credential { "its credential stored encrypted" } else { "without a credential" };
            say(json_output, source_json(&source), format!("added data source '{}' ({}), {stored}", source.details.name, source.id));
        }
        DataSourcesCommand::Update { source, fields, credential, clear_credential } => {
            let current = find_source(&store, &source).await?;
            let change = match (read_credential(&credential)?, clear_credential) {
                (Some(secret), _) => CredentialChange::Set(secret),
                (None, true) => CredentialChange::Clear,
                (None, false) => CredentialChange::Keep,
            };
            let input = merged(fields, Some(&current));
            let source = changes.update_data_source(current.id, &input, change).await.map_err(refused)?;
            say(json_output, source_json(&source), format!("updated data source '{}'", source.details.name));
        }
        DataSourcesCommand::Remove { source } => {
            let current = find_source(&store, &source).await?;
            changes.delete_data_source(current.id).await.map_err(refused)?;
            say(json_output, json!({"deleted": current.id}), format!("deleted data source '{}'", current.details.name));
        }
    }
    Ok(())
}

fn read_item(file: &PathBuf) -> anyhow::Result<ItemInput> {
    let text = if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the item from stdin")?;
        text
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let mut reader = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut reader)
        .map_err(|e| usage_error(format!("{}: {}: {}", file.display(), e.path(), e.inner())).into())
}

fn defined_json(d: &Defined) -> serde_json::Value {
    json!({"id": d.item.id, "definition": d.input, "subscriptions": d.subscriptions})
}

async fn find_item(store: &Store, text: &str) -> anyhow::Result<Defined> {
    let wanted = Uuid::parse_str(text.trim()).ok();
    definitions::defined_items(store)
        .await?
        .into_iter()
        .find(|d| Some(d.item.id) == wanted || d.item.details.name.eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| StoreError::NotFound(format!("item '{text}'")).into())
}

pub async fn items(store_args: &StoreArgs, command: ItemsCommand, json_output: bool) -> anyhow::Result<()> {
    let (store, _) = store_args.open(Create::No).await?;
    let changes = Definitions { store: &store, actor: ACTOR, now: now() };
    match command {
        ItemsCommand::List => {
            let items = definitions::defined_items(&store).await?;
            let listed: Vec<_> = items.iter().map(defined_json).collect();
            let rows = items
                .iter()
                .map(|d| {
                    let who = if d.input.everyone { "everyone".to_owned() } else { d.input.pinners.join(",") };
                    vec![d.item.details.name.clone(), d.input.kind.clone(), d.input.source.clone(), who, d.subscriptions.to_string()]
                })
                .collect();
            print_list(json_output, &listed, &["NAME", "KIND", "SOURCE", "WHO MAY PIN", "SUBSCRIPTIONS"], rows);
        }
        ItemsCommand::Show { item } => {
            let found = find_item(&store, &item).await?;
            println!("{}", serde_json::to_string_pretty(&found.input).context("writing the item")?);
        }
        ItemsCommand::Add { file } => {
            let defined = changes.add_item(&read_item(&file)?).await.map_err(refused)?;
            say(json_output, defined_json(&defined), format!("added item '{}' ({})", defined.item.details.name, defined.item.id));
        }
        ItemsCommand::Update { item, file } => {
            let current = find_item(&store, &item).await?;
            let defined = changes.update_item(current.item.id, &read_item(&file)?).await.map_err(refused)?;
            say(json_output, defined_json(&defined), format!("updated item '{}'", defined.item.details.name));
        }
        ItemsCommand::Remove { item } => {
            let current = find_item(&store, &item).await?;
            changes.delete_item(current.item.id).await.map_err(refused)?;
            say(json_output, json!({"deleted": current.item.id}), format!("deleted item '{}'", current.item.details.name));
        }
    }
    Ok(())
}
