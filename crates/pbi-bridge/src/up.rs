//! `pbi-bridge up`: everything in one process for a first look — the sandbox with its demo tenant, the
//! server on SQLite in the data directory, a registration of the sandbox's demo app, demo users, and seed
//! 001's demo (`up_items`: a data source, report items, the templates completed).

use crate::config::StoreArgs;
use anyhow::Context as _;
use pbi_sandbox::{Command as SandboxCommand, demo};
use pbi_store::{NewRegistration, Store};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct UpArgs {
    /// Where the server listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where the sandbox (Entra ID + Power BI) listens.
    #[arg(long, default_value = "127.0.0.1:8400")]
    sandbox_addr: SocketAddr,
    #[command(flatten)]
    store: StoreArgs,
}

/// pbi-bridge's demo accounts: (user name, display name, password, admin).
pub const DEMO_USERS: &[(&str, &str, &str, bool)] = &[
    ("admin", "Contoso Admin", "admin-demo-password", true),
    ("alice", "Alice Johnson", "alice-demo-password", false),
    ("bob", "Bob Smith", "bob-demo-password", false),
];

const DEMO_REGISTRATION: &str = "Power BI (sandbox)";

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let sandbox_config = pbi_sandbox::SandboxConfig { addr: args.sandbox_addr, clock: pbi_clock::Clock::shifted(), ..Default::default() };
    let sandbox = pbi_sandbox::Sandbox::start(sandbox_config)
        .await
        .with_context(|| format!("the sandbox could not listen on {}", args.sandbox_addr))?;
    let (store, created) = args.store.open(crate::config::Create::Yes).await?;
    let _only_one = args.store.single_instance()?;
    // The server reads time from the sandbox's clock, so that moving it (for a demo of expiry) moves both.
    let clock = sandbox.clock().clone();
    let auth = Arc::new(pbi_auth::Auth::new(store.clone(), clock.clone(), pbi_auth::AuthSettings::default()));
    let jobs = pbi_server::background::start(store.clone(), clock.clone(), auth.clone(), &Default::default())
        .await
        .context("starting the background jobs")?;
    let config = pbi_server::ServerConfig { addr: args.addr, ..Default::default() };
    let mut server = pbi_server::Server::start_with_jobs(config, store.clone(), auth, clock.clone(), jobs.clone())
        .await
        .with_context(|| format!("the server could not listen on {}", args.addr))?;
    let callback = format!("{}/oauth/callback", server.base_url());
    sandbox
        .control(SandboxCommand::AddRedirectUri { client_id: pbi_sandbox::demo_client_id(), uri: callback.clone() })
        .context("registering the callback in the sandbox")?;
    set_up_demo(&store, sandbox.base_url(), &callback, clock.unix()).await?;
    crate::up_items::set_up(&store, &sandbox, &args.store.data_dir, clock.unix()).await?;

    // The banner is for a person; a closed stdout (a supervisor that stopped reading) must not stop the server.
    let _ = write_banner(&mut std::io::stdout().lock(), server.base_url(), sandbox.base_url(), &args.store.data_dir, created.lines());

    let mut sandbox = sandbox;
    let outcome = tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C"),
        result = server.stopped() => result.context("the server stopped"),
        result = sandbox.stopped() => result.context("the sandbox stopped"),
    };
    let (a, b) = tokio::join!(server.shutdown(), sandbox.shutdown());
    let c = jobs.stop().await;
    outcome.and(a.context("stopping the server")).and(b.context("stopping the sandbox")).and(c.context("stopping the background jobs"))
}

fn write_banner(
    out: &mut impl std::io::Write,
    url: &str,
    sandbox_url: &str,
    data_dir: &std::path::Path,
    created: &[String],
) -> std::io::Result<()> {
    writeln!(out, "pbi-bridge up: open {url}")?;
    writeln!(out)?;
    writeln!(out, "Sign in to pbi-bridge as one of:")?;
    for (user, _, password, admin) in DEMO_USERS {
        writeln!(out, "  {user:<6} / {password}{}", if *admin { "   (admin)" } else { "" })?;
    }
    writeln!(out, "Then open My settings and click Get started; at the Power BI (sandbox) sign-in use")?;
    writeln!(out, "  alice@{} / alice-password (or bob@…/bob-password)", demo::CONTOSO_DOMAIN)?;
    writeln!(out, "Sandbox (Entra ID + Power BI REST): {sandbox_url}   data: {}", data_dir.display())?;
    for line in created {
        writeln!(out, "{line}")?;
    }
    writeln!(out, "Press Ctrl-C to stop.")?;
    out.flush()
}

/// First start: the demo registration and users. Later starts: point the registration at this sandbox.
async fn set_up_demo(store: &Store, sandbox_url: &str, callback: &str, now: i64) -> anyhow::Result<()> {
    let details = NewRegistration {
        name: DEMO_REGISTRATION.into(),
        client_id: pbi_sandbox::demo_client_id().to_string(),
        tenant: demo::CONTOSO_DOMAIN.into(),
        cloud: "public".into(),
        redirect_urls: vec![callback.to_owned()],
        scopes: pbi_server::default_scopes(),
        authorize_url: Some(format!("{sandbox_url}/{}/oauth2/v2.0/authorize", demo::CONTOSO_DOMAIN)),
        token_url: Some(format!("{sandbox_url}/{}/oauth2/v2.0/token", demo::CONTOSO_DOMAIN)),
        api_base: Some(sandbox_url.to_owned()),
        enabled: true,
    };
    match store.registration_by_name(DEMO_REGISTRATION).await {
        Ok(existing) => {
            store.update_registration(existing.id, &details, now).await?;
        }
        Err(pbi_store::StoreError::NotFound(_)) => {
            let registration = store.add_registration(&details, now).await?;
            store.add_secret(registration.id, &SecretString::from(demo::APP_SECRET.to_owned()), now + 365 * 86_400, now).await?;
        }
        Err(other) => return Err(other.into()),
    }
    for (user, display, password, admin) in DEMO_USERS {
        if store.user_credentials(user).await?.is_none() {
            let hash = pbi_server::users::hash_password(&SecretString::from((*password).to_owned()))?;
            store.add_user(user, display, &hash, *admin, now).await?;
        }
    }
    Ok(())
}
