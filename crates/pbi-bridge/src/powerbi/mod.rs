//! `pbi-bridge powerbi <action>`: the connector actions of seed 004 (and a few more) from the command line.

pub mod output;
mod rows;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use output::{opt, print_list};
use pbi_powerbi::models::{DatasetDefinition, TableSchema};
use pbi_powerbi::{
    AccessToken, Backoff, ClientCredentials, ClientSecret, Cloud, ErrorKind, Page, PowerBiClient, PowerBiError, RawBody, RawRequest,
    ResponseType, RetryOn, RetryPolicy, StaticToken, TokenSource, Top, Workspace,
};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use url::Url;
use uuid::Uuid;

#[derive(Args)]
pub struct PowerBiArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    action: Action,
}

#[derive(Args)]
struct Common {
    /// The API base URL (e.g. the sandbox's); default: the cloud's.
    #[arg(long, global = true, value_name = "URL")]
    api_base: Option<Url>,
    /// Public, US-GCC, GCC-High, DoD or China.
    #[arg(long, global = true, default_value = "public", value_parser = parse_cloud)]
    cloud: Cloud,
    /// The workspace (group) id; default: My workspace.
    #[arg(long, global = true, value_name = "ID")]
    workspace: Option<Uuid>,
    /// An access token for the Power BI API.
    #[arg(long, global = true, env = "PBI_BRIDGE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// For client credentials: the tenant id or domain.
    #[arg(long, global = true)]
    tenant: Option<String>,
    /// For client credentials: the app's Application (client) ID.
    #[arg(long, global = true)]
    client_id: Option<String>,
    /// For client credentials: the client secret (prefer the environment variable: arguments land in shell history).
    #[arg(long, global = true, env = "PBI_BRIDGE_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// The authority URL, e.g. https://login.microsoftonline.com/<tenant>; default: the cloud's login host and --tenant.
    #[arg(long, global = true, value_name = "URL")]
    authority: Option<Url>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// How many times to retry 429, 5xx and network failures.
    #[arg(long, global = true, default_value_t = 5)]
    retries: u32,
    /// The most to wait across retries, in seconds; a longer Retry-After is reported instead.
    #[arg(long, global = true, default_value_t = 300)]
    max_wait: u64,
}

#[derive(Args)]
struct Paging {
    /// At most this many items (1 to 1000).
    #[arg(long, value_parser = parse_top)]
    top: Option<Top>,
    /// Skip this many items.
    #[arg(long, default_value_t = 0)]
    skip: u32,
    /// Walk every page.
    #[arg(long, conflicts_with_all = ["top", "skip"])]
    all: bool,
}

#[derive(Subcommand)]
enum Action {
    /// Lists the workspaces (groups) the caller belongs to.
    ListGroups {
        /// An OData filter, e.g. "contains(name,'sales')".
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        paging: Paging,
    },
    /// Lists the dashboards of the workspace (--workspace, default My workspace).
    ListDashboards,
    /// Lists the tiles of one dashboard, with their size and the report or dataset behind each.
    ListTiles {
        /// The dashboard's id (from list-dashboards).
        #[arg(long, value_name = "ID")]
        dashboard: Uuid,
    },
    /// Lists the reports of the workspace, with the dataset each reads.
    ListReports,
    /// Lists the datasets (semantic models) of the workspace; push datasets are marked "push".
    ListDatasets,
    /// Lists the tables of a push dataset with their columns and types.
    ListTables {
        /// The dataset's id (from list-datasets).
        #[arg(long, value_name = "ID")]
        dataset: String,
    },
    /// Creates a push dataset from a definition file ({"name", "tables": [...], "relationships": [...]}).
    CreateDataset {
        /// The definition as a JSON file, or - for stdin.
        #[arg(long)]
        definition: PathBuf,
        /// Keep only the newest 200,000 rows per table (retention policy basicFIFO).
        #[arg(long)]
        fifo: bool,
    },
    /// Pushes rows from CSV, JSON or NDJSON into a push table, checked against its schema first.
    CreateRows {
        /// The push dataset's id (from list-datasets).
        #[arg(long, value_name = "ID")]
        dataset: String,
        /// The table's name (from list-tables; case does not matter).
        #[arg(long)]
        table: String,
        /// The input file, or - for stdin.
        #[arg(long, default_value = "-")]
        file: PathBuf,
        /// The input format; default: from the file's extension.
        #[arg(long, value_enum)]
        format: Option<rows::Format>,
    },
    /// Removes every row of a push table.
    DeleteRows {
        /// The push dataset's id (from list-datasets).
        #[arg(long, value_name = "ID")]
        dataset: String,
        /// The table's name (from list-tables).
        #[arg(long)]
        table: String,
    },
    /// Replaces a push table's schema with a table definition ({"name", "columns": [...]}).
    UpdateTable {
        /// The push dataset's id (from list-datasets).
        #[arg(long, value_name = "ID")]
        dataset: String,
        /// The table definition as a JSON file, or - for stdin.
        #[arg(long)]
        definition: PathBuf,
    },
    /// Starts an on-demand refresh of a dataset.
    RefreshDataset {
        /// The dataset's id (from list-datasets).
        #[arg(long, value_name = "ID")]
        dataset: String,
    },
    /// Calls any endpoint under the API base (a path such as myorg/datasets, never a full URL).
    Request(RequestArgs),
}

