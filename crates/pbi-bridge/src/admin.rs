//! `pbi-bridge registration|connections|keys`: the administrator's commands over the store.

use crate::config::{Create, StoreArgs};
use crate::powerbi::output::{opt, print_list, table};
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use pbi_auth::{Auth, AuthSettings, Outcome};
use pbi_store::{NewRegistration, Registration, Store};
use secrecy::SecretString;
use serde_json::json;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use uuid::Uuid;

#[derive(Args)]
pub struct SecretArgs {
    /// Read the client secret from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "secret_stdin")]
    secret_file: Option<PathBuf>,
    /// Read the client secret from standard input.
    #[arg(long)]
    secret_stdin: bool,
    /// When the secret expires (YYYY-MM-DD), as the Azure portal shows it.
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    secret_expires: Option<time::Date>,
}

#[derive(Subcommand)]
pub enum RegistrationCommand {
    /// Registers an Entra ID app (secrets are never taken from the command line).
    Add {
        /// A name of your choosing, used by the other registration commands.
        #[arg(long)]
        name: String,
        /// The Application (client) ID.
        #[arg(long)]
        client_id: String,
        /// A tenant id or domain; organizations or common for multi-tenant apps.
        #[arg(long)]
        tenant: String,
        /// Public, US-GCC, GCC-High, DoD or China.
        #[arg(long, default_value = "public")]
        cloud: String,
        /// The server's OAuth callback URL as registered in Entra ID (repeatable).
        #[arg(long = "redirect-url", required = true)]
        redirect_urls: Vec<String>,
        /// Delegated permissions, repeatable; default: seed 000's set and offline_access.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Entra's authorize endpoint, when not the cloud's (e.g. the sandbox's).
        #[arg(long, value_name = "URL")]
        authorize_url: Option<String>,
        /// Entra's token endpoint, when not the cloud's (e.g. the sandbox's).
        #[arg(long, value_name = "URL")]
        token_url: Option<String>,
        /// The Power BI API base to call instead of the cloud's (e.g. the sandbox).
        #[arg(long)]
        api_base: Option<String>,
        /// Register it disabled: nobody can connect through it until `registration update --enable`.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        secret: SecretArgs,
    },
    /// Changes a registration: more redirect URLs, a new secret, enable or disable.
    Update {
        /// The registration's name.
        #[arg(long)]
        name: String,
        /// A new Application (client) ID.
        #[arg(long)]
        client_id: Option<String>,
        /// A new tenant id or domain.
        #[arg(long)]
        tenant: Option<String>,
        /// A redirect URL to add (repeatable).
        #[arg(long = "add-redirect-url", value_name = "URL")]
        add_redirect_urls: Vec<String>,
        /// A redirect URL to remove (repeatable).
        #[arg(long = "remove-redirect-url", value_name = "URL")]
        remove_redirect_urls: Vec<String>,
        /// Replaces the scopes (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Let users connect through it again; the subscriptions it paused resume and deliver now.
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Stop new connections through it (existing ones say why they stopped).
        #[arg(long)]
        disable: bool,
        #[command(flatten)]
        secret: SecretArgs,
    },
    /// Shows one registration, or all.
    Show {
        /// Only this registration.
        #[arg(long)]
        name: Option<String>,
        /// Include removed registrations.
        #[arg(long)]
        all: bool,
    },
    /// Checks a registration for real (a client-credentials request) and says what is left to do.
    Validate {
        /// The registration's name.
        #[arg(long)]
        name: String,
        /// The server's OAuth callback URL, to check it is registered.
        #[arg(long)]
        callback_url: Option<String>,
    },
    /// Unregisters: the registration is disabled and kept, and what depended on it says why it stopped.
    Remove {
        /// The registration's name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
pub enum ConnectionsCommand {
    /// Lists the Power BI connections: whose they are, the Power BI account, their status and why.
    List {
        /// Only this pbi-bridge user's connections (a user name, or a user id).
        #[arg(long, value_name = "USER")]
        owner: Option<String>,
    },
    /// Shows one connection in full (as JSON): scopes, token expiry, last refresh and last error; never a token.
    Show {
        /// The connection's id (from connections list).
        #[arg(long)]
        id: Uuid,
    },
    /// Makes sure the connection has a valid access token (refreshing it if needed); prints its state, never the token.
    Refresh {
        /// The connection's id (from connections list).
        #[arg(long)]
        id: Uuid,
    },
    /// Deletes the connection's tokens.
    Disconnect {
        /// The connection's id (from connections list).
        #[arg(long)]
        id: Uuid,
    },
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Adds a pbi-bridge user; the password is read from stdin or a no-echo prompt.
    Add {
        /// The name they sign in with (the same whatever its case).
        #[arg(long)]
        username: String,
        /// The name pages show; default: the user name.
        #[arg(long)]
        display_name: Option<String>,
        /// May configure Power BI and see every user's connections.
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input instead of prompting for it.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lists pbi-bridge's users with their role and whether they are disabled.
    List,
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Re-encrypts every stored secret and token under the newest key (safe to stop and run again).
    Rotate,
    /// Appends a new key to the key file; it becomes the key that encrypts.
    Add,
}

fn parse_date(text: &str) -> Result<time::Date, String> {
    time::Date::parse(text, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|_| format!("'{text}' is not a date like 2027-06-30"))
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The secret from a file, stdin, or a prompt that does not echo; `None` when none was offered.
fn read_secret(args: &SecretArgs, required: bool) -> anyhow::Result<Option<(SecretString, i64)>> {
    let text = if let Some(file) = &args.secret_file {
        Some(std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?)
    } else if args.secret_stdin {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the secret from stdin")?;
        Some(text)
    } else if required && std::io::stdin().is_terminal() {
        Some(rpassword::prompt_password("Client secret (Value, not Secret ID): ").context("reading the secret")?)
    } else {
        None
    };
    let Some(text) = text else {
        if required {
            bail!(crate::powerbi::usage_error(
                "give the client secret with --secret-file FILE or --secret-stdin (never on the command line)"
            ));
        }
        return Ok(None);
    };
    let secret = text.trim().to_owned();
    if secret.is_empty() {
        bail!(crate::powerbi::usage_error("the client secret is empty"));
    }
    let expires = args.secret_expires.ok_or_else(|| {
        crate::powerbi::usage_error("say when the secret expires: --secret-expires YYYY-MM-DD (the Azure portal shows it)")
    })?;
    Ok(Some((SecretString::from(secret), expires.midnight().assume_utc().unix_timestamp())))
}

fn registration_json(store_secrets: &[pbi_store::SecretInfo], r: &Registration) -> serde_json::Value {
    let date = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map(|d| d.date().to_string()).unwrap_or_default();
    json!({
        "id": r.id, "name": r.details.name, "clientId": r.details.client_id, "tenant": r.details.tenant, "cloud": r.details.cloud,
        "redirectUrls": r.details.redirect_urls, "scopes": r.details.scopes, "authorizeUrl": r.details.authorize_url, "apiBase": r.details.api_base, "tokenUrl": r.details.token_url,
        "enabled": r.details.enabled, "removed": r.removed_at.map(date),
        "secrets": store_secrets.iter().map(|s| json!({"id": s.id, "expires": date(s.expires_at)})).collect::<Vec<_>>(),
    })
}

pub async fn registration(store_args: &StoreArgs, command: RegistrationCommand, json_output: bool) -> anyhow::Result<()> {
    // Adding the first registration may start the data directory; input is read first, so that a mistake in
    // it creates nothing.
    let (added_secret, create) = match &command {
        RegistrationCommand::Add { secret, .. } => (read_secret(secret, true)?, Create::Yes),
        _ => (None, Create::No),
    };
    let (store, created) = store_args.open(create).await?;
    created.say(json_output);
    match command {
        RegistrationCommand::Add {
            name,
            client_id,
            tenant,
            cloud,
            redirect_urls,
            scopes,
            authorize_url,
            token_url,
            api_base,
            disabled,
            secret: _,
        } => {
            let scopes = if scopes.is_empty() { pbi_server::default_scopes() } else { scopes };
            let details = NewRegistration {
                name,
                client_id,
                tenant,
                cloud,
                redirect_urls,
                scopes,
                authorize_url,
                token_url,
                api_base,
                enabled: !disabled,
            };
            let created = store.add_registration(&details, now()).await?;
            if let Some((secret, expires)) = added_secret {
                store.add_secret(created.id, &secret, expires, now()).await?;
            }
            show_one(&store, &created, json_output, "registered").await?;
        }
        RegistrationCommand::Update {
            name,
            client_id,
            tenant,
            add_redirect_urls,
            remove_redirect_urls,
            scopes,
            enable,
            disable,
            secret,
        } => {
            let current = store.registration_by_name(&name).await?;
            let mut details = current.details.clone();
            details.client_id = client_id.unwrap_or(details.client_id);
            details.tenant = tenant.unwrap_or(details.tenant);
            details.redirect_urls.retain(|u| !remove_redirect_urls.contains(u));
            details.redirect_urls.extend(add_redirect_urls.into_iter().filter(|u| !current.details.redirect_urls.contains(u)));
            if !scopes.is_empty() {
                details.scopes = scopes;
            }
            details.enabled = if enable {
                true
            } else if disable {
                false
            } else {
                details.enabled
            };
            let updated = store.update_registration(current.id, &details, now()).await?;
            let new_secret = read_secret(&secret, false)?;
            let renewed = new_secret.is_some();
            if let Some((secret, expires)) = new_secret {
                store.add_secret(updated.id, &secret, expires, now()).await?;
            }
            show_one(&store, &updated, json_output, "updated").await?;
            if updated.details.enabled && (enable || renewed) {
                resume_paused_subscriptions(&store, updated.id).await?;
            }
        }
        RegistrationCommand::Show { name, all } => {
            let registrations = match name {
                Some(name) => vec![store.registration_by_name(&name).await?],
                None => store.registrations(all).await?,
            };
            let mut items = Vec::new();
            for r in &registrations {
                items.push(registration_json(&store.secrets(r.id).await?, r));
            }
            let rows = items
                .iter()
                .map(|r| {
                    vec![
                        r["name"].as_str().unwrap_or_default().to_owned(),
                        r["clientId"].as_str().unwrap_or_default().to_owned(),
                        r["tenant"].as_str().unwrap_or_default().to_owned(),
                        state_of(r),
                        r["secrets"][0]["expires"].as_str().unwrap_or("none").to_owned(),
                    ]
                })
                .collect();
            print_list(json_output, &items, &["NAME", "CLIENT ID", "TENANT", "STATE", "SECRET EXPIRES"], rows);
        }
        RegistrationCommand::Validate { name, callback_url } => {
            let registration = store.registration_by_name(&name).await?;
            let auth = Auth::new(store.clone(), pbi_clock::Clock::system(), AuthSettings::default());
            let validation = auth.validate(registration.id, callback_url.as_deref()).await?;
            if json_output {
                println!("{}", serde_json::to_string_pretty(&validation)?);
            } else {
                let rows: Vec<Vec<String>> = validation
                    .checks
                    .iter()
                    .map(|c| vec![c.name.to_owned(), format!("{:?}", c.outcome).to_lowercase(), c.message.clone()])
                    .collect();
                print!("{}", table(&["CHECK", "RESULT", "DETAIL"], &rows));
            }
            if validation.checks.iter().any(|c| c.outcome == Outcome::Failed) {
                bail!(crate::powerbi::usage_error(format!("the registration '{name}' is not ready: fix the failed checks above")));
            }
        }
        RegistrationCommand::Remove { name } => {
            let registration = store.registration_by_name(&name).await?;
            store.remove_registration(registration.id, now()).await?;
            let affected = store.all_connections().await?.into_iter().filter(|c| c.account.registration_id == registration.id).count();
            let message =
                format!("unregistered '{name}': it is kept, disabled; {affected} connection(s) made through it stop working and say so");
            if json_output { println!("{}", json!({"removed": name, "affectedConnections": affected})) } else { println!("{message}") }
        }
    }
    Ok(())
}

fn state_of(r: &serde_json::Value) -> String {
    if !r["removed"].is_null() {
        format!("removed {}", r["removed"].as_str().unwrap_or_default())
    } else if r["enabled"] == true {
        "enabled".into()
    } else {
        "disabled".into()
    }
}

async fn show_one(store: &Store, r: &Registration, json_output: bool, verb: &str) -> anyhow::Result<()> {
    let value = registration_json(&store.secrets(r.id).await?, r);
    if json_output {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "{verb} '{}' ({}); secret expires {}",
            r.details.name,
            r.id,
            value["secrets"][0]["expires"].as_str().unwrap_or("(no secret)")
        );
    }
    Ok(())
}

pub async fn connections(store_args: &StoreArgs, command: ConnectionsCommand, json_output: bool) -> anyhow::Result<()> {
    let (store, _) = store_args.open(Create::No).await?;
    let auth = Auth::new(store.clone(), pbi_clock::Clock::system(), AuthSettings::default());
    let date = |t: Option<i64>| {
        t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .map(|t| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default())
    };
    // A connection's owner is a pbi-bridge user or an app's end user: people read the user's name.
    let names: std::collections::HashMap<uuid::Uuid, String> = store.users().await?.into_iter().map(|u| (u.id, u.username)).collect();
    let owner_name = |owner: &pbi_store::Owner| match owner {
        pbi_store::Owner::User(id) => names.get(id).cloned(),
        pbi_store::Owner::EndUser(_) => None,
    };
    let describe = |c: &pbi_store::Connection| {
        json!({
            "id": c.id, "owner": c.account.owner.to_string(), "ownerName": owner_name(&c.account.owner), "upn": c.account.upn, "tenantId": c.account.tenant_id, "registrationId": c.account.registration_id,
            "scopes": c.scopes, "status": format!("{:?}", c.status), "reason": c.status_reason, "accessTokenExpires": date(c.access_expires_at),
            "lastRefresh": date(c.last_refresh_at), "lastError": c.last_error,
        })
    };
    match command {
        ConnectionsCommand::List { owner } => {
            let list = match owner {
                Some(owner) => {
                    // A user name (whatever its case) or a user id.
                    let id = names
                        .iter()
                        .find(|(id, name)| name.eq_ignore_ascii_case(owner.trim()) || id.to_string().eq_ignore_ascii_case(owner.trim()))
                        .map(|(id, _)| pbi_store::Owner::User(*id))
                        .ok_or_else(|| {
                            crate::powerbi::usage_error(format!(
                                "--owner: there is no pbi-bridge user '{owner}'; `pbi-bridge users list` shows them"
                            ))
                        })?;
                    store.connections_of(&id).await?
                }
                None => store.all_connections().await?,
            };
            let items: Vec<_> = list.iter().map(describe).collect();
            let rows = list
                .iter()
                .map(|c| {
                    // A user removed since keeps their id here, so the row still says whose it was.
                    let owner = owner_name(&c.account.owner).unwrap_or_else(|| match c.account.owner {
                        pbi_store::Owner::User(id) => format!("(no user {id})"),
                        end_user => end_user.to_string(),
                    });
                    vec![c.id.to_string(), owner, c.account.upn.clone(), format!("{:?}", c.status), opt(&c.status_reason)]
                })
                .collect();
            print_list(json_output, &items, &["ID", "OWNER", "POWER BI ACCOUNT", "STATUS", "REASON"], rows);
        }
        ConnectionsCommand::Show { id } => println!("{}", serde_json::to_string_pretty(&describe(&auth.connection(id, None).await?))?),
        ConnectionsCommand::Refresh { id } => {
            auth.access_token(id, None).await?;
            let connection = auth.connection(id, None).await?;
            if json_output {
                println!("{}", describe(&connection))
            } else {
                println!(
                    "connection {id} is active; its access token is valid until {}",
                    date(connection.access_expires_at).unwrap_or_default()
                )
            }
        }
        ConnectionsCommand::Disconnect { id } => {
            auth.disconnect(id, None).await?;
            println!("disconnected {id}: its tokens are deleted");
        }
    }
    Ok(())
}

pub async fn keys(store_args: &StoreArgs, command: KeysCommand, json_output: bool) -> anyhow::Result<()> {
    match command {
        KeysCommand::Rotate => {
            let (store, _) = store_args.open(Create::No).await?;
            let rotation = store.rotate_keys().await?;
            let current = store.keys().current_key_id();
            if json_output {
                println!("{}", json!({"currentKey": current, "examined": rotation.examined, "rewritten": rotation.rewritten}));
            } else {
                println!(
                    "re-encrypted {} of {} stored values under key {current}; older keys can be retired once every instance has key {current}",
                    rotation.rewritten, rotation.examined
                );
            }
        }
        KeysCommand::Add => {
            let (id, created) = store_args.add_key().await?;
            created.say(json_output);
            let path = store_args.key_file();
            if json_output {
                println!("{}", json!({"currentKey": id, "keyFile": path}));
            } else if created.lines().is_empty() {
                println!("added key {id} to {}; run `pbi-bridge keys rotate` to re-encrypt under it", path.display());
            }
        }
    }
    Ok(())
}

pub async fn users(store_args: &StoreArgs, command: UsersCommand, json_output: bool) -> anyhow::Result<()> {
    match command {
        UsersCommand::Add { username, display_name, admin, password_stdin } => {
            let password = if password_stdin {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).context("reading the password from stdin")?;
                text.trim_end_matches(['\r', '\n']).to_owned()
            } else if std::io::stdin().is_terminal() {
                rpassword::prompt_password("Password: ").context("reading the password")?
            } else {
                bail!(crate::powerbi::usage_error("give the password with --password-stdin or at the prompt (never on the command line)"));
            };
            let hash =
                pbi_server::users::hash_password(&SecretString::from(password)).map_err(|e| crate::powerbi::usage_error(e.to_string()))?;
            let username = pbi_server::users::parse_username(&username).map_err(|e| crate::powerbi::usage_error(e.to_string()))?;
            let display_name = pbi_server::users::parse_display_name(display_name.as_deref().unwrap_or_default(), &username)
                .map_err(|e| crate::powerbi::usage_error(e.to_string()))?;
            // The first user may start the data directory; the input above was checked first, so that a mistake
            // in it creates nothing.
            let (store, created) = store_args.open(Create::Yes).await?;
            created.say(json_output);
            let user = store.add_user(&username, &display_name, &hash, admin, now()).await?;
            if json_output {
                println!("{}", json!({"id": user.id, "username": user.username, "admin": user.is_admin}))
            } else {
                println!("added {}user '{}'", if admin { "admin " } else { "" }, user.username)
            }
        }
        UsersCommand::List => {
            let (store, _) = store_args.open(Create::No).await?;
            let list = store.users().await?;
            let items: Vec<_> = list
                .iter()
                .map(|u| {
                    json!({"id": u.id, "username": u.username, "displayName": u.display_name, "admin": u.is_admin, "disabled": u.disabled_at.is_some()})
                })
                .collect();
            let rows = list
                .iter()
                .map(|u| {
                    let role = if u.is_admin { "admin" } else { "user" };
                    let status = if u.disabled_at.is_some() { "disabled" } else { "active" };
                    vec![u.username.clone(), u.display_name.clone(), role.to_owned(), status.to_owned()]
                })
                .collect();
            print_list(json_output, &items, &["USER", "NAME", "ROLE", "STATUS"], rows);
        }
    }
    Ok(())
}

/// The registration is usable again: the subscriptions it paused deliver again (the jobs run in `serve` or
/// `up`). Said on stderr, so `--json` output stays one document.
async fn resume_paused_subscriptions(store: &Store, registration: Uuid) -> anyhow::Result<()> {
    let deliveries = pbi_jobs::Schedulable::new().with::<pbi_subscriptions::deliveries::Deliver>();
    let engine = pbi_jobs::Engine::insert_only_scheduling(store.clone(), pbi_clock::Clock::system(), deliveries).await?;
    let resumed = pbi_subscriptions::pins::resume_after_registration_usable(store, &engine, registration, now())
        .await
        .context("resuming the subscriptions this registration paused")?;
    if !resumed.is_empty() {
        eprintln!("Resumed {} paused subscription(s); each delivers now.", resumed.len());
    }
    Ok(())
}
