//! The pbi-bridge executable: parses the command line and starts what it names.

/// Prints a line of a long-running command's banner. A closed standard output (whoever started it stopped
/// reading) must not stop a server: `println!` would panic on it, so the write's error is dropped.
macro_rules! banner {
    ($($line:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($line)*);
    }};
}

mod admin;
mod apps;
mod config;
mod definitions;
mod jobs;
mod powerbi;
mod subscriptions;
mod up;
mod up_items;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "pbi-bridge",
    version,
    about = "Power BI integration server, web UI, CLI and sandbox",
    color = clap::ColorChoice::Auto
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the Entra ID + Power BI REST emulator on one HTTP listener.
    Sandbox(SandboxArgs),
    /// Calls the Power BI REST API: list, create, push rows, refresh, or any endpoint.
    Powerbi(Box<powerbi::PowerBiArgs>),
    /// Manages Entra ID app registrations (add, update, show, validate, remove).
    Registration {
        #[command(subcommand)]
        command: admin::RegistrationCommand,
        #[command(flatten)]
        store: config::StoreArgs,
        /// Print JSON instead of a table or a sentence.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Lists, refreshes and disconnects users' Power BI connections.
    Connections {
        #[command(subcommand)]
        command: admin::ConnectionsCommand,
        #[command(flatten)]
        store: config::StoreArgs,
        /// Print JSON instead of a table or a sentence.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Runs everything for a first look: the sandbox, the server on SQLite, a demo registration and users.
    Up(up::UpArgs),
    /// Runs the pbi-bridge server (web UI) over the data directory's store.
    Serve(ServeArgs),
    /// pbi-bridge's own user accounts.
    Users {
        #[command(subcommand)]
        command: admin::UsersCommand,
        #[command(flatten)]
        store: config::StoreArgs,
        /// Print JSON instead of a table or a sentence.
        #[arg(long, global = true)]
        json: bool,
    },
    /// The background jobs and schedules: list, show, retry, cancel (the jobs run in `serve` and `up`).
    Jobs {
        #[command(subcommand)]
        command: jobs::JobsCommand,
        #[command(flatten)]
        store: config::StoreArgs,
        /// Print JSON instead of a table or a sentence.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Data sources report items read their rows from: list, add, update, remove.
    DataSources {
        #[command(subcommand)]
        command: definitions::DataSourcesCommand,
        #[command(flatten)]
        store: config::StoreArgs,
        /// Print JSON instead of a table or a sentence.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Report items users may pin to Power BI dashboards: list, show, add, update, remove.
    Items {
        #[command(subcommand)]
        command: definitions::ItemsCommand,
        #[command(flatten)]
        store: config::StoreArgs,
        /// Print JSON instead of a table or a sentence.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Apps that connect their own end users' Power BI accounts (seed 002): add, list, show, rotate-key.
    Apps {
        #[command(subcommand)]
        command: apps::AppsCommand,
        #[command(flatten)]
        store: config::StoreArgs,
        /// Print JSON instead of a table or a sentence.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Every user's subscriptions (seed 001): list, show, update, run, delete.
    Subscriptions {
        #[command(subcommand)]
        command: subscriptions::SubscriptionsCommand,
        #[command(flatten)]
        store: config::StoreArgs,
        /// Print JSON instead of a table or a sentence.
        #[arg(long, global = true)]
        json: bool,
    },
    /// Encryption keys: add one, and re-encrypt everything under the newest.
    Keys {
        #[command(subcommand)]
        command: admin::KeysCommand,
        #[command(flatten)]
        store: config::StoreArgs,
        /// Print JSON instead of a sentence.
        #[arg(long, global = true)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct SandboxArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    addr: SocketAddr,
    /// `demo` (Contoso and Fabrikam with users, apps and content) or `empty`.
    #[arg(long, default_value = "demo", value_parser = parse_seed)]
    seed: pbi_sandbox::Seed,
    /// The base URL to name in discovery documents and embed URLs (when behind a proxy).
    #[arg(long)]
    public_url: Option<String>,
    /// Switches off Power BI's push-dataset rate limits (for benchmarks).
    #[arg(long)]
    no_push_limits: bool,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key", conflicts_with = "tls_self_signed")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a fresh self-signed CA, and write that CA's certificate to this file for clients to trust.
    #[arg(long, value_name = "CA_FILE")]
    tls_self_signed: Option<PathBuf>,
    /// Extra host names for the self-signed certificate (localhost and 127.0.0.1 are always in it).
    #[arg(long = "tls-name", value_name = "NAME")]
    tls_names: Vec<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PBI_BRIDGE__SERVER__ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The URL people reach the server at (behind a proxy); cookies are Secure when it is https.
    #[arg(long, env = "PBI_BRIDGE__SERVER__PUBLIC_URL")]
    public_url: Option<String>,
    /// Take the client's address from the last X-Forwarded-For entry (for sign-in throttling), and the host it
    /// reached from the last X-Forwarded-Host (to choose among the registered redirect URLs). Safe only behind a
    /// reverse proxy that sets those headers and cannot be bypassed: otherwise any client can pick its own address.
    #[arg(long, env = "PBI_BRIDGE__SERVER__TRUST_FORWARDED_FOR", value_parser = clap::builder::BoolishValueParser::new())]
    trust_forwarded_for: bool,
    /// Refresh every active Power BI connection at least this often, in hours (1 to 2000), so that none dies of
    /// Entra's 90 days without use.
    #[arg(long, env = "PBI_BRIDGE__JOBS__KEEPALIVE_HOURS", default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=2000))]
    keepalive_hours: u64,
    /// Rescue a job whose instance died (it is still "running" this long after it started), in seconds (2 to
    /// 3600); default 360. Jobs time out at three quarters of it, so a live worker never has its job rescued.
    #[arg(long, env = "PBI_BRIDGE__JOBS__RESCUE_AFTER_SECONDS", hide = true, value_parser = clap::value_parser!(u64).range(2..=3600))]
    job_rescue_after_seconds: Option<u64>,
    #[command(flatten)]
    store: config::StoreArgs,
}

/// The engine's settings `serve`'s flags ask for: a shorter rescue brings the job timeout and the rescuer's
/// interval down with it (the timeout must stay below the rescue, or River would rescue live jobs).
fn engine_config(args: &ServeArgs) -> pbi_jobs::EngineConfig {
    let defaults = pbi_jobs::EngineConfig::default();
    let Some(seconds) = args.job_rescue_after_seconds else { return defaults };
    let rescue_after = std::time::Duration::from_secs(seconds);
    pbi_jobs::EngineConfig {
        rescue_after,
        job_timeout: defaults.job_timeout.min(rescue_after * 3 / 4),
        rescuer_interval: defaults.rescuer_interval.min(rescue_after / 4),
        ..defaults
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let (store, created) = args.store.open(config::Create::Yes).await?;
    let _only_one = args.store.single_instance()?;
    let clock = pbi_clock::Clock::system();
    let auth = std::sync::Arc::new(pbi_auth::Auth::new(store.clone(), clock.clone(), pbi_auth::AuthSettings::default()));
    let config = server_config(&args);
    let background = pbi_server::background::BackgroundSettings {
        keepalive_every: std::time::Duration::from_secs(args.keepalive_hours * 3600),
        engine: engine_config(&args),
        deliveries: Default::default(),
    };
    let jobs = pbi_server::background::start(store.clone(), clock.clone(), auth.clone(), &background)
        .await
        .context("starting the background jobs")?;
    let mut server = pbi_server::Server::start_with_jobs(config, store, auth, clock, jobs.clone())
        .await
        .with_context(|| format!("could not listen on {}", args.addr))?;
    // The first line is a contract: scripts and tests read the URL from it.
    banner!("pbi-bridge server listening on {}", server.base_url());
    created.say(false);
    banner!("Press Ctrl-C to stop.");
    let interrupted = tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C"),
        result = server.stopped() => return result.context("the server stopped"),
    };
    interrupted?;
    let stopped = server.shutdown().await.context("stopping the server");
    stopped.and(jobs.stop().await.context("stopping the background jobs"))
}

/// The server settings `serve`'s flags ask for.
fn server_config(args: &ServeArgs) -> pbi_server::ServerConfig {
    pbi_server::ServerConfig {
        addr: args.addr,
        public_url: args.public_url.clone(),
        trust_forwarded_for: args.trust_forwarded_for,
        ..Default::default()
    }
}

fn parse_seed(text: &str) -> Result<pbi_sandbox::Seed, String> {
    text.parse()
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PBI_BRIDGE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: a pipe or a log file gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Sandbox(args) => run_sandbox(args).await,
        Command::Powerbi(args) => powerbi::run(*args).await,
        Command::Registration { command, store, json } => admin::registration(&store, command, json).await,
        Command::Connections { command, store, json } => admin::connections(&store, command, json).await,
        Command::Keys { command, store, json } => admin::keys(&store, command, json).await,
        Command::DataSources { command, store, json } => definitions::data_sources(&store, command, json).await,
        Command::Items { command, store, json } => definitions::items(&store, command, json).await,
        Command::Jobs { command, store, json } => jobs::run(&store, command, json).await,
        Command::Serve(args) => run_serve(args).await,
        Command::Apps { command, store, json } => apps::run(&store, command, json).await,
        Command::Subscriptions { command, store, json } => subscriptions::run(&store, command, json).await,
        Command::Up(args) => up::run(args).await,
        Command::Users { command, store, json } => admin::users(&store, command, json).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(powerbi::exit_code(&error))
        }
    }
}

/// The TLS settings the flags ask for; a self-signed CA is written where the user said.
fn tls_config(args: &SandboxArgs) -> anyhow::Result<(Option<pbi_sandbox::TlsConfig>, Option<&PathBuf>)> {
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        let tls = pbi_sandbox::TlsConfig::from_files(cert, key).context("--tls-cert/--tls-key")?;
        return Ok((Some(tls), None));
    }
    let Some(ca_file) = &args.tls_self_signed else { return Ok((None, None)) };
    let generated = pbi_sandbox::TlsConfig::self_signed(&args.tls_names).context("generating the self-signed certificate")?;
    if let Some(dir) = ca_file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(ca_file, &generated.ca_pem)
        .with_context(|| format!("--tls-self-signed: writing the CA certificate to {}", ca_file.display()))?;
    Ok((Some(generated.tls), Some(ca_file)))
}

async fn run_sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let (tls, ca_file) = tls_config(&args)?;
    let config = pbi_sandbox::SandboxConfig {
        tls,
        addr: args.addr,
        seed: args.seed,
        clock: pbi_clock::Clock::shifted(),
        push_limits: !args.no_push_limits,
        public_url: args.public_url.clone(),
        ..Default::default()
    };
    let mut sandbox = pbi_sandbox::Sandbox::start(config).await.with_context(|| format!("could not listen on {}", args.addr))?;
    let base = sandbox.base_url().to_owned();
    // The first line is a contract: scripts and tests read the URL from it.
    banner!("pbi-bridge sandbox listening on {base}");
    if let Some(ca_file) = ca_file {
        banner!("Trust this CA to use HTTPS: {} (Python: REQUESTS_CA_BUNDLE, Node: NODE_EXTRA_CA_CERTS)", ca_file.display());
    }
    if args.seed == pbi_sandbox::Seed::Demo {
        print_demo_help(&base);
    }
    let interrupted = tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("waiting for Ctrl-C"),
        result = sandbox.stopped() => return result.context("the sandbox stopped"),
    };
    interrupted?;
    sandbox.shutdown().await.context("stopping the sandbox")
}

fn print_demo_help(base: &str) {
    use pbi_sandbox::demo;
    let client = pbi_sandbox::demo_client_id();
    banner!();
    banner!(
        "Demo tenant: {} (users sign in with <name>-password, e.g. alice@{} / alice-password)",
        demo::CONTOSO_DOMAIN,
        demo::CONTOSO_DOMAIN
    );
    banner!("Sign in in a browser:");
    banner!(
        "  {base}/{}/oauth2/v2.0/authorize?client_id={client}&response_type=code&redirect_uri={base}/_sandbox/callback&scope=openid%20offline_access%20https://analysis.windows.net/powerbi/api/.default",
        demo::CONTOSO_DOMAIN
    );
    banner!("Directory, apps and secrets: {base}/_sandbox/seed");
    banner!("Press Ctrl-C to stop.");
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;
    use std::time::Duration;

    /// Every subcommand and every argument, found by walking clap's tree, that has no help line (clap's own
    /// `help` and `version` aside). `path` names where it is, e.g. "pbi-bridge powerbi list-tiles --dashboard".
    fn undocumented(command: &clap::Command, path: &str, out: &mut Vec<String>) {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                let name = arg.get_long().map_or_else(|| id.to_owned(), |long| format!("--{long}"));
                out.push(format!("{path} {name}"));
            }
        }
        for sub in command.get_subcommands() {
            if sub.get_name() == "help" {
                continue;
            }
            let sub_path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() && sub.get_long_about().is_none() {
                out.push(sub_path.clone());
            }
            undocumented(sub, &sub_path, out);
        }
    }

    #[test]
    fn every_subcommand_and_argument_has_a_help_line() {
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        undocumented(&command, "pbi-bridge", &mut missing);
        assert!(missing.is_empty(), "no help line (add a /// doc comment): {missing:#?}");
    }

    #[test]
    fn serve_trusts_x_forwarded_for_only_when_asked() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).map(|cli| cli.command) {
            Ok(Command::Serve(serve)) => server_config(&serve).trust_forwarded_for,
            Ok(_) => panic!("not serve"),
            Err(error) => panic!("{error}"),
        };
        assert!(!parse(&["pbi-bridge", "serve"]), "off by default");
        assert!(parse(&["pbi-bridge", "serve", "--trust-forwarded-for"]));
    }

    #[test]
    fn a_shorter_rescue_brings_the_job_timeout_and_the_rescuer_down_with_it() {
        let parse = |args: &[&str]| match Cli::try_parse_from(args).map(|cli| cli.command) {
            Ok(Command::Serve(serve)) => engine_config(&serve),
            Ok(_) => panic!("not serve"),
            Err(error) => panic!("{error}"),
        };
        let defaults = parse(&["pbi-bridge", "serve"]);
        assert_eq!((defaults.rescue_after, defaults.job_timeout), (Duration::from_secs(360), Duration::from_secs(300)));
        let short = parse(&["pbi-bridge", "serve", "--job-rescue-after-seconds", "4"]);
        assert_eq!(
            (short.rescue_after, short.job_timeout, short.rescuer_interval),
            (Duration::from_secs(4), Duration::from_secs(3), Duration::from_secs(1))
        );
        assert!(Cli::try_parse_from(["pbi-bridge", "serve", "--job-rescue-after-seconds", "1"]).is_err(), "at least 2 s");
    }
}