#[derive(Args)]
struct RequestArgs {
    /// The HTTP method (GET, POST, PUT, PATCH, DELETE).
    #[arg(long, default_value = "GET")]
    method: reqwest::Method,
    /// The path under the API base, e.g. myorg/groups or myorg/groups/ID/datasets (never a full URL).
    #[arg(long)]
    path: String,
    /// A JSON body, or @FILE.
    #[arg(long)]
    body: Option<String>,
    /// NAME=VALUE, repeatable.
    #[arg(long = "query", value_parser = parse_pair::<'='>)]
    query: Vec<(String, String)>,
    /// NAME:VALUE, repeatable (Authorization cannot be set).
    #[arg(long = "header", value_parser = parse_pair::<':'>)]
    headers: Vec<(String, String)>,
    /// A form field NAME=VALUE, repeatable.
    #[arg(long = "form", value_parser = parse_pair::<'='>)]
    form: Vec<(String, String)>,
    /// A multipart file FIELD=PATH, repeatable (sent with its file name).
    #[arg(long = "attach", value_parser = parse_pair::<'='>)]
    files: Vec<(String, String)>,
    /// How to print the answer: json (pretty-printed), text, or binary (the bytes as they came).
    #[arg(long, value_enum, default_value = "json")]
    response_type: ResponseKind,
    /// Seconds before giving up on one attempt.
    #[arg(long)]
    timeout: Option<u64>,
    /// Retry every error, not only 429, 5xx and network errors.
    #[arg(long)]
    retry_all: bool,
    /// Exponential backoff (default) or a fixed delay between retries.
    #[arg(long, value_enum, default_value = "exponential")]
    backoff: BackoffKind,
    /// The first (or fixed) delay between retries, in milliseconds.
    #[arg(long, default_value_t = 500)]
    delay_ms: u64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ResponseKind {
    Json,
    Text,
    Binary,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackoffKind {
    Exponential,
    Fixed,
}

fn parse_cloud(text: &str) -> Result<Cloud, String> {
    Cloud::parse(text).ok_or_else(|| format!("unknown cloud '{text}': use public, us-gcc, gcc-high, dod or china"))
}

fn parse_top(text: &str) -> Result<Top, String> {
    let n: u32 = text.parse().map_err(|_| format!("'{text}' is not a number from 1 to 1000"))?;
    Top::new(n).map_err(|e| e.to_string())
}

fn parse_pair<const SEP: char>(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once(SEP).ok_or_else(|| format!("'{text}' is not NAME{SEP}VALUE"))?;
    Ok((name.trim().to_owned(), value.trim_start().to_owned()))
}

/// Why a command failed, as its exit code says.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let refused_token = error.downcast_ref::<PowerBiError>().is_some_and(PowerBiError::is_token_problem);
    match error.downcast_ref::<PowerBiError>().map(|e| &e.kind) {
        Some(ErrorKind::Transport(_)) => 4,
        // A token Power BI refused even after a fresh one was asked for is a sign-in failure, like Entra's refusal.
        Some(ErrorKind::Token(_)) => 5,
        Some(_) if refused_token => 5,
        Some(ErrorKind::Invalid(_) | ErrorKind::Schema { .. }) => 2,
        Some(_) => 3,
        None if error.downcast_ref::<UsageError>().is_some() => 2,
        None => match (error.downcast_ref::<pbi_auth::AuthError>(), error.downcast_ref::<pbi_store::StoreError>()) {
            (Some(pbi_auth::AuthError::Unavailable(_)), _) => 4,
            (Some(pbi_auth::AuthError::Store(_)), _) => 1,
            (Some(_), _) | (_, Some(pbi_store::StoreError::NotFound(_) | pbi_store::StoreError::Conflict(_))) => 3,
            _ => 1,
        },
    }
}

/// A mistake in how the command was called.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

pub fn usage_error(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

fn client(common: &Common) -> anyhow::Result<PowerBiClient> {
    let cloud = match &common.api_base {
        Some(base) => Cloud::custom(base.clone()),
        None => common.cloud.clone(),
    };
    let tokens: Arc<dyn TokenSource> = match (&common.token, &common.client_id, &common.client_secret) {
        (Some(token), _, _) => Arc::new(StaticToken(AccessToken::new(token.clone()))),
        (None, Some(client_id), Some(secret)) => {
            let authority = match (&common.authority, &common.tenant) {
                (Some(authority), _) => authority.clone(),
                (None, Some(tenant)) => cloud.login_host().join(tenant).context("--tenant")?,
                (None, None) => return Err(usage("client credentials need --tenant (or --authority)")),
            };
            Arc::new(
                ClientCredentials::new(
                    reqwest::Client::new(),
                    &authority,
                    client_id.clone(),
                    ClientSecret::new(secret.clone()),
                    cloud.resource(),
                )
                .map_err(|e| usage(e.message))?,
            )
        }
        _ => {
            return Err(usage(
                "give --token (or PBI_BRIDGE_TOKEN), or --client-id, --client-secret (or PBI_BRIDGE_CLIENT_SECRET) and --tenant",
            ));
        }
    };
    let retry = RetryPolicy { max_retries: common.retries, max_total_wait: Duration::from_secs(common.max_wait), ..RetryPolicy::default() };
    Ok(PowerBiClient::new(&cloud, tokens).with_retry(retry))
}

fn read_input(path: &PathBuf) -> anyhow::Result<String> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).context("reading stdin")?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(text)
}

