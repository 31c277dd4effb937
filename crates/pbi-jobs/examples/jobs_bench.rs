//! Issue 11's speed benchmarks for the job engine, on a database of its own (a SQLite file, or a PostgreSQL
//! database on 127.0.0.1:5432 created for the run and dropped after). Not run by `cargo test`; `bench/jobs.sh`
//! builds it in release and runs it on both backends. Every figure is measured on the wall clock:
//!
//! - `schedules`: `--count` schedules (six-field cron, UTC) whose first occurrences are due evenly over
//!   `--window` seconds (`--window 0`: all in the same second, a burst), a no-op handler that records when it
//!   started; the start lateness (due → handler starts) per occurrence, whether every occurrence ran exactly
//!   once, and River's job table afterwards. With `--occurrences 2` (twice the window a multiple of 60 that
//!   divides 3600) each schedule recurs every two windows and its second occurrence, enqueued by the first as
//!   a scheduled River job (the steady state, where the first is enqueued by the sweeper), is measured too
//!   (`--period` sets another recurrence, longer than the window; `--window 0 --period 60`: a burst of
//!   second occurrences).
//! - `jobs`: `--count` jobs enqueued with `enqueue_many`, all due at the same whole second: time until all have
//!   started and completed, and jobs per second.
//!
//! Engine settings: `--workers`, `--fetch-cooldown-ms`, `--fetch-poll-ms`, `--scheduler-interval-ms`, `--sweep-every-ms` (the
//! `EngineConfig` defaults otherwise). The peak resident memory (VmHWM) of the process is printed at the end.

use futures_util::StreamExt;
use pbi_clock::Clock;
use pbi_jobs::schedule::Schedule;
use pbi_jobs::{Engine, EngineConfig, Failure, Handler, Job, JobState, NewJob, Outcome, Registry, Running, ScheduleSpec};
use pbi_store::{Pool, Store};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Tick {
    n: u32,
}

impl Job for Tick {
    const KIND: &'static str = "bench.tick";
}

/// What the handlers saw: for each (schedule or job, occurrence) how many runs and when the first started.
struct Recorder {
    /// Schedules' occurrences (else plain jobs).
    schedules: bool,
    occurrences: usize,
    /// The first due time of each schedule or job, in Unix nanoseconds.
    first_due_ns: Vec<i64>,
    /// Seconds between two occurrences of a schedule (0: one occurrence).
    period: i64,
    runs: Vec<AtomicU32>,
    start_ns: Vec<AtomicI64>,
    due_ns: Vec<AtomicI64>,
    started: AtomicUsize,
    retried: AtomicUsize,
    unexpected: AtomicUsize,
    all_started: tokio::sync::Notify,
}

impl Recorder {
    fn new(schedules: bool, first_due_ns: Vec<i64>, occurrences: usize, period: i64) -> Self {
        let slots = first_due_ns.len() * occurrences;
        Self {
            schedules,
            occurrences,
            first_due_ns,
            period,
            runs: (0..slots).map(|_| AtomicU32::new(0)).collect(),
            start_ns: (0..slots).map(|_| AtomicI64::new(0)).collect(),
            due_ns: (0..slots).map(|_| AtomicI64::new(0)).collect(),
            started: AtomicUsize::new(0),
            retried: AtomicUsize::new(0),
            unexpected: AtomicUsize::new(0),
            all_started: tokio::sync::Notify::new(),
        }
    }

    fn slots(&self) -> usize {
        self.runs.len()
    }

