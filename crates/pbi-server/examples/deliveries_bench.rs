//! Seed 001's delivery benchmarks (issue 12), on the server's engine against a `pbi-bridge sandbox` process
//! with Power BI's push limits on (out of this process, so that its memory is not counted here):
//!
//! - `fanout`: `--count` subscriptions of one pushed item of `--rows` rows, each to a push dataset of its own,
//!   all due at once (enqueued before the engine starts): every one delivered, ceil(rows / 10,000) POSTs each,
//!   no 429; the wall time and the deliveries a second.
//! - `large`: one subscription of an item of `--rows` rows read from a SQLite data source, on simulated time
//!   (each snooze of the delivery is skipped by moving this process's clock and the sandbox's by as much): the
//!   POSTs, the rows in the densest hour, how long it took in simulated time, and the peak memory (VmHWM, reset
//!   before the delivery) of this process during it.
//!
//! Usage: `deliveries_bench <pbi-bridge binary> fanout [--count N] [--rows R] [--workers W]` or
//! `deliveries_bench <pbi-bridge binary> large [--rows R]` (bench/deliveries.sh builds and runs both).

use pbi_clock::Clock;
use pbi_jobs::{Engine, Job as _, JobState, NewJob, Schedulable};
use pbi_sandbox::{demo, demo_id};
use pbi_server::background::{self, BackgroundSettings};
use pbi_store::{Account, DataSourceKind, ItemSource, NewDataSource, NewItem, NewRegistration, NewSubscription, PinTarget, Store, Tokens};
use pbi_subscriptions::deliveries::Deliver;
use pbi_subscriptions::kind::VisualKind;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const SCOPE: &str = "openid profile offline_access https://analysis.windows.net/powerbi/api/Dataset.ReadWrite.All";