pub async fn run(args: PowerBiArgs) -> anyhow::Result<()> {
    let static_token = args.common.token.is_some();
    act(args).await.map_err(|error| explain(error, static_token))
}

/// What to do about a failure the service does not explain: no answer at all (which address to check), or
/// a token Power BI refused (`InvalidToken`, often with no message at all, or `TokenExpired`) after the
/// client's one retry with a fresh token (what the code means, when Power BI did not say, and what to do
/// about it with this command's credentials). Anything else is passed on as it is.
fn explain(error: anyhow::Error, static_token: bool) -> anyhow::Error {
    let Some(refused) = error.downcast_ref::<PowerBiError>() else { return error };
    if let ErrorKind::Transport(message) = &refused.kind {
        // No answer at all: say which address to check.
        let check = if message.contains("token endpoint") {
            "check --authority (or --tenant and --cloud) and that this machine can reach it"
        } else {
            "check --api-base (or --cloud) and that this machine can reach it; 429, 5xx and network failures are retried --retries times"
        };
        let kind = ErrorKind::Transport(format!("{message}; {check}"));
        return PowerBiError { kind, request_id: refused.request_id.clone() }.into();
    }
    let (ErrorKind::Forbidden { code, message } | ErrorKind::Unauthorized { code, message }) = &refused.kind else { return error };
    let (meaning, what_to_do) = match code.as_str() {
        "InvalidToken" => (
            "Power BI did not accept the access token: it is not a Power BI token, was issued for another resource or has been tampered with",
            if static_token {
                "get a new one for https://analysis.windows.net/powerbi/api (or use --client-id with PBI_BRIDGE_CLIENT_SECRET and --tenant, and pbi-bridge gets its own)"
            } else {
                "a fresh one was refused too: check that --authority (or --tenant) is the Entra ID that the --api-base (or --cloud) Power BI trusts"
            },
        ),
        "TokenExpired" => (
            "the access token has expired",
            if static_token {
                "get a new one (they last about an hour), or use --client-id with PBI_BRIDGE_CLIENT_SECRET and --tenant, and pbi-bridge renews its own"
            } else {
                "a fresh one had expired too: check this machine's clock"
            },
        ),
        _ => return error,
    };
    let message = if message.trim().is_empty() { meaning.to_owned() } else { message.trim().trim_end_matches('.').to_owned() };
    let message = format!("{message}; {what_to_do}");
    let kind = match &refused.kind {
        ErrorKind::Unauthorized { .. } => ErrorKind::Unauthorized { code: code.clone(), message },
        _ => ErrorKind::Forbidden { code: code.clone(), message },
    };
    PowerBiError { kind, request_id: refused.request_id.clone() }.into()
}