    fn record(&self, n: u32, due_ns: Option<i64>, started_ns: i64, attempt: u16) {
        if attempt > 1 {
            self.retried.fetch_add(1, Ordering::Relaxed);
        }
        let Some(&first) = self.first_due_ns.get(n as usize) else {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let due = due_ns.unwrap_or(first);
        let occurrence = if self.period > 0 { (due - first) / (self.period * 1_000_000_000) } else { 0 };
        let Some(slot) = usize::try_from(occurrence).ok().filter(|o| *o < self.occurrences).map(|o| n as usize * self.occurrences + o)
        else {
            self.unexpected.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if self.runs[slot].fetch_add(1, Ordering::SeqCst) == 0 {
            self.start_ns[slot].store(started_ns, Ordering::SeqCst);
            self.due_ns[slot].store(due, Ordering::SeqCst);
            if self.started.fetch_add(1, Ordering::SeqCst) + 1 == self.slots() {
                self.all_started.notify_one();
            }
        }
    }
}

struct Recording(Arc<Recorder>);

impl Handler<Tick> for Recording {
    async fn run(&self, job: Running<Tick>) -> Result<Outcome, Failure> {
        let started = unix_ns();
        // A schedule's occurrence carries its due time in its key (`schedule:<id>@<unix seconds>`).
        let due =
            job.unique_key.as_deref().and_then(|k| k.rsplit_once('@')).and_then(|(_, d)| d.parse::<i64>().ok()).map(|s| s * 1_000_000_000);
        self.0.record(job.args.n, due, started, job.attempt);
        Ok(Outcome::Done)
    }
}

fn unix_ns() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

struct Args {
    scenario: String,
    postgres: bool,
    count: usize,
    window: u64,
    occurrences: usize,
    period: Option<u64>,
    lead: u64,
    grace: u64,
    settle: u64,
    concurrency: usize,
    pg_options: Option<String>,
    analyze_every: u64,
    config: EngineConfig,
}

fn parse_args() -> Result<Args, Error> {
    let mut args = std::env::args().skip(1);
    let scenario = args.next().ok_or("usage: jobs_bench schedules|jobs [--backend sqlite|postgres] [--count N] …")?;
    let mut parsed = Args {
        scenario,
        postgres: false,
        count: 10_000,
        window: 60,
        occurrences: 1,
        period: None,
        lead: 0,
        grace: 120,
        settle: 5,
        concurrency: 16,
        pg_options: None,
        analyze_every: 0,
        config: EngineConfig::default(),
    };
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag}: a value is missing"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag} {value}: {e}"));
        let ms = || number().map(Duration::from_millis);
        match flag.as_str() {
            "--backend" => parsed.postgres = value == "postgres",
            "--count" => parsed.count = usize::try_from(number()?)?,
            "--window" => parsed.window = number()?,
            "--occurrences" => parsed.occurrences = usize::try_from(number()?)?.max(1),
            "--period" => parsed.period = Some(number()?),
            "--pg-options" => parsed.pg_options = Some(value.clone()),
            "--analyze-every" => parsed.analyze_every = number()?,
            "--lead" => parsed.lead = number()?,
            "--grace" => parsed.grace = number()?,
            "--settle" => parsed.settle = number()?,
            "--concurrency" => parsed.concurrency = usize::try_from(number()?)?.max(1),
            "--workers" => parsed.config.workers = usize::try_from(number()?)?,
            "--fetch-cooldown-ms" => parsed.config.fetch_cooldown = ms()?,
            "--scheduler-interval-ms" => parsed.config.scheduler_interval = ms()?,
            "--fetch-poll-ms" => parsed.config.fetch_poll_interval = ms()?,
            "--sweep-every-ms" => parsed.config.sweep_every = ms()?,
            _ => return Err(format!("unknown option {flag}").into()),
        }
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    // River's and the sweeper's warnings and errors go to stderr (RUST_LOG to change).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let args = parse_args()?;
    let db = pbi_testdb::TestDb::new(args.postgres, "jobbench").await;
    // `--pg-options '-c name=value'`: PostgreSQL settings for every connection (URL `options`), to try one.
    let url = match &args.pg_options {
        Some(options) if args.postgres => format!("{}?options={}", db.url, options.replace(' ', "%20").replace('=', "%3D")),
        _ => db.url.clone(),
    };
    let store = Store::connect(&url, keys()).await?;
    let c = &args.config;
    println!(
        "backend {}{} | workers {} | fetch_cooldown {:?} | fetch_poll {:?} | scheduler_interval {:?} | sweep_every {:?}",
        if args.postgres { "postgres" } else { "sqlite" },
        args.pg_options.as_deref().filter(|_| args.postgres).map(|o| format!(" ({o})")).unwrap_or_default(),
        c.workers,
        c.fetch_cooldown,
        c.fetch_poll_interval,
        c.scheduler_interval,
        c.sweep_every
    );
    if let Pool::Postgres(pool) = store.pool() {
        let autovacuum: String = pbi_store::sqlx::query_scalar("SHOW autovacuum").fetch_one(pool).await?;
        let version: String = pbi_store::sqlx::query_scalar("SHOW server_version").fetch_one(pool).await?;
        println!("PostgreSQL {version}, autovacuum {autovacuum}");
    }
    let result = match args.scenario.as_str() {
        "schedules" => schedules(&args, store.clone()).await,
        "jobs" => jobs(&args, store.clone()).await,
        other => Err(format!("unknown scenario {other}: schedules or jobs").into()),
    };
    store.close().await;
    drop(db);
    result
}