/// `pbi-bridge sandbox` on a free port, killed when dropped.
struct SandboxProcess {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SandboxProcess {
    fn start(binary: &str) -> Result<Self> {
        let mut child =
            Command::new(binary).args(["sandbox", "--addr", "127.0.0.1:0"]).stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
        let mut stdout = std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut first = String::new();
        stdout.read_line(&mut first)?;
        let base = first.trim().strip_prefix("pbi-bridge sandbox listening on ").ok_or(format!("unexpected: {first}"))?.to_owned();
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Ok(Self { child, base, http: reqwest::Client::new() })
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let answer = self.http.post(format!("{}{path}", self.base)).json(&body).send().await?;
        let status = answer.status();
        let text = answer.text().await?;
        if !status.is_success() {
            return Err(format!("{path}: {status} {text}").into());
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn command(&self, body: Value) -> Result<Value> {
        self.post("/_sandbox/commands", body).await
    }

    async fn advance(&self, by: Duration) -> Result<()> {
        self.post("/_sandbox/clock/advance", json!({"seconds": by.as_secs_f64().ceil() as u64})).await.map(|_| ())
    }

    /// The request log: (method, path, status, at as Unix seconds) of each request.
    async fn requests(&self) -> Result<Vec<(String, String, u16, f64)>> {
        let log: Value = self.http.get(format!("{}/_sandbox/requests", self.base)).send().await?.json().await?;
        let entries = log.as_array().or_else(|| log["requests"].as_array()).cloned().unwrap_or_default();
        Ok(entries
            .iter()
            .map(|r| {
                let at = r["at"]
                    .as_str()
                    .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
                    .map_or(0.0, |t| t.unix_timestamp_nanos() as f64 / 1e9);
                (
                    r["method"].as_str().unwrap_or_default().to_owned(),
                    r["path"].as_str().unwrap_or_default().to_owned(),
                    r["status"].as_u64().unwrap_or(0) as u16,
                    at,
                )
            })
            .collect())
    }
}

fn flag(args: &[String], name: &str, default: usize) -> usize {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A consented app in the sandbox, its registration in the store, and Alice's connection through it.
async fn alice_connected(sandbox: &SandboxProcess, store: &Store, now: i64) -> Result<(uuid::Uuid, uuid::Uuid)> {
    let tenant = demo_id("tenant:contoso");
    let app = sandbox
        .command(json!({"op": "createApp", "tenant": tenant, "displayName": "Report server", "multiTenant": false,
            "redirectUris": ["http://127.0.0.1:1/oauth/callback"], "delegatedPermissions": ["Dataset.ReadWrite.All"]}))
        .await?;
    let client_id: uuid::Uuid = app["clientId"].as_str().ok_or("clientId")?.parse()?;
    let secret = sandbox.command(json!({"op": "addSecret", "clientId": client_id, "expiresInDays": 365})).await?["value"]
        .as_str()
        .ok_or("secret")?
        .to_owned();
    sandbox.command(json!({"op": "grantConsent", "tenant": tenant, "clientId": client_id, "scopes": ["Dataset.ReadWrite.All"]})).await?;
    let user = demo_id(&format!("user:alice@{}", demo::CONTOSO_DOMAIN));
    let refresh =
        sandbox.command(json!({"op": "issueRefreshToken", "user": user, "clientId": client_id, "scope": SCOPE})).await?["refreshToken"]
            .as_str()
            .ok_or("refresh token")?
            .to_owned();
    let base = &sandbox.base;
    let domain = demo::CONTOSO_DOMAIN;
    let registration = NewRegistration {
        name: "report-server".into(),
        client_id: client_id.to_string(),
        tenant: domain.into(),
        cloud: "public".into(),
        redirect_urls: vec!["http://127.0.0.1:1/oauth/callback".into()],
        scopes: vec!["Dataset.ReadWrite.All".into(), "offline_access".into()],
        authorize_url: Some(format!("{base}/{domain}/oauth2/v2.0/authorize")),
        token_url: Some(format!("{base}/{domain}/oauth2/v2.0/token")),
        api_base: Some(base.clone()),
        enabled: true,
    };
    let registration = store.add_registration(&registration, now).await?;
    store.add_secret(registration.id, &SecretString::from(secret), now + 365 * 86_400, now).await?;
    let alice = store.add_user("alice", "Alice", "unused-hash", false, now).await?.id;
    let account = Account {
        owner: pbi_store::Owner::User(alice),
        registration_id: registration.id,
        tenant_id: tenant.to_string(),
        object_id: user.to_string(),
        upn: format!("alice@{domain}"),
    };
    let tokens = Tokens {
        access: SecretString::from("expired-access-token"),
        access_expires_at: now - 60,
        refresh: Some(SecretString::from(refresh)),
        refresh_expires_at: Some(now + 90 * 86_400),
    };
    let connection = store.save_connection(&account, &["Dataset.ReadWrite.All".into()], &tokens, now).await?.id;
    Ok((alice, connection))
}

fn category_item(name: &str, source: ItemSource, data_source_id: Option<uuid::Uuid>, query: Option<&str>) -> NewItem {
    NewItem {
        name: name.into(),
        definition: json!({"name": name, "kind": "category-series", "value": "Amount", "category": "Department",
            "columns": [{"name": "Department", "type": "text"}, {"name": "Amount", "type": "decimal"}]})
        .to_string(),
        source,
        data_source_id,
        query: query.map(Into::into),
        parameters: "{}".into(),
        everyone: true,
        pinners: vec![],
    }
}

/// A push dataset in Sales and a subscription of Alice's delivering `item` to it; the subscription's id and the
/// dataset's.
async fn subscribe(
    sandbox: &SandboxProcess,
    store: &Store,
    owner: uuid::Uuid,
    connection: uuid::Uuid,
    item: uuid::Uuid,
    n: usize,
    now: i64,
) -> Result<(uuid::Uuid, String)> {
    let sales = demo_id("ws:sales");
    let definition = VisualKind::CategorySeries.dataset_definition(&format!("Bench {n}"));
    let dataset = sandbox.command(json!({"op": "createDataset", "workspace": sales, "definition": definition})).await?["id"]
        .as_str()
        .ok_or("dataset id")?
        .to_owned();
    let pin = NewSubscription {
        owner,
        connection_id: connection,
        item_id: item,
        parameters: "{}".into(),
        workspace_id: Some(sales),
        workspace_name: "Sales".into(),
        dashboard_id: uuid::Uuid::new_v4(),
        dashboard_name: "Bench".into(),
        frequency: json!({"every": "daily", "at": {"hour": 7, "minute": 0}}).to_string(),
        time_zone: "UTC".into(),
    };
    let subscription = store.add_subscription(&pin, now).await?.id;
    let target =
        PinTarget { dataset_id: Some(dataset.clone()), report_id: Some(uuid::Uuid::new_v4()), tile_id: Some(uuid::Uuid::new_v4()) };
    store.set_pin_target(subscription, &target, now).await?;
    Ok((subscription, dataset))
}

async fn store_in(dir: &std::path::Path) -> Result<Store> {
    let url = format!("sqlite://{}", dir.join("bench.db").display());
    let keys = pbi_crypto::KeyRing::parse(&pbi_crypto::KeyRing::new_key_line(1))?;
    Ok(Store::connect(&url, keys).await?)
}

/// (completed, not yet finished, failed for good) deliveries.run jobs.
async fn delivery_jobs(store: &Store) -> Result<(i64, i64, i64)> {
    let (mut done, mut waiting, mut failed) = (0, 0, 0);
    for count in store.job_counts().await? {
        if count.kind != Deliver::KIND {
            continue;
        }
        match count.state.as_str() {
            "completed" => done += count.count,
            "discarded" | "cancelled" => failed += count.count,
            _ => waiting += count.count,
        }
    }
    Ok((done, waiting, failed))
}

async fn fanout(binary: &str, args: &[String]) -> Result<()> {
    let (count, rows, workers) = (flag(args, "--count", 10_000), flag(args, "--rows", 100), flag(args, "--workers", 100));
    let dir = std::env::temp_dir().join(format!("pbi-deliveries-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let sandbox = SandboxProcess::start(binary)?;
    let store = store_in(&dir).await?;
    let clock = Clock::system();
    let now = clock.unix();
    let (alice, connection) = alice_connected(&sandbox, &store, now).await?;
    let item = store.add_item(&category_item("Chart2", ItemSource::Pushed, None, None), now).await?.id;
    let pushed: Vec<Value> = (0..rows).map(|n| json!({"Department": format!("D{n:03}"), "Amount": n})).collect();
    store.set_pushed_rows(item, &Value::Array(pushed).to_string(), now).await?;
    let prepared = Instant::now();
    let mut datasets = HashMap::new();
    let queue = Engine::insert_only_scheduling(store.clone(), clock.clone(), Schedulable::new().with::<Deliver>()).await?;
    for n in 0..count {
        let (subscription, dataset) = subscribe(&sandbox, &store, alice, connection, item, n, now).await?;
        queue.enqueue(NewJob::now(Deliver { subscription })).await?;
        datasets.insert(dataset, subscription);
    }
    queue.stop().await?;
    eprintln!("{count} subscriptions and their jobs made in {:?}", prepared.elapsed());

    let auth = Arc::new(pbi_auth::Auth::new(store.clone(), clock.clone(), pbi_auth::AuthSettings::default()));
    let mut settings = BackgroundSettings::default();
    settings.engine.workers = workers;
    let started = Instant::now();
    let engine = background::start(store.clone(), clock.clone(), auth, &settings).await?;
    loop {
        let (done, waiting, failed) = delivery_jobs(&store).await?;
        if waiting == 0 {
            let took = started.elapsed();
            let requests = sandbox.requests().await?;
            let posts = requests.iter().filter(|(m, p, s, _)| m == "POST" && p.ends_with("/tables/Item/rows") && *s == 200).count();
            let throttled = requests.iter().filter(|(_, _, s, _)| *s == 429).count();
            let mut per_dataset: HashMap<&str, usize> = HashMap::new();
            for (method, path, status, _) in &requests {
                if method == "POST"
                    && *status == 200
                    && let Some(id) = path.split("/datasets/").nth(1).and_then(|p| p.split('/').next())
                {
                    *per_dataset.entry(id).or_default() += 1;
                }
            }
            let expected = rows.div_ceil(10_000).max(1);
            let exact = datasets.keys().filter(|d| per_dataset.get(d.as_str()) == Some(&expected)).count();
            println!(
                "fanout: {count} subscriptions x {rows} rows, {workers} workers: {done} delivered, {failed} failed, in {:.2} s = {:.0} deliveries/s; \
                 {posts} POSTs, {exact} of {count} datasets got exactly {expected}; 429s: {throttled}; request log entries: {}",
                took.as_secs_f64(),
                done as f64 / took.as_secs_f64(),
                requests.len()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.stop().await?;
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// A SQLite file with a `spend` table of `rows` rows (department D00000…, amount).
async fn big_database(file: &std::path::Path, rows: usize) -> Result<()> {
    use sqlx::ConnectOptions as _;
    let mut db = sqlx::sqlite::SqliteConnectOptions::new().filename(file).create_if_missing(true).connect().await?;
    sqlx::query("CREATE TABLE spend (department TEXT NOT NULL, amount REAL NOT NULL)").execute(&mut db).await?;
    let mut tx = sqlx::Connection::begin(&mut db).await?;
    for n in 0..rows {
        sqlx::query("INSERT INTO spend VALUES (?1, ?2)").bind(format!("D{n:07}")).bind(n as f64).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

fn proc_status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

async fn large(binary: &str, args: &[String]) -> Result<()> {
    let rows = flag(args, "--rows", 1_500_000);
    let dir = std::env::temp_dir().join(format!("pbi-deliveries-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let sandbox = SandboxProcess::start(binary)?;
    let store = store_in(&dir).await?;
    let file = dir.join("big.db");
    big_database(&file, rows).await?;
    // Simulated time: this process's clock and the sandbox's move on together when the delivery snoozes.
    let clock = Clock::manual_from_now();
    let now = clock.unix();
    let (alice, connection) = alice_connected(&sandbox, &store, now).await?;
    let source = NewDataSource {
        name: "Big".into(),
        kind: DataSourceKind::Sqlite,
        location: file.display().to_string(),
        username: None,
        credential_header: None,
    };
    let source = store.add_data_source(&source, None, now).await?.id;
    let query = r#"SELECT department AS "Department", amount AS "Amount" FROM spend"#;
    let item = store.add_item(&category_item("Big", ItemSource::Query, Some(source), Some(query)), now).await?.id;
    let (subscription, _) = subscribe(&sandbox, &store, alice, connection, item, 0, now).await?;
    let auth = Arc::new(pbi_auth::Auth::new(store.clone(), clock.clone(), pbi_auth::AuthSettings::default()));
    let engine = background::start(store.clone(), clock.clone(), auth, &BackgroundSettings::default()).await?;
    // The peak from here on is the delivery's (and the engine's, idle otherwise).
    std::fs::write("/proc/self/clear_refs", "5")?;
    let baseline = proc_status("VmRSS:");
    let started = Instant::now();
    let simulated_start = clock.now();
    let job = engine.enqueue(NewJob::now(Deliver { subscription })).await?.id;
    let mut snoozes = 0;
    let ended = loop {
        let seen = engine
            .wait_for(job, Duration::from_secs(600), |j| {
                j.state.is_finished() || matches!(j.state, JobState::Scheduled | JobState::Retryable)
            })
            .await?;
        if seen.state.is_finished() {
            break seen;
        }
        // Snoozed (the hour's rows are used up) or retried: skip the wait on both clocks, then run it now.
        let wait = (seen.scheduled_at - time::OffsetDateTime::now_utc()).max(time::Duration::ZERO);
        let wait = Duration::try_from(wait).unwrap_or_default() + Duration::from_secs(1);
        clock.advance(time::Duration::try_from(wait)?).map_err(|_| "the clock is manual")?;
        sandbox.advance(wait).await?;
        engine.retry(job).await?;
        snoozes += 1;
    };
    let peak = proc_status("VmHWM:");
    let simulated = clock.now() - simulated_start;
    let requests = sandbox.requests().await?;
    let posts: Vec<f64> =
        requests.iter().filter(|(m, p, s, _)| m == "POST" && p.ends_with("/tables/Item/rows") && *s == 200).map(|r| r.3).collect();
    let throttled = requests.iter().filter(|(_, _, s, _)| *s == 429).count();
    // The densest hour: the most rows POSTed within 3,600 s (each POST of 10,000 rows but perhaps the last).
    let per_post = |i: usize| if i + 1 == posts.len() { rows - 10_000 * (posts.len() - 1) } else { 10_000 };
    let densest = (0..posts.len())
        .map(|i| (i..posts.len()).take_while(|&j| posts[j] - posts[i] < 3600.0).map(per_post).sum::<usize>())
        .max()
        .unwrap_or(0);
    println!(
        "large: {rows} rows: job {:?} after {snoozes} snoozes; {} POSTs, 429s: {throttled}; densest hour {densest} rows ({:.1} % of 1,000,000); \
         {:.0} s simulated ({:.2} h), {:.1} s of wall time; peak memory during the delivery {} MB (VmHWM; {} MB resident before)",
        ended.state,
        posts.len(),
        densest as f64 / 10_000.0,
        simulated.as_seconds_f64(),
        simulated.as_seconds_f64() / 3600.0,
        started.elapsed().as_secs_f64(),
        peak / 1024,
        baseline / 1024,
    );
    engine.stop().await?;
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(binary), Some(scenario)) = (args.get(1), args.get(2)) else {
        return Err("usage: deliveries_bench <pbi-bridge binary> fanout|large [--count N] [--rows R] [--workers W]".into());
    };
    match scenario.as_str() {
        "fanout" => fanout(binary, &args[3..]).await,
        "large" => large(binary, &args[3..]).await,
        other => Err(format!("unknown scenario {other}: fanout or large").into()),
    }
}
