//! Request ids, one structured log line per request, and OpenMetrics counters at `/metrics`.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pbi_auth::RefreshCounts;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::fmt::Write as _;
use std::sync::Arc;
use tracing::Instrument as _;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What `/metrics` answers with: the OpenMetrics text format, which Prometheus asks for and reads.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Counters since the server started. Every label comes from a closed set (a known method or `other`, a
/// route template or `(unmatched)`, a known status or its class), so no caller can add a series: each one
/// lives as long as the process, and a scanner sending made-up methods to made-up paths once grew this
/// page without bound.
pub struct Metrics {
    registry: Registry,
    /// What each scrape reads just before rendering (`Scraped`).
    scraped: Arc<std::sync::Mutex<Scraped>>,
    requests: Family<RequestLabels, Counter>,
    server_errors: Counter,
    powerbi_calls: Family<PowerBiLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: Method,
    /// The template the router matched (`/workspaces/{id}`), never the path itself: the router's routes are
    /// the closed set.
    route: String,
    status: Status,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PowerBiLabels {
    status: Status,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefreshLabels {
    outcome: Outcome,
}

/// The label for any path no route matched.
const UNMATCHED: &str = "(unmatched)";

/// The methods pbi-bridge serves or a browser sends on its own; anything else (WebDAV, made-up tokens) is
/// `other`. The derive writes a variant's name as the label value, hence the names in capitals.
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
enum Method {
    GET,
    HEAD,
    POST,
    PUT,
    PATCH,
    DELETE,
    OPTIONS,
    other,
}

impl From<&axum::http::Method> for Method {
    fn from(method: &axum::http::Method) -> Self {
        use axum::http::Method as M;
        match *method {
            M::GET => Self::GET,
            M::HEAD => Self::HEAD,
            M::POST => Self::POST,
            M::PUT => Self::PUT,
            M::PATCH => Self::PATCH,
            M::DELETE => Self::DELETE,
            M::OPTIONS => Self::OPTIONS,
            _ => Self::other,
        }
    }
}

/// How a token refresh ended; the derive writes the variant's name, hence the lower case.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
enum Outcome {
    succeeded,
    needs_sign_in,
    failed,
}

/// The statuses worth telling apart: those pbi-bridge answers with and those Power BI documents. Another
/// status (any three digits can come back from a proxy in front of Power BI) counts under its class.
const KNOWN_STATUSES: [u16; 32] = [
    200, 201, 202, 204, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413, 414, 415, 422, 429, 431,
    500, 501, 502, 503, 504,
];

/// A status as a label: a known one, else its class (`4xx`), so the set of values is closed.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum Status {
    Known(u16),
    /// The first digit of a status that is not in `KNOWN_STATUSES`.
    Class(u16),
    /// Outside 100–599 (no such status is defined).
    Other,
    /// A Power BI call that got no answer (connection refused, timeout).
    None,
}

impl Status {
    fn of(code: u16) -> Self {
        if KNOWN_STATUSES.contains(&code) {
            Self::Known(code)
        } else if (100..600).contains(&code) {
            Self::Class(code / 100)
        } else {
            Self::Other
        }
    }
}

// Written by hand: the derive can only name enum variants, and a status label is digits.
impl EncodeLabelValue for Status {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> std::fmt::Result {
        match self {
            Self::Known(code) => write!(encoder, "{code}"),
            Self::Class(class) => write!(encoder, "{class}xx"),
            Self::Other => encoder.write_str("other"),
            Self::None => encoder.write_str("none"),
        }
    }
}

/// Token refreshes are counted by the broker (`pbi-auth`), so they are read from it at each scrape.
struct Refreshes(Box<dyn Fn() -> RefreshCounts + Send + Sync>);

// `Collector` asks for `Debug`; a closure has none to give.
impl std::fmt::Debug for Refreshes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Refreshes")
    }
}