fn keys() -> pbi_crypto::KeyRing {
    let line = pbi_crypto::KeyRing::new_key_line(1).expose_secret().to_owned();
    pbi_crypto::KeyRing::parse(&SecretString::from(line)).expect("keys")
}

async fn start(args: &Args, store: Store, recorder: Arc<Recorder>) -> Result<Engine, Error> {
    let registry = Registry::new().with::<Tick, _>(Recording(recorder))?;
    Ok(Engine::start(store, Clock::system(), registry, &args.config).await?)
}

/// A six-field cron (seconds first, UTC) that is due at `due` and then every `period` seconds (a multiple of 60
/// dividing 3600), or daily when `period` is 0.
fn cron_for(due: i64, period: i64) -> String {
    let (second, minute, hour) = (due % 60, (due / 60) % 60, (due / 3600) % 24);
    match period / 60 {
        0 => format!("{second} {minute} {hour} * * *"),
        1 => format!("{second} * * * * *"),
        step => {
            let minutes: Vec<String> = (minute % step..60).step_by(usize::try_from(step).unwrap_or(60)).map(|m| m.to_string()).collect();
            format!("{second} {} * * * *", minutes.join(","))
        }
    }
}

async fn schedules(args: &Args, store: Store) -> Result<(), Error> {
    // A recurring schedule's first occurrence is the next after it is created, so a schedule due at the end of
    // the window recurs every two windows: created within one window before the first due time (the inserts
    // take well under that), its first occurrence is the one in the window, not one a period earlier.
    let period = if args.occurrences > 1 {
        let p = i64::try_from(args.period.unwrap_or(2 * args.window))?;
        if p < 60 || p % 60 != 0 || 3600 % p != 0 || p <= i64::try_from(args.window)? {
            return Err("--occurrences above 1: the period (--period, else twice --window) must be longer than the window, a multiple of 60 s, and divide 3600".into());
        }
        p
    } else {
        0
    };
    // The first due second: after the inserts, which take about 1 ms each here, plus a margin.
    let lead = if args.lead > 0 { args.lead } else { 10 + args.count as u64 / 500 };
    let t0 = time::OffsetDateTime::now_utc().unix_timestamp() + i64::try_from(lead)?;
    let window = i64::try_from(args.window)?;
    let count = i64::try_from(args.count)?;
    let due: Vec<i64> = (0..count).map(|i| t0 + i * window / count).collect();
    let recorder = Arc::new(Recorder::new(true, due.iter().map(|d| d * 1_000_000_000).collect(), args.occurrences, period));
    let engine = Arc::new(start(args, store.clone(), recorder.clone()).await?);

    memory("engine started, no schedules yet");
    let inserting = Instant::now();
    let misplaced = AtomicUsize::new(0);
    // Each spec is made as it is sent, so that the benchmark itself holds none of them.
    let mut inserts = futures_util::stream::iter(due.iter().enumerate())
        .map(|(i, &d)| {
            let engine = engine.clone();
            let misplaced = &misplaced;
            async move {
                let spec = ScheduleSpec {
                    kind: Tick::KIND,
                    owner: format!("bench:{i}"),
                    args: serde_json::json!({ "n": i }),
                    schedule: Schedule::cron(&cron_for(d, period), "UTC")?,
                };
                let row = engine.schedule(&spec).await?;
                if row.next_run_at != d {
                    misplaced.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, Error>(())
            }
        })
        .buffer_unordered(args.concurrency);
    while let Some(inserted) = inserts.next().await {
        inserted?;
    }
    drop(inserts);
    let inserted = inserting.elapsed();
    println!(
        "created {} schedules in {:.1} s ({:.0}/s, {} at a time through Engine::schedule)",
        args.count,
        inserted.as_secs_f64(),
        args.count as f64 / inserted.as_secs_f64(),
        args.concurrency
    );
    let misplaced = misplaced.load(Ordering::Relaxed);
    if misplaced > 0 {
        return Err(format!("{misplaced} schedules were created after their due time: give a longer --lead").into());
    }
    let now_s = time::OffsetDateTime::now_utc().unix_timestamp();
    println!(
        "first due in {} s; due evenly over {} s ({:.1}/s); {} occurrence(s) each{}",
        t0 - now_s,
        args.window,
        if window > 0 { args.count as f64 / args.window as f64 } else { f64::INFINITY },
        args.occurrences,
        if period > 0 { format!(", every {period} s") } else { String::new() }
    );
    memory("schedules created");
    let analyzer = analyzing(args, &store).await?;
    reset_peak_memory();
    let cpu_before = cpu_seconds();
    let deadline = t0 + window.max(1) + period * (i64::try_from(args.occurrences)? - 1) + i64::try_from(args.grace)?;
    wait_all(&recorder, deadline).await;
    let cpu = cpu_seconds() - cpu_before;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    report(&recorder, i64::try_from(args.occurrences)?);
    println!("process CPU during the measurement: {cpu:.1} s");
    let expected_completed = args.count * args.occurrences;
    river_states(&store, expected_completed, Some(args.count)).await?;
    breakdown(&engine, &recorder).await?;
    schedule_rows(&store, &recorder, period).await?;
    memory("end; the peak is since the schedules were created");
    if let Some(analyzer) = analyzer {
        analyzer.abort();
    }
    engine.stop().await?;
    Ok(())
}

async fn jobs(args: &Args, store: Store) -> Result<(), Error> {
    let lead = if args.lead > 0 { args.lead } else { 5 + args.count as u64 / 5_000 };
    let t = time::OffsetDateTime::now_utc().unix_timestamp() + i64::try_from(lead)?;
    let due_ns = t * 1_000_000_000;
    let recorder = Arc::new(Recorder::new(false, vec![due_ns; args.count], 1, 0));
    let engine = start(args, store.clone(), recorder.clone()).await?;
    memory("engine started, no jobs yet");
    let at = time::OffsetDateTime::from_unix_timestamp(t)?;
    let inserting = Instant::now();
    let all: Vec<u32> = (0..u32::try_from(args.count)?).collect();
    for chunk in all.chunks(1000) {
        engine.enqueue_many(chunk.iter().map(|&n| NewJob::now(Tick { n }).at(at)).collect()).await?;
    }
    let inserted = inserting.elapsed();
    println!(
        "enqueued {} jobs in {:.2} s (enqueue_many, 1,000 a statement), all due at the same second",
        args.count,
        inserted.as_secs_f64()
    );
    if time::OffsetDateTime::now_utc().unix_timestamp() >= t {
        return Err("the jobs were enqueued after their due time: give a longer --lead".into());
    }
    let analyzer = analyzing(args, &store).await?;
    let cpu_before = cpu_seconds();
    wait_all(&recorder, t + i64::try_from(args.grace)?).await;
    let cpu = cpu_seconds() - cpu_before;
    let completed_at = wait_completed(&store, args.count, t + i64::try_from(args.grace)?).await?;
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    report(&recorder, 1);
    if let Some(done) = completed_at {
        println!(
            "all {} completed {:.3} s after due ({:.0} jobs/s from due to the last completion)",
            args.count,
            (done - due_ns) as f64 / 1e9,
            args.count as f64 / ((done - due_ns) as f64 / 1e9)
        );
    }
    println!("process CPU until all had started: {cpu:.1} s");
    river_states(&store, args.count, None).await?;
    breakdown(&engine, &recorder).await?;
    memory("end");
    if let Some(analyzer) = analyzer {
        analyzer.abort();
    }
    engine.stop().await?;
    Ok(())
}

/// PostgreSQL plans River's queries from table statistics that autovacuum keeps; on a cluster where it is off
/// (as on the machine these were first measured on), `--analyze-every S` does its part: ANALYZE the job and
/// schedule tables now (the inserts are done) and every S seconds after, until the guard is dropped.
async fn analyzing(args: &Args, store: &Store) -> Result<Option<tokio::task::JoinHandle<()>>, Error> {
    let Pool::Postgres(pool) = store.pool() else { return Ok(None) };
    if args.analyze_every == 0 {
        return Ok(None);
    }
    let started = Instant::now();
    pbi_store::sqlx::query("ANALYZE river_job, schedules").execute(pool).await?;
    println!("ANALYZE river_job, schedules: {} ms, then every {} s", started.elapsed().as_millis(), args.analyze_every);
    let (pool, every) = (pool.clone(), Duration::from_secs(args.analyze_every));
    Ok(Some(tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = pbi_store::sqlx::query("ANALYZE river_job, schedules").execute(&pool).await {
                eprintln!("ANALYZE: {e}");
            }
        }
    })))
}

