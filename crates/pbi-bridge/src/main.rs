//! The pbi-bridge executable: parses the command line and starts what it names.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;

#[derive(Parser)]
#[command(name = "pbi-bridge", version, about = "Power BI integration server, web UI, CLI and sandbox")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the Entra ID + Power BI REST emulator on one HTTP listener.
    Sandbox(SandboxArgs),
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
}

fn parse_seed(text: &str) -> Result<pbi_sandbox::Seed, String> {
    text.parse()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PBI_BRIDGE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Sandbox(args) => run_sandbox(args).await,
    }
}

async fn run_sandbox(args: SandboxArgs) -> anyhow::Result<()> {
    let config = pbi_sandbox::SandboxConfig {
        addr: args.addr,
        seed: args.seed,
        clock: pbi_clock::Clock::shifted(),
        push_limits: !args.no_push_limits,
        public_url: args.public_url,
        ..Default::default()
    };
    let mut sandbox = pbi_sandbox::Sandbox::start(config).await.with_context(|| format!("could not listen on {}", args.addr))?;
    let base = sandbox.base_url().to_owned();
    // The first line is a contract: scripts and tests read the URL from it.
    println!("pbi-bridge sandbox listening on {base}");
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
    println!();
    println!(
        "Demo tenant: {} (users sign in with <name>-password, e.g. alice@{} / alice-password)",
        demo::CONTOSO_DOMAIN,
        demo::CONTOSO_DOMAIN
    );
    println!("Sign in in a browser:");
    println!(
        "  {base}/{}/oauth2/v2.0/authorize?client_id={client}&response_type=code&redirect_uri={base}/_sandbox/callback&scope=openid%20offline_access%20https://analysis.windows.net/powerbi/api/.default",
        demo::CONTOSO_DOMAIN
    );
    println!("Directory, apps and secrets: {base}/_sandbox/seed");
    println!("Press Ctrl-C to stop.");
}
