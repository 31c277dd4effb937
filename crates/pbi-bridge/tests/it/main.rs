//! Black-box tests of the `pbi-bridge` executable: start it as a user would and talk to it over HTTP.

mod admin_cli;
mod browser;
mod cli_output;
mod datadir;
mod delivery_crash;
mod jobs_cli;
mod nginx;
mod powerbi_cli;
mod sandbox_cli;
#[path = "../support/serve.rs"]
mod serve;
mod tidy;
mod up_cli;