async fn act(args: PowerBiArgs) -> anyhow::Result<()> {
    let common = &args.common;
    let client = client(common)?;
    let workspace = common.workspace.map_or(Workspace::My, Workspace::Group);
    let json = common.json;
    match args.action {
        Action::ListGroups { filter, paging } => {
            let groups = if paging.all {
                use futures_util::TryStreamExt;
                client.all_groups(filter.as_deref(), Top::new(Top::MAX)?).try_collect().await?
            } else {
                client.groups(filter.as_deref(), Page { top: paging.top, skip: paging.skip }).await?
            };
            // `isReadOnly` is the caller's access (a Viewer's workspace is read-only to them); the capacity
            // decides what the workspace can hold (paginated reports, large datasets).
            let rows = groups
                .iter()
                .map(|g| {
                    vec![
                        g.id.to_string(),
                        g.name.clone(),
                        if g.is_read_only { "read-only" } else { "read-write" }.into(),
                        if g.is_on_dedicated_capacity { "dedicated" } else { "shared" }.into(),
                    ]
                })
                .collect();
            print_list(json, &groups, &["ID", "NAME", "ACCESS", "CAPACITY"], rows);
        }
        Action::ListDashboards => {
            let items = client.dashboards(workspace).await?;
            let rows = items.iter().map(|d| vec![d.id.to_string(), d.display_name.clone()]).collect();
            print_list(json, &items, &["ID", "NAME"], rows);
        }
        Action::ListTiles { dashboard } => {
            let items = client.tiles(workspace, dashboard).await?;
            let rows = items
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        opt(&t.title),
                        format!("{}x{}", opt(&t.row_span), opt(&t.col_span)),
                        opt(&t.report_id),
                        opt(&t.dataset_id),
                    ]
                })
                .collect();
            print_list(json, &items, &["ID", "TITLE", "SIZE", "REPORT", "DATASET"], rows);
        }
        Action::ListReports => {
            let items = client.reports(workspace).await?;
            let rows = items.iter().map(|r| vec![r.id.to_string(), r.name.clone(), opt(&r.dataset_id)]).collect();
            print_list(json, &items, &["ID", "NAME", "DATASET"], rows);
        }
        Action::ListDatasets => {
            let items = client.datasets(workspace).await?;
            let rows =
                items.iter().map(|d| vec![d.id.clone(), d.name.clone(), if d.add_rows_api_enabled { "push" } else { "" }.into()]).collect();
            print_list(json, &items, &["ID", "NAME", "KIND"], rows);
        }
        Action::ListTables { dataset } => {
            let items = client.tables(workspace, &dataset).await?;
            let rows = items
                .iter()
                .map(|t| {
                    vec![t.name.clone(), t.columns.iter().map(|c| format!("{} {:?}", c.name, c.data_type)).collect::<Vec<_>>().join(", ")]
                })
                .collect();
            print_list(json, &items, &["TABLE", "COLUMNS"], rows);
        }
        Action::CreateDataset { definition, fifo } => {
            let definition: DatasetDefinition =
                serde_json::from_str(&read_input(&definition)?).map_err(|e| usage(format!("the dataset definition is not valid: {e}")))?;
            let created = client.create_dataset(workspace, &definition, fifo).await?;
            print_one(json, &created, &format!("created push dataset {} ({})", created.name, created.id));
        }
        Action::CreateRows { dataset, table, file, format } => {
            create_rows(&client, workspace, &dataset, &table, &file, format, json).await?
        }
        Action::DeleteRows { dataset, table } => {
            client.delete_rows(workspace, &dataset, &table).await?;
            print_one(json, &serde_json::json!({"deleted": true}), &format!("deleted every row of {table}"));
        }
        Action::UpdateTable { dataset, definition } => {
            let table: TableSchema =
                serde_json::from_str(&read_input(&definition)?).map_err(|e| usage(format!("the table definition is not valid: {e}")))?;
            client.put_table(workspace, &dataset, &table).await?;
            print_one(json, &table, &format!("updated the schema of {}", table.name));
        }
        Action::RefreshDataset { dataset } => {
            let id = client.refresh_dataset(workspace, &dataset).await?;
            print_one(json, &serde_json::json!({"requestId": id}), &format!("refresh started (request {})", id.unwrap_or_default()));
        }
        Action::Request(request) => raw_request(&client, request, json).await?,
    }
    Ok(())
}