impl Collector for Refreshes {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let counts = (self.0)();
        let mut family =
            encoder.encode_descriptor("token_refreshes", "Refreshes of users' Power BI tokens, by outcome.", None, MetricType::Counter)?;
        for (outcome, count) in
            [(Outcome::succeeded, counts.succeeded), (Outcome::needs_sign_in, counts.needs_sign_in), (Outcome::failed, counts.failed)]
        {
            let labels = RefreshLabels { outcome };
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

impl Metrics {
    /// `refreshes` reads the broker's refresh counts (`Auth::refresh_counts`).
    pub fn new(refreshes: impl Fn() -> RefreshCounts + Send + Sync + 'static) -> Self {
        let (requests, server_errors, powerbi_calls) = (Family::default(), Counter::default(), Family::default());
        // The registry adds `_total` to each counter's name and a full stop to each help text.
        let mut registry = Registry::with_prefix("pbi_bridge");
        registry.register("http_requests", "HTTP requests served, by method, route and status", requests.clone());
        registry.register("http_server_errors", "HTTP responses with a 5xx status", server_errors.clone());
        registry.register("powerbi_calls", "Calls to the Power BI REST API, by status (\"none\": no answer came)", powerbi_calls.clone());
        registry.register_collector(Box::new(Refreshes(Box::new(refreshes))));
        let scraped = Arc::new(std::sync::Mutex::new(Scraped::default()));
        registry.register_collector(Box::new(ScrapedCollector(scraped.clone())));
        Self { registry, scraped, requests, server_errors, powerbi_calls }
    }

    /// `route` is the template the router matched, `None` when no route did.
    fn request(&self, method: &axum::http::Method, route: Option<&str>, status: StatusCode) {
        let route = route.unwrap_or(UNMATCHED).to_owned();
        let labels = RequestLabels { method: method.into(), route, status: Status::of(status.as_u16()) };
        self.requests.get_or_create(&labels).inc();
        if status.is_server_error() {
            self.server_errors.inc();
        }
    }

    /// Counts one exchange with Power BI (given to every Power BI client the server makes).
    pub fn powerbi_call(&self, status: Option<u16>) {
        let status = status.map_or(Status::None, Status::of);
        self.powerbi_calls.get_or_create(&PowerBiLabels { status }).inc();
    }

    /// The OpenMetrics text exposition, ending in `# EOF`, with `scraped` read just before.
    pub fn render(&self, scraped: Scraped) -> Result<String, std::fmt::Error> {
        *self.scraped.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = scraped;
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
/// What a scrape reads from the database and the engine: the queue is shared by every instance, so it is
/// counted where it lives; the engine's figures are this process's.
#[derive(Debug, Default)]
pub struct Scraped {
    pub job_counts: Vec<pbi_store::JobCount>,
    pub job_figures: std::collections::BTreeMap<&'static str, pbi_jobs::metrics::KindFigures>,
    /// Each enabled registration's key in use: its name and seconds until it expires (negative: expired).
    pub key_expiry: Vec<(String, i64)>,
    /// Connections not working for 4 days or more.
    pub failing_connections: i64,
}

impl Scraped {
    async fn read(state: &AppState) -> Self {
        let now = state.clock.unix();
        let job_counts = state.store.job_counts().await.unwrap_or_else(|error| {
            tracing::warn!(%error, "counting jobs for the metrics");
            Vec::new()
        });
        let key_expiry = match crate::notices::keys_in_use(&state.store).await {
            Ok(keys) => keys.into_iter().map(|(name, expires_at)| (name, expires_at - now)).collect(),
            Err(error) => {
                tracing::warn!(%error, "reading the application keys for the metrics");
                Vec::new()
            }
        };
        let failing = crate::notices::failing_connections(&state.store, now).await.map(|c| c.len()).unwrap_or_default();
        Self {
            job_counts,
            job_figures: state.jobs.metrics().snapshot(),
            key_expiry,
            failing_connections: i64::try_from(failing).unwrap_or(i64::MAX),
        }
    }
}

#[derive(Debug)]
struct ScrapedCollector(Arc<std::sync::Mutex<Scraped>>);

impl Collector for ScrapedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let scraped = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut family = encoder.encode_descriptor(
            "jobs",
            "Jobs in the job engine's database (shared by every instance), by kind and state.",
            None,
            MetricType::Gauge,
        )?;
        for count in &scraped.job_counts {
            ConstGauge::new(count.count)
                .encode(family.encode_family(&[("kind", count.kind.as_str()), ("state", count.state.as_str())])?)?;
        }
        let mut family =
            encoder.encode_descriptor("job_attempts", "Job attempts this instance started, by kind.", None, MetricType::Counter)?;
        for (kind, figures) in &scraped.job_figures {
            ConstCounter::new(figures.attempts).encode(family.encode_family(&[("kind", *kind)])?)?;
        }
        let mut family = encoder.encode_descriptor(
            "job_outcomes",
            "Job attempts this instance finished, by kind and outcome (failed: to be retried; discarded: the last attempt failed).",
            None,
            MetricType::Counter,
        )?;
        for (kind, figures) in &scraped.job_figures {
            for (outcome, count) in &figures.outcomes {
                ConstCounter::new(*count).encode(family.encode_family(&[("kind", *kind), ("outcome", *outcome)])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "job_start_lateness",
            "How long after it was due each job attempt this instance ran started, by kind.",
            Some(&prometheus_client::registry::Unit::Seconds),
            MetricType::Histogram,
        )?;
        for (kind, figures) in &scraped.job_figures {
            let bounds = pbi_jobs::metrics::LATENESS_BUCKETS.iter().copied().chain([f64::INFINITY]);
            let buckets: Vec<(f64, u64)> = bounds.zip(figures.lateness_buckets.iter().copied()).collect();
            family.encode_family(&[("kind", *kind)])?.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                figures.lateness_sum_seconds,
                figures.attempts,
                &buckets,
                None,
            )?;
        }
        let mut family = encoder.encode_descriptor(
            "application_key_expires_in",
            "Time until the application key in use of each enabled registration expires (negative once it has).",
            Some(&prometheus_client::registry::Unit::Seconds),
            MetricType::Gauge,
        )?;
        for (registration, seconds) in &scraped.key_expiry {
            ConstGauge::new(*seconds).encode(family.encode_family(&[("registration", registration.as_str())])?)?;
        }
        let family = encoder.encode_descriptor(
            "connections_failing",
            "Power BI connections that have not worked for 4 days or more.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(scraped.failing_connections).encode(family)?;
        Ok(())
    }
}

/// `GET /metrics`: every counter, for Prometheus to scrape.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let scraped = Scraped::read(&state).await;
    match state.metrics.render(scraped) {
        Ok(body) => ([(axum::http::header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        // Writing into a String cannot fail; only an encoder's own refusal can, and then there is no page.
        Err(error) => {
            tracing::error!(%error, "could not encode the metrics");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// A caller's request id is kept when it is short and plain (so it can be followed across services);
/// otherwise the server makes one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// Gives every request an id (in its log span and the `x-request-id` response header), logs one line when
/// it ends, and counts it. Paths are logged without their query, which can carry OAuth codes.
pub async fn observe(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.in_scope(|| {
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), ms, "request failed");
        } else {
            tracing::info!(status = status.as_u16(), ms, "request");
        }
    });
    state.metrics.request(&method, route.as_ref().map(MatchedPath::as_str), status);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method as M;

    fn refreshes() -> RefreshCounts {
        RefreshCounts { succeeded: 3, needs_sign_in: 1, failed: 0 }
    }

    #[test]
    fn the_exposition_lists_every_counter_with_its_labels() {
        let metrics = Metrics::new(refreshes);
        metrics.request(&M::GET, Some("/workspaces/{id}"), StatusCode::OK);
        metrics.request(&M::GET, Some("/workspaces/{id}"), StatusCode::OK);
        metrics.request(&M::POST, Some("/login"), StatusCode::INTERNAL_SERVER_ERROR);
        metrics.powerbi_call(Some(429));
        metrics.powerbi_call(None);
        let text = metrics.render(Scraped::default()).expect("encoded");
        for line in [
            r#"pbi_bridge_http_requests_total{method="GET",route="/workspaces/{id}",status="200"} 2"#,
            r#"pbi_bridge_http_requests_total{method="POST",route="/login",status="500"} 1"#,
            "pbi_bridge_http_server_errors_total 1",
            r#"pbi_bridge_powerbi_calls_total{status="429"} 1"#,
            r#"pbi_bridge_powerbi_calls_total{status="none"} 1"#,
            r#"pbi_bridge_token_refreshes_total{outcome="succeeded"} 3"#,
            r#"pbi_bridge_token_refreshes_total{outcome="needs_sign_in"} 1"#,
            r#"pbi_bridge_token_refreshes_total{outcome="failed"} 0"#,
            "# TYPE pbi_bridge_powerbi_calls counter",
            "# HELP pbi_bridge_token_refreshes Refreshes of users' Power BI tokens, by outcome.",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert_eq!(text.lines().last(), Some("# EOF"), "{text}");
    }

    #[test]
    fn methods_routes_and_statuses_come_from_closed_sets() {
        let metrics = Metrics::new(refreshes);
        for n in 0..50u16 {
            let made_up = M::from_bytes(format!("PROPFIND{n}").as_bytes()).expect("a token");
            metrics.request(&made_up, None, StatusCode::from_u16(600 + n).expect("a status"));
            metrics.request(&M::GET, None, StatusCode::from_u16(440 + n).expect("a status"));
            metrics.powerbi_call(Some(520 + n));
            metrics.powerbi_call(Some(n));
        }
        let text = metrics.render(Scraped::default()).expect("encoded");
        for line in [
            r#"pbi_bridge_http_requests_total{method="other",route="(unmatched)",status="other"} 50"#,
            r#"pbi_bridge_http_requests_total{method="GET",route="(unmatched)",status="4xx"} 50"#,
            r#"pbi_bridge_powerbi_calls_total{status="5xx"} 50"#,
            r#"pbi_bridge_powerbi_calls_total{status="other"} 50"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(
            samples,
            2 + 1 + 2 + 3 + 1,
            "two request series, the 5xx count, two Power BI series, three outcomes, the failing connections:\n{text}"
        );
    }

    #[test]
    fn known_statuses_keep_their_code() {
        assert_eq!(Status::of(303), Status::Known(303));
        assert_eq!(Status::of(418), Status::Class(4));
        assert_eq!(Status::of(99), Status::Other);
        assert_eq!(Status::of(600), Status::Other);
        assert!(KNOWN_STATUSES.iter().all(|&code| Status::of(code) == Status::Known(code)));
    }
}