/// Until every slot has started, or the wall clock reaches `deadline` (Unix seconds).
async fn wait_all(recorder: &Recorder, deadline: i64) {
    let left = Duration::from_secs(u64::try_from(deadline - time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0));
    let progress = async {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let now = recorder.started.load(Ordering::SeqCst);
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            eprintln!(
                "[{}] started {now} of {} (+{}), load {}",
                time::OffsetDateTime::now_utc().time(),
                recorder.slots(),
                now - last,
                load.trim()
            );
            last = now;
        }
    };
    let all = async {
        while recorder.started.load(Ordering::SeqCst) < recorder.slots() {
            let _ = tokio::time::timeout(Duration::from_secs(1), recorder.all_started.notified()).await;
        }
    };
    tokio::select! {
        () = all => {}
        () = progress => {}
        () = tokio::time::sleep(left) => {}
    }
}

/// Polls River's table until `count` jobs are completed; the wall time (Unix ns) it saw them so.
async fn wait_completed(store: &Store, count: usize, deadline: i64) -> Result<Option<i64>, Error> {
    while time::OffsetDateTime::now_utc().unix_timestamp() < deadline {
        let completed: i64 = count_where(store, "SELECT count(*) FROM river_job WHERE state = 'completed'").await?;
        if usize::try_from(completed)? >= count {
            return Ok(Some(unix_ns()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(None)
}

async fn count_where(store: &Store, sql: &'static str) -> Result<i64, Error> {
    Ok(match store.pool() {
        Pool::Sqlite(pool) => pbi_store::sqlx::query_scalar(sql).fetch_one(pool).await?,
        Pool::Postgres(pool) => pbi_store::sqlx::query_scalar(sql).fetch_one(pool).await?,
    })
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1e9
}

fn report(recorder: &Recorder, occurrences: i64) {
    let slots = recorder.slots();
    let per = recorder.occurrences;
    for o in 0..usize::try_from(occurrences).unwrap_or(1) {
        let mut lateness = Vec::with_capacity(slots / per);
        let (mut lost, mut doubled, mut extra_runs) = (0usize, 0usize, 0u64);
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        for slot in (o..slots).step_by(per) {
            match recorder.runs[slot].load(Ordering::SeqCst) {
                0 => lost += 1,
                runs => {
                    if runs > 1 {
                        doubled += 1;
                        extra_runs += u64::from(runs - 1);
                    }
                    let start = recorder.start_ns[slot].load(Ordering::SeqCst);
                    lateness.push(start - recorder.due_ns[slot].load(Ordering::SeqCst));
                    first = first.min(start);
                    last = last.max(start);
                }
            }
        }
        lateness.sort_unstable();
        let what = if recorder.schedules { format!("occurrence {}", o + 1) } else { "jobs".to_owned() };
        println!(
            "{what}: ran {} of {} | not run by the end {lost} | ran more than once {doubled} ({extra_runs} extra runs)",
            lateness.len(),
            slots / per
        );
        if !lateness.is_empty() {
            println!(
                "  start lateness (due → handler starts): min {:.3} s | p50 {:.3} s | p90 {:.3} s | p99 {:.3} s | p99.9 {:.3} s | max {:.3} s",
                percentile(&lateness, 0.0),
                percentile(&lateness, 50.0),
                percentile(&lateness, 90.0),
                percentile(&lateness, 99.0),
                percentile(&lateness, 99.9),
                percentile(&lateness, 100.0)
            );
            let earliest_due =
                (o..slots).step_by(per).map(|s| recorder.due_ns[s].load(Ordering::SeqCst)).filter(|d| *d > 0).min().unwrap_or(0);
            let span = (last - first) as f64 / 1e9;
            println!(
                "  first start {:.3} s, last start {:.3} s after the earliest due time; {:.0} starts/s between the first and the last",
                (first - earliest_due) as f64 / 1e9,
                (last - earliest_due) as f64 / 1e9,
                if span > 0.0 { lateness.len() as f64 / span } else { f64::INFINITY }
            );
            // p99 and max by tenth of the window (by due time): does it get worse as the run goes on?
            let dues: Vec<(i64, i64)> = (o..slots)
                .step_by(per)
                .filter(|s| recorder.runs[*s].load(Ordering::SeqCst) > 0)
                .map(|s| (recorder.due_ns[s].load(Ordering::SeqCst), recorder.start_ns[s].load(Ordering::SeqCst)))
                .collect();
            let (lo, hi) = dues.iter().fold((i64::MAX, i64::MIN), |(lo, hi), (d, _)| (lo.min(*d), hi.max(*d)));
            if hi > lo {
                let slices: Vec<String> = (0..10)
                    .map(|k| {
                        let (from, to) = (lo + (hi - lo + 1) * k / 10, lo + (hi - lo + 1) * (k + 1) / 10);
                        let mut part: Vec<i64> = dues.iter().filter(|(d, _)| (from..to).contains(d)).map(|(d, s)| s - d).collect();
                        part.sort_unstable();
                        format!("{:.2}/{:.2}", percentile(&part, 99.0), percentile(&part, 100.0))
                    })
                    .collect();
                println!("  p99/max (s) by tenth of the window: {}", slices.join(" "));
            }
            let late = |limit: f64| lateness.iter().filter(|l| **l as f64 / 1e9 > limit).count();
            println!("  later than 1 s: {} | later than 2 s: {} | later than 5 s: {}", late(1.0), late(2.0), late(5.0));
        }
    }
    let (retried, unexpected) = (recorder.retried.load(Ordering::SeqCst), recorder.unexpected.load(Ordering::SeqCst));
    println!("runs that were a retry (attempt > 1): {retried} | runs of a later occurrence than those measured: {unexpected}");
}

/// River's jobs by state (and, for schedules, one scheduled next occurrence each).
async fn river_states(store: &Store, completed: usize, scheduled: Option<usize>) -> Result<(), Error> {
    let sql = "SELECT state::text, count(*) FROM river_job GROUP BY state ORDER BY state";
    let sqlite_sql = "SELECT state, count(*) FROM river_job GROUP BY state ORDER BY state";
    let rows: Vec<(String, i64)> = match store.pool() {
        Pool::Sqlite(pool) => pbi_store::sqlx::query_as(sqlite_sql).fetch_all(pool).await?,
        Pool::Postgres(pool) => pbi_store::sqlx::query_as(sql).fetch_all(pool).await?,
    };
    let text: Vec<String> = rows.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let get = |state: &str| rows.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| usize::try_from(*n).unwrap_or(0));
    let mut expected = format!("expected completed {completed}");
    if let Some(s) = scheduled {
        expected.push_str(&format!(", scheduled {s}"));
    }
    let ok = get("completed") == completed && scheduled.is_none_or(|s| get("scheduled") == s) && rows.len() <= 2;
    println!("River's jobs by state: {} ({expected}: {})", text.join(", "), if ok { "as expected" } else { "NOT as expected" });
    let attempts: i64 = count_where(store, "SELECT count(*) FROM river_job WHERE attempt > 1").await?;
    println!("River jobs attempted more than once: {attempts}");
    Ok(())
}

/// Where the lateness goes, from River's rows of the completed jobs: due → created (the sweeper enqueues a
/// schedule's first occurrence when it is due; a job enqueued ahead is created before it is due) and
/// max(due, created) → attempted (River makes it available and a producer fetches it).
async fn breakdown(engine: &Engine, recorder: &Recorder) -> Result<(), Error> {
    let per = recorder.occurrences;
    let (mut enqueue, mut pickup) = (vec![Vec::new(); per], vec![Vec::new(); per]);
    let mut after = None;
    loop {
        let page = engine.list(&[Tick::KIND], &[JobState::Completed], 1000, after).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for job in &page {
            let Some(n) = job.args.get("n").and_then(serde_json::Value::as_u64).and_then(|n| usize::try_from(n).ok()) else { continue };
            let Some(&first) = recorder.first_due_ns.get(n) else { continue };
            let due = job
                .unique_key
                .as_deref()
                .and_then(|k| k.rsplit_once('@'))
                .and_then(|(_, d)| d.parse::<i64>().ok())
                .map_or(first, |d| d * 1_000_000_000);
            let o = if recorder.period > 0 { (due - first) / (recorder.period * 1_000_000_000) } else { 0 };
            let Some(o) = usize::try_from(o).ok().filter(|o| *o < per) else { continue };
            let ns = |t: time::OffsetDateTime| i64::try_from(t.unix_timestamp_nanos()).unwrap_or(i64::MAX);
            let created = ns(job.created_at);
            enqueue[o].push(created - due);
            if let Some(attempted) = job.attempted_at {
                pickup[o].push(ns(attempted) - created.max(due));
            }
        }
    }
    for o in 0..per {
        let (e, p) = (&mut enqueue[o], &mut pickup[o]);
        e.sort_unstable();
        p.sort_unstable();
        let figures =
            |v: &[i64]| format!("p50 {:.3} s, p99 {:.3} s, max {:.3} s", percentile(v, 50.0), percentile(v, 99.0), percentile(v, 100.0));
        let what = if recorder.schedules { format!("occurrence {}", o + 1) } else { "jobs".to_owned() };
        println!("  {what}, from River's rows ({} jobs): due → created: {} | → attempted: {}", e.len(), figures(e), figures(p));
    }
    Ok(())
}

/// Every schedule row: its last occurrence recorded as completed, its next run one period (or a day) later.
async fn schedule_rows(store: &Store, recorder: &Recorder, period: i64) -> Result<(), Error> {
    let rows = store.schedules().await?;
    let occurrences = i64::try_from(recorder.occurrences)?;
    let step = if period > 0 { period } else { 86_400 };
    let mut wrong = 0;
    for row in &rows {
        let Some(n) = row.owner.strip_prefix("bench:").and_then(|n| n.parse::<usize>().ok()) else { continue };
        let first = recorder.first_due_ns[n] / 1_000_000_000;
        let last = first + (occurrences - 1) * if period > 0 { period } else { 0 };
        let right = row.last_outcome.as_deref() == Some("completed")
            && row.last_run_at.is_some()
            && row.next_run_at == last + step
            && row.pending_job_id.is_some();
        if !right {
            if wrong < 3 {
                println!("  schedule {n} (first due {first}): {row:?}");
            }
            wrong += 1;
        }
    }
    println!("schedule rows: {} | not moved on to the next run as expected: {wrong}", rows.len());
    Ok(())
}

/// Seconds of CPU this process has used (user + system), from /proc/self/stat (100 ticks a second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command's closing parenthesis: state is field 0, utime 11, stime 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn memory(when: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| status.lines().find(|l| l.starts_with(name)).map(|l| l[name.len()..].trim().to_owned()).unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "memory ({when}): peak resident (VmHWM) {} | resident now (VmRSS) {} | load average {}",
        field("VmHWM:"),
        field("VmRSS:"),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
}

/// Starts VmHWM over from the resident size now (Linux's `clear_refs` 5).
fn reset_peak_memory() {
    if std::fs::write("/proc/self/clear_refs", "5").is_err() {
        println!("(could not reset the peak memory: VmHWM below counts from the start)");
    }
}