fn print_one<T: serde::Serialize>(json: bool, value: &T, message: &str) {
    if json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{message}");
    }
}

async fn create_rows(
    client: &PowerBiClient,
    workspace: Workspace,
    dataset: &str,
    table: &str,
    file: &PathBuf,
    format: Option<rows::Format>,
    json: bool,
) -> anyhow::Result<()> {
    let format = format
        .or_else(|| rows::Format::from_path(file))
        .ok_or_else(|| usage("say --format csv, json or ndjson (it cannot be told from the file name)"))?;
    let tables = client.tables(workspace, dataset).await?;
    let schema = tables
        .into_iter()
        .find(|t| t.name.eq_ignore_ascii_case(table))
        .ok_or_else(|| usage(format!("dataset {dataset} has no table '{table}'")))?;
    let input: Box<dyn Read + Send> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?)
    };
    // A bounded channel between the reader thread and the pusher keeps memory flat whatever the input size.
    let (tx, rx) = tokio::sync::mpsc::channel(pbi_powerbi::MAX_ROWS_PER_REQUEST);
    let reader_schema = schema.clone();
    let reader = tokio::task::spawn_blocking(move || rows::read_rows(input, format, &reader_schema, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar
    });
    let pushed = client.push_rows(workspace, dataset, &schema, stream, |sent| {
        if let Some(bar) = &bar {
            bar.set_message(format!("{sent} rows sent"));
            bar.tick();
        }
    });
    let result = pushed.await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    // The reader stops when the pusher stops listening; wait for it so no task outlives the command.
    reader.await.context("the input reader failed")?;
    let summary = result?;
    print_one(
        json,
        &serde_json::json!({"rows": summary.rows, "requests": summary.requests}),
        &format!("pushed {} rows in {} request{}", summary.rows, summary.requests, if summary.requests == 1 { "" } else { "s" }),
    );
    Ok(())
}

async fn raw_request(client: &PowerBiClient, args: RequestArgs, json: bool) -> anyhow::Result<()> {
    let mut request = RawRequest::new(args.method, args.path);
    request.query = args.query;
    request.headers = args.headers;
    request.form = args.form;
    for (field, path) in args.files {
        let content = std::fs::read(&path).with_context(|| format!("reading {path}"))?;
        let name = std::path::Path::new(&path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.clone());
        request.files.push((field, name, content.into()));
    }
    if let Some(body) = args.body {
        let text = match body.strip_prefix('@') {
            Some(file) => read_input(&PathBuf::from(file))?,
            None => body,
        };
        request.json = Some(serde_json::from_str(&text).map_err(|e| usage(format!("--body is not JSON: {e}")))?);
    }
    request.response_type = match args.response_type {
        ResponseKind::Json => ResponseType::Json,
        ResponseKind::Text => ResponseType::Text,
        ResponseKind::Binary => ResponseType::Binary,
    };
    request.timeout = args.timeout.map(Duration::from_secs);
    let mut retry = client.retry_policy().clone();
    retry.retry_on = if args.retry_all { RetryOn::All } else { RetryOn::ServerAndNetwork };
    retry.backoff = match args.backoff {
        BackoffKind::Fixed => Backoff::Fixed(Duration::from_millis(args.delay_ms)),
        BackoffKind::Exponential => {
            Backoff::Exponential { base: Duration::from_millis(args.delay_ms), max: Duration::from_secs(60), jitter: true }
        }
    };
    request.retry = Some(retry);
    let response = client.raw(&request).await?;
    match response.body {
        RawBody::Json(value) => println!("{}", serde_json::to_string_pretty(&value).unwrap_or_default()),
        RawBody::Text(text) => println!("{text}"),
        RawBody::Binary(bytes) => {
            use std::io::Write;
            std::io::stdout().write_all(&bytes).context("writing the response")?;
        }
        RawBody::Empty if json => println!("{}", serde_json::json!({"status": response.status})),
        RawBody::Empty => println!("HTTP {} (no body)", response.status),
    }
    Ok(())
}
